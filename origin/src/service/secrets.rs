//! Secrets: write a new version, read the current one, delete, list.
//!
//! A read is one indexed statement that checks and counts the access, one HSM unwrap of the
//! version's data key, and one AES-GCM open. Writes allocate the version number first (the
//! secret's row stays locked until commit, so concurrent writes get consecutive versions),
//! then seal the value for exactly that place, then store the blob — all in one transaction,
//! so a failure anywhere leaves nothing behind and nothing is ever stored in plaintext.

use chrono::Utc;
use oxvault_core::ids::{SecretId, VaultId};
use oxvault_core::policy::Permission;
use oxvault_core::secret_path::SecretPath;
use oxvault_core::vault::{
    PutSecretRequest, SecretListResponse, SecretMetadataResponse, SecretResponse, SecretType,
};
use sqlx::PgPool;

use super::ServiceError;
use super::access;
use super::principal::Principal;
use super::vaults::{VaultsService, creator_of};
use crate::crypto::envelope::{self, Place};
use crate::crypto::{CryptoError, Keyring};
use crate::store::StoreError;
use crate::store::secrets::{self, MetadataRow, NewVersion, Unreadable};

/// Largest secret value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 256 * 1024;

/// Secret operations; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretsService {
    pool: PgPool,
    keyring: Keyring,
    vaults: VaultsService,
}

fn crypto_error(err: CryptoError) -> ServiceError {
    match err {
        CryptoError::Unavailable => ServiceError::Unavailable("HSM"),
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

fn secret_type(text: &str) -> SecretType {
    SecretType::parse(text).unwrap_or_default()
}

fn metadata_response(row: MetadataRow) -> SecretMetadataResponse {
    SecretMetadataResponse {
        id: SecretId::from_uuid(row.secret_id),
        path: row.path,
        secret_type: secret_type(&row.secret_type),
        version: row.version,
        metadata: row.metadata.0,
        created_at: row.created_at,
        expires_at: row.expires_at,
        is_disabled: row.disabled_at.is_some(),
    }
}

impl SecretsService {
    pub fn new(pool: PgPool, keyring: Keyring) -> Self {
        Self {
            vaults: VaultsService::new(pool.clone()),
            pool,
            keyring,
        }
    }

    /// Writes a new version of `raw_path` (201 with its metadata).
    pub async fn put(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
        request: PutSecretRequest,
    ) -> Result<SecretMetadataResponse, ServiceError> {
        let path = parse_path(raw_path)?;
        if request.value.len() > MAX_VALUE_LEN {
            return Err(ServiceError::Invalid(format!(
                "value must be at most {MAX_VALUE_LEN} bytes"
            )));
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
        let secret_type = request.secret_type.unwrap_or_default();
        let metadata = request.metadata.unwrap_or_default();

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut tx, principal, vault_id)
            .await?;
        access::require(&mut tx, principal, &vault, &path, Permission::Write).await?;
        let (secret_id, version) =
            secrets::allocate_version(&mut tx, vault.org_id, vault.id, path.as_str()).await?;
        let place = Place {
            org: principal.org,
            vault: vault_id,
            path: path.as_str(),
            version,
        };
        let sealed = envelope::seal(&self.keyring, place, request.value.as_bytes())
            .await
            .map_err(crypto_error)?;
        let kek_id = envelope::kek_id(&sealed).map_err(crypto_error)?;
        let created_at = secrets::insert_version(
            &mut tx,
            &NewVersion {
                secret_id,
                version,
                secret_type: secret_type.as_str(),
                metadata: &metadata,
                sealed: &sealed,
                kek_id: &kek_id,
                expires_at: request.expires_at,
                max_access_count: request.max_access_count,
                creator: creator_of(principal),
            },
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(SecretMetadataResponse {
            id: SecretId::from_uuid(secret_id),
            path: path.as_str().to_owned(),
            secret_type,
            version,
            metadata,
            created_at,
            expires_at: request.expires_at,
            is_disabled: false,
        })
    }

    /// Reads the current version of `raw_path`, counting the access.
    pub async fn get(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
    ) -> Result<SecretResponse, ServiceError> {
        let path = parse_path(raw_path)?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut conn, principal, vault_id)
            .await?;
        access::require(&mut conn, principal, &vault, &path, Permission::Read).await?;
        let Some(row) = secrets::read_current(&mut conn, vault.id, path.as_str()).await? else {
            return Err(
                match secrets::why_unreadable(&mut conn, vault.id, path.as_str()).await? {
                    Unreadable::Missing => ServiceError::NotFound("secret"),
                    Unreadable::Gone => ServiceError::Gone("secret"),
                },
            );
        };
        drop(conn);
        let place = Place {
            org: principal.org,
            vault: vault_id,
            path: path.as_str(),
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
            secret_type: secret_type(&row.secret_type),
            value,
            version: row.version,
            metadata: row.metadata.0,
            created_by: row.created_by_user.or(row.created_by_agent),
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }

    /// Deletes `raw_path` (later reads answer 410).
    pub async fn delete(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        raw_path: &str,
    ) -> Result<(), ServiceError> {
        let path = parse_path(raw_path)?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut conn, principal, vault_id)
            .await?;
        access::require(&mut conn, principal, &vault, &path, Permission::Delete).await?;
        if secrets::mark_deleted(&mut conn, vault.id, path.as_str()).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("secret"))
        }
    }

    /// Lists metadata (never values) of the secrets under `prefix` the caller may read.
    pub async fn list(
        &self,
        principal: &Principal,
        vault_id: VaultId,
        prefix: &str,
    ) -> Result<SecretListResponse, ServiceError> {
        let prefix = oxvault_core::secret_path::parse_prefix(prefix)
            .map_err(|err| ServiceError::Invalid(format!("invalid prefix: {err}")))?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let vault = self
            .vaults
            .find_visible(&mut conn, principal, vault_id)
            .await?;
        let rows = secrets::list(&mut conn, vault.id, prefix.as_str()).await?;
        let readable = access::filter_readable(&mut conn, principal, &vault, rows).await?;
        Ok(SecretListResponse {
            secrets: readable.into_iter().map(metadata_response).collect(),
        })
    }
}
