//! The edge's token check for protected routes: a bearer token that verifies against the
//! origin's public keys, or a 401 before anything is forwarded.
//!
//! Verification is [`oxvault_core::jwt::verify`], the same code the origin runs: EdDSA pinned
//! (the header's `alg` never chooses), the `kid` must name a cached key, the signature must
//! hold, then `iss`, `aud` and `exp`. What the edge cannot know (revocation, token version,
//! a deactivated agent) the origin checks on every request; the edge only keeps requests
//! that cannot succeed away from it.

use oxvault_core::claims::Claims;
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

/// Verifies `token` with the cached keys at `now` (Unix seconds).
///
/// With no keys cached (no fetch has succeeded) nothing can be verified: that is the origin's
/// trouble, not the caller's, and the answer is 503 so the client retries.
pub fn verify_token(cache: &KeyCache, token: &str, now: i64) -> Result<Claims, EdgeError> {
    let keys = cache.keys().ok_or(EdgeError::KeysUnavailable)?;
    jwt::verify(token, keys, now).map_err(EdgeError::InvalidToken)
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
        let cache = KeyCache::new();
        assert_eq!(
            verify_token(&cache, "e30.e30.sig", 0),
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
            verify_token(&cache, none, 0),
            Err(EdgeError::InvalidToken(JwtError::UnsupportedAlgorithm))
        );
        // `{"alg":"EdDSA","kid":"x"}`.`{}`.(empty): an unknown kid.
        let unknown = "eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.e30.";
        assert_eq!(
            verify_token(&cache, unknown, 0),
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
}
