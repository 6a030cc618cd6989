//! The caller's org: its members, their roles, and invitations to join it.
//!
//! Rules (SECURITY.md 7 and 10): only owners and admins manage members; only an owner grants
//! or removes the `owner` role (an admin can neither promote to, demote from, remove nor
//! invite an owner); the last owner can be neither demoted nor removed. Every lookup names
//! the caller's org, so another org's user id answers 404 like a missing one.
//!
//! A role change bumps the member's token version and a removal deletes the user row (its
//! sessions go with it), so the member's tokens stop working on the next request.
//!
//! Invitations live in [`super::invitations`].
//!
//! Audit: `member.role_change` (old and new role) and `member.remove` commit with the act.

use oxvault_core::auth::{OrgMemberListResponse, OrgMemberResponse, UpdateMemberRoleRequest};
use oxvault_core::claims::Role;
use oxvault_core::ids::UserId;
use oxvault_core::page::{Page, TimeKey, finish_page};
use sqlx::PgPool;

use super::ServiceError;
use super::audit::{AuditLog, Event};
use super::auth::auth_method;
use super::principal::Principal;
use crate::store::StoreError;
use crate::store::users::{self, UserRow};

pub(super) const ONLY_OWNERS_MANAGE_OWNERS: &str =
    "only an owner can grant, remove or invite an owner";

/// Members and invitations; cheap to clone.
#[derive(Debug, Clone)]
pub struct OrgService {
    pool: PgPool,
    /// Seals the audit events of membership changes.
    audit: AuditLog,
}

impl OrgService {
    pub fn new(pool: PgPool, audit: AuditLog) -> Self {
        Self { pool, audit }
    }

    /// One page of the members of the caller's org, oldest first. Any user may list;
    /// agents may not.
    pub async fn list_members(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<OrgMemberListResponse, ServiceError> {
        principal.require_user()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let org = *principal.org.as_uuid();
        let mut rows = users::list_in_org(&mut conn, org, page.after, page.fetch()).await?;
        let next_cursor = finish_page(&mut rows, page.len(), |row| TimeKey {
            created_at: row.created_at,
            id: row.id,
        });
        let members = rows.iter().map(member).collect::<Result<_, _>>()?;
        Ok(OrgMemberListResponse {
            members,
            next_cursor,
        })
    }

    /// Changes a member's role. The owner rows are locked first, so two concurrent
    /// demotions cannot both see "another owner remains".
    pub async fn update_role(
        &self,
        principal: &Principal,
        target: UserId,
        request: UpdateMemberRoleRequest,
    ) -> Result<OrgMemberResponse, ServiceError> {
        let caller = principal.require_manager()?;
        let org_id = *principal.org.as_uuid();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let owners = users::lock_owners(&mut tx, org_id).await?;
        let user = users::find_in_org(&mut tx, org_id, *target.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        let current = user.role;
        let new = request.role;
        if current == new {
            // Nothing changes, so the member's tokens stay good.
            return member(&user);
        }
        // Owner-ness comes from the locked rows, not the request's principal: a caller
        // demoted a moment ago by a concurrent request is no longer in the list.
        check_role_change(
            owners.contains(caller.as_uuid()),
            owners.len(),
            current,
            new,
        )?;
        if !users::set_role(&mut tx, org_id, user.id, new).await? {
            return Err(ServiceError::NotFound("member"));
        }
        let updated = users::find_in_org(&mut tx, org_id, user.id)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        let event = Event::by(principal, "member.role_change")
            .on("user", user.id)
            .detail("old_role", current.as_str())
            .detail("new_role", new.as_str());
        self.audit.commit(tx, event).await?;
        tracing::info!(
            org_id = %org_id, user_id = %user.id, by = %caller, from = %current, to = %new,
            "member role changed; the member's tokens are void"
        );
        member(&updated)
    }

    /// Removes a member from the org: the user row goes, and with it their sessions and
    /// personal API keys. Removing oneself is allowed, unless one is the last owner.
    pub async fn remove_member(
        &self,
        principal: &Principal,
        target: UserId,
    ) -> Result<(), ServiceError> {
        let caller = principal.require_manager()?;
        let org_id = *principal.org.as_uuid();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let owners = users::lock_owners(&mut tx, org_id).await?;
        let user = users::find_in_org(&mut tx, org_id, *target.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        let role = user.role;
        check_removal(owners.contains(caller.as_uuid()), owners.len(), role)?;
        if !users::delete_in_org(&mut tx, org_id, user.id).await? {
            return Err(ServiceError::NotFound("member"));
        }
        let event = Event::by(principal, "member.remove")
            .on("user", user.id)
            .detail("role", role.as_str());
        self.audit.commit(tx, event).await?;
        tracing::info!(org_id = %org_id, user_id = %user.id, by = %caller, "member removed");
        Ok(())
    }
}

/// A user row as a member body.
fn member(user: &UserRow) -> Result<OrgMemberResponse, ServiceError> {
    Ok(OrgMemberResponse {
        id: UserId::from_uuid(user.id),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: user.role,
        auth_method: auth_method(user).into(),
        created_at: user.created_at,
    })
}

/// May a manager change a member's role from `current` to `new` (they differ)? Only an
/// owner touches the `owner` role, and the last owner stays one.
fn check_role_change(
    caller_is_owner: bool,
    owner_count: usize,
    current: Role,
    new: Role,
) -> Result<(), ServiceError> {
    if (current == Role::Owner || new == Role::Owner) && !caller_is_owner {
        return Err(ServiceError::Forbidden(ONLY_OWNERS_MANAGE_OWNERS));
    }
    if current == Role::Owner && new != Role::Owner && owner_count <= 1 {
        return Err(ServiceError::Conflict(
            "the last owner cannot be demoted; make another member owner first".into(),
        ));
    }
    Ok(())
}

/// May a manager remove a member whose role is `target`? Only an owner removes an owner,
/// and never the last one.
fn check_removal(
    caller_is_owner: bool,
    owner_count: usize,
    target: Role,
) -> Result<(), ServiceError> {
    if target != Role::Owner {
        return Ok(());
    }
    if !caller_is_owner {
        return Err(ServiceError::Forbidden(ONLY_OWNERS_MANAGE_OWNERS));
    }
    if owner_count <= 1 {
        return Err(ServiceError::Conflict(
            "the last owner cannot be removed; make another member owner first".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(result: Result<(), ServiceError>) -> bool {
        matches!(result, Err(ServiceError::Forbidden(_)))
    }

    fn conflict(result: Result<(), ServiceError>) -> bool {
        matches!(result, Err(ServiceError::Conflict(_)))
    }

    #[test]
    fn an_admin_can_move_members_and_admins_but_never_touch_the_owner_role() {
        use Role::{Admin, Member, Owner};
        assert!(check_role_change(false, 1, Member, Admin).is_ok());
        assert!(check_role_change(false, 1, Admin, Member).is_ok());
        assert!(forbidden(check_role_change(false, 2, Member, Owner)));
        assert!(forbidden(check_role_change(false, 2, Admin, Owner)));
        assert!(forbidden(check_role_change(false, 2, Owner, Admin)));
    }

    #[test]
    fn an_owner_can_grant_and_remove_ownership_while_another_owner_remains() {
        use Role::{Admin, Member, Owner};
        assert!(check_role_change(true, 1, Member, Owner).is_ok());
        assert!(check_role_change(true, 2, Owner, Admin).is_ok());
        assert!(conflict(check_role_change(true, 1, Owner, Member)));
        assert!(conflict(check_role_change(true, 0, Owner, Admin)));
    }

    #[test]
    fn only_an_owner_removes_an_owner_and_never_the_last_one() {
        use Role::{Admin, Member, Owner};
        assert!(check_removal(false, 1, Member).is_ok());
        assert!(check_removal(false, 1, Admin).is_ok());
        assert!(forbidden(check_removal(false, 2, Owner)));
        assert!(check_removal(true, 2, Owner).is_ok());
        assert!(conflict(check_removal(true, 1, Owner)));
    }
}
