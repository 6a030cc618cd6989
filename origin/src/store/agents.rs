//! Agents: AI identities of an org, authenticated by `ocv_` keys.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// The live state of an agent principal: one indexed lookup per request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentState {
    pub org_id: Uuid,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub token_version: i64,
    pub scopes: Vec<String>,
    pub vault_ids: Vec<Uuid>,
}

#[tracing::instrument(skip(conn))]
pub async fn agent_state(
    conn: &mut PgConnection,
    agent_id: Uuid,
) -> Result<Option<AgentState>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT org_id, is_active, expires_at, token_version, scopes, vault_ids \
         FROM agents WHERE id = $1",
    )
    .bind(agent_id)
    .fetch_optional(conn)
    .await?)
}

/// Bumps the agent's token version: every token it holds stops working.
#[tracing::instrument(skip(conn))]
pub async fn bump_token_version(conn: &mut PgConnection, agent_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE agents SET token_version = token_version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(agent_id)
    .execute(conn)
    .await?;
    Ok(())
}
