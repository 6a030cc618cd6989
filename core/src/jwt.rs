//! Access tokens as compact EdDSA (Ed25519) JWTs: building what the origin's HSM signs, and
//! verifying what callers present, at the edge and at the origin alike.
//!
//! The private key never leaves the HSM, so this module has no signing code: the origin calls
//! [`signing_input`], has the HSM sign those bytes, and calls [`assemble`]. Verification is
//! pure and runs the same in the Worker (wasm32) and natively.
//!
//! The algorithm is pinned to EdDSA. A token's header only ever selects a key by `kid` among
//! keys this module was given; it never chooses how to verify (no `none`, no HMAC, no keys
//! embedded in or fetched from the header via `jwk`/`jku`/`x5u`), which is what RFC 8725
//! section 2.1 asks of a verifier.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::claims::{Claims, TOKEN_AUDIENCE, TOKEN_ISSUER};

/// The only `alg` oxvault signs with and accepts.
pub const JWT_ALG: &str = "EdDSA";

/// How far the verifier's clock may differ from the issuer's, for `exp` and `iat`.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// The longest token text looked at. Ours are well under 1 KiB; the bound keeps an attacker
/// from making the verifier decode and parse megabytes before the signature check fails.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

const PUBLIC_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;
/// Base64url (no padding) lengths of a public key and of a signature.
const PUBLIC_KEY_B64_LEN: usize = 43;
const SIGNATURE_B64_LEN: usize = 86;
/// 96 bits of the key's hash: unique among the handful of keys live at once, short in headers.
const KID_HASH_BYTES: usize = 12;

/// Why a token was refused. The variants are for logs and metrics; a caller is told only
/// that its token is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a compact JWT we can read, too long, without `kid`, with a `crit` header, or with
    /// claims missing or of the wrong type (a token without `exp` lands here).
    #[error("the token is malformed")]
    Malformed,
    /// The header's `alg` is missing or anything but `EdDSA`.
    #[error("the token's algorithm is not supported")]
    UnsupportedAlgorithm,
    /// The `kid` names no key this verifier knows.
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    /// `iat` is further in the future than the clock skew allows.
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// A JSON Web Key Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// An OKP/Ed25519 public key:
/// `{"kty":"OKP","crv":"Ed25519","x":<base64url, 32 bytes>,"kid":..,"alg":"EdDSA","use":"sig"}`.
///
/// Every member defaults to empty when missing, so that a set which also holds keys of other
/// types (an RSA key has no `crv` or `x`) still parses; [`VerifyingKeys::from_jwks`] then
/// skips those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    #[serde(default)]
    pub kty: String,
    #[serde(default)]
    pub crv: String,
    #[serde(default)]
    pub x: String,
    #[serde(default)]
    pub kid: String,
    #[serde(default)]
    pub alg: String,
    #[serde(default, rename = "use")]
    pub use_: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key, named by [`key_id`].
    pub fn ed25519(public_key: &[u8; 32]) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid: key_id(public_key),
            alg: JWT_ALG.to_owned(),
            use_: "sig".to_owned(),
        }
    }

    /// The public key, if this is an Ed25519 signing key for EdDSA named by its [`key_id`].
    fn ed25519_public_key(&self) -> Option<[u8; PUBLIC_KEY_LEN]> {
        let is_ed25519 = self.kty == "OKP" && self.crv == "Ed25519" && self.alg == JWT_ALG;
        // `use` is optional in RFC 7517; when present it must say signing.
        let for_signing = self.use_.is_empty() || self.use_ == "sig";
        if !is_ed25519 || !for_signing || self.x.len() != PUBLIC_KEY_B64_LEN {
            return None;
        }
        let public_key: [u8; PUBLIC_KEY_LEN] =
            URL_SAFE_NO_PAD.decode(&self.x).ok()?.try_into().ok()?;
        // The kid is derived from the key, so a set whose kid says otherwise was not made by
        // `Jwk::ed25519`; taking it would let one kid name two different keys across sets.
        (self.kid == key_id(&public_key)).then_some(public_key)
    }
}

/// The key id of a public key: base64url (no padding) of the first 12 bytes of its SHA-256.
/// Deriving it from the key means the edge and the origin name a key alike without sharing
/// any state, and a rotated key can never reuse an old key's id.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let digest: [u8; 32] = Sha256::digest(public_key).into();
    URL_SAFE_NO_PAD.encode(&digest[..KID_HASH_BYTES])
}

/// The keys tokens may be signed with, by `kid`.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    /// A `BTreeMap`: a handful of keys, and no hasher to seed from randomness the Worker
    /// would have to provide.
    keys: BTreeMap<String, VerifyingKey>,
    ignored: usize,
}

impl fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKeys")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("ignored", &self.ignored)
            .finish()
    }
}

impl VerifyingKeys {
    /// The Ed25519 keys of a JWKS. Entries that are not OKP/Ed25519/EdDSA signing keys, whose
    /// `x` is not 32 bytes of a usable public key, or whose `kid` is not that key's
    /// [`key_id`], are skipped and counted in [`VerifyingKeys::ignored`].
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut keys = Self::default();
        for jwk in &jwks.keys {
            match jwk.ed25519_public_key() {
                Some(public_key) => {
                    keys.insert(&public_key);
                }
                None => keys.ignored += 1,
            }
        }
        keys
    }

    /// Adds a public key and returns its kid. Bytes that are not a point on the curve, or
    /// that are a small-order point (which `verify_strict` would refuse anyway), are not
    /// added: they count as ignored, and `contains` answers false for the kid returned.
    pub fn insert(&mut self, public_key: &[u8; 32]) -> String {
        let kid = key_id(public_key);
        match VerifyingKey::from_bytes(public_key) {
            Ok(key) if !key.is_weak() => {
                self.keys.insert(kid.clone(), key);
            }
            _ => self.ignored += 1,
        }
        kid
    }

    /// Whether no key is known (every token would be refused as `UnknownKey`).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys are known.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether a key with this kid is known.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many offered keys were skipped as unusable.
    pub fn ignored(&self) -> usize {
        self.ignored
    }
}

/// The header this module writes; the field order is the order on the wire.
#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// The header fields this module reads. Anything else is ignored, on purpose: `jwk`, `jku`
/// and `x5u` must never supply a key. `typ` is not checked: these keys sign nothing but
/// access tokens, so there is no other kind of JWT to confuse them with.
#[derive(Deserialize)]
struct HeaderIn {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 section 4.1.11: extensions listed here must be understood, and we understand
    /// none (notably `b64: false`, which would change what was signed).
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The three parts of a compact JWT, still encoded.
struct Parts<'a> {
    /// `header.payload`: exactly the bytes the signature covers.
    signing_input: &'a str,
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
    if payload.contains('.') {
        return Err(JwtError::Malformed);
    }
    Ok(Parts {
        signing_input,
        header,
        payload,
        signature,
    })
}

fn decode_header(encoded: &str) -> Result<HeaderIn, JwtError> {
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| JwtError::Malformed)
}

/// The text the HSM signs: `base64url(header).base64url(claims)`, with the header
/// `{"alg":"EdDSA","typ":"JWT","kid":kid}`.
///
/// Fails (`Malformed`) if the finished token would be longer than [`MAX_TOKEN_LEN`], e.g. an
/// agent with a very long `vault_ids`: [`verify`] would refuse it, so it is better not issued.
pub fn signing_input(kid: &str, claims: &Claims) -> Result<String, JwtError> {
    let header = serde_json::to_vec(&HeaderOut {
        alg: JWT_ALG,
        typ: "JWT",
        kid,
    })
    .map_err(|_| JwtError::Malformed)?;
    let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Malformed)?;
    let mut input = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 4);
    URL_SAFE_NO_PAD.encode_string(&header, &mut input);
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut input);
    if input.len() + 1 + SIGNATURE_B64_LEN > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    Ok(input)
}

/// The finished token: `signing_input.base64url(signature)`.
pub fn assemble(signing_input: &str, signature: &[u8; 64]) -> String {
    let mut token = String::with_capacity(signing_input.len() + 1 + SIGNATURE_B64_LEN);
    token.push_str(signing_input);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Verifies a token completely and returns its claims.
///
/// In order: length (over [`MAX_TOKEN_LEN`] is `Malformed` before anything is decoded),
/// shape, `alg` exactly `EdDSA`, `kid` present (`Malformed` if not) and known, the signature
/// with `verify_strict` (no malleable or small-order signatures), and only then the claims
/// are parsed: `iss`, `aud`, `now < exp + skew`, `iat <= now + skew`. A token without `exp`
/// does not parse as [`Claims`] and is `Malformed`.
pub fn verify(token: &str, keys: &VerifyingKeys, now_unix: i64) -> Result<Claims, JwtError> {
    let parts = split(token)?;
    let header = decode_header(parts.header)?;
    if header.alg.as_deref() != Some(JWT_ALG) {
        return Err(JwtError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(JwtError::Malformed);
    }
    let kid = header.kid.ok_or(JwtError::Malformed)?;
    let key = keys.keys.get(&kid).ok_or(JwtError::UnknownKey)?;

    if parts.signature.len() != SIGNATURE_B64_LEN {
        return Err(JwtError::Malformed);
    }
    let signature: [u8; SIGNATURE_LEN] = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| JwtError::Malformed)?
        .try_into()
        .map_err(|_| JwtError::Malformed)?;
    key.verify_strict(
        parts.signing_input.as_bytes(),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| JwtError::BadSignature)?;

    // The payload is parsed only once it is known to be ours.
    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| JwtError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
    check_claims(&claims, now_unix)?;
    Ok(claims)
}

fn check_claims(claims: &Claims, now_unix: i64) -> Result<(), JwtError> {
    if claims.iss != TOKEN_ISSUER {
        return Err(JwtError::WrongIssuer);
    }
    if claims.aud != TOKEN_AUDIENCE {
        return Err(JwtError::WrongAudience);
    }
    // Saturating: an `exp` or `now` near i64::MAX must not wrap into the past or future.
    if now_unix >= claims.exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(JwtError::Expired);
    }
    if claims.iat > now_unix.saturating_add(CLOCK_SKEW_SECS) {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

/// The `kid` of a token's header, read WITHOUT verifying anything: the edge uses it only to
/// decide whether its key cache needs a refresh. Too long, not three parts, a header that
/// does not decode, or no `kid`: `Malformed`.
pub fn peek_kid(token: &str) -> Result<String, JwtError> {
    let parts = split(token)?;
    decode_header(parts.header)?.kid.ok_or(JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Role, Subject};
    use crate::ids::{AgentId, OrgId, UserId, VaultId};
    use ed25519_dalek::{Signer, SigningKey};
    use hmac::{Hmac, KeyInit, Mac};
    use serde_json::json;
    use uuid::Uuid;

    pub(super) const NOW: i64 = 1_750_000_000;
    const ID: &str = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn public_key(key: &SigningKey) -> [u8; 32] {
        key.verifying_key().to_bytes()
    }

    pub(super) fn keys() -> VerifyingKeys {
        let mut keys = VerifyingKeys::default();
        keys.insert(&public_key(&signing_key()));
        keys
    }

    pub(super) fn claims() -> Claims {
        Claims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_AUDIENCE.into(),
            sub: Subject::User(UserId::parse(ID).unwrap()),
            org: OrgId::parse(ID).unwrap(),
            iat: NOW - 10,
            exp: NOW + 900,
            jti: Uuid::from_u128(42),
            tv: 3,
            sid: Some(Uuid::from_u128(7)),
            role: Some(Role::Admin),
            scopes: None,
            vault_ids: None,
        }
    }

    /// Signs like the origin does: the HSM signs `signing_input`, then `assemble`.
    pub(super) fn issue(claims: &Claims) -> String {
        let key = signing_key();
        let input = signing_input(&key_id(&public_key(&key)), claims).unwrap();
        assemble(&input, &key.sign(input.as_bytes()).to_bytes())
    }

    pub(super) fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with any header, signed with the real key: a valid signature, so only the
    /// header decides the outcome.
    pub(super) fn signed_with_header(header: serde_json::Value, claims: &Claims) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        assemble(&input, &signing_key().sign(input.as_bytes()).to_bytes())
    }

    pub(super) fn kid() -> String {
        key_id(&public_key(&signing_key()))
    }

    #[test]
    fn a_token_signed_over_the_signing_input_verifies_and_gives_back_its_claims() {
        let claims = claims();
        let token = issue(&claims);
        assert_eq!(verify(&token, &keys(), NOW), Ok(claims));
        assert_eq!(peek_kid(&token), Ok(kid()));
    }

    #[test]
    fn an_agent_token_with_scopes_and_vaults_round_trips() {
        let mut claims = claims();
        claims.sub = Subject::Agent(AgentId::parse(ID).unwrap());
        claims.sid = None;
        claims.role = None;
        claims.scopes = Some(vec!["secrets:read".into()]);
        claims.vault_ids = Some(vec![VaultId::parse(ID).unwrap()]);
        assert_eq!(verify(&issue(&claims), &keys(), NOW), Ok(claims));
    }

    #[test]
    fn the_header_is_eddsa_jwt_with_the_kid() {
        let input = signing_input("abc", &claims()).unwrap();
        let (header, _) = input.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.decode(header).unwrap();
        assert_eq!(
            std::str::from_utf8(&header).unwrap(),
            r#"{"alg":"EdDSA","typ":"JWT","kid":"abc"}"#
        );
    }

    #[test]
    fn any_alg_but_exactly_eddsa_is_rejected_even_with_a_valid_signature() {
        for header in [
            json!({"alg": "none", "kid": kid()}),
            json!({"alg": "HS256", "kid": kid()}),
            json!({"alg": "ES256", "kid": kid()}),
            json!({"alg": "RS256", "kid": kid()}),
            json!({"alg": "eddsa", "kid": kid()}),
            json!({"alg": "Ed25519", "kid": kid()}),
            json!({"alg": "EdDSA ", "kid": kid()}),
            json!({"alg": null, "kid": kid()}),
            json!({"kid": kid()}),
        ] {
            let token = signed_with_header(header.clone(), &claims());
            assert_eq!(
                verify(&token, &keys(), NOW),
                Err(JwtError::UnsupportedAlgorithm),
                "{header}"
            );
        }
        let wrong_type = signed_with_header(json!({"alg": 1, "kid": kid()}), &claims());
        assert_eq!(verify(&wrong_type, &keys(), NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_rejected() {
        let header = b64(json!({"alg": "none", "kid": kid()}).to_string().as_bytes());
        let payload = b64(&serde_json::to_vec(&claims()).unwrap());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(verify(&token, &keys(), NOW).is_err(), "{token}");
        }
    }

    #[test]
    fn an_hs256_token_keyed_with_the_public_key_is_rejected() {
        // The classic confusion attack: a verifier that lets the header pick HMAC would
        // accept this, since the "secret" is public.
        let header = b64(json!({"alg": "HS256", "typ": "JWT", "kid": kid()})
            .to_string()
            .as_bytes());
        let payload = b64(&serde_json::to_vec(&claims()).unwrap());
        let input = format!("{header}.{payload}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&public_key(&signing_key())).unwrap();
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(
            verify(&token, &keys(), NOW),
            Err(JwtError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn a_token_with_an_unknown_kid_is_rejected() {
        let other = SigningKey::from_bytes(&[9; 32]);
        let input = signing_input(&key_id(&public_key(&other)), &claims()).unwrap();
        let token = assemble(&input, &other.sign(input.as_bytes()).to_bytes());
        assert_eq!(verify(&token, &keys(), NOW), Err(JwtError::UnknownKey));
        assert_eq!(
            verify(&issue(&claims()), &VerifyingKeys::default(), NOW),
            Err(JwtError::UnknownKey)
        );
    }

    #[test]
    fn a_token_without_a_kid_is_malformed() {
        let token = signed_with_header(json!({"alg": "EdDSA"}), &claims());
        assert_eq!(verify(&token, &keys(), NOW), Err(JwtError::Malformed));
        assert_eq!(peek_kid(&token), Err(JwtError::Malformed));
    }

    #[test]
    fn a_token_with_a_crit_header_is_malformed() {
        let header = json!({"alg": "EdDSA", "kid": kid(), "b64": false, "crit": ["b64"]});
        let token = signed_with_header(header, &claims());
        assert_eq!(verify(&token, &keys(), NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn a_key_signed_by_a_different_key_under_our_kid_fails_the_signature() {
        let input = signing_input(&kid(), &claims()).unwrap();
        let forger = SigningKey::from_bytes(&[9; 32]);
        let token = assemble(&input, &forger.sign(input.as_bytes()).to_bytes());
        assert_eq!(verify(&token, &keys(), NOW), Err(JwtError::BadSignature));
    }

    /// Replaces the character at `index` with another one of the base64url alphabet.
    fn flip_char(token: &str, index: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_payload_changed_by_one_character_fails_the_signature() {
        let token = issue(&claims());
        let payload_start = token.find('.').unwrap() + 1;
        for index in [payload_start, payload_start + 10, payload_start + 40] {
            assert_eq!(
                verify(&flip_char(&token, index), &keys(), NOW),
                Err(JwtError::BadSignature)
            );
        }
    }

    #[test]
    fn a_signature_changed_by_one_character_is_rejected() {
        let token = issue(&claims());
        let signature_start = token.rfind('.').unwrap() + 1;
        for index in [signature_start, signature_start + 30, signature_start + 60] {
            assert_eq!(
                verify(&flip_char(&token, index), &keys(), NOW),
                Err(JwtError::BadSignature)
            );
        }
        // 86 characters carry 516 bits for 512: the last character's low 4 bits must be
        // zero. Setting one gives another text for the same signature bytes, which must be
        // refused, or a token would have several spellings (and several cache keys).
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = token.len() - 1;
        let value = alphabet
            .iter()
            .position(|&c| c == token.as_bytes()[last])
            .unwrap();
        assert_eq!(value & 0b1111, 0);
        let mut respelled = token[..last].to_owned();
        respelled.push(char::from(alphabet[value | 1]));
        assert_eq!(verify(&respelled, &keys(), NOW), Err(JwtError::Malformed));
        let mut short = token.clone();
        short.pop();
        assert_eq!(verify(&short, &keys(), NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn a_token_from_another_issuer_or_for_another_audience_is_rejected() {
        let mut claims = claims();
        claims.iss = "someone-else".into();
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::WrongIssuer)
        );
        claims.iss = TOKEN_ISSUER.into();
        claims.aud = "another-api".into();
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::WrongAudience)
        );
    }

    #[test]
    fn expiry_allows_thirty_seconds_of_clock_skew_and_no_more() {
        let mut claims = claims();
        claims.exp = NOW - 29;
        assert!(verify(&issue(&claims), &keys(), NOW).is_ok());
        claims.exp = NOW - 30;
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::Expired)
        );
        claims.exp = NOW - 31;
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::Expired)
        );
        claims.exp = i64::MIN;
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn a_token_issued_in_the_future_beyond_the_skew_is_not_valid_yet() {
        let mut claims = claims();
        claims.iat = NOW + 30;
        assert!(verify(&issue(&claims), &keys(), NOW).is_ok());
        claims.iat = NOW + 31;
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::NotYetValid)
        );
        claims.iat = NOW + 86_400 * 365;
        claims.exp = NOW + 86_400 * 366;
        assert_eq!(
            verify(&issue(&claims), &keys(), NOW),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn a_signed_token_without_exp_is_malformed() {
        let mut payload = serde_json::to_value(claims()).unwrap();
        payload.as_object_mut().unwrap().remove("exp");
        let key = signing_key();
        let header = b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid()})
            .to_string()
            .as_bytes());
        let input = format!("{header}.{}", b64(payload.to_string().as_bytes()));
        let token = assemble(&input, &key.sign(input.as_bytes()).to_bytes());
        assert_eq!(verify(&token, &keys(), NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn a_token_over_eight_kib_is_malformed_before_anything_is_read() {
        let token = format!("{}.{}.x", "a".repeat(MAX_TOKEN_LEN), "b");
        assert_eq!(verify(&token, &keys(), NOW), Err(JwtError::Malformed));
        assert_eq!(peek_kid(&token), Err(JwtError::Malformed));
    }

    #[test]
    fn claims_too_big_for_a_token_are_refused_at_issue() {
        let mut claims = claims();
        claims.vault_ids = Some(vec![VaultId::parse(ID).unwrap(); 200]);
        assert_eq!(signing_input(&kid(), &claims), Err(JwtError::Malformed));
        claims.vault_ids = Some(vec![VaultId::parse(ID).unwrap(); 100]);
        let token = issue(&claims);
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert_eq!(verify(&token, &keys(), NOW), Ok(claims));
    }

    #[test]
    fn text_that_is_not_three_base64url_json_parts_is_malformed() {
        let good = issue(&claims());
        for bad in [
            String::new(),
            ".".into(),
            "..".into(),
            "a.b".into(),
            format!("{good}.x"),
            format!("=={good}"),
            "!!!.e30.AAAA".into(),
            format!("{}.e30.AAAA", b64(b"not json")),
            "ü.ü.ü".into(),
        ] {
            assert!(verify(&bad, &keys(), NOW).is_err(), "{bad}");
            assert_eq!(peek_kid(&bad), Err(JwtError::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_jwks_round_trips_through_json_in_the_rfc_8037_shape() {
        let public = public_key(&signing_key());
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(&public)],
        };
        let value = serde_json::to_value(&jwks).unwrap();
        assert_eq!(
            value,
            json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "x": b64(&public), "kid": kid(),
                "alg": "EdDSA", "use": "sig",
            }]})
        );
        let back: Jwks = serde_json::from_value(value).unwrap();
        assert_eq!(back, jwks);
        let keys = VerifyingKeys::from_jwks(&back);
        assert!(keys.contains(&kid()));
        assert_eq!((keys.len(), keys.ignored()), (1, 0));
        assert_eq!(verify(&issue(&claims()), &keys, NOW), Ok(claims()));
    }

    #[test]
    fn keys_other_than_ed25519_signing_keys_are_ignored_and_counted() {
        let public = public_key(&signing_key());
        let good = Jwk::ed25519(&public);
        let other = public_key(&SigningKey::from_bytes(&[9; 32]));
        let mut wrong_kid = Jwk::ed25519(&other);
        wrong_kid.kid = good.kid.clone();
        let mut no_alg = Jwk::ed25519(&other);
        no_alg.alg = String::new();
        let mut for_encryption = Jwk::ed25519(&other);
        for_encryption.use_ = "enc".into();
        let mut x25519 = Jwk::ed25519(&other);
        x25519.crv = "X25519".into();
        let mut short_x = Jwk::ed25519(&other);
        short_x.x = b64(&[1; 31]);
        let mut padded_x = Jwk::ed25519(&other);
        padded_x.x.push('=');
        let jwks: Jwks = serde_json::from_value(json!({"keys": [
            {"kty": "RSA", "n": "sXch", "e": "AQAB", "kid": "rsa-1", "alg": "RS256", "use": "sig"},
            {"kty": "EC", "crv": "P-256", "x": "f83O", "y": "x_FE", "kid": "ec-1"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac-1", "alg": "HS256"},
        ]}))
        .unwrap();
        let jwks = Jwks {
            keys: jwks
                .keys
                .into_iter()
                .chain([
                    good,
                    wrong_kid,
                    no_alg,
                    for_encryption,
                    x25519,
                    short_x,
                    padded_x,
                ])
                .collect(),
        };
        let keys = VerifyingKeys::from_jwks(&jwks);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.ignored(), 9);
        assert!(keys.contains(&kid()));
        assert!(!keys.contains("rsa-1"));
        assert!(!keys.contains(&key_id(&other)));
    }

    #[test]
    fn a_public_key_that_is_not_a_usable_point_is_not_inserted() {
        let mut keys = VerifyingKeys::default();
        // The identity point (small order) and a y coordinate that is not on the curve.
        let identity = {
            let mut bytes = [0u8; 32];
            bytes[0] = 1;
            bytes
        };
        let kid = keys.insert(&identity);
        assert!(!keys.contains(&kid));
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        let kid = keys.insert(&off_curve);
        assert!(!keys.contains(&kid));
        assert!(keys.is_empty());
        assert_eq!(keys.ignored(), 2);
    }

    #[test]
    fn the_key_id_is_sixteen_url_safe_characters_that_differ_per_key() {
        let a = key_id(&public_key(&signing_key()));
        let b = key_id(&public_key(&SigningKey::from_bytes(&[9; 32])));
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        // SHA-256 of 32 zero bytes starts 66687aadf862bd776c8fc18b.
        assert_eq!(
            key_id(&[0; 32]),
            b64(&[
                0x66, 0x68, 0x7a, 0xad, 0xf8, 0x62, 0xbd, 0x77, 0x6c, 0x8f, 0xc1, 0x8b,
            ])
        );
    }

    #[test]
    fn the_debug_form_names_kids_only() {
        let text = format!("{:?}", keys());
        assert!(text.contains(&kid()), "{text}");
    }
}

/// Property tests: no text but a token exactly as issued verifies, and no text panics the
/// verifier or `peek_kid`.
#[cfg(test)]
mod properties {
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::{Value, json};

    use super::tests::{NOW, b64, claims, issue, keys, kid, signed_with_header};
    use super::*;

    /// One way to damage a token.
    #[derive(Debug, Clone)]
    enum Mutation {
        Replace(Index, char),
        Delete(Index),
        Insert(Index, char),
        Truncate(Index),
        /// The three parts in another order, some possibly repeated: `[2, 1, 0]`, `[0, 0, 2]`.
        Reorder([usize; 3]),
        /// A part dropped, or one more added.
        Parts(Vec<usize>),
        /// Another 64 bytes as the signature.
        Signature([u8; 32], [u8; 32]),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let part = || 0usize..3;
        prop_oneof![
            4 => (any::<Index>(), prop_oneof![
                3 => proptest::char::range('+', 'z'),
                1 => any::<char>(),
            ]).prop_map(|(at, c)| Mutation::Replace(at, c)),
            1 => any::<Index>().prop_map(Mutation::Delete),
            1 => (any::<Index>(), any::<char>()).prop_map(|(at, c)| Mutation::Insert(at, c)),
            1 => any::<Index>().prop_map(Mutation::Truncate),
            1 => [part(), part(), part()].prop_map(Mutation::Reorder),
            1 => proptest::collection::vec(part(), 0..5).prop_map(Mutation::Parts),
            1 => any::<([u8; 32], [u8; 32])>().prop_map(|(a, b)| Mutation::Signature(a, b)),
        ]
    }

    fn apply(token: &str, mutation: &Mutation) -> String {
        let chars: Vec<char> = token.chars().collect();
        let parts: Vec<&str> = token.split('.').collect();
        let pick = |order: &[usize]| {
            order
                .iter()
                .map(|&i| parts.get(i).copied().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(".")
        };
        match mutation {
            Mutation::Replace(at, c) => {
                let mut chars = chars.clone();
                let at = at.index(chars.len());
                chars[at] = *c;
                chars.into_iter().collect()
            }
            Mutation::Delete(at) => {
                let mut chars = chars.clone();
                let at = at.index(chars.len());
                chars.remove(at);
                chars.into_iter().collect()
            }
            Mutation::Insert(at, c) => {
                let mut chars = chars.clone();
                let at = at.index(chars.len() + 1);
                chars.insert(at, *c);
                chars.into_iter().collect()
            }
            Mutation::Truncate(at) => chars[..at.index(chars.len())].iter().collect(),
            Mutation::Reorder(order) => pick(order),
            Mutation::Parts(order) => pick(order),
            Mutation::Signature(a, b) => {
                let signature: Vec<u8> = a.iter().chain(b).copied().collect();
                format!("{}.{}", pick(&[0, 1]), b64(&signature))
            }
        }
    }

    /// One token, issued once: signing and verifying are slow unoptimised, and what varies
    /// between cases is the damage, not the token.
    fn issued() -> &'static str {
        static TOKEN: OnceLock<String> = OnceLock::new();
        TOKEN.get_or_init(|| issue(&claims()))
    }

    #[test]
    fn the_token_the_mutations_start_from_verifies() {
        assert_eq!(verify(issued(), &keys(), NOW), Ok(claims()));
    }

    proptest! {
        // A mutation that keeps the token readable costs an Ed25519 check, slow unoptimised.
        #![proptest_config(crate::proptest_config(64))]

        #[test]
        fn arbitrary_text_never_panics_and_never_verifies(text in crate::any_text()) {
            prop_assert!(verify(&text, &keys(), NOW).is_err());
            let _ = peek_kid(&text);
        }

        // Any change to an issued token's text makes it fail: header and payload are what
        // the signature covers, and the signature has one spelling (strict verification,
        // base64 without stray bits).
        #[test]
        fn a_mutated_token_never_verifies(mutation in mutation()) {
            let token = issued();
            let mutated = apply(token, &mutation);
            let _ = peek_kid(&mutated);
            if mutated != token {
                let outcome = verify(&mutated, &keys(), NOW);
                prop_assert!(outcome.is_err(), "{:?} verified: {}", mutation, mutated);
            }
        }
    }

    proptest! {
        // Each case signs a token as well: fewer, over a small space of headers.
        #![proptest_config(crate::proptest_config(24))]

        // Whatever the header says, a validly signed token verifies only with `alg` exactly
        // EdDSA, our `kid`, and no `crit`; `peek_kid` reads the kid from any header that has
        // a string one (and an `alg` that is a string, if any).
        #[test]
        fn only_an_eddsa_header_naming_our_key_verifies(
            alg in proptest::option::of(prop_oneof![
                Just(Value::from(JWT_ALG)),
                "[a-zA-Z0-9 ]{0,6}".prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
            ]),
            kid_value in proptest::option::of(prop_oneof![
                Just(Value::from(kid())),
                any::<String>().prop_map(Value::from),
                Just(Value::Null),
            ]),
            crit in proptest::option::of(prop_oneof![Just(json!(["b64"])), Just(json!([]))]),
            extra in proptest::option::of(("x-[a-z]{1,4}", any::<String>())),
        ) {
            let mut header = serde_json::Map::new();
            if let Some(alg) = &alg {
                header.insert("alg".into(), alg.clone());
            }
            if let Some(kid) = &kid_value {
                header.insert("kid".into(), kid.clone());
            }
            if let Some(crit) = &crit {
                header.insert("crit".into(), crit.clone());
            }
            if let Some((name, value)) = extra {
                header.entry(name).or_insert(Value::from(value));
            }
            let token = signed_with_header(Value::Object(header), &claims());
            let ours = alg.as_ref().and_then(Value::as_str) == Some(JWT_ALG)
                && kid_value.as_ref().and_then(Value::as_str) == Some(kid().as_str())
                && crit.is_none();
            prop_assert_eq!(verify(&token, &keys(), NOW).is_ok(), ours);
            let alg_readable = alg.as_ref().is_none_or(|alg| alg.is_string());
            if let (Some(Value::String(kid)), true) = (&kid_value, alg_readable) {
                prop_assert_eq!(peek_kid(&token), Ok(kid.clone()));
            } else {
                prop_assert_eq!(peek_kid(&token), Err(JwtError::Malformed));
            }
        }
    }
}
