//! Access tokens: EdDSA JWTs signed inside the HSM, verified with the public key.
//!
//! Issuing asks the HSM for the public key (to name its `kid`) and then for the signature;
//! verifying uses public keys cached in memory. The cache holds only public keys, which every
//! origin reads from the same HSM key pair, so two origins always agree on what verifies.
//! Tokens that verified are remembered by their exact text ([`VerifiedTokens`]): a caller
//! presenting the same token again costs a lookup instead of an Ed25519 verification. Keys
//! are only ever added here, so nothing remembered can outlive the key it verified against;
//! the time checks run again on every use, and the principal's live state is checked by the
//! caller against the database on every request regardless.

use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oxvault_core::auth::JwtPublicKeyResponse;
use oxvault_core::claims::Claims;
use oxvault_core::jwt::{self, JWT_ALG, Jwk, Jwks, JwtError, VerifyingKeys};
use oxvault_core::verified::VerifiedTokens;

use crate::crypto::{CryptoError, Keyring};

/// Why a token could not be issued or checked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The HSM is down: nothing can be signed, and an unknown key cannot be fetched.
    #[error("the HSM is unavailable")]
    Unavailable,
    /// The token does not verify.
    #[error("invalid token: {0}")]
    Invalid(JwtError),
    #[error("token encoding failed: {0}")]
    Internal(String),
}

impl From<CryptoError> for TokenError {
    fn from(_: CryptoError) -> Self {
        Self::Unavailable
    }
}

/// Issues and verifies access tokens; cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    keyring: Keyring,
    keys: Arc<RwLock<VerifyingKeys>>,
    verified: Arc<Mutex<VerifiedTokens>>,
}

/// The most tokens remembered per process: one per active agent or session is plenty.
const MAX_VERIFIED_TOKENS: usize = 4096;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            keys: Arc::new(RwLock::new(VerifyingKeys::default())),
            verified: Arc::new(Mutex::new(VerifiedTokens::new(MAX_VERIFIED_TOKENS))),
        }
    }

    /// Signs `claims` in the HSM.
    pub async fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let public_key = self.keyring.public_key().await?;
        let kid = self.remember(&public_key);
        let input = jwt::signing_input(&kid, claims).map_err(TokenError::Invalid)?;
        let signature = self.keyring.sign(input.clone().into_bytes()).await?;
        if signature.public_key != public_key {
            // The key changed between the two calls (a reconnect to a re-keyed token): the
            // kid would name the wrong key. Refuse rather than mint an unverifiable token.
            return Err(TokenError::Internal(
                "the signing key changed while signing".into(),
            ));
        }
        Ok(jwt::assemble(&input, &signature.bytes))
    }

    /// Verifies a token's signature, algorithm, issuer, audience and lifetime. A token signed
    /// by a key not seen yet triggers one look-up of the HSM's current key.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(outcome) = self.verified().recall(token, now) {
            return outcome.cloned().map_err(TokenError::Invalid);
        }
        let claims = match self.verify_cached(token, now) {
            Err(TokenError::Invalid(JwtError::UnknownKey)) => {
                let public_key = self.keyring.public_key().await?;
                self.remember(&public_key);
                self.verify_cached(token, now)
            }
            other => other,
        }?;
        self.verified().remember(token, &claims, now);
        Ok(claims)
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, VerifiedTokens> {
        // Each operation is one map insert, clear or lookup: a panic cannot leave it half done.
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn verify_cached(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        jwt::verify(token, &keys, now).map_err(TokenError::Invalid)
    }

    /// Adds a public key to the cache; returns its kid.
    fn remember(&self, public_key: &[u8; 32]) -> String {
        let kid = jwt::key_id(public_key);
        let known = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&kid);
        if !known {
            self.keys
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(public_key);
        }
        kid
    }

    /// The JWKS published at `/.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<Jwks, TokenError> {
        let public_key = self.keyring.public_key().await?;
        self.remember(&public_key);
        Ok(Jwks {
            keys: vec![Jwk::ed25519(&public_key)],
        })
    }

    /// The public key in 1Claw's `jwt-public-key` shape.
    pub async fn public_key(&self) -> Result<JwtPublicKeyResponse, TokenError> {
        let public_key = self.keyring.public_key().await?;
        Ok(JwtPublicKeyResponse {
            alg: JWT_ALG.to_owned(),
            public_key_base64: STANDARD.encode(public_key),
        })
    }
}
