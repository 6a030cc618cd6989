//! Rate limits shared by the edge and the origin: a limit written `N/S` (N requests per S
//! seconds), and the block of addresses one client is counted by. The edge enforces the exact,
//! global limits; the origin keeps a coarse per-process guard with the same rules.

use std::net::{IpAddr, Ipv6Addr};

use thiserror::Error;

/// The most requests a limit may allow per period. Together with the shortest period (one
/// second) this keeps the emission interval at one microsecond or more, so the arithmetic in
/// the edge's GCRA stays exact.
pub const MAX_COUNT: u32 = 1_000_000;
/// The longest period: one day.
pub const MAX_PERIOD_SECS: u32 = 86_400;

/// Why a text is not a limit. For the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error("expected N/S (N requests per S seconds), e.g. 30/60")]
    Shape,
    #[error("N must be a whole number from 1 to {MAX_COUNT}")]
    Count,
    #[error("S must be a whole number of seconds from 1 to {MAX_PERIOD_SECS}")]
    Period,
}

/// `count` requests per `period_secs` seconds, all of which may come at once (a burst of
/// `count`), after which they are let through at the sustained rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    count: u32,
    period_secs: u32,
}

impl Limit {
    /// A limit from its two numbers, checked against [`MAX_COUNT`] and [`MAX_PERIOD_SECS`].
    pub fn new(count: u32, period_secs: u32) -> Result<Self, LimitError> {
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(LimitError::Count);
        }
        if !(1..=MAX_PERIOD_SECS).contains(&period_secs) {
            return Err(LimitError::Period);
        }
        Ok(Self { count, period_secs })
    }

    /// A limit known when compiling: out-of-bounds numbers fail the build, not a request.
    pub const fn from_const(count: u32, period_secs: u32) -> Self {
        assert!(count >= 1 && count <= MAX_COUNT, "count out of bounds");
        assert!(
            period_secs >= 1 && period_secs <= MAX_PERIOD_SECS,
            "period out of bounds"
        );
        Self { count, period_secs }
    }

    /// Parses `N/S`, e.g. `30/60` for 30 requests per minute. Spaces around either number
    /// are allowed; signs, decimals and units are not.
    pub fn parse(text: &str) -> Result<Self, LimitError> {
        let (count, period) = text.split_once('/').ok_or(LimitError::Shape)?;
        let number = |part: &str, err: LimitError| {
            let part = part.trim();
            // `u32::from_str` takes a leading `+`; a limit is plain digits.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err);
            }
            part.parse::<u32>().map_err(|_| err)
        };
        Self::new(
            number(count, LimitError::Count)?,
            number(period, LimitError::Period)?,
        )
    }

    /// Requests allowed per period.
    pub fn count(self) -> u32 {
        self.count
    }

    /// The period in seconds.
    pub fn period_secs(self) -> u32 {
        self.period_secs
    }
}

/// The block of addresses a client is counted by: an IPv4 address (or an IPv4-mapped IPv6 one)
/// alone, an IPv6 address by its /64, the block one subscriber usually gets — per address, one
/// host could rotate through 2^64 of them.
pub fn client_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_n_requests_per_s_seconds() {
        let limit = Limit::parse("30/60").unwrap();
        assert_eq!((limit.count(), limit.period_secs()), (30, 60));
        let limit = Limit::parse(" 3 / 2 ").unwrap();
        assert_eq!((limit.count(), limit.period_secs()), (3, 2));
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        assert!(Limit::parse("1/1").is_ok());
        assert!(Limit::parse("1000000/86400").is_ok());
    }

    #[test]
    fn counts_and_periods_out_of_bounds_are_refused() {
        assert_eq!(Limit::parse("0/60"), Err(LimitError::Count));
        assert_eq!(Limit::parse("1000001/60"), Err(LimitError::Count));
        assert_eq!(Limit::parse("99999999999/60"), Err(LimitError::Count));
        assert_eq!(Limit::parse("10/0"), Err(LimitError::Period));
        assert_eq!(Limit::parse("10/86401"), Err(LimitError::Period));
    }

    #[test]
    fn text_that_is_not_n_slash_s_is_refused() {
        assert_eq!(Limit::parse(""), Err(LimitError::Shape));
        assert_eq!(Limit::parse("30"), Err(LimitError::Shape));
        assert_eq!(Limit::parse("30 per 60"), Err(LimitError::Shape));
        for bad in [
            "/60", "+3/60", "-3/60", "3.5/60", "3/60s", "3/60/1", "3/", "a/b",
        ] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_constant_limit_is_the_parsed_one() {
        assert_eq!(Limit::from_const(120, 60), Limit::parse("120/60").unwrap());
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let block = |text: &str| client_block(text.parse().unwrap());
        assert_eq!(block("2001:db8:1:2:aaaa::1"), block("2001:db8:1:2:bbbb::9"));
        assert_eq!(block("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::");
        assert_ne!(block("2001:db8:1:2::1"), block("2001:db8:1:3::1"));
        assert_eq!(block("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(block("192.0.2.1").to_string(), "192.0.2.1");
    }
}

/// Property tests of the `N/S` syntax: operators write it, and the edge's GCRA relies on its
/// bounds.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        // Whatever parses is within bounds, and its canonical `N/S` parses to the same limit.
        #[test]
        fn an_accepted_limit_is_within_bounds_and_round_trips(
            text in prop_oneof![
                crate::any_text(),
                "[ \\t]{0,2}[+-]?[0-9]{0,12}[ \\t]{0,2}/[ \\t]{0,2}[+-]?[0-9]{0,12}[ \\t]{0,2}",
            ],
        ) {
            if let Ok(limit) = Limit::parse(&text) {
                prop_assert!((1..=MAX_COUNT).contains(&limit.count()));
                prop_assert!((1..=MAX_PERIOD_SECS).contains(&limit.period_secs()));
                prop_assert!(!text.contains(['+', '-', '.']));
                let canonical = format!("{}/{}", limit.count(), limit.period_secs());
                prop_assert_eq!(Limit::parse(&canonical), Ok(limit));
            }
        }

        // Any two numbers, written plainly, padded or zero-filled: accepted exactly when in
        // bounds, and then as those numbers.
        #[test]
        fn two_numbers_parse_exactly_when_in_bounds(
            count in prop_oneof![1..=MAX_COUNT, any::<u32>()],
            period in prop_oneof![1..=MAX_PERIOD_SECS, any::<u32>()],
            zeros in 0usize..4,
            pad in "[ \\t]{0,2}",
        ) {
            let fill = "0".repeat(zeros);
            let text = format!("{pad}{fill}{count}{pad}/{pad}{fill}{period}{pad}");
            prop_assert_eq!(Limit::parse(&text), Limit::new(count, period));
            if let Ok(limit) = Limit::new(count, period) {
                prop_assert_eq!((limit.count(), limit.period_secs()), (count, period));
            }
        }

        // The counting block of a client is the block of its own block, and holds the client.
        #[test]
        fn a_client_block_is_stable_and_holds_its_client(ip in any::<IpAddr>()) {
            let block = client_block(ip);
            prop_assert_eq!(client_block(block), block);
            match (ip.to_canonical(), block) {
                (IpAddr::V4(v4), IpAddr::V4(held)) => prop_assert_eq!(v4, held),
                (IpAddr::V6(v6), IpAddr::V6(held)) => {
                    prop_assert_eq!(v6.to_bits() >> 64, held.to_bits() >> 64);
                    prop_assert_eq!(held.to_bits() & u128::from(u64::MAX), 0);
                }
                (canonical, held) => prop_assert!(false, "{} became {}", canonical, held),
            }
        }
    }
}
