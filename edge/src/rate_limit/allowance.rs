//! Per-isolate allowances for the per-identity limit: a Worker isolate leases a few requests'
//! worth of a subject's limit from its rate-limiter object at once and spends them locally,
//! so most authenticated requests are counted without a Durable Object round trip.
//!
//! Only [`LimitClass::Identity`](super::plan::LimitClass) is leased (see
//! [`LimitClass::leased`](super::plan::LimitClass::leased)). Logins, token exchanges and
//! share ids keep one exact check per request: there a single extra guess matters, and they
//! are rare enough that the round trip costs little.
//!
//! Why the limit still holds: a lease is granted by the object with
//! [`check_many`](super::gcra::check_many), which moves the key's TAT by one emission
//! interval per leased request, so every request of a lease is counted before it is used and
//! the object never grants more than one-by-one checks would have. What a lease changes is
//! *when* a counted request is spent: at most [`LEASE_MS`] later, after which an unspent
//! remainder is dropped (dropping only makes the limit stricter). So over any span of the
//! period, at most one lease more than the limit can pass, and a lease is at most a tenth of
//! the burst and at most what the sustained rate allows in [`LEASE_MS`]; a limit slower than
//! that (the tests' `3/300`, or a limit of under 10 requests) leases one request at a time,
//! which is exactly the per-request check. Requests counted in one isolate cannot be spent in
//! another, so several isolates serving one subject make the limit slightly stricter, never
//! looser.
//!
//! Pure and bounded (at most [`MAX_KEYS`] subjects per isolate); the clock is a parameter.

use std::collections::BTreeMap;

use super::Limit;
use super::wire::{Decision, Grant, MAX_TAKE};

/// How long leased requests may be spent after the object granted them.
pub const LEASE_MS: u64 = 1_000;

/// The most requests one lease takes.
pub const MAX_LEASE: u32 = 64;

/// The most subjects an isolate holds allowances for.
pub const MAX_KEYS: usize = 1_024;

/// How many requests to lease at once under `limit`: what the sustained rate allows in
/// [`LEASE_MS`], at most a tenth of the burst and [`MAX_LEASE`], and at least one.
pub fn lease_size(limit: Limit) -> u32 {
    let count = u64::from(limit.count());
    let period_ms = u64::from(limit.period_secs()).saturating_mul(1_000).max(1);
    let per_lease = count.saturating_mul(LEASE_MS) / period_ms;
    let size = per_lease
        .min(count / 10)
        .min(u64::from(MAX_LEASE.min(MAX_TAKE)));
    u32::try_from(size).unwrap_or(1).max(1)
}

/// Requests leased for one key and not spent yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Allowance {
    /// The limit they were leased under: a changed limit starts afresh.
    limit: Limit,
    /// Requests left to spend.
    left: u32,
    /// When the unspent ones are dropped (ms since the Unix epoch).
    expires_ms: u64,
    /// What the object said was still free beyond the lease when it granted it.
    object_remaining: u32,
    /// When the key's bucket is full again, as of the grant (ms since the Unix epoch).
    reset_at_ms: u64,
}

impl Allowance {
    /// The decision reported to the client for a request spent from this allowance (after
    /// `left` was counted down): what is free at the object plus what is left here.
    fn decision(&self, now_ms: u64) -> Decision {
        let reset_ms = self.reset_at_ms.saturating_sub(now_ms);
        Decision {
            allowed: true,
            limit: self.limit.count(),
            remaining: self.object_remaining.saturating_add(self.left),
            reset_secs: reset_ms.div_ceil(1_000),
            retry_after_secs: 0,
        }
    }
}

/// The allowances of one isolate, by rate-limit key.
#[derive(Debug, Default)]
pub struct Allowances {
    /// A `BTreeMap`: no hasher to seed from randomness in the Worker, and keys are subjects of
    /// verified tokens only.
    entries: BTreeMap<String, Allowance>,
}

impl Allowances {
    /// No allowances.
    pub const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Spends one request of `key`'s allowance under `limit` at `now_ms`, returning the
    /// decision to report; `None` when there is nothing to spend and the object must be
    /// asked ([`Allowances::keep`] then stores what it grants).
    pub fn spend(&mut self, key: &str, limit: Limit, now_ms: u64) -> Option<Decision> {
        let allowance = self.entries.get_mut(key)?;
        if allowance.limit != limit || allowance.left == 0 || now_ms >= allowance.expires_ms {
            self.entries.remove(key);
            return None;
        }
        allowance.left -= 1;
        Some(allowance.decision(now_ms))
    }

    /// Takes the object's `grant` for `key`, one of whose requests is the one that asked,
    /// keeps the rest for later requests, and returns the decision to report for the asking
    /// request. A refusal keeps nothing and is returned as it is.
    pub fn keep(&mut self, key: &str, limit: Limit, grant: &Grant, now_ms: u64) -> Decision {
        if !grant.decision.allowed || grant.granted == 0 {
            return grant.decision;
        }
        let fresh = Allowance {
            limit,
            left: grant.granted - 1,
            expires_ms: now_ms.saturating_add(LEASE_MS),
            object_remaining: grant.decision.remaining,
            reset_at_ms: now_ms.saturating_add(grant.decision.reset_secs.saturating_mul(1_000)),
        };
        let merged = match self.entries.get(key) {
            // Another request of this isolate leased meanwhile: both remainders are counted at
            // the object, so both may be spent, but no longer than the older lease allows.
            Some(old) if old.limit == limit && now_ms < old.expires_ms => Allowance {
                left: old.left.saturating_add(fresh.left),
                expires_ms: old.expires_ms,
                ..fresh
            },
            _ => fresh,
        };
        let decision = merged.decision(now_ms);
        if merged.left == 0 {
            self.entries.remove(key);
        } else if self.make_room(key, now_ms) {
            self.entries.insert(key.to_owned(), merged);
        }
        decision
    }

    /// Whether `key` can be stored: it is there already, or there is room once the expired
    /// and empty allowances are gone. When there is not, the lease's remainder is dropped
    /// (stricter, never looser).
    fn make_room(&mut self, key: &str, now_ms: u64) -> bool {
        if self.entries.len() < MAX_KEYS || self.entries.contains_key(key) {
            return true;
        }
        self.entries
            .retain(|_, kept| kept.left > 0 && now_ms < kept.expires_ms);
        self.entries.len() < MAX_KEYS
    }

    /// How many keys hold an allowance.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key holds an allowance.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::gcra::check_many;

    const NOW_MS: u64 = 1_750_000_000_000;

    fn limit(text: &str) -> Limit {
        Limit::parse(text).unwrap()
    }

    fn micros(ms: u64) -> i64 {
        i64::try_from(ms).unwrap() * 1_000
    }

    /// One isolate in front of one object: every request spends from the allowance or asks
    /// the object (which runs the real GCRA) for a lease. Returns how many of the requests,
    /// made at `times_ms`, were let through.
    fn run(limit: Limit, times_ms: &[u64]) -> usize {
        let mut allowances = Allowances::new();
        let mut tat = None;
        let mut passed = 0;
        for &now in times_ms {
            if allowances.spend("k", limit, now).is_some() {
                passed += 1;
                continue;
            }
            let (outcome, granted) = check_many(limit, tat, micros(now), lease_size(limit));
            if let Some(next) = outcome.store {
                tat = Some(next);
            }
            let grant = Grant {
                decision: outcome.decision,
                granted,
            };
            if allowances.keep("k", limit, &grant, now).allowed {
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn slow_and_small_limits_lease_one_request_at_a_time() {
        for text in ["3/300", "10/300", "9/1", "1/1", "30/60"] {
            assert_eq!(lease_size(limit(text)), 1, "{text}");
        }
    }

    #[test]
    fn fast_limits_lease_a_second_of_the_rate_within_a_tenth_of_the_burst_and_the_cap() {
        assert_eq!(lease_size(limit("1200/60")), 20);
        assert_eq!(lease_size(limit("100/1")), 10);
        assert_eq!(lease_size(limit("100000/60")), MAX_LEASE);
        assert_eq!(lease_size(limit("1000000/1")), MAX_LEASE);
    }

    #[test]
    fn a_burst_lets_exactly_the_limit_through_as_one_by_one_checks_would() {
        for text in ["3/300", "1200/60", "100/1", "640/60"] {
            let limit = limit(text);
            let n = limit.count() as usize;
            let times = vec![NOW_MS; n + 50];
            assert_eq!(run(limit, &times), n, "{text}");
        }
    }

    #[test]
    fn over_a_long_run_at_most_one_lease_more_than_the_limit_passes() {
        // 10 requests per millisecond for a minute against 1200/60: the GCRA alone lets
        // 1200 + 60 s at 20/s = 2400 through; leases may add at most one lease.
        let limit = limit("1200/60");
        let times: Vec<u64> = (0..600_000).map(|i| NOW_MS + i / 10).collect();
        let passed = run(limit, &times);
        let exact = 1200 + 60 * 20;
        assert!(
            passed <= exact + lease_size(limit) as usize,
            "{passed} > {exact} + one lease"
        );
        assert!(passed >= exact - lease_size(limit) as usize, "{passed}");
    }

    #[test]
    fn spent_requests_report_what_is_left_at_the_object_and_here() {
        let limit = limit("100/1");
        let mut allowances = Allowances::new();
        let (outcome, granted) = check_many(limit, None, micros(NOW_MS), lease_size(limit));
        assert_eq!(granted, 10);
        let grant = Grant {
            decision: outcome.decision,
            granted,
        };
        let first = allowances.keep("k", limit, &grant, NOW_MS);
        assert_eq!(first.remaining, 99);
        let remaining: Vec<u32> = (0..10)
            .map_while(|_| allowances.spend("k", limit, NOW_MS))
            .map(|decision| decision.remaining)
            .collect();
        assert_eq!(remaining, [98, 97, 96, 95, 94, 93, 92, 91, 90]);
        assert_eq!(allowances.spend("k", limit, NOW_MS), None);
        assert!(allowances.is_empty());
    }

    #[test]
    fn an_unspent_lease_expires_and_a_changed_limit_starts_afresh() {
        let fast = limit("100/1");
        let mut allowances = Allowances::new();
        let (outcome, granted) = check_many(fast, None, micros(NOW_MS), 10);
        let grant = Grant {
            decision: outcome.decision,
            granted,
        };
        allowances.keep("k", fast, &grant, NOW_MS);
        assert!(allowances.spend("k", fast, NOW_MS + LEASE_MS - 1).is_some());
        assert_eq!(allowances.spend("k", fast, NOW_MS + LEASE_MS), None);
        allowances.keep("k", fast, &grant, NOW_MS);
        assert_eq!(allowances.spend("k", limit("200/1"), NOW_MS), None);
        assert_eq!(
            allowances.spend("k", fast, NOW_MS),
            None,
            "dropped, not kept"
        );
    }

    #[test]
    fn a_refusal_is_reported_as_it_is_and_keeps_nothing() {
        let limit = limit("1/60");
        let (_, _) = check_many(limit, None, micros(NOW_MS), 1);
        let (refused, granted) =
            check_many(limit, Some(micros(NOW_MS) + 60_000_000), micros(NOW_MS), 1);
        let grant = Grant {
            decision: refused.decision,
            granted,
        };
        let mut allowances = Allowances::new();
        assert_eq!(
            allowances.keep("k", limit, &grant, NOW_MS),
            refused.decision
        );
        assert!(allowances.is_empty());
    }

    #[test]
    fn allowances_stay_bounded() {
        let limit = limit("100/1");
        let grant = Grant {
            decision: check_many(limit, None, micros(NOW_MS), 10).0.decision,
            granted: 10,
        };
        let mut allowances = Allowances::new();
        for i in 0..MAX_KEYS + 10 {
            allowances.keep(&format!("k{i}"), limit, &grant, NOW_MS);
        }
        assert_eq!(allowances.len(), MAX_KEYS);
        // Once the old leases expired, new keys get room again.
        allowances.keep("late", limit, &grant, NOW_MS + LEASE_MS);
        assert!(allowances.spend("late", limit, NOW_MS + LEASE_MS).is_some());
    }
}
