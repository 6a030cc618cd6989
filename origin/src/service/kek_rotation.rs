//! KEK rotation (`oxvault-origin rotate-kek`): create a new key-encryption key in the HSM,
//! move every secret version's data key under it, and optionally retire the old KEKs.
//!
//! - **Online.** Origins keep serving throughout. Each batch is its own short transaction
//!   that locks only its rows; origins keep opening not-yet-moved versions with the old KEK
//!   (unwrap finds a KEK by the id in the blob) and start wrapping new versions under the new
//!   one at their next KEK listing (`OXVAULT_HSM_KEK_REFRESH_SECS`) or sooner.
//! - **Ciphertexts untouched.** A format-2 blob gets a new header (KEK id, wrapped data key);
//!   its nonce and ciphertext bytes are copied as they are. Format-1 blobs, whose value is
//!   bound to the KEK that first wrapped it, are sealed again as format 2 and counted apart
//!   (`resealed`).
//! - **Resumable and idempotent.** Only rows whose `kek_id` differs from the target are
//!   touched; `--resume` continues towards the current KEK without creating another.
//! - **Retiring** old KEKs (`--retire-old`) happens only after a pass leaves nothing under
//!   them: fence them (no more wrapping; origins that still wrap under one are refused, list
//!   again and move on), wait for writes that wrapped just before the fence to commit, sweep
//!   again, and destroy them only if no row is under them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxvault_core::ids::{OrgId, VaultId};
use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::crypto::envelope::{self, Place};
use crate::crypto::{CryptoError, KekAdmin, KekAdminError, KekInfo, Keyring, kek_id_hex};
use crate::store::StoreError;
use crate::store::rewrap::{self, Cursor, RewrapRow, RewrappedRow};

/// A pass that moves nothing while rows remain (they were locked) is retried this often.
const MAX_PASSES: u32 = 10;
/// Pause between passes that found only locked rows, times the pass number.
const PASS_BACKOFF: Duration = Duration::from_millis(200);

/// What `rotate-kek` was asked to do.
#[derive(Debug, Clone)]
pub struct RotationOptions {
    /// Secret versions per batch (one transaction each).
    pub batch: u32,
    /// Continue towards the current KEK instead of creating a new one.
    pub resume: bool,
    /// Destroy the old KEKs once nothing is wrapped under them.
    pub retire_old: bool,
    /// How long writes that wrapped under an old KEK just before it was fenced may take to
    /// commit, before the last sweep.
    pub settle: Duration,
}

/// What a rotation did; printed as JSON at the end.
#[derive(Debug, Clone, Serialize)]
pub struct RotationSummary {
    /// The KEK everything was moved under (hex).
    pub kek_id: String,
    /// Whether this run created it (false with `--resume`).
    pub created_kek: bool,
    /// Versions whose header alone was rewritten (nonce and ciphertext unchanged).
    pub rewrapped: u64,
    /// Format-1 versions sealed again as format 2.
    pub resealed: u64,
    /// Versions that did not open (altered, or their KEK is gone): left as they were.
    pub failed: u64,
    /// Versions still under another KEK at the end.
    pub remaining: i64,
    pub passes: u32,
    /// KEKs destroyed (hex).
    pub retired: Vec<String>,
    pub duration_ms: u64,
    pub rows_per_sec: f64,
}

impl RotationSummary {
    /// Whether every version is now under the target KEK (with `--retire-old`, that also
    /// means the old KEKs are destroyed: they are whenever nothing is left under them).
    pub fn complete(&self) -> bool {
        self.remaining == 0 && self.failed == 0
    }
}

/// Why a rotation stopped early. Whatever was committed stays valid: rerun with `--resume`.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("the HSM is unavailable; batches done so far are kept, rerun with --resume")]
    HsmUnavailable,
    #[error(
        "the current KEK changed during the rotation (a second rotate-kek?); batches done so \
         far are kept, rerun with --resume"
    )]
    KekChanged,
    #[error("the HSM refused: {0}")]
    Refused(String),
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
    #[error("a re-wrap task failed: {0}")]
    Task(String),
}

impl From<KekAdminError> for RotationError {
    fn from(err: KekAdminError) -> Self {
        match err {
            KekAdminError::Crypto(_) => Self::HsmUnavailable,
            KekAdminError::Refused(reason) => Self::Refused(reason),
        }
    }
}

impl From<sqlx::Error> for RotationError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// Counts over the whole run.
#[derive(Debug, Default)]
struct Totals {
    rewrapped: u64,
    resealed: u64,
    failed: HashSet<(Uuid, i32)>,
    passes: u32,
}

/// Runs a rotation with `options`; see the module docs.
pub async fn rotate(
    pool: &PgPool,
    admin: Arc<dyn KekAdmin>,
    keyring: &Keyring,
    options: &RotationOptions,
) -> Result<RotationSummary, RotationError> {
    let started = Instant::now();
    let (target, created_kek) = if options.resume {
        let keks = admin_call(&admin, |admin| admin.list_keks()).await?;
        let current = keks
            .into_iter()
            .find(|kek| kek.current)
            .ok_or_else(|| RotationError::Refused("the HSM has no current KEK".to_owned()))?;
        (current.id, false)
    } else {
        (admin_call(&admin, |admin| admin.create_kek()).await?, true)
    };
    let mut conn = pool.acquire().await?;
    let before = rewrap::count_by_kek(&mut conn).await?;
    drop(conn);
    let to_move: i64 = before
        .iter()
        .filter(|(id, _)| *id != target)
        .map(|(_, count)| count)
        .sum();
    tracing::info!(
        kek_id = %kek_id_hex(&target),
        created_kek,
        to_move,
        batch = options.batch,
        "KEK rotation started"
    );

    let mut totals = Totals::default();
    let mut remaining = sweep(pool, keyring, &target, options, &mut totals).await?;
    let mut retired = Vec::new();
    if options.retire_old {
        if remaining == 0 && totals.failed.is_empty() {
            let old: Vec<KekInfo> = admin_call(&admin, |admin| admin.list_keks())
                .await?
                .into_iter()
                .filter(|kek| kek.id != target)
                .collect();
            remaining = retire(pool, &admin, keyring, &target, &old, options, &mut totals).await?;
            if remaining == 0 {
                retired = old.iter().map(|kek| kek_id_hex(&kek.id)).collect();
            }
        } else {
            tracing::warn!(
                remaining,
                failed = totals.failed.len(),
                "not retiring old KEKs: secret versions are still under them"
            );
        }
    }

    let elapsed = started.elapsed();
    let moved = totals.rewrapped + totals.resealed;
    let summary = RotationSummary {
        kek_id: kek_id_hex(&target),
        created_kek,
        rewrapped: totals.rewrapped,
        resealed: totals.resealed,
        failed: totals.failed.len() as u64,
        remaining,
        passes: totals.passes,
        retired,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        rows_per_sec: if elapsed.is_zero() {
            0.0
        } else {
            moved as f64 / elapsed.as_secs_f64()
        },
    };
    tracing::info!(
        kek_id = %summary.kek_id,
        rewrapped = summary.rewrapped,
        resealed = summary.resealed,
        failed = summary.failed,
        remaining = summary.remaining,
        retired = summary.retired.len(),
        duration_ms = summary.duration_ms,
        rows_per_sec = summary.rows_per_sec,
        "KEK rotation finished"
    );
    Ok(summary)
}

/// Fences the old KEKs, waits for in-flight writes, sweeps again and destroys them if nothing
/// is left under them. Returns the versions still under another KEK than `target`.
async fn retire(
    pool: &PgPool,
    admin: &Arc<dyn KekAdmin>,
    keyring: &Keyring,
    target: &[u8],
    old: &[KekInfo],
    options: &RotationOptions,
    totals: &mut Totals,
) -> Result<i64, RotationError> {
    if old.is_empty() {
        return Ok(0);
    }
    for kek in old.iter().filter(|kek| kek.can_encrypt) {
        let id = kek.id.clone();
        admin_call(admin, move |admin| admin.fence_kek(&id)).await?;
    }
    // A write that wrapped its key under an old KEK just before the fence commits after it;
    // give it time to, so the sweep below sees it.
    tokio::time::sleep(options.settle).await;
    let remaining = sweep(pool, keyring, target, options, totals).await?;
    if remaining > 0 || !totals.failed.is_empty() {
        tracing::warn!(
            remaining,
            "not destroying the fenced KEKs: secret versions are still under them"
        );
        return Ok(remaining);
    }
    for kek in old {
        let id = kek.id.clone();
        admin_call(admin, move |admin| admin.destroy_kek(&id)).await?;
    }
    Ok(0)
}

/// Passes over the table until nothing is left under another KEK than `target`, only rows
/// that do not open are, or [`MAX_PASSES`] passes found only locked rows. Returns what is left.
async fn sweep(
    pool: &PgPool,
    keyring: &Keyring,
    target: &[u8],
    options: &RotationOptions,
    totals: &mut Totals,
) -> Result<i64, RotationError> {
    for attempt in 1..=MAX_PASSES {
        let moved_before = totals.rewrapped + totals.resealed;
        let failed_this_pass = pass(pool, keyring, target, options, totals).await?;
        totals.passes += 1;
        let remaining = remaining(pool, target).await?;
        if remaining == 0 || remaining <= failed_this_pass as i64 {
            return Ok(remaining);
        }
        if totals.rewrapped + totals.resealed == moved_before {
            tracing::info!(
                remaining,
                "rows still under older KEKs are locked; trying again"
            );
            tokio::time::sleep(PASS_BACKOFF * attempt).await;
        }
    }
    remaining(pool, target).await
}

async fn remaining(pool: &PgPool, target: &[u8]) -> Result<i64, RotationError> {
    let mut conn = pool.acquire().await?;
    Ok(rewrap::count_by_kek(&mut conn)
        .await?
        .iter()
        .filter(|(id, _)| id != target)
        .map(|(_, count)| count)
        .sum())
}

/// One pass over the table in key order, a batch per transaction. Returns how many rows did
/// not open.
async fn pass(
    pool: &PgPool,
    keyring: &Keyring,
    target: &[u8],
    options: &RotationOptions,
    totals: &mut Totals,
) -> Result<usize, RotationError> {
    let mut cursor = Cursor::START;
    let mut failed = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows = rewrap::lock_batch(&mut tx, target, cursor, i64::from(options.batch)).await?;
        let Some(last) = rows.last() else {
            return Ok(failed);
        };
        cursor = Cursor {
            secret_id: last.secret_id,
            version: last.version,
        };
        let locked = rows.len();
        let mut done = Vec::with_capacity(locked);
        let (mut rewrapped, mut resealed) = (0u64, 0u64);
        for (secret_id, version, result) in rewrap_rows(keyring, rows).await? {
            match result {
                Ok(moved) if moved.kek_id == target => {
                    if moved.resealed {
                        resealed += 1;
                    } else {
                        rewrapped += 1;
                    }
                    done.push(RewrappedRow {
                        secret_id,
                        version,
                        sealed: moved.blob,
                    });
                }
                // Dropping the transaction rolls the batch back.
                Ok(_) => return Err(RotationError::KekChanged),
                Err(CryptoError::Unavailable) => return Err(RotationError::HsmUnavailable),
                Err(CryptoError::Integrity | CryptoError::KekMissing) => {
                    tracing::error!(
                        %secret_id,
                        version,
                        "a secret version did not open; it stays under its KEK"
                    );
                    failed += 1;
                    totals.failed.insert((secret_id, version));
                }
            }
        }
        rewrap::store_batch(&mut tx, target, &done).await?;
        tx.commit().await?;
        totals.rewrapped += rewrapped;
        totals.resealed += resealed;
        tracing::info!(
            locked,
            rewrapped,
            resealed,
            failed,
            total_moved = totals.rewrapped + totals.resealed,
            "re-wrapped a batch"
        );
    }
}

type RowResult = (Uuid, i32, Result<envelope::Rewrapped, CryptoError>);

/// Re-wraps a batch's rows concurrently; the keyring bounds how many HSM calls run at once.
async fn rewrap_rows(
    keyring: &Keyring,
    rows: Vec<RewrapRow>,
) -> Result<Vec<RowResult>, RotationError> {
    let mut tasks = JoinSet::new();
    for row in rows {
        let keyring = keyring.clone();
        tasks.spawn(async move {
            let place = Place {
                org: OrgId::from_uuid(row.org_id),
                vault: VaultId::from_uuid(row.vault_id),
                path: &row.path,
                version: row.version,
            };
            let result = envelope::rewrap(&keyring, place, &row.sealed).await;
            (row.secret_id, row.version, result)
        });
    }
    let mut results = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.map_err(|err| RotationError::Task(err.to_string()))?);
    }
    Ok(results)
}

/// Runs a blocking KEK administration call off the executor.
async fn admin_call<T, F>(admin: &Arc<dyn KekAdmin>, op: F) -> Result<T, RotationError>
where
    T: Send + 'static,
    F: FnOnce(&dyn KekAdmin) -> Result<T, KekAdminError> + Send + 'static,
{
    let admin = Arc::clone(admin);
    tokio::task::spawn_blocking(move || op(admin.as_ref()))
        .await
        .map_err(|err| RotationError::Task(err.to_string()))?
        .map_err(RotationError::from)
}
