//! The MCP endpoint, `/mcp`: forwarded to the origin (which runs the server) like any
//! protected route, with one addition: MCP clients hold static headers and cannot refresh a
//! 15-minute token, so `Authorization: Bearer` may carry an agent's `ocv_` key or a personal
//! `1ck_` key itself. The edge exchanges such a key at the origin (the same exchange routes a
//! client would call, under the same per-IP and per-identity limits) and forwards the access
//! token instead, reusing it from the isolate's [`TokenCache`] while it is valid.
//!
//! The cache changes no guarantee: it holds tokens the origin issued, and the origin checks
//! every token's principal on every request (a deactivated agent is refused at once, and its
//! cached token dropped on that 401). Each isolate has its own cache; a miss costs one
//! exchange.

use std::collections::HashMap;

use oxvault_core::api_key::{KeyKind, key_digest, parse_key};
use serde::Deserialize;

use crate::auth::bearer_token;

/// The path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// A key sent as the bearer credential of an MCP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCredential<'a> {
    pub kind: KeyKind,
    pub key: &'a str,
}

/// The key in `authorization`, when its bearer credential is a well-formed `ocv_` or `1ck_`
/// key (anything else is treated as an access token).
pub fn key_credential(authorization: Option<&str>) -> Option<KeyCredential<'_>> {
    let token = bearer_token(authorization).ok()?;
    let parsed = parse_key(token).ok()?;
    Some(KeyCredential {
        kind: parsed.kind,
        key: token,
    })
}

impl KeyCredential<'_> {
    /// The origin route that exchanges this kind of key for an access token.
    pub fn exchange_path(&self) -> &'static str {
        match self.kind {
            KeyKind::Agent => "/v1/auth/agent-token",
            KeyKind::User => "/v1/auth/api-key-token",
        }
    }

    /// The exchange's JSON body.
    pub fn exchange_body(&self) -> Vec<u8> {
        serde_json::json!({ "api_key": self.key })
            .to_string()
            .into_bytes()
    }

    /// The cache's key for this credential.
    pub fn digest(&self) -> [u8; 32] {
        key_digest(self.key)
    }
}

/// An exchange's answer: the access token and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Exchanged {
    pub access_token: String,
    pub expires_in: i64,
}

/// The token of a `200` exchange answer, `None` if it is not one.
pub fn parse_exchange(body: &[u8]) -> Option<Exchanged> {
    serde_json::from_slice::<Exchanged>(body)
        .ok()
        .filter(|answer| !answer.access_token.is_empty() && answer.expires_in > 0)
}

/// A cached token is given up this long before it expires, so it never expires on the way.
pub const EXPIRY_MARGIN_SECS: i64 = 30;

/// Most keys one isolate keeps tokens for.
pub const MAX_CACHED: usize = 1024;

/// Access tokens obtained for keys, by the keys' digests.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<[u8; 32], (String, i64)>,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token for `digest`, if one is cached and still good at `now` (Unix seconds).
    pub fn recall(&self, digest: &[u8; 32], now: i64) -> Option<String> {
        self.tokens
            .get(digest)
            .filter(|(_, usable_until)| *usable_until > now)
            .map(|(token, _)| token.clone())
    }

    /// Keeps `exchanged` for `digest`, got at `now`. A full cache drops its stale entries
    /// first, and everything if that is not enough (a miss only costs an exchange).
    pub fn store(&mut self, digest: [u8; 32], exchanged: &Exchanged, now: i64) {
        if self.tokens.len() >= MAX_CACHED && !self.tokens.contains_key(&digest) {
            self.tokens.retain(|_, (_, until)| *until > now);
            if self.tokens.len() >= MAX_CACHED {
                self.tokens.clear();
            }
        }
        let usable_until = now + exchanged.expires_in - EXPIRY_MARGIN_SECS;
        if usable_until > now {
            self.tokens
                .insert(digest, (exchanged.access_token.clone(), usable_until));
        }
    }

    /// Drops the token for `digest` (the origin refused it).
    pub fn forget(&mut self, digest: &[u8; 32]) {
        self.tokens.remove(digest);
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use oxvault_core::api_key::format_key;

    use super::*;

    fn answer(token: &str, expires_in: i64) -> Exchanged {
        Exchanged {
            access_token: token.to_owned(),
            expires_in,
        }
    }

    #[test]
    fn keys_are_told_from_tokens_and_routed_to_their_exchange() {
        let agent = format_key(KeyKind::Agent, &[7; 24]);
        let user = format_key(KeyKind::User, &[9; 24]);
        let header = format!("Bearer {agent}");
        let found = key_credential(Some(&header)).unwrap();
        assert_eq!(found.kind, KeyKind::Agent);
        assert_eq!(found.exchange_path(), "/v1/auth/agent-token");
        let body: serde_json::Value = serde_json::from_slice(&found.exchange_body()).unwrap();
        assert_eq!(body["api_key"], agent);
        let header = format!("bearer {user}");
        assert_eq!(
            key_credential(Some(&header)).unwrap().exchange_path(),
            "/v1/auth/api-key-token"
        );
        for other in [
            None,
            Some("Bearer eyJhbGciOiJFZERTQSJ9.e30.sig"),
            Some("Basic b2N2Xw=="),
            Some("Bearer ocv_not-a-real-key"),
        ] {
            assert_eq!(key_credential(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_token_is_reused_until_shortly_before_it_expires_and_dropped_on_refusal() {
        let mut cache = TokenCache::new();
        let digest = key_digest("ocv_x");
        cache.store(digest, &answer("t1", 900), 1_000);
        assert_eq!(cache.recall(&digest, 1_000).as_deref(), Some("t1"));
        assert_eq!(cache.recall(&digest, 1_869).as_deref(), Some("t1"));
        assert_eq!(cache.recall(&digest, 1_870), None);
        assert_eq!(cache.recall(&key_digest("ocv_y"), 1_000), None);
        cache.forget(&digest);
        assert_eq!(cache.recall(&digest, 1_000), None);
        // A token too short-lived to be worth keeping is not kept.
        cache.store(digest, &answer("t2", 10), 1_000);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = TokenCache::new();
        for n in 0..(MAX_CACHED + 10) {
            cache.store(key_digest(&n.to_string()), &answer("t", 900), 1_000);
        }
        assert!(cache.len() <= MAX_CACHED);
        assert!(
            cache
                .recall(&key_digest(&(MAX_CACHED + 9).to_string()), 1_000)
                .is_some()
        );
    }

    #[test]
    fn exchange_answers_are_read_strictly() {
        let ok = br#"{"access_token":"abc","token_type":"Bearer","expires_in":900}"#;
        assert_eq!(parse_exchange(ok), Some(answer("abc", 900)));
        for bad in [
            &b"{}"[..],
            b"nope",
            br#"{"access_token":"","expires_in":900}"#,
            br#"{"access_token":"a","expires_in":0}"#,
        ] {
            assert_eq!(parse_exchange(bad), None);
        }
    }
}
