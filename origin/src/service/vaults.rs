//! Vaults: create, list, read, delete — and who may reach a vault at all.
//!
//! Visibility: owners and admins see every vault of their org; other callers see the vaults
//! they created, and (once policies grant them something) the vaults a policy names them on.
//! An agent bound to `vault_ids` sees only those. Anything not visible answers 404, exactly
//! like a vault that does not exist.
//!
//! Creating and deleting a vault records `vault.create` / `vault.delete` in the audit trail on
//! the act's own transaction.

use oxvault_core::ids::VaultId;
use oxvault_core::page::{Page, TimeKey, finish_page};
use oxvault_core::vault::{CreateVaultRequest, VaultListResponse, VaultResponse};
use sqlx::PgPool;
use uuid::Uuid;

use super::ServiceError;
use super::audit::{AuditLog, Event};
use super::principal::Principal;
use crate::store::StoreError;
use crate::store::vaults::{self, Creator, VaultRow};

/// Longest vault name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest vault description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// Vault operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct VaultsService {
    pool: PgPool,
    /// Records creates and deletes.
    audit: AuditLog,
    /// Billing tier limits, checked when a vault is created (see [`Self::with_tiers`]).
    tiers: Option<super::billing::Tiers>,
}

/// The creator fields of whatever `principal` creates.
pub(crate) fn creator_of(principal: &Principal) -> Creator {
    Creator {
        user: principal.user_id().map(|id| *id.as_uuid()),
        agent: principal.agent_id().map(|id| *id.as_uuid()),
    }
}

/// Whether `principal` created `vault`.
pub(crate) fn created_by(vault: &VaultRow, principal: &Principal) -> bool {
    let creator = creator_of(principal);
    (creator.user.is_some() && creator.user == vault.created_by_user)
        || (creator.agent.is_some() && creator.agent == vault.created_by_agent)
}

/// Whether an agent's vault binding (if any) admits `vault_id`.
pub(crate) fn binding_admits(principal: &Principal, vault_id: Uuid) -> bool {
    principal.agent_id().is_none()
        || principal.vault_ids.is_empty()
        || principal
            .vault_ids
            .iter()
            .any(|id| *id.as_uuid() == vault_id)
}

/// Whether `principal` has full control of `vault`: an org manager, or its creator.
pub(crate) fn controls(vault: &VaultRow, principal: &Principal) -> bool {
    principal.role.is_some_and(|role| role.can_manage()) || created_by(vault, principal)
}

/// Where a vault sits in a listing.
fn key_of(vault: &VaultRow) -> TimeKey {
    TimeKey {
        created_at: vault.created_at,
        id: vault.id,
    }
}

pub(crate) fn response(vault: VaultRow) -> VaultResponse {
    let (created_by, created_by_type) = match (vault.created_by_user, vault.created_by_agent) {
        (Some(user), _) => (Some(user), Some("user".to_owned())),
        (None, Some(agent)) => (Some(agent), Some("agent".to_owned())),
        (None, None) => (None, None),
    };
    VaultResponse {
        id: VaultId::from_uuid(vault.id),
        name: vault.name,
        description: vault.description,
        created_by,
        created_by_type,
        created_at: vault.created_at,
    }
}

impl VaultsService {
    pub fn new(pool: PgPool, audit: AuditLog) -> Self {
        Self {
            pool,
            audit,
            tiers: None,
        }
    }

    /// The same service, checking creates against the billing tier limits; without them
    /// [`Self::create`] fails closed.
    pub fn with_tiers(mut self, tiers: super::billing::Tiers) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// Creates a vault in the caller's org. Any user may; an agent may too (it then controls
    /// that vault), unless it is bound to a fixed set of vaults.
    pub async fn create(
        &self,
        principal: &Principal,
        request: CreateVaultRequest,
    ) -> Result<VaultResponse, ServiceError> {
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ServiceError::Invalid(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(
                "name must not contain control characters".into(),
            ));
        }
        let description = request
            .description
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty());
        if description.is_some_and(|text| text.chars().count() > MAX_DESCRIPTION_CHARS) {
            return Err(ServiceError::Invalid(format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        if principal.agent_id().is_some() && !principal.vault_ids.is_empty() {
            return Err(ServiceError::Forbidden(
                "an agent bound to vaults cannot create vaults",
            ));
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // Counts and inserts under the org's lock: exact with any number of origins.
        let vaults_limit = super::billing::Resource::Vaults;
        super::billing::require_room(self.tiers.as_ref(), &mut tx, principal.org, vaults_limit)
            .await?;
        let vault = vaults::insert(
            &mut tx,
            Uuid::new_v4(),
            *principal.org.as_uuid(),
            name,
            description,
            creator_of(principal),
        )
        .await?;
        let event = Event::by(principal, "vault.create")
            .on("vault", vault.id)
            .detail("name", vault.name.as_str());
        self.audit.commit(tx, event).await?;
        Ok(response(vault))
    }

    /// One page of the vaults the caller can see, oldest first.
    ///
    /// Visibility is decided per vault, here rather than in SQL, so that listing and reading
    /// cannot disagree; the org's vaults are therefore read a page at a time until the page
    /// is full of visible ones (or none is left), and memory stays bounded by the page.
    pub async fn list(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<VaultListResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let org = *principal.org.as_uuid();
        let mut visible = Vec::new();
        let mut after = page.after;
        loop {
            let batch = vaults::list_live(&mut conn, org, after, page.fetch()).await?;
            let exhausted = batch.len() <= page.len();
            after = batch.last().map(key_of);
            for vault in batch {
                if self.visible(&mut conn, &vault, principal).await? {
                    visible.push(vault);
                }
            }
            if exhausted || visible.len() > page.len() {
                break;
            }
        }
        let next_cursor = finish_page(&mut visible, page.len(), key_of);
        Ok(VaultListResponse {
            vaults: visible.into_iter().map(response).collect(),
            next_cursor,
        })
    }

    /// One vault, if the caller can see it.
    pub async fn get(
        &self,
        principal: &Principal,
        vault_id: VaultId,
    ) -> Result<VaultResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        Ok(response(
            self.find_visible(&mut conn, principal, vault_id).await?,
        ))
    }

    /// Deletes a vault (managers and its creator only); its secrets become unreadable at once.
    pub async fn delete(
        &self,
        principal: &Principal,
        vault_id: VaultId,
    ) -> Result<(), ServiceError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self.find_visible(&mut tx, principal, vault_id).await?;
        if !controls(&vault, principal) {
            return Err(ServiceError::Forbidden(
                "only an owner, an admin or the vault's creator may delete it",
            ));
        }
        // A concurrent delete may have got there first: then this one deleted nothing.
        if !vaults::mark_deleted(&mut tx, vault.org_id, vault.id).await? {
            return Err(ServiceError::NotFound("vault"));
        }
        let event = Event::by(principal, "vault.delete")
            .on("vault", vault.id)
            .detail("name", vault.name.as_str());
        self.audit.commit(tx, event).await?;
        Ok(())
    }

    /// The vault, if it exists in the caller's org and is visible to the caller; else 404.
    pub(crate) async fn find_visible(
        &self,
        conn: &mut sqlx::PgConnection,
        principal: &Principal,
        vault_id: VaultId,
    ) -> Result<VaultRow, ServiceError> {
        let vault = vaults::find_live(conn, *principal.org.as_uuid(), *vault_id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("vault"))?;
        if self.visible(conn, &vault, principal).await? {
            Ok(vault)
        } else {
            Err(ServiceError::NotFound("vault"))
        }
    }

    async fn visible(
        &self,
        conn: &mut sqlx::PgConnection,
        vault: &VaultRow,
        principal: &Principal,
    ) -> Result<bool, ServiceError> {
        if !binding_admits(principal, vault.id) {
            return Ok(false);
        }
        if controls(vault, principal) {
            return Ok(true);
        }
        let (kind, id) = principal.key();
        Ok(crate::store::policies::has_any(conn, vault.id, kind, id).await?)
    }
}

/// Whether `principal` sees `vault`, knowing whether any unexpired policy names it there:
/// what [`VaultsService::find_visible`] decides, for callers that read the policies already.
pub(crate) fn visible_with(vault: &VaultRow, principal: &Principal, has_policy: bool) -> bool {
    binding_admits(principal, vault.id) && (controls(vault, principal) || has_policy)
}
