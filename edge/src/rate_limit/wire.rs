//! What the Worker and a rate-limiter object say to each other, and how a decision shows in
//! HTTP headers.
//!
//! The Worker POSTs a [`CheckRequest`] (the limit: the object is told, not configured, so a
//! change to `wrangler.toml` applies at once; and how many requests to let through at once,
//! for an isolate's allowance) and gets a [`Grant`] back as JSON.

use serde::{Deserialize, Serialize};

use super::{Limit, LimitError};

/// The path the Worker asks the object on (the host part of the URL is ignored by stubs).
pub const CHECK_URL: &str = "https://rate-limiter.internal/check";

/// The largest check request body the object reads; a real one is about 30 bytes.
pub const MAX_CHECK_BYTES: usize = 256;

/// The most requests one check may ask for at once (an isolate's allowance, see
/// [`super::allowance`]); the object caps what it is asked at this.
pub const MAX_TAKE: u32 = 1_000;

/// One check: "may one more through, under this limit?", or, with `take > 1`, "may up to
/// `take` more through?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub count: u32,
    pub period: u32,
    /// How many requests to let through at once, if they fit; at least 1 is asked for.
    #[serde(default = "one")]
    pub take: u32,
}

fn one() -> u32 {
    1
}

impl CheckRequest {
    /// A check for one request.
    pub fn new(limit: Limit) -> Self {
        Self::taking(limit, 1)
    }

    /// A check for up to `take` requests (clamped to `1..=MAX_TAKE`).
    pub fn taking(limit: Limit, take: u32) -> Self {
        Self {
            count: limit.count(),
            period: limit.period_secs(),
            take: take.clamp(1, MAX_TAKE),
        }
    }

    /// How many requests are asked for, as the object reads it: within `1..=MAX_TAKE`
    /// whatever arrived.
    pub fn take(self) -> u32 {
        self.take.clamp(1, MAX_TAKE)
    }

    /// The limit, checked again on the object's side (a check request is input too).
    pub fn limit(self) -> Result<Limit, LimitError> {
        Limit::new(self.count, self.period)
    }
}

/// The object's answer to a check: the decision, and how many requests it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub decision: Decision,
    /// Requests let through: 0 when refused, else 1 up to the check's `take`.
    pub granted: u32,
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether this request may go on.
    pub allowed: bool,
    /// Requests per period under this limit (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests that would still be allowed right now (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the full burst is available again (`X-RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds to wait before retrying a refused request (`Retry-After`); 0 when allowed.
    pub retry_after_secs: u64,
}

impl Decision {
    /// The `X-RateLimit-*` headers of a response this decision applied to, and `Retry-After`
    /// when it refused the request.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset_secs.to_string()),
        ];
        if !self.allowed {
            headers.push(("retry-after", self.retry_after_secs.max(1).to_string()));
        }
        headers
    }
}

/// Of the limits that let a request through, the one closest to refusing the next (fewest
/// remaining, then the longest wait until full): the one a client should pace itself by.
pub fn tightest(decisions: &[Decision]) -> Option<&Decision> {
    decisions
        .iter()
        .min_by_key(|d| (d.remaining, std::cmp::Reverse(d.reset_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, remaining: u32, reset_secs: u64) -> Decision {
        Decision {
            allowed,
            limit: 10,
            remaining,
            reset_secs,
            retry_after_secs: if allowed { 0 } else { 7 },
        }
    }

    #[test]
    fn an_allowed_decision_has_the_three_ratelimit_headers_only() {
        let headers = decision(true, 4, 30).headers();
        assert_eq!(
            headers,
            [
                ("x-ratelimit-limit", "10".to_owned()),
                ("x-ratelimit-remaining", "4".to_owned()),
                ("x-ratelimit-reset", "30".to_owned()),
            ]
        );
    }

    #[test]
    fn a_refusal_adds_retry_after_and_never_says_zero() {
        let headers = decision(false, 0, 60).headers();
        assert!(headers.contains(&("retry-after", "7".to_owned())));
        let mut odd = decision(false, 0, 60);
        odd.retry_after_secs = 0;
        assert!(odd.headers().contains(&("retry-after", "1".to_owned())));
    }

    #[test]
    fn the_tightest_limit_is_the_one_with_fewest_remaining() {
        let decisions = [
            decision(true, 5, 10),
            decision(true, 2, 10),
            decision(true, 9, 99),
        ];
        assert_eq!(tightest(&decisions), Some(&decisions[1]));
        let tie = [decision(true, 2, 10), decision(true, 2, 40)];
        assert_eq!(tightest(&tie), Some(&tie[1]));
        assert_eq!(tightest(&[]), None);
    }

    #[test]
    fn a_check_request_round_trips_and_is_checked_on_arrival() {
        let request = CheckRequest::new(Limit::parse("30/60").unwrap());
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"count":30,"period":60,"take":1}"#);
        let back: CheckRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.limit(), Limit::parse("30/60"));
        let without_take: CheckRequest =
            serde_json::from_str(r#"{"count":30,"period":60}"#).unwrap();
        assert_eq!(without_take, request);
        let bad: CheckRequest = serde_json::from_str(r#"{"count":0,"period":60}"#).unwrap();
        assert_eq!(bad.limit(), Err(LimitError::Count));
    }

    #[test]
    fn a_decision_round_trips_through_json() {
        let original = decision(false, 0, 60);
        let back: Decision =
            serde_json::from_str(&serde_json::to_string(&original).unwrap()).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn what_a_check_takes_is_kept_between_one_and_the_cap() {
        let limit = Limit::parse("30/60").unwrap();
        assert_eq!(CheckRequest::taking(limit, 0).take(), 1);
        assert_eq!(CheckRequest::taking(limit, 20).take(), 20);
        assert_eq!(CheckRequest::taking(limit, u32::MAX).take(), MAX_TAKE);
        let forged: CheckRequest =
            serde_json::from_str(r#"{"count":30,"period":60,"take":4000000000}"#).unwrap();
        assert_eq!(forged.take(), MAX_TAKE);
    }
}
