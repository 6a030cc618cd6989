//! Who is calling: sign-up, login, refresh rotation, logout, password change, the caller's
//! profile, and [`AuthService::authenticate`], which every protected request goes through.
//!
//! A token proves nothing on its own past its signature: `authenticate` also checks, in one
//! indexed lookup, that the principal still exists, is still in the token's org, still has the
//! token's version and (for users) that the login session is still live. Revocation therefore
//! takes effect at once on every origin.
//!
//! Every sign-in is on the audit record: `auth.success` on the transaction that opens the
//! session, `auth.failure` on a transaction of its own (see [`refuse`]). A failure names the
//! org, user or agent it was aimed at when the credential says which (a known email, a matched
//! key), else no org at all (an org-less chain); it never holds the password, token or key, nor
//! the email an unknown-address attempt typed (that may be someone's password pasted into the
//! wrong field, and it is personal data of someone who is not a user).

use std::net::IpAddr;
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
use super::audit::{Actor, AuditLog, Event};
use super::google::GoogleVerifier;
use super::passwords::{Passwords, check_password_rules};
use super::principal::{self, BAD_TOKEN, Principal};
use super::tokens::Tokens;
use crate::store::principals;
use crate::store::sessions::{self, RefreshUse};
use crate::store::users::{self, NewUser, UserRow};
use crate::store::{self, StatementPool, StoreError};

/// The one answer to a failed login, whatever failed.
const BAD_CREDENTIALS: &str = "invalid email or password";
/// Longest org name, in characters (the `organizations.name` CHECK).
const MAX_ORG_NAME_CHARS: usize = 200;
/// Longest display name, in characters (a sign-up refuses more; Google's is cut).
const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// Password-change attempts allowed per user and window: enough for typos, too few to guess.
const PASSWORD_CHANGE_ATTEMPTS: i32 = 5;
/// The window of [`PASSWORD_CHANGE_ATTEMPTS`].
const PASSWORD_CHANGE_WINDOW: Duration = Duration::from_secs(15 * 60);
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
    /// For the principal check of every request: no transaction, no ping on release.
    statements: StatementPool,
    /// Records sign-ins (and the acts of the services that borrow it).
    audit: AuditLog,
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

pub(crate) fn random_token(prefix: &str) -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(ServiceError::internal)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The name of a new user's own org, "<name>'s org", within the 200 characters an org name
/// may have (the name part is cut first).
fn new_org_name(display_name: &str, email: &Email) -> String {
    const SUFFIX: &str = "'s org";
    let owner = if display_name.is_empty() {
        email.local_part()
    } else {
        display_name
    };
    let room = MAX_ORG_NAME_CHARS - SUFFIX.len();
    owner.chars().take(room).collect::<String>() + SUFFIX
}

/// What a take-over ended.
#[derive(Debug)]
struct Takeover {
    revoked_keys: u64,
    deactivated_agents: Vec<Uuid>,
}

/// Hands `user` to the proven owner of its address (Google sub `google_sub`): links the
/// Google account, clears the password, marks the address verified, moves the token version
/// on, and ends every session, personal key and agent the account had. Returns the account
/// as it now is (its new token version goes into the session's tokens).
async fn take_over(
    tx: &mut sqlx::PgConnection,
    user: &UserRow,
    google_sub: &str,
) -> Result<(UserRow, Takeover), ServiceError> {
    if user.google_sub.is_none() {
        users::set_google_sub(tx, user.id, google_sub).await?;
    }
    let taken = users::take_over(tx, user.id).await?;
    sessions::revoke_other_sessions(tx, user.id, None).await?;
    let revoked_keys = store::api_keys::revoke_all_of_user(tx, user.id).await?;
    let deactivated_agents = store::agents::deactivate_created_by(tx, user.id).await?;
    Ok((
        taken,
        Takeover {
            revoked_keys,
            deactivated_agents,
        },
    ))
}

/// SHA-256 of a token, as stored: a stolen table holds nothing usable.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

/// How a sign-in was attempted: the `method` detail of its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Password,
    Signup,
    Refresh,
    Google,
    AgentToken,
    ApiKey,
    /// The current password, checked by a password change.
    PasswordChange,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Signup => "signup",
            Self::Refresh => "refresh",
            Self::Google => "google",
            Self::AgentToken => "agent_token",
            Self::ApiKey => "api_key",
            Self::PasswordChange => "password_change",
        }
    }
}

/// Whom a sign-in was for, as far as the credential told: the org, the actor, and the
/// resource (`user`, `agent` or `api_key`) with its id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub org: OrgId,
    pub actor: Actor,
    pub resource_id: Uuid,
}

/// The `auth.success` event of a sign-in by `method` from `ip`.
pub(crate) fn auth_success(
    method: Method,
    resource_type: &'static str,
    target: Target,
    ip: Option<IpAddr>,
) -> Event {
    Event::new("auth.success", Some(target.org), target.actor, ip)
        .on(resource_type, target.resource_id)
        .detail("method", method.as_str())
}

/// The `auth.failure` event of a refused sign-in by `method` from `ip`. `reason` is for the
/// record only: the caller's answer is the same whatever it is. Without a `target` the event
/// belongs to no org and no actor.
pub(crate) fn auth_failure(
    method: Method,
    reason: &'static str,
    resource_type: &'static str,
    target: Option<Target>,
    ip: Option<IpAddr>,
) -> Event {
    let event = match target {
        Some(target) => Event::new("auth.failure", Some(target.org), target.actor, ip)
            .on(resource_type, target.resource_id),
        None => {
            // The kind of resource aimed at is known, which one is not.
            let mut event = Event::new("auth.failure", None, Actor::Anonymous, ip);
            event.resource_type = resource_type;
            event
        }
    };
    event
        .detail("method", method.as_str())
        .detail("reason", reason)
}

/// Records a refused sign-in on its own (the attempt itself wrote nothing)
/// and hands back `refusal` to answer with. When the event cannot be recorded the answer is
/// 503 instead: an attempt that is not on the record is not answered as if it were (fail
/// closed), and a caller cannot guess credentials while the trail is down.
pub(crate) async fn refuse(audit: &AuditLog, event: Event, refusal: ServiceError) -> ServiceError {
    match audit.record(event).await {
        Ok(()) => refusal,
        Err(err) => {
            tracing::error!(error = %err, "a refused sign-in could not be recorded; answering 503");
            ServiceError::Unavailable("audit trail")
        }
    }
}

/// A user as the target of a sign-in.
fn user_target(user: &UserRow) -> Target {
    Target {
        org: OrgId::from_uuid(user.org_id),
        actor: Actor::User(UserId::from_uuid(user.id)),
        resource_id: user.id,
    }
}

impl AuthService {
    pub fn new(
        pool: PgPool,
        statements: StatementPool,
        audit: AuditLog,
        passwords: Passwords,
        tokens: Tokens,
        settings: AuthSettings,
        google: Option<GoogleVerifier>,
    ) -> Self {
        Self {
            pool,
            statements,
            audit,
            passwords,
            tokens,
            settings,
            google,
        }
    }

    /// The audit log (for the services that sign callers in too: agent and API-key
    /// exchanges, and the acts of agents and keys).
    pub(crate) fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Records a refused sign-in and returns the answer to give; see [`refuse`].
    async fn refuse(&self, event: Event, refusal: ServiceError) -> ServiceError {
        refuse(&self.audit, event, refusal).await
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

    /// Creates a user in a new org of their own. A pending invitation for the address changes
    /// nothing: it is redeemed only with its mailed token, once signed in.
    pub async fn signup(
        &self,
        request: SignupRequest,
        ip: Option<IpAddr>,
    ) -> Result<SignupResponse, ServiceError> {
        let email = parse_email(&request.email)?;
        check_password_rules(request.password.expose())?;
        let display_name = request
            .display_name
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        if display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(ServiceError::Invalid("display_name is too long".into()));
        }
        let hash = self
            .passwords
            .hash(SecretString::from(request.password.into_inner()))
            .await?;

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let user = self
            .create_user(&mut tx, &email, &display_name, Some(&hash), None)
            .await?;
        let session = self
            .open_session(&mut tx, &user, SessionKind::Login)
            .await?;
        let event = auth_success(Method::Signup, "user", user_target(&user), ip);
        self.audit.commit(tx, event).await?;
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
    pub async fn login(
        &self,
        request: LoginRequest,
        ip: Option<IpAddr>,
    ) -> Result<TokenResponse, ServiceError> {
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
            .verify(SecretString::from(request.password.into_inner()), hash)
            .await?;
        let user = match user {
            Some(user) if matches => user,
            // Both refusals write one event, so they still take the same time.
            other => {
                let (reason, target) = match &other {
                    Some(user) if user.password_hash.is_none() => {
                        ("no_password", Some(user_target(user)))
                    }
                    Some(user) => ("wrong_password", Some(user_target(user))),
                    None => ("unknown_user", None),
                };
                let event = auth_failure(Method::Password, reason, "user", target, ip);
                let refusal = ServiceError::Unauthenticated(BAD_CREDENTIALS);
                return Err(self.refuse(event, refusal).await);
            }
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let session = self
            .open_session(&mut tx, &user, SessionKind::Login)
            .await?;
        let event = auth_success(Method::Password, "user", user_target(&user), ip);
        self.audit.commit(tx, event).await?;
        Ok(session)
    }

    /// Google sign-in: a verified id_token opens a session for the user linked to that Google
    /// account, else for the account with the same (Google-verified) email, else for a new
    /// user in a new org of their own, without a password.
    ///
    /// An account whose address nobody has proven yet (a password sign-up) is not simply
    /// linked: whoever made it may not own the address (account pre-hijacking). It is taken
    /// over for the address's proven owner: its password is cleared and every session, key
    /// and agent it made ends, so nothing its maker set up keeps a way in.
    ///
    /// Refusals name no org: an id_token that does not verify says nothing trustworthy about
    /// whose it is.
    pub async fn google(
        &self,
        request: GoogleAuthRequest,
        ip: Option<IpAddr>,
    ) -> Result<TokenResponse, ServiceError> {
        let verifier = self
            .google
            .as_ref()
            .ok_or(ServiceError::NotFound("Google sign-in"))?;
        let identity = match verifier.verify(request.id_token.expose()).await {
            Ok(identity) => identity,
            Err(refusal @ ServiceError::Unauthenticated(_)) => {
                let event = auth_failure(Method::Google, "invalid_id_token", "user", None, ip);
                return Err(self.refuse(event, refusal).await);
            }
            // Google's keys out of reach: nobody was refused.
            Err(other) => return Err(other),
        };
        // An unverified address would let anyone claim an existing account by email.
        let email = match (&identity.email, identity.email_verified) {
            (Some(email), true) => parse_email(email)?,
            _ => {
                let event = auth_failure(Method::Google, "unverified_email", "user", None, ip);
                let refusal = ServiceError::Unauthenticated("invalid Google id_token");
                return Err(self.refuse(event, refusal).await);
            }
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let existing = match users::find_by_google_sub(&mut tx, &identity.sub).await? {
            Some(user) => Some(user),
            None => users::find_by_email(&mut tx, email.as_str()).await?,
        };
        let (user, takeover) = match existing {
            Some(user) if user.email_verified_at.is_some() => {
                if user.google_sub.is_none() {
                    users::set_google_sub(&mut tx, user.id, &identity.sub).await?;
                }
                (user, None)
            }
            Some(user) => {
                let (user, takeover) = take_over(&mut tx, &user, &identity.sub).await?;
                (user, Some(takeover))
            }
            None => {
                // Google's name, cut to the length a sign-up allows.
                let display_name: String = identity
                    .name
                    .as_deref()
                    .unwrap_or_default()
                    .trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_DISPLAY_NAME_CHARS)
                    .collect();
                let user = self
                    .create_user(&mut tx, &email, &display_name, None, Some(&identity.sub))
                    .await?;
                (user, None)
            }
        };
        let session = self
            .open_session(&mut tx, &user, SessionKind::Login)
            .await?;
        let mut event = auth_success(Method::Google, "user", user_target(&user), ip);
        if let Some(takeover) = takeover {
            tracing::warn!(user_id = %user.id, "Google sign-in took over an unverified account");
            event = event
                .detail("account_takeover", true)
                .detail("revoked_api_keys", takeover.revoked_keys)
                .detail(
                    "deactivated_agents",
                    takeover
                        .deactivated_agents
                        .iter()
                        .map(Uuid::to_string)
                        .collect::<Vec<_>>(),
                );
        }
        self.audit.commit(tx, event).await?;
        Ok(session)
    }

    /// Creates a user in a new org of their own, as its owner. Joining another org takes an
    /// invitation's mailed token (`OrgService::accept_invitation`), never a sign-up alone.
    async fn create_user(
        &self,
        tx: &mut sqlx::PgConnection,
        email: &Email,
        display_name: &str,
        password_hash: Option<&str>,
        google_sub: Option<&str>,
    ) -> Result<UserRow, ServiceError> {
        let user_id = Uuid::new_v4();
        let org_id = Uuid::new_v4();
        let org_name = new_org_name(display_name, email);
        users::insert_org(tx, org_id, &org_name).await?;
        let role = Role::Owner;
        let inserted = users::insert_user(
            tx,
            &NewUser {
                id: user_id,
                org_id,
                email: email.as_str(),
                display_name,
                password_hash,
                google_sub,
                role,
                // Only Google vouches for an address at sign-up.
                email_verified: google_sub.is_some(),
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
    pub async fn refresh(
        &self,
        request: RefreshRequest,
        ip: Option<IpAddr>,
    ) -> Result<TokenResponse, ServiceError> {
        let refused = |reason, target| {
            let event = auth_failure(Method::Refresh, reason, "user", target, ip);
            self.refuse(event, ServiceError::Unauthenticated(BAD_TOKEN))
        };
        let presented = request.refresh_token.expose();
        if !presented.starts_with(REFRESH_PREFIX) || presented.len() > 128 {
            return Err(refused("malformed_token", None).await);
        }
        let hash = token_hash(presented);
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let outcome = sessions::use_refresh_token(&mut tx, &hash).await?;
        let (session_id, user_id) = match outcome {
            RefreshUse::Fresh {
                session_id,
                user_id,
            } => (session_id, user_id),
            RefreshUse::Replayed {
                session_id,
                user_id,
            } => {
                // The revocation commits on its own, before the event: it must stand even
                // if the event cannot be written.
                let user = users::find_by_id(&mut tx, user_id).await?;
                tx.commit().await.map_err(StoreError::from)?;
                tracing::warn!(%session_id, "a spent refresh token was presented; session revoked");
                return Err(refused("replayed_token", user.as_ref().map(user_target)).await);
            }
            RefreshUse::Unknown => {
                drop(tx);
                return Err(refused("unknown_token", None).await);
            }
        };
        let Some(user) = users::find_by_id(&mut tx, user_id).await? else {
            drop(tx);
            return Err(refused("unknown_user", None).await);
        };
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
        let event = auth_success(Method::Refresh, "user", user_target(&user), ip);
        self.audit.commit(tx, event).await?;
        Ok(TokenResponse {
            access_token: access,
            token_type: "Bearer".into(),
            expires_in: ttl_secs(self.settings.access_ttl),
            refresh_token: Some(refresh_token),
        })
    }

    /// Revokes the presented token: for a user its whole session (access and refresh tokens);
    /// for an agent every token it holds (agents have no sessions).
    pub async fn logout(&self, principal: &Principal) -> Result<(), ServiceError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let event = match (principal.session, principal.agent_id()) {
            (Some(session), _) => {
                sessions::revoke_session(&mut tx, session).await?;
                Event::by(principal, "auth.logout").on("session", session)
            }
            (None, Some(agent)) => {
                store::agents::bump_token_version(&mut tx, *agent.as_uuid()).await?;
                Event::by(principal, "auth.logout").on("agent", agent.as_uuid())
            }
            (None, None) => return Ok(()),
        };
        self.audit.commit(tx, event).await?;
        Ok(())
    }

    /// Changes the caller's password and ends every session of the user, the caller's own
    /// too: whoever else held a token or a refresh token of this account is out, and the
    /// caller signs in again with the new password.
    ///
    /// The current password is guarded like a login: each attempt takes one of
    /// [`PASSWORD_CHANGE_ATTEMPTS`] per [`PASSWORD_CHANGE_WINDOW`] before Argon2 runs (a stolen
    /// access token cannot guess at speed), and a wrong one is an `auth.failure` on the record.
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
        let window = PASSWORD_CHANGE_WINDOW.as_secs_f64();
        let allowed = users::take_password_change_attempt(
            &mut conn,
            user.id,
            PASSWORD_CHANGE_ATTEMPTS,
            window,
        )
        .await?;
        drop(conn);
        if !allowed {
            return Err(ServiceError::TooManyAttempts {
                retry_after_secs: PASSWORD_CHANGE_WINDOW.as_secs(),
            });
        }
        let current_ok = self
            .passwords
            .verify(
                SecretString::from(request.current_password.into_inner()),
                user.password_hash.clone(),
            )
            .await?;
        if !current_ok {
            let event = auth_failure(
                Method::PasswordChange,
                "wrong_password",
                "user",
                Some(user_target(&user)),
                principal.client_ip,
            );
            let refusal = ServiceError::Invalid("current_password is not correct".into());
            return Err(self.refuse(event, refusal).await);
        }
        let hash = self
            .passwords
            .hash(SecretString::from(request.new_password.into_inner()))
            .await?;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        users::set_password(&mut tx, user.id, &hash).await?;
        sessions::revoke_other_sessions(&mut tx, user.id, None).await?;
        let event = Event::by(principal, "user.password_change").on("user", user.id);
        self.audit.commit(tx, event).await?;
        tracing::info!(user_id = %user.id, "password changed; every session revoked");
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
        self.admit(&self.verify(token).await?).await
    }

    /// The principal of already verified `claims`, after the check of its live state.
    pub async fn admit(&self, claims: &Claims) -> Result<Principal, ServiceError> {
        let who = principal::who_of(claims)?;
        let mut lease = self.statements.acquire().await?;
        let state = principals::state(lease.conn(), who).await;
        principal::admit(claims, lease.finish(state)?)
    }

    /// Checks a bearer token's signature, issuer, audience and lifetime only: the principal's
    /// live state is still to be checked ([`principal::admit`]).
    pub async fn verify(&self, token: &str) -> Result<Claims, ServiceError> {
        self.tokens.verify(token).await.map_err(|err| match err {
            super::tokens::TokenError::Unavailable => ServiceError::Unavailable("HSM"),
            _ => ServiceError::Unauthenticated(BAD_TOKEN),
        })
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
            role: Some(user.role),
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
        role: user.role,
        // Proven by Google at sign-in, or by the invitation mail's token once redeemed.
        email_verified: user.google_sub.is_some() || user.email_verified_at.is_some(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_orgs_name_fits_the_200_characters_an_org_name_may_have() {
        let email = Email::parse("ada@example.com").unwrap();
        assert_eq!(new_org_name("", &email), "ada's org");
        assert_eq!(new_org_name("Ada", &email), "Ada's org");
        let long = "é".repeat(MAX_DISPLAY_NAME_CHARS);
        assert_eq!(
            new_org_name(&long, &email).chars().count(),
            MAX_ORG_NAME_CHARS
        );
    }
    use serde_json::json;

    fn target() -> Target {
        let user = Uuid::from_u128(7);
        Target {
            org: OrgId::from_uuid(Uuid::from_u128(1)),
            actor: Actor::User(UserId::from_uuid(user)),
            resource_id: user,
        }
    }

    #[test]
    fn a_refusal_aimed_at_nobody_known_names_no_org_no_actor_and_no_resource_id() {
        let ip = Some("192.0.2.1".parse().unwrap());
        let event = auth_failure(Method::AgentToken, "unknown_key", "agent", None, ip);
        assert_eq!(event.action, "auth.failure");
        assert_eq!(event.org, None);
        assert_eq!(event.actor, Actor::Anonymous);
        assert_eq!(event.resource_type, "agent");
        assert_eq!(event.resource_id, None);
        assert_eq!(event.ip, ip);
        assert_eq!(
            serde_json::Value::Object(event.details),
            json!({"method": "agent_token", "reason": "unknown_key"})
        );
    }

    #[test]
    fn a_refusal_aimed_at_a_known_user_goes_to_their_org() {
        let event = auth_failure(
            Method::Password,
            "wrong_password",
            "user",
            Some(target()),
            None,
        );
        assert_eq!(event.org, Some(target().org));
        assert_eq!(event.actor, target().actor);
        assert_eq!(event.resource_id, Some(Uuid::from_u128(7).to_string()));
    }

    #[test]
    fn a_success_names_its_method_and_nothing_else() {
        let event = auth_success(Method::ApiKey, "api_key", target(), None);
        assert_eq!(event.action, "auth.success");
        assert_eq!(
            serde_json::Value::Object(event.details),
            json!({"method": "api_key"})
        );
    }
}
