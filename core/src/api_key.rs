//! The text form of API keys, after GitHub's tokens: a prefix naming the kind, 192 random bits
//! in base62, and a CRC32 checksum, e.g. `1ck_000A7dl5PEW67zZCpFU9uKaHnGgOvQKAR0rnzjB`.
//!
//! The prefix lets secret scanners and people recognise a leaked key; the checksum lets the
//! edge and the origin refuse a mistyped or made-up key without a database lookup. The
//! checksum is not a secret and proves nothing about who made a key: only the origin's stored
//! hash of the whole key does.
//!
//! Generating the random secret is the origin's job (the core has no randomness); this module
//! only formats and parses.

/// The kind of principal a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A user's personal API key.
    User,
    /// An agent's key.
    Agent,
}

impl KeyKind {
    const ALL: [Self; 2] = [Self::User, Self::Agent];

    /// The four characters every key of this kind starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::User => "1ck_",
            Self::Agent => "ocv_",
        }
    }
}

/// Random bytes in a key: 192 bits.
pub const KEY_SECRET_BYTES: usize = 24;

/// Length of every key: prefix, body, checksum.
pub const KEY_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

const PREFIX_LEN: usize = 4;
/// 62^33 > 2^192 > 62^32: 33 digits hold any secret.
const BODY_LEN: usize = 33;
/// 62^6 > 2^32: 6 digits hold any CRC32.
const CHECKSUM_LEN: usize = 6;
/// Prefix plus 12 body characters. The body's first digit carries under 2 bits (a 192-bit
/// number fills 33 digits only barely), so this reveals about 67 of the 192 bits: enough to
/// find the one candidate row, leaving about 125 secret bits for the hash to check.
const LOOKUP_PREFIX_LEN: usize = PREFIX_LEN + 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The body of the largest secret (24 bytes of `0xFF`), the largest body a key can have: 33
/// base62 digits reach past 2^192. The digits are in ASCII order, so comparing bodies as text
/// compares them as numbers.
const MAX_BODY: &[u8; BODY_LEN] = b"2lFA6LboL2xx0ldQH2K1TdSrwuqMMiME3";

/// Why a text is not an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("an API key is 43 characters long")]
    WrongLength,
    #[error("the API key has an unknown prefix")]
    UnknownPrefix,
    #[error("an API key holds only letters and digits after its prefix")]
    BadCharacter,
    #[error("the API key's checksum does not match; it was mistyped or made up")]
    BadChecksum,
    /// The body is above 2^192 - 1: no key was ever formatted so, but anyone can compute the
    /// checksum that goes with it.
    #[error("the API key holds more than a key's 192 bits; it was made up")]
    OutOfRange,
}

/// A key whose format and checksum are right. It holds only the public part: the caller
/// keeps the full text to compare against the stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub kind: KeyKind,
    /// The first 16 characters (prefix and 12 body characters): stored and indexed to find
    /// the candidate row, and shown to users in key listings.
    pub lookup_prefix: String,
}

/// Formats a key: prefix, the secret as 33 base62 digits (left-padded with `0`), and the
/// CRC32 (IEEE) of prefix and body as 6 base62 digits. Always [`KEY_LEN`] (43) characters.
pub fn format_key(kind: KeyKind, secret: &[u8; KEY_SECRET_BYTES]) -> String {
    let prefix = kind.prefix().as_bytes();
    let body = encode_secret(secret);
    let checksum = encode_checksum(crc32(&[prefix, &body]));
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(kind.prefix());
    // Digits are ASCII, so each byte is one char.
    key.extend(body.iter().chain(&checksum).map(|&digit| char::from(digit)));
    key
}

/// Checks a key's length, prefix, characters, checksum and range, in that order: what parses
/// is exactly what [`format_key`] makes, one text per secret.
///
/// Works on bytes, so text of the right byte length with multi-byte characters is refused
/// without slicing inside a character; allocates only the 16-byte lookup prefix.
pub fn parse_key(text: &str) -> Result<ParsedKey, KeyFormatError> {
    let bytes = text.as_bytes();
    if bytes.len() != KEY_LEN {
        return Err(KeyFormatError::WrongLength);
    }
    let (prefix, rest) = bytes
        .split_at_checked(PREFIX_LEN)
        .ok_or(KeyFormatError::WrongLength)?;
    let kind = KeyKind::ALL
        .into_iter()
        .find(|kind| kind.prefix().as_bytes() == prefix)
        .ok_or(KeyFormatError::UnknownPrefix)?;
    let (body, checksum) = rest
        .split_at_checked(BODY_LEN)
        .ok_or(KeyFormatError::WrongLength)?;
    if !rest.iter().all(u8::is_ascii_alphanumeric) {
        return Err(KeyFormatError::BadCharacter);
    }
    let given = decode_checksum(checksum).ok_or(KeyFormatError::BadCharacter)?;
    if given != u64::from(crc32(&[prefix, body])) {
        return Err(KeyFormatError::BadChecksum);
    }
    // After the checksum, so that a mistyped real key is still told so.
    if body > MAX_BODY.as_slice() {
        return Err(KeyFormatError::OutOfRange);
    }
    // All ASCII by now, so byte 16 is a char boundary; `get` keeps this panic-free anyway.
    let lookup_prefix = text
        .get(..LOOKUP_PREFIX_LEN)
        .ok_or(KeyFormatError::BadCharacter)?
        .to_owned();
    Ok(ParsedKey {
        kind,
        lookup_prefix,
    })
}

/// The secret as a big-endian number in base62, most significant digit first, by repeated
/// division of the byte string by 62. Exactly 33 rounds, which also pads with `0`.
fn encode_secret(secret: &[u8; KEY_SECRET_BYTES]) -> [u8; BODY_LEN] {
    let mut number = *secret;
    let mut digits = [b'0'; BODY_LEN];
    for digit in digits.iter_mut().rev() {
        let mut remainder = 0u32;
        for byte in &mut number {
            let accumulator = (remainder << 8) | u32::from(*byte);
            // remainder < 62, so accumulator < 62 * 256 and the quotient fits a byte.
            *byte = (accumulator / 62) as u8;
            remainder = accumulator % 62;
        }
        *digit = base62_digit(remainder);
    }
    digits
}

fn encode_checksum(mut crc: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = base62_digit(crc % 62);
        crc /= 62;
    }
    digits
}

fn base62_digit(value: u32) -> u8 {
    // Callers pass a remainder mod 62, so the fallback is never taken; it keeps this
    // function free of a panic path all the same.
    BASE62.get(value as usize).copied().unwrap_or(b'0')
}

fn base62_value(digit: u8) -> Option<u64> {
    let value = match digit {
        b'0'..=b'9' => digit - b'0',
        b'A'..=b'Z' => digit - b'A' + 10,
        b'a'..=b'z' => digit - b'a' + 36,
        _ => return None,
    };
    Some(u64::from(value))
}

/// The checksum digits as a number. A u64, because six digits go past `u32::MAX`; such a
/// value simply matches no CRC.
fn decode_checksum(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| {
        Some(value * 62 + base62_value(digit)?)
    })
}

/// CRC-32/ISO-HDLC (the IEEE one of zlib and PNG) over the concatenated parts, bit by bit:
/// a key is 39 bytes, too few to be worth a table.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &byte in parts.iter().flat_map(|part| part.iter()) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The SHA-256 of a key's text: how a cache keyed by keys holds them without the keys
/// themselves (the edge's MCP token cache).
pub fn key_digest(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(seed: u8) -> [u8; KEY_SECRET_BYTES] {
        std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7))
    }

    /// The inverse of `encode_secret`, to show the body is the secret and nothing else.
    fn decode_body(body: &str) -> Vec<u8> {
        let mut number = [0u8; KEY_SECRET_BYTES + 1];
        for digit in body.bytes() {
            let mut carry = base62_value(digit).unwrap() as u32;
            for byte in number.iter_mut().rev() {
                let accumulator = u32::from(*byte) * 62 + carry;
                *byte = accumulator as u8;
                carry = accumulator >> 8;
            }
            assert_eq!(carry, 0);
        }
        assert_eq!(number[0], 0, "the body is larger than 192 bits");
        number[1..].to_vec()
    }

    #[test]
    fn the_checksum_is_the_standard_crc32() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
    }

    #[test]
    fn keys_match_the_stored_test_vectors() {
        // Computed independently with Python's int and zlib.crc32.
        let counting: [u8; KEY_SECRET_BYTES] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            format_key(KeyKind::User, &counting),
            "1ck_000A7dl5PEW67zZCpFU9uKaHnGgOvQKAR0rnzjB"
        );
        assert_eq!(
            format_key(KeyKind::Agent, &[0xFF; KEY_SECRET_BYTES]),
            "ocv_2lFA6LboL2xx0ldQH2K1TdSrwuqMMiME326JWUh"
        );
        assert_eq!(
            format_key(KeyKind::User, &[0; KEY_SECRET_BYTES]),
            "1ck_0000000000000000000000000000000003l1u2q"
        );
    }

    #[test]
    fn a_formatted_key_parses_back_with_its_kind_and_lookup_prefix() {
        for kind in KeyKind::ALL {
            for seed in 0..50 {
                let key = format_key(kind, &secret(seed));
                assert_eq!(key.len(), KEY_LEN);
                assert_eq!(key.len(), 43);
                assert!(key.starts_with(kind.prefix()));
                let parsed = parse_key(&key).unwrap();
                assert_eq!(parsed.kind, kind);
                assert_eq!(parsed.lookup_prefix, key[..16]);
                assert_eq!(decode_body(&key[4..37]), secret(seed));
            }
        }
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let mut keys: Vec<_> = (0..=255)
            .map(|seed| format_key(KeyKind::User, &secret(seed)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 256);
        let mut one_bit = [0u8; KEY_SECRET_BYTES];
        one_bit[KEY_SECRET_BYTES - 1] = 1;
        assert_ne!(
            format_key(KeyKind::Agent, &one_bit),
            format_key(KeyKind::Agent, &[0; KEY_SECRET_BYTES])
        );
    }

    #[test]
    fn the_largest_body_is_that_of_the_largest_secret() {
        assert_eq!(&encode_secret(&[0xFF; KEY_SECRET_BYTES]), MAX_BODY);
    }

    #[test]
    fn a_made_up_key_over_192_bits_is_refused_even_with_its_checksum_right() {
        // Found by the property suite: the checksum is public, so a body no secret formats to
        // could be given a matching one and parsed as a key.
        let with_checksum = |body: &[u8]| {
            let checksum = encode_checksum(crc32(&[b"ocv_", body]));
            format!(
                "ocv_{}{}",
                std::str::from_utf8(body).unwrap(),
                std::str::from_utf8(&checksum).unwrap()
            )
        };
        assert!(parse_key(&with_checksum(MAX_BODY)).is_ok());
        let mut just_over = *MAX_BODY;
        just_over[BODY_LEN - 1] += 1;
        assert_eq!(
            parse_key(&with_checksum(&just_over)),
            Err(KeyFormatError::OutOfRange)
        );
        assert_eq!(
            parse_key(&with_checksum(&[b'z'; BODY_LEN])),
            Err(KeyFormatError::OutOfRange)
        );
    }

    #[test]
    fn every_single_character_substitution_is_detected() {
        let replacements: Vec<char> = BASE62
            .iter()
            .map(|&b| char::from(b))
            .chain(['_', '-', ' ', '.', '\0'])
            .collect();
        for kind in KeyKind::ALL {
            let key = format_key(kind, &secret(3));
            for position in 0..KEY_LEN {
                for &replacement in &replacements {
                    let mut changed: Vec<char> = key.chars().collect();
                    if changed[position] == replacement {
                        continue;
                    }
                    changed[position] = replacement;
                    let changed: String = changed.into_iter().collect();
                    assert!(parse_key(&changed).is_err(), "{changed} was accepted");
                }
            }
        }
    }

    #[test]
    fn a_user_key_body_under_the_agent_prefix_fails_the_checksum() {
        let key = format_key(KeyKind::User, &secret(5));
        let swapped = format!("{}{}", KeyKind::Agent.prefix(), &key[4..]);
        assert_eq!(parse_key(&swapped), Err(KeyFormatError::BadChecksum));
    }

    #[test]
    fn each_kind_of_malformation_gets_its_own_error() {
        let key = format_key(KeyKind::Agent, &secret(9));
        assert_eq!(parse_key(""), Err(KeyFormatError::WrongLength));
        assert_eq!(parse_key(&key[..42]), Err(KeyFormatError::WrongLength));
        assert_eq!(
            parse_key(&format!("{key}0")),
            Err(KeyFormatError::WrongLength)
        );
        assert_eq!(
            parse_key(&format!("ghp_{}", &key[4..])),
            Err(KeyFormatError::UnknownPrefix)
        );
        assert_eq!(
            parse_key(&format!("OCV_{}", &key[4..])),
            Err(KeyFormatError::UnknownPrefix)
        );
        assert_eq!(
            parse_key(&format!("{}-{}", &key[..20], &key[21..])),
            Err(KeyFormatError::BadCharacter)
        );
        // Six digits can exceed u32::MAX; that matches no CRC rather than wrapping onto one.
        assert_eq!(
            parse_key(&format!("{}zzzzzz", &key[..37])),
            Err(KeyFormatError::BadChecksum)
        );
    }

    #[test]
    fn multi_byte_text_of_the_right_byte_length_is_refused_without_panicking() {
        let key = format_key(KeyKind::User, &secret(1));
        let cases = [
            // 4 + 19 * 2 + 1 = 43 bytes.
            format!("1ck_{}a", "é".repeat(19)),
            // A 3-byte char across the prefix boundary and one across byte 16.
            format!("1c€{}", &key[5..]),
            format!("{}€{}", &key[..15], &key[18..]),
            // A 4-byte char at the very end.
            format!("{}😀", &key[..39]),
            "é".repeat(21) + "a",
        ];
        for case in cases {
            assert_eq!(case.len(), KEY_LEN, "{case}");
            assert!(parse_key(&case).is_err(), "{case}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser() {
        let pool: Vec<char> = "01ck_ocv_azAZ09-é€😀\u{0}\u{7f} .".chars().collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            // xorshift64: deterministic, so a failure reproduces.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let key = format_key(KeyKind::Agent, &secret(2));
        for _ in 0..20_000 {
            let mut text = String::new();
            // Mostly near the right byte length, where the parser does the most work.
            let target = 30 + (next() % 20) as usize;
            while text.len() < target {
                text.push(pool[(next() % pool.len() as u64) as usize]);
            }
            let _ = parse_key(&text);
            // And mutations of a real key, replacing a random span with random chars.
            let start = (next() % KEY_LEN as u64) as usize;
            let mut mutated = key[..start].to_owned();
            mutated.push(pool[(next() % pool.len() as u64) as usize]);
            mutated.push_str(&key[(start + 1).min(KEY_LEN)..]);
            let _ = parse_key(&mutated);
        }
    }

    #[test]
    fn the_debug_form_shows_only_the_lookup_prefix() {
        let key = format_key(KeyKind::User, &secret(4));
        let text = format!("{:?}", parse_key(&key).unwrap());
        assert!(text.contains(&key[..16]));
        assert!(!text.contains(&key[16..]));
    }
}

/// Property tests: the text form of a key and its secret are one-to-one.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    /// The body's number, when it fits the 192 bits of a secret; `None` above that. Unlike
    /// the unit tests' `decode_body`, never panics, so it can take any body.
    fn body_secret(body: &[u8]) -> Option<[u8; KEY_SECRET_BYTES]> {
        let mut number = [0u8; KEY_SECRET_BYTES + 1];
        for &digit in body {
            let mut carry = u32::try_from(base62_value(digit)?).ok()?;
            for byte in number.iter_mut().rev() {
                let accumulator = u32::from(*byte) * 62 + carry;
                *byte = (accumulator & 0xFF) as u8;
                carry = accumulator >> 8;
            }
        }
        let (overflow, secret) = number.split_first()?;
        (*overflow == 0).then(|| secret.try_into().ok()).flatten()
    }

    /// A key with any 33 base62 digits as its body and the checksum that goes with them.
    fn checksummed(kind: KeyKind, body: &str) -> String {
        let prefix = kind.prefix();
        let checksum = encode_checksum(crc32(&[prefix.as_bytes(), body.as_bytes()]));
        format!("{prefix}{body}{}", String::from_utf8_lossy(&checksum))
    }

    fn kind() -> impl Strategy<Value = KeyKind> {
        select(KeyKind::ALL.to_vec())
    }

    /// What parses is exactly what `format_key` makes: the property every test below checks.
    fn assert_issued(text: &str, parsed: &ParsedKey) -> Result<(), TestCaseError> {
        prop_assert_eq!(text.len(), KEY_LEN);
        prop_assert!(text.starts_with(parsed.kind.prefix()));
        prop_assert_eq!(parsed.lookup_prefix.as_str(), &text[..LOOKUP_PREFIX_LEN]);
        let body = &text.as_bytes()[PREFIX_LEN..PREFIX_LEN + BODY_LEN];
        let secret = body_secret(body);
        prop_assert!(
            secret.is_some(),
            "{} parsed with a body over 192 bits",
            text
        );
        if let Some(secret) = secret {
            prop_assert_eq!(format_key(parsed.kind, &secret), text);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn a_formatted_key_parses_back_to_its_kind_prefix_and_secret(
            kind in kind(),
            secret in any::<[u8; KEY_SECRET_BYTES]>(),
        ) {
            let key = format_key(kind, &secret);
            prop_assert!(key[PREFIX_LEN..].bytes().all(|b| b.is_ascii_alphanumeric()));
            let parsed = parse_key(&key);
            prop_assert_eq!(parsed.as_ref().map(|parsed| parsed.kind), Ok(kind));
            if let Ok(parsed) = parsed {
                assert_issued(&key, &parsed)?;
            }
            let body = &key.as_bytes()[PREFIX_LEN..PREFIX_LEN + BODY_LEN];
            prop_assert_eq!(body_secret(body), Some(secret));
        }

        // Made-up keys with a correct checksum: the CRC is public, so only the body's range
        // tells them from issued ones.
        #[test]
        fn a_key_with_a_right_checksum_parses_only_if_a_secret_formats_to_it(
            kind in kind(),
            body in "[0-9A-Za-z]{33}",
        ) {
            let key = checksummed(kind, &body);
            match parse_key(&key) {
                Ok(parsed) => assert_issued(&key, &parsed)?,
                Err(_) => prop_assert!(body_secret(body.as_bytes()).is_none(), "{} refused", key),
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_only_issued_keys_parse(
            text in prop_oneof![
                crate::any_text(),
                "(1ck_|ocv_)[0-9A-Za-z_\\-é]{30,40}",
            ],
        ) {
            if let Ok(parsed) = parse_key(&text) {
                assert_issued(&text, &parsed)?;
            }
        }
    }
}
