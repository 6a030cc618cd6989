//! Secrets: write a new version (a given value, or a random one on rotation), read the
//! current or an older version, disable a version, delete, list.
//!
//! A read is one indexed statement that checks and counts the access, one HSM unwrap of the
//! version's data key, and one AES-GCM open. Writes allocate the version number first (the
//! secret's row stays locked until commit, so concurrent writes get consecutive versions),
//! then seal the value for exactly that place, then store the blob — all in one transaction,
//! so a failure anywhere leaves nothing behind and nothing is ever stored in plaintext.
//!
//! Conditional and repeated writes (`If-Match`, `Idempotency-Key`) are decided inside that
//! same transaction, after the secret's row is locked: two writers naming the same version
//! cannot both win, and a request retried while its first attempt is still running waits
//! for it and then replays its answer. See [`SecretsService::put`].

use chrono::{DateTime, Utc};
use oxvault_core::claims::Claims;
use oxvault_core::ids::{OrgId, SecretId, VaultId};
use oxvault_core::page::{Page, PathKey, VersionKey, finish_page};
use oxvault_core::policy::Permission;
use oxvault_core::secret_path::SecretPath;
use oxvault_core::vault::{
    PutSecretRequest, RotateSecretRequest, RotationSpec, SecretListResponse,
    SecretMetadataResponse, SecretResponse, SecretType, SecretVersionListResponse,
};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sqlx::{PgConnection, PgPool};
use zeroize::Zeroizing;

use super::ServiceError;
use super::access;
use super::audit::{AuditLog, Event};
use super::principal::{Admit, Principal};
use super::principal::{admit, who_of};
use super::vaults::{VaultsService, creator_of, visible_with};
use crate::crypto::envelope::{self, Place};
use crate::crypto::{CryptoError, Keyring};
use crate::store::StoreError;
use crate::store::idempotency::{self, NewResponse, StoredResponse};
use crate::store::read_view::ViewRequest;
use crate::store::secrets::{self, LockedSecret, MetadataRow, NewVersion, Unreadable, VersionRow};
use crate::store::vaults::VaultRow;
use crate::store::view_reader::ViewReader;

/// Largest secret value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 256 * 1024;

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Secret operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretsService {
    pool: PgPool,
    /// The read's lookup, batched with other reads under load.
    views: ViewReader,
    keyring: Keyring,
    audit: AuditLog,
    vaults: VaultsService,
    /// Billing tier limits, checked when a write creates a path (see [`Self::with_tiers`]).
    tiers: Option<super::billing::Tiers>,
    /// Versions kept per path; a write past it erases the oldest (see
    /// [`Self::with_max_versions`]).
    max_versions: u32,
}

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        if text.is_empty()
            || text.len() > MAX_IDEMPOTENCY_KEY_LEN
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ServiceError::Invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes a write conditional or repeatable, from its headers.
#[derive(Debug, Clone, Default)]
pub struct WriteConditions {
    /// `If-Match`: the version the caller believes is current. The write fails (412) unless
    /// the secret is live and that is its current version.
    pub if_match: Option<i32>,
    /// `Idempotency-Key`, with the SHA-256 fingerprint of the request it came with.
    pub idempotency: Option<(IdempotencyKey, [u8; 32])>,
}

/// The answer to a write.
#[derive(Debug, Clone)]
pub enum Written {
    /// A new version was written (201).
    Created(SecretMetadataResponse),
    /// The key was used before with the same request: its first answer, unchanged.
    Replayed {
        status: u16,
        body: serde_json::Value,
    },
}

/// What a write can fail with: a stale `If-Match`, or anything a service call can.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// `If-Match` named a version that is not the current one, or the secret is not live
    /// (412); nothing was written.
    #[error("the secret's current version is not the one named in If-Match")]
    Stale,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for WriteError {
    fn from(err: StoreError) -> Self {
        Self::Service(err.into())
    }
}

/// A value to write and the fields of its version.
struct NewValue {
    value: Zeroizing<String>,
    secret_type: SecretType,
    metadata: serde_json::Map<String, serde_json::Value>,
    expires_at: Option<DateTime<Utc>>,
    max_access_count: Option<i32>,
}

/// A version just stored by a write, not yet committed.
struct StoredVersion {
    response: SecretMetadataResponse,
    /// Older versions erased to keep the path within its limit.
    pruned: u64,
}

impl StoredVersion {
    /// The write's audit event.
    fn event(&self, principal: &Principal, action: &'static str, vault_id: VaultId) -> Event {
        let event = secret_event(
            principal,
            action,
            self.response.id,
            vault_id,
            &self.response.path,
            Some(self.response.version),
        );
        if self.pruned > 0 {
            event.detail("versions_pruned", self.pruned)
        } else {
            event
        }
    }
}

/// Where a write's value comes from.
enum Source {
    /// `PUT`: the caller's value, already checked.
    Given(NewValue),
    /// Rotation: a random value; type and metadata carried over from the current version
    /// unless the request names a type.
    Random {
        spec: RotationSpec,
        secret_type: Option<SecretType>,
    },
}

fn crypto_error(err: CryptoError) -> ServiceError {
    match err {
        CryptoError::Unavailable => ServiceError::Unavailable("HSM"),
        CryptoError::KekMissing => ServiceError::Unavailable("key-encryption key"),
        // A stored value that does not open was altered or moved: fail closed, say little.
        CryptoError::Integrity => {
            tracing::error!("a stored secret failed authentication");
            ServiceError::internal(err)
        }
    }
}

fn parse_path(raw: &str) -> Result<SecretPath, ServiceError> {
    SecretPath::parse(raw)
        .map_err(|err| ServiceError::Invalid(format!("invalid secret path: {err}")))
}

fn metadata_response(row: MetadataRow) -> SecretMetadataResponse {
    SecretMetadataResponse {
        id: SecretId::from_uuid(row.secret_id),
        path: row.path,
        secret_type: row.secret_type,
        version: row.version,
        metadata: row.metadata.0,
        created_at: row.created_at,
        expires_at: row.expires_at,
        is_disabled: row.disabled_at.is_some(),
    }
}

fn unreadable(why: Unreadable, what: &'static str) -> ServiceError {
    match why {
        Unreadable::Missing => ServiceError::NotFound(what),
        Unreadable::Gone => ServiceError::Gone(what),
    }
}

/// The event of a read of `secret`.
fn read_event(principal: &Principal, vault_id: VaultId, secret: &SecretResponse) -> Event {
    secret_event(
        principal,
        "secret.read",
        secret.id,
        vault_id,
        &secret.path,
        Some(secret.version),
    )
}

/// The event of an act on one secret: which vault, path and (when it names one) version.
/// Never the value.
fn secret_event(
    principal: &Principal,
    action: &'static str,
    secret_id: impl ToString,
    vault_id: VaultId,
    path: &str,
    version: Option<i32>,
) -> Event {
    let event = Event::by(principal, action)
        .on("secret", secret_id)
        .detail("vault_id", vault_id.to_string())
        .detail("path", path);
    match version {
        Some(version) => event.detail("version", version),
        None => event,
    }
}

/// How idempotency keys are scoped: per principal (the org is a column of its own).
fn principal_key(principal: &Principal) -> String {
    let (kind, id) = principal.key();
    format!("{kind}:{id}")
}

impl Source {
    /// The action it records.
    fn action(&self) -> &'static str {
        match self {
            Self::Given(_) => "secret.write",
            Self::Random { .. } => "secret.rotate",
        }
    }
}

/// The answer a write gets before it writes anything, under the path's lock: the first
/// answer to a retried `Idempotency-Key` (looked at before If-Match: the first attempt moved
/// the version on, and its retry must get the first answer, not a 412), else 412 for an
/// `If-Match` that does not name the live secret's current version. `None`: go on.
async fn answered_before(
    tx: &mut PgConnection,
    org_id: uuid::Uuid,
    principal_key: &str,
    locked: Option<LockedSecret>,
    conditions: &WriteConditions,
) -> Result<Option<Written>, WriteError> {
    if let Some((key, request_hash)) = &conditions.idempotency
        && let Some(stored) = idempotency::find(tx, org_id, principal_key, key.as_str()).await?
    {
        return replay(stored, request_hash).map(Some);
    }
    match (conditions.if_match, locked) {
        (None, _) => Ok(None),
        (Some(expected), Some(secret)) if !secret.deleted && secret.current_version == expected => {
            Ok(None)
        }
        (Some(_), _) => Err(WriteError::Stale),
    }
}

/// The first answer to a key, if the request is the same; else 409.
fn replay(stored: StoredResponse, request_hash: &[u8; 32]) -> Result<Written, WriteError> {
    if stored.request_hash.as_slice() != request_hash.as_slice() {
        return Err(ServiceError::Conflict(
            "this Idempotency-Key was already used with a different request".into(),
        )
        .into());
    }
    let status = u16::try_from(stored.response_status)
        .map_err(|_| ServiceError::Internal("a stored idempotent response is corrupt".into()))?;
    Ok(Written::Replayed {
        status,
        body: stored.response_body.0,
    })
}

/// Checks a PUT body and turns it into the value to write.
fn given_value(request: PutSecretRequest) -> Result<NewValue, ServiceError> {
    if request.value.len() > MAX_VALUE_LEN {
        return Err(ServiceError::Invalid(format!(
            "value must be at most {MAX_VALUE_LEN} bytes"
        )));
    }
    if let Some(metadata) = &request.metadata {
        oxvault_core::vault::check_metadata(metadata).map_err(ServiceError::Invalid)?;
    }
    if request.max_access_count.is_some_and(|count| count < 1) {
        return Err(ServiceError::Invalid(
            "max_access_count must be at least 1".into(),
        ));
    }
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ServiceError::Invalid(
            "expires_at must be in the future".into(),
        ));
    }
    Ok(NewValue {
        value: Zeroizing::new(request.value),
        secret_type: request.secret_type.unwrap_or_default(),
        metadata: request.metadata.unwrap_or_default(),
        expires_at: request.expires_at,
        max_access_count: request.max_access_count,
    })
}

/// `length` characters drawn uniformly from `alphabet` (2 to 256 distinct characters), with
/// bytes from `fill`.
///
/// Unbiased by rejection: a byte is used only below the largest multiple of the alphabet's
/// size that fits in 256, so `byte % size` hits every character equally often. (Plain
/// `byte % 62` would favour the first 8 characters of the alphanumeric alphabet.)
fn draw<E>(
    alphabet: &[u8],
    length: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<(), E>,
) -> Result<Zeroizing<String>, E> {
    let size = alphabet.len().clamp(1, 256);
    let limit = 256 - 256 % size;
    // Sized once: the string never reallocates, so no copy of the value is left unwiped.
    let mut value = Zeroizing::new(String::with_capacity(length));
    let mut bytes = Zeroizing::new([0u8; 64]);
    while value.len() < length {
        fill(bytes.as_mut_slice())?;
        for &byte in bytes.iter() {
            let byte = usize::from(byte);
            if byte < limit
                && let Some(&c) = alphabet.get(byte % size)
            {
                value.push(char::from(c));
                if value.len() == length {
                    break;
                }
            }
        }
    }
    Ok(value)
}

/// A fresh random value for a rotation, from the operating system's CSPRNG.
fn random_value(spec: RotationSpec) -> Result<Zeroizing<String>, ServiceError> {
    draw(spec.charset().alphabet(), spec.length(), |buf| {
        OsRng.try_fill_bytes(buf)
    })
    .map_err(|err| {
        tracing::error!(error = %err, "the OS gave no randomness for a rotation");
        ServiceError::Unavailable("random number generator")
    })
}

/// Parses the `{version}` of a version route: a positive integer.
pub fn parse_version(text: &str) -> Result<i32, ServiceError> {
    text.parse::<i32>()
        .ok()
        .filter(|version| *version >= 1 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ServiceError::Invalid("version must be a positive integer".into()))
}

impl SecretsService {
    pub fn new(pool: PgPool, views: ViewReader, keyring: Keyring, audit: AuditLog) -> Self {
        Self {
            vaults: VaultsService::new(pool.clone(), audit.clone()),
            pool,
            views,
            keyring,
            audit,
            tiers: None,
            max_versions: crate::config::DEFAULT_MAX_SECRET_VERSIONS,
        }
    }

    /// The same service, keeping `max_versions` versions per path (at least one).
    pub fn with_max_versions(mut self, max_versions: u32) -> Self {
        self.max_versions = max_versions.max(1);
        self
    }

    /// The same service, checking writes that create a path against the billing tier
    /// limits; without them such a write fails closed.
    pub fn with_tiers(mut self, tiers: super::billing::Tiers) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// The vault, when the caller can see it (else 404) and may do `permission` on `path`
    /// in it (else 403).
    async fn authorize(
        &self,
        conn: &mut PgConnection,
        principal: &Principal,
        vault_id: VaultId,
        path: &SecretPath,
        permission: Permission,
    ) -> Result<VaultRow, ServiceError> {
        let vault = self.vaults.find_visible(conn, principal, vault_id).await?;
        access::require(conn, principal, &vault, path, permission).await?;
        Ok(vault)
    }

    /// Writes a new version of `raw_path` holding `request.value` (201 with its metadata).
    ///
    /// With `If-Match`, only if the secret is live and at that version (else
    /// [`WriteError::Stale`]). With an `Idempotency-Key` used before by the same principal
    /// within 24 hours: the same request replays the first answer and writes nothing; another
    /// request is a 409. Only successful writes are recorded, so a retry of a failed request
    /// runs again.
    pub async fn put(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
        request: PutSecretRequest,
        conditions: WriteConditions,
    ) -> Result<Written, WriteError> {
        let path = parse_path(raw_path)?;
        let value = given_value(request)?;
        self.write(
            principal,
            vault_id,
            &path,
            Permission::Write,
            Source::Given(value),
            conditions,
        )
        .await
    }

    /// Rotates `raw_path`: writes a new version holding a server-generated random value,
    /// under the same rules as [`Self::put`]. The secret must exist and be live (404, 410);
    /// the new version keeps the current one's type (unless the request names one) and
    /// metadata, and has no expiry or access limit. Needs the `rotate` permission. The value
    /// is never answered or logged: the caller reads it back like any other.
    pub async fn rotate(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
        request: RotateSecretRequest,
        conditions: WriteConditions,
    ) -> Result<Written, WriteError> {
        let path = parse_path(raw_path)?;
        let spec = RotationSpec::parse(&request).map_err(ServiceError::Invalid)?;
        self.write(
            principal,
            vault_id,
            &path,
            Permission::Rotate,
            Source::Random {
                spec,
                secret_type: request.secret_type,
            },
            conditions,
        )
        .await
    }

    /// A write: authorise, lock the path, answer a retry or refuse a stale `If-Match`, make
    /// the value, check the org's room for a new path, store the version, remember the answer
    /// for the idempotency key, and commit with the audit event.
    async fn write(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        path: &SecretPath,
        permission: Permission,
        source: Source,
        conditions: WriteConditions,
    ) -> Result<Written, WriteError> {
        let principal_key = principal_key(principal);
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self
            .authorize(&mut tx, principal, vault_id, path, permission)
            .await?;
        // From here until commit no other writer of this path gets past this line, and
        // everything read below sees what the previous writer committed.
        let locked = secrets::lock(&mut tx, vault.id, path.as_str()).await?;
        if let Some(first) =
            answered_before(&mut tx, vault.org_id, &principal_key, locked, &conditions).await?
        {
            return Ok(first);
        }
        let action = source.action();
        let new = match source {
            Source::Given(value) => value,
            Source::Random { spec, secret_type } => {
                rotation_value(&mut tx, locked, spec, secret_type).await?
            }
        };
        let stored = self
            .place_version(&mut tx, principal, &vault, path, locked, new)
            .await?;

        if let Some((key, request_hash)) = &conditions.idempotency {
            let body = serde_json::to_value(&stored.response).map_err(ServiceError::internal)?;
            let recorded = idempotency::record(
                &mut tx,
                &NewResponse {
                    org_id: vault.org_id,
                    principal: &principal_key,
                    key: key.as_str(),
                    request_hash,
                    response_status: 201,
                    response_body: &body,
                },
            )
            .await?;
            if !recorded {
                // Another request with this key committed while this one ran (its path was
                // not locked by us, or it created the path): undo this version, answer theirs.
                tx.rollback().await.map_err(StoreError::from)?;
                let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
                let stored =
                    idempotency::find(&mut conn, vault.org_id, &principal_key, key.as_str())
                        .await?
                        .ok_or_else(|| {
                            ServiceError::Internal("an idempotency key vanished".into())
                        })?;
                return replay(stored, request_hash);
            }
        }
        // On the write's transaction: the event commits with the version, or neither does.
        let event = stored.event(principal, action, vault_id);
        self.audit.commit(tx, event).await?;
        Ok(Written::Created(stored.response))
    }

    /// Writes `request` as a new version of `path` for `principal` (who needs `write` there),
    /// on the caller's transaction: the caller commits the answered `secret.write` event with
    /// it, after adding what else must commit together (a secret request's fulfilment).
    pub(crate) async fn write_within(
        &self,
        tx: &mut PgConnection,
        principal: &Principal,
        vault_id: VaultId,
        path: &SecretPath,
        request: PutSecretRequest,
    ) -> Result<(SecretMetadataResponse, Event), ServiceError> {
        let new = given_value(request)?;
        let vault = self
            .authorize(tx, principal, vault_id, path, Permission::Write)
            .await?;
        let locked = secrets::lock(tx, vault.id, path.as_str()).await?;
        let stored = self
            .place_version(tx, principal, &vault, path, locked, new)
            .await?;
        let event = stored.event(principal, "secret.write", vault_id);
        Ok((stored.response, event))
    }

    /// Stores `new` as the next version of the locked `path`: a new path (or a deleted one
    /// coming back) is one more live secret, counted against the org's tier under the org's
    /// lock; new versions of a live path are not limited.
    async fn place_version(
        &self,
        tx: &mut PgConnection,
        principal: &Principal,
        vault: &VaultRow,
        path: &SecretPath,
        locked: Option<LockedSecret>,
        new: NewValue,
    ) -> Result<StoredVersion, ServiceError> {
        if locked.is_none_or(|secret| secret.deleted) {
            let (tiers, limit) = (self.tiers.as_ref(), super::billing::Resource::Secrets);
            super::billing::require_room(tiers, tx, principal.org, limit).await?;
        }
        self.store_version(tx, principal, vault, path, new).await
    }

    /// Seals `new` under a fresh data key as the next version of the locked `path`, and keeps
    /// no more than the versions allowed (under the same lock, on the same transaction, so
    /// the erased ones go exactly when the new one lands).
    async fn store_version(
        &self,
        tx: &mut PgConnection,
        principal: &Principal,
        vault: &VaultRow,
        path: &SecretPath,
        new: NewValue,
    ) -> Result<StoredVersion, ServiceError> {
        let (secret_id, version) =
            secrets::allocate_version(tx, vault.org_id, vault.id, path.as_str()).await?;
        let place = Place {
            org: principal.org,
            vault: VaultId::from_uuid(vault.id),
            path: path.as_str(),
            version,
        };
        let sealed = envelope::seal(&self.keyring, place, new.value.as_bytes())
            .await
            .map_err(crypto_error)?;
        drop(new.value);
        let created_at = secrets::insert_version(
            tx,
            &NewVersion {
                secret_id,
                version,
                secret_type: new.secret_type,
                metadata: &new.metadata,
                sealed: &sealed.blob,
                kek_id: &sealed.kek_id,
                expires_at: new.expires_at,
                max_access_count: new.max_access_count,
                creator: creator_of(principal),
            },
        )
        .await?;
        let pruned = if u32::try_from(version).is_ok_and(|v| v > self.max_versions) {
            secrets::prune_versions(tx, secret_id, version, self.max_versions).await?
        } else {
            0
        };
        Ok(StoredVersion {
            pruned,
            response: SecretMetadataResponse {
                id: SecretId::from_uuid(secret_id),
                path: path.as_str().to_owned(),
                secret_type: new.secret_type,
                version,
                metadata: new.metadata,
                created_at,
                expires_at: new.expires_at,
                is_disabled: false,
            },
        })
    }

    /// Reads the current version of `raw_path` for the holder of `claims`, whose principal
    /// is checked in the read's own statement and then let through `gate`.
    pub async fn get(
        &self,
        claims: &Claims,
        gate: &dyn Admit,
        vault_id: VaultId,
        raw_path: &str,
    ) -> Result<SecretResponse, ServiceError> {
        self.read(claims, gate, vault_id, &parse_path(raw_path)?, None)
            .await
    }

    /// Reads version `version` of `raw_path`, as [`Self::get`]. 410 when it is disabled,
    /// expired or used up (or the secret was deleted); 404 when it never existed.
    pub async fn get_version(
        &self,
        claims: &Claims,
        gate: &dyn Admit,
        vault_id: VaultId,
        raw_path: &str,
        version: i32,
    ) -> Result<SecretResponse, ServiceError> {
        self.read(
            claims,
            gate,
            vault_id,
            &parse_path(raw_path)?,
            Some(version),
        )
        .await
    }

    /// A read: one statement gathers the caller's live state, the vault, the caller's
    /// policies and the version, which decide 401, (the gate's) 403, 404 (vault), 403
    /// (policies), then 404/410 (secret) in that order. An unlimited version is then opened
    /// (the data key from the keyring's cache or the HSM) and answered once its read event is
    /// committed. A limited version (`max_access_count`) is counted exactly: see
    /// [`Self::read_counted`].
    async fn read(
        &self,
        claims: &Claims,
        gate: &dyn Admit,
        vault_id: VaultId,
        path: &SecretPath,
        version: Option<i32>,
    ) -> Result<SecretResponse, ServiceError> {
        let who = who_of(claims)?;
        // The lookup holds no connection through the open and the audit wait.
        let found = self
            .views
            .read(ViewRequest {
                who,
                org_id: *claims.org.as_uuid(),
                vault_id: *vault_id.as_uuid(),
                path: path.as_str().to_owned(),
                version,
            })
            .await?;
        let principal = gate.admit(admit(claims, found.state)?)?;
        let view = found
            .view
            .filter(|view| visible_with(&view.vault, &principal, !view.policies.is_empty()))
            .ok_or(ServiceError::NotFound("vault"))?;
        access::decide(
            &principal,
            &view.vault,
            view.policies,
            path,
            Permission::Read,
        )?;
        match view.version {
            Some(found) if found.readable && !found.limited => {
                let secret = self.open(principal.org, vault_id, found.row).await?;
                // Fail closed: the value is answered only once its read is on the record.
                self.audit
                    .record(read_event(&principal, vault_id, &secret))
                    .await?;
                Ok(secret)
            }
            // The other outcomes are boxed: their futures (a transaction, more statements) are
            // each larger than the hot path's, and every read would otherwise carry them and
            // copy them as its future moves (`get`'s future: 10.4 KB unboxed, 2.5 KB boxed).
            Some(found) if found.readable => {
                Box::pin(self.read_counted(&principal, vault_id, path, version)).await
            }
            _ => Err(Box::pin(self.why_unreadable(view.vault.id, path, version)).await),
        }
    }

    /// Reads a limited version, counting the access: the count, the open and the event
    /// share one transaction, committed only once the event is. When the HSM cannot open the
    /// value or the event cannot be written, the count rolls back, so an outage never uses
    /// up a limited secret's views.
    async fn read_counted(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        path: &SecretPath,
        version: Option<i32>,
    ) -> Result<SecretResponse, ServiceError> {
        let vault = *vault_id.as_uuid();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let Some(row) = secrets::count_access(&mut tx, vault, path.as_str(), version).await? else {
            drop(tx);
            return Err(self.why_unreadable(vault, path, version).await);
        };
        let secret = self.open(principal.org, vault_id, row).await?;
        self.audit
            .commit(tx, read_event(principal, vault_id, &secret))
            .await?;
        Ok(secret)
    }

    /// The 404 or 410 of a read that found nothing readable.
    async fn why_unreadable(
        &self,
        vault: uuid::Uuid,
        path: &SecretPath,
        version: Option<i32>,
    ) -> ServiceError {
        let why = async {
            let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
            Ok::<_, ServiceError>(match version {
                None => unreadable(
                    secrets::why_unreadable(&mut conn, vault, path.as_str()).await?,
                    "secret",
                ),
                Some(version) => unreadable(
                    secrets::why_version_unreadable(&mut conn, vault, path.as_str(), version)
                        .await?,
                    "secret version",
                ),
            })
        };
        why.await.unwrap_or_else(|err| err)
    }

    /// Opens a version row read for `org` and `vault_id` into a read's answer (also used by
    /// share reads, which count and open in their own transaction).
    pub(crate) async fn open(
        &self,
        org: OrgId,
        vault_id: VaultId,
        row: VersionRow,
    ) -> Result<SecretResponse, ServiceError> {
        let place = Place {
            org,
            vault: vault_id,
            path: &row.path,
            version: row.version,
        };
        let plain = envelope::open(&self.keyring, place, &row.sealed)
            .await
            .map_err(crypto_error)?;
        let value = String::from_utf8(plain.to_vec())
            .map_err(|_| ServiceError::internal(CryptoError::Integrity))?;
        Ok(SecretResponse {
            id: SecretId::from_uuid(row.secret_id),
            path: row.path,
            secret_type: row.secret_type,
            value,
            version: row.version,
            metadata: row.metadata.0,
            created_by: row.created_by_user.or(row.created_by_agent),
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }

    /// One page of the versions of `raw_path` still kept, newest first: metadata only,
    /// disabled ones flagged. Needs `read`; 404 when the path never existed, 410 when it was
    /// deleted.
    pub async fn list_versions(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
        page: Page<VersionKey>,
    ) -> Result<SecretVersionListResponse, ServiceError> {
        let path = parse_path(raw_path)?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self
            .authorize(&mut conn, principal, vault_id, &path, Permission::Read)
            .await?;
        let before = page.after.map(|key| key.0);
        let mut rows =
            secrets::list_versions(&mut conn, vault.id, path.as_str(), before, page.fetch())
                .await?;
        // A page past the oldest version is empty, not a 404: only the first says the path
        // is not live.
        if rows.is_empty() && before.is_none() {
            let why = secrets::why_unreadable(&mut conn, vault.id, path.as_str()).await?;
            return Err(unreadable(why, "secret"));
        }
        let next_cursor = finish_page(&mut rows, page.len(), |row| VersionKey(row.version));
        Ok(SecretVersionListResponse {
            versions: rows.into_iter().map(metadata_response).collect(),
            next_cursor,
        })
    }

    /// Disables version `version` of `raw_path` for good: reads of it answer 410 (and so do
    /// reads of the current version, if it is that one). Needs `write`, the permission that
    /// makes versions: disabling is retiring a value, not deleting the secret. Disabling a
    /// disabled version succeeds and changes nothing.
    pub async fn disable_version(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
        version: i32,
    ) -> Result<(), ServiceError> {
        let path = parse_path(raw_path)?;
        // One transaction: the version is disabled exactly when its event is recorded.
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self
            .authorize(&mut tx, principal, vault_id, &path, Permission::Write)
            .await?;
        let live = secrets::lock(&mut tx, vault.id, path.as_str())
            .await?
            .filter(|secret| !secret.deleted);
        let disabled = match live {
            Some(secret) => secrets::disable_version(&mut tx, vault.id, path.as_str(), version)
                .await?
                .then_some(secret.secret_id),
            None => None,
        };
        let Some(secret_id) = disabled else {
            let why =
                secrets::why_version_unreadable(&mut tx, vault.id, path.as_str(), version).await?;
            return Err(unreadable(why, "secret version"));
        };
        let event = secret_event(
            principal,
            "secret.version_disable",
            secret_id,
            vault_id,
            path.as_str(),
            Some(version),
        );
        self.audit.commit(tx, event).await?;
        Ok(())
    }

    /// Deletes `raw_path` for good: its versions are erased and its shares revoked; later
    /// reads answer 410, and a new write starts a new secret from version 1.
    pub async fn delete(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
    ) -> Result<(), ServiceError> {
        let path = parse_path(raw_path)?;
        // One transaction: the secret is deleted exactly when its event is recorded.
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self
            .authorize(&mut tx, principal, vault_id, &path, Permission::Delete)
            .await?;
        let live = secrets::lock(&mut tx, vault.id, path.as_str())
            .await?
            .filter(|secret| !secret.deleted);
        let Some(secret) = live else {
            return Err(ServiceError::NotFound("secret"));
        };
        if !secrets::end_secret(&mut tx, secret.secret_id).await? {
            return Err(ServiceError::NotFound("secret"));
        }
        let event = secret_event(
            principal,
            "secret.delete",
            secret.secret_id,
            vault_id,
            path.as_str(),
            None,
        );
        self.audit.commit(tx, event).await?;
        Ok(())
    }

    /// One page of the metadata (never values) of the secrets under `prefix` the caller may
    /// read, by path.
    ///
    /// What a caller may read is decided by its policies, here rather than in SQL (one
    /// evaluator for reads and listings); the vault's paths are therefore read a page at a
    /// time until the page is full of readable ones (or none is left), and memory stays
    /// bounded by the page.
    pub async fn list(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        prefix: &str,
        page: Page<PathKey>,
    ) -> Result<SecretListResponse, ServiceError> {
        let prefix = oxvault_core::secret_path::parse_prefix(prefix)
            .map_err(|err| ServiceError::Invalid(format!("invalid prefix: {err}")))?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut conn, principal, vault_id)
            .await?;
        let mut readable = Vec::new();
        let (limit, fetch) = (page.len(), page.fetch());
        let mut after = page.after.map(|key| key.0);
        loop {
            let batch = secrets::list(
                &mut conn,
                vault.id,
                prefix.as_str(),
                after.as_deref(),
                fetch,
            )
            .await?;
            let exhausted = batch.len() <= limit;
            after = batch.last().map(|row| row.path.clone());
            readable.extend(access::filter_readable(&mut conn, principal, &vault, batch).await?);
            if exhausted || readable.len() > limit {
                break;
            }
        }
        let next_cursor = finish_page(&mut readable, limit, |row| PathKey(row.path.clone()));
        Ok(SecretListResponse {
            secrets: readable.into_iter().map(metadata_response).collect(),
            next_cursor,
        })
    }
}

/// The value and fields of a rotation's new version, given the secret's locked row.
async fn rotation_value(
    conn: &mut PgConnection,
    locked: Option<LockedSecret>,
    spec: RotationSpec,
    requested_type: Option<SecretType>,
) -> Result<NewValue, ServiceError> {
    let locked = match locked {
        None => return Err(ServiceError::NotFound("secret")),
        Some(LockedSecret { deleted: true, .. }) => return Err(ServiceError::Gone("secret")),
        Some(locked) => locked,
    };
    let current = secrets::version_kind(conn, locked.secret_id, locked.current_version)
        .await?
        .ok_or_else(|| ServiceError::Internal("a secret's current version is missing".into()))?;
    Ok(NewValue {
        value: random_value(spec)?,
        secret_type: requested_type.unwrap_or(current.secret_type),
        metadata: current.metadata.0,
        expires_at: None,
        max_access_count: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

    use oxvault_core::vault::RotateCharset;
    use uuid::Uuid;

    use super::*;
    use crate::crypto::testing::{NoHsm, XorKeks};

    const CHARSETS: [RotateCharset; 4] = [
        RotateCharset::Hex,
        RotateCharset::Base64,
        RotateCharset::Alphanumeric,
        RotateCharset::Ascii,
    ];

    fn spec(length: u32, charset: RotateCharset) -> RotationSpec {
        RotationSpec::parse(&RotateSecretRequest {
            length: Some(length),
            charset: Some(charset),
            secret_type: None,
        })
        .unwrap()
    }

    #[test]
    fn a_full_cycle_of_bytes_hits_every_character_equally_often() {
        for charset in CHARSETS {
            let alphabet = charset.alphabet();
            let accepted = 256 - 256 % alphabet.len();
            let mut next = 0u8;
            let value = draw(alphabet, accepted, |buf: &mut [u8]| {
                for byte in buf.iter_mut() {
                    *byte = next;
                    next = next.wrapping_add(1);
                }
                Ok::<(), ()>(())
            })
            .unwrap();
            let mut counts = BTreeMap::new();
            for c in value.chars() {
                *counts.entry(c).or_insert(0) += 1;
            }
            assert_eq!(counts.len(), alphabet.len(), "{charset:?}");
            let per_char = accepted / alphabet.len();
            assert!(counts.values().all(|&n| n == per_char), "{charset:?}");
        }
    }

    #[test]
    fn bytes_past_the_last_whole_multiple_are_dropped_not_folded() {
        // 255 % 62 would give 'H'; it is above 247 (62 * 4 - 1), so it is skipped and only
        // the following 63s (-> 'B') are used.
        let mut calls = 0;
        let value = draw(
            RotateCharset::Alphanumeric.alphabet(),
            8,
            |buf: &mut [u8]| {
                buf.fill(if calls == 0 { 255 } else { 63 });
                calls += 1;
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        assert_eq!(value.as_str(), "BBBBBBBB");
    }

    #[test]
    fn rotated_values_have_the_asked_length_and_charset() {
        for charset in CHARSETS {
            for length in [8, 32, 1024] {
                let value = random_value(spec(length, charset)).unwrap();
                assert_eq!(value.len(), length as usize, "{charset:?}");
                assert!(
                    value.bytes().all(|b| charset.alphabet().contains(&b)),
                    "{charset:?}: {}",
                    value.as_str()
                );
            }
        }
        let a = random_value(spec(32, RotateCharset::Hex)).unwrap();
        let b = random_value(spec(32, RotateCharset::Hex)).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn os_random_values_spread_evenly_over_the_alphabet() {
        // 62 000 draws: each character is expected 1000 times (standard deviation ~31); a
        // bias like modulo's (+25% for the first 8 characters) would show far outside ±200.
        let alphabet = RotateCharset::Alphanumeric.alphabet();
        let mut counts = BTreeMap::new();
        for _ in 0..62 {
            for c in random_value(spec(1000, RotateCharset::Alphanumeric))
                .unwrap()
                .chars()
            {
                *counts.entry(c).or_insert(0u32) += 1;
            }
        }
        assert_eq!(counts.len(), alphabet.len());
        for (c, n) in counts {
            assert!((800..=1200).contains(&n), "{c}: {n}");
        }
    }

    #[test]
    fn idempotency_keys_are_1_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("9f1c-4b2e_ä").is_err());
        for bad in ["", " ", "a b", "tab\tkey", "é"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn versions_are_positive_decimal_integers() {
        assert_eq!(parse_version("1").unwrap(), 1);
        assert_eq!(parse_version("2147483647").unwrap(), i32::MAX);
        for bad in ["0", "-1", "+1", "", "1.0", "a", "2147483648", " 1", "0x1"] {
            assert!(parse_version(bad).is_err(), "{bad:?}");
        }
    }

    /// The (wrapped data key, nonce) of a blob, read by the layout documented in
    /// `crypto/envelope.rs` (formats 1 and 2 share it): `format | kek_id_len | kek_id |
    /// wrapped_len (BE16) | wrapped | nonce (12) | ciphertext || tag`.
    fn key_and_nonce(blob: &[u8]) -> (Vec<u8>, [u8; 12]) {
        assert!(matches!(blob[0], 0x01 | 0x02), "format {}", blob[0]);
        let kek_len = usize::from(blob[1]);
        let at = 2 + kek_len;
        let wrapped_len = usize::from(u16::from_be_bytes([blob[at], blob[at + 1]]));
        let wrapped = blob[at + 2..at + 2 + wrapped_len].to_vec();
        let nonce = blob[at + 2 + wrapped_len..at + 14 + wrapped_len]
            .try_into()
            .unwrap();
        (wrapped, nonce)
    }

    /// SECURITY.md case 15 at full size: 10^5 seals of the same value at the same place
    /// (the worst case for reuse) never repeat a data key or a nonce. The HSM is replaced by
    /// a KEK that leaves the data key in clear, so the blob shows the key itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_thousand_seals_never_repeat_a_data_key_or_nonce() {
        const SEALS: usize = 100_000;
        const TASKS: usize = 4;
        let keyring = Keyring::new(Arc::new(XorKeks::new(0)), Arc::new(NoHsm), TASKS);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let keyring = keyring.clone();
            tasks.spawn(async move {
                let place = Place {
                    org: OrgId::from_uuid(Uuid::from_u128(1)),
                    vault: VaultId::from_uuid(Uuid::from_u128(2)),
                    path: "db/password",
                    version: 1,
                };
                let mut blobs = Vec::with_capacity(SEALS / TASKS);
                for _ in 0..SEALS / TASKS {
                    blobs.push(envelope::seal(&keyring, place, b"same").await.unwrap().blob);
                }
                blobs
            });
        }
        let mut keys = HashSet::with_capacity(SEALS);
        let mut nonces = HashSet::with_capacity(SEALS);
        while let Some(blobs) = tasks.join_next().await {
            for blob in blobs.unwrap() {
                // KEK 0 leaves the data key in clear, ahead of the place it is bound to.
                let (wrapped, nonce) = key_and_nonce(&blob);
                keys.insert(wrapped[..32].to_vec());
                nonces.insert(nonce);
            }
        }
        assert_eq!(keys.len(), SEALS, "a data key repeated");
        assert_eq!(nonces.len(), SEALS, "a nonce repeated");
    }
}
