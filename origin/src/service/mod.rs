//! The service layer: what the origin does, independent of HTTP. Handlers call services;
//! services call the store and the keyring, and answer [`ServiceError`], which the HTTP layer
//! maps to status codes in one place.

pub mod access;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod google;
pub mod health;
pub mod invitations;
pub mod kek_rotation;
pub mod org;
pub mod passwords;
pub mod policies;
pub mod principal;
pub(crate) mod scopes;
pub mod secret_requests;
pub mod secrets;
pub mod shares;
pub mod tokens;
pub mod vaults;

use crate::store::StoreError;
use passwords::PasswordError;
use tokens::TokenError;

/// What a service call can fail with: the caller's mistakes carry words for the caller;
/// failures inside carry their source for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or breaks a rule (400).
    #[error("{0}")]
    Invalid(String),
    /// Credentials or token missing, wrong, expired or revoked (401). The words are the same
    /// for every cause so a caller learns nothing about which.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A tier's object limit refuses a create (403 `resource_limit_exceeded`); the words name
    /// the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// No such resource visible to the caller (404); names the kind of resource.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// It existed, but is no longer readable (410): deleted, expired, used up or disabled.
    #[error("{0} is no longer available")]
    Gone(&'static str),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts at something limited (429); retry after this many seconds.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// A dependency is down (503); names it.
    #[error("the {0} is unavailable")]
    Unavailable(&'static str),
    /// Anything else (500); the source goes to the log only.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "the database is unavailable");
            Self::Unavailable("database")
        } else {
            Self::internal(err)
        }
    }
}

impl From<TokenError> for ServiceError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Unavailable => Self::Unavailable("HSM"),
            TokenError::Invalid(_) => Self::Unauthenticated("invalid or expired token"),
            TokenError::Internal(_) => Self::internal(err),
        }
    }
}

impl From<PasswordError> for ServiceError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Length => Self::Invalid(err.to_string()),
            PasswordError::Internal(_) => Self::internal(err),
        }
    }
}
