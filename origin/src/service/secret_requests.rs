//! Secret requests: an agent or user asks a person for a secret (see
//! [`oxvault_core::secret_request`]).
//!
//! - **Create** needs `write` on the path, as a write there would; the request keeps the
//!   creator's token version, scopes and address, and mails its link through the outbox in
//!   the same transaction when an address is given (users only, like share mail).
//! - **Fulfil** is public: the id is the credential. One transaction locks the request row
//!   (open, unexpired, creator in good standing), rebuilds the creator as a principal from its
//!   live state and writes the value as that principal, with every check of a `PUT` (vault
//!   visible, `write` policy, scopes, tier limits), then closes the request and commits the
//!   `secret.write` event (naming the request) with it. A second submit waits on the lock and
//!   then finds the request closed: exactly one value is ever taken.
//! - Every refusal of a public route is the same 404, so the id's holder learns nothing about
//!   why (expired, used, cancelled, the creator's access gone).

use std::net::IpAddr;

use chrono::Utc;
use oxvault_core::claims::Subject;
use oxvault_core::ids::{AgentId, OrgId, UserId, VaultId};
use oxvault_core::policy::Permission;
use oxvault_core::scope::{Action, Permission as ScopePermission, Requirement, Resource};
use oxvault_core::secret_path::SecretPath;
use oxvault_core::secret_request::{
    CreateSecretRequestRequest, FulfilSecretRequest, RequestCreator, RequestSpec, SecretRequestId,
    SecretRequestListResponse, SecretRequestPrompt, SecretRequestResponse, SecretRequestStatus,
    request_url,
};
use oxvault_core::vault::{PutSecretRequest, SecretType};
use sqlx::{PgConnection, PgPool};

use super::ServiceError;
use super::access;
use super::audit::{AuditLog, Event};
use super::principal::Principal;
use super::secrets::SecretsService;
use super::shares::{link_fingerprint, random_link_bytes};
use super::vaults::{VaultsService, creator_of};
use crate::store::outbox::{self, MailQuota, NewMail};
use crate::store::secret_requests::{self, NewRequest, RequestRow};
use crate::store::{StoreError, agents, users};

/// Most requests one list answers (newest first).
pub const MAX_LISTED: i64 = 200;

/// What the one 404 of the public routes names.
const NOT_FOUND: &str = "secret request";

/// Secret request operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretRequestsService {
    pool: PgPool,
    vaults: VaultsService,
    secrets: SecretsService,
    audit: AuditLog,
}

impl SecretRequestsService {
    pub fn new(pool: PgPool, secrets: SecretsService, audit: AuditLog) -> Self {
        Self {
            vaults: VaultsService::new(pool.clone(), audit.clone()),
            pool,
            secrets,
            audit,
        }
    }

    /// Opens a request for a value at `request.path` in `vault_id`; `public_url` is the base of
    /// its link.
    pub async fn create(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        request: CreateSecretRequestRequest,
        public_url: &str,
    ) -> Result<SecretRequestResponse, ServiceError> {
        let spec = RequestSpec::parse(request, Utc::now()).map_err(ServiceError::Invalid)?;
        if spec.recipient_email.is_some() && principal.agent_id().is_some() {
            return Err(ServiceError::Forbidden(
                "agents cannot mail requests to outside addresses; hand the link over instead",
            ));
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut tx, principal, vault_id)
            .await?;
        access::require(&mut tx, principal, &vault, &spec.path, Permission::Write).await?;
        let token_version = token_version(&mut tx, principal).await?;
        let id = SecretRequestId::from_random_bytes(random_link_bytes()?);
        let row = secret_requests::insert(
            &mut tx,
            &NewRequest {
                id: *id.as_uuid(),
                org_id: *principal.org.as_uuid(),
                vault_id: vault.id,
                path: spec.path.as_str(),
                description: &spec.description,
                secret_type: spec.secret_type.as_str(),
                creator: creator_of(principal),
                creator_token_version: token_version,
                creator_scopes: &principal.scopes,
                creator_ip: principal.client_ip.map(|ip| ip.to_canonical().to_string()),
                recipient_email: spec.recipient_email.as_ref().map(|email| email.as_str()),
                expires_at: spec.expires_at,
            },
        )
        .await?;
        let url = request_url(public_url, id);
        if let Some(email) = &spec.recipient_email {
            let sender = users::find_by_id(&mut tx, *principal.require_user()?.as_uuid())
                .await?
                .filter(|row| row.email_verified_at.is_some())
                .map_or_else(|| "Someone".to_owned(), |row| row.email);
            let body = request_mail(&sender, &url, &row);
            queue_mail(
                &mut tx,
                principal,
                email.as_str(),
                &body,
                &link_fingerprint(id.as_uuid()),
            )
            .await?;
        }
        let event = Event::by(principal, "secret_request.create")
            .on("secret_request", link_fingerprint(id.as_uuid()))
            .detail("vault_id", vault_id.to_string())
            .detail("path", spec.path.as_str())
            .detail("expires_at", spec.expires_at.to_rfc3339())
            .detail("mailed", spec.recipient_email.is_some());
        self.audit.commit(tx, event).await?;
        Ok(response(row, public_url))
    }

    /// Request `id` as its creator (or an owner or admin of its org) sees it; 404 for anyone
    /// else.
    pub async fn get(
        &self,
        principal: &Principal,
        id: SecretRequestId,
        public_url: &str,
    ) -> Result<SecretRequestResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let row = secret_requests::find_in_org(&mut conn, *principal.org.as_uuid(), *id.as_uuid())
            .await?
            .filter(|row| may_manage(principal, row))
            .ok_or(ServiceError::NotFound(NOT_FOUND))?;
        Ok(response(row, public_url))
    }

    /// The requests of `vault_id`, newest first: the caller's own, or all of them for an owner
    /// or admin.
    pub async fn list(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        public_url: &str,
    ) -> Result<SecretRequestListResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut conn, principal, vault_id)
            .await?;
        let only = (!is_manager(principal)).then(|| creator_of(principal));
        let rows = secret_requests::list_for_vault(&mut conn, vault.id, only, MAX_LISTED).await?;
        Ok(SecretRequestListResponse {
            requests: rows
                .into_iter()
                .map(|row| response(row, public_url))
                .collect(),
        })
    }

    /// Withdraws request `id` (its creator, or an owner or admin): its link stops working and
    /// its unsent mail is dropped. A closed request is answered as it is.
    pub async fn cancel(
        &self,
        principal: &Principal,
        id: SecretRequestId,
        public_url: &str,
    ) -> Result<SecretRequestResponse, ServiceError> {
        let (org, uuid) = (*principal.org.as_uuid(), *id.as_uuid());
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let found = secret_requests::find_in_org(&mut tx, org, uuid).await?;
        if !found.as_ref().is_some_and(|row| may_manage(principal, row)) {
            return Err(ServiceError::NotFound(NOT_FOUND));
        }
        let Some(row) = secret_requests::cancel(&mut tx, org, uuid).await? else {
            // Closed already (perhaps a moment ago): nothing to cancel, mail or record; answered
            // as it stands now (a new statement sees what was committed since).
            let row = secret_requests::find_in_org(&mut tx, org, uuid)
                .await?
                .ok_or(ServiceError::NotFound(NOT_FOUND))?;
            return Ok(response(row, public_url));
        };
        outbox::cancel_share_mail(&mut tx, &link_fingerprint(&uuid)).await?;
        let event = Event::by(principal, "secret_request.cancel")
            .on("secret_request", link_fingerprint(&uuid))
            .detail("vault_id", row.vault_id.to_string())
            .detail("path", row.path.as_str());
        self.audit.commit(tx, event).await?;
        Ok(response(row, public_url))
    }

    /// What the page shows about pending request `id`; the one 404 otherwise.
    pub async fn prompt(&self, id: SecretRequestId) -> Result<SecretRequestPrompt, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let row = secret_requests::prompt(&mut conn, *id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound(NOT_FOUND))?;
        Ok(SecretRequestPrompt {
            requested_by: row.requested_by,
            path: row.path,
            description: row.description,
            secret_type: SecretType::parse(&row.secret_type).unwrap_or_default(),
            expires_at: row.expires_at,
        })
    }

    /// Writes the value a person gave for pending request `id` (see the module docs); answers
    /// the version it became. `client_ip` is the person's address, recorded in the event.
    pub async fn fulfil(
        &self,
        id: SecretRequestId,
        given: FulfilSecretRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<i32, ServiceError> {
        if given.value.is_empty() {
            return Err(ServiceError::Invalid("value must not be empty".into()));
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let row = secret_requests::lock_open(&mut tx, *id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound(NOT_FOUND))?;
        let Some(creator) = creator_principal(&mut tx, &row).await? else {
            return Err(ServiceError::NotFound(NOT_FOUND));
        };
        let path = SecretPath::parse(&row.path)
            .map_err(|_| ServiceError::Internal("a stored request path does not parse".into()))?;
        let secret_type = given
            .secret_type
            .or_else(|| SecretType::parse(&row.secret_type));
        let request = PutSecretRequest {
            value: given.value,
            secret_type,
            metadata: None,
            expires_at: None,
            max_access_count: None,
        };
        let vault_id = VaultId::from_uuid(row.vault_id);
        let (written, mut event) = self
            .secrets
            .write_within(&mut tx, &creator, vault_id, &path, request)
            .await
            .map_err(|err| match err {
                // The creator lost the right to write there: the link no longer works, and
                // its holder is told nothing more.
                ServiceError::Forbidden(_) | ServiceError::NotFound(_) => {
                    tracing::info!(error = %err, "a secret request's creator can no longer write its path");
                    ServiceError::NotFound(NOT_FOUND)
                }
                other => other,
            })?;
        secret_requests::mark_fulfilled(&mut tx, row.id, written.version).await?;
        event = event
            .detail("secret_request_id", id.to_string())
            .detail("via", "secret_request");
        event.ip = client_ip;
        self.audit.commit(tx, event).await?;
        Ok(written.version)
    }
}

/// The creator of `row` as a principal, from its live state (`None`: it lost standing or is
/// scoped out of writing secrets). The row was locked with the standing checked; this reads
/// what a write needs (role, scopes, bound vaults) and checks the scopes.
async fn creator_principal(
    conn: &mut PgConnection,
    row: &RequestRow,
) -> Result<Option<Principal>, ServiceError> {
    let org = OrgId::from_uuid(row.org_id);
    let principal = match (row.created_by_user, row.created_by_agent) {
        (Some(user_id), _) => users::find_by_id(conn, user_id)
            .await?
            .filter(|user| user.org_id == row.org_id)
            .map(|user| Principal {
                org,
                subject: Subject::User(UserId::from_uuid(user_id)),
                role: Some(user.role),
                session: None,
                scopes: row.creator_scopes.clone(),
                vault_ids: Vec::new(),
                client_ip: None,
            }),
        (None, Some(agent_id)) => agents::agent_state(conn, agent_id)
            .await?
            .filter(|agent| agent.org_id == row.org_id && agent.is_active)
            .map(|agent| Principal {
                org,
                subject: Subject::Agent(AgentId::from_uuid(agent_id)),
                role: None,
                session: None,
                scopes: agent.scopes,
                vault_ids: agent
                    .vault_ids
                    .into_iter()
                    .map(VaultId::from_uuid)
                    .collect(),
                client_ip: None,
            }),
        (None, None) => None,
    };
    let writes_secrets =
        Requirement::Scoped(ScopePermission::new(Resource::Secrets, Action::Write));
    Ok(principal
        .filter(|principal| writes_secrets.allows(&principal.scopes))
        .map(|principal| Principal {
            // Policy conditions see the address the creator asked from.
            client_ip: row.creator_ip.as_deref().and_then(|ip| ip.parse().ok()),
            ..principal
        }))
}

/// The creator's current token version, kept with the request (a bump closes it).
async fn token_version(
    conn: &mut PgConnection,
    principal: &Principal,
) -> Result<i64, ServiceError> {
    let version = match principal.subject {
        Subject::User(id) => users::find_by_id(conn, *id.as_uuid())
            .await?
            .map(|user| user.token_version),
        Subject::Agent(id) => agents::agent_state(conn, *id.as_uuid())
            .await?
            .map(|agent| agent.token_version),
    };
    version.ok_or(ServiceError::Unauthenticated(super::principal::BAD_TOKEN))
}

fn is_manager(principal: &Principal) -> bool {
    principal.role.is_some_and(|role| role.can_manage())
}

/// Whether `principal` may see and cancel `row`: its creator, or an owner or admin.
fn may_manage(principal: &Principal, row: &RequestRow) -> bool {
    let creator = creator_of(principal);
    is_manager(principal)
        || (creator.user.is_some() && creator.user == row.created_by_user)
        || (creator.agent.is_some() && creator.agent == row.created_by_agent)
}

fn status(row: &RequestRow) -> SecretRequestStatus {
    if row.fulfilled_at.is_some() {
        SecretRequestStatus::Fulfilled
    } else if row.cancelled_at.is_some() {
        SecretRequestStatus::Cancelled
    } else if row.expires_at <= Utc::now() {
        SecretRequestStatus::Expired
    } else {
        SecretRequestStatus::Pending
    }
}

fn response(row: RequestRow, public_url: &str) -> SecretRequestResponse {
    let id = SecretRequestId::from_uuid(row.id);
    let created_by = match (row.created_by_user, row.created_by_agent) {
        (Some(id), _) => RequestCreator {
            kind: "user".into(),
            id,
        },
        (None, agent) => RequestCreator {
            kind: "agent".into(),
            id: agent.unwrap_or_default(),
        },
    };
    SecretRequestResponse {
        id,
        status: status(&row),
        request_url: request_url(public_url, id),
        vault_id: row.vault_id,
        secret_type: SecretType::parse(&row.secret_type).unwrap_or_default(),
        path: row.path,
        description: row.description,
        recipient_email: row.recipient_email,
        created_by,
        created_at: row.created_at,
        expires_at: row.expires_at,
        fulfilled_at: row.fulfilled_at,
        fulfilled_version: row.fulfilled_version,
        cancelled_at: row.cancelled_at,
    }
}

/// The mail that carries a request's link. The description is the creator's words: plain
/// text mail, so nothing in it is markup.
fn request_mail(sender: &str, url: &str, row: &RequestRow) -> String {
    format!(
        "{sender} asks you for a secret: {path}\n\n\
         Why: {description}\n\n\
         Open this link to type it in; it goes straight into the vault, and nobody sees it on \
         the way:\n{url}\n\n\
         The link works once, until {expires} (UTC). If you did not expect this, ignore it.\n",
        path = row.path,
        description = row.description,
        expires = row.expires_at.format("%Y-%m-%d %H:%M"),
    )
}

async fn queue_mail(
    conn: &mut PgConnection,
    principal: &Principal,
    to: &str,
    body: &str,
    fingerprint: &str,
) -> Result<(), ServiceError> {
    let queued = outbox::enqueue_within(
        conn,
        &NewMail {
            org_id: Some(*principal.org.as_uuid()),
            kind: "secret_request",
            recipient: to,
            subject: "Someone is asking you for a secret",
            body_text: body,
            share_fingerprint: Some(fingerprint),
        },
        MailQuota::STANDARD,
    )
    .await?;
    queued
        .map(drop)
        .map_err(|retry_after_secs| ServiceError::TooManyAttempts { retry_after_secs })
}
