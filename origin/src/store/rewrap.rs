//! SQL of KEK rotation: find the secret versions whose data key is not yet wrapped under the
//! target KEK, batch by batch, and store their re-wrapped blobs.
//!
//! Batches walk the primary key (`secret_id, version`) from a cursor, so each batch is one
//! index range scan however many rows are already done, and a rerun starts over cheaply: rows
//! under the target KEK are passed over, never touched again.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// A secret version to re-wrap, with the place its blob is bound to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RewrapRow {
    pub secret_id: Uuid,
    pub version: i32,
    pub org_id: Uuid,
    pub vault_id: Uuid,
    pub path: String,
    pub sealed: Vec<u8>,
}

/// Where a pass stands: the last row it looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub secret_id: Uuid,
    pub version: i32,
}

impl Cursor {
    /// Before every row (versions start at 1).
    pub const START: Self = Self {
        secret_id: Uuid::nil(),
        version: 0,
    };
}

/// Locks up to `limit` versions after `after` whose data key is not under `target`, in key
/// order, until the transaction ends.
///
/// `FOR NO KEY UPDATE` is the lock an UPDATE of non-key columns takes, so a reader's access
/// count increment waits for this batch (milliseconds) rather than reading a blob about to
/// change under it. `SKIP LOCKED` passes over rows someone else holds (a reader mid-update,
/// or a second `rotate-kek`): `LIMIT` counts only rows it could lock, so an empty batch means
/// nothing after `after` is left but locked rows, and the caller makes another pass for those.
#[tracing::instrument(skip(conn, target))]
pub async fn lock_batch(
    conn: &mut PgConnection,
    target: &[u8],
    after: Cursor,
    limit: i64,
) -> Result<Vec<RewrapRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT sv.secret_id, sv.version, s.org_id, s.vault_id, s.path, sv.sealed \
         FROM secret_versions sv \
         JOIN secrets s ON s.id = sv.secret_id \
         WHERE (sv.secret_id, sv.version) > ($2, $3) AND sv.kek_id <> $1 \
         ORDER BY sv.secret_id, sv.version \
         LIMIT $4 \
         FOR NO KEY UPDATE OF sv SKIP LOCKED",
    )
    .bind(target)
    .bind(after.secret_id)
    .bind(after.version)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A re-wrapped blob to store.
#[derive(Debug, Clone)]
pub struct RewrappedRow {
    pub secret_id: Uuid,
    pub version: i32,
    pub sealed: Vec<u8>,
}

/// Stores re-wrapped blobs, all wrapped under `kek_id`, in one statement. Returns how many
/// rows changed.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn store_batch(
    conn: &mut PgConnection,
    kek_id: &[u8],
    rows: &[RewrappedRow],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let secret_ids: Vec<Uuid> = rows.iter().map(|row| row.secret_id).collect();
    let versions: Vec<i32> = rows.iter().map(|row| row.version).collect();
    let sealed: Vec<Vec<u8>> = rows.iter().map(|row| row.sealed.clone()).collect();
    let done = sqlx::query(
        "UPDATE secret_versions sv SET sealed = u.sealed, kek_id = $1 \
         FROM UNNEST($2::uuid[], $3::int4[], $4::bytea[]) AS u(secret_id, version, sealed) \
         WHERE sv.secret_id = u.secret_id AND sv.version = u.version",
    )
    .bind(kek_id)
    .bind(&secret_ids)
    .bind(&versions)
    .bind(&sealed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// How many versions have their data key under each KEK.
#[tracing::instrument(skip(conn))]
pub async fn count_by_kek(conn: &mut PgConnection) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT kek_id, count(*) FROM secret_versions GROUP BY kek_id ORDER BY kek_id",
    )
    .fetch_all(conn)
    .await?)
}
