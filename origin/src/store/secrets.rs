//! Secrets and their versions. Values are stored only as envelope blobs.

use chrono::{DateTime, Utc};
use oxvault_core::vault::SecretType;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use super::vaults::Creator;

/// A secret version as read, with the blob to open.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub secret_id: Uuid,
    pub path: String,
    pub version: i32,
    #[sqlx(rename = "type", try_from = "String")]
    pub secret_type: SecretType,
    pub metadata: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    pub sealed: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by_user: Option<Uuid>,
    pub created_by_agent: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A secret's metadata, for listings (no blob).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MetadataRow {
    pub secret_id: Uuid,
    pub path: String,
    pub version: i32,
    #[sqlx(rename = "type", try_from = "String")]
    pub secret_type: SecretType,
    pub metadata: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// Allocates the next version of `path`: creates the secret on its first PUT, and after a
/// delete starts a new one (new id, version 1; the deleted one stays a tombstone). The row
/// stays locked until the transaction ends, so concurrent PUTs get consecutive versions.
#[tracing::instrument(skip(conn, path))]
pub async fn allocate_version(
    conn: &mut PgConnection,
    org_id: Uuid,
    vault_id: Uuid,
    path: &str,
) -> Result<(Uuid, i32), StoreError> {
    Ok(sqlx::query_as(
        "INSERT INTO secrets (id, org_id, vault_id, path, current_version) \
         VALUES ($1, $2, $3, $4, 1) \
         ON CONFLICT (vault_id, path) WHERE deleted_at IS NULL DO UPDATE \
           SET current_version = secrets.current_version + 1, updated_at = now() \
         RETURNING id, current_version",
    )
    .bind(Uuid::new_v4())
    .bind(org_id)
    .bind(vault_id)
    .bind(path)
    .fetch_one(conn)
    .await?)
}

/// A secret's row as locked by [`lock`].
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct LockedSecret {
    pub secret_id: Uuid,
    pub current_version: i32,
    pub deleted: bool,
}

/// Locks the row of `path` until the transaction ends and returns it: the live secret, else
/// the newest tombstone (`deleted`); `None` (and no lock) when the path never existed. Writers that check the current version (`If-Match`, rotate)
/// call this first, so the check and the new version see the same state: a second writer
/// blocks here until the first commits, then reads the version the first one wrote.
///
/// One table only: with a join, PostgreSQL's re-check of a row updated meanwhile reuses the
/// other table's old row and could drop the match instead of returning the new state.
#[tracing::instrument(skip(conn, path))]
pub async fn lock(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
) -> Result<Option<LockedSecret>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id AS secret_id, current_version, deleted_at IS NOT NULL AS deleted \
         FROM secrets WHERE vault_id = $1 AND path = $2 \
         ORDER BY deleted_at DESC NULLS FIRST LIMIT 1 FOR UPDATE",
    )
    .bind(vault_id)
    .bind(path)
    .fetch_optional(conn)
    .await?)
}

/// The type and metadata of one version (what a rotation carries over).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionKind {
    #[sqlx(rename = "type", try_from = "String")]
    pub secret_type: SecretType,
    pub metadata: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
}

#[tracing::instrument(skip(conn))]
pub async fn version_kind(
    conn: &mut PgConnection,
    secret_id: Uuid,
    version: i32,
) -> Result<Option<VersionKind>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT type, metadata FROM secret_versions WHERE secret_id = $1 AND version = $2",
    )
    .bind(secret_id)
    .bind(version)
    .fetch_optional(conn)
    .await?)
}

/// What a new version is made of.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub secret_id: Uuid,
    pub version: i32,
    pub secret_type: SecretType,
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
    pub sealed: &'a [u8],
    pub kek_id: &'a [u8],
    pub expires_at: Option<DateTime<Utc>>,
    pub max_access_count: Option<i32>,
    pub creator: Creator,
}

#[tracing::instrument(skip(conn, new), fields(secret_id = %new.secret_id, version = new.version))]
pub async fn insert_version(
    conn: &mut PgConnection,
    new: &NewVersion<'_>,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO secret_versions (secret_id, version, type, metadata, sealed, kek_id, \
           expires_at, max_access_count, created_by_user, created_by_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING created_at",
    )
    .bind(new.secret_id)
    .bind(new.version)
    .bind(new.secret_type.as_str())
    .bind(sqlx::types::Json(new.metadata))
    .bind(new.sealed)
    .bind(new.kek_id)
    .bind(new.expires_at)
    .bind(new.max_access_count)
    .bind(new.creator.user)
    .bind(new.creator.agent)
    .fetch_one(conn)
    .await?)
}

/// Counts one access to a limited version of a live secret and reads it — in one statement,
/// so the check against `max_access_count` and the increment cannot interleave with another
/// reader's. `version: None` reads the current version. `None`: nothing readable (missing,
/// deleted, expired, exhausted or disabled; [`why_unreadable`] and
/// [`why_version_unreadable`] tell which).
#[tracing::instrument(skip(conn, path))]
pub async fn count_access(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
    version: Option<i32>,
) -> Result<Option<VersionRow>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE secret_versions sv SET access_count = sv.access_count + 1 \
         FROM secrets s \
         WHERE s.vault_id = $1 AND s.path = $2 AND s.deleted_at IS NULL \
           AND sv.secret_id = s.id AND sv.version = COALESCE($3, s.current_version) \
           AND sv.disabled_at IS NULL \
           AND (sv.expires_at IS NULL OR sv.expires_at > now()) \
           AND (sv.max_access_count IS NULL OR sv.access_count < sv.max_access_count) \
         RETURNING s.id AS secret_id, s.path, sv.version, sv.type, sv.metadata, sv.sealed, \
                   sv.expires_at, sv.created_by_user, sv.created_by_agent, sv.created_at, \
                   sv.disabled_at",
    )
    .bind(vault_id)
    .bind(path)
    .bind(version)
    .fetch_optional(conn)
    .await?)
}

/// Up to `limit` versions of a live secret, newest first, below version `before` when given:
/// metadata only. Empty when the path is not live ([`why_unreadable`] tells why).
#[tracing::instrument(skip(conn, path))]
pub async fn list_versions(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
    before: Option<i32>,
    limit: i64,
) -> Result<Vec<MetadataRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.id AS secret_id, s.path, sv.version, sv.type, sv.metadata, sv.expires_at, \
                sv.created_at, sv.disabled_at \
         FROM secrets s JOIN secret_versions sv ON sv.secret_id = s.id \
         WHERE s.vault_id = $1 AND s.path = $2 AND s.deleted_at IS NULL \
           AND ($3::integer IS NULL OR sv.version < $3) \
         ORDER BY sv.version DESC LIMIT $4",
    )
    .bind(vault_id)
    .bind(path)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Erases the versions of `secret_id` older than its newest `keep` (which the write that
/// just made version `newest` keeps): their blobs go, and reads of them answer 410 like
/// disabled ones ([`why_version_unreadable`]); a share pinned to one stops opening. Called
/// on the write's transaction, under its row lock, so the count never overshoots. Returns
/// how many were erased.
#[tracing::instrument(skip(conn))]
pub async fn prune_versions(
    conn: &mut PgConnection,
    secret_id: Uuid,
    newest: i32,
    keep: u32,
) -> Result<u64, StoreError> {
    let keep = i32::try_from(keep).unwrap_or(i32::MAX);
    let done = sqlx::query("DELETE FROM secret_versions WHERE secret_id = $1 AND version <= $2")
        .bind(secret_id)
        .bind(newest.saturating_sub(keep))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Disables one version of a live secret for good (disabling it again changes nothing).
/// `false`: no such version of a live secret ([`why_version_unreadable`] tells why).
#[tracing::instrument(skip(conn, path))]
pub async fn disable_version(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
    version: i32,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secret_versions sv SET disabled_at = COALESCE(sv.disabled_at, now()) \
         FROM secrets s \
         WHERE s.vault_id = $1 AND s.path = $2 AND s.deleted_at IS NULL \
           AND sv.secret_id = s.id AND sv.version = $3",
    )
    .bind(vault_id)
    .bind(path)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Why a version did not read: [`Unreadable::Gone`] when it exists (disabled, expired, used
/// up) or existed (pruned past the versions kept, or in a secret since deleted at that
/// path), [`Unreadable::Missing`] when it never did. Version numbers are handed out one by
/// one from 1 and a failed write rolls its number back, so every version up to a secret's
/// `current_version` existed.
#[tracing::instrument(skip(conn, path))]
pub async fn why_version_unreadable(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
    version: i32,
) -> Result<Unreadable, StoreError> {
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM secrets s \
           WHERE s.vault_id = $1 AND s.path = $2 AND s.current_version >= $3)",
    )
    .bind(vault_id)
    .bind(path)
    .bind(version)
    .fetch_one(conn)
    .await?;
    Ok(if known {
        Unreadable::Gone
    } else {
        Unreadable::Missing
    })
}

/// Why a path did not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Never existed.
    Missing,
    /// Existed: deleted, expired, exhausted or disabled.
    Gone,
}

#[tracing::instrument(skip(conn, path))]
pub async fn why_unreadable(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
) -> Result<Unreadable, StoreError> {
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM secrets WHERE vault_id = $1 AND path = $2)",
    )
    .bind(vault_id)
    .bind(path)
    .fetch_one(conn)
    .await?;
    Ok(if known {
        Unreadable::Gone
    } else {
        Unreadable::Missing
    })
}

/// Ends the live secret `secret_id` for good: it becomes a tombstone (reads of its path
/// answer 410), its versions' blobs are erased (nothing can decrypt them again, not even with
/// the key) and every share of it is revoked. A later write at the path starts a new secret.
/// `false`: it was not live.
#[tracing::instrument(skip(conn))]
pub async fn end_secret(conn: &mut PgConnection, secret_id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secrets SET deleted_at = now(), updated_at = now() \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(secret_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM secret_versions WHERE secret_id = $1")
        .bind(secret_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE shares SET revoked_at = now() WHERE secret_id = $1 AND revoked_at IS NULL")
        .bind(secret_id)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Up to `limit` live secrets of a vault whose path starts with `prefix`, by path, after
/// the path `after` when given.
#[tracing::instrument(skip(conn, prefix, after))]
pub async fn list(
    conn: &mut PgConnection,
    vault_id: Uuid,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<MetadataRow>, StoreError> {
    // `prefix` holds only [A-Za-z0-9._/-] (parsed in core); `_` is LIKE's one-character
    // wildcard, so it is escaped to match itself. `>` and ORDER BY compare in the same
    // collation, so the pages follow the order of one whole listing.
    Ok(sqlx::query_as(
        "SELECT s.id AS secret_id, s.path, sv.version, sv.type, sv.metadata, sv.expires_at, \
                sv.created_at, sv.disabled_at \
         FROM secrets s \
         JOIN secret_versions sv ON sv.secret_id = s.id AND sv.version = s.current_version \
         WHERE s.vault_id = $1 AND s.deleted_at IS NULL AND s.path LIKE $2 ESCAPE '\\' \
           AND ($3::text IS NULL OR s.path > $3) \
         ORDER BY s.path LIMIT $4",
    )
    .bind(vault_id)
    .bind(format!("{}%", prefix.replace('_', "\\_")))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
