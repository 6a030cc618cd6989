//! Personal API keys (`1ck_`): created, listed and revoked by their user, and exchanged for
//! a short session at `POST /v1/auth/api-key-token`.
//!
//! A key is shown once; the store keeps its lookup prefix (to find the row) and its SHA-256
//! hash (to check it, in constant time). A malformed key, one with a bad checksum or another
//! kind's prefix is refused before any database lookup (SECURITY.md 6). Revoking a key also
//! revokes every session opened from it, in the same transaction, so the access tokens minted
//! from it fail on their next request.
//!
//! Audit: `api_key.create` and `api_key.revoke` commit with the act; an exchange records
//! `auth.success` (method `api_key`) with its session, or `auth.failure` on its own. A refused
//! key names its org and user only when its hash matched a stored key (revoked, expired);
//! a malformed or unknown key names nobody. The key itself, or any part of it, never goes on
//! the record.

use oxvault_core::page::{Page, TimeKey, finish_page};
use std::net::IpAddr;

use chrono::Utc;
use oxvault_core::api_key::{KEY_SECRET_BYTES, KeyKind, format_key, parse_key};
use oxvault_core::auth::{
    ApiKeyCreatedResponse, ApiKeyListResponse, ApiKeyResponse, ApiKeyTokenRequest,
    CreateApiKeyRequest, TokenResponse,
};
use oxvault_core::ids::{ApiKeyId, OrgId, UserId};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::ServiceError;
use super::audit::{Actor, Event};
use super::auth::{
    AuthService, Method, SessionKind, Target, auth_failure, auth_success, refuse, token_hash,
};
use super::principal::Principal;
use super::scopes;
use crate::store::api_keys::{self, ApiKeyRow, NewApiKey};
use crate::store::{StoreError, users};

/// The one answer to a key that does not (or no longer) authenticate, whatever the cause.
const BAD_KEY: &str = "invalid or expired API key";
/// Longest key name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Personal API keys; cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiKeyService {
    pool: PgPool,
    auth: AuthService,
}

impl ApiKeyService {
    pub fn new(pool: PgPool, auth: AuthService) -> Self {
        Self { pool, auth }
    }

    /// Creates a key for the calling user. The key text is in the answer and nowhere else.
    ///
    /// A caller whose session came from a scoped key may only create keys with a subset of
    /// its own scopes, so a narrow key cannot mint a wider one.
    pub async fn create(
        &self,
        principal: &Principal,
        request: CreateApiKeyRequest,
    ) -> Result<ApiKeyCreatedResponse, ServiceError> {
        let user_id = principal.require_user()?;
        let name = check_name(&request.name)?;
        let scopes = scopes::checked(request.scopes.unwrap_or_default())?;
        if !principal.scopes.is_empty() && !scopes::within(&scopes, &principal.scopes) {
            return Err(ServiceError::Forbidden(
                "a session from a scoped API key can only create keys with a subset of its scopes",
            ));
        }
        if request.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ServiceError::Invalid(
                "expires_at must be in the future".into(),
            ));
        }

        let mut secret = Zeroizing::new([0u8; KEY_SECRET_BYTES]);
        OsRng
            .try_fill_bytes(secret.as_mut())
            .map_err(ServiceError::internal)?;
        let key = format_key(KeyKind::User, &secret);
        let lookup_prefix = parse_key(&key)
            .map_err(ServiceError::internal)?
            .lookup_prefix;

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let row = api_keys::insert(
            &mut tx,
            &NewApiKey {
                id: Uuid::new_v4(),
                org_id: *principal.org.as_uuid(),
                user_id: *user_id.as_uuid(),
                name,
                key_prefix: &lookup_prefix,
                key_hash: &token_hash(&key),
                scopes: &scopes,
                expires_at: request.expires_at,
            },
        )
        .await?;
        let event = Event::by(principal, "api_key.create")
            .on("api_key", row.id)
            .detail("name", row.name.as_str())
            .detail("scopes", row.scopes.clone());
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(key_id = %row.id, user_id = %user_id, "personal API key created");
        Ok(ApiKeyCreatedResponse {
            key: key_response(&row),
            api_key: key.into(),
        })
    }

    /// One page of the calling user's keys (prefix only), newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<ApiKeyListResponse, ServiceError> {
        let user_id = principal.require_user()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let (org, user) = (*principal.org.as_uuid(), *user_id.as_uuid());
        let mut rows =
            api_keys::list_for_user(&mut conn, org, user, page.after, page.fetch()).await?;
        let next_cursor = finish_page(&mut rows, page.len(), |row| TimeKey {
            created_at: row.created_at,
            id: row.id,
        });
        Ok(ApiKeyListResponse {
            keys: rows.iter().map(key_response).collect(),
            next_cursor,
        })
    }

    /// Revokes one of the calling user's keys and every session opened from it, in one
    /// transaction. Another user's or another org's key is "not found".
    pub async fn revoke(
        &self,
        principal: &Principal,
        key_id: ApiKeyId,
    ) -> Result<(), ServiceError> {
        let user_id = principal.require_user()?;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let found = api_keys::revoke(
            &mut tx,
            *principal.org.as_uuid(),
            *user_id.as_uuid(),
            *key_id.as_uuid(),
        )
        .await?;
        if !found {
            return Err(ServiceError::NotFound("API key"));
        }
        let sessions = api_keys::revoke_sessions(&mut tx, *key_id.as_uuid()).await?;
        let event = Event::by(principal, "api_key.revoke")
            .on("api_key", key_id.as_uuid())
            .detail("sessions_revoked", sessions);
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(key_id = %key_id, sessions, "personal API key revoked with its sessions");
        Ok(())
    }

    /// Exchanges a key for a session without a refresh token: the key is the long-lived
    /// credential. Every failure gets the same answer.
    pub async fn exchange(
        &self,
        request: ApiKeyTokenRequest,
        ip: Option<IpAddr>,
    ) -> Result<TokenResponse, ServiceError> {
        let refused = |reason, target| {
            let event = auth_failure(Method::ApiKey, reason, "api_key", target, ip);
            let refusal = ServiceError::Unauthenticated(BAD_KEY);
            refuse(self.auth.audit(), event, refusal)
        };
        // Format, prefix and checksum first: a made-up or mistyped key costs no query (its
        // refusal is still recorded, with nothing looked up).
        let parsed = match parse_key(request.api_key.expose()) {
            Ok(parsed) if parsed.kind == KeyKind::User => parsed,
            _ => return Err(refused("malformed_key", None).await),
        };
        let presented = token_hash(request.api_key.expose());
        drop(request);

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let candidates = api_keys::candidates(&mut tx, &parsed.lookup_prefix).await?;
        // Every candidate is compared, and each comparison takes the same time.
        let mut matched = None;
        for candidate in &candidates {
            if bool::from(candidate.key_hash.ct_eq(&presented)) {
                matched = Some(candidate);
            }
        }
        let Some(candidate) = matched else {
            drop(tx);
            return Err(refused("unknown_key", None).await);
        };
        let key_id = candidate.id;
        let target = Target {
            org: OrgId::from_uuid(candidate.org_id),
            actor: Actor::User(UserId::from_uuid(candidate.user_id)),
            resource_id: key_id,
        };
        let Some(key) = api_keys::mark_used(&mut tx, key_id).await? else {
            drop(tx);
            return Err(refused("revoked_or_expired", Some(target)).await);
        };
        let Some(user) = users::find_in_org(&mut tx, key.org_id, key.user_id).await? else {
            drop(tx);
            return Err(refused("unknown_user", Some(target)).await);
        };
        let session = self
            .auth
            .open_session(
                &mut tx,
                &user,
                SessionKind::ApiKey {
                    key_id,
                    scopes: key.scopes,
                },
            )
            .await?;
        if let Some(expires_at) = key.expires_at {
            api_keys::cap_sessions_at(&mut tx, key_id, expires_at).await?;
        }
        let event = auth_success(Method::ApiKey, "api_key", target, ip);
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(key_id = %key_id, user_id = %user.id, "personal API key exchanged");
        Ok(session)
    }
}

/// A key row as the API shows it.
fn key_response(row: &ApiKeyRow) -> ApiKeyResponse {
    ApiKeyResponse {
        id: ApiKeyId::from_uuid(row.id),
        name: row.name.clone(),
        key_prefix: row.key_prefix.clone(),
        scopes: row.scopes.clone(),
        is_active: row.is_active(Utc::now()),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    }
}

/// A key name: trimmed, 1 to 100 characters, no control characters.
fn check_name(name: &str) -> Result<&str, ServiceError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ServiceError::Invalid(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "name must not contain control characters".into(),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  ci deploy ").unwrap(), "ci deploy");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_name("tab\there").is_err());
    }

    #[test]
    fn a_key_is_active_until_revoked_or_expired() {
        let now = Utc::now();
        let mut row = ApiKeyRow {
            id: Uuid::new_v4(),
            name: "k".into(),
            key_prefix: "1ck_000000000000".into(),
            scopes: Vec::new(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_at: now,
        };
        assert!(row.is_active(now));
        row.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(row.is_active(now));
        row.expires_at = Some(now);
        assert!(!row.is_active(now));
        row.expires_at = None;
        row.revoked_at = Some(now);
        assert!(!row.is_active(now));
    }
}
