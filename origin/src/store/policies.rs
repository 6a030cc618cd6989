//! Access policies of vaults.

use sqlx::PgConnection;
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

/// A policy row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub id: Uuid,
    pub secret_path_pattern: String,
    pub permissions: Vec<String>,
    pub effect: String,
    pub priority: i32,
    pub conditions: sqlx::types::Json<serde_json::Value>,
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
