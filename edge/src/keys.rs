//! The edge's cache of token-verification keys and when to refresh it.
//!
//! The keys are the origin's public keys, read from `GET {ORIGIN_URL}/.well-known/jwks.json`.
//! The runtime keeps one [`KeyCache`] per isolate and asks it, for each token, whether to fetch
//! the set first ([`KeyCache::needs_fetch`]); the cache decides from the token's `kid` and the
//! time alone, so the whole policy tests natively:
//! - nothing cached: always fetch; if that fails the edge answers 503 (it cannot tell a good
//!   token from a bad one, so it forwards nothing);
//! - keys older than [`KEYS_TTL_SECS`], or a `kid` the cache does not know (the origin may have
//!   rotated its key): fetch again, but at most once per [`MIN_REFRESH_INTERVAL_SECS`], so
//!   tokens with made-up kids cannot make the edge hammer the origin. Within the interval the
//!   cached keys are used as they are, and an unknown kid is refused;
//! - a refresh that fails keeps the keys already cached: they are public keys, the origin
//!   verifies every token again, and a down origin fails the forwarded request anyway.
//!
//! Times are Unix seconds; the runtime passes `Date.now()`.

use oxvault_core::claims::{Claims, Subject};
use oxvault_core::jwt::{Jwks, JwtError, VerifyingKeys};
use thiserror::Error;

use oxvault_core::verified::VerifiedTokens;

/// The most verified tokens an isolate remembers (an isolate serves few callers at once).
const MAX_VERIFIED_TOKENS: usize = 256;

/// How long fetched keys are used before the set is fetched again.
pub const KEYS_TTL_SECS: i64 = 5 * 60;

/// The least time between two refreshes of a non-empty cache.
pub const MIN_REFRESH_INTERVAL_SECS: i64 = 10;

/// The path of the origin's key set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The largest key set the edge reads. The origin publishes one or two keys (~150 bytes each).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// How long the edge waits for the origin's key set.
pub const JWKS_TIMEOUT_MS: u32 = 5_000;

/// Why a fetched key set was not taken. For the log only.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwksError {
    #[error("the origin answered the key set request with status {0}")]
    Status(u16),
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the key set is not a JWKS document")]
    NotAJwks,
    #[error("the key set holds no usable Ed25519 key ({ignored} entries ignored)")]
    NoUsableKey { ignored: usize },
}

/// The keys in the origin's answer to `GET /.well-known/jwks.json`.
///
/// A set without one usable key is refused rather than cached: an empty cache makes the edge
/// answer 503 (and ask again next time), where caching nothing would refuse every token as
/// unknown for the whole TTL.
pub fn parse_jwks(status: u16, body: &[u8]) -> Result<VerifyingKeys, JwksError> {
    if status != 200 {
        return Err(JwksError::Status(status));
    }
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let jwks: Jwks = serde_json::from_slice(body).map_err(|_| JwksError::NotAJwks)?;
    let keys = VerifyingKeys::from_jwks(&jwks);
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey {
            ignored: keys.ignored(),
        });
    }
    Ok(keys)
}

/// Keys fetched at a known time.
#[derive(Debug, Clone)]
struct Fetched {
    keys: VerifyingKeys,
    at: i64,
}

/// Why the runtime should fetch the key set before verifying a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    /// No keys yet (a new isolate, or every fetch so far failed).
    Empty,
    /// The cached keys are older than [`KEYS_TTL_SECS`].
    Expired,
    /// The token names a key the cache does not hold.
    UnknownKid,
}

/// The verification keys of one isolate, with the times that decide when to refresh them.
#[derive(Debug)]
pub struct KeyCache {
    fetched: Option<Fetched>,
    /// When the last fetch was started, successful or not.
    last_attempt: Option<i64>,
    /// Tokens that verified against `fetched`'s keys; emptied whenever those are replaced.
    verified: VerifiedTokens,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyCache {
    /// An empty cache.
    pub const fn new() -> Self {
        Self {
            fetched: None,
            last_attempt: None,
            verified: VerifiedTokens::new(MAX_VERIFIED_TOKENS),
        }
    }

    /// Whether to fetch the key set before verifying a token whose header names `kid`.
    pub fn needs_fetch(&self, kid: &str, now: i64) -> Option<FetchReason> {
        let Some(fetched) = &self.fetched else {
            // Unthrottled: with nothing cached every protected request would be refused, and
            // each of them would have reached the origin without the edge anyway.
            return Some(FetchReason::Empty);
        };
        let reason = if !within(fetched.at, now, KEYS_TTL_SECS) {
            FetchReason::Expired
        } else if !fetched.keys.contains(kid) {
            FetchReason::UnknownKid
        } else {
            return None;
        };
        let throttled = self
            .last_attempt
            .is_some_and(|last| within(last, now, MIN_REFRESH_INTERVAL_SECS));
        (!throttled).then_some(reason)
    }

    /// Notes that a fetch starts now. Called before the request goes out, so that other
    /// requests of the isolate arriving while it runs do not start their own.
    pub fn fetch_started(&mut self, now: i64) {
        self.last_attempt = Some(now);
    }

    /// Takes a freshly fetched key set, replacing the old one entirely (a key the origin no
    /// longer publishes stops verifying).
    pub fn store(&mut self, keys: VerifyingKeys, now: i64) {
        self.fetched = Some(Fetched { keys, at: now });
        // A token verified under the old set may name a key that is gone.
        self.verified.clear();
    }

    /// The outcome of a token this cache's keys verified before (see [`VerifiedTokens`]), or
    /// `None` when it must be verified in full: not remembered, or the keys are due for a
    /// refresh (so remembered tokens never keep a key set alive past its TTL).
    pub fn recall(&self, token: &str, now: i64) -> Option<Result<Subject, JwtError>> {
        let fetched = self.fetched.as_ref()?;
        if !within(fetched.at, now, KEYS_TTL_SECS) {
            return None;
        }
        self.verified
            .recall(token, now)
            .map(|outcome| outcome.map(|claims| claims.sub))
    }

    /// Remembers a token that has just verified in full with the cached keys.
    pub fn remember(&mut self, token: &str, claims: &Claims, now: i64) {
        if self.fetched.is_some() {
            self.verified.remember(token, claims, now);
        }
    }

    /// The keys to verify with, or `None` when no fetch has succeeded yet.
    pub fn keys(&self) -> Option<&VerifyingKeys> {
        self.fetched.as_ref().map(|fetched| &fetched.keys)
    }
}

/// Whether `now` lies in `[since, since + span)`. A clock that went backwards counts as
/// outside, so a wrong clock leads to a fetch rather than to keys kept forever.
fn within(since: i64, now: i64, span: i64) -> bool {
    now >= since && now - since < span
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxvault_core::jwt::{Jwk, key_id};
    use serde_json::json;

    const T0: i64 = 1_750_000_000;

    /// A valid Ed25519 public key: the base point's encoding (any curve point that is not of
    /// small order will do; the core derives the kid from the bytes).
    const PUBLIC_A: [u8; 32] = [
        0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66,
    ];
    /// RFC 8032 section 7.1, test 1: a second valid public key.
    const PUBLIC_B: [u8; 32] = [
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ];

    fn jwks_body(keys: &[[u8; 32]]) -> Vec<u8> {
        let jwks = Jwks {
            keys: keys.iter().map(Jwk::ed25519).collect(),
        };
        serde_json::to_vec(&jwks).unwrap()
    }

    fn keys(public: &[[u8; 32]]) -> VerifyingKeys {
        parse_jwks(200, &jwks_body(public)).unwrap()
    }

    fn cache_with(public: &[[u8; 32]], at: i64) -> KeyCache {
        let mut cache = KeyCache::new();
        cache.fetch_started(at);
        cache.store(keys(public), at);
        cache
    }

    #[test]
    fn the_origins_key_set_parses_into_its_keys() {
        let keys = keys(&[PUBLIC_A, PUBLIC_B]);
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&key_id(&PUBLIC_A)));
        assert!(keys.contains(&key_id(&PUBLIC_B)));
    }

    #[test]
    fn a_non_200_answer_is_not_a_key_set() {
        assert_eq!(
            parse_jwks(503, &jwks_body(&[PUBLIC_A])).unwrap_err(),
            JwksError::Status(503)
        );
        assert_eq!(parse_jwks(304, b"").unwrap_err(), JwksError::Status(304));
    }

    #[test]
    fn a_body_that_is_not_a_jwks_is_refused() {
        for body in [
            &b"<html>502</html>"[..],
            b"",
            br#"{"method":"GET","path":"/.well-known/jwks.json"}"#,
            br#"{"keys": {}}"#,
        ] {
            assert_eq!(parse_jwks(200, body).unwrap_err(), JwksError::NotAJwks);
        }
    }

    #[test]
    fn a_set_without_a_usable_key_is_refused_not_cached() {
        assert_eq!(
            parse_jwks(200, br#"{"keys": []}"#).unwrap_err(),
            JwksError::NoUsableKey { ignored: 0 }
        );
        let hmac_only =
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}]});
        assert_eq!(
            parse_jwks(200, hmac_only.to_string().as_bytes()).unwrap_err(),
            JwksError::NoUsableKey { ignored: 1 }
        );
    }

    #[test]
    fn an_oversized_set_is_refused_before_it_is_parsed() {
        let body = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(parse_jwks(200, &body).unwrap_err(), JwksError::TooLarge);
    }

    #[test]
    fn an_empty_cache_always_fetches_even_right_after_a_failed_fetch() {
        let mut cache = KeyCache::new();
        assert_eq!(cache.needs_fetch("kid", T0), Some(FetchReason::Empty));
        cache.fetch_started(T0);
        // The fetch failed: nothing stored.
        assert_eq!(cache.needs_fetch("kid", T0), Some(FetchReason::Empty));
        assert!(cache.keys().is_none());
    }

    #[test]
    fn a_known_kid_within_the_ttl_uses_the_cache() {
        let cache = cache_with(&[PUBLIC_A], T0);
        let kid = key_id(&PUBLIC_A);
        assert_eq!(cache.needs_fetch(&kid, T0), None);
        assert_eq!(cache.needs_fetch(&kid, T0 + KEYS_TTL_SECS - 1), None);
        assert!(cache.keys().is_some_and(|keys| keys.contains(&kid)));
    }

    #[test]
    fn keys_older_than_the_ttl_are_refreshed() {
        let cache = cache_with(&[PUBLIC_A], T0);
        assert_eq!(
            cache.needs_fetch(&key_id(&PUBLIC_A), T0 + KEYS_TTL_SECS),
            Some(FetchReason::Expired)
        );
    }

    #[test]
    fn an_unknown_kid_refreshes_at_most_once_per_interval() {
        let mut cache = cache_with(&[PUBLIC_A], T0);
        let new_kid = key_id(&PUBLIC_B);
        // Right after the first fetch: throttled, the cached keys decide (and refuse).
        assert_eq!(cache.needs_fetch(&new_kid, T0), None);
        assert_eq!(
            cache.needs_fetch(&new_kid, T0 + MIN_REFRESH_INTERVAL_SECS - 1),
            None
        );
        let later = T0 + MIN_REFRESH_INTERVAL_SECS;
        assert_eq!(
            cache.needs_fetch(&new_kid, later),
            Some(FetchReason::UnknownKid)
        );
        cache.fetch_started(later);
        // Made-up kids arriving while (and after) that refresh runs do not start another.
        assert_eq!(cache.needs_fetch("made-up", later), None);
        assert_eq!(cache.needs_fetch("made-up-2", later + 9), None);
        assert_eq!(
            cache.needs_fetch("made-up-3", later + 10),
            Some(FetchReason::UnknownKid)
        );
    }

    #[test]
    fn a_refresh_replaces_the_whole_set() {
        let mut cache = cache_with(&[PUBLIC_A], T0);
        let later = T0 + MIN_REFRESH_INTERVAL_SECS;
        cache.fetch_started(later);
        cache.store(keys(&[PUBLIC_B]), later);
        let keys = cache.keys().unwrap();
        assert!(keys.contains(&key_id(&PUBLIC_B)));
        assert!(
            !keys.contains(&key_id(&PUBLIC_A)),
            "a retired key is dropped"
        );
        assert_eq!(cache.needs_fetch(&key_id(&PUBLIC_B), later + 1), None);
    }

    #[test]
    fn a_failed_refresh_keeps_the_cached_keys_and_is_not_retried_at_once() {
        let mut cache = cache_with(&[PUBLIC_A], T0);
        let expired = T0 + KEYS_TTL_SECS;
        let kid = key_id(&PUBLIC_A);
        assert_eq!(cache.needs_fetch(&kid, expired), Some(FetchReason::Expired));
        cache.fetch_started(expired);
        // The fetch failed: nothing stored.
        assert!(cache.keys().is_some_and(|keys| keys.contains(&kid)));
        assert_eq!(cache.needs_fetch(&kid, expired + 1), None);
        assert_eq!(
            cache.needs_fetch(&kid, expired + MIN_REFRESH_INTERVAL_SECS),
            Some(FetchReason::Expired)
        );
    }

    #[test]
    fn a_clock_that_went_backwards_leads_to_a_fetch_not_to_keys_kept_forever() {
        let cache = cache_with(&[PUBLIC_A], T0);
        assert_eq!(
            cache.needs_fetch(&key_id(&PUBLIC_A), T0 - 1),
            Some(FetchReason::Expired)
        );
    }
}
