//! Agents: AI identities of an org, authenticated by `ocv_` keys.
//!
//! Every query an org's users can reach names the org as well as the agent, so another org's
//! agent id finds nothing (SECURITY.md case 7). The two exceptions are keyed by what only the
//! agent holds: its token (`agent_state`, after the signature checked out) and its key
//! (`find_by_key_prefix`, before the hash is compared).

use chrono::{DateTime, Utc};
use oxvault_core::page::TimeKey;
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

/// An agent as its org sees it; never the key hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub scopes: Vec<String>,
    pub vault_ids: Vec<Uuid>,
    pub is_active: bool,
    pub token_ttl_seconds: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const AGENT_COLUMNS: &str = "id, org_id, name, description, scopes, vault_ids, is_active, \
                             token_ttl_seconds, expires_at, created_by, created_at";

/// What a key exchange needs of an agent whose key prefix matched.
#[derive(Clone, sqlx::FromRow)]
pub struct AgentKeyRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub key_hash: Vec<u8>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub token_version: i64,
    pub token_ttl_seconds: Option<i32>,
    pub scopes: Vec<String>,
    pub vault_ids: Vec<Uuid>,
}

// By hand, so the key hash never reaches a log line.
impl std::fmt::Debug for AgentKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKeyRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("is_active", &self.is_active)
            .field("token_version", &self.token_version)
            .finish_non_exhaustive()
    }
}

/// What a new agent is made of.
#[derive(Debug)]
pub struct NewAgent<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub scopes: &'a [String],
    pub vault_ids: &'a [Uuid],
    pub token_ttl_seconds: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub key_prefix: &'a str,
    pub key_hash: &'a [u8],
    pub created_by: Uuid,
}

/// Changes to an agent; `None` leaves a column as it is.
#[derive(Debug, Default)]
pub struct AgentChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
    pub vault_ids: Option<Vec<Uuid>>,
    pub is_active: Option<bool>,
    pub token_ttl_seconds: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
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

#[tracing::instrument(skip(conn, agent), fields(agent_id = %agent.id, org_id = %agent.org_id))]
pub async fn insert_agent(
    conn: &mut PgConnection,
    agent: &NewAgent<'_>,
) -> Result<AgentRow, StoreError> {
    let sql = format!(
        "INSERT INTO agents (id, org_id, name, description, scopes, vault_ids, \
                             token_ttl_seconds, expires_at, key_prefix, key_hash, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         RETURNING {AGENT_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(agent.id)
        .bind(agent.org_id)
        .bind(agent.name)
        .bind(agent.description)
        .bind(agent.scopes)
        .bind(agent.vault_ids)
        .bind(agent.token_ttl_seconds)
        .bind(agent.expires_at)
        .bind(agent.key_prefix)
        .bind(agent.key_hash)
        .bind(agent.created_by)
        .fetch_one(conn)
        .await?)
}

/// Up to `limit` of the org's agents, oldest first, after `after` (keyset on
/// `(created_at, id)`).
#[tracing::instrument(skip(conn))]
pub async fn list_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<AgentRow>, StoreError> {
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE org_id = $1 \
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

#[tracing::instrument(skip(conn))]
pub async fn find_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    agent_id: Uuid,
) -> Result<Option<AgentRow>, StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE org_id = $1 AND id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(agent_id)
        .fetch_optional(conn)
        .await?)
}

/// Applies `changes` and bumps the token version in the same statement, so no token minted
/// under the old settings outlives the change. `None` when the org has no such agent.
#[tracing::instrument(skip(conn, changes))]
pub async fn update_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    agent_id: Uuid,
    changes: &AgentChanges,
) -> Result<Option<AgentRow>, StoreError> {
    let sql = format!(
        "UPDATE agents SET \
           name = COALESCE($3, name), \
           description = CASE WHEN $4 THEN $5 ELSE description END, \
           scopes = COALESCE($6, scopes), \
           vault_ids = COALESCE($7, vault_ids), \
           is_active = COALESCE($8, is_active), \
           token_ttl_seconds = COALESCE($9, token_ttl_seconds), \
           expires_at = COALESCE($10, expires_at), \
           token_version = token_version + 1, \
           updated_at = now() \
         WHERE org_id = $1 AND id = $2 \
         RETURNING {AGENT_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(agent_id)
        .bind(changes.name.as_deref())
        .bind(changes.description.is_some())
        .bind(changes.description.clone().flatten())
        .bind(changes.scopes.as_deref())
        .bind(changes.vault_ids.as_deref())
        .bind(changes.is_active)
        .bind(changes.token_ttl_seconds)
        .bind(changes.expires_at)
        .fetch_optional(conn)
        .await?)
}

/// Deactivates the agent and bumps its token version; `false` when the org has no such agent.
#[tracing::instrument(skip(conn))]
pub async fn deactivate_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    agent_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE agents SET is_active = false, token_version = token_version + 1, \
                           updated_at = now() \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(agent_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deactivates every active agent `user_id` created (their tokens die with the version bump);
/// returns their ids.
#[tracing::instrument(skip(conn))]
pub async fn deactivate_created_by(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE agents SET is_active = false, token_version = token_version + 1, \
                           updated_at = now() \
         WHERE created_by = $1 AND is_active RETURNING id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?)
}

/// Replaces the agent's key and bumps its token version in one statement: the old key and
/// every token minted with it stop working together. `false` when the org has no such agent.
#[tracing::instrument(skip(conn, key_prefix, key_hash))]
pub async fn replace_key_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    agent_id: Uuid,
    key_prefix: &str,
    key_hash: &[u8],
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE agents SET key_prefix = $3, key_hash = $4, \
                           token_version = token_version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(agent_id)
    .bind(key_prefix)
    .bind(key_hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The agents whose key starts with `key_prefix` (in practice at most one). The caller
/// compares the hashes; this lookup only narrows the search through the index. The prefix
/// is about a third of the key's secret bits and is never shown for agents, so it stays out of spans.
#[tracing::instrument(skip(conn, key_prefix))]
pub async fn find_by_key_prefix(
    conn: &mut PgConnection,
    key_prefix: &str,
) -> Result<Vec<AgentKeyRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, key_hash, is_active, expires_at, token_version, token_ttl_seconds, \
                scopes, vault_ids \
         FROM agents WHERE key_prefix = $1",
    )
    .bind(key_prefix)
    .fetch_all(conn)
    .await?)
}
