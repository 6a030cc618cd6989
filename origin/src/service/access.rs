//! Who may do what to which secret path of a vault.
//!
//! Owners and admins of the org, and the vault's creator, control the vault. Everyone else
//! (members, agents) needs a policy: [`oxvault_core::policy::evaluate`] over the policies that
//! name them on this vault, read fresh from the database on every request — so a policy
//! change or removal takes effect at once, on every origin, for tokens already issued.
//! Agents must also be bound to the vault when they are bound at all (checked when the vault
//! is looked up: an unbound vault is invisible).

use chrono::Utc;
use oxvault_core::ids::PolicyId;
use oxvault_core::policy::{Permission, Policy, RequestContext, evaluate};
use oxvault_core::secret_path::SecretPath;
use sqlx::PgConnection;

use super::ServiceError;
use super::principal::Principal;
use super::vaults::controls;
use crate::store::policies::{self, PolicyRow};
use crate::store::secrets::MetadataRow;
use crate::store::vaults::VaultRow;

/// A stored policy as evaluation takes it (the store parsed every part).
fn to_policy(row: PolicyRow) -> Policy {
    Policy {
        id: PolicyId::from_uuid(row.id),
        pattern: row.secret_path_pattern,
        permissions: row.permissions.0,
        effect: row.effect,
        priority: row.priority,
        conditions: row.conditions.0,
        expires_at: row.expires_at.map(|at| at.timestamp()),
    }
}

/// The request's context for conditions: now, and the client's address as the HTTP layer
/// established it (the edge's word on a request it vouches for with the shared secret, else
/// the TCP peer; never a client-supplied header). An unknown address fails IP allowlists.
fn context(principal: &Principal) -> RequestContext {
    RequestContext {
        now_unix: Utc::now().timestamp(),
        client_ip: principal.client_ip,
    }
}

async fn load(
    conn: &mut PgConnection,
    principal: &Principal,
    vault: &VaultRow,
) -> Result<Vec<Policy>, ServiceError> {
    let (kind, id) = principal.key();
    let rows = policies::for_principal(conn, vault.id, kind, id).await?;
    Ok(rows.into_iter().map(to_policy).collect())
}

/// Passes when `principal` may do `permission` on `path` in `vault`; else 403.
pub async fn require(
    conn: &mut PgConnection,
    principal: &Principal,
    vault: &VaultRow,
    path: &SecretPath,
    permission: Permission,
) -> Result<(), ServiceError> {
    if controls(vault, principal) {
        return Ok(());
    }
    let (kind, id) = principal.key();
    let rows = policies::for_principal(conn, vault.id, kind, id).await?;
    decide(principal, vault, rows, path, permission)
}

/// [`require`] with the principal's unexpired policies on `vault` already read.
pub(crate) fn decide(
    principal: &Principal,
    vault: &VaultRow,
    rows: Vec<PolicyRow>,
    path: &SecretPath,
    permission: Permission,
) -> Result<(), ServiceError> {
    if controls(vault, principal) {
        return Ok(());
    }
    let policies: Vec<Policy> = rows.into_iter().map(to_policy).collect();
    if evaluate(&policies, path, permission, &context(principal)).is_allowed() {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "no policy allows this on this secret path",
        ))
    }
}

/// Keeps the listed secrets `principal` may read.
pub async fn filter_readable(
    conn: &mut PgConnection,
    principal: &Principal,
    vault: &VaultRow,
    rows: Vec<MetadataRow>,
) -> Result<Vec<MetadataRow>, ServiceError> {
    if controls(vault, principal) {
        return Ok(rows);
    }
    let policies = load(conn, principal, vault).await?;
    let ctx = context(principal);
    Ok(rows
        .into_iter()
        .filter(|row| {
            SecretPath::parse(&row.path)
                .is_ok_and(|path| evaluate(&policies, &path, Permission::Read, &ctx).is_allowed())
        })
        .collect())
}
