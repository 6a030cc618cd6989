//! A memory of tokens already verified, so that a client presenting the same token again (an
//! agent keeps one for up to an hour) costs a map lookup, not an Ed25519 verification and a
//! JSON parse. The edge keeps one per isolate, the origin one per process.
//!
//! Remembering is sound because verification is a pure function of the token's exact bytes,
//! the keys and the time: the entry is found only by the token's whole text (never by its
//! `jti` or any other part), the owner empties the memory whenever a key it verified against
//! may have gone, and the time-dependent checks (`exp`, `iat`) are made again on every use.
//! What a signature never proves (revocation, token version) the origin checks against the
//! database on every request, remembered or not.
//!
//! Pure and bounded: at most `capacity` entries of at most [`MAX_REMEMBERED_LEN`] bytes.

use std::collections::BTreeMap;

use crate::claims::Claims;
use crate::jwt::{CLOCK_SKEW_SECS, JwtError};

/// Tokens longer than this are verified every time: ours are well under 1 KiB, and the bound
/// keeps the memory under `capacity * MAX_REMEMBERED_LEN` (plus the claims) whatever arrives.
pub const MAX_REMEMBERED_LEN: usize = 2 * 1024;

/// Tokens that verified against the owner's current keys, by their exact text.
#[derive(Debug)]
pub struct VerifiedTokens {
    /// A `BTreeMap`, as for the keys: no hasher to seed, and its cost does not depend on how
    /// an attacker picks keys (only verified tokens ever get in anyway).
    tokens: BTreeMap<Box<str>, Claims>,
    capacity: usize,
}

impl VerifiedTokens {
    /// An empty memory of at most `capacity` tokens.
    pub const fn new(capacity: usize) -> Self {
        Self {
            tokens: BTreeMap::new(),
            capacity,
        }
    }

    /// The outcome of verifying `token` again at `now`, if it verified before: its claims,
    /// or `Expired`/`NotYetValid` as [`crate::jwt::verify`] would say now. `None` when the
    /// token is not remembered (it must be verified in full).
    pub fn recall(&self, token: &str, now: i64) -> Option<Result<&Claims, JwtError>> {
        let remembered = self.tokens.get(token)?;
        // The same time checks as the core's, in the same order and with the same skew.
        Some(if now >= remembered.exp.saturating_add(CLOCK_SKEW_SECS) {
            Err(JwtError::Expired)
        } else if remembered.iat > now.saturating_add(CLOCK_SKEW_SECS) {
            Err(JwtError::NotYetValid)
        } else {
            Ok(remembered)
        })
    }

    /// Remembers a token that has just verified in full with these `claims`. When full, the
    /// expired entries go; if that frees nothing, everything goes (the next requests verify
    /// in full again, which is always correct).
    pub fn remember(&mut self, token: &str, claims: &Claims, now: i64) {
        if token.len() > MAX_REMEMBERED_LEN || self.capacity == 0 {
            return;
        }
        if self.tokens.len() >= self.capacity && !self.tokens.contains_key(token) {
            self.tokens
                .retain(|_, kept| now < kept.exp.saturating_add(CLOCK_SKEW_SECS));
            if self.tokens.len() >= self.capacity {
                self.tokens.clear();
            }
        }
        self.tokens.insert(token.into(), claims.clone());
    }

    /// Forgets every token (the key set they verified against was replaced).
    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{TOKEN_AUDIENCE, TOKEN_ISSUER};

    const MAX_TOKENS: usize = 256;

    const NOW: i64 = 1_750_000_000;

    fn claims(sub: &str, iat: i64, exp: i64) -> Claims {
        serde_json::from_value(serde_json::json!({
            "iss": TOKEN_ISSUER,
            "aud": TOKEN_AUDIENCE,
            "sub": sub,
            "org": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "iat": iat,
            "exp": exp,
            "jti": "6f9619ff-8b86-d011-b42d-00c04fc964fe",
            "tv": 0,
        }))
        .unwrap()
    }

    const USER: &str = "user:6f9619ff-8b86-d011-b42d-00c04fc964ff";

    #[test]
    fn a_remembered_token_recalls_its_subject_and_only_by_its_exact_text() {
        let mut memory = VerifiedTokens::new(MAX_TOKENS);
        let claims = claims(USER, NOW, NOW + 900);
        memory.remember("a.b.c", &claims, NOW);
        assert_eq!(memory.recall("a.b.c", NOW + 10), Some(Ok(&claims)));
        for other in ["a.b.d", "a.b.c ", "A.b.c", "a.b", ""] {
            assert_eq!(memory.recall(other, NOW), None, "{other:?}");
        }
    }

    #[test]
    fn time_checks_are_made_again_on_every_recall() {
        let mut memory = VerifiedTokens::new(MAX_TOKENS);
        memory.remember("t", &claims(USER, NOW, NOW + 900), NOW);
        let expiry = NOW + 900 + CLOCK_SKEW_SECS;
        assert!(matches!(memory.recall("t", expiry - 1), Some(Ok(_))));
        assert_eq!(memory.recall("t", expiry), Some(Err(JwtError::Expired)));
        // A clock that went back past the issue time (plus the skew).
        assert_eq!(
            memory.recall("t", NOW - CLOCK_SKEW_SECS - 1),
            Some(Err(JwtError::NotYetValid))
        );
    }

    #[test]
    fn clearing_forgets_everything() {
        let mut memory = VerifiedTokens::new(MAX_TOKENS);
        memory.remember("t", &claims(USER, NOW, NOW + 900), NOW);
        memory.clear();
        assert!(memory.is_empty());
        assert_eq!(memory.recall("t", NOW), None);
    }

    #[test]
    fn over_long_tokens_are_never_remembered() {
        let mut memory = VerifiedTokens::new(MAX_TOKENS);
        let long = "x".repeat(MAX_REMEMBERED_LEN + 1);
        memory.remember(&long, &claims(USER, NOW, NOW + 900), NOW);
        assert_eq!(memory.recall(&long, NOW), None);
    }

    #[test]
    fn the_memory_stays_bounded_dropping_expired_tokens_first() {
        let mut memory = VerifiedTokens::new(MAX_TOKENS);
        let live = claims(USER, NOW, NOW + 900);
        let dead = claims(USER, NOW - 2000, NOW - 1000);
        memory.remember("live", &live, NOW);
        for i in 1..MAX_TOKENS {
            memory.remember(&format!("dead{i}"), &dead, NOW);
        }
        assert_eq!(memory.len(), MAX_TOKENS);
        memory.remember("new", &live, NOW);
        assert_eq!(memory.len(), 2);
        assert!(memory.recall("live", NOW).is_some());
        // All live: everything goes, and the memory refills from the newest.
        for i in 0..MAX_TOKENS {
            memory.remember(&format!("t{i}"), &live, NOW);
        }
        assert!(memory.len() <= MAX_TOKENS);
        assert!(
            memory
                .recall(&format!("t{}", MAX_TOKENS - 1), NOW)
                .is_some()
        );
    }
}
