//! The edge's token check for protected routes: a bearer token that verifies against the
//! origin's public keys, or a 401 before anything is forwarded.
//!
//! Verification is [`oxvault_core::jwt::verify`], the same code the origin runs: EdDSA pinned
//! (the header's `alg` never chooses), the `kid` must name a cached key, the signature must
//! hold, then `iss`, `aud` and `exp`. What the edge cannot know (revocation, token version,
//! a deactivated agent) the origin checks on every request; the edge only keeps requests
//! that cannot succeed away from it.

use oxvault_core::claims::Subject;
use oxvault_core::jwt;

use crate::error::EdgeError;
use crate::keys::KeyCache;

/// The token of an `Authorization: Bearer <token>` header value.
///
/// The same reading as the origin's: the scheme is case-insensitive (RFC 9110 section 11.1),
/// one space separates it from the token, and surrounding spaces are trimmed. Anything else
/// (`Basic`, a bare token, an empty one) is no bearer token.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, EdgeError> {
    authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(EdgeError::MissingToken)
}

/// The `kid` a token's header names, read before anything is verified, to decide whether the
/// key cache needs a refresh. A token without a readable header is refused here, without
/// touching the cache.
pub fn token_kid(token: &str) -> Result<String, EdgeError> {
    jwt::peek_kid(token).map_err(EdgeError::InvalidToken)
}

/// The subject of a token the cache's keys verified before, checked again against `now`;
/// `None` when the token must be verified in full ([`verify_token`]).
pub fn recall_token(cache: &KeyCache, token: &str, now: i64) -> Option<Result<Subject, EdgeError>> {
    cache
        .recall(token, now)
        .map(|outcome| outcome.map_err(EdgeError::InvalidToken))
}

/// Verifies `token` with the cached keys at `now` (Unix seconds) and returns its subject; a
/// token that verifies is remembered, so presenting it again costs a lookup
/// ([`recall_token`]).
///
/// With no keys cached (no fetch has succeeded) nothing can be verified: that is the origin's
/// trouble, not the caller's, and the answer is 503 so the client retries.
pub fn verify_token(cache: &mut KeyCache, token: &str, now: i64) -> Result<Subject, EdgeError> {
    let keys = cache.keys().ok_or(EdgeError::KeysUnavailable)?;
    let claims = jwt::verify(token, keys, now).map_err(EdgeError::InvalidToken)?;
    cache.remember(token, &claims, now);
    Ok(claims.sub)
}

/// `Date.now()` (milliseconds) as Unix seconds.
pub fn unix_seconds(millis: u64) -> i64 {
    i64::try_from(millis / 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_jwks;
    use oxvault_core::jwt::JwtError;
    use oxvault_core::jwt::{Jwk, Jwks};

    /// RFC 8032 section 7.1, test 1: a public key whose private half nobody here holds.
    const PUBLIC: [u8; 32] = [
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ];

    #[test]
    fn a_bearer_header_yields_its_token() {
        assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("BEARER  abc ")), Ok("abc"));
    }

    #[test]
    fn no_header_or_another_scheme_is_a_missing_token() {
        for value in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer    "),
            Some("Basic dXNlcjpwYXNz"),
            Some("abc.def.ghi"),
            Some("Bearerabc"),
            Some("Token abc"),
        ] {
            assert_eq!(
                bearer_token(value),
                Err(EdgeError::MissingToken),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_token_without_a_readable_header_is_invalid_before_any_key_lookup() {
        for token in ["abc", "a.b", "!!.e30.sig", "e30.e30.sig"] {
            assert_eq!(
                token_kid(token),
                Err(EdgeError::InvalidToken(JwtError::Malformed)),
                "{token}"
            );
        }
    }

    #[test]
    fn without_cached_keys_nothing_verifies_and_the_answer_is_unavailable() {
        let mut cache = KeyCache::new();
        assert_eq!(
            verify_token(&mut cache, "e30.e30.sig", 0),
            Err(EdgeError::KeysUnavailable)
        );
    }

    #[test]
    fn a_token_refused_by_the_core_is_an_invalid_token() {
        let mut cache = KeyCache::new();
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(&PUBLIC)],
        };
        cache.store(
            parse_jwks(200, &serde_json::to_vec(&jwks).unwrap()).unwrap(),
            0,
        );
        // `{"alg":"none","kid":"x"}`.`{}`.(empty)
        let none = "eyJhbGciOiJub25lIiwia2lkIjoieCJ9.e30.";
        assert_eq!(
            verify_token(&mut cache, none, 0),
            Err(EdgeError::InvalidToken(JwtError::UnsupportedAlgorithm))
        );
        // `{"alg":"EdDSA","kid":"x"}`.`{}`.(empty): an unknown kid.
        let unknown = "eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.e30.";
        assert_eq!(
            verify_token(&mut cache, unknown, 0),
            Err(EdgeError::InvalidToken(JwtError::UnknownKey))
        );
    }

    #[test]
    fn milliseconds_become_whole_seconds() {
        assert_eq!(unix_seconds(1_750_000_000_999), 1_750_000_000);
        assert_eq!(unix_seconds(0), 0);
        assert_eq!(
            unix_seconds(u64::MAX),
            i64::try_from(u64::MAX / 1000).unwrap()
        );
    }
    /// A token signed with the RFC 8032 test-1 secret key, valid from `iat` for `lifetime`
    /// seconds, and a cache holding that key as fetched at `iat`.
    fn signed_token(iat: i64, lifetime: i64) -> (String, KeyCache) {
        use ed25519_dalek::{Signer, SigningKey};
        use oxvault_core::claims::{Claims, TOKEN_AUDIENCE, TOKEN_ISSUER};
        let secret: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let signing = SigningKey::from_bytes(&secret);
        assert_eq!(signing.verifying_key().to_bytes(), PUBLIC);
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": TOKEN_ISSUER,
            "aud": TOKEN_AUDIENCE,
            "sub": "agent:6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "org": "6f9619ff-8b86-d011-b42d-00c04fc964fe",
            "iat": iat,
            "exp": iat + lifetime,
            "jti": "6f9619ff-8b86-d011-b42d-00c04fc964fd",
            "tv": 0,
        }))
        .unwrap();
        let input = jwt::signing_input(&jwt::key_id(&PUBLIC), &claims).unwrap();
        let token = jwt::assemble(&input, &signing.sign(input.as_bytes()).to_bytes());
        let mut cache = KeyCache::new();
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(&PUBLIC)],
        };
        cache.store(
            parse_jwks(200, &serde_json::to_vec(&jwks).unwrap()).unwrap(),
            iat,
        );
        (token, cache)
    }

    const T0: i64 = 1_750_000_000;

    #[test]
    fn a_verified_token_is_recalled_with_its_subject_and_time_checks_still_apply() {
        let (token, mut cache) = signed_token(T0, 60);
        assert_eq!(recall_token(&cache, &token, T0), None, "not verified yet");
        let subject = verify_token(&mut cache, &token, T0).unwrap();
        assert_eq!(
            subject.to_string(),
            "agent:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        assert_eq!(recall_token(&cache, &token, T0 + 59), Some(Ok(subject)));
        assert_eq!(
            recall_token(&cache, &token, T0 + 60 + jwt::CLOCK_SKEW_SECS),
            Some(Err(EdgeError::InvalidToken(JwtError::Expired)))
        );
    }

    #[test]
    fn a_token_that_failed_is_never_recalled() {
        let (token, mut cache) = signed_token(T0, 900);
        // The last signature character changed: a bad signature (or a malformed one).
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verify_token(&mut cache, &forged, T0).is_err());
        assert_eq!(recall_token(&cache, &forged, T0), None);
        // Expired on first sight: refused, and not remembered either.
        assert!(verify_token(&mut cache, &token, T0 + 3600).is_err());
        assert_eq!(recall_token(&cache, &token, T0), None);
    }

    #[test]
    fn new_keys_or_keys_past_their_ttl_mean_a_full_verification_again() {
        let (token, mut cache) = signed_token(T0, 900);
        verify_token(&mut cache, &token, T0).unwrap();
        assert_eq!(
            recall_token(&cache, &token, T0 + crate::keys::KEYS_TTL_SECS),
            None
        );
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(&PUBLIC)],
        };
        cache.store(
            parse_jwks(200, &serde_json::to_vec(&jwks).unwrap()).unwrap(),
            T0 + 1,
        );
        assert_eq!(recall_token(&cache, &token, T0 + 1), None);
    }
}
