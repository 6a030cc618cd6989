//! The origin's own coarse rate limit: the second line behind the edge's exact, global limits.
//!
//! The edge limits every client precisely (Durable Objects), but the origin may be reached
//! directly (a misrouted load balancer, an internal caller), and its costly routes — password
//! hashing, token exchanges, share lookups — must not become a way to burn its CPU. So each
//! origin process keeps a per-client GCRA bucket for those routes in memory. It is per
//! process on purpose: with N origins a client gets up to N times the limit, which is fine for
//! a coarse guard and needs no shared state. The exact limits are the edge's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use oxvault_core::rate_limit::{Limit, client_block};

use super::AppState;
use super::client::ClientContext;
use super::error::retry_later;

/// Most clients tracked at once; beyond it, idle entries are dropped first, and a flood of
/// distinct addresses is refused rather than allowed to grow memory without bound.
const MAX_TRACKED: usize = 100_000;

/// A refusal: how long until one more request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// Per-client buckets for one [`Limit`] (the edge's `N/S` form); cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Throttle {
    limit: Limit,
    // Theoretical arrival time per client (GCRA). A std mutex: held for a map lookup, never
    // across an await.
    buckets: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

impl Throttle {
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one request from `client` at `now`: allowed, or refused with a wait.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Refused> {
        let period = Duration::from_secs(self.limit.period_secs().into());
        // The time one request "costs": the period shared out evenly.
        let interval = period / self.limit.count();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            // Entries whose arrival time has passed carry no state: drop them.
            buckets.retain(|_, tat| *tat > now);
            if buckets.len() >= MAX_TRACKED {
                return Err(Refused {
                    retry_after: interval,
                });
            }
        }
        let tat = buckets.get(&client).copied().unwrap_or(now).max(now);
        let next = tat + interval;
        // A full burst lets `next` run up to one period ahead of now, no further.
        if next.duration_since(now) > period {
            return Err(Refused {
                retry_after: next.duration_since(now) - period,
            });
        }
        buckets.insert(client, next);
        Ok(())
    }
}

/// The routes that cost the origin real work per request (Argon2, token signing in the HSM,
/// share lookups that hash a passphrase), and so the ones worth guarding.
fn is_costly(method: &Method, path: &str) -> bool {
    match *method {
        // Creating a share hashes its passphrase.
        Method::POST if path.starts_with("/v1/secrets/") && path.ends_with("/share") => true,
        Method::POST => matches!(
            path,
            "/v1/auth/signup"
                | "/v1/auth/token"
                | "/v1/auth/refresh"
                | "/v1/auth/agent-token"
                | "/v1/auth/api-key-token"
                | "/v1/auth/google"
                | "/v1/auth/change-password"
        ),
        Method::GET | Method::HEAD => path.starts_with("/v1/share/"),
        _ => false,
    }
}

/// Middleware: refuses a costly request (429 with `Retry-After`) when its client is over the
/// limit. The client is the one [`ClientContext`] names (the edge's word, or the TCP peer);
/// requests whose address is unknown share one bucket, so they cannot dodge the limit.
pub async fn guard_costly_routes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !is_costly(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let client = ClientContext::of(&parts, &state.edge_trust)
        .ip
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), client_block);
    match state.throttle.check(client, Instant::now()) {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(refused) => {
            tracing::warn!(path = %parts.uri.path(), "the origin's own rate limit refused a request");
            // Whole seconds, rounded up.
            let secs =
                refused.retry_after.as_secs() + u64::from(refused.retry_after.subsec_nanos() > 0);
            retry_later("too many requests from this client; retry later", secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_costly_routes_are_guarded() {
        assert!(is_costly(&Method::POST, "/v1/secrets/abc/share"));
        assert!(is_costly(&Method::POST, "/v1/auth/token"));
        assert!(is_costly(&Method::POST, "/v1/auth/agent-token"));
        assert!(is_costly(&Method::GET, "/v1/share/abc"));
        assert!(is_costly(&Method::HEAD, "/v1/share/abc/status"));
        assert!(!is_costly(&Method::GET, "/v1/auth/token"));
        assert!(!is_costly(&Method::GET, "/v1/vaults"));
        assert!(!is_costly(&Method::DELETE, "/v1/share/abc"));
        assert!(!is_costly(&Method::GET, "/v1/shares/outbound"));
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn three_per_three_seconds() -> Throttle {
        Throttle::new(Limit::from_const(3, 3))
    }

    #[test]
    fn a_burst_of_the_limit_passes_and_the_next_is_refused() {
        let throttle = three_per_three_seconds();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.check(A, now), Ok(()));
        }
        let refused = throttle.check(A, now).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn one_interval_later_one_more_passes() {
        let throttle = three_per_three_seconds();
        let now = Instant::now();
        for _ in 0..3 {
            throttle.check(A, now).unwrap();
        }
        assert!(throttle.check(A, now + Duration::from_millis(999)).is_err());
        assert_eq!(throttle.check(A, now + Duration::from_secs(1)), Ok(()));
        assert!(throttle.check(A, now + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn clients_have_their_own_buckets() {
        let throttle = three_per_three_seconds();
        let now = Instant::now();
        for _ in 0..3 {
            throttle.check(A, now).unwrap();
        }
        assert!(throttle.check(A, now).is_err());
        assert_eq!(throttle.check(B, now), Ok(()));
    }

    #[test]
    fn refusals_do_not_push_the_wait_further_out() {
        let throttle = three_per_three_seconds();
        let now = Instant::now();
        for _ in 0..3 {
            throttle.check(A, now).unwrap();
        }
        for _ in 0..100 {
            assert!(throttle.check(A, now).is_err());
        }
        assert_eq!(throttle.check(A, now + Duration::from_secs(1)), Ok(()));
    }
}
