//! Access policies on a vault: what they are, how they are evaluated, and their wire shapes.
//!
//! A policy grants (or denies) a set of [`Permission`]s on the secrets whose paths match a
//! [`PathPattern`], optionally only from some networks and at some times of day
//! ([`Conditions`]), optionally until some instant. [`evaluate`] decides one request against
//! the policies of one principal on one vault; it is pure, so the origin runs it on every
//! request against live policy rows, and the edge could run it too.
//!
//! The rules, all of them failing closed:
//! - nothing applies: denied (`Decision::Deny { policy: None }`);
//! - a policy applies only while it has not expired, when its pattern matches the path, when it
//!   lists the permission, and when every one of its conditions holds; a condition that
//!   cannot be checked (an IP allowlist on a request without a client IP) does not hold;
//! - any applicable deny beats every applicable allow, whatever their priorities; priority
//!   only chooses which policy a decision reports (highest first, then smallest id).
//!
//! Which policies belong to which principal, and which org roles bypass policies altogether, is
//! the origin's business.

use std::cmp::Reverse;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{PolicyId, UserId, VaultId};
use crate::secret_path::{self, Flaw, Grammar, SecretPath};

// ---------------------------------------------------------------------------------------------
// Permissions and effects
// ---------------------------------------------------------------------------------------------

/// Something a principal may do to a secret.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read the value (and list the metadata).
    Read,
    /// Write new versions.
    Write,
    /// Delete the secret.
    Delete,
    /// Have the server write a new random value.
    Rotate,
    /// Make share links.
    Share,
}

impl Permission {
    /// Every permission, in wire order.
    pub const ALL: [Self; 5] = [
        Self::Read,
        Self::Write,
        Self::Delete,
        Self::Rotate,
        Self::Share,
    ];

    /// The permission's wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Rotate => "rotate",
            Self::Share => "share",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a policy grants or refuses its permissions. `allow` when a request leaves it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

impl Effect {
    /// The effect's wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Path patterns
// ---------------------------------------------------------------------------------------------

/// Why a text is not a path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPathPattern {
    #[error("secret_path_pattern must not be empty")]
    Empty,
    #[error("secret_path_pattern must be at most 512 characters")]
    TooLong,
    #[error("secret_path_pattern must not contain `%`: patterns are never percent-decoded")]
    PercentSign,
    #[error(
        "secret_path_pattern segments may only contain letters, digits, `.`, `_` and `-`, or be `*` or `**`"
    )]
    BadCharacter,
    #[error("secret_path_pattern must not start with `/`")]
    LeadingSlash,
    #[error("secret_path_pattern must not end with `/`")]
    TrailingSlash,
    #[error("secret_path_pattern must not contain an empty segment (`//`)")]
    EmptySegment,
    #[error("secret_path_pattern must not contain a `.` or `..` segment")]
    DotSegment,
    #[error("`*` and `**` must be whole segments of secret_path_pattern (`db/*`, not `db/a*`)")]
    PartialWildcard,
}

impl From<Flaw> for InvalidPathPattern {
    fn from(flaw: Flaw) -> Self {
        match flaw {
            Flaw::Empty => Self::Empty,
            Flaw::TooLong => Self::TooLong,
            Flaw::PercentSign => Self::PercentSign,
            Flaw::BadCharacter => Self::BadCharacter,
            Flaw::LeadingSlash => Self::LeadingSlash,
            Flaw::TrailingSlash => Self::TrailingSlash,
            Flaw::EmptySegment => Self::EmptySegment,
            Flaw::DotSegment => Self::DotSegment,
            Flaw::PartialWildcard => Self::PartialWildcard,
        }
    }
}

/// A glob over secret paths: segments as in a [`SecretPath`], plus whole segments `*` (exactly
/// one path segment) and `**` (zero or more path segments). `db/*` matches `db/x` but not
/// `db/x/y`; `db/**` matches `db`, `db/x` and `db/x/y`; `**` matches every path. Literal
/// segments compare case-sensitively, like paths. At most 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "prod/db/**")]
pub struct PathPattern(String);

impl PathPattern {
    /// Checks a pattern; the text is kept exactly as given.
    pub fn parse(text: &str) -> Result<Self, InvalidPathPattern> {
        secret_path::check(text, Grammar::Pattern)?;
        Ok(Self(text.to_owned()))
    }

    /// The pattern's text, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern has a `*` or `**` segment; without one it matches only itself.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains('*')
    }

    /// Whether `path` matches this pattern.
    ///
    /// A dynamic programme over (pattern segment, path segment) rather than backtracking:
    /// `**/**/**/...` against a long path would take exponential time to backtrack, and
    /// patterns are written by tenants. This is O(pattern segments x path segments), at most
    /// 256 x 256 steps.
    pub fn matches(&self, path: &SecretPath) -> bool {
        let path: Vec<&str> = path.segments().collect();
        // `reachable[j]`: the pattern segments seen so far match the first `j` path segments.
        let mut reachable = vec![false; path.len() + 1];
        if let Some(start) = reachable.first_mut() {
            *start = true;
        }
        for segment in self.0.split('/') {
            if segment == "**" {
                // Zero or more segments: anything reachable stays so, and so does all after it.
                let mut seen = false;
                for state in &mut reachable {
                    seen |= *state;
                    *state = seen;
                }
            } else {
                // Exactly one segment: shift by one, keeping the steps this segment allows.
                reachable = std::iter::once(false)
                    .chain(
                        reachable
                            .iter()
                            .zip(&path)
                            .map(|(&state, &part)| state && (segment == "*" || segment == part)),
                    )
                    .collect();
            }
            if !reachable.contains(&true) {
                return false;
            }
        }
        reachable.last().copied().unwrap_or(false)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PathPattern {
    type Err = InvalidPathPattern;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for PathPattern {
    type Error = InvalidPathPattern;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        secret_path::check(&text, Grammar::Pattern)?;
        Ok(Self(text))
    }
}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Conditions: IP allowlists
// ---------------------------------------------------------------------------------------------

/// Why a text is not a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCidr {
    #[error(
        "ip_allowlist entries must be addresses or CIDR blocks such as 10.0.0.0/8 or 2001:db8::/32"
    )]
    Shape,
    #[error(
        "a CIDR block's address must have no bits set past its prefix length (10.0.0.0/8, not 10.1.2.3/8)"
    )]
    HostBitsSet,
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a network of
/// that one address. Bits past the prefix length must be zero, so a typo such as
/// `10.1.2.3/8` for `10.1.2.3/28` is refused rather than silently widened. IPv4-mapped IPv6
/// blocks (`::ffff:10.0.0.0/104`) are kept as the IPv4 block they denote. On the wire, the
/// text form `address/length`.
// No `ToSchema` derive: utoipa cannot show a struct with named fields as a string, so the
// fields that hold one say `value_type = String` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `address/length` or a bare address.
    pub fn parse(text: &str) -> Result<Self, InvalidCidr> {
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, Some(length)),
            None => (text, None),
        };
        let network = IpAddr::from_str(address).map_err(|_| InvalidCidr::Shape)?;
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = match length {
            None => max,
            // Digits only: `u8::from_str` would also take `+8`.
            Some(length)
                if (1..=3).contains(&length.len())
                    && length.bytes().all(|b| b.is_ascii_digit()) =>
            {
                length
                    .parse::<u8>()
                    .ok()
                    .filter(|&len| len <= max)
                    .ok_or(InvalidCidr::Shape)?
            }
            Some(_) => return Err(InvalidCidr::Shape),
        };
        let cidr = match network {
            // Clients are compared in canonical form (see `contains`), so blocks are too.
            IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Self {
                    network: IpAddr::V4(v4),
                    prefix_len: prefix_len - 96,
                },
                None => Self {
                    network,
                    prefix_len,
                },
            },
            _ => Self {
                network,
                prefix_len,
            },
        };
        if cidr.masked(cidr.network) != Some(cidr.network) {
            return Err(InvalidCidr::HostBitsSet);
        }
        Ok(cidr)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits that name the network.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, which a
    /// dual-stack listener reports for IPv4 clients) are compared as the IPv4 address they are.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.masked(ip.to_canonical()) == Some(self.network)
    }

    /// `ip` with the bits past the prefix cleared, when it is of this network's family.
    fn masked(&self, ip: IpAddr) -> Option<IpAddr> {
        let host_bits = |width: u32| width - u32::from(self.prefix_len);
        match ip {
            IpAddr::V4(v4) if self.network.is_ipv4() => {
                let mask = u32::MAX.checked_shl(host_bits(32)).unwrap_or(0);
                Some(IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask)))
            }
            IpAddr::V6(v6) if self.network.is_ipv6() => {
                let mask = u128::MAX.checked_shl(host_bits(128)).unwrap_or(0);
                Some(IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Cidr {
    type Error = InvalidCidr;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Conditions: time windows
// ---------------------------------------------------------------------------------------------

/// Why a time window was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTimeWindow {
    #[error("time_window times must be HH:MM, from 00:00 to 23:59")]
    Time,
    #[error(
        "time_window timezone must be UTC or a fixed offset such as +02:00 or -05:30; named time zones such as Europe/Paris are not supported"
    )]
    UnsupportedTimezone,
    #[error("time_window after and before must differ")]
    Empty,
}

/// A time of day to the minute, `HH:MM` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "09:00")]
pub struct ClockTime(u16);

impl ClockTime {
    /// Parses exactly `HH:MM` (24-hour clock, two digits each).
    pub fn parse(text: &str) -> Result<Self, InvalidTimeWindow> {
        let (hours, minutes) = two_digit_pair(text).ok_or(InvalidTimeWindow::Time)?;
        if hours > 23 || minutes > 59 {
            return Err(InvalidTimeWindow::Time);
        }
        Ok(Self(hours * 60 + minutes))
    }

    /// Minutes since midnight, `0..1440`.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl TryFrom<String> for ClockTime {
    type Error = InvalidTimeWindow;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The time zone of a window: `UTC` (or `Etc/UTC`) or a fixed offset from it, `+02:00` or
/// `-05:30`, up to `±23:59`.
///
/// Named zones such as `Europe/Paris` are refused rather than guessed at: their offsets
/// change with daylight saving and with law, which needs a time zone database, and the core
/// carries none (it would weigh on the Worker's size). A window meant to follow daylight
/// saving has to be written with the offset in force and updated when it changes.
// No `ToSchema` derive, as for `Cidr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Timezone {
    /// As given, so a client reads back what it wrote.
    text: String,
    offset_minutes: i16,
}

impl Timezone {
    /// Parses `UTC`, `Etc/UTC`, `+HH:MM` or `-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, InvalidTimeWindow> {
        let offset_minutes = match text {
            "UTC" | "Etc/UTC" => 0,
            _ => {
                let (sign, rest) = match text.split_at_checked(1) {
                    Some(("+", rest)) => (1, rest),
                    Some(("-", rest)) => (-1, rest),
                    _ => return Err(InvalidTimeWindow::UnsupportedTimezone),
                };
                let (hours, minutes) =
                    two_digit_pair(rest).ok_or(InvalidTimeWindow::UnsupportedTimezone)?;
                if hours > 23 || minutes > 59 {
                    return Err(InvalidTimeWindow::UnsupportedTimezone);
                }
                // At most 23 * 60 + 59 = 1439: fits an i16.
                sign * i16::try_from(hours * 60 + minutes)
                    .map_err(|_| InvalidTimeWindow::UnsupportedTimezone)?
            }
        };
        Ok(Self {
            text: text.to_owned(),
            offset_minutes,
        })
    }

    /// The zone's text, as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Minutes east of UTC.
    pub fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }
}

impl TryFrom<String> for Timezone {
    type Error = InvalidTimeWindow;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl Serialize for Timezone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// `HH:MM` as two numbers, digits only.
fn two_digit_pair(text: &str) -> Option<(u16, u16)> {
    let (hours, minutes) = text.split_once(':')?;
    let number = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    Some((number(hours)?, number(minutes)?))
}

/// The times of day a policy applies, in one zone: from `after` (included) to `before`
/// (excluded), to the minute. When `after` is later than `before` the window wraps midnight:
/// `22:00`-`06:00` is the night. `after == before` is refused, as it is ambiguous between
/// never and always.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "TimeWindowFields")]
pub struct TimeWindow {
    after: ClockTime,
    before: ClockTime,
    #[schema(value_type = String, example = "+02:00")]
    timezone: Timezone,
}

/// What a time window is read from, before `after != before` is checked.
#[derive(Deserialize)]
struct TimeWindowFields {
    after: ClockTime,
    before: ClockTime,
    timezone: Timezone,
}

impl TryFrom<TimeWindowFields> for TimeWindow {
    type Error = InvalidTimeWindow;

    fn try_from(fields: TimeWindowFields) -> Result<Self, Self::Error> {
        Self::new(fields.after, fields.before, fields.timezone)
    }
}

impl TimeWindow {
    /// A window from its parts.
    pub fn new(
        after: ClockTime,
        before: ClockTime,
        timezone: Timezone,
    ) -> Result<Self, InvalidTimeWindow> {
        if after == before {
            return Err(InvalidTimeWindow::Empty);
        }
        Ok(Self {
            after,
            before,
            timezone,
        })
    }

    /// Parses a window from its three wire strings.
    pub fn parse(after: &str, before: &str, timezone: &str) -> Result<Self, InvalidTimeWindow> {
        Self::new(
            ClockTime::parse(after)?,
            ClockTime::parse(before)?,
            Timezone::parse(timezone)?,
        )
    }

    /// Start of the window (included).
    pub fn after(&self) -> ClockTime {
        self.after
    }

    /// End of the window (excluded).
    pub fn before(&self) -> ClockTime {
        self.before
    }

    /// The zone the times are in.
    pub fn timezone(&self) -> &Timezone {
        &self.timezone
    }

    /// Whether the instant `now_unix` (seconds since the epoch) falls in the window.
    pub fn contains(&self, now_unix: i64) -> bool {
        let offset_seconds = i64::from(self.timezone.offset_minutes) * 60;
        let seconds_of_day = now_unix.saturating_add(offset_seconds).rem_euclid(86_400);
        let minute = seconds_of_day / 60;
        let (after, before) = (i64::from(self.after.0), i64::from(self.before.0));
        if after < before {
            after <= minute && minute < before
        } else {
            minute >= after || minute < before
        }
    }
}

/// Extra requirements a request must meet for a policy to apply. All present ones must hold.
///
/// Unknown keys are refused rather than ignored: a condition the client believes it set but
/// the server does not check would make an allow policy wider than its author meant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The request must come from one of these networks. An empty list admits nothing, and
    /// neither does a request whose client IP is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    pub ip_allowlist: Option<Vec<Cidr>>,
    /// The request must come in during this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
}

impl Conditions {
    /// Whether every condition set holds for this request; `true` when none is set.
    pub fn hold(&self, ctx: &RequestContext) -> bool {
        let ip_ok = self.ip_allowlist.as_ref().is_none_or(|allowlist| {
            ctx.client_ip
                .is_some_and(|ip| allowlist.iter().any(|cidr| cidr.contains(ip)))
        });
        let time_ok = self
            .time_window
            .as_ref()
            .is_none_or(|window| window.contains(ctx.now_unix));
        ip_ok && time_ok
    }

    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.ip_allowlist.is_none() && self.time_window.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// Policies and their evaluation
// ---------------------------------------------------------------------------------------------

/// One access policy, as evaluated. Whose it is (principal, vault) is implied by the caller,
/// which passes [`evaluate`] only the policies of one principal on one vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyId,
    pub pattern: PathPattern,
    pub permissions: Vec<Permission>,
    pub effect: Effect,
    /// Higher first. Decides which policy a decision reports, never allow against deny.
    pub priority: i32,
    pub conditions: Conditions,
    /// Unix seconds; the policy stops applying at this instant.
    pub expires_at: Option<i64>,
}

impl Policy {
    /// Whether this policy has a say on this request: not expired, its pattern matches the
    /// path, it lists the permission, and its conditions hold.
    pub fn applies(&self, path: &SecretPath, permission: Permission, ctx: &RequestContext) -> bool {
        self.expires_at.is_none_or(|at| at > ctx.now_unix)
            && self.permissions.contains(&permission)
            && self.pattern.matches(path)
            && self.conditions.hold(ctx)
    }

    /// Whether this policy is reported ahead of `other`: higher priority, then smaller id, so
    /// the answer does not depend on the order policies were loaded in.
    fn ranks_before(&self, other: &Self) -> bool {
        (Reverse(self.priority), self.id) < (Reverse(other.priority), other.id)
    }
}

/// What is known about a request beyond its path and permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// The time of the request, unix seconds.
    pub now_unix: i64,
    /// The client's address as the edge saw it; `None` fails every IP allowlist.
    pub client_ip: Option<IpAddr>,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some allow policy applies and no deny does; `policy` is the highest-ranked allow.
    Allow { policy: PolicyId },
    /// A deny policy applies (`Some`, the highest-ranked one), or nothing does (`None`).
    Deny { policy: Option<PolicyId> },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

/// Evaluates the policies that apply to ONE principal on ONE vault.
///
/// Denied unless some policy allows; any applicable deny beats every applicable allow,
/// whatever the priorities. See the module docs for when a policy applies.
pub fn evaluate(
    policies: &[Policy],
    path: &SecretPath,
    permission: Permission,
    ctx: &RequestContext,
) -> Decision {
    let mut best_allow: Option<&Policy> = None;
    let mut best_deny: Option<&Policy> = None;
    for policy in policies
        .iter()
        .filter(|policy| policy.applies(path, permission, ctx))
    {
        let best = match policy.effect {
            Effect::Allow => &mut best_allow,
            Effect::Deny => &mut best_deny,
        };
        if best.is_none_or(|current| policy.ranks_before(current)) {
            *best = Some(policy);
        }
    }
    match (best_deny, best_allow) {
        (Some(deny), _) => Decision::Deny {
            policy: Some(deny.id),
        },
        (None, Some(allow)) => Decision::Allow { policy: allow.id },
        (None, None) => Decision::Deny { policy: None },
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

/// The kind of principal a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalType {
    User,
    Agent,
}

impl PrincipalType {
    /// The wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
        }
    }
}

/// `null` reads as the default, like a missing field: clients send either for "not set".
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `POST /v1/vaults/{vault_id}/policies`. Unknown fields (1Claw's `tx_conditions`,
/// `policy_schema_version`, ... and any server-owned field such as `id` or `created_by`) are
/// ignored; unknown keys inside `conditions` are refused (see [`Conditions`]).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreatePolicyRequest {
    pub principal_type: PrincipalType,
    pub principal_id: Uuid,
    pub secret_path_pattern: PathPattern,
    pub permissions: Vec<Permission>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub effect: Effect,
    /// 1Claw documents a minimum of 0.
    #[serde(default, deserialize_with = "null_as_default")]
    pub priority: i32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub conditions: Conditions,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PUT /v1/vaults/{vault_id}/policies/{policy_id}`: absent (or `null`) fields stay as they
/// are. The pattern and the principal of a policy never change; replace the policy instead.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdatePolicyRequest {
    #[serde(default)]
    pub permissions: Option<Vec<Permission>>,
    #[serde(default)]
    pub conditions: Option<Conditions>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub effect: Option<Effect>,
    #[serde(default)]
    pub priority: Option<i32>,
}

/// A policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyResponse {
    pub id: PolicyId,
    pub vault_id: VaultId,
    pub principal_type: PrincipalType,
    pub principal_id: Uuid,
    pub secret_path_pattern: PathPattern,
    pub permissions: Vec<Permission>,
    pub effect: Effect,
    pub priority: i32,
    pub conditions: Conditions,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user who made the policy; `None` once that user is gone.
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/vaults/{vault_id}/policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyListResponse {
    pub policies: Vec<PolicyResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// 2026-03-02 (a Monday) at 00:00:00 UTC.
    const MIDNIGHT: i64 = 1_772_409_600;

    fn at(hours: i64, minutes: i64) -> i64 {
        MIDNIGHT + hours * 3600 + minutes * 60
    }

    fn path(text: &str) -> SecretPath {
        SecretPath::parse(text).unwrap()
    }

    fn pattern(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap()
    }

    fn id(n: u128) -> PolicyId {
        PolicyId::from_uuid(Uuid::from_u128(n))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn ctx() -> RequestContext {
        RequestContext {
            now_unix: at(12, 0),
            client_ip: Some(ip("192.0.2.10")),
        }
    }

    fn allow(n: u128, glob: &str, permissions: &[Permission]) -> Policy {
        Policy {
            id: id(n),
            pattern: pattern(glob),
            permissions: permissions.to_vec(),
            effect: Effect::Allow,
            priority: 0,
            conditions: Conditions::default(),
            expires_at: None,
        }
    }

    fn deny(n: u128, glob: &str, permissions: &[Permission]) -> Policy {
        Policy {
            effect: Effect::Deny,
            ..allow(n, glob, permissions)
        }
    }

    fn window(after: &str, before: &str, timezone: &str) -> TimeWindow {
        TimeWindow::parse(after, before, timezone).unwrap()
    }

    // --- patterns ------------------------------------------------------------------------

    #[test]
    fn a_single_star_matches_exactly_one_segment() {
        let glob = pattern("db/*");
        assert!(glob.matches(&path("db/x")));
        assert!(!glob.matches(&path("db")));
        assert!(!glob.matches(&path("db/x/y")));
        assert!(!glob.matches(&path("other/x")));
        assert!(pattern("*/password").matches(&path("prod/password")));
        assert!(!pattern("*/password").matches(&path("a/prod/password")));
    }

    #[test]
    fn a_double_star_matches_zero_or_more_segments() {
        let glob = pattern("db/**");
        assert!(glob.matches(&path("db")));
        assert!(glob.matches(&path("db/x")));
        assert!(glob.matches(&path("db/x/y/z")));
        assert!(!glob.matches(&path("dbx/y")));
        assert!(!glob.matches(&path("other/db/x")));
        assert!(pattern("**").matches(&path("any/thing")));
        assert!(pattern("**/key").matches(&path("key")));
        assert!(pattern("**/key").matches(&path("a/b/key")));
        assert!(!pattern("**/key").matches(&path("a/b/key/x")));
        assert!(pattern("a/**/z").matches(&path("a/z")));
        assert!(pattern("a/**/z").matches(&path("a/b/c/z")));
        assert!(!pattern("a/**/z").matches(&path("a/b/c/y")));
    }

    #[test]
    fn literal_segments_match_case_sensitively_and_whole() {
        assert!(pattern("db/password").matches(&path("db/password")));
        assert!(!pattern("db/password").matches(&path("DB/password")));
        assert!(!pattern("db/password").matches(&path("db/password2")));
        assert!(!pattern("db/pass").matches(&path("db/password")));
    }

    #[test]
    fn wildcards_must_be_whole_segments() {
        for bad in ["a*", "*a", "a*b", "***", "db/x*", "db/**x"] {
            assert_eq!(
                PathPattern::parse(bad),
                Err(InvalidPathPattern::PartialWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn patterns_refuse_the_same_tricks_as_paths() {
        use InvalidPathPattern as E;
        assert_eq!(PathPattern::parse(""), Err(E::Empty));
        assert_eq!(PathPattern::parse("/db/*"), Err(E::LeadingSlash));
        assert_eq!(PathPattern::parse("db/"), Err(E::TrailingSlash));
        assert_eq!(PathPattern::parse("db//x"), Err(E::EmptySegment));
        assert_eq!(PathPattern::parse("db/../*"), Err(E::DotSegment));
        assert_eq!(PathPattern::parse("./*"), Err(E::DotSegment));
        assert_eq!(PathPattern::parse("db%2F*"), Err(E::PercentSign));
        assert_eq!(PathPattern::parse("db/?"), Err(E::BadCharacter));
        assert_eq!(PathPattern::parse(&"a".repeat(513)), Err(E::TooLong));
        assert!(PathPattern::parse(&"a".repeat(512)).is_ok());
    }

    #[test]
    fn many_double_stars_on_a_long_path_finish_at_once() {
        // 170 `**` segments and a 256-segment path: a backtracking matcher tries a number of
        // splits exponential in that, a dynamic programme about 44,000 steps.
        let glob = pattern(&format!("{}z", "**/".repeat(170)));
        let miss = path(&format!("{}b", "a/".repeat(255)));
        let hit = path(&format!("{}z", "a/".repeat(255)));
        let started = Instant::now();
        assert!(!glob.matches(&miss));
        assert!(glob.matches(&hit));
        let alternating = pattern(&format!("{}z", "**/a/".repeat(100)));
        assert!(!alternating.matches(&miss));
        // Generous: this is microseconds, even unoptimised on a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_pattern_is_a_plain_string_on_the_wire_and_is_checked_when_read() {
        let glob: PathPattern = serde_json::from_str("\"db/**\"").unwrap();
        assert_eq!(glob.as_str(), "db/**");
        assert_eq!(serde_json::to_string(&glob).unwrap(), "\"db/**\"");
        assert!(glob.has_wildcards());
        assert!(!pattern("db/x").has_wildcards());
        assert!(serde_json::from_str::<PathPattern>("\"db/a*\"").is_err());
    }

    // --- CIDRs ----------------------------------------------------------------------------

    #[test]
    fn an_ipv4_block_contains_exactly_its_addresses() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.0.0")));
        assert!(block.contains(ip("10.1.255.255")));
        assert!(!block.contains(ip("10.2.0.0")));
        assert!(!block.contains(ip("10.0.255.255")));
        assert!(!block.contains(ip("::1")));
        assert_eq!(block.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn an_ipv6_block_contains_exactly_its_addresses() {
        let block = Cidr::parse("2001:db8::/32").unwrap();
        assert!(block.contains(ip("2001:db8::1")));
        assert!(block.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!block.contains(ip("2001:db9::")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert_eq!(block.prefix_len(), 32);
    }

    #[test]
    fn a_bare_address_is_a_block_of_one() {
        let v4 = Cidr::parse("192.0.2.10").unwrap();
        assert_eq!(v4.to_string(), "192.0.2.10/32");
        assert!(v4.contains(ip("192.0.2.10")));
        assert!(!v4.contains(ip("192.0.2.11")));
        let v6 = Cidr::parse("2001:db8::10").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::10/128");
        assert!(!v6.contains(ip("2001:db8::11")));
    }

    #[test]
    fn zero_length_prefixes_contain_their_whole_family() {
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
        assert!(
            !Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_mapped_clients_and_blocks_are_treated_as_ipv4() {
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("::ffff:10.9.8.7")));
        assert!(!block.contains(ip("::ffff:11.0.0.1")));
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, block);
    }

    #[test]
    fn malformed_blocks_and_blocks_with_host_bits_are_refused() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/08x",
            "10.0.0/8",
            "010.0.0.0/8",
            "example.com",
            "10.0.0.0/8/8",
            "fe80::1%eth0/64",
            "10.0.0.0/0008",
        ] {
            assert_eq!(Cidr::parse(bad), Err(InvalidCidr::Shape), "{bad:?}");
        }
        assert_eq!(Cidr::parse("10.1.2.3/8"), Err(InvalidCidr::HostBitsSet));
        assert_eq!(Cidr::parse("2001:db8::1/32"), Err(InvalidCidr::HostBitsSet));
    }

    // --- time windows ---------------------------------------------------------------------

    #[test]
    fn a_window_includes_its_start_and_excludes_its_end() {
        let office = window("09:00", "17:00", "UTC");
        assert!(!office.contains(at(8, 59) + 59));
        assert!(office.contains(at(9, 0)));
        assert!(office.contains(at(16, 59) + 59));
        assert!(!office.contains(at(17, 0)));
        assert!(!office.contains(at(23, 0)));
    }

    #[test]
    fn a_window_whose_start_is_after_its_end_wraps_midnight() {
        let night = window("22:00", "06:00", "UTC");
        assert!(night.contains(at(22, 0)));
        assert!(night.contains(at(23, 59)));
        assert!(night.contains(at(0, 0)));
        assert!(night.contains(at(5, 59)));
        assert!(!night.contains(at(6, 0)));
        assert!(!night.contains(at(12, 0)));
        assert!(!night.contains(at(21, 59)));
    }

    #[test]
    fn a_window_is_read_in_its_own_fixed_offset() {
        // 09:00-17:00 at +02:00 is 07:00-15:00 UTC.
        let paris_summer = window("09:00", "17:00", "+02:00");
        assert!(!paris_summer.contains(at(6, 59)));
        assert!(paris_summer.contains(at(7, 0)));
        assert!(paris_summer.contains(at(14, 59)));
        assert!(!paris_summer.contains(at(15, 0)));
        // 09:00-17:00 at -05:30 is 14:30-22:30 UTC.
        let west = window("09:00", "17:00", "-05:30");
        assert!(!west.contains(at(14, 29)));
        assert!(west.contains(at(14, 30)));
        assert!(west.contains(at(22, 29)));
        assert!(!west.contains(at(22, 30)));
        // The offset can move the window across UTC midnight: 01:00-03:00 at +05:00 is
        // 20:00-22:00 UTC the day before.
        let east = window("01:00", "03:00", "+05:00");
        assert!(east.contains(at(20, 0)));
        assert!(!east.contains(at(1, 0)));
    }

    #[test]
    fn etc_utc_is_utc_and_instants_before_1970_still_work() {
        let office = window("09:00", "17:00", "Etc/UTC");
        assert_eq!(office.timezone().offset_minutes(), 0);
        assert!(office.contains(-86_400 + 10 * 3600));
        assert!(!office.contains(-86_400 + 20 * 3600));
        // The extremes neither overflow nor panic, whatever the offset.
        for zone in ["UTC", "+23:59", "-23:59"] {
            let wide = window("00:00", "23:59", zone);
            let _ = (wide.contains(i64::MIN), wide.contains(i64::MAX));
        }
    }

    #[test]
    fn named_time_zones_other_than_utc_are_refused_with_a_clear_error() {
        for zone in [
            "Europe/Paris",
            "America/New_York",
            "CET",
            "GMT",
            "utc",
            "Z",
            "+2",
            "+02",
            "+0200",
            "+24:00",
            "+02:60",
            " +02:00",
        ] {
            assert_eq!(
                Timezone::parse(zone),
                Err(InvalidTimeWindow::UnsupportedTimezone),
                "{zone:?}"
            );
        }
        let message = InvalidTimeWindow::UnsupportedTimezone.to_string();
        assert!(message.contains("UTC") && message.contains("+02:00"));
        assert!(message.contains("not supported"));
    }

    #[test]
    fn clock_times_are_exactly_hh_mm() {
        assert_eq!(ClockTime::parse("00:00").unwrap().minutes(), 0);
        assert_eq!(ClockTime::parse("23:59").unwrap().minutes(), 1439);
        for bad in [
            "24:00", "12:60", "9:00", "09:0", "0900", "09:00:00", "+9:00", "aa:bb", "",
        ] {
            assert_eq!(
                ClockTime::parse(bad),
                Err(InvalidTimeWindow::Time),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_window_that_starts_where_it_ends_is_refused() {
        assert_eq!(
            TimeWindow::parse("09:00", "09:00", "UTC"),
            Err(InvalidTimeWindow::Empty)
        );
    }

    #[test]
    fn a_window_reads_and_writes_its_three_strings() {
        let json = r#"{"after":"22:00","before":"06:30","timezone":"-05:30"}"#;
        let parsed: TimeWindow = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, window("22:00", "06:30", "-05:30"));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
        assert!(
            serde_json::from_str::<TimeWindow>(
                r#"{"after":"09:00","before":"09:00","timezone":"UTC"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<TimeWindow>(
                r#"{"after":"09:00","before":"10:00","timezone":"Europe/Berlin"}"#
            )
            .is_err()
        );
    }

    // --- conditions -----------------------------------------------------------------------

    #[test]
    fn no_conditions_always_hold() {
        assert!(Conditions::default().hold(&ctx()));
        assert!(Conditions::default().is_empty());
        let anonymous = RequestContext {
            client_ip: None,
            ..ctx()
        };
        assert!(Conditions::default().hold(&anonymous));
    }

    #[test]
    fn an_ip_allowlist_holds_only_for_clients_in_one_of_its_blocks() {
        let conditions = Conditions {
            ip_allowlist: Some(vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("2001:db8::/32").unwrap(),
            ]),
            time_window: None,
        };
        let from = |client: &str| RequestContext {
            client_ip: Some(ip(client)),
            ..ctx()
        };
        assert!(conditions.hold(&from("10.20.30.40")));
        assert!(conditions.hold(&from("2001:db8::abcd")));
        assert!(conditions.hold(&from("::ffff:10.0.0.1")));
        assert!(!conditions.hold(&from("192.0.2.10")));
        assert!(!conditions.hold(&from("2001:db9::1")));
    }

    #[test]
    fn an_ip_allowlist_fails_when_the_client_ip_is_unknown_or_the_list_is_empty() {
        let listed = Conditions {
            ip_allowlist: Some(vec![Cidr::parse("0.0.0.0/0").unwrap()]),
            time_window: None,
        };
        let anonymous = RequestContext {
            client_ip: None,
            ..ctx()
        };
        assert!(!listed.hold(&anonymous));
        let empty = Conditions {
            ip_allowlist: Some(Vec::new()),
            time_window: None,
        };
        assert!(!empty.hold(&ctx()));
    }

    #[test]
    fn every_condition_must_hold_at_once() {
        let conditions = Conditions {
            ip_allowlist: Some(vec![Cidr::parse("192.0.2.0/24").unwrap()]),
            time_window: Some(window("09:00", "17:00", "UTC")),
        };
        assert!(conditions.hold(&ctx()));
        let late = RequestContext {
            now_unix: at(18, 0),
            ..ctx()
        };
        assert!(!conditions.hold(&late));
        let elsewhere = RequestContext {
            client_ip: Some(ip("198.51.100.1")),
            ..ctx()
        };
        assert!(!conditions.hold(&elsewhere));
    }

    #[test]
    fn unknown_condition_keys_are_refused_rather_than_ignored() {
        assert!(serde_json::from_str::<Conditions>(r#"{"require_mfa":true}"#).is_err());
        assert!(
            serde_json::from_str::<Conditions>(r#"{"ip_allowlist":["10.0.0.0/8"],"x":1}"#).is_err()
        );
        let empty: Conditions = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert!(serde_json::from_str::<Conditions>(r#"{"ip_allowlist":["10.1.2.3/8"]}"#).is_err());
    }

    // --- evaluation -----------------------------------------------------------------------

    #[test]
    fn nothing_is_allowed_without_a_policy() {
        assert_eq!(
            evaluate(&[], &path("db/x"), Permission::Read, &ctx()),
            Decision::Deny { policy: None }
        );
    }

    #[test]
    fn a_matching_allow_grants_only_the_permissions_it_lists() {
        let policies = [allow(1, "db/*", &[Permission::Read, Permission::Write])];
        let decide = |p: &str, permission| evaluate(&policies, &path(p), permission, &ctx());
        assert_eq!(
            decide("db/x", Permission::Read),
            Decision::Allow { policy: id(1) }
        );
        assert_eq!(
            decide("db/x", Permission::Write),
            Decision::Allow { policy: id(1) }
        );
        assert_eq!(
            decide("db/x", Permission::Delete),
            Decision::Deny { policy: None }
        );
        assert_eq!(
            decide("db/x/y", Permission::Read),
            Decision::Deny { policy: None }
        );
        assert_eq!(
            decide("DB/x", Permission::Read),
            Decision::Deny { policy: None }
        );
        assert!(decide("db/x", Permission::Read).is_allowed());
        assert!(!decide("db/x", Permission::Share).is_allowed());
    }

    #[test]
    fn a_deny_beats_every_allow_whatever_the_priorities() {
        let mut favoured = allow(1, "**", &Permission::ALL);
        favoured.priority = i32::MAX;
        let mut lowly = deny(2, "db/secret", &[Permission::Read]);
        lowly.priority = i32::MIN;
        let policies = [favoured, lowly];
        assert_eq!(
            evaluate(&policies, &path("db/secret"), Permission::Read, &ctx()),
            Decision::Deny {
                policy: Some(id(2))
            }
        );
        // The deny says nothing about other permissions or paths.
        assert_eq!(
            evaluate(&policies, &path("db/secret"), Permission::Write, &ctx()),
            Decision::Allow { policy: id(1) }
        );
        assert_eq!(
            evaluate(&policies, &path("db/other"), Permission::Read, &ctx()),
            Decision::Allow { policy: id(1) }
        );
    }

    #[test]
    fn the_highest_priority_allow_is_reported_and_ties_go_to_the_smallest_id() {
        let mut low = allow(1, "**", &[Permission::Read]);
        low.priority = 1;
        let mut high_b = allow(9, "db/*", &[Permission::Read]);
        high_b.priority = 5;
        let mut high_a = allow(3, "db/**", &[Permission::Read]);
        high_a.priority = 5;
        for policies in [
            vec![low.clone(), high_b.clone(), high_a.clone()],
            vec![high_a.clone(), high_b.clone(), low.clone()],
            vec![high_b.clone(), low.clone(), high_a.clone()],
        ] {
            assert_eq!(
                evaluate(&policies, &path("db/x"), Permission::Read, &ctx()),
                Decision::Allow { policy: id(3) }
            );
        }
    }

    #[test]
    fn the_reported_deny_is_chosen_by_the_same_ranking() {
        let mut first = deny(7, "**", &[Permission::Read]);
        first.priority = 2;
        let mut second = deny(4, "db/*", &[Permission::Read]);
        second.priority = 2;
        let third = deny(1, "db/x", &[Permission::Read]);
        let policies = [first, second, third, allow(0, "**", &[Permission::Read])];
        assert_eq!(
            evaluate(&policies, &path("db/x"), Permission::Read, &ctx()),
            Decision::Deny {
                policy: Some(id(4))
            }
        );
    }

    #[test]
    fn an_expired_policy_no_longer_applies_from_its_expiry_on() {
        let mut grant = allow(1, "db/*", &[Permission::Read]);
        grant.expires_at = Some(ctx().now_unix + 1);
        let decide = |policies: &[Policy], now_unix| {
            let ctx = RequestContext { now_unix, ..ctx() };
            evaluate(policies, &path("db/x"), Permission::Read, &ctx)
        };
        let now = ctx().now_unix;
        assert!(decide(std::slice::from_ref(&grant), now).is_allowed());
        assert_eq!(
            decide(std::slice::from_ref(&grant), now + 1),
            Decision::Deny { policy: None }
        );
        assert_eq!(
            decide(std::slice::from_ref(&grant), now + 2),
            Decision::Deny { policy: None }
        );
        // An expired deny stops denying too.
        let mut block = deny(2, "db/*", &[Permission::Read]);
        block.expires_at = Some(now);
        let open = allow(3, "**", &[Permission::Read]);
        assert_eq!(
            decide(&[block.clone(), open.clone()], now),
            Decision::Allow { policy: id(3) }
        );
        assert_eq!(
            decide(&[block, open], now - 1),
            Decision::Deny {
                policy: Some(id(2))
            }
        );
    }

    #[test]
    fn an_allow_whose_ip_allowlist_fails_grants_nothing() {
        let mut grant = allow(1, "db/*", &[Permission::Read]);
        grant.conditions.ip_allowlist = Some(vec![Cidr::parse("2001:db8::/32").unwrap()]);
        let policies = [grant];
        let from = |client_ip| RequestContext { client_ip, ..ctx() };
        let decide = |ctx| evaluate(&policies, &path("db/x"), Permission::Read, &ctx);
        assert!(decide(from(Some(ip("2001:db8::5")))).is_allowed());
        assert_eq!(
            decide(from(Some(ip("192.0.2.10")))),
            Decision::Deny { policy: None }
        );
        assert_eq!(decide(from(None)), Decision::Deny { policy: None });
    }

    #[test]
    fn an_allow_outside_its_time_window_grants_nothing() {
        let mut grant = allow(1, "db/*", &[Permission::Read]);
        grant.conditions.time_window = Some(window("22:00", "06:00", "+01:00"));
        let policies = [grant];
        let decide = |now_unix| {
            let ctx = RequestContext { now_unix, ..ctx() };
            evaluate(&policies, &path("db/x"), Permission::Read, &ctx)
        };
        // 22:00-06:00 at +01:00 is 21:00-05:00 UTC.
        assert!(decide(at(21, 0)).is_allowed());
        assert!(decide(at(4, 59)).is_allowed());
        assert!(!decide(at(5, 0)).is_allowed());
        assert!(!decide(at(12, 0)).is_allowed());
    }

    #[test]
    fn a_deny_applies_only_where_its_own_conditions_hold() {
        let mut block = deny(1, "**", &[Permission::Read]);
        block.conditions.ip_allowlist = Some(vec![Cidr::parse("198.51.100.0/24").unwrap()]);
        let policies = [block, allow(2, "**", &[Permission::Read])];
        let from = |client: &str| RequestContext {
            client_ip: Some(ip(client)),
            ..ctx()
        };
        assert_eq!(
            evaluate(
                &policies,
                &path("x"),
                Permission::Read,
                &from("198.51.100.7")
            ),
            Decision::Deny {
                policy: Some(id(1))
            }
        );
        assert_eq!(
            evaluate(&policies, &path("x"), Permission::Read, &from("192.0.2.1")),
            Decision::Allow { policy: id(2) }
        );
    }

    // --- wire types -----------------------------------------------------------------------

    #[test]
    fn a_create_request_as_the_official_sdk_sends_it_is_read_with_defaults() {
        let json = r#"{
            "principal_type": "agent",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "prod/**",
            "permissions": ["read"],
            "tx_conditions": null,
            "policy_schema_version": 2
        }"#;
        let request: CreatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.principal_type, PrincipalType::Agent);
        assert_eq!(request.secret_path_pattern, pattern("prod/**"));
        assert_eq!(request.permissions, [Permission::Read]);
        assert_eq!(request.effect, Effect::Allow);
        assert_eq!(request.priority, 0);
        assert!(request.conditions.is_empty());
        assert_eq!(request.expires_at, None);
    }

    #[test]
    fn a_create_request_reads_every_optional_field_and_takes_null_as_unset() {
        let json = r#"{
            "principal_type": "user",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "db/*",
            "permissions": ["read", "write", "delete", "rotate", "share"],
            "effect": "deny",
            "priority": 7,
            "conditions": {
                "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"],
                "time_window": {"after": "09:00", "before": "17:00", "timezone": "+02:00"}
            },
            "expires_at": "2030-01-02T03:04:05Z"
        }"#;
        let request: CreatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.permissions, Permission::ALL);
        assert_eq!(request.effect, Effect::Deny);
        assert_eq!(request.priority, 7);
        assert_eq!(
            request.conditions.ip_allowlist.as_ref().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            request.conditions.time_window,
            Some(window("09:00", "17:00", "+02:00"))
        );
        assert_eq!(
            request.expires_at.map(|at| at.timestamp()),
            Some(1_893_553_445)
        );

        let nulls = r#"{
            "principal_type": "user",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "db/*",
            "permissions": [],
            "effect": null, "priority": null, "conditions": null, "expires_at": null
        }"#;
        let request: CreatePolicyRequest = serde_json::from_str(nulls).unwrap();
        assert_eq!(request.effect, Effect::Allow);
        assert_eq!(request.priority, 0);
        assert!(request.conditions.is_empty());
    }

    #[test]
    fn server_owned_fields_in_a_create_request_are_ignored() {
        let json = r#"{
            "id": "00000000-0000-0000-0000-000000000001",
            "vault_id": "00000000-0000-0000-0000-000000000002",
            "created_by": "00000000-0000-0000-0000-000000000003",
            "created_at": "2020-01-01T00:00:00Z",
            "principal_type": "user",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "db/*",
            "permissions": ["read"]
        }"#;
        // The type has no such fields, so nothing a client sends can set them.
        let request: CreatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.secret_path_pattern.as_str(), "db/*");
        let update: UpdatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(update.permissions, Some(vec![Permission::Read]));
    }

    #[test]
    fn bad_patterns_permissions_principals_and_conditions_make_a_create_request_fail() {
        let body = |pattern: &str, permissions: &str, principal: &str, conditions: &str| {
            format!(
                r#"{{"principal_type": "{principal}",
                    "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
                    "secret_path_pattern": "{pattern}", "permissions": {permissions},
                    "conditions": {conditions}}}"#
            )
        };
        let ok = body("db/*", r#"["read"]"#, "user", "{}");
        assert!(serde_json::from_str::<CreatePolicyRequest>(&ok).is_ok());
        for bad in [
            body("db/../*", r#"["read"]"#, "user", "{}"),
            body("db/a*", r#"["read"]"#, "user", "{}"),
            body("db/*", r#"["admin"]"#, "user", "{}"),
            body("db/*", r#"["READ"]"#, "user", "{}"),
            body("db/*", r#"["read"]"#, "org", "{}"),
            body(
                "db/*",
                r#"["read"]"#,
                "user",
                r#"{"ip_allowlist": ["nope"]}"#,
            ),
            body("db/*", r#"["read"]"#, "user", r#"{"mfa": true}"#),
        ] {
            assert!(
                serde_json::from_str::<CreatePolicyRequest>(&bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_empty_update_changes_nothing() {
        let update: UpdatePolicyRequest = serde_json::from_str("{}").unwrap();
        assert!(update.permissions.is_none());
        assert!(update.conditions.is_none());
        assert!(update.expires_at.is_none());
        assert!(update.effect.is_none());
        assert!(update.priority.is_none());
        let update: UpdatePolicyRequest =
            serde_json::from_str(r#"{"effect": "deny", "priority": 3}"#).unwrap();
        assert_eq!(update.effect, Some(Effect::Deny));
        assert_eq!(update.priority, Some(3));
    }

    #[test]
    fn a_policy_response_has_1claw_field_names() {
        let response = PolicyResponse {
            id: id(1),
            vault_id: VaultId::from_uuid(Uuid::from_u128(2)),
            principal_type: PrincipalType::Agent,
            principal_id: Uuid::from_u128(3),
            secret_path_pattern: pattern("db/**"),
            permissions: vec![Permission::Read, Permission::Rotate],
            effect: Effect::Allow,
            priority: 0,
            conditions: Conditions::default(),
            expires_at: None,
            created_by: Some(UserId::from_uuid(Uuid::from_u128(4))),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let value = serde_json::to_value(PolicyListResponse {
            policies: vec![response.clone()],
            next_cursor: None,
        })
        .unwrap();
        assert!(value["next_cursor"].is_null(), "{value}");
        let policy = &value["policies"][0];
        assert_eq!(policy["id"], "00000000-0000-0000-0000-000000000001");
        assert_eq!(policy["vault_id"], "00000000-0000-0000-0000-000000000002");
        assert_eq!(policy["principal_type"], "agent");
        assert_eq!(
            policy["principal_id"],
            "00000000-0000-0000-0000-000000000003"
        );
        assert_eq!(policy["secret_path_pattern"], "db/**");
        assert_eq!(policy["permissions"], serde_json::json!(["read", "rotate"]));
        assert_eq!(policy["effect"], "allow");
        assert_eq!(policy["priority"], 0);
        assert_eq!(policy["conditions"], serde_json::json!({}));
        assert!(policy["expires_at"].is_null());
        assert_eq!(policy["created_by"], "00000000-0000-0000-0000-000000000004");
        assert_eq!(policy["created_at"], "2023-11-14T22:13:20Z");
        let back: PolicyResponse = serde_json::from_value(policy.clone()).unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn permissions_effects_and_principal_types_use_their_lowercase_labels() {
        for permission in Permission::ALL {
            assert_eq!(
                serde_json::to_value(permission).unwrap(),
                permission.as_str()
            );
            assert_eq!(permission.to_string(), permission.as_str());
        }
        assert_eq!(
            serde_json::to_value(Effect::Deny).unwrap(),
            Effect::Deny.as_str()
        );
        assert_eq!(Effect::default(), Effect::Allow);
        assert_eq!(
            serde_json::to_value(PrincipalType::User).unwrap(),
            PrincipalType::User.as_str()
        );
    }
}

/// Property tests of SECURITY.md case 8: no path trick widens access.
#[cfg(test)]
mod properties {
    use std::net::IpAddr;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    /// A small alphabet, so that random paths and patterns often meet; it has case twins
    /// (`a`/`A`) and dotted names, which must stay distinct from each other.
    const SEGMENTS: &[&str] = &["a", "A", "b", "B1", ".env", "x-y", "..z", "c_d"];

    fn segment() -> impl Strategy<Value = String> {
        select(SEGMENTS).prop_map(str::to_owned)
    }

    fn path() -> impl Strategy<Value = SecretPath> {
        vec(segment(), 1..7).prop_map(|parts| SecretPath::parse(&parts.join("/")).unwrap())
    }

    fn pattern_token() -> impl Strategy<Value = String> {
        prop_oneof![3 => segment(), 1 => Just("*".to_owned()), 1 => Just("**".to_owned())]
    }

    fn pattern() -> impl Strategy<Value = PathPattern> {
        vec(pattern_token(), 1..6).prop_map(|parts| PathPattern::parse(&parts.join("/")).unwrap())
    }

    /// A pattern and a path built to match it: each `*` filled with one segment, each `**`
    /// with zero to three.
    fn pattern_with_matching_path() -> impl Strategy<Value = (PathPattern, SecretPath)> {
        vec((pattern_token(), vec(segment(), 0..4)), 1..6).prop_filter_map(
            "a pattern of only `**` filled with nothing makes an empty path",
            |tokens| {
                let mut glob = Vec::new();
                let mut parts = Vec::new();
                for (token, fill) in tokens {
                    match token.as_str() {
                        "*" => parts.push(fill.first().cloned().unwrap_or_else(|| "z".into())),
                        "**" => parts.extend(fill),
                        _ => parts.push(token.clone()),
                    }
                    glob.push(token);
                }
                let glob = PathPattern::parse(&glob.join("/")).ok()?;
                let path = SecretPath::parse(&parts.join("/")).ok()?;
                Some((glob, path))
            },
        )
    }

    fn permission() -> impl Strategy<Value = Permission> {
        select(Permission::ALL.to_vec())
    }

    fn context() -> impl Strategy<Value = RequestContext> {
        (any::<i64>(), proptest::option::of(any::<IpAddr>())).prop_map(|(now_unix, client_ip)| {
            RequestContext {
                now_unix,
                client_ip,
            }
        })
    }

    fn flip_case(text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    /// The obvious recursive matcher, exponential but fine on small inputs: the reference the
    /// dynamic programme is checked against.
    fn reference_match(glob: &[&str], path: &[&str]) -> bool {
        match glob.split_first() {
            None => path.is_empty(),
            Some((&"**", rest)) => {
                (0..=path.len()).any(|skip| reference_match(rest, &path[skip..]))
            }
            Some((&token, rest)) => match path.split_first() {
                Some((&part, tail)) => {
                    (token == "*" || token == part) && reference_match(rest, tail)
                }
                None => false,
            },
        }
    }

    fn policy(
        n: u128,
        glob: PathPattern,
        permissions: Vec<Permission>,
        effect: Effect,
        priority: i32,
    ) -> Policy {
        Policy {
            id: PolicyId::from_uuid(Uuid::from_u128(n)),
            pattern: glob,
            permissions,
            effect,
            priority,
            conditions: Conditions::default(),
            expires_at: None,
        }
    }

    proptest! {
        // (3) Deny beats allow, on every path the deny's pattern matches.
        #[test]
        fn a_deny_for_a_pattern_beats_any_allow_on_every_path_it_matches(
            (deny_glob, matching) in pattern_with_matching_path(),
            other in path(),
            wanted in permission(),
            deny_priority in any::<i32>(),
            allows in vec((pattern(), vec(permission(), 0..5), any::<i32>()), 0..6),
            position in any::<prop::sample::Index>(),
        ) {
            let mut policies: Vec<Policy> = allows
                .into_iter()
                .enumerate()
                .map(|(i, (glob, permissions, priority))| {
                    policy(i as u128 + 10, glob, permissions, Effect::Allow, priority)
                })
                .collect();
            // An allow of everything, at the highest priority.
            policies.push(policy(1, pattern_of("**"), Permission::ALL.to_vec(), Effect::Allow, i32::MAX));
            let deny = policy(2, deny_glob.clone(), vec![wanted], Effect::Deny, deny_priority);
            policies.insert(position.index(policies.len() + 1), deny);
            let ctx = RequestContext { now_unix: 0, client_ip: None };
            let deny_id = PolicyId::from_uuid(Uuid::from_u128(2));

            prop_assert!(deny_glob.matches(&matching));
            prop_assert_eq!(
                evaluate(&policies, &matching, wanted, &ctx),
                Decision::Deny { policy: Some(deny_id) }
            );
            let decision = evaluate(&policies, &other, wanted, &ctx);
            if deny_glob.matches(&other) {
                prop_assert_eq!(decision, Decision::Deny { policy: Some(deny_id) });
            } else {
                prop_assert!(decision.is_allowed());
            }
        }

        // (4) `*` stands for exactly one segment, never for a run containing `/`.
        #[test]
        fn a_single_star_never_matches_across_a_slash(
            tokens in vec(prop_oneof![segment(), Just("*".to_owned())], 1..6),
            fills in vec(segment(), 6),
            extra in segment(),
            other in path(),
        ) {
            let glob = PathPattern::parse(&tokens.join("/")).unwrap();
            let fill = |i: usize| fills[i].clone();
            let exact: Vec<String> = tokens
                .iter()
                .enumerate()
                .map(|(i, token)| if token == "*" { fill(i) } else { token.clone() })
                .collect();
            prop_assert!(glob.matches(&SecretPath::parse(&exact.join("/")).unwrap()));
            for (i, token) in tokens.iter().enumerate() {
                if token == "*" {
                    // The star's segment widened to two segments.
                    let mut widened = exact.clone();
                    widened[i] = format!("{}/{}", fill(i), extra);
                    let widened = SecretPath::parse(&widened.join("/")).unwrap();
                    prop_assert!(!glob.matches(&widened), "{} matched {}", glob, widened);
                }
            }
            if other.segments().count() != tokens.len() {
                prop_assert!(!glob.matches(&other));
            }
        }

        // (5) A pattern without wildcards matches exactly one path: its own text.
        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(
            parts in vec(segment(), 1..6),
            other in path(),
            wanted in permission(),
            ctx in context(),
        ) {
            let text = parts.join("/");
            let glob = PathPattern::parse(&text).unwrap();
            prop_assert!(!glob.has_wildcards());
            prop_assert!(glob.matches(&SecretPath::parse(&text).unwrap()));
            prop_assert_eq!(glob.matches(&other), other.as_str() == text);
            let flipped = flip_case(&text);
            if flipped != text {
                let flipped = SecretPath::parse(&flipped).unwrap();
                prop_assert!(!glob.matches(&flipped));
                let grant = policy(1, glob.clone(), Permission::ALL.to_vec(), Effect::Allow, 0);
                prop_assert_eq!(
                    evaluate(&[grant], &flipped, wanted, &ctx),
                    Decision::Deny { policy: None }
                );
            }
        }

        // (6) Default deny.
        #[test]
        fn evaluation_with_no_policies_denies_with_no_policy_named(
            target in path(),
            wanted in permission(),
            ctx in context(),
        ) {
            prop_assert_eq!(evaluate(&[], &target, wanted, &ctx), Decision::Deny { policy: None });
        }

        // The dynamic programme agrees with the obvious recursive matcher.
        #[test]
        fn the_matcher_agrees_with_a_naive_reference(glob in pattern(), target in path()) {
            let glob_parts: Vec<&str> = glob.as_str().split('/').collect();
            let path_parts: Vec<&str> = target.segments().collect();
            prop_assert_eq!(glob.matches(&target), reference_match(&glob_parts, &path_parts));
        }

        // Only a policy that applies can be the one a decision names, and an allow is never
        // reported while an applicable deny exists.
        #[test]
        fn a_decision_names_an_applicable_policy_of_its_own_effect(
            specs in vec((pattern(), vec(permission(), 0..5), any::<bool>(), -3i32..3), 0..8),
            target in path(),
            wanted in permission(),
        ) {
            let policies: Vec<Policy> = specs
                .into_iter()
                .enumerate()
                .map(|(i, (glob, permissions, denies, priority))| {
                    let effect = if denies { Effect::Deny } else { Effect::Allow };
                    policy(i as u128, glob, permissions, effect, priority)
                })
                .collect();
            let ctx = RequestContext { now_unix: 0, client_ip: None };
            let applicable: Vec<&Policy> =
                policies.iter().filter(|p| p.applies(&target, wanted, &ctx)).collect();
            let any_deny = applicable.iter().any(|p| p.effect == Effect::Deny);
            match evaluate(&policies, &target, wanted, &ctx) {
                Decision::Allow { policy: chosen } => {
                    prop_assert!(!any_deny);
                    let chosen = applicable.iter().find(|p| p.id == chosen);
                    prop_assert!(chosen.is_some_and(|p| p.effect == Effect::Allow));
                    let best = applicable.iter().map(|p| p.priority).max();
                    prop_assert_eq!(chosen.map(|p| p.priority), best);
                }
                Decision::Deny { policy: Some(chosen) } => {
                    let chosen = applicable.iter().find(|p| p.id == chosen);
                    prop_assert!(chosen.is_some_and(|p| p.effect == Effect::Deny));
                }
                Decision::Deny { policy: None } => prop_assert!(applicable.is_empty()),
            }
        }
    }

    fn pattern_of(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap()
    }
}

/// Property tests of what a policy is read from: patterns, CIDR blocks, times, zones and
/// whole create requests, over any text a tenant can send.
#[cfg(test)]
mod parsing {
    use std::net::IpAddr;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn is_path_segment(segment: &str) -> bool {
        SecretPath::parse(segment).is_ok_and(|path| path.segments().count() == 1)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        // Whatever parses is `*`, `**` and path segments, kept as given; without wildcards it
        // is the one path it matches. Matching any path never panics.
        #[test]
        fn an_accepted_pattern_is_well_formed_and_round_trips(
            text in prop_oneof![
                crate::any_text(),
                "([a-zA-Z.*%]{1,3}/){0,5}[a-zA-Z.*]{1,3}",
            ],
            other in "([a-zA-Z.]{1,2}/){0,4}[a-zA-Z]{1,2}",
        ) {
            let Ok(glob) = PathPattern::parse(&text) else {
                return Ok(());
            };
            prop_assert_eq!(glob.as_str(), text.as_str());
            prop_assert!(!text.is_empty() && text.len() <= secret_path::MAX_SECRET_PATH_LEN);
            let mut wildcards = false;
            for segment in text.split('/') {
                let star = segment == "*" || segment == "**";
                wildcards |= star;
                prop_assert!(star || is_path_segment(segment), "{:?} in {:?}", segment, text);
            }
            prop_assert_eq!(glob.has_wildcards(), wildcards);
            prop_assert_eq!(PathPattern::parse(glob.as_str()), Ok(glob.clone()));
            let json = serde_json::to_string(&glob).unwrap();
            prop_assert_eq!(serde_json::from_str::<PathPattern>(&json).unwrap(), glob.clone());
            if let Ok(other) = SecretPath::parse(&other) {
                let matched = glob.matches(&other);
                if !wildcards {
                    prop_assert_eq!(matched, other.as_str() == text);
                }
            }
            if !wildcards {
                prop_assert!(glob.matches(&SecretPath::parse(&text).unwrap()));
            }
        }

        // Any text: no panic; what parses prints as a block that parses back to itself and
        // holds its own network address.
        #[test]
        fn an_accepted_cidr_round_trips_and_holds_its_network(
            text in prop_oneof![
                crate::any_text(),
                "[0-9a-f:.]{1,20}(/[0-9+]{0,4})?",
                "::ffff:[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,3}",
            ],
        ) {
            if let Ok(block) = Cidr::parse(&text) {
                let width = if block.network().is_ipv4() { 32 } else { 128 };
                prop_assert!(block.prefix_len() <= width);
                prop_assert!(block.contains(block.network()));
                prop_assert_eq!(Cidr::parse(&block.to_string()), Ok(block));
                let json = serde_json::to_string(&block).unwrap();
                prop_assert_eq!(serde_json::from_str::<Cidr>(&json).unwrap(), block);
            }
        }

        // An address with any length: accepted exactly when the length fits and no host bit
        // is set, and then the block holds the address.
        #[test]
        fn an_address_with_a_length_is_a_block_exactly_when_its_host_bits_are_clear(
            ip in any::<IpAddr>(),
            length in 0u8..=140,
            clear in any::<bool>(),
        ) {
            let width: u8 = if ip.is_ipv4() { 32 } else { 128 };
            // Half the time, clear the host bits, so that acceptance is tested too.
            let ip = match (clear, ip) {
                (true, IpAddr::V4(v4)) if length <= width => IpAddr::V4(Ipv4Addr::from_bits(
                    v4.to_bits() & u32::MAX.checked_shl(u32::from(width - length)).unwrap_or(0),
                )),
                (true, IpAddr::V6(v6)) if length <= width => IpAddr::V6(Ipv6Addr::from_bits(
                    v6.to_bits() & u128::MAX.checked_shl(u32::from(width - length)).unwrap_or(0),
                )),
                _ => ip,
            };
            let parsed = Cidr::parse(&format!("{ip}/{length}"));
            if length > width {
                prop_assert_eq!(parsed, Err(InvalidCidr::Shape));
            } else {
                let host_bits_clear = match ip {
                    IpAddr::V4(v4) => v4.to_bits().checked_shl(u32::from(length)).unwrap_or(0) == 0,
                    IpAddr::V6(v6) => v6.to_bits().checked_shl(u32::from(length)).unwrap_or(0) == 0,
                };
                prop_assert_eq!(parsed.is_ok(), host_bits_clear, "{}/{}", ip, length);
                if let Ok(block) = parsed {
                    prop_assert!(block.contains(ip));
                }
            }
            // A bare address is the block of that one address.
            let single = Cidr::parse(&ip.to_string());
            prop_assert!(single.is_ok_and(|block| block.contains(ip)));
        }

        // Times and zones: what parses prints back as given, within a day.
        #[test]
        fn an_accepted_time_or_zone_prints_back_as_given(
            text in prop_oneof![
                crate::any_text(),
                "[+-]?[0-9+]{1,3}:[0-9+-]{1,3}",
                Just("UTC".to_owned()),
                Just("Etc/UTC".to_owned()),
            ],
        ) {
            if let Ok(time) = ClockTime::parse(&text) {
                prop_assert!(time.minutes() < 1440);
                prop_assert_eq!(time.to_string(), text.clone());
            }
            if let Ok(zone) = Timezone::parse(&text) {
                prop_assert_eq!(zone.as_str(), text.as_str());
                prop_assert!((-1439..=1439).contains(&zone.offset_minutes()));
                if let Some(clock) = text.strip_prefix(['+', '-']) {
                    let minutes = ClockTime::parse(clock).map(ClockTime::minutes);
                    let minutes = i16::try_from(minutes.unwrap_or(u16::MAX)).unwrap_or(i16::MAX);
                    let sign = if text.starts_with('-') { -1 } else { 1 };
                    prop_assert_eq!(zone.offset_minutes(), sign * minutes);
                }
            }
        }

        // Any window at any instant: no overflow at the ends of time, and a window and the
        // rest of the day split every minute between them.
        #[test]
        fn a_window_and_its_complement_split_every_instant(
            after in 0u16..1440,
            before in 0u16..1440,
            offset in -1439i16..=1439,
            now in prop_oneof![any::<i64>(), -1_000_000i64..1_000_000],
        ) {
            let clock = |minutes: u16| format!("{:02}:{:02}", minutes / 60, minutes % 60);
            let sign = if offset < 0 { '-' } else { '+' };
            let zone = format!("{sign}{}", clock(offset.unsigned_abs()));
            let window = TimeWindow::parse(&clock(after), &clock(before), &zone);
            prop_assert_eq!(window.is_err(), after == before);
            let rest = TimeWindow::parse(&clock(before), &clock(after), &zone);
            if let (Ok(window), Ok(rest)) = (window, rest) {
                prop_assert_ne!(window.contains(now), rest.contains(now));
                // A week later, the same answer (away from the ends of time, which saturate).
                let shift = i64::from(offset) * 60;
                let week_later = now
                    .checked_add(7 * 86_400)
                    .filter(|later| later.checked_add(shift).is_some())
                    .filter(|_| now.checked_add(shift).is_some());
                if let Some(later) = week_later {
                    prop_assert_eq!(window.contains(later), window.contains(now));
                }
            }
        }

        // A create request of random fields: reading it never panics, and what is read
        // serialises back to what reads the same.
        #[test]
        fn a_read_policy_request_keeps_its_fields_checked(
            pattern in prop_oneof!["[a-z*/.]{0,8}", crate::any_text()],
            permissions in vec(prop_oneof![
                Just("read".to_owned()), Just("share".to_owned()), "[a-zA-Z]{0,6}",
            ], 0..3),
            allowlist in proptest::option::of(vec(prop_oneof![
                "10\\.[0-9]{1,3}\\.0\\.0/[0-9]{1,2}", "[0-9a-f:./]{0,12}",
            ], 0..3)),
            window in proptest::option::of((
                "[0-2][0-9]:[0-5][0-9]", "[0-2][0-9]:[0-6][0-9]",
                prop_oneof![Just("UTC".to_owned()), "[+-][01][0-9]:[0-5][0-9]", "[A-Za-z/]{0,12}"],
            )),
            extra_condition in proptest::option::of("[a-z_]{1,8}"),
            priority in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from)],
        ) {
            let mut conditions = serde_json::Map::new();
            if let Some(allowlist) = allowlist {
                conditions.insert("ip_allowlist".into(), json!(allowlist));
            }
            if let Some((after, before, timezone)) = window {
                conditions.insert(
                    "time_window".into(),
                    json!({"after": after, "before": before, "timezone": timezone}),
                );
            }
            if let Some(name) = extra_condition {
                conditions.insert(name, json!(true));
            }
            let body = json!({
                "principal_type": "agent",
                "principal_id": Uuid::nil(),
                "secret_path_pattern": pattern,
                "permissions": permissions,
                "priority": priority,
                "conditions": conditions,
            });
            let Ok(request) = serde_json::from_value::<CreatePolicyRequest>(body) else {
                return Ok(());
            };
            let glob = &request.secret_path_pattern;
            prop_assert_eq!(PathPattern::parse(glob.as_str()), Ok(glob.clone()));
            let written = serde_json::to_value(&request.conditions).unwrap();
            let read_back: Conditions = serde_json::from_value(written).unwrap();
            prop_assert_eq!(read_back, request.conditions.clone());
            if let Some(window) = &request.conditions.time_window {
                prop_assert_ne!(window.after(), window.before());
            }
        }
    }
}
