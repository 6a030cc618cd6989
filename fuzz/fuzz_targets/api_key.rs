//! Fuzzes the text form of API keys (`oxvault_core::api_key`): any text, no panic, and what
//! parses is exactly what `format_key` makes of some secret; any secret formats to a key that
//! parses back; any body given its right checksum parses exactly when it holds 192 bits.
//!
//! The checksum and the base62 body are computed here independently of the core, so a key
//! with a correct checksum is made from every input, not only when the fuzzer guesses a CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvault_core::api_key::{
    KEY_LEN, KEY_SECRET_BYTES, KeyFormatError, KeyKind, format_key, parse_key,
};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX_LEN: usize = 4;
const BODY_LEN: usize = 33;

fn kind(selector: u8) -> KeyKind {
    if selector & 1 == 0 {
        KeyKind::User
    } else {
        KeyKind::Agent
    }
}

/// CRC-32/ISO-HDLC, as zlib computes it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The body's number as 24 bytes, or `None` when it needs more than 192 bits.
fn body_secret(body: &[u8]) -> Option<[u8; KEY_SECRET_BYTES]> {
    let mut number = [0u8; KEY_SECRET_BYTES + 1];
    for &digit in body {
        let mut carry = BASE62.iter().position(|&d| d == digit)? as u32;
        for byte in number.iter_mut().rev() {
            let accumulator = u32::from(*byte) * 62 + carry;
            *byte = accumulator as u8;
            carry = accumulator >> 8;
        }
    }
    (number[0] == 0)
        .then(|| number[1..].try_into().ok())
        .flatten()
}

/// Whatever parses is a key some secret formats to, with its lookup prefix.
fn check_text(text: &str) {
    let Ok(parsed) = parse_key(text) else { return };
    assert_eq!(text.len(), KEY_LEN);
    assert!(text.starts_with(parsed.kind.prefix()));
    assert_eq!(parsed.lookup_prefix, text[..16]);
    let secret = body_secret(&text.as_bytes()[PREFIX_LEN..PREFIX_LEN + BODY_LEN])
        .unwrap_or_else(|| panic!("{text} parsed with a body over 192 bits"));
    assert_eq!(format_key(parsed.kind, &secret), text);
}

fn check_secret(kind: KeyKind, secret: &[u8; KEY_SECRET_BYTES]) {
    let key = format_key(kind, secret);
    assert_eq!(key.len(), KEY_LEN);
    let parsed = parse_key(&key).unwrap_or_else(|err| panic!("{key}: {err}"));
    assert_eq!(parsed.kind, kind);
    assert_eq!(
        body_secret(&key.as_bytes()[PREFIX_LEN..PREFIX_LEN + BODY_LEN]).as_ref(),
        Some(secret)
    );
}

/// Any 33 digits with the checksum that goes with them.
fn check_checksummed(kind: KeyKind, digits: &[u8]) {
    let body: Vec<u8> = digits
        .iter()
        .map(|&b| BASE62[usize::from(b) % 62])
        .collect();
    let mut key = kind.prefix().as_bytes().to_vec();
    key.extend_from_slice(&body);
    let mut crc = crc32(&key);
    let mut checksum = [b'0'; 6];
    for digit in checksum.iter_mut().rev() {
        *digit = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    key.extend_from_slice(&checksum);
    let key = String::from_utf8(key).unwrap_or_default();
    match body_secret(&body) {
        Some(secret) => {
            assert_eq!(parse_key(&key).map(|parsed| parsed.kind), Ok(kind), "{key}");
            assert_eq!(format_key(kind, &secret), key);
        }
        None => assert_eq!(parse_key(&key), Err(KeyFormatError::OutOfRange), "{key}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    if let Some((&selector, rest)) = data.split_first() {
        if let Some(secret) = rest.first_chunk::<KEY_SECRET_BYTES>() {
            check_secret(kind(selector), secret);
        }
        if let Some(digits) = rest.first_chunk::<BODY_LEN>() {
            check_checksummed(kind(selector), digits);
        }
    }
});
