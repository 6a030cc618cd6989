//! Fuzzes access-token verification (`oxvault_core::jwt`): `verify` and `peek_kid` never panic
//! on any text, and no text verifies but the token exactly as issued; the issued token with any
//! damage the input describes (bytes replaced, inserted, cut, parts reordered) never verifies;
//! a token signed with the real key over any header verifies only with `alg` EdDSA, our `kid`
//! and no `crit`.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use oxvault_core::claims::{Claims, Role, Subject, TOKEN_AUDIENCE, TOKEN_ISSUER};
use oxvault_core::ids::{OrgId, UserId};
use oxvault_core::jwt::{self, VerifyingKeys};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use uuid::Uuid;

const NOW: i64 = 1_750_000_000;

struct Fixture {
    key: SigningKey,
    keys: VerifyingKeys,
    kid: String,
    claims: Claims,
    token: String,
}

/// One key and one token for the whole run: signing per input would slow the fuzzer down for
/// nothing, since the input describes the damage, not the token.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut keys = VerifyingKeys::default();
        let kid = keys.insert(&key.verifying_key().to_bytes());
        let id = Uuid::from_u128(0x6f1c_2d3e_4b5a_4c6d_8e7f_9a0b_1c2d_3e4f);
        let claims = Claims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_AUDIENCE.into(),
            sub: Subject::User(UserId::from_uuid(id)),
            org: OrgId::from_uuid(id),
            iat: NOW - 10,
            exp: NOW + 900,
            jti: Uuid::from_u128(42),
            tv: 3,
            sid: Some(Uuid::from_u128(7)),
            role: Some(Role::Admin),
            scopes: None,
            vault_ids: None,
        };
        let input = jwt::signing_input(&kid, &claims).unwrap_or_default();
        let token = jwt::assemble(&input, &key.sign(input.as_bytes()).to_bytes());
        assert_eq!(jwt::verify(&token, &keys, NOW).as_ref(), Ok(&claims));
        Fixture {
            key,
            keys,
            kid,
            claims,
            token,
        }
    })
}

/// Any text: never a panic, and only the issued token verifies.
fn check_text(text: &str) {
    let fixture = fixture();
    let _ = jwt::peek_kid(text);
    match jwt::verify(text, &fixture.keys, NOW) {
        Ok(claims) => {
            assert_eq!(text, fixture.token, "a forged token verified");
            assert_eq!(claims, fixture.claims);
            assert_eq!(jwt::peek_kid(text).as_deref(), Ok(fixture.kid.as_str()));
        }
        Err(_) => assert_ne!(text, fixture.token),
    }
}

/// The issued token, damaged as `data` says: each 3 bytes are an operation, a position and a
/// byte.
fn damaged(data: &[u8]) -> Vec<u8> {
    let mut token = fixture().token.as_bytes().to_vec();
    for step in data.chunks_exact(3) {
        let (op, byte) = (step[0], step[2]);
        // Past 255: the op's high bit doubles the reach, tokens being longer than that.
        let at = usize::from(step[1]) + usize::from(op >> 7) * 256;
        let len = token.len();
        match op % 5 {
            0 if len > 0 => token[at % len] = byte,
            1 if len > 0 => {
                token.remove(at % len);
            }
            2 => token.insert(at % (len + 1), byte),
            3 => token.truncate(at % (len + 1)),
            _ => {
                // Reorder or repeat parts: byte's three 2-bit fields pick them.
                let text = String::from_utf8_lossy(&token).into_owned();
                let parts: Vec<&str> = text.split('.').collect();
                let pick = |shift: u8| {
                    parts
                        .get(usize::from((byte >> shift) & 3))
                        .copied()
                        .unwrap_or("")
                };
                token = [pick(0), pick(2), pick(4)].join(".").into_bytes();
            }
        }
    }
    token
}

/// The keys of a JSON object in order, repeats included: `Value` keeps only the last of
/// repeated keys, where the verifier refuses a repeated `alg`, `kid` or `crit`.
struct ObjectKeys(Vec<String>);

impl<'de> Deserialize<'de> for ObjectKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;

        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = ObjectKeys;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ObjectKeys, M::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(ObjectKeys(keys))
            }
        }

        deserializer.deserialize_map(KeysVisitor)
    }
}

/// A header from the input, signed with the real key over the real claims: it verifies
/// exactly when its `alg` is EdDSA, its `kid` ours, and it has no `crit` (`null` lists no
/// extension), each at most once.
fn check_header(json: &[u8]) {
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Ok(ObjectKeys(keys)) = serde_json::from_slice::<ObjectKeys>(json) else {
        return;
    };
    let fixture = fixture();
    let Ok(payload) = serde_json::to_vec(&fixture.claims) else {
        return;
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let token = jwt::assemble(&input, &fixture.key.sign(input.as_bytes()).to_bytes());
    let once = |name: &str| keys.iter().filter(|key| *key == name).count() <= 1;
    let ours = header.get("alg").and_then(Value::as_str) == Some(jwt::JWT_ALG)
        && header.get("kid").and_then(Value::as_str) == Some(fixture.kid.as_str())
        && header.get("crit").is_none_or(Value::is_null)
        && ["alg", "kid", "crit"].into_iter().all(once)
        && token.len() <= jwt::MAX_TOKEN_LEN;
    let verified = jwt::verify(&token, &fixture.keys, NOW);
    assert_eq!(
        verified.is_ok(),
        ours,
        "header {}: {verified:?}",
        String::from_utf8_lossy(json)
    );
    if ours {
        assert_eq!(jwt::peek_kid(&token).as_deref(), Ok(fixture.kid.as_str()));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let token = damaged(data);
    if let Ok(text) = std::str::from_utf8(&token) {
        check_text(text);
    }
    check_header(data);
});
