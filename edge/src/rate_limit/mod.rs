//! Rate limiting at the edge: what is limited, by how much, and the arithmetic of one limit.
//!
//! Every limited key (a client IP on the token routes, a normalised email on logins, a token
//! subject on authenticated routes, ...) has its own Durable Object, so a count holds across
//! every Cloudflare location and survives the object being evicted (its state is in the
//! object's storage). The Worker sends the limit with each check, so the limits live in
//! `wrangler.toml` vars, not in the object. Checks run before the origin is called: a refused
//! request never reaches it, so a flood of logins costs no Argon2 work there.
//!
//! This module and its children are pure and test natively:
//! - here: a limit `N/S` and the four configured limits;
//! - [`gcra`]: the decision for one request, from the stored state and the time;
//! - [`plan`]: which limits apply to a request and under which keys;
//! - [`wire`]: the messages between the Worker and the object, and the response headers.
//!
//! The object itself is `runtime::rate_limiter` (wasm32 only).

pub mod gcra;
pub mod plan;
pub mod wire;

use thiserror::Error;

/// The most requests a limit may allow per period. Together with the shortest period (one
/// second) this keeps the emission interval at one microsecond or more, so the arithmetic in
/// [`gcra`] stays exact.
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

/// The four limits of `wrangler.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `RATE_LIMIT_AUTH_IP`: per client IP on the routes that hand out tokens.
    pub auth_ip: Limit,
    /// `RATE_LIMIT_LOGIN_IDENTITY`: per email, agent or API key on token exchanges.
    pub login_identity: Limit,
    /// `RATE_LIMIT_SHARE_IP`: per client IP on share lookups and share pages.
    pub share_ip: Limit,
    /// `RATE_LIMIT_IDENTITY`: per token subject on authenticated routes.
    pub identity: Limit,
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
}
