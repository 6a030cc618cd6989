//! Secret requests (see the migration `20261204000016_secret_requests.sql`).
//!
//! Every statement that can act on a pending request through its id alone ([`prompt`],
//! [`lock_open`]) also checks its creator's standing: a request lives no longer than its
//! creator's right to have made it (the same rule as shares: a user creator still in the org
//! with the same token version; an agent creator active, unexpired, same token version). A
//! request id is a credential while pending, so no span here records one. The statements are
//! put together from this module's constants only (hence `AssertSqlSafe`); every value is
//! bound.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use super::vaults::Creator;

/// What a new request row holds.
#[derive(Debug)]
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub vault_id: Uuid,
    pub path: &'a str,
    pub description: &'a str,
    pub secret_type: &'a str,
    pub creator: Creator,
    pub creator_token_version: i64,
    pub creator_scopes: &'a [String],
    /// Canonical text form of the creator's address.
    pub creator_ip: Option<String>,
    pub recipient_email: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

/// A request as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub vault_id: Uuid,
    pub path: String,
    pub description: String,
    pub secret_type: String,
    pub created_by_user: Option<Uuid>,
    pub created_by_agent: Option<Uuid>,
    pub creator_scopes: Vec<String>,
    pub creator_ip: Option<String>,
    pub recipient_email: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub fulfilled_version: Option<i32>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// What the page shows about a pending request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromptRow {
    pub requested_by: String,
    pub path: String,
    pub description: String,
    pub secret_type: String,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "r.id, r.org_id, r.vault_id, r.path, r.description, r.secret_type, \
     r.created_by_user, r.created_by_agent, r.creator_scopes, host(r.creator_ip) AS creator_ip, \
     r.recipient_email, r.expires_at, r.created_at, r.fulfilled_at, r.fulfilled_version, \
     r.cancelled_at";

/// The conditions under which a request takes a value: open, unexpired, its vault live and
/// its creator in good standing (`u` and `a` are the creator's rows, joined by the caller).
const OPEN: &str = "r.fulfilled_at IS NULL AND r.cancelled_at IS NULL AND r.expires_at > now() \
     AND v.deleted_at IS NULL \
     AND (CASE WHEN r.created_by_user IS NOT NULL \
               THEN u.org_id = r.org_id AND u.token_version = r.creator_token_version \
               ELSE a.is_active AND (a.expires_at IS NULL OR a.expires_at > now()) \
                    AND a.token_version = r.creator_token_version END) IS TRUE";

const JOINS: &str = "JOIN vaults v ON v.id = r.vault_id \
     LEFT JOIN users u ON u.id = r.created_by_user \
     LEFT JOIN agents a ON a.id = r.created_by_agent";

#[tracing::instrument(skip_all)]
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewRequest<'_>,
) -> Result<RequestRow, StoreError> {
    let sql = format!(
        "WITH r AS (INSERT INTO secret_requests \
             (id, org_id, vault_id, path, description, secret_type, created_by_user, \
              created_by_agent, creator_token_version, creator_scopes, creator_ip, \
              recipient_email, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::inet, $12, $13) RETURNING *) \
         SELECT {COLUMNS} FROM r"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new.id)
        .bind(new.org_id)
        .bind(new.vault_id)
        .bind(new.path)
        .bind(new.description)
        .bind(new.secret_type)
        .bind(new.creator.user)
        .bind(new.creator.agent)
        .bind(new.creator_token_version)
        .bind(new.creator_scopes)
        .bind(new.creator_ip.as_deref())
        .bind(new.recipient_email)
        .bind(new.expires_at)
        .fetch_one(conn)
        .await?)
}

/// Request `id` of `org_id`, whatever its state.
#[tracing::instrument(skip_all)]
pub async fn find_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<RequestRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM secret_requests r WHERE r.id = $1 AND r.org_id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(org_id)
        .fetch_optional(conn)
        .await?)
}

/// The requests of `vault_id`, newest first, at most `limit`; only `creator`'s when given.
#[tracing::instrument(skip_all)]
pub async fn list_for_vault(
    conn: &mut PgConnection,
    vault_id: Uuid,
    creator: Option<Creator>,
    limit: i64,
) -> Result<Vec<RequestRow>, StoreError> {
    let creator = creator.unwrap_or_default();
    let sql = format!(
        "SELECT {COLUMNS} FROM secret_requests r WHERE r.vault_id = $1 \
           AND ($2::uuid IS NULL OR r.created_by_user = $2) \
           AND ($3::uuid IS NULL OR r.created_by_agent = $3) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(vault_id)
        .bind(creator.user)
        .bind(creator.agent)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// What the page shows of request `id`, while it takes a value; `None` otherwise. A user asker
/// is named by display name, else by an address its owner proved (an unproven one could be
/// anyone's, as in share mail).
#[tracing::instrument(skip_all)]
pub async fn prompt(conn: &mut PgConnection, id: Uuid) -> Result<Option<PromptRow>, StoreError> {
    let sql = format!(
        "SELECT COALESCE(a.name, NULLIF(u.display_name, ''), \
                         CASE WHEN u.email_verified_at IS NOT NULL THEN u.email END, \
                         'a member of the vault''s organization') AS requested_by, \
                r.path, r.description, r.secret_type, r.expires_at \
         FROM secret_requests r {JOINS} WHERE r.id = $1 AND {OPEN}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Request `id`, locked until the transaction ends, while it takes a value; `None` otherwise
/// (a concurrent fulfilment waits here, then finds it closed).
#[tracing::instrument(skip_all)]
pub async fn lock_open(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<RequestRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM secret_requests r {JOINS} WHERE r.id = $1 AND {OPEN} \
         FOR UPDATE OF r"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// Closes locked request `id` with the version its value became.
#[tracing::instrument(skip_all)]
pub async fn mark_fulfilled(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE secret_requests SET fulfilled_at = now(), fulfilled_version = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels request `id` of `org_id` if it is still open: the cancelled row, or `None` when it
/// was not open (or not there).
#[tracing::instrument(skip_all)]
pub async fn cancel(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<RequestRow>, StoreError> {
    let sql = format!(
        "WITH r AS (UPDATE secret_requests SET cancelled_at = now() \
                    WHERE id = $1 AND org_id = $2 AND fulfilled_at IS NULL \
                      AND cancelled_at IS NULL RETURNING *) \
         SELECT {COLUMNS} FROM r"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(org_id)
        .fetch_optional(conn)
        .await?)
}
