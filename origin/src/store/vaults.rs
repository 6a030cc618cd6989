//! Vaults.

use chrono::{DateTime, Utc};
use oxvault_core::page::TimeKey;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// A vault row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VaultRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_by_user: Option<Uuid>,
    pub created_by_agent: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, org_id, name, description, created_by_user, created_by_agent, created_at";

/// Who created something: exactly one of the two is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Creator {
    pub user: Option<Uuid>,
    pub agent: Option<Uuid>,
}

#[tracing::instrument(skip(conn, description))]
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    org_id: Uuid,
    name: &str,
    description: Option<&str>,
    creator: Creator,
) -> Result<VaultRow, StoreError> {
    let sql = format!(
        "INSERT INTO vaults (id, org_id, name, description, created_by_user, created_by_agent) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(org_id)
        .bind(name)
        .bind(description)
        .bind(creator.user)
        .bind(creator.agent)
        .fetch_one(conn)
        .await?)
}

/// A live (not deleted) vault of `org_id`; another org's vault is `None`, like a missing one.
#[tracing::instrument(skip(conn))]
pub async fn find_live(
    conn: &mut PgConnection,
    org_id: Uuid,
    vault_id: Uuid,
) -> Result<Option<VaultRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM vaults WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(vault_id)
        .bind(org_id)
        .fetch_optional(conn)
        .await?)
}

/// Up to `limit` live vaults of an org, oldest first, after `after` (keyset on
/// `(created_at, id)`).
#[tracing::instrument(skip(conn))]
pub async fn list_live(
    conn: &mut PgConnection,
    org_id: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<VaultRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM vaults WHERE org_id = $1 AND deleted_at IS NULL \
           AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
         ORDER BY created_at, id LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Marks a vault deleted; its secrets stop being readable in the same statement's commit.
#[tracing::instrument(skip(conn))]
pub async fn mark_deleted(
    conn: &mut PgConnection,
    org_id: Uuid,
    vault_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE vaults SET deleted_at = now() \
         WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
    )
    .bind(vault_id)
    .bind(org_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
