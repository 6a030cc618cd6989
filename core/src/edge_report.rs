//! The edge's report of the rate-limit refusals it answered itself.
//!
//! A refused request never reaches an origin, so the origin's metrics cannot count it. Each
//! Worker isolate counts its refusals per limit and hands the counts to the origin on its next
//! forwarded request, in the header [`REFUSALS_HEADER`] (`share_ip=3,login_identity=1`),
//! beside the edge's shared secret; the origin adds them to
//! `oxvault_edge_rate_limit_refusals_total{limit}`. No extra request, and a flood costs the
//! origin nothing more: counts arrive late (with the next request), never more often.
//!
//! Only an origin that verified the edge's secret believes the header, and the parser takes
//! known names once each with bounded counts: a client cannot inflate the metric.

/// The header the counts travel in, from edge to origin.
pub const REFUSALS_HEADER: &str = "x-oxvault-edge-refusals";

/// The largest count one report may carry for one limit.
pub const MAX_COUNT: u64 = 1_000_000_000;

/// The edge's limits, by the name the report and the metric use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitName {
    AuthIp,
    LoginIdentity,
    ShareIp,
    Identity,
    HealthIp,
}

impl LimitName {
    /// Every limit, in report order.
    pub const ALL: [Self; 5] = [
        Self::AuthIp,
        Self::LoginIdentity,
        Self::ShareIp,
        Self::Identity,
        Self::HealthIp,
    ];

    /// The name in the header and the metric's `limit` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthIp => "auth_ip",
            Self::LoginIdentity => "login_identity",
            Self::ShareIp => "share_ip",
            Self::Identity => "identity",
            Self::HealthIp => "health_ip",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|name| name.as_str() == text)
    }
}

/// Refusals counted per limit since the last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals([u64; 5]);

impl Refusals {
    /// No refusals.
    pub const fn new() -> Self {
        Self([0; 5])
    }

    /// Counts one refusal under `limit`.
    pub fn add(&mut self, limit: LimitName) {
        let count = &mut self.0[limit.index()];
        *count = count.saturating_add(1).min(MAX_COUNT);
    }

    /// Adds another report's counts (a report that could not be delivered, put back).
    pub fn merge(&mut self, other: Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs).min(MAX_COUNT);
        }
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|count| *count == 0)
    }

    /// The non-zero counts, by limit.
    pub fn counts(&self) -> impl Iterator<Item = (LimitName, u64)> + '_ {
        LimitName::ALL
            .into_iter()
            .map(|name| (name, self.0[name.index()]))
            .filter(|(_, count)| *count > 0)
    }

    /// The header value: `name=count` for each non-zero count, comma-separated.
    pub fn to_header(&self) -> String {
        self.counts()
            .map(|(name, count)| format!("{}={count}", name.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses a header value; `None` unless every part is a known name, given once, with a
    /// count from 1 to [`MAX_COUNT`].
    pub fn parse(text: &str) -> Option<Self> {
        let mut refusals = Self::new();
        for part in text.split(',') {
            let (name, count) = part.trim().split_once('=')?;
            let name = LimitName::parse(name)?;
            if !count.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            let count: u64 = count.parse().ok()?;
            let slot = &mut refusals.0[name.index()];
            if *slot != 0 || !(1..=MAX_COUNT).contains(&count) {
                return None;
            }
            *slot = count;
        }
        Some(refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_the_header() {
        let mut refusals = Refusals::new();
        assert!(refusals.is_empty());
        for _ in 0..3 {
            refusals.add(LimitName::ShareIp);
        }
        refusals.add(LimitName::LoginIdentity);
        assert_eq!(refusals.to_header(), "login_identity=1,share_ip=3");
        assert_eq!(Refusals::parse(&refusals.to_header()), Some(refusals));
        let mut more = Refusals::new();
        more.add(LimitName::ShareIp);
        more.merge(refusals);
        assert_eq!(more.to_header(), "login_identity=1,share_ip=4");
    }

    #[test]
    fn anything_but_known_names_with_sane_counts_is_refused() {
        for bad in [
            "",
            "share_ip",
            "share_ip=",
            "share_ip=0",
            "share_ip=-1",
            "share_ip=+1",
            "share_ip=1000000001",
            "share_ip=99999999999999999999999",
            "share_ip=1,share_ip=1",
            "other=1",
            "SHARE_IP=1",
            "share_ip=1;auth_ip=1",
        ] {
            assert_eq!(Refusals::parse(bad), None, "{bad:?}");
        }
        assert!(Refusals::parse(" auth_ip=2 , health_ip=1").is_some());
    }
}
