//! The generic cell rate algorithm (GCRA): one stored number per key, the theoretical arrival
//! time (TAT) of the next request at the sustained rate.
//!
//! A limit of `N` per `S` seconds lets requests through one per emission interval `T = S/N`,
//! with a burst of up to `N` at once. A request at `now` is allowed when, after adding its
//! `T`, the TAT is at most `N * T` ahead of `now`; the new TAT is then stored. A refused
//! request stores nothing, so hammering a closed limit does not push its reopening further
//! away. Compared with a counter per fixed window, there is no window edge at which `2N`
//! requests get through, and the state is one integer whatever the limit.
//!
//! Everything is in whole microseconds, so the arithmetic is exact: `T` is `S/N` rounded up
//! to a microsecond (at most 1 µs stricter than asked; `N <= S * 10^6` keeps it at least
//! 1 µs), and the burst capacity is exactly `N * T`, so exactly `N` requests fit in it. The
//! clock is a parameter, so the boundaries are tested here without waiting.

use super::Limit;
use super::wire::Decision;

const MICROS_PER_SEC: i64 = 1_000_000;

/// The decision for one request, and the TAT to store when it was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// The new TAT (µs since the Unix epoch) to persist; `None` when nothing changes.
    pub store: Option<i64>,
}

/// The emission interval `T` in microseconds: the period divided by the count, rounded up.
fn interval_micros(limit: Limit) -> i64 {
    let period = i64::from(limit.period_secs()) * MICROS_PER_SEC;
    let count = i64::from(limit.count());
    // Both are positive (see `Limit::new`), so this neither divides by zero nor overflows.
    (period + count - 1) / count
}

/// Whole seconds, rounded up, of a non-negative span of microseconds.
fn ceil_secs(micros: i64) -> u64 {
    let micros = micros.max(0);
    let secs = micros / MICROS_PER_SEC + i64::from(micros % MICROS_PER_SEC != 0);
    u64::try_from(secs).unwrap_or(0)
}

/// Decides a request at `now` (µs since the Unix epoch) for a key whose stored TAT is `tat`
/// (`None`: never seen, or cleaned up after it went idle).
pub fn check(limit: Limit, tat: Option<i64>, now: i64) -> Outcome {
    check_many(limit, tat, now, 1).0
}

/// Like [`check`], but lets through up to `want` requests at once (at least one is asked
/// for), as many as fit now; returns the outcome and how many were granted (0 when refused).
///
/// This is what a Worker isolate's allowance is leased with (see
/// [`crate::rate_limit::allowance`]): the TAT moves by one interval per granted request, so
/// the object has counted every request of the lease before any of them is used, and a lease
/// can never let through more than the same requests asked for one by one would have. The
/// decision describes the state after the last granted request.
pub fn check_many(limit: Limit, tat: Option<i64>, now: i64, want: u32) -> (Outcome, u32) {
    let want = i64::from(want.max(1));
    let interval = interval_micros(limit);
    let capacity = interval.saturating_mul(i64::from(limit.count()));
    // A TAT in the past means the bucket is full: the burst starts from now.
    let start = tat.map_or(now, |tat| tat.max(now));
    let next = start.saturating_add(interval);
    let ahead = next.saturating_sub(now);

    if ahead <= capacity {
        // Whole requests that still fit after the first one; the grant takes up to `want - 1`
        // of them as well.
        let fit_after = (capacity - ahead) / interval;
        let extra = fit_after.min(want - 1);
        let granted = 1 + extra;
        let ahead = ahead.saturating_add(extra.saturating_mul(interval));
        let outcome = Outcome {
            decision: Decision {
                allowed: true,
                limit: limit.count(),
                remaining: u32::try_from(fit_after - extra).unwrap_or(u32::MAX),
                reset_secs: ceil_secs(ahead),
                retry_after_secs: 0,
            },
            store: Some(now.saturating_add(ahead)),
        };
        (outcome, u32::try_from(granted).unwrap_or(1))
    } else {
        let outcome = Outcome {
            decision: Decision {
                allowed: false,
                limit: limit.count(),
                remaining: 0,
                // Full again once the stored TAT has passed.
                reset_secs: ceil_secs(start - now),
                // One more request fits once `next - capacity` has passed; never say 0.
                retry_after_secs: ceil_secs(ahead - capacity).max(1),
            },
            store: None,
        };
        (outcome, 0)
    }
}

/// How long (ms) until a key whose TAT is `tat` is idle, i.e. back to a full bucket and so
/// the same as a key never seen, plus a second of slack; the object deletes its state then,
/// so keys seen once do not keep storage forever.
pub fn idle_after_ms(tat: i64, now: i64) -> i64 {
    tat.saturating_sub(now).max(0) / 1_000 + 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000 * MICROS_PER_SEC;
    const SEC: i64 = MICROS_PER_SEC;

    fn limit(text: &str) -> Limit {
        Limit::parse(text).unwrap()
    }

    /// Sends `n` requests at `now`, threading the stored TAT; returns the decisions and TAT.
    fn burst(
        limit: Limit,
        mut tat: Option<i64>,
        now: i64,
        n: usize,
    ) -> (Vec<Decision>, Option<i64>) {
        let mut decisions = Vec::new();
        for _ in 0..n {
            let outcome = check(limit, tat, now);
            if let Some(next) = outcome.store {
                tat = Some(next);
            }
            decisions.push(outcome.decision);
        }
        (decisions, tat)
    }

    #[test]
    fn exactly_n_requests_fit_in_a_burst_and_the_next_is_refused() {
        for text in [
            "1/1",
            "3/2",
            "7/1",
            "10/300",
            "30/60",
            "1200/60",
            "100000/60",
            "1000000/1",
        ] {
            let limit = limit(text);
            let n = limit.count() as usize;
            let (decisions, _) = burst(limit, None, NOW, n + 1);
            assert!(decisions[..n].iter().all(|d| d.allowed), "{text}");
            assert!(!decisions[n].allowed, "{text}: request N+1");
        }
    }

    #[test]
    fn remaining_counts_down_to_zero_through_a_burst() {
        let (decisions, _) = burst(limit("3/2"), None, NOW, 4);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(decisions.iter().all(|d| d.limit == 3));
    }

    #[test]
    fn a_refused_request_says_when_to_retry_and_changes_nothing() {
        let limit = limit("3/60");
        let (_, tat) = burst(limit, None, NOW, 3);
        let refused = check(limit, tat, NOW);
        assert_eq!(refused.store, None);
        assert!(!refused.decision.allowed);
        // One request's worth (20 s) must pass; the bucket is full again after 60 s.
        assert_eq!(refused.decision.retry_after_secs, 20);
        assert_eq!(refused.decision.reset_secs, 60);
        assert_eq!(refused.decision.remaining, 0);
        // Refusals do not push the reopening further away.
        let again = check(limit, tat, NOW + SEC);
        assert_eq!(again.decision.retry_after_secs, 19);
    }

    #[test]
    fn retry_after_is_never_zero_even_for_a_fraction_of_a_second() {
        let limit = limit("3/2");
        let (_, tat) = burst(limit, None, NOW, 3);
        let refused = check(limit, tat, NOW + 600_000);
        assert!(!refused.decision.allowed);
        assert_eq!(refused.decision.retry_after_secs, 1);
    }

    #[test]
    fn waiting_retry_after_lets_exactly_one_more_through() {
        let limit = limit("3/60");
        let (_, tat) = burst(limit, None, NOW, 3);
        let wait = check(limit, tat, NOW).decision.retry_after_secs;
        let later = NOW + i64::try_from(wait).unwrap() * SEC;
        let just_before = check(limit, tat, later - 1);
        assert!(!just_before.decision.allowed, "one microsecond early");
        let (decisions, _) = burst(limit, tat, later, 2);
        assert!(decisions[0].allowed);
        assert!(!decisions[1].allowed);
    }

    #[test]
    fn after_a_whole_period_the_full_burst_is_back() {
        let limit = limit("3/2");
        let (_, tat) = burst(limit, None, NOW, 4);
        let (decisions, _) = burst(limit, tat, NOW + 2 * SEC + 1, 4);
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
    }

    #[test]
    fn a_stale_tat_counts_as_a_full_bucket() {
        let limit = limit("10/300");
        let first = check(limit, Some(NOW - 3600 * SEC), NOW);
        assert_eq!(first, check(limit, None, NOW));
        assert_eq!(first.decision.remaining, 9);
    }

    #[test]
    fn reset_is_the_time_until_the_bucket_is_full_again() {
        let limit = limit("10/300");
        let one = check(limit, None, NOW);
        assert_eq!(one.decision.reset_secs, 30);
        let (decisions, _) = burst(limit, None, NOW, 10);
        assert_eq!(decisions[9].reset_secs, 300);
    }

    #[test]
    fn requests_at_the_sustained_rate_are_never_refused() {
        let limit = limit("10/10");
        let mut tat = None;
        for step in 0..100 {
            let outcome = check(limit, tat, NOW + step * SEC);
            assert!(outcome.decision.allowed, "step {step}");
            tat = outcome.store;
        }
    }

    #[test]
    fn a_tat_far_in_the_future_refuses_until_it_comes_close() {
        // E.g. the limit was lowered while a key had a long queue.
        let limit = limit("1/1");
        let refused = check(limit, Some(NOW + 100 * SEC), NOW);
        assert!(!refused.decision.allowed);
        assert_eq!(refused.decision.retry_after_secs, 100);
        assert_eq!(refused.decision.reset_secs, 100);
    }

    #[test]
    fn state_is_cleaned_up_a_second_after_the_bucket_is_full_again() {
        assert_eq!(idle_after_ms(NOW + 60 * SEC, NOW), 61_000);
        assert_eq!(idle_after_ms(NOW - SEC, NOW), 1_000);
        assert_eq!(idle_after_ms(i64::MAX, i64::MIN), i64::MAX / 1_000 + 1_000);
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let limit = limit("1000000/86400");
        let outcome = check(limit, Some(i64::MAX), 0);
        assert!(!outcome.decision.allowed);
        assert!(outcome.decision.retry_after_secs > 0);
        let outcome = check(limit, Some(i64::MIN), 0);
        assert!(outcome.decision.allowed);
    }
    #[test]
    fn a_lease_takes_as_many_as_fit_and_no_more_than_one_by_one_would() {
        let limit = limit("10/10");
        let (one_by_one, tat_single) = burst(limit, None, NOW, 4);
        let (lease, granted) = check_many(limit, None, NOW, 4);
        assert_eq!(granted, 4);
        assert_eq!(lease.store, tat_single);
        assert_eq!(lease.decision, one_by_one[3]);
        // Six are left; asking for eight grants six, then nothing until time passes.
        let (rest, granted) = check_many(limit, lease.store, NOW, 8);
        assert_eq!((granted, rest.decision.remaining), (6, 0));
        let (refused, granted) = check_many(limit, rest.store, NOW, 8);
        assert_eq!(granted, 0);
        assert!(!refused.decision.allowed);
        assert_eq!(refused.store, None);
        assert_eq!(refused.decision.retry_after_secs, 1);
    }

    #[test]
    fn a_lease_of_one_is_a_plain_check() {
        for text in ["3/300", "1200/60", "100000/60"] {
            let limit = limit(text);
            for tat in [None, Some(NOW + 5 * SEC), Some(NOW + 10_000 * SEC)] {
                assert_eq!(check_many(limit, tat, NOW, 1).0, check(limit, tat, NOW));
                assert_eq!(check_many(limit, tat, NOW, 0).0, check(limit, tat, NOW));
            }
        }
    }
}
