//! Billing usage: the wire shapes of `GET /v1/billing/usage` and `GET /v1/billing/history`,
//! and the pure rules behind them — exact money in micro-dollars, what a tier allows, which
//! requests of a month are free and what the others cost.
//!
//! Money is never a float: prices are parsed from decimal text into whole micro-dollars
//! ([`Usd`]) and answered as decimal strings, so `0.0015 * 2` is `0.0030`, exactly.
//!
//! How a month is billed: an org's metered requests of one calendar month (UTC) are ranked by
//! time. The first `free_requests` of them (the tier's monthly allowance) are free; every later
//! one is paid at its tier's price for its method class (reads: `GET`, `HEAD`, `OPTIONS`;
//! writes: everything else). Nothing is refused for being past the allowance: only object
//! limits (vaults, secrets, agents) refuse, with 403 `resource_limit_exceeded`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `GET /v1/billing/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageSummaryResponse {
    /// The org's tier, e.g. `free`.
    pub billing_tier: String,
    /// Requests per calendar month (UTC) included in the tier.
    pub free_tier_limit: u64,
    pub current_month: MonthUsage,
}

/// The metered requests of the current calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MonthUsage {
    pub total_requests: u64,
    /// Requests past the tier's monthly allowance.
    pub paid_requests: u64,
    /// `min(total_requests, free_tier_limit)`.
    pub free_requests: u64,
    /// What the paid requests cost, in US dollars, as an exact decimal string (e.g. `0.0300`).
    pub total_cost_usd: String,
}

/// `GET /v1/billing/history`: the newest metered requests first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageHistoryResponse {
    pub events: Vec<UsageEvent>,
}

/// One metered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageEvent {
    pub id: Uuid,
    /// `user` or `agent`.
    pub principal_type: String,
    pub principal_id: Uuid,
    /// The HTTP method, e.g. `GET`.
    pub method: String,
    /// The route template, e.g. `/v1/vaults/{vault_id}/secrets/{*path}`: never the concrete
    /// path, which may name a secret.
    pub endpoint: String,
    pub status_code: u16,
    /// What this request cost: its class's price when paid, `0.0000` when free.
    pub price_usd: String,
    /// Whether it came past the monthly allowance of its month.
    pub is_paid: bool,
    pub created_at: DateTime<Utc>,
}

/// Default and bounds of `GET /v1/billing/history?limit=`.
pub const HISTORY_DEFAULT_LIMIT: u32 = 50;
pub const HISTORY_MAX_LIMIT: u32 = 500;

/// The `limit` of a history request: absent means [`HISTORY_DEFAULT_LIMIT`]; anything but a
/// whole number from 1 to [`HISTORY_MAX_LIMIT`] is refused with words for the caller.
pub fn history_limit(raw: Option<&str>) -> Result<u32, String> {
    let Some(text) = raw else {
        return Ok(HISTORY_DEFAULT_LIMIT);
    };
    text.parse::<u32>()
        .ok()
        .filter(|limit| {
            (1..=HISTORY_MAX_LIMIT).contains(limit) && text.bytes().all(|b| b.is_ascii_digit())
        })
        .ok_or_else(|| format!("limit must be a whole number from 1 to {HISTORY_MAX_LIMIT}"))
}

/// An exact amount of US dollars, in whole micro-dollars (1 USD = 1,000,000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

/// Most decimal places a price may have: micro-dollars.
const USD_DECIMALS: usize = 6;
const MICROS_PER_USD: u64 = 1_000_000;
/// Whole dollars accepted in one price: far above any price, far below overflow.
const MAX_WHOLE_USD: u64 = 1_000_000;

impl Usd {
    pub const ZERO: Self = Self(0);

    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    pub const fn micros(self) -> u64 {
        self.0
    }

    /// Parses a plain decimal: digits, optionally a point and 1 to 6 more digits (`0.0015`,
    /// `2`, `0.5`). No sign, exponent, spaces or separators: a price is written one way.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "{text:?} is not a price: expected a decimal like 0.0015 (at most {USD_DECIMALS} decimals)"
            )
        };
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > USD_DECIMALS) {
            return Err(invalid());
        }
        let whole: u64 = whole
            .parse()
            .ok()
            .filter(|w| *w <= MAX_WHOLE_USD)
            .ok_or_else(invalid)?;
        let fraction = fraction.unwrap_or("");
        // Right-pad to six digits: "0015" is 1500 micro-dollars.
        let padded = format!("{fraction:0<USD_DECIMALS$}");
        let micros: u64 = padded.parse().map_err(|_| invalid())?;
        Ok(Self(whole * MICROS_PER_USD + micros))
    }

    /// `self * count`, saturating (a bill never wraps around to a small number).
    pub const fn times(self, count: u64) -> Self {
        Self(self.0.saturating_mul(count))
    }

    /// `self + other`, saturating.
    pub const fn plus(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

/// At least four decimals (`0.0300`, `1.5000`), more only when they are not zero
/// (`0.000125`): 1Claw's form for prices, and exact.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MICROS_PER_USD;
        let fraction = format!("{:06}", self.0 % MICROS_PER_USD);
        let kept = fraction.trim_end_matches('0').len().max(4);
        write!(f, "{whole}.{}", &fraction[..kept])
    }
}

/// How a request is priced: reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    Read,
    Write,
}

/// The methods priced as reads; every other method is a write.
pub const READ_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

impl MethodClass {
    pub fn of(method: &str) -> Self {
        if READ_METHODS.contains(&method) {
            Self::Read
        } else {
            Self::Write
        }
    }
}

/// What a tier allows and charges. `None` limits are unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    /// Live vaults per org.
    pub vaults: Option<u64>,
    /// Live secret paths per org (not versions: a new version of a path is free of limits).
    pub secrets: Option<u64>,
    /// Active agents per org.
    pub agents: Option<u64>,
    /// Requests per calendar month included; later ones are paid, not refused.
    pub free_requests: u64,
    /// Price of a paid read request.
    pub read_price: Usd,
    /// Price of a paid write request.
    pub write_price: Usd,
}

impl TierLimits {
    /// The price of a paid request of `class`.
    pub fn price(&self, class: MethodClass) -> Usd {
        match class {
            MethodClass::Read => self.read_price,
            MethodClass::Write => self.write_price,
        }
    }

    /// These limits with the entries of `spec` applied over them.
    ///
    /// `spec` is comma-separated `key=value` entries, each key at most once:
    /// `vaults`, `secrets`, `agents` (a whole number or `unlimited`), `requests` (monthly free
    /// requests, a whole number), `price` (both classes), `read_price`, `write_price`
    /// (decimal USD, e.g. `0.0015`). Every problem is reported, not only the first.
    pub fn with_overrides(mut self, spec: &str) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for entry in spec.split(',').map(str::trim) {
            let Some((key, value)) = entry.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
            else {
                problems.push(format!("{entry:?} is not key=value"));
                continue;
            };
            if seen.contains(&key) {
                problems.push(format!("{key} is given twice"));
                continue;
            }
            seen.push(key);
            let limit = |value: &str| -> Result<Option<u64>, String> {
                if value == "unlimited" {
                    return Ok(None);
                }
                whole(value).map(Some)
            };
            let applied = match key {
                "vaults" => limit(value).map(|v| self.vaults = v),
                "secrets" => limit(value).map(|v| self.secrets = v),
                "agents" => limit(value).map(|v| self.agents = v),
                "requests" => whole(value).map(|v| self.free_requests = v),
                "price" => Usd::parse(value).map(|p| {
                    self.read_price = p;
                    self.write_price = p;
                }),
                "read_price" => Usd::parse(value).map(|p| self.read_price = p),
                "write_price" => Usd::parse(value).map(|p| self.write_price = p),
                other => Err(format!(
                    "unknown key {other:?} (expected vaults, secrets, agents, requests, price, read_price, write_price)"
                )),
            };
            if let Err(problem) = applied {
                problems.push(format!("{key}: {problem}"));
            }
        }
        if seen.contains(&"price")
            && (seen.contains(&"read_price") || seen.contains(&"write_price"))
        {
            problems.push("price sets both classes: give it or read_price/write_price".to_owned());
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

fn whole(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{value:?} is not a whole number"))
}

/// The tier every org starts on, and what an unknown tier name counts as.
pub const FREE_TIER: &str = "free";

/// The tiers there are (the origin makes each configurable with
/// `OXVAULT_BILLING_TIER_<NAME>`).
pub const TIER_NAMES: [&str; 4] = [FREE_TIER, "pro", "business", "enterprise"];

/// Limits and prices of every tier. The defaults are generous but finite: an org can grow a
/// long way on any tier before a limit refuses anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTable {
    tiers: [(&'static str, TierLimits); 4],
}

const fn tier(vaults: u64, secrets: u64, agents: u64, free_requests: u64) -> TierLimits {
    TierLimits {
        vaults: Some(vaults),
        secrets: Some(secrets),
        agents: Some(agents),
        free_requests,
        // $0.001 per paid request, reads and writes alike, unless configured otherwise.
        read_price: Usd::from_micros(1_000),
        write_price: Usd::from_micros(1_000),
    }
}

impl Default for TierTable {
    fn default() -> Self {
        Self {
            tiers: [
                (TIER_NAMES[0], tier(100, 10_000, 100, 100_000)),
                (TIER_NAMES[1], tier(1_000, 100_000, 1_000, 1_000_000)),
                (TIER_NAMES[2], tier(10_000, 1_000_000, 10_000, 10_000_000)),
                (
                    TIER_NAMES[3],
                    tier(100_000, 10_000_000, 100_000, 100_000_000),
                ),
            ],
        }
    }
}

impl TierTable {
    /// The limits of a known tier.
    pub fn get(&self, name: &str) -> Option<(&'static str, TierLimits)> {
        self.tiers
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(known, limits)| (*known, *limits))
    }

    /// Replaces the limits of a known tier; an unknown name changes nothing.
    pub fn set(&mut self, name: &str, limits: TierLimits) {
        if let Some(entry) = self.tiers.iter_mut().find(|(known, _)| *known == name) {
            entry.1 = limits;
        }
    }

    /// The free tier's limits: what an unknown tier name counts as.
    pub fn free(&self) -> TierLimits {
        self.tiers[0].1
    }
}

/// How a month's requests split, by the rule in this module's docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthSplit {
    pub total: u64,
    pub free: u64,
    pub paid: u64,
}

impl MonthSplit {
    pub fn of(total: u64, free_limit: u64) -> Self {
        let free = total.min(free_limit);
        Self {
            total,
            free,
            paid: total - free,
        }
    }
}

/// Whether the `rank`-th request of a month (from 1) is paid, and what it costs.
pub fn price_of_request(rank: u64, tier: &TierLimits, class: MethodClass) -> (bool, Usd) {
    if rank > tier.free_requests {
        (true, tier.price(class))
    } else {
        (false, Usd::ZERO)
    }
}

/// The calendar month (UTC) holding `at`: its first instant, and the first of the next month.
pub fn month_bounds(at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = NaiveDate::from_ymd_opt(at.year(), at.month(), 1)?;
    let next = if at.month() == 12 {
        NaiveDate::from_ymd_opt(at.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(at.year(), at.month() + 1, 1)?
    };
    Some((
        start.and_hms_opt(0, 0, 0)?.and_utc(),
        next.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    const TIER: TierLimits = TierLimits {
        vaults: Some(3),
        secrets: Some(100),
        agents: Some(5),
        free_requests: 1000,
        read_price: Usd::from_micros(1000),
        write_price: Usd::from_micros(1000),
    };

    #[test]
    fn prices_parse_to_exact_micro_dollars() {
        assert_eq!(usd("0.0015").micros(), 1500);
        assert_eq!(usd("0.001").micros(), 1000);
        assert_eq!(usd("2").micros(), 2_000_000);
        assert_eq!(usd("1.5").micros(), 1_500_000);
        assert_eq!(usd("0.000001").micros(), 1);
        assert_eq!(usd("0").micros(), 0);
    }

    #[test]
    fn prices_written_any_other_way_are_refused() {
        for bad in [
            "",
            ".5",
            "1.",
            "-0.1",
            "+1",
            "1e-3",
            "0.0000001",
            "1,5",
            " 1",
            "0x10",
            "NaN",
            "1.2.3",
            "99999999999",
        ] {
            assert!(Usd::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn amounts_print_with_at_least_four_decimals_and_no_rounding() {
        assert_eq!(Usd::ZERO.to_string(), "0.0000");
        assert_eq!(usd("0.03").to_string(), "0.0300");
        assert_eq!(usd("0.0015").to_string(), "0.0015");
        assert_eq!(usd("0.000125").to_string(), "0.000125");
        assert_eq!(usd("12.5").to_string(), "12.5000");
    }

    #[test]
    fn sums_of_decimal_prices_are_exact_where_floats_are_not() {
        // 0.1 + 0.2 != 0.3 in binary floating point; in micro-dollars it is.
        assert_eq!(usd("0.1").plus(usd("0.2")), usd("0.3"));
        assert_eq!(usd("0.0015").times(20).to_string(), "0.0300");
        assert_eq!(
            usd("0.0075")
                .times(3)
                .plus(usd("0.0015").times(7))
                .to_string(),
            "0.0330"
        );
        assert_eq!(usd("0.0008").times(1_000_000).to_string(), "800.0000");
    }

    #[test]
    fn huge_bills_saturate_instead_of_wrapping() {
        assert_eq!(Usd::from_micros(u64::MAX).times(2).micros(), u64::MAX);
        assert_eq!(Usd::from_micros(u64::MAX).plus(usd("1")).micros(), u64::MAX);
    }

    #[test]
    fn reads_are_get_head_options_and_everything_else_writes() {
        assert_eq!(MethodClass::of("GET"), MethodClass::Read);
        assert_eq!(MethodClass::of("HEAD"), MethodClass::Read);
        assert_eq!(MethodClass::of("PUT"), MethodClass::Write);
        assert_eq!(MethodClass::of("DELETE"), MethodClass::Write);
        assert_eq!(MethodClass::of("POST"), MethodClass::Write);
    }

    #[test]
    fn the_free_allowance_covers_the_first_requests_of_the_month() {
        assert_eq!(
            MonthSplit::of(5, 3),
            MonthSplit {
                total: 5,
                free: 3,
                paid: 2
            }
        );
        assert_eq!(
            MonthSplit::of(2, 3),
            MonthSplit {
                total: 2,
                free: 2,
                paid: 0
            }
        );
        assert_eq!(
            MonthSplit::of(0, 0),
            MonthSplit {
                total: 0,
                free: 0,
                paid: 0
            }
        );
        let tier = TierLimits {
            free_requests: 3,
            read_price: usd("0.0015"),
            write_price: usd("0.0075"),
            ..TIER
        };
        assert_eq!(
            price_of_request(3, &tier, MethodClass::Write),
            (false, Usd::ZERO)
        );
        assert_eq!(
            price_of_request(4, &tier, MethodClass::Write),
            (true, usd("0.0075"))
        );
        assert_eq!(
            price_of_request(5, &tier, MethodClass::Read),
            (true, usd("0.0015"))
        );
    }

    #[test]
    fn overrides_change_only_the_keys_they_name() {
        let tier = TIER
            .with_overrides("vaults=1, requests=10,read_price=0.0015,agents=unlimited")
            .unwrap();
        assert_eq!(tier.vaults, Some(1));
        assert_eq!(tier.secrets, Some(100));
        assert_eq!(tier.agents, None);
        assert_eq!(tier.free_requests, 10);
        assert_eq!(tier.read_price, usd("0.0015"));
        assert_eq!(tier.write_price, usd("0.001"));
        let both = TIER.with_overrides("price=0.002").unwrap();
        assert_eq!(
            (both.read_price, both.write_price),
            (usd("0.002"), usd("0.002"))
        );
    }

    #[test]
    fn every_bad_override_entry_is_reported() {
        let problems = TIER
            .with_overrides(
                "vaults=-1,colour=blue,requests=unlimited,price=0.1.2,vaults=2,nonsense",
            )
            .unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("colour")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("twice")), "{problems:?}");
        let problems = TIER.with_overrides("price=0.1,read_price=0.2").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            TIER.with_overrides("vaults=3,").is_err(),
            "an empty entry is refused"
        );
    }

    #[test]
    fn history_limits_are_1_to_500_and_default_to_50() {
        assert_eq!(history_limit(None), Ok(50));
        assert_eq!(history_limit(Some("1")), Ok(1));
        assert_eq!(history_limit(Some("500")), Ok(500));
        for bad in [
            "0",
            "501",
            "-1",
            "abc",
            "",
            "+5",
            " 5",
            "5.0",
            "99999999999",
        ] {
            assert!(history_limit(Some(bad)).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn months_run_from_the_first_to_the_first_in_utc() {
        let at = "2026-12-31T23:59:59.999Z".parse::<DateTime<Utc>>().unwrap();
        let (start, end) = month_bounds(at).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let at = "2028-02-29T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let (start, end) = month_bounds(at).unwrap();
        assert_eq!(start.to_rfc3339(), "2028-02-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2028-03-01T00:00:00+00:00");
    }

    #[test]
    fn the_usage_summary_has_1claw_field_names_and_a_string_cost() {
        let body = UsageSummaryResponse {
            billing_tier: "free".into(),
            free_tier_limit: 1000,
            current_month: MonthUsage {
                total_requests: 1020,
                paid_requests: 20,
                free_requests: 1000,
                total_cost_usd: usd("0.0015").times(20).to_string(),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "billing_tier": "free",
                "free_tier_limit": 1000,
                "current_month": {
                    "total_requests": 1020,
                    "paid_requests": 20,
                    "free_requests": 1000,
                    "total_cost_usd": "0.0300",
                },
            })
        );
    }
}
