//! Health of the origin's two dependencies, each checked for real: a database round trip and
//! a wrap/unwrap through the HSM with the KEK.

use std::time::Duration;

use oxvault_core::health::{HealthResponse, HealthStatus, HsmStatus};
use sqlx::PgPool;

use crate::crypto::Keyring;
use crate::store;

/// A check that has not answered by then counts as failed: a health endpoint that hangs is
/// worse than one that says `degraded`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the database answers a query.
pub async fn database_ok(pool: &PgPool) -> bool {
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
pub async fn hsm_status(keyring: &Keyring) -> HsmStatus {
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

/// The overall report: both checks run concurrently.
pub async fn report(pool: &PgPool, keyring: &Keyring) -> HealthResponse {
    let (db, hsm) = tokio::join!(database_ok(pool), hsm_status(keyring));
    HealthResponse {
        status: HealthStatus::all([db, hsm == HsmStatus::Ok]),
        version: oxvault_core::VERSION.to_owned(),
    }
}
