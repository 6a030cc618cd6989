//! Values the policy tests build from text, shared by the test modules of every file here.

use std::net::IpAddr;

use uuid::Uuid;

use super::{PathPattern, TimeWindow};
use crate::ids::PolicyId;
use crate::secret_path::SecretPath;

/// 2026-03-02 (a Monday) at 00:00:00 UTC.
const MIDNIGHT: i64 = 1_772_409_600;

/// That Monday at `hours:minutes` UTC, as Unix seconds.
pub(super) fn at(hours: i64, minutes: i64) -> i64 {
    MIDNIGHT + hours * 3600 + minutes * 60
}

pub(super) fn path(text: &str) -> SecretPath {
    SecretPath::parse(text).unwrap()
}

pub(super) fn pattern(text: &str) -> PathPattern {
    PathPattern::parse(text).unwrap()
}

pub(super) fn id(n: u128) -> PolicyId {
    PolicyId::from_uuid(Uuid::from_u128(n))
}

pub(super) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub(super) fn window(after: &str, before: &str, timezone: &str) -> TimeWindow {
    TimeWindow::parse(after, before, timezone).unwrap()
}
