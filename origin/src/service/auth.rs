//! Who is calling: sign-up, login, refresh rotation, logout, password change, the caller's
//! profile, and [`AuthService::authenticate`], which every protected request goes through.
//!
//! A token proves nothing on its own past its signature: `authenticate` also checks, in one
//! indexed lookup, that the principal still exists, is still in the token's org, still has the
//! token's version and (for users) that the login session is still live. Revocation therefore
//! takes effect at once on every origin.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use oxvault_core::auth::{
    ChangePasswordRequest, GoogleAuthRequest, LoginRequest, RefreshRequest, SignupRequest,
    SignupResponse, TokenResponse, UserProfileResponse,
};
use oxvault_core::claims::{Claims, Role, Subject, TOKEN_AUDIENCE, TOKEN_ISSUER};
use oxvault_core::email::Email;
use oxvault_core::ids::{AgentId, OrgId, UserId, VaultId};
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::ServiceError;
use super::google::GoogleVerifier;
use super::passwords::{Passwords, check_password_rules};
use super::principal::Principal;
use super::tokens::Tokens;
use crate::store::sessions::{self, RefreshUse};
use crate::store::users::{self, NewUser, UserRow};
use crate::store::{self, StoreError};

/// The one answer to a failed login, whatever failed.
const BAD_CREDENTIALS: &str = "invalid email or password";
/// The one answer to a token that does not (or no longer) authenticate.
const BAD_TOKEN: &str = "invalid or expired token";
/// Prefix of refresh tokens, so leaked ones are recognisable by secret scanners.
const REFRESH_PREFIX: &str = "ort_";

/// Lifetimes of what this service issues.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Human access tokens (15 minutes).
    pub access_ttl: Duration,
    /// Login sessions and their refresh tokens (30 days).
    pub session_ttl: Duration,
    /// Agent access tokens when the agent sets no `token_ttl_seconds` (1 hour).
    pub agent_default_ttl: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            agent_default_ttl: Duration::from_secs(3600),
        }
    }
}

/// Authentication; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthService {
    pool: PgPool,
    passwords: Passwords,
    tokens: Tokens,
    settings: AuthSettings,
    /// `None` when Google sign-in is not configured.
    google: Option<GoogleVerifier>,
}

/// What opened a user session.
#[derive(Debug)]
pub(crate) enum SessionKind {
    /// A login (password or Google): refreshable.
    Login,
    /// The exchange of a personal API key, with the key's scopes. Not refreshable: the key
    /// itself is the long-lived credential, and revoking it revokes the session.
    ApiKey { key_id: Uuid, scopes: Vec<String> },
}

fn parse_email(text: &str) -> Result<Email, ServiceError> {
    Email::parse(text).map_err(|err| ServiceError::Invalid(err.to_string()))
}

pub(crate) fn parse_role(text: &str) -> Result<Role, ServiceError> {
    text.parse()
        .map_err(|_| ServiceError::internal(StoreError::Conflict(format!("unknown role {text:?}"))))
}

fn random_token(prefix: &str) -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(ServiceError::internal)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of a token, as stored: a stolen table holds nothing usable.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

impl AuthService {
    pub fn new(
        pool: PgPool,
        passwords: Passwords,
        tokens: Tokens,
        settings: AuthSettings,
        google: Option<GoogleVerifier>,
    ) -> Self {
        Self {
            pool,
            passwords,
            tokens,
            settings,
            google,
        }
    }

    /// The token issuer (for other services that mint tokens, e.g. agent exchanges).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The bounded Argon2id hasher (for other services that hash secrets, e.g. share
    /// passphrases), so every hash in the process shares one concurrency limit.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Creates a user. With an open invitation for the email the user joins that org with the
    /// invited role; otherwise a new org is created with the user as its owner.
    pub async fn signup(&self, request: SignupRequest) -> Result<SignupResponse, ServiceError> {
        let email = parse_email(&request.email)?;
        check_password_rules(&request.password)?;
        let display_name = request
            .display_name
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        if display_name.chars().count() > 200 {
            return Err(ServiceError::Invalid("display_name is too long".into()));
        }
        let hash = self
            .passwords
            .hash(SecretString::from(request.password))
            .await?;

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let user = self
            .create_user(&mut tx, &email, &display_name, Some(&hash), None)
            .await?;
        let session = self
            .open_session(&mut tx, &user, SessionKind::Login)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(SignupResponse {
            message: "account created".into(),
            email: email.to_string(),
            access_token: session.access_token,
            token_type: session.token_type,
            expires_in: session.expires_in,
            refresh_token: session.refresh_token.unwrap_or_default(),
        })
    }

    /// Email + password login. Unknown email and wrong password are indistinguishable: same
    /// answer, and a dummy Argon2 verify for the unknown email.
    pub async fn login(&self, request: LoginRequest) -> Result<TokenResponse, ServiceError> {
        let email = Email::parse(&request.email).ok();
        let user = match &email {
            Some(email) => {
                let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
                users::find_by_email(&mut conn, email.as_str()).await?
            }
            None => None,
        };
        let hash = user.as_ref().and_then(|user| user.password_hash.clone());
        let matches = self
            .passwords
            .verify(SecretString::from(request.password), hash)
            .await?;
        let user = match user {
            Some(user) if matches => user,
            _ => return Err(ServiceError::Unauthenticated(BAD_CREDENTIALS)),
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let session = self
            .open_session(&mut tx, &user, SessionKind::Login)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(session)
    }

    /// Google sign-in: a verified id_token opens a session for the user linked to that Google
    /// account; else links it to the account with the same (Google-verified) email; else
    /// creates a user and an org (or joins an invited org), without a password.
    pub async fn google(&self, request: GoogleAuthRequest) -> Result<TokenResponse, ServiceError> {
        let verifier = self
            .google
            .as_ref()
            .ok_or(ServiceError::NotFound("Google sign-in"))?;
        let identity = verifier.verify(&request.id_token).await?;
        // An unverified address would let anyone claim an existing account by email.
        let email = match (&identity.email, identity.email_verified) {
            (Some(email), true) => parse_email(email)?,
            _ => return Err(ServiceError::Unauthenticated("invalid Google id_token")),
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let user = match users::find_by_google_sub(&mut tx, &identity.sub).await? {
            Some(user) => user,
            None => match users::find_by_email(&mut tx, email.as_str()).await? {
                Some(user) => {
                    users::set_google_sub(&mut tx, user.id, &identity.sub).await?;
                    user
                }
                None => {
                    let display_name = identity.name.clone().unwrap_or_default();
                    self.create_user(&mut tx, &email, &display_name, None, Some(&identity.sub))
                        .await?
                }
            },
        };
        let session = self
            .open_session(&mut tx, &user, SessionKind::Login)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(session)
    }

    /// Creates a user in the invited org (with the invited role) or in a new org of their
    /// own (as owner).
    async fn create_user(
        &self,
        tx: &mut sqlx::PgConnection,
        email: &Email,
        display_name: &str,
        password_hash: Option<&str>,
        google_sub: Option<&str>,
    ) -> Result<UserRow, ServiceError> {
        let user_id = Uuid::new_v4();
        let (org_id, role) = match store::invites::take_open_invite(tx, email.as_str()).await? {
            Some(invite) => (invite.org_id, invite.role),
            None => {
                let org_id = Uuid::new_v4();
                let org_name = if display_name.is_empty() {
                    format!("{}'s org", email.local_part())
                } else {
                    format!("{display_name}'s org")
                };
                users::insert_org(tx, org_id, &org_name).await?;
                (org_id, Role::Owner.as_str().to_owned())
            }
        };
        let inserted = users::insert_user(
            tx,
            &NewUser {
                id: user_id,
                org_id,
                email: email.as_str(),
                display_name,
                password_hash,
                google_sub,
                role: &role,
            },
        )
        .await;
        match inserted {
            Err(StoreError::Conflict(constraint)) if constraint == "users_email_key" => {
                return Err(ServiceError::Conflict(
                    "an account with this email already exists".into(),
                ));
            }
            other => other?,
        }
        tracing::info!(user_id = %user_id, org_id = %org_id, "user created");
        users::find_in_org(tx, org_id, user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// Rotates a refresh token: the presented one is spent, a new one is issued in the same
    /// session. A token presented twice revokes the session, the newest token included.
    pub async fn refresh(&self, request: RefreshRequest) -> Result<TokenResponse, ServiceError> {
        if !request.refresh_token.starts_with(REFRESH_PREFIX) || request.refresh_token.len() > 128 {
            return Err(ServiceError::Unauthenticated(BAD_TOKEN));
        }
        let hash = token_hash(&request.refresh_token);
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let outcome = sessions::use_refresh_token(&mut tx, &hash).await?;
        let (session_id, user_id) = match outcome {
            RefreshUse::Fresh {
                session_id,
                user_id,
            } => (session_id, user_id),
            RefreshUse::Replayed { session_id } => {
                // Commit the revocation before answering.
                tx.commit().await.map_err(StoreError::from)?;
                tracing::warn!(%session_id, "a spent refresh token was presented; session revoked");
                return Err(ServiceError::Unauthenticated(BAD_TOKEN));
            }
            RefreshUse::Unknown => return Err(ServiceError::Unauthenticated(BAD_TOKEN)),
        };
        let user = users::find_by_id(&mut tx, user_id)
            .await?
            .ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
        let refresh_token = random_token(REFRESH_PREFIX)?;
        let expires_at = Utc::now() + self.settings.session_ttl;
        sessions::insert_refresh_token(
            &mut tx,
            &token_hash(&refresh_token),
            session_id,
            expires_at,
        )
        .await?;
        let access = self
            .user_access_token(&user, session_id, Vec::new())
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(TokenResponse {
            access_token: access,
            token_type: "Bearer".into(),
            expires_in: ttl_secs(self.settings.access_ttl),
            refresh_token: Some(refresh_token),
        })
    }

    /// A new access token in the caller's (live) session, for clients that renew with the
    /// access token itself rather than a refresh token.
    pub async fn renew(&self, principal: &Principal) -> Result<TokenResponse, ServiceError> {
        let user_id = principal.require_user()?;
        let session = principal
            .session
            .ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let user = users::find_in_org(&mut conn, *principal.org.as_uuid(), *user_id.as_uuid())
            .await?
            .ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
        drop(conn);
        let access_token = self
            .user_access_token(&user, session, principal.scopes.clone())
            .await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl_secs(self.settings.access_ttl),
            refresh_token: None,
        })
    }

    /// Revokes the presented token: for a user its whole session (access and refresh tokens);
    /// for an agent every token it holds (agents have no sessions).
    pub async fn logout(&self, principal: &Principal) -> Result<(), ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        match (principal.session, principal.agent_id()) {
            (Some(session), _) => sessions::revoke_session(&mut conn, session).await?,
            (None, Some(agent)) => {
                store::agents::bump_token_version(&mut conn, *agent.as_uuid()).await?
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// Changes the caller's password and revokes every other session of the user.
    pub async fn change_password(
        &self,
        principal: &Principal,
        request: ChangePasswordRequest,
    ) -> Result<(), ServiceError> {
        let user_id = principal.require_user()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let user = users::find_in_org(&mut conn, *principal.org.as_uuid(), *user_id.as_uuid())
            .await?
            .ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
        drop(conn);
        let current_ok = self
            .passwords
            .verify(
                SecretString::from(request.current_password),
                user.password_hash.clone(),
            )
            .await?;
        if !current_ok {
            return Err(ServiceError::Invalid(
                "current_password is not correct".into(),
            ));
        }
        let hash = self
            .passwords
            .hash(SecretString::from(request.new_password))
            .await?;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        users::set_password(&mut tx, user.id, &hash).await?;
        sessions::revoke_other_sessions(&mut tx, user.id, principal.session).await?;
        tx.commit().await.map_err(StoreError::from)?;
        tracing::info!(user_id = %user.id, "password changed; other sessions revoked");
        Ok(())
    }

    /// The caller's profile.
    pub async fn me(&self, principal: &Principal) -> Result<UserProfileResponse, ServiceError> {
        let user_id = principal.require_user()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let user = users::find_in_org(&mut conn, *principal.org.as_uuid(), *user_id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        profile(&user)
    }

    /// Verifies a bearer token and checks its principal's live state.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ServiceError> {
        let claims = self.tokens.verify(token).await.map_err(|err| match err {
            super::tokens::TokenError::Unavailable => ServiceError::Unavailable("HSM"),
            _ => ServiceError::Unauthenticated(BAD_TOKEN),
        })?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        match claims.sub {
            Subject::User(user_id) => {
                let session = claims.sid.ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
                let state = sessions::user_state(&mut conn, *user_id.as_uuid(), session)
                    .await?
                    .ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
                let current = state.org_id == *claims.org.as_uuid()
                    && state.token_version == claims.tv
                    && state.session_live;
                if !current {
                    return Err(ServiceError::Unauthenticated(BAD_TOKEN));
                }
                Ok(Principal {
                    org: claims.org,
                    subject: claims.sub,
                    role: Some(parse_role(&state.role)?),
                    session: Some(session),
                    scopes: claims.scopes.unwrap_or_default(),
                    vault_ids: Vec::new(),
                    client_ip: None,
                })
            }
            Subject::Agent(agent_id) => {
                let state = store::agents::agent_state(&mut conn, *agent_id.as_uuid())
                    .await?
                    .ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?;
                let current = state.org_id == *claims.org.as_uuid()
                    && state.token_version == claims.tv
                    && state.is_active
                    && state.expires_at.is_none_or(|at| at > Utc::now());
                if !current {
                    return Err(ServiceError::Unauthenticated(BAD_TOKEN));
                }
                Ok(Principal {
                    org: claims.org,
                    subject: claims.sub,
                    role: None,
                    session: None,
                    scopes: state.scopes,
                    vault_ids: state
                        .vault_ids
                        .into_iter()
                        .map(VaultId::from_uuid)
                        .collect(),
                    client_ip: None,
                })
            }
        }
    }

    /// Opens a login session for `user` inside `tx` and mints its first tokens.
    pub(crate) async fn open_session(
        &self,
        tx: &mut sqlx::PgConnection,
        user: &UserRow,
        kind: SessionKind,
    ) -> Result<TokenResponse, ServiceError> {
        let session_id = Uuid::new_v4();
        let expires_at = Utc::now() + self.settings.session_ttl;
        let (api_key_id, scopes) = match &kind {
            SessionKind::ApiKey { key_id, scopes } => (Some(*key_id), scopes.clone()),
            SessionKind::Login => (None, Vec::new()),
        };
        sessions::create_session(tx, session_id, user.id, api_key_id, expires_at).await?;
        let refresh_token = if matches!(kind, SessionKind::Login) {
            let token = random_token(REFRESH_PREFIX)?;
            sessions::insert_refresh_token(tx, &token_hash(&token), session_id, expires_at).await?;
            Some(token)
        } else {
            None
        };
        let access_token = self.user_access_token(user, session_id, scopes).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl_secs(self.settings.access_ttl),
            refresh_token,
        })
    }

    async fn user_access_token(
        &self,
        user: &UserRow,
        session_id: Uuid,
        scopes: Vec<String>,
    ) -> Result<String, ServiceError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_AUDIENCE.into(),
            sub: Subject::User(UserId::from_uuid(user.id)),
            org: OrgId::from_uuid(user.org_id),
            iat: now,
            exp: now + ttl_secs(self.settings.access_ttl),
            jti: Uuid::new_v4(),
            tv: user.token_version,
            sid: Some(session_id),
            role: Some(parse_role(&user.role)?),
            scopes: (!scopes.is_empty()).then_some(scopes),
            vault_ids: None,
        };
        Ok(self.tokens.issue(&claims).await?)
    }

    /// Mints an agent access token (the exchange itself lives with the agents service).
    pub(crate) async fn agent_access_token(
        &self,
        agent_id: AgentId,
        org_id: OrgId,
        token_version: i64,
        ttl: Option<Duration>,
        scopes: Vec<String>,
        vault_ids: Vec<VaultId>,
    ) -> Result<(String, i64), ServiceError> {
        let ttl = ttl_secs(ttl.unwrap_or(self.settings.agent_default_ttl));
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_AUDIENCE.into(),
            sub: Subject::Agent(agent_id),
            org: org_id,
            iat: now,
            exp: now + ttl,
            jti: Uuid::new_v4(),
            tv: token_version,
            sid: None,
            role: None,
            scopes: Some(scopes),
            vault_ids: Some(vault_ids),
        };
        Ok((self.tokens.issue(&claims).await?, ttl))
    }
}

/// A user row as the profile body.
pub(crate) fn profile(user: &UserRow) -> Result<UserProfileResponse, ServiceError> {
    Ok(UserProfileResponse {
        id: UserId::from_uuid(user.id),
        org_id: OrgId::from_uuid(user.org_id),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        auth_method: auth_method(user).into(),
        role: parse_role(&user.role)?,
        email_verified: user.google_sub.is_some(),
        totp_enabled: false,
        created_at: user.created_at,
    })
}

/// How a user signs in: `google` when linked to Google and without a password.
pub(crate) fn auth_method(user: &UserRow) -> &'static str {
    match (&user.password_hash, &user.google_sub) {
        (None, Some(_)) => "google",
        _ => "password",
    }
}
