//! Idempotency keys of writes: the first answer to a (org, principal, key), kept for 24 hours
//! so a retried request gets the same answer instead of making a second version.
//!
//! Rows are written inside the transaction of the write they describe, after the write
//! itself: the answer exists exactly when the write does. A concurrent request with the same
//! key blocks on the primary key until that transaction ends, then finds the row taken
//! ([`record`] returns `false`) and replays it. Bodies hold metadata only, never values.
//!
//! Retention: a key is remembered for 24 hours (written into the SQL below). An older row is
//! ignored by [`find`] and taken over by [`record`], so a key may be reused after a day.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// The first answer given to a key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredResponse {
    /// SHA-256 of the request the key was first used with.
    pub request_hash: Vec<u8>,
    pub response_status: i32,
    pub response_body: sqlx::types::Json<serde_json::Value>,
}

/// The answer recorded for `key` in the last 24 hours, if any.
#[tracing::instrument(skip(conn, key))]
pub async fn find(
    conn: &mut PgConnection,
    org_id: Uuid,
    principal: &str,
    key: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys \
         WHERE org_id = $1 AND principal = $2 AND key = $3 \
           AND created_at > now() - interval '24 hours'",
    )
    .bind(org_id)
    .bind(principal)
    .bind(key)
    .fetch_optional(conn)
    .await?)
}

/// What to record.
#[derive(Debug)]
pub struct NewResponse<'a> {
    pub org_id: Uuid,
    pub principal: &'a str,
    pub key: &'a str,
    pub request_hash: &'a [u8],
    pub response_status: i32,
    pub response_body: &'a serde_json::Value,
}

/// Records the answer to a key, taking over a row older than 24 hours. `false`: a live row
/// holds the key already (another request got there first, possibly while this one waited
/// for its transaction to end); the caller rolls back and replays that row.
#[tracing::instrument(skip(conn, new), fields(principal = new.principal))]
pub async fn record(conn: &mut PgConnection, new: &NewResponse<'_>) -> Result<bool, StoreError> {
    // ON CONFLICT DO UPDATE ... WHERE: a fresh row is locked and left alone (no row
    // returned), a stale one is overwritten; either way no unique-violation error aborts the
    // transaction, and the decision is atomic against concurrent inserts of the same key.
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (org_id, principal, key, request_hash, response_status, \
           response_body) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (org_id, principal, key) DO UPDATE \
           SET request_hash = EXCLUDED.request_hash, \
               response_status = EXCLUDED.response_status, \
               response_body = EXCLUDED.response_body, created_at = now() \
           WHERE idempotency_keys.created_at <= now() - interval '24 hours'",
    )
    .bind(new.org_id)
    .bind(new.principal)
    .bind(new.key)
    .bind(new.request_hash)
    .bind(new.response_status)
    .bind(sqlx::types::Json(new.response_body))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
