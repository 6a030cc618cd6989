//! The hot path of a secret read, in one statement: whether the caller's token still stands,
//! the vault (when live in the org), the caller's unexpired policies on it, and the version
//! asked for. The statement serves a batch of reads at once (their parameters as arrays,
//! `unnest ... WITH ORDINALITY`): [`super::view_reader`] gathers the reads that arrive while
//! its connections are busy, so under load one statement, one round trip and one backend
//! wake-up serve many reads.
//!
//! The caller's live state ([`super::principals`]) rides on the same statement as extra
//! `who_*` columns, joined by primary key, so that revoking a token, ending a session or
//! deactivating an agent binds the very read that follows, at no round trip of its own. When
//! no live vault matches there is no row to carry them, and the state is read on its own:
//! only a read that ends in 401 or 404 pays that second round trip.
//!
//! The policies come as rows, one per policy (a `LEFT JOIN`, so a caller with none still gets
//! one row), each repeating the rest of the view. An aggregate (`jsonb_agg` in a sub-plan) made
//! PostgreSQL set up, build, send and parse a JSON array on every read: per read, the backend
//! spent about 20 us more CPU that way (pgbench, the statement alone), the origin about 2 us
//! less.

use chrono::{DateTime, Utc};
use oxvault_core::claims::Role;
use oxvault_core::policy::{Conditions, Effect, PathPattern};
use oxvault_core::vault::SecretType;
use sqlx::PgConnection;
use uuid::Uuid;

use super::policies::{Permissions, PolicyRow};
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

/// What [`read_views`] found for one read: the caller's state (`None`: no such principal)
/// and, when the vault is live in the org, the view.
#[derive(Debug)]
pub struct Found {
    pub state: Option<PrincipalState>,
    pub view: Option<ReadView>,
}

/// The reads of a batch as arrays, one element per read: `$1` org, `$2` vault, `$3`/`$4` the
/// principal as policies name it (its type and id), `$5` path, `$6` version (NULL: the current
/// one), `$7` a user's session (NULL for an agent). `t.n` numbers the reads from 1.
///
/// The vault is an inner join: a read whose vault is not live in the org has no row, and its
/// caller's state is read on its own ([`read_views`]). The version is a subquery kept apart
/// (`OFFSET 0`) so that its lookup is always by the whole primary key: joined plainly, the
/// generic plan looked versions up by secret alone and filtered them, reading every kept
/// version (up to `OXVAULT_MAX_SECRET_VERSIONS`) of a secret on each read. The caller's row
/// comes from `agents` or from `users` and `auth_sessions`, by primary key, as its type says.
const BATCH: &str = concat!(
    // The view's columns, then the caller's (`who_*`).
    "SELECT v.id AS vault_id, v.org_id, v.name, v.description, \
            v.created_by_user AS vault_created_by_user, \
            v.created_by_agent AS vault_created_by_agent, v.created_at AS vault_created_at, \
            s.id AS secret_id, sv.version, sv.type, sv.metadata, sv.sealed, sv.expires_at, \
            sv.created_by_user, sv.created_by_agent, sv.created_at, sv.disabled_at, \
            (sv.disabled_at IS NULL AND (sv.expires_at IS NULL OR sv.expires_at > now()) \
             AND (sv.max_access_count IS NULL OR sv.access_count < sv.max_access_count)) \
              AS readable, \
            sv.max_access_count IS NOT NULL AS limited, \
            p.id AS policy_id, p.secret_path_pattern AS policy_pattern, \
            p.permissions AS policy_permissions, p.effect AS policy_effect, \
            p.priority AS policy_priority, p.conditions AS policy_conditions, \
            p.expires_at AS policy_expires_at",
    ", t.n, \
       COALESCE(a.org_id, u.org_id) AS who_org_id, \
       COALESCE(a.token_version, u.token_version) AS who_token_version, \
       u.role AS who_role, \
       (se.id IS NOT NULL AND se.revoked_at IS NULL AND se.expires_at > now()) \
         AS who_session_live, \
       a.is_active AS who_is_active, a.expires_at AS who_expires_at, \
       a.scopes AS who_scopes, a.vault_ids AS who_vault_ids \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::int4[], \
                 $7::uuid[]) WITH ORDINALITY \
       AS t(org_id, vault_id, principal_type, principal_id, path, version, session_id, n) \
     JOIN vaults v ON v.id = t.vault_id AND v.org_id = t.org_id AND v.deleted_at IS NULL \
     LEFT JOIN secrets s ON s.vault_id = v.id AND s.path = t.path AND s.deleted_at IS NULL \
     LEFT JOIN LATERAL ( \
       SELECT * FROM secret_versions x \
        WHERE x.secret_id = s.id AND x.version = COALESCE(t.version, s.current_version) \
       OFFSET 0) sv ON true \
     LEFT JOIN policies p \
       ON p.vault_id = v.id AND p.principal_type = t.principal_type \
      AND p.principal_id = t.principal_id AND (p.expires_at IS NULL OR p.expires_at > now()) \
     LEFT JOIN agents a ON t.principal_type = 'agent' AND a.id = t.principal_id \
     LEFT JOIN users u ON t.principal_type = 'user' AND u.id = t.principal_id \
     LEFT JOIN auth_sessions se ON se.id = t.session_id AND se.user_id = u.id"
);

/// One read of a batch: who reads `path` (its current version, or `version`) in vault
/// `vault_id` of org `org_id`.
#[derive(Debug, Clone)]
pub struct ViewRequest {
    pub who: Who,
    pub org_id: Uuid,
    pub vault_id: Uuid,
    pub path: String,
    pub version: Option<i32>,
}

impl ViewRequest {
    /// The principal as policies name it.
    fn principal(&self) -> (&'static str, Uuid) {
        match self.who {
            Who::User { user_id, .. } => ("user", user_id),
            Who::Agent { agent_id } => ("agent", agent_id),
        }
    }

    fn session(&self) -> Option<Uuid> {
        match self.who {
            Who::User { session_id, .. } => Some(session_id),
            Who::Agent { .. } => None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    /// Which read of the batch (from 1).
    n: i64,
    #[sqlx(flatten)]
    row: Row,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    view: ViewColumns,
    #[sqlx(flatten)]
    who: WhoColumns,
    #[sqlx(flatten)]
    policy: PolicyColumns,
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

/// The `policy_*` columns: one of the caller's unexpired policies on the vault per row, all
/// NULL on the one row of a caller with none.
#[derive(sqlx::FromRow)]
struct PolicyColumns {
    policy_id: Option<Uuid>,
    policy_pattern: Option<String>,
    policy_permissions: Option<Vec<String>>,
    policy_effect: Option<String>,
    policy_priority: Option<i32>,
    policy_conditions: Option<sqlx::types::Json<Conditions>>,
    policy_expires_at: Option<DateTime<Utc>>,
}

impl PolicyColumns {
    /// The policy, parsed as [`PolicyRow`] parses a row of its own; `None` on the all-NULL
    /// row. A stored rule that does not parse fails the read.
    fn into_policy(self) -> Result<Option<PolicyRow>, StoreError> {
        let Some(id) = self.policy_id else {
            return Ok(None);
        };
        let (Some(pattern), Some(permissions), Some(effect), Some(priority), Some(conditions)) = (
            self.policy_pattern,
            self.policy_permissions,
            self.policy_effect,
            self.policy_priority,
            self.policy_conditions,
        ) else {
            return Err(undecodable(sqlx::error::UnexpectedNullError));
        };
        Ok(Some(PolicyRow {
            id,
            secret_path_pattern: PathPattern::try_from(pattern).map_err(undecodable)?,
            permissions: Permissions::try_from(permissions).map_err(undecodable)?,
            effect: Effect::try_from(effect).map_err(undecodable)?,
            priority,
            conditions,
            expires_at: self.policy_expires_at,
        }))
    }
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

/// What each read of `requests` needs to decide and answer, without a lock, in one statement
/// for the whole batch (plus one per read whose vault is not live, for its caller's state).
/// The outer error fails every read (the statement failed); an inner one fails only its read.
#[tracing::instrument(skip_all, fields(reads = requests.len()))]
pub async fn read_views(
    conn: &mut PgConnection,
    requests: &[ViewRequest],
) -> Result<Vec<Result<Found, StoreError>>, StoreError> {
    let column = |field: fn(&ViewRequest) -> Uuid| requests.iter().map(field).collect::<Vec<_>>();
    let rows: Vec<BatchRow> = sqlx::query_as(BATCH)
        .bind(column(|r| r.org_id))
        .bind(column(|r| r.vault_id))
        .bind(requests.iter().map(|r| r.principal().0).collect::<Vec<_>>())
        .bind(column(|r| r.principal().1))
        .bind(requests.iter().map(|r| r.path.as_str()).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.version).collect::<Vec<_>>())
        .bind(
            requests
                .iter()
                .map(ViewRequest::session)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *conn)
        .await?;
    let mut per_read: Vec<Vec<Row>> = requests.iter().map(|_| Vec::new()).collect();
    for BatchRow { n, row } in rows {
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|index| per_read.get_mut(index))
            .ok_or_else(|| undecodable(sqlx::error::UnexpectedNullError))?;
        slot.push(row);
    }
    let mut found = Vec::with_capacity(requests.len());
    for (request, rows) in requests.iter().zip(per_read) {
        found.push(match found_in(request, rows) {
            Some(result) => result,
            // No live vault: only a read that ends in 401 or 404 pays this round trip.
            None => principals::state(conn, request.who)
                .await
                .map(|state| Found { state, view: None }),
        });
    }
    Ok(found)
}

/// One read's rows, `None` when it has none. Every row repeats the view and the caller's
/// state; each carries one policy.
fn found_in(request: &ViewRequest, rows: Vec<Row>) -> Option<Result<Found, StoreError>> {
    let mut rows = rows.into_iter();
    let first = rows.next()?;
    let found = (|| -> Result<Found, StoreError> {
        let policies = std::iter::once(first.policy)
            .chain(rows.map(|row| row.policy))
            .filter_map(|policy| policy.into_policy().transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Found {
            state: first.who.into_state(request.who)?,
            view: Some(into_view(first.view, policies, &request.path)?),
        })
    })();
    Some(found)
}

fn into_view(
    row: ViewColumns,
    policies: Vec<PolicyRow>,
    path: &str,
) -> Result<ReadView, StoreError> {
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
        policies,
        version,
    })
}

#[cfg(test)]
mod tests {
    use oxvault_core::policy::{Conditions, Effect};
    use sqlx::types::Json;
    use uuid::Uuid;

    use super::PolicyColumns;

    fn columns(effect: &str) -> PolicyColumns {
        PolicyColumns {
            policy_id: Some(Uuid::from_u128(7)),
            policy_pattern: Some("db/**".to_owned()),
            policy_permissions: Some(vec!["read".to_owned()]),
            policy_effect: Some(effect.to_owned()),
            policy_priority: Some(3),
            policy_conditions: Some(Json(Conditions::default())),
            policy_expires_at: None,
        }
    }

    #[test]
    fn a_policy_row_parses_as_a_policy_and_the_null_row_as_none() {
        let policy = columns("deny").into_policy().unwrap().expect("a policy");
        assert_eq!(policy.id, Uuid::from_u128(7));
        assert_eq!(policy.effect, Effect::Deny);
        assert_eq!(policy.priority, 3);
        let none = PolicyColumns {
            policy_id: None,
            policy_pattern: None,
            policy_permissions: None,
            policy_effect: None,
            policy_priority: None,
            policy_conditions: None,
            policy_expires_at: None,
        };
        assert!(none.into_policy().unwrap().is_none());
    }

    /// A stored rule that does not parse fails the read instead of being skipped: a skipped
    /// deny would open what it closes.
    #[test]
    fn a_policy_row_that_does_not_parse_fails_the_read() {
        assert!(columns("maybe").into_policy().is_err());
        let mut partial = columns("deny");
        partial.policy_permissions = None;
        assert!(partial.into_policy().is_err());
    }
}
