//! Health of the origin's two dependencies, each checked for real: a database round trip and
//! a wrap/unwrap through the HSM with the KEK.
//!
//! The health routes are public, so one check is shared by every caller for
//! [`PROBE_TTL`]: a flood of health requests costs the HSM one round trip per window, not one
//! per request. A failure (or a recovery) therefore shows at most that long after it happens.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxvault_core::health::{HealthResponse, HealthStatus, HsmStatus};
use sqlx::PgPool;

use crate::crypto::Keyring;
use crate::store;

/// A check that has not answered by then counts as failed: a health endpoint that hangs is
/// worse than one that says `degraded`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one probe's answer is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(2);

/// The last answer of an expensive check, reused for a while; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ProbeCache<T> {
    ttl: Duration,
    // A tokio mutex, held across the probe on purpose: callers that arrive while a probe runs
    // wait for its answer instead of starting probes of their own. If the caller running it
    // goes away, the lock is released and the next one probes.
    last: Arc<tokio::sync::Mutex<Option<(Instant, T)>>>,
}

impl<T: Copy> ProbeCache<T> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The last answer if it is younger than the TTL, else a fresh one from `probe` (which
    /// concurrent callers then share). Failures are kept as long as successes, so a broken
    /// dependency is not probed on every request either.
    pub async fn get_or_probe<F, Fut>(&self, probe: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, value)) = *last
            && at.elapsed() < self.ttl
        {
            return value;
        }
        let value = probe().await;
        // Timed from the answer, so a slow probe is not stale the moment it returns.
        *last = Some((Instant::now(), value));
        value
    }
}

/// The origin's health, each check run at most once per [`PROBE_TTL`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    pool: PgPool,
    keyring: Keyring,
    database: ProbeCache<bool>,
    hsm: ProbeCache<HsmStatus>,
}

impl Health {
    pub fn new(pool: PgPool, keyring: Keyring) -> Self {
        Self {
            pool,
            keyring,
            database: ProbeCache::new(PROBE_TTL),
            hsm: ProbeCache::new(PROBE_TTL),
        }
    }

    /// Whether the database answers (cached).
    pub async fn database_ok(&self) -> bool {
        self.database.get_or_probe(|| database_ok(&self.pool)).await
    }

    /// Whether the HSM works (cached).
    pub async fn hsm_status(&self) -> HsmStatus {
        self.hsm.get_or_probe(|| hsm_status(&self.keyring)).await
    }

    /// The overall report: both checks run concurrently.
    pub async fn report(&self) -> HealthResponse {
        let (database, hsm) = tokio::join!(self.database_ok(), self.hsm_status());
        report(database, hsm)
    }
}

/// `healthy` only when both checks passed.
fn report(database: bool, hsm: HsmStatus) -> HealthResponse {
    HealthResponse {
        status: HealthStatus::all([database, hsm == HsmStatus::Ok]),
        version: oxvault_core::VERSION.to_owned(),
    }
}

/// Whether the database answers a query.
async fn database_ok(pool: &PgPool) -> bool {
    match tokio::time::timeout(CHECK_TIMEOUT, store::ping(pool)).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health: the database did not answer");
            false
        }
        Err(_) => {
            tracing::warn!("health: the database check timed out");
            false
        }
    }
}

/// Whether the HSM wraps and unwraps a probe key with the KEK.
async fn hsm_status(keyring: &Keyring) -> HsmStatus {
    match tokio::time::timeout(CHECK_TIMEOUT, keyring.probe()).await {
        Ok(Ok(())) => HsmStatus::Ok,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health: the HSM probe failed");
            HsmStatus::Unavailable
        }
        Err(_) => {
            tracing::warn!("health: the HSM probe timed out");
            HsmStatus::Unavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A probe that takes a while and counts its runs, answering `answer`.
    async fn slow_probe(runs: &AtomicU32, answer: u32) -> u32 {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_probe() {
        let cache = ProbeCache::new(Duration::from_secs(60));
        let runs = Arc::new(AtomicU32::new(0));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            callers.spawn(async move { cache.get_or_probe(|| slow_probe(&runs, 7)).await });
        }
        while let Some(answer) = callers.join_next().await {
            assert_eq!(answer.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_is_reused_within_the_ttl_and_replaced_after_it() {
        let cache = ProbeCache::new(Duration::from_millis(200));
        let runs = AtomicU32::new(0);
        assert_eq!(cache.get_or_probe(|| slow_probe(&runs, 1)).await, 1);
        // A failure (here: another answer) within the window is not seen yet...
        assert_eq!(cache.get_or_probe(|| slow_probe(&runs, 2)).await, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // ...and is once the window has passed; a recovery likewise.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get_or_probe(|| slow_probe(&runs, 2)).await, 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get_or_probe(|| slow_probe(&runs, 3)).await, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_probe_abandoned_half_way_leaves_the_next_caller_to_probe() {
        let cache = ProbeCache::new(Duration::from_secs(60));
        let runs = AtomicU32::new(0);
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            cache.get_or_probe(|| slow_probe(&runs, 1)),
        )
        .await;
        assert!(abandoned.is_err());
        assert_eq!(cache.get_or_probe(|| slow_probe(&runs, 2)).await, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_report_is_healthy_only_when_both_checks_pass() {
        assert_eq!(report(true, HsmStatus::Ok).status, HealthStatus::Healthy);
        assert_eq!(report(false, HsmStatus::Ok).status, HealthStatus::Degraded);
        assert_eq!(
            report(true, HsmStatus::Unavailable).status,
            HealthStatus::Degraded
        );
    }
}
