//! Personal API keys (`1ck_`): a user's long-lived credentials, exchanged for sessions.
//!
//! Only a key's lookup prefix and its SHA-256 hash are stored. Every statement that a caller
//! reaches names the org and the user, so another org's or another user's key id finds
//! nothing; only the exchange, which starts from the key itself, looks a key up by prefix.

use chrono::{DateTime, Utc};
use oxvault_core::page::TimeKey;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// A key as its owner sees it: never the hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKeyRow {
    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What a new key is made of.
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub key_prefix: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for NewApiKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// A row whose lookup prefix matched a presented key; the hash decides. The org and user
/// name whom a refused exchange of a matched (revoked, expired) key was for.
#[derive(Clone, sqlx::FromRow)]
pub struct KeyCandidate {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub key_hash: Vec<u8>,
}

impl std::fmt::Debug for KeyCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCandidate")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A key that was usable when it was marked used, with what a session from it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsedKey {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str =
    "id, name, key_prefix, scopes, expires_at, last_used_at, revoked_at, created_at";

#[tracing::instrument(skip(conn, key), fields(key_id = %key.id))]
pub async fn insert(conn: &mut PgConnection, key: &NewApiKey<'_>) -> Result<ApiKeyRow, StoreError> {
    let sql = format!(
        "INSERT INTO api_keys (id, org_id, user_id, name, key_prefix, key_hash, scopes, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {KEY_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(key.id)
        .bind(key.org_id)
        .bind(key.user_id)
        .bind(key.name)
        .bind(key.key_prefix)
        .bind(key.key_hash)
        .bind(key.scopes)
        .bind(key.expires_at)
        .fetch_one(conn)
        .await?)
}

/// Up to `limit` keys of one user of one org, newest first, revoked ones included, after
/// `after` (keyset on `(created_at, id)`).
#[tracing::instrument(skip(conn))]
pub async fn list_for_user(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND user_id = $2 \
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(user_id)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Rows whose lookup prefix is `key_prefix` (indexed). Usually one; the caller compares
/// hashes to pick the right one, if any.
#[tracing::instrument(skip(conn))]
pub async fn candidates(
    conn: &mut PgConnection,
    key_prefix: &str,
) -> Result<Vec<KeyCandidate>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, user_id, key_hash FROM api_keys WHERE key_prefix = $1 LIMIT 16",
    )
    .bind(key_prefix)
    .fetch_all(conn)
    .await?)
}

/// Marks a key used, if it is still neither revoked nor expired, and returns it.
///
/// The check and the write are one UPDATE, which holds the row lock until the transaction
/// ends: a concurrent revocation either lands first (and this finds nothing) or waits, and
/// then also revokes the session this transaction opens.
#[tracing::instrument(skip(conn))]
pub async fn mark_used(
    conn: &mut PgConnection,
    key_id: Uuid,
) -> Result<Option<UsedKey>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE api_keys SET last_used_at = now() \
         WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) \
         RETURNING org_id, user_id, scopes, expires_at",
    )
    .bind(key_id)
    .fetch_optional(conn)
    .await?)
}

/// Revokes a key of `user_id` in `org_id` (again is harmless). `false`: no such key there.
#[tracing::instrument(skip(conn))]
pub async fn revoke(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    key_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) \
         WHERE id = $1 AND org_id = $2 AND user_id = $3",
    )
    .bind(key_id)
    .bind(org_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every key of a user, whatever its org; returns how many were live. Their sessions
/// end with the user's (see `sessions::revoke_other_sessions`).
#[tracing::instrument(skip(conn))]
pub async fn revoke_all_of_user(conn: &mut PgConnection, user_id: Uuid) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every session opened by exchanging the key, so the access tokens minted from it
/// stop at once.
#[tracing::instrument(skip(conn))]
pub async fn revoke_sessions(conn: &mut PgConnection, key_id: Uuid) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now() \
         WHERE api_key_id = $1 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Ends the key's sessions no later than the key itself expires: a session must not outlive
/// the credential it came from.
#[tracing::instrument(skip(conn))]
pub async fn cap_sessions_at(
    conn: &mut PgConnection,
    key_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE auth_sessions SET expires_at = $2 WHERE api_key_id = $1 AND expires_at > $2",
    )
    .bind(key_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}
