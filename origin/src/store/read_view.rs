//! The hot path of a secret read, in one statement: whether the caller's token still stands,
//! the vault (when live in the org), the caller's unexpired policies on it, and the version
//! asked for.
//!
//! The caller's live state ([`super::principals`]) rides on the same statement as extra
//! `who_*` columns, joined by primary key, so that revoking a token, ending a session or
//! deactivating an agent binds the very read that follows, at no round trip of its own. When
//! no live vault matches there is no row to carry them, and the state is read on its own:
//! only a read that ends in 401 or 404 pays that second round trip.

use chrono::{DateTime, Utc};
use oxvault_core::claims::Role;
use oxvault_core::vault::SecretType;
use sqlx::PgConnection;
use uuid::Uuid;

use super::policies::PolicyRow;
use super::principals::{self, PrincipalState, Who};
use super::secrets::VersionRow;
use super::vaults::VaultRow;
use super::{StoreError, undecodable};

/// Everything a secret read decides on.
#[derive(Debug)]
pub struct ReadView {
    pub vault: VaultRow,
    pub policies: Vec<PolicyRow>,
    /// `None` when the secret or version does not exist or the secret is deleted.
    pub version: Option<ViewedVersion>,
}

/// A version as a read sees it before counting.
#[derive(Debug)]
pub struct ViewedVersion {
    pub row: VersionRow,
    /// Not disabled, not expired, not used up.
    pub readable: bool,
    /// Limited versions are counted exactly, in a transaction
    /// ([`super::secrets::count_access`]).
    pub limited: bool,
}

/// What [`read_view`] found: the caller's state (`None`: no such principal) and, when the
/// vault is live in the org, the view.
#[derive(Debug)]
pub struct Found {
    pub state: Option<PrincipalState>,
    pub view: Option<ReadView>,
}

// The statement, in parts shared by its two forms (a user's and an agent's). `$1` org, `$2`
// vault, `$3`/`$4` the principal as policies name it, `$5` path, `$6` version (NULL: the
// current one), `$7` the principal's id, `$8` a user's session.
macro_rules! view_columns {
    () => {
        "SELECT v.id AS vault_id, v.org_id, v.name, v.description, \
                v.created_by_user AS vault_created_by_user, \
                v.created_by_agent AS vault_created_by_agent, v.created_at AS vault_created_at, \
                (SELECT COALESCE(jsonb_agg(jsonb_build_object( \
                     'id', p.id, 'secret_path_pattern', p.secret_path_pattern, \
                     'permissions', p.permissions, 'effect', p.effect, 'priority', p.priority, \
                     'conditions', p.conditions, 'expires_at', p.expires_at)), '[]'::jsonb) \
                 FROM policies p \
                 WHERE p.vault_id = v.id AND p.principal_type = $3 AND p.principal_id = $4 \
                   AND (p.expires_at IS NULL OR p.expires_at > now())) AS policies, \
                s.id AS secret_id, sv.version, sv.type, sv.metadata, sv.sealed, sv.expires_at, \
                sv.created_by_user, sv.created_by_agent, sv.created_at, sv.disabled_at, \
                (sv.disabled_at IS NULL AND (sv.expires_at IS NULL OR sv.expires_at > now()) \
                 AND (sv.max_access_count IS NULL OR sv.access_count < sv.max_access_count)) \
                  AS readable, \
                sv.max_access_count IS NOT NULL AS limited"
    };
}
macro_rules! view_from {
    () => {
        " FROM vaults v \
          LEFT JOIN secrets s ON s.vault_id = v.id AND s.path = $5 AND s.deleted_at IS NULL \
          LEFT JOIN secret_versions sv \
            ON sv.secret_id = s.id AND sv.version = COALESCE($6, s.current_version)"
    };
}
macro_rules! view_where {
    () => {
        " WHERE v.id = $2 AND v.org_id = $1 AND v.deleted_at IS NULL"
    };
}

/// An agent's state: its row, by primary key.
const AS_AGENT: &str = concat!(
    view_columns!(),
    ", a.org_id AS who_org_id, a.token_version AS who_token_version, \
       NULL::text AS who_role, NULL::boolean AS who_session_live, \
       a.is_active AS who_is_active, a.expires_at AS who_expires_at, \
       a.scopes AS who_scopes, a.vault_ids AS who_vault_ids",
    view_from!(),
    " LEFT JOIN agents a ON a.id = $7",
    view_where!(),
);

/// A user's state: the user's row and the session's, each by primary key.
const AS_USER: &str = concat!(
    view_columns!(),
    ", u.org_id AS who_org_id, u.token_version AS who_token_version, u.role AS who_role, \
       (se.id IS NOT NULL AND se.revoked_at IS NULL AND se.expires_at > now()) \
         AS who_session_live, \
       NULL::boolean AS who_is_active, NULL::timestamptz AS who_expires_at, \
       NULL::text[] AS who_scopes, NULL::uuid[] AS who_vault_ids",
    view_from!(),
    " LEFT JOIN users u ON u.id = $7 \
      LEFT JOIN auth_sessions se ON se.id = $8 AND se.user_id = u.id",
    view_where!(),
);

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    view: ViewColumns,
    #[sqlx(flatten)]
    who: WhoColumns,
}

#[derive(sqlx::FromRow)]
struct ViewColumns {
    vault_id: Uuid,
    org_id: Uuid,
    name: String,
    description: Option<String>,
    vault_created_by_user: Option<Uuid>,
    vault_created_by_agent: Option<Uuid>,
    vault_created_at: DateTime<Utc>,
    policies: sqlx::types::Json<Vec<PolicyRow>>,
    secret_id: Option<Uuid>,
    version: Option<i32>,
    #[sqlx(rename = "type")]
    secret_type: Option<String>,
    metadata: Option<sqlx::types::Json<serde_json::Map<String, serde_json::Value>>>,
    sealed: Option<Vec<u8>>,
    expires_at: Option<DateTime<Utc>>,
    created_by_user: Option<Uuid>,
    created_by_agent: Option<Uuid>,
    created_at: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
    readable: Option<bool>,
    limited: Option<bool>,
}

/// The `who_*` columns: all NULL when the principal does not exist.
#[derive(sqlx::FromRow)]
struct WhoColumns {
    who_org_id: Option<Uuid>,
    who_token_version: Option<i64>,
    who_role: Option<String>,
    who_session_live: Option<bool>,
    who_is_active: Option<bool>,
    who_expires_at: Option<DateTime<Utc>>,
    who_scopes: Option<Vec<String>>,
    who_vault_ids: Option<Vec<Uuid>>,
}

impl WhoColumns {
    /// The principal's state, its role parsed here once; `None` when it does not exist.
    fn into_state(mut self, who: Who) -> Result<Option<PrincipalState>, StoreError> {
        let role = self
            .who_role
            .take()
            .map(Role::try_from)
            .transpose()
            .map_err(undecodable)?;
        Ok(self.present(who, role))
    }

    fn present(self, who: Who, role: Option<Role>) -> Option<PrincipalState> {
        let org_id = self.who_org_id?;
        let token_version = self.who_token_version?;
        Some(match who {
            Who::User { .. } => PrincipalState::User(super::sessions::UserState {
                org_id,
                role: role?,
                token_version,
                session_live: self.who_session_live.unwrap_or(false),
            }),
            Who::Agent { .. } => PrincipalState::Agent(super::agents::AgentState {
                org_id,
                is_active: self.who_is_active?,
                expires_at: self.who_expires_at,
                token_version,
                scopes: self.who_scopes?,
                vault_ids: self.who_vault_ids?,
            }),
        })
    }
}

/// What a read of `path` (its current version, or `version`) in vault `vault_id` of org
/// `org_id` by `who` needs to decide and answer, without a lock.
#[tracing::instrument(skip(conn, path))]
pub async fn read_view(
    conn: &mut PgConnection,
    who: Who,
    org_id: Uuid,
    vault_id: Uuid,
    path: &str,
    version: Option<i32>,
) -> Result<Found, StoreError> {
    // `$3`/`$4`: the principal as policies name it.
    let (query, principal_type, principal_id) = match who {
        Who::User { user_id, .. } => (AS_USER, "user", user_id),
        Who::Agent { agent_id } => (AS_AGENT, "agent", agent_id),
    };
    let query = sqlx::query_as::<_, Row>(query)
        .bind(org_id)
        .bind(vault_id)
        .bind(principal_type)
        .bind(principal_id)
        .bind(path)
        .bind(version);
    let query = match who {
        Who::User {
            user_id,
            session_id,
        } => query.bind(user_id).bind(session_id),
        Who::Agent { agent_id } => query.bind(agent_id),
    };
    let Some(row) = query.fetch_optional(&mut *conn).await? else {
        return Ok(Found {
            state: principals::state(conn, who).await?,
            view: None,
        });
    };
    Ok(Found {
        state: row.who.into_state(who)?,
        view: Some(into_view(row.view, path)?),
    })
}

fn into_view(row: ViewColumns, path: &str) -> Result<ReadView, StoreError> {
    // The version's NOT NULL columns are all present exactly when the join found one.
    let secret_type = row
        .secret_type
        .map(SecretType::try_from)
        .transpose()
        .map_err(undecodable)?;
    let found = (row.secret_id, row.version, secret_type, row.metadata);
    let stored = (row.sealed, row.created_at);
    let version = match (found, stored) {
        (
            (Some(secret_id), Some(version), Some(secret_type), Some(metadata)),
            (Some(sealed), Some(created_at)),
        ) => Some(ViewedVersion {
            row: VersionRow {
                secret_id,
                path: path.to_owned(),
                version,
                secret_type,
                metadata,
                sealed,
                expires_at: row.expires_at,
                created_by_user: row.created_by_user,
                created_by_agent: row.created_by_agent,
                created_at,
                disabled_at: row.disabled_at,
            },
            readable: row.readable.unwrap_or(false),
            limited: row.limited.unwrap_or(true),
        }),
        _ => None,
    };
    Ok(ReadView {
        vault: VaultRow {
            id: row.vault_id,
            org_id: row.org_id,
            name: row.name,
            description: row.description,
            created_by_user: row.vault_created_by_user,
            created_by_agent: row.vault_created_by_agent,
            created_at: row.vault_created_at,
        },
        policies: row.policies.0,
        version,
    })
}
