//! Access policies of a vault: create, list, change, delete.
//!
//! Only those who control the vault (an owner or admin of the org, or the vault's creator)
//! manage its policies; anyone else who can see the vault gets 403, and a vault the caller
//! cannot see is 404 like one that does not exist. Every query names the org and the vault,
//! so another vault's or org's policy id is 404 too.
//!
//! Nothing is cached: [`super::access`] reads a principal's policies fresh on every secret
//! request, so a change or a removal made here binds tokens already issued at once.
//!
//! Audit: `policy.create`, `policy.update` and `policy.delete` commit with the act, each with
//! the policy as it stands after it (before it, for a delete): vault, principal, pattern,
//! permissions, effect.

use chrono::{DateTime, Utc};
use oxvault_core::ids::{PolicyId, UserId, VaultId};
use oxvault_core::page::{Page, TimeKey, finish_page};
use oxvault_core::policy::{
    Conditions, CreatePolicyRequest, Effect, Permission, PolicyListResponse, PolicyResponse,
    PrincipalType, UpdatePolicyRequest,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::ServiceError;
use super::audit::{AuditLog, Event};
use super::principal::Principal;
use super::vaults::{VaultsService, controls};
use crate::store::StoreError;
use crate::store::policies::{self, NewPolicy, PolicyChanges, PolicyRecord};
use crate::store::vaults::VaultRow;
use crate::store::{agents, users};

/// Highest priority accepted. 1Claw documents a minimum of 0 and no maximum; a bound keeps
/// the number meaningful and the column far from overflow.
pub const MAX_PRIORITY: i32 = 1000;

/// Most networks one `ip_allowlist` may name: each is checked on every request.
pub const MAX_IP_ALLOWLIST: usize = 100;

/// Policy operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct PoliciesService {
    pool: PgPool,
    /// Records policy changes.
    audit: AuditLog,
    vaults: VaultsService,
}

/// The permissions of a request: at least one, each once, in wire order.
fn permissions(mut permissions: Vec<Permission>) -> Result<Vec<String>, ServiceError> {
    if permissions.is_empty() {
        return Err(ServiceError::Invalid(
            "permissions must name at least one of read, write, delete, rotate, share".into(),
        ));
    }
    permissions.sort_unstable();
    permissions.dedup();
    Ok(permissions
        .into_iter()
        .map(|permission| permission.as_str().to_owned())
        .collect())
}

fn check_priority(priority: i32) -> Result<i32, ServiceError> {
    if (0..=MAX_PRIORITY).contains(&priority) {
        Ok(priority)
    } else {
        Err(ServiceError::Invalid(format!(
            "priority must be from 0 to {MAX_PRIORITY}"
        )))
    }
}

fn check_expiry(expires_at: DateTime<Utc>) -> Result<DateTime<Utc>, ServiceError> {
    if expires_at > Utc::now() {
        Ok(expires_at)
    } else {
        Err(ServiceError::Invalid(
            "expires_at must be in the future".into(),
        ))
    }
}

/// The conditions as stored; their shape was checked when the body was read.
fn conditions(conditions: &Conditions) -> Result<serde_json::Value, ServiceError> {
    if conditions
        .ip_allowlist
        .as_ref()
        .is_some_and(|list| list.len() > MAX_IP_ALLOWLIST)
    {
        return Err(ServiceError::Invalid(format!(
            "ip_allowlist may name at most {MAX_IP_ALLOWLIST} networks"
        )));
    }
    serde_json::to_value(conditions).map_err(ServiceError::internal)
}

/// The audit event of `action` on the policy `row`.
fn event(principal: &Principal, action: &'static str, row: &PolicyRecord) -> Event {
    Event::by(principal, action)
        .on("policy", row.rule.id)
        .detail("vault_id", row.vault_id.to_string())
        .detail("principal_type", row.principal_type.as_str())
        .detail("principal_id", row.principal_id.to_string())
        .detail("pattern", row.rule.secret_path_pattern.as_str())
        .detail(
            "permissions",
            row.rule
                .permissions
                .0
                .iter()
                .map(|permission| permission.as_str())
                .collect::<Vec<_>>(),
        )
        .detail("effect", row.rule.effect.as_str())
}

/// A stored policy as the API shows it (the store parsed every part).
fn response(row: PolicyRecord) -> PolicyResponse {
    let rule = row.rule;
    PolicyResponse {
        id: PolicyId::from_uuid(rule.id),
        vault_id: VaultId::from_uuid(row.vault_id),
        principal_type: row.principal_type,
        principal_id: row.principal_id,
        secret_path_pattern: rule.secret_path_pattern,
        permissions: rule.permissions.0,
        effect: rule.effect,
        priority: rule.priority,
        conditions: rule.conditions.0,
        expires_at: rule.expires_at,
        created_by: row.created_by.map(UserId::from_uuid),
        created_at: row.created_at,
    }
}

impl PoliciesService {
    pub fn new(pool: PgPool, audit: AuditLog) -> Self {
        Self {
            vaults: VaultsService::new(pool.clone(), audit.clone()),
            pool,
            audit,
        }
    }

    /// The vault, when the caller may manage its policies: 404 when it is not visible, 403
    /// when it is but the caller does not control it.
    async fn managed_vault(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
        vault_id: VaultId,
    ) -> Result<VaultRow, ServiceError> {
        let vault = self.vaults.find_visible(conn, principal, vault_id).await?;
        if controls(&vault, principal) {
            Ok(vault)
        } else {
            Err(ServiceError::Forbidden(
                "only an owner, an admin or the vault's creator may manage its policies",
            ))
        }
    }

    /// Creates a policy on a vault (201).
    pub async fn create(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        request: CreatePolicyRequest,
    ) -> Result<PolicyResponse, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self.managed_vault(&mut tx, principal, vault_id).await?;

        let permissions = permissions(request.permissions)?;
        let priority = check_priority(request.priority)?;
        let expires_at = request.expires_at.map(check_expiry).transpose()?;
        let conditions = conditions(&request.conditions)?;
        // A body field, not a path id: an unknown principal is a bad request, and one
        // answer covers missing and another org's alike.
        let org = vault.org_id;
        let exists = match request.principal_type {
            PrincipalType::User => users::find_in_org(&mut tx, org, request.principal_id)
                .await?
                .is_some(),
            PrincipalType::Agent => agents::find_in_org(&mut tx, org, request.principal_id)
                .await?
                .is_some(),
        };
        if !exists {
            return Err(ServiceError::Invalid(
                "principal not found in this organization".into(),
            ));
        }

        let row = policies::insert(
            &mut tx,
            &NewPolicy {
                id: Uuid::new_v4(),
                org_id: org,
                vault_id: vault.id,
                principal_type: request.principal_type.as_str(),
                principal_id: request.principal_id,
                secret_path_pattern: request.secret_path_pattern.as_str(),
                permissions: &permissions,
                effect: request.effect.as_str(),
                priority,
                conditions: &conditions,
                expires_at,
                // The column names users; a policy made by an agent that created the vault
                // has no user behind it.
                created_by: principal.user_id().map(|id| *id.as_uuid()),
            },
        )
        .await?;
        self.audit
            .commit(tx, event(principal, "policy.create", &row))
            .await?;
        tracing::info!(policy_id = %row.rule.id, vault_id = %row.vault_id, "policy created");
        Ok(response(row))
    }

    /// One page of the policies of a vault, oldest first, expired ones included (managers
    /// only).
    pub async fn list(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        page: Page<TimeKey>,
    ) -> Result<PolicyListResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self.managed_vault(&mut conn, principal, vault_id).await?;
        let (org, vault) = (vault.org_id, vault.id);
        let mut rows =
            policies::list_in_vault(&mut conn, org, vault, page.after, page.fetch()).await?;
        let next_cursor = finish_page(&mut rows, page.len(), |row| TimeKey {
            created_at: row.created_at,
            id: row.rule.id,
        });
        Ok(PolicyListResponse {
            policies: rows.into_iter().map(response).collect(),
            next_cursor,
        })
    }

    /// Changes a policy's permissions, conditions, expiry, effect or priority; absent fields
    /// stay as they are. Binds existing tokens from the next request on.
    pub async fn update(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        policy_id: PolicyId,
        request: UpdatePolicyRequest,
    ) -> Result<PolicyResponse, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self.managed_vault(&mut tx, principal, vault_id).await?;
        let changes = PolicyChanges {
            permissions: request.permissions.map(permissions).transpose()?,
            effect: request.effect.map(Effect::as_str),
            priority: request.priority.map(check_priority).transpose()?,
            conditions: request.conditions.as_ref().map(conditions).transpose()?,
            expires_at: request.expires_at.map(check_expiry).transpose()?,
        };
        let row = policies::update_in_vault(
            &mut tx,
            vault.org_id,
            vault.id,
            *policy_id.as_uuid(),
            &changes,
        )
        .await?
        .ok_or(ServiceError::NotFound("policy"))?;
        self.audit
            .commit(tx, event(principal, "policy.update", &row))
            .await?;
        tracing::info!(policy_id = %row.rule.id, vault_id = %row.vault_id, "policy updated");
        Ok(response(row))
    }

    /// Deletes a policy (204). Binds existing tokens from the next request on.
    pub async fn delete(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        policy_id: PolicyId,
    ) -> Result<(), ServiceError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self.managed_vault(&mut tx, principal, vault_id).await?;
        let row = policies::delete_in_vault(&mut tx, vault.org_id, vault.id, *policy_id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("policy"))?;
        self.audit
            .commit(tx, event(principal, "policy.delete", &row))
            .await?;
        tracing::info!(policy_id = %policy_id, vault_id = %vault.id, "policy deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_must_not_be_empty_and_are_kept_once_each_in_wire_order() {
        assert!(permissions(Vec::new()).is_err());
        assert_eq!(
            permissions(vec![
                Permission::Share,
                Permission::Read,
                Permission::Share,
                Permission::Write,
            ])
            .unwrap(),
            ["read", "write", "share"]
        );
    }

    #[test]
    fn priorities_run_from_zero_to_the_maximum() {
        assert!(check_priority(0).is_ok());
        assert!(check_priority(MAX_PRIORITY).is_ok());
        assert!(check_priority(-1).is_err());
        assert!(check_priority(MAX_PRIORITY + 1).is_err());
    }

    #[test]
    fn an_expiry_must_lie_ahead() {
        assert!(check_expiry(Utc::now() + chrono::Duration::seconds(60)).is_ok());
        assert!(check_expiry(Utc::now() - chrono::Duration::seconds(1)).is_err());
    }

    #[test]
    fn stored_conditions_read_back_as_written() {
        let written: Conditions = serde_json::from_value(serde_json::json!({
            "ip_allowlist": ["10.0.0.0/8"],
            "time_window": {"after": "22:00", "before": "06:00", "timezone": "+02:00"},
        }))
        .unwrap();
        let back: Conditions = serde_json::from_value(conditions(&written).unwrap()).unwrap();
        assert_eq!(back, written);
        assert_eq!(
            conditions(&Conditions::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn an_overlong_ip_allowlist_is_refused() {
        let many: Vec<String> = (0..=MAX_IP_ALLOWLIST)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        let too_many: Conditions =
            serde_json::from_value(serde_json::json!({ "ip_allowlist": many })).unwrap();
        assert!(matches!(
            conditions(&too_many),
            Err(ServiceError::Invalid(_))
        ));
    }
}
