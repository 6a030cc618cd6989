//! Google sign-in: verifies a Google id_token (RS256) against Google's published keys.
//!
//! Checked: the algorithm (pinned to RS256, never read from the token to choose a verifier),
//! the key id against the JWKS, the signature, the issuer (`accounts.google.com` with or without
//! `https://`), the audience (our client id) and the expiry. Google's keys rotate, so they are
//! cached and refetched when a token names an unknown key — at most every
//! [`MIN_REFETCH`], so garbage tokens cannot make us hammer Google.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::ServiceError;
use crate::config::GoogleConfig;

/// Keys older than this are refetched even when they still name the token's key.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// No refetch sooner than this after the last one.
const MIN_REFETCH: Duration = Duration::from_secs(30);
const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
const BAD_ID_TOKEN: &str = "invalid Google id_token";

/// What a verified id_token says.
#[derive(Debug, Clone, Deserialize)]
pub struct GoogleIdentity {
    /// Google's stable account id.
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// Verifies Google id_tokens; cheap to clone.
#[derive(Debug, Clone)]
pub struct GoogleVerifier {
    config: GoogleConfig,
    http: reqwest::Client,
    cache: Arc<RwLock<KeyCache>>,
}

impl GoogleVerifier {
    pub fn new(config: GoogleConfig) -> Result<Self, ServiceError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(ServiceError::internal)?;
        Ok(Self {
            config,
            http,
            cache: Arc::new(RwLock::new(KeyCache::default())),
        })
    }

    /// Verifies `id_token`; every failure is the same 401.
    pub async fn verify(&self, id_token: &str) -> Result<GoogleIdentity, ServiceError> {
        let header =
            decode_header(id_token).map_err(|_| ServiceError::Unauthenticated(BAD_ID_TOKEN))?;
        if header.alg != Algorithm::RS256 {
            return Err(ServiceError::Unauthenticated(BAD_ID_TOKEN));
        }
        let kid = header
            .kid
            .ok_or(ServiceError::Unauthenticated(BAD_ID_TOKEN))?;
        let key = self.key_for(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_issuer(&ISSUERS);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        decode::<GoogleIdentity>(id_token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|err| {
                tracing::info!(error = %err, "a Google id_token was refused");
                ServiceError::Unauthenticated(BAD_ID_TOKEN)
            })
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, ServiceError> {
        {
            let cache = self.cache.read().await;
            let fresh = cache.fetched.is_some_and(|at| at.elapsed() < MAX_KEY_AGE);
            if fresh && let Some(jwk) = cache.keys.as_ref().and_then(|keys| keys.find(kid)) {
                return DecodingKey::from_jwk(jwk)
                    .map_err(|_| ServiceError::Unauthenticated(BAD_ID_TOKEN));
            }
        }
        let mut cache = self.cache.write().await;
        let may_fetch = cache.fetched.is_none_or(|at| at.elapsed() >= MIN_REFETCH);
        if may_fetch {
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = Some(keys);
                    cache.fetched = Some(Instant::now());
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Google's keys could not be fetched");
                    if cache.keys.is_none() {
                        return Err(ServiceError::Unavailable("Google key service"));
                    }
                }
            }
        }
        let jwk = cache
            .keys
            .as_ref()
            .and_then(|keys| keys.find(kid))
            .ok_or(ServiceError::Unauthenticated(BAD_ID_TOKEN))?;
        DecodingKey::from_jwk(jwk).map_err(|_| ServiceError::Unauthenticated(BAD_ID_TOKEN))
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(&self.config.jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}
