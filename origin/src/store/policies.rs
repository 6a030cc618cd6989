//! Access policies of vaults.
//!
//! Two readers: evaluation ([`has_any`], [`for_principal`]), which runs on every secret
//! request and reads only what [`oxvault_core::policy::evaluate`] needs, and management
//! ([`insert`], [`list_in_vault`], [`update_in_vault`], [`delete_in_vault`]), which reads
//! whole rows. Every management query names the org and the vault as well as the policy, so
//! another vault's or another org's policy id finds nothing (SECURITY.md case 7).

use chrono::{DateTime, Utc};
use oxvault_core::page::TimeKey;
use oxvault_core::policy::{Conditions, Effect, PathPattern, Permission, PrincipalType};
use oxvault_core::stored::UnknownName;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::StoreError;

/// Whether any policy names this principal on this vault (what makes a vault visible to
/// callers who do not control it).
#[tracing::instrument(skip(conn))]
pub async fn has_any(
    conn: &mut PgConnection,
    vault_id: Uuid,
    principal_type: &str,
    principal_id: Uuid,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM policies \
         WHERE vault_id = $1 AND principal_type = $2 AND principal_id = $3 \
           AND (expires_at IS NULL OR expires_at > now()))",
    )
    .bind(vault_id)
    .bind(principal_type)
    .bind(principal_id)
    .fetch_one(conn)
    .await?)
}

/// A policy's permissions as stored (`text[]`), parsed where they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions(pub Vec<Permission>);

impl TryFrom<Vec<String>> for Permissions {
    type Error = UnknownName;

    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        names
            .into_iter()
            .map(Permission::try_from)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// A policy's rule as stored, parsed where it is read: a row that does not parse (it cannot,
/// unless the database was edited by hand) fails the read, since guessing could turn a broken
/// deny into an allow.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub secret_path_pattern: PathPattern,
    #[sqlx(try_from = "Vec<String>")]
    pub permissions: Permissions,
    #[sqlx(try_from = "String")]
    pub effect: Effect,
    pub priority: i32,
    pub conditions: Json<Conditions>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The unexpired policies naming this principal on this vault: one indexed lookup.
#[tracing::instrument(skip(conn))]
pub async fn for_principal(
    conn: &mut PgConnection,
    vault_id: Uuid,
    principal_type: &str,
    principal_id: Uuid,
) -> Result<Vec<PolicyRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, secret_path_pattern, permissions, effect, priority, conditions, expires_at \
         FROM policies \
         WHERE vault_id = $1 AND principal_type = $2 AND principal_id = $3 \
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(vault_id)
    .bind(principal_type)
    .bind(principal_id)
    .fetch_all(conn)
    .await?)
}

/// A whole policy row, as the management endpoints show it: its rule (parsed like any
/// [`PolicyRow`]) and whom and where it is for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRecord {
    #[sqlx(flatten)]
    pub rule: PolicyRow,
    pub org_id: Uuid,
    pub vault_id: Uuid,
    #[sqlx(try_from = "String")]
    pub principal_type: PrincipalType,
    pub principal_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const RECORD_COLUMNS: &str = "id, org_id, vault_id, principal_type, principal_id, \
                              secret_path_pattern, permissions, effect, priority, conditions, \
                              expires_at, created_by, created_at";

/// What a new policy is made of; the service has checked every field.
#[derive(Debug)]
pub struct NewPolicy<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub vault_id: Uuid,
    pub principal_type: &'a str,
    pub principal_id: Uuid,
    pub secret_path_pattern: &'a str,
    pub permissions: &'a [String],
    pub effect: &'a str,
    pub priority: i32,
    pub conditions: &'a serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
}

/// Changes to a policy; `None` leaves a column as it is. The principal and the pattern never
/// change (replace the policy instead).
#[derive(Debug, Default)]
pub struct PolicyChanges {
    pub permissions: Option<Vec<String>>,
    pub effect: Option<&'static str>,
    pub priority: Option<i32>,
    pub conditions: Option<serde_json::Value>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip(conn, policy), fields(policy_id = %policy.id, vault_id = %policy.vault_id))]
pub async fn insert(
    conn: &mut PgConnection,
    policy: &NewPolicy<'_>,
) -> Result<PolicyRecord, StoreError> {
    let sql = format!(
        "INSERT INTO policies (id, org_id, vault_id, principal_type, principal_id, \
                               secret_path_pattern, permissions, effect, priority, conditions, \
                               expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         RETURNING {RECORD_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(policy.id)
        .bind(policy.org_id)
        .bind(policy.vault_id)
        .bind(policy.principal_type)
        .bind(policy.principal_id)
        .bind(policy.secret_path_pattern)
        .bind(policy.permissions)
        .bind(policy.effect)
        .bind(policy.priority)
        .bind(Json(policy.conditions))
        .bind(policy.expires_at)
        .bind(policy.created_by)
        .fetch_one(conn)
        .await?)
}

/// Up to `limit` policies of one vault of one org, expired ones included, oldest first,
/// after `after` (keyset on `(created_at, id)`).
#[tracing::instrument(skip(conn))]
pub async fn list_in_vault(
    conn: &mut PgConnection,
    org_id: Uuid,
    vault_id: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<PolicyRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM policies WHERE org_id = $1 AND vault_id = $2 \
           AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4)) \
         ORDER BY created_at, id LIMIT $5"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(vault_id)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Applies `changes` to one policy of one vault of one org, in one statement (so a reader
/// sees the policy before or after, never half changed). `None` when there is no such policy.
#[tracing::instrument(skip(conn, changes))]
pub async fn update_in_vault(
    conn: &mut PgConnection,
    org_id: Uuid,
    vault_id: Uuid,
    policy_id: Uuid,
    changes: &PolicyChanges,
) -> Result<Option<PolicyRecord>, StoreError> {
    let sql = format!(
        "UPDATE policies SET \
           permissions = COALESCE($4, permissions), \
           effect = COALESCE($5, effect), \
           priority = COALESCE($6, priority), \
           conditions = COALESCE($7, conditions), \
           expires_at = COALESCE($8, expires_at), \
           updated_at = now() \
         WHERE org_id = $1 AND vault_id = $2 AND id = $3 \
         RETURNING {RECORD_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(vault_id)
        .bind(policy_id)
        .bind(changes.permissions.as_deref())
        .bind(changes.effect)
        .bind(changes.priority)
        .bind(changes.conditions.as_ref().map(Json))
        .bind(changes.expires_at)
        .fetch_optional(conn)
        .await?)
}

/// Deletes one policy of one vault of one org and returns what it was (for the audit
/// record); `None` when there is no such policy.
#[tracing::instrument(skip(conn))]
pub async fn delete_in_vault(
    conn: &mut PgConnection,
    org_id: Uuid,
    vault_id: Uuid,
    policy_id: Uuid,
) -> Result<Option<PolicyRecord>, StoreError> {
    let sql = format!(
        "DELETE FROM policies WHERE org_id = $1 AND vault_id = $2 AND id = $3 \
         RETURNING {RECORD_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(vault_id)
        .bind(policy_id)
        .fetch_optional(conn)
        .await?)
}
