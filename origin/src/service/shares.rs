//! Share links: create, read through, check, revoke, list, accept and decline.
//!
//! A read answers one 404 ("share not found") for every refusal — missing, expired, used up,
//! revoked, declined, wrong or missing passphrase, address not allowed, wrong or missing
//! recipient token — so a caller learns nothing about which; the cause goes to the debug log.
//!
//! The order of a read matters. First the checks that must not use up a view (recipient,
//! allowlist, passphrase) run against the row as read; the Argon2 verify comes last so a
//! stranger's request costs no hashing, and only after the guess has taken one of the share's
//! attempts in a single UPDATE, so no burst of concurrent guesses gets more than
//! `shares::MAX_PASSPHRASE_FAILURES` of them evaluated (a right guess is handed back). Then one transaction counts the read with a single
//! UPDATE that re-checks everything that can have changed meanwhile, reads the secret's live
//! current version (which counts against that version's own limit too) and opens it in the
//! HSM: if anything in there fails, the transaction rolls back and the share's count with it.
//!
//! Every statement that can open a share also checks that its creator still stands (a member
//! of the org; an active, unexpired agent with the token version it made the link under), so
//! a link ends with its maker's access, answered like any other refusal.

use std::net::IpAddr;

use chrono::Utc;
use oxvault_core::claims::Subject;
use oxvault_core::ids::{OrgId, SecretId, VaultId};
use oxvault_core::page::{Page, TimeKey, finish_page};
use oxvault_core::policy::Permission;
use oxvault_core::secret_path::SecretPath;
use oxvault_core::share::CreateShareRequest;
use oxvault_core::share::{
    CreatorType, MAX_PASSPHRASE_LEN, OrgShare, OrgShareListResponse, Passphrase, Recipient,
    ShareId, ShareListResponse, ShareResponse, ShareSpec, ShareStatusResponse, ShareSummary,
    SharedSecretResponse, share_url,
};
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use super::ServiceError;
use super::access;
use super::audit::{self, AuditLog};
use super::passwords::Passwords;
use super::principal::Principal;
use super::secrets::SecretsService;
use super::vaults::{VaultsService, creator_of};
use crate::crypto::Keyring;
use crate::store::outbox::{self, MailQuota, NewMail};
use crate::store::shares::{
    self, LiveShare, NewShare, OrgShareRow, RecipientKey, ShareTarget, SummaryRow,
};
use crate::store::view_reader::ViewReader;
use crate::store::{StoreError, agents, secrets, users};

/// Share operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct SharesService {
    pool: PgPool,
    vaults: VaultsService,
    secrets: SecretsService,
    passwords: Passwords,
    audit: AuditLog,
}

/// Who is reading a share, as far as the read is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reader<'a> {
    /// The authenticated caller, if a valid token came with the request.
    pub principal: Option<&'a Principal>,
    /// The client's address, when known (trusted from the edge, or the TCP peer).
    pub client_ip: Option<IpAddr>,
}

/// The one answer to a share read or check that is refused, whatever the cause; the cause is
/// logged at debug level only.
fn refused(cause: &'static str) -> ServiceError {
    tracing::debug!(cause, "share refused");
    ServiceError::NotFound("share")
}

/// The address as stored allowlists compare it: IPv4-mapped IPv6 as plain IPv4.
fn canonical_ip(ip: Option<IpAddr>) -> Option<String> {
    ip.map(|ip| ip.to_canonical().to_string())
}

/// How logs and audit events name a share: a link share's id is its credential, so it is
/// never written down; the first 16 hex digits of its SHA-256 tell shares apart instead.
pub fn fingerprint(id: ShareId) -> String {
    link_fingerprint(id.as_uuid())
}

/// The fingerprint of any link id that is a credential (a share's, a secret request's).
pub(crate) fn link_fingerprint(id: &uuid::Uuid) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn random_share_id() -> Result<ShareId, ServiceError> {
    random_link_bytes().map(ShareId::from_random_bytes)
}

/// 128 bits from the OS for a link id that is a credential.
pub(crate) fn random_link_bytes() -> Result<[u8; 16], ServiceError> {
    let mut bytes = [0u8; 16];
    OsRng.try_fill_bytes(&mut bytes).map_err(|err| {
        tracing::error!(error = %err, "the OS gave no randomness for a link id");
        ServiceError::Unavailable("random number generator")
    })?;
    Ok(bytes)
}

fn summary(row: SummaryRow) -> ShareSummary {
    ShareSummary {
        id: ShareId::from_uuid(row.id),
        secret_path: row.secret_path,
        recipient_type: row.recipient_type,
        recipient_email: row.recipient_email,
        access_count: row.access_count,
        max_access_count: row.max_access_count,
        expires_at: row.expires_at,
        created_at: row.created_at,
        is_expired: row.is_expired,
        is_accepted: row.is_accepted,
    }
}

/// A live share as its org's managers see it.
fn org_share(row: OrgShareRow) -> Result<OrgShare, ServiceError> {
    let (creator_type, creator_id) = match (row.created_by_user, row.created_by_agent) {
        (Some(user), None) => (CreatorType::User, user),
        (None, Some(agent)) => (CreatorType::Agent, agent),
        _ => {
            return Err(ServiceError::Internal(
                "a share names no creator, or two".into(),
            ));
        }
    };
    Ok(OrgShare {
        id: ShareId::from_uuid(row.id),
        secret_id: SecretId::from_uuid(row.secret_id),
        vault_id: row.vault_id,
        secret_path: row.secret_path,
        creator_type,
        creator_id,
        recipient_type: row.recipient_type,
        recipient_id: row.recipient_user_id.or(row.recipient_agent_id),
        recipient_email: row.recipient_email,
        has_passphrase: row.has_passphrase,
        has_ip_allowlist: row.has_ip_allowlist,
        access_count: row.access_count,
        max_access_count: row.max_access_count,
        expires_at: row.expires_at,
        created_at: row.created_at,
    })
}

/// One page of the org's shares from `rows`, fetched with one row more than `limit` to learn
/// whether another page follows; its cursor points after the page's last share.
fn org_page(
    mut rows: Vec<OrgShareRow>,
    limit: usize,
) -> Result<OrgShareListResponse, ServiceError> {
    let next_cursor = finish_page(&mut rows, limit, |last| TimeKey {
        created_at: last.created_at,
        id: last.id,
    });
    Ok(OrgShareListResponse {
        shares: rows.into_iter().map(org_share).collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// One page of outbound or inbound shares, like [`org_page`].
fn summary_page(mut rows: Vec<SummaryRow>, limit: usize) -> ShareListResponse {
    let next_cursor = finish_page(&mut rows, limit, |last| TimeKey {
        created_at: last.created_at,
        id: last.id,
    });
    ShareListResponse {
        shares: rows.into_iter().map(summary).collect(),
        next_cursor,
    }
}

/// The audit event of a new share: what it hands out, to whom, until when and under which
/// limits; never its id (a fingerprint names it), passphrase or value.
fn create_event(
    principal: &Principal,
    id: ShareId,
    target: &ShareTarget,
    spec: &ShareSpec,
    has_passphrase: bool,
    recipient: &RecipientKey<'_>,
) -> audit::Event {
    let mut event = audit::Event::by(principal, "share.create")
        .on("share", fingerprint(id))
        .detail("secret_id", target.secret_id.to_string())
        .detail("version", target.current_version)
        .detail("recipient_type", spec.recipient.kind().as_str())
        .detail("expires_at", spec.expires_at.to_rfc3339())
        .detail("has_passphrase", has_passphrase)
        .detail("has_ip_allowlist", spec.ip_allowlist.is_some());
    if let Some(max) = spec.max_access_count {
        event = event.detail("max_access_count", max);
    }
    if let Some(email) = recipient.email {
        event = event.detail("recipient_email", email);
    }
    if let Some(id) = recipient.user.or(recipient.agent) {
        event = event.detail("recipient_id", id.to_string());
    }
    event
}

/// Whether `principal` is the user or agent a targeted share names.
fn is_recipient(share: &LiveShare, principal: Option<&Principal>) -> bool {
    match principal.map(|p| p.subject) {
        Some(Subject::User(id)) => share.recipient_user_id == Some(*id.as_uuid()),
        Some(Subject::Agent(id)) => share.recipient_agent_id == Some(*id.as_uuid()),
        None => false,
    }
}

/// The text of the mail that carries an `external_email` share's link. It never holds the
/// passphrase (that must travel another way) nor the secret's path.
fn share_mail(sender: &str, url: &str, spec: &ShareSpec, has_passphrase: bool) -> String {
    let mut body = format!(
        "{sender} shared a secret with you through oxvault.\n\n\
         Open it here:\n{url}\n\n\
         The link works until {} UTC",
        spec.expires_at.format("%Y-%m-%d %H:%M")
    );
    match spec.max_access_count {
        Some(1) => body.push_str(", for one view only"),
        Some(count) => body.push_str(&format!(", for {count} views")),
        None => {}
    }
    body.push_str(".\n");
    if has_passphrase {
        body.push_str(
            "It is protected by a passphrase, which the sender will give you another way.\n",
        );
    }
    body.push_str(
        "\nAnyone holding this link may open it: do not forward this message.\n\
         If you did not expect it, you can ignore it.\n",
    );
    body
}

impl SharesService {
    pub fn new(
        pool: PgPool,
        views: ViewReader,
        keyring: Keyring,
        audit: AuditLog,
        passwords: Passwords,
    ) -> Self {
        Self {
            vaults: VaultsService::new(pool.clone(), audit.clone()),
            secrets: SecretsService::new(pool.clone(), views, keyring, audit.clone()),
            audit,
            pool,
            passwords,
        }
    }

    /// Shares secret `secret_id` as `request` says. Needs the `share` permission on the
    /// secret's path; a secret the caller cannot see is a 404. An `external_email` share
    /// queues its mail in the same transaction, so the mail exists exactly when the share
    /// does. `public_url` is the base of the link.
    pub async fn create(
        &self,
        principal: &Principal,
        secret_id: SecretId,
        request: CreateShareRequest,
        public_url: &str,
    ) -> Result<ShareResponse, ServiceError> {
        let mut spec = ShareSpec::parse(request, Utc::now())
            .map_err(|err| ServiceError::Invalid(err.to_string()))?;
        if matches!(spec.recipient, Recipient::ExternalEmail(_)) && principal.agent_id().is_some() {
            return Err(ServiceError::Forbidden(
                "agents cannot share secrets with outside email addresses",
            ));
        }
        let org = *principal.org.as_uuid();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let target = self.shareable(&mut tx, principal, secret_id).await?;
        let recipient = self
            .recipient_key(&mut tx, principal, &spec.recipient)
            .await?;
        // Hashed only once the caller is known to be allowed, so a refused request costs no
        // Argon2 work.
        let has_passphrase = spec.passphrase.is_some();
        let passphrase_hash = self.passphrase_hash(spec.passphrase.take()).await?;
        let id = random_share_id()?;
        let kind = spec.recipient.kind();
        shares::insert(
            &mut tx,
            &NewShare {
                id: *id.as_uuid(),
                org_id: org,
                secret_id: target.secret_id,
                vault_id: target.vault_id,
                secret_version: target.current_version,
                creator: creator_of(principal),
                recipient_type: kind,
                recipient_user_id: recipient.user,
                recipient_agent_id: recipient.agent,
                recipient_email: recipient.email,
                passphrase_hash: passphrase_hash.as_deref(),
                ip_allowlist: spec
                    .ip_allowlist
                    .as_ref()
                    .map(|blocks| blocks.iter().map(ToString::to_string).collect()),
                expires_at: spec.expires_at,
                max_access_count: spec.max_access_count,
            },
        )
        .await?;
        let url = share_url(public_url, id);
        if let Some(email) = recipient.email {
            let body = share_mail(
                &self.sender_of(&mut tx, principal).await?,
                &url,
                &spec,
                has_passphrase,
            );
            queue_mail(&mut tx, principal, email, &body, &fingerprint(id)).await?;
        }
        let event = create_event(principal, id, &target, &spec, has_passphrase, &recipient);
        self.audit.commit(tx, event).await?;
        tracing::info!(share = %fingerprint(id), recipient_type = kind.as_str(), "share created");
        Ok(ShareResponse {
            id,
            share_url: url,
            recipient_type: kind,
            recipient_email: recipient.email.map(str::to_owned),
            expires_at: spec.expires_at,
            max_access_count: spec.max_access_count,
        })
    }

    /// The secret `secret_id` when the caller may share it: 404 when it is not a live secret
    /// of a vault the caller sees, 403 without the `share` permission on its path.
    async fn shareable(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
        secret_id: SecretId,
    ) -> Result<ShareTarget, ServiceError> {
        let target = shares::find_target(conn, *principal.org.as_uuid(), *secret_id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("secret"))?;
        let vault = self
            .vaults
            .find_visible(conn, principal, VaultId::from_uuid(target.vault_id))
            .await
            .map_err(|err| match err {
                ServiceError::NotFound(_) => ServiceError::NotFound("secret"),
                other => other,
            })?;
        let path = SecretPath::parse(&target.path)
            .map_err(|_| ServiceError::Internal("a stored secret path does not parse".into()))?;
        access::require(conn, principal, &vault, &path, Permission::Share).await?;
        Ok(target)
    }

    /// The Argon2 hash of a share's passphrase, if it has one. The caller takes it out of the
    /// spec rather than copying it, so it lives on only inside the `SecretString`, which
    /// wipes it when dropped.
    async fn passphrase_hash(
        &self,
        passphrase: Option<Passphrase>,
    ) -> Result<Option<String>, ServiceError> {
        match passphrase {
            Some(passphrase) => Ok(Some(
                self.passwords
                    .hash_checked(SecretString::from(passphrase.into_inner()))
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// The recipient columns of a new share; 400 when a user or agent id names nobody of the
    /// creator's org.
    async fn recipient_key<'a>(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
        recipient: &'a Recipient,
    ) -> Result<RecipientKey<'a>, ServiceError> {
        let org = *principal.org.as_uuid();
        Ok(match recipient {
            Recipient::AnyoneWithLink => RecipientKey::default(),
            Recipient::User(id) => {
                users::find_in_org(conn, org, *id.as_uuid())
                    .await?
                    .ok_or_else(|| {
                        ServiceError::Invalid(
                            "recipient_id does not name a user of your organization".into(),
                        )
                    })?;
                RecipientKey {
                    user: Some(*id.as_uuid()),
                    ..RecipientKey::default()
                }
            }
            Recipient::Agent(id) => {
                agents::find_in_org(conn, org, *id.as_uuid())
                    .await?
                    .ok_or_else(|| {
                        ServiceError::Invalid(
                            "recipient_id does not name an agent of your organization".into(),
                        )
                    })?;
                RecipientKey {
                    agent: Some(*id.as_uuid()),
                    ..RecipientKey::default()
                }
            }
            Recipient::ExternalEmail(email) => RecipientKey {
                email: Some(email.as_str()),
                ..RecipientKey::default()
            },
            Recipient::Creator => {
                let creator = creator_of(principal);
                RecipientKey {
                    user: creator.user,
                    agent: creator.agent,
                    email: None,
                }
            }
        })
    }

    /// How a share mail names its sender: the user's address when its owner proved it (only
    /// users may share by email); an unproven one could be anyone's, so it is not repeated.
    async fn sender_of(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
    ) -> Result<String, ServiceError> {
        let user = principal.require_user()?;
        Ok(users::find_by_id(conn, *user.as_uuid())
            .await?
            .filter(|row| row.email_verified_at.is_some())
            .map_or_else(|| "Someone".to_owned(), |row| row.email))
    }

    /// Reads the secret behind share `id`, counting one view (see the module docs for the
    /// order of the checks). Every refusal is the same 404.
    pub async fn read(
        &self,
        id: ShareId,
        reader: Reader<'_>,
        passphrase: Option<SecretString>,
    ) -> Result<SharedSecretResponse, ServiceError> {
        let client_ip = canonical_ip(reader.client_ip);
        let share = {
            let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
            shares::find_live(&mut conn, *id.as_uuid(), client_ip.as_deref())
                .await?
                .ok_or_else(|| refused("missing, expired, used up, revoked or declined"))?
        };
        let kind = share.recipient_type;
        if !kind.is_link() && !is_recipient(&share, reader.principal) {
            return Err(refused("not the share's recipient"));
        }
        if !share.ip_allowed {
            return Err(refused("client address not in the share's allowlist"));
        }
        self.check_passphrase(&share, client_ip.as_deref(), passphrase)
            .await?;

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let counted = shares::consume(&mut tx, *id.as_uuid(), client_ip.as_deref())
            .await?
            .ok_or_else(|| refused("used up, expired or revoked while being read"))?;
        let path = shares::live_path(&mut tx, counted.vault_id, counted.secret_id)
            .await?
            .ok_or_else(|| refused("the secret or its vault was deleted"))?;
        // Returning early drops `tx`, which rolls the share's count back.
        let version =
            secrets::count_access(&mut tx, counted.vault_id, &path, counted.secret_version)
                .await?
                .ok_or_else(|| refused("the shared version is no longer readable"))?;
        let secret = self
            .secrets
            .open(
                OrgId::from_uuid(counted.org_id),
                VaultId::from_uuid(counted.vault_id),
                version,
            )
            .await?;
        // On the record before the value leaves: an audit failure rolls the view back too.
        let actor = reader
            .principal
            .map_or(audit::Actor::Anonymous, audit::Actor::of);
        let event = audit::Event::new(
            "share.access",
            Some(OrgId::from_uuid(counted.org_id)),
            actor,
            reader.client_ip,
        )
        .on("share", fingerprint(id))
        .detail("secret_id", counted.secret_id.to_string())
        .detail("version", secret.version)
        .detail("access_count", counted.access_count);
        self.audit.commit(tx, event).await?;
        tracing::info!(share = %fingerprint(id), access_count = counted.access_count, "share read");
        Ok(SharedSecretResponse {
            id: secret.id,
            path: secret.path,
            secret_type: secret.secret_type,
            value: secret.value,
            access_count: counted.access_count,
            max_access_count: counted.max_access_count,
        })
    }

    /// Passes when the share has no passphrase, or `given` matches its hash. The guess first
    /// takes one of the share's attempts in the database, so a burst of concurrent guesses gets
    /// no more evaluated than the share has attempts left; a right one is handed back.
    async fn check_passphrase(
        &self,
        share: &LiveShare,
        client_ip: Option<&str>,
        given: Option<SecretString>,
    ) -> Result<(), ServiceError> {
        if share.passphrase_hash.is_none() {
            return Ok(());
        }
        let Some(given) = given else {
            return Err(refused("passphrase required"));
        };
        // Bounds the hashing work a request can ask for, like the creation rule.
        if secrecy::ExposeSecret::expose_secret(&given).chars().count() > MAX_PASSPHRASE_LEN {
            return Err(refused("passphrase too long"));
        }
        let hash = {
            let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
            shares::reserve_passphrase_attempt(&mut conn, share.id, client_ip)
                .await?
                .ok_or_else(|| refused("no passphrase attempt left, or no longer readable"))?
        };
        // Hashed and settled in a task of its own: a caller that goes away mid-hash must not
        // leave a right guess counted as a wrong one.
        let (passwords, pool, id) = (self.passwords.clone(), self.pool.clone(), share.id);
        let settle = async move {
            let right = passwords.verify(given, Some(hash)).await?;
            if right {
                let mut conn = pool.acquire().await.map_err(StoreError::from)?;
                shares::refund_passphrase_attempt(&mut conn, id).await?;
            }
            Ok::<bool, ServiceError>(right)
        };
        let right = tokio::spawn(settle.in_current_span())
            .await
            .map_err(ServiceError::internal)??;
        if right {
            Ok(())
        } else {
            Err(refused("wrong passphrase"))
        }
    }

    /// What the share page needs before the reveal, for a live link share readable from
    /// `client_ip`; counts nothing. Anything else is the same 404 as a read.
    pub async fn status(
        &self,
        id: ShareId,
        client_ip: Option<IpAddr>,
    ) -> Result<ShareStatusResponse, ServiceError> {
        let client_ip = canonical_ip(client_ip);
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let share = shares::find_live(&mut conn, *id.as_uuid(), client_ip.as_deref())
            .await?
            .ok_or_else(|| refused("missing, expired, used up, revoked or declined"))?;
        if !share.recipient_type.is_link() {
            return Err(refused("not a link share"));
        }
        if !share.ip_allowed {
            return Err(refused("client address not in the share's allowlist"));
        }
        Ok(ShareStatusResponse {
            id,
            requires_passphrase: share.passphrase_hash.is_some(),
            expires_at: share.expires_at,
        })
    }

    /// Revokes share `id`: its creator, or an owner or admin of its org, may. Another org's
    /// share is a 404; someone else of the same org gets a 403. Its mail, if still queued, is
    /// cancelled in the same transaction.
    pub async fn revoke(&self, principal: &Principal, id: ShareId) -> Result<(), ServiceError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let owner = shares::find_owner(&mut tx, *id.as_uuid())
            .await?
            .filter(|owner| owner.org_id == *principal.org.as_uuid())
            .ok_or(ServiceError::NotFound("share"))?;
        let creator = creator_of(principal);
        let is_creator = (creator.user.is_some() && creator.user == owner.created_by_user)
            || (creator.agent.is_some() && creator.agent == owner.created_by_agent);
        let is_manager = principal.role.is_some_and(|role| role.can_manage());
        if !is_creator && !is_manager {
            return Err(ServiceError::Forbidden(
                "only the share's creator, an owner or an admin may revoke it",
            ));
        }
        shares::revoke(&mut tx, *id.as_uuid()).await?;
        // A link mailed but not yet delivered must not arrive after all.
        let cancelled = outbox::cancel_share_mail(&mut tx, &fingerprint(id)).await?;
        let event = audit::Event::by(principal, "share.revoke")
            .on("share", fingerprint(id))
            .detail("mail_cancelled", cancelled);
        self.audit.commit(tx, event).await?;
        tracing::info!(share = %fingerprint(id), "share revoked");
        Ok(())
    }

    /// One page of the org's shares that can be read now, newest first, for its owners and
    /// admins (403 for anyone else). No value, passphrase or allowlist is in it.
    pub async fn org_shares(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<OrgShareListResponse, ServiceError> {
        principal.require_manager()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let org = *principal.org.as_uuid();
        let rows = shares::list_live_in_org(&mut conn, org, page.after, page.fetch()).await?;
        org_page(rows, page.len())
    }

    /// One page of the shares the caller created and has not revoked, newest first.
    pub async fn outbound(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<ShareListResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let creator = creator_of(principal);
        let rows = shares::list_outbound(&mut conn, creator, page.after, page.fetch()).await?;
        Ok(summary_page(rows, page.len()))
    }

    /// The shares addressed to the caller's user or agent id that are neither revoked nor
    /// declined, newest first. Shares mailed to an address are not listed for the account
    /// holding that address: sign-up does not prove the address is theirs.
    pub async fn inbound(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<ShareListResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let recipient = recipient_of(principal);
        let rows = shares::list_inbound(&mut conn, recipient, page.after, page.fetch()).await?;
        Ok(summary_page(rows, page.len()))
    }

    /// Accepts (`accept`) or declines share `id` as its recipient; a declined share can no
    /// longer be read. Not the caller's share: 404. Accepting a declined share: 409.
    pub async fn respond(
        &self,
        principal: &Principal,
        id: ShareId,
        accept: bool,
    ) -> Result<(), ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        match shares::respond(&mut conn, *id.as_uuid(), recipient_of(principal), accept).await? {
            shares::Response::Done => Ok(()),
            shares::Response::AlreadyDeclined => Err(ServiceError::Conflict(
                "this share was declined; it cannot be accepted".into(),
            )),
            shares::Response::NotFound => Err(ServiceError::NotFound("share")),
        }
    }
}

/// Queues the mail of an `external_email` share on `conn`, the transaction creating it.
async fn queue_mail(
    conn: &mut PgConnection,
    principal: &Principal,
    to: &str,
    body: &str,
    share_fingerprint: &str,
) -> Result<(), ServiceError> {
    let queued = outbox::enqueue_within(
        conn,
        &NewMail {
            org_id: Some(*principal.org.as_uuid()),
            kind: "share",
            recipient: to,
            subject: "A secret has been shared with you",
            body_text: body,
            share_fingerprint: Some(share_fingerprint),
        },
        MailQuota::STANDARD,
    )
    .await?;
    queued
        .map(drop)
        .map_err(|retry_after_secs| ServiceError::TooManyAttempts { retry_after_secs })
}

/// The recipient key of `principal`: its user or agent id.
fn recipient_of(principal: &Principal) -> RecipientKey<'static> {
    let creator = creator_of(principal);
    RecipientKey {
        user: creator.user,
        agent: creator.agent,
        email: None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;

    fn spec(extra: serde_json::Value) -> ShareSpec {
        let mut body = json!({
            "recipient_type": "external_email",
            "email": "friend@example.org",
            "expires_at": (Utc::now() + Duration::hours(2)).to_rfc3339(),
        });
        if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        ShareSpec::parse(serde_json::from_value(body).unwrap(), Utc::now()).unwrap()
    }

    #[test]
    fn the_share_mail_carries_the_link_but_never_the_passphrase() {
        let spec = spec(json!({"passphrase": "canary-passphrase-31", "max_access_count": 1}));
        let body = share_mail("ada@example.org", "https://v.example/s/abc", &spec, true);
        assert!(body.contains("https://v.example/s/abc"), "{body}");
        assert!(body.contains("ada@example.org"), "{body}");
        assert!(body.contains("one view only"), "{body}");
        assert!(body.contains("passphrase"), "{body}");
        assert!(!body.contains("canary-passphrase-31"), "{body}");
    }

    #[test]
    fn share_ids_are_random_and_differ() {
        let a = random_share_id().unwrap();
        let b = random_share_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 36);
    }

    #[test]
    fn ipv4_mapped_clients_compare_as_ipv4() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical_ip(Some(mapped)).as_deref(), Some("127.0.0.1"));
        assert_eq!(canonical_ip(None), None);
    }
}
