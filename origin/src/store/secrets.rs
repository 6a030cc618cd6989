//! Secrets and their versions. Values are stored only as envelope blobs.

use chrono::{DateTime, Utc};
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
    #[sqlx(rename = "type")]
    pub secret_type: String,
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
    #[sqlx(rename = "type")]
    pub secret_type: String,
    pub metadata: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// Allocates the next version of `path` (creating the secret on its first PUT, reviving it
/// after a delete). The row stays locked until the transaction ends, so concurrent PUTs get
/// consecutive versions.
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
         ON CONFLICT (vault_id, path) DO UPDATE \
           SET current_version = secrets.current_version + 1, deleted_at = NULL, \
               updated_at = now() \
         RETURNING id, current_version",
    )
    .bind(Uuid::new_v4())
    .bind(org_id)
    .bind(vault_id)
    .bind(path)
    .fetch_one(conn)
    .await?)
}

/// What a new version is made of.
#[derive(Debug)]
pub struct NewVersion<'a> {
    pub secret_id: Uuid,
    pub version: i32,
    pub secret_type: &'a str,
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
    .bind(new.secret_type)
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

/// Reads the current version of a live secret for a read, counting the access — in one
/// statement, so the check against `max_access_count` and the increment cannot interleave
/// with another reader's. `None`: nothing readable (missing, deleted, expired, exhausted or
/// disabled; [`why_unreadable`] tells which).
#[tracing::instrument(skip(conn, path))]
pub async fn read_current(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
) -> Result<Option<VersionRow>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE secret_versions sv SET access_count = sv.access_count + 1 \
         FROM secrets s \
         WHERE s.vault_id = $1 AND s.path = $2 AND s.deleted_at IS NULL \
           AND sv.secret_id = s.id AND sv.version = s.current_version \
           AND sv.disabled_at IS NULL \
           AND (sv.expires_at IS NULL OR sv.expires_at > now()) \
           AND (sv.max_access_count IS NULL OR sv.access_count < sv.max_access_count) \
         RETURNING s.id AS secret_id, s.path, sv.version, sv.type, sv.metadata, sv.sealed, \
                   sv.expires_at, sv.created_by_user, sv.created_by_agent, sv.created_at, \
                   sv.disabled_at",
    )
    .bind(vault_id)
    .bind(path)
    .fetch_optional(conn)
    .await?)
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
    let known: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM secrets WHERE vault_id = $1 AND path = $2")
            .bind(vault_id)
            .bind(path)
            .fetch_optional(conn)
            .await?;
    Ok(if known.is_some() {
        Unreadable::Gone
    } else {
        Unreadable::Missing
    })
}

/// Marks a live secret deleted. `false`: there was none.
#[tracing::instrument(skip(conn, path))]
pub async fn mark_deleted(
    conn: &mut PgConnection,
    vault_id: Uuid,
    path: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secrets SET deleted_at = now(), updated_at = now() \
         WHERE vault_id = $1 AND path = $2 AND deleted_at IS NULL",
    )
    .bind(vault_id)
    .bind(path)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The live secrets of a vault whose path starts with `prefix`, by path.
#[tracing::instrument(skip(conn, prefix))]
pub async fn list(
    conn: &mut PgConnection,
    vault_id: Uuid,
    prefix: &str,
) -> Result<Vec<MetadataRow>, StoreError> {
    // `prefix` holds only [A-Za-z0-9._/-] (parsed in core); `_` is LIKE's one-character
    // wildcard, so it is escaped to match itself.
    Ok(sqlx::query_as(
        "SELECT s.id AS secret_id, s.path, sv.version, sv.type, sv.metadata, sv.expires_at, \
                sv.created_at, sv.disabled_at \
         FROM secrets s \
         JOIN secret_versions sv ON sv.secret_id = s.id AND sv.version = s.current_version \
         WHERE s.vault_id = $1 AND s.deleted_at IS NULL AND s.path LIKE $2 ESCAPE '\\' \
         ORDER BY s.path",
    )
    .bind(vault_id)
    .bind(format!("{}%", prefix.replace('_', "\\_")))
    .fetch_all(conn)
    .await?)
}
