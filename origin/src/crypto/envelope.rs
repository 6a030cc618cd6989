//! Envelope encryption of secret values: a fresh AES-256-GCM data key (DEK) per secret
//! version, wrapped by the KEK inside the HSM; only the wrapped DEK is ever stored.
//!
//! Both layers are bound to the value's place — org, vault, path, version — through their
//! additional authenticated data. A ciphertext or wrapped DEK copied to another place fails to
//! open, with the same error as any tampering.
//!
//! Stored format (one self-describing blob; versions 1 and 2 share the layout):
//!
//! ```text
//! format (1) | kek_id_len (1) | kek_id | wrapped_len (2, BE) | wrapped DEK | nonce (12) | ciphertext || tag (16)
//! ```
//!
//! With `place = org (16) | vault (16) | path_len (2, BE) | path | version (4, BE)`:
//!
//! - wrap AAD (both versions): `"oxvault/v1" | place`;
//! - value AAD, version 1: `"oxvault/v1" | place | kek_id_len (1) | kek_id`;
//! - value AAD, version 2: `"oxvault/v2" | place`.
//!
//! Version 2 is what [`seal`] writes. Its value layer does not depend on the KEK, so KEK
//! rotation ([`rewrap`]) rewrites the header alone — new KEK id, new wrapped DEK — and copies
//! the nonce and ciphertext bytes unchanged. A version-1 value is bound to the KEK that first
//! wrapped its DEK, so moving it to another KEK means sealing it again (fresh DEK and nonce);
//! [`rewrap`] does that and says so. [`open`] reads both versions.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use oxvault_core::ids::{OrgId, VaultId};
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::{CryptoError, DataKey, Keyring, WrappedKey};

/// The format byte of the first format, whose value AAD names the KEK (read, no longer written).
pub const FORMAT_V1: u8 = 0x01;
/// The format byte of what [`seal`] writes.
pub const FORMAT_V2: u8 = 0x02;
const NONCE_LEN: usize = 12;
/// Domain of the wrap AAD (both formats) and of the version-1 value AAD.
const AAD_DOMAIN: &[u8] = b"oxvault/v1";
/// Domain of the version-2 value AAD.
const AAD_DOMAIN_V2: &[u8] = b"oxvault/v2";

/// Where a secret value lives: bound into both layers' AAD.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub org: OrgId,
    pub vault: VaultId,
    pub path: &'a str,
    pub version: i32,
}

impl Place<'_> {
    /// The AAD of the DEK wrap: the place alone.
    fn wrap_aad(&self) -> Vec<u8> {
        self.aad(AAD_DOMAIN)
    }

    /// `domain | place`.
    fn aad(&self, domain: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(domain.len() + 40 + self.path.len());
        aad.extend_from_slice(domain);
        aad.extend_from_slice(self.org.as_uuid().as_bytes());
        aad.extend_from_slice(self.vault.as_uuid().as_bytes());
        // Paths are at most 512 bytes (SecretPath), so the length always fits.
        let path_len = u16::try_from(self.path.len()).unwrap_or(u16::MAX);
        aad.extend_from_slice(&path_len.to_be_bytes());
        aad.extend_from_slice(self.path.as_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }

    /// The AAD of a version-1 value: the place and the KEK that wrapped its DEK.
    fn value_aad_v1(&self, kek_id: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut aad = self.wrap_aad();
        aad.push(u8::try_from(kek_id.len()).map_err(|_| CryptoError::Integrity)?);
        aad.extend_from_slice(kek_id);
        Ok(aad)
    }

    /// The AAD of a version-2 value: the place alone (under its own domain).
    fn value_aad_v2(&self) -> Vec<u8> {
        self.aad(AAD_DOMAIN_V2)
    }

    /// The value AAD of a blob's parts, by their format.
    fn value_aad(&self, parts: &Parts) -> Result<Vec<u8>, CryptoError> {
        match parts.format {
            FORMAT_V1 => self.value_aad_v1(&parts.wrapped.kek_id),
            FORMAT_V2 => Ok(self.value_aad_v2()),
            _ => Err(CryptoError::Integrity),
        }
    }
}

/// The parts of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parts {
    /// [`FORMAT_V1`] or [`FORMAT_V2`].
    format: u8,
    wrapped: WrappedKey,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

fn encode(parts: &Parts) -> Result<Vec<u8>, CryptoError> {
    let kek_len = u8::try_from(parts.wrapped.kek_id.len()).map_err(|_| CryptoError::Integrity)?;
    let wrapped_len =
        u16::try_from(parts.wrapped.bytes.len()).map_err(|_| CryptoError::Integrity)?;
    let mut blob = Vec::with_capacity(
        4 + parts.wrapped.kek_id.len()
            + parts.wrapped.bytes.len()
            + NONCE_LEN
            + parts.ciphertext.len(),
    );
    blob.push(parts.format);
    blob.push(kek_len);
    blob.extend_from_slice(&parts.wrapped.kek_id);
    blob.extend_from_slice(&wrapped_len.to_be_bytes());
    blob.extend_from_slice(&parts.wrapped.bytes);
    blob.extend_from_slice(&parts.nonce);
    blob.extend_from_slice(&parts.ciphertext);
    Ok(blob)
}

/// Splits a blob; anything malformed is an integrity failure, never a panic.
fn decode(blob: &[u8]) -> Result<Parts, CryptoError> {
    let bad = || CryptoError::Integrity;
    let (&format, rest) = blob.split_first().ok_or_else(bad)?;
    if format != FORMAT_V1 && format != FORMAT_V2 {
        return Err(bad());
    }
    let (&kek_len, rest) = rest.split_first().ok_or_else(bad)?;
    let (kek_id, rest) = rest
        .split_at_checked(usize::from(kek_len))
        .ok_or_else(bad)?;
    let (len, rest) = rest.split_at_checked(2).ok_or_else(bad)?;
    let wrapped_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (wrapped, rest) = rest.split_at_checked(wrapped_len).ok_or_else(bad)?;
    let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN).ok_or_else(bad)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad())?;
    Ok(Parts {
        format,
        wrapped: WrappedKey {
            kek_id: kek_id.to_vec(),
            bytes: wrapped.to_vec(),
        },
        nonce,
        ciphertext: ciphertext.to_vec(),
    })
}

fn cipher(key: &DataKey) -> Result<Aes256Gcm, CryptoError> {
    Aes256Gcm::new_from_slice(key.expose()).map_err(|_| CryptoError::Integrity)
}

fn encrypt_value(
    key: &DataKey,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    cipher(key)?
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Integrity)
}

fn decrypt_value(
    key: &DataKey,
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    cipher(key)?
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Integrity)
}

/// A value sealed by [`seal`]: the blob to store, and the id of the KEK that wraps its data
/// key (stored beside the blob, so KEK rotation can find what still needs re-wrapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub blob: Vec<u8>,
    pub kek_id: Vec<u8>,
}

/// Seals `plaintext` for `place` under a fresh DEK wrapped by the HSM (format 2).
pub async fn seal(
    keyring: &Keyring,
    place: Place<'_>,
    plaintext: &[u8],
) -> Result<Sealed, CryptoError> {
    let key = DataKey::generate().map_err(|_| CryptoError::Unavailable)?;
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|_| CryptoError::Unavailable)?;
    let wrapped = keyring.wrap(key.clone(), place.wrap_aad()).await?;
    let ciphertext = encrypt_value(&key, &nonce, plaintext, &place.value_aad_v2())?;
    let kek_id = wrapped.kek_id.clone();
    let blob = encode(&Parts {
        format: FORMAT_V2,
        wrapped,
        nonce,
        ciphertext,
    })?;
    Ok(Sealed { blob, kek_id })
}

/// Opens a blob written by [`seal`] (either format) for the same `place`.
pub async fn open(
    keyring: &Keyring,
    place: Place<'_>,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let parts = decode(blob)?;
    let aad = place.value_aad(&parts)?;
    let key = keyring.unwrap(parts.wrapped, place.wrap_aad()).await?;
    decrypt_value(&key, &parts.nonce, &parts.ciphertext, &aad)
}

/// A blob moved under the keyring's current KEK by [`rewrap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// The new blob (format 2).
    pub blob: Vec<u8>,
    /// The KEK now wrapping its data key.
    pub kek_id: Vec<u8>,
    /// `false`: the header alone was rewritten, the nonce and ciphertext bytes are the old
    /// ones. `true`: the blob was format 1, and its value was sealed again.
    pub resealed: bool,
}

/// Moves a blob's data key under the keyring's current KEK (KEK rotation).
///
/// A format-2 blob keeps its DEK, nonce and ciphertext: the DEK is unwrapped by the KEK the
/// blob names and wrapped again, and never leaves this function. A format-1 blob is opened and
/// sealed again (see the module docs for why). Either way the result opens at `place` only.
pub async fn rewrap(
    keyring: &Keyring,
    place: Place<'_>,
    blob: &[u8],
) -> Result<Rewrapped, CryptoError> {
    let parts = decode(blob)?;
    if parts.format == FORMAT_V1 {
        let plain = open(keyring, place, blob).await?;
        let Sealed { blob, kek_id } = seal(keyring, place, &plain).await?;
        return Ok(Rewrapped {
            kek_id,
            blob,
            resealed: true,
        });
    }
    let key = keyring.unwrap(parts.wrapped, place.wrap_aad()).await?;
    let wrapped = keyring.wrap(key, place.wrap_aad()).await?;
    let kek_id = wrapped.kek_id.clone();
    let blob = encode(&Parts {
        format: FORMAT_V2,
        wrapped,
        nonce: parts.nonce,
        ciphertext: parts.ciphertext,
    })?;
    Ok(Rewrapped {
        blob,
        kek_id,
        resealed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testing::{NoHsm, XorKeks};
    use std::sync::Arc;
    use uuid::Uuid;

    fn place(path: &str, version: i32) -> Place<'_> {
        Place {
            org: OrgId::from_uuid(Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff)),
            vault: VaultId::from_uuid(Uuid::from_u128(0xffee_ddcc_bbaa_9988_7766_5544_3322_1100)),
            path,
            version,
        }
    }

    fn fixed_parts(place: Place<'_>, format: u8) -> Parts {
        let key = DataKey::from_bytes([0x42; 32]);
        let nonce = [0x24; NONCE_LEN];
        let mut parts = Parts {
            format,
            wrapped: WrappedKey {
                kek_id: vec![0xAA; 16],
                bytes: vec![0x55; 60],
            },
            nonce,
            ciphertext: Vec::new(),
        };
        let aad = place.value_aad(&parts).unwrap();
        parts.ciphertext = encrypt_value(&key, &nonce, b"hunter2", &aad).unwrap();
        parts
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks one pinned format: header bytes, ciphertext + tag, and that it opens.
    fn assert_vector(format: u8, ciphertext_hex: &str) {
        let p = place("db/password", 3);
        let blob = encode(&fixed_parts(p, format)).unwrap();
        let hex = hex(&blob);
        let expected_head = format!(
            "{format:02x}10{}003c{}{}",
            "aa".repeat(16),
            "55".repeat(60),
            "24".repeat(12)
        );
        assert!(hex.starts_with(&expected_head), "{hex}");
        assert_eq!(blob.len(), 1 + 1 + 16 + 2 + 60 + 12 + 7 + 16);
        // Ciphertext + tag of "hunter2" under key 0x42.., nonce 0x24.., this place's AAD.
        assert_eq!(&hex[expected_head.len()..], ciphertext_hex);
        let parts = decode(&blob).unwrap();
        let key = DataKey::from_bytes([0x42; 32]);
        let aad = p.value_aad(&parts).unwrap();
        let plain = decrypt_value(&key, &parts.nonce, &parts.ciphertext, &aad).unwrap();
        assert_eq!(plain.as_slice(), b"hunter2");
    }

    /// The v1 format, pinned: a change here breaks every stored secret.
    #[test]
    fn the_v1_format_matches_its_test_vector() {
        assert_vector(FORMAT_V1, VECTOR_V1_CIPHERTEXT);
    }

    /// The v2 format, pinned: a change here breaks every stored secret.
    #[test]
    fn the_v2_format_matches_its_test_vector() {
        assert_vector(FORMAT_V2, VECTOR_V2_CIPHERTEXT);
    }

    /// Both computed independently of this code, with Python `cryptography`'s AESGCM and the
    /// AAD assembled from the layout in the module docs:
    ///
    /// ```python
    /// place = org + vault + len(path).to_bytes(2, "big") + path + (3).to_bytes(4, "big")
    /// v1 = AESGCM(key).encrypt(nonce, b"hunter2", b"oxvault/v1" + place + bytes([16]) + b"\xaa" * 16)
    /// v2 = AESGCM(key).encrypt(nonce, b"hunter2", b"oxvault/v2" + place)
    /// ```
    const VECTOR_V1_CIPHERTEXT: &str = "7de4aa358cb4f40ebd5978e87b5b003f3ea2f4ab96cf0f";
    const VECTOR_V2_CIPHERTEXT: &str = "7de4aa358cb4f4c3b5ad0634645c670ee1d9779fc766fb";

    #[test]
    fn a_value_moved_to_another_place_does_not_open() {
        let original = place("db/password", 3);
        let key = DataKey::from_bytes([0x42; 32]);
        for format in [FORMAT_V1, FORMAT_V2] {
            let parts = fixed_parts(original, format);
            for other in [
                place("db/passwore", 3),
                place("db/password", 4),
                Place {
                    vault: VaultId::from_uuid(Uuid::nil()),
                    ..original
                },
                Place {
                    org: OrgId::from_uuid(Uuid::nil()),
                    ..original
                },
            ] {
                let aad = other.value_aad(&parts).unwrap();
                assert!(matches!(
                    decrypt_value(&key, &parts.nonce, &parts.ciphertext, &aad),
                    Err(CryptoError::Integrity)
                ));
            }
        }
        let v1 = fixed_parts(original, FORMAT_V1);
        let other_kek = original.value_aad_v1(&[0xBB; 16]).unwrap();
        assert!(decrypt_value(&key, &v1.nonce, &v1.ciphertext, &other_kek).is_err());
    }

    #[test]
    fn a_changed_format_byte_does_not_open() {
        let p = place("a", 1);
        let key = DataKey::from_bytes([0x42; 32]);
        for (written, claimed) in [(FORMAT_V1, FORMAT_V2), (FORMAT_V2, FORMAT_V1)] {
            let mut parts = fixed_parts(p, written);
            parts.format = claimed;
            let aad = p.value_aad(&parts).unwrap();
            assert!(decrypt_value(&key, &parts.nonce, &parts.ciphertext, &aad).is_err());
        }
    }

    #[test]
    fn any_flipped_bit_fails_closed() {
        let p = place("a", 1);
        let key = DataKey::from_bytes([0x42; 32]);
        for format in [FORMAT_V1, FORMAT_V2] {
            let parts = fixed_parts(p, format);
            let aad = p.value_aad(&parts).unwrap();
            for i in 0..parts.ciphertext.len() {
                let mut bad = parts.ciphertext.clone();
                bad[i] ^= 0x80;
                assert!(
                    decrypt_value(&key, &parts.nonce, &bad, &aad).is_err(),
                    "byte {i}"
                );
            }
            let mut nonce = parts.nonce;
            nonce[0] ^= 1;
            assert!(decrypt_value(&key, &nonce, &parts.ciphertext, &aad).is_err());
        }
    }

    #[test]
    fn malformed_blobs_are_integrity_failures_not_panics() {
        let blob = encode(&fixed_parts(place("a", 1), FORMAT_V2)).unwrap();
        for len in 0..blob.len() {
            let _ = decode(&blob[..len]);
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x03]).is_err(), "unknown format");
        assert!(decode(&[0x01, 0xFF]).is_err());
        for unknown in [0x00, 0x03, 0xFF] {
            let mut wrong_format = blob.clone();
            wrong_format[0] = unknown;
            assert!(decode(&wrong_format).is_err());
        }
        assert_eq!(
            decode(&blob).unwrap(),
            fixed_parts(place("a", 1), FORMAT_V2)
        );
    }

    fn numbered_keyring() -> (Arc<XorKeks>, Keyring) {
        let keks = Arc::new(XorKeks::new(1));
        let keyring = Keyring::new(keks.clone(), Arc::new(NoHsm), 2);
        (keks, keyring)
    }

    /// The nonce and ciphertext of a blob: everything after the header.
    fn body(blob: &[u8]) -> Vec<u8> {
        let parts = decode(blob).unwrap();
        [parts.nonce.as_slice(), &parts.ciphertext].concat()
    }

    #[tokio::test]
    async fn seal_writes_v2_and_open_reads_it() {
        let (_, keyring) = numbered_keyring();
        let p = place("db/password", 1);
        let blob = seal(&keyring, p, b"s3cret").await.unwrap().blob;
        assert_eq!(blob[0], FORMAT_V2);
        assert_eq!(decode(&blob).unwrap().wrapped.kek_id, vec![1; 16]);
        assert_eq!(
            open(&keyring, p, &blob).await.unwrap().as_slice(),
            b"s3cret"
        );
        assert!(
            open(&keyring, place("db/password", 2), &blob)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn rewrapping_v2_changes_the_header_alone() {
        let (keks, keyring) = numbered_keyring();
        let p = place("db/password", 7);
        let before = seal(&keyring, p, b"s3cret").await.unwrap().blob;
        keks.rotate_to(2);

        let after = rewrap(&keyring, p, &before).await.unwrap();

        assert!(!after.resealed);
        assert_eq!(after.kek_id, vec![2; 16]);
        assert_eq!(decode(&after.blob).unwrap().wrapped.kek_id, vec![2; 16]);
        assert_eq!(after.blob[0], FORMAT_V2);
        assert_eq!(
            body(&after.blob),
            body(&before),
            "nonce and ciphertext unchanged"
        );
        assert!(after.blob.ends_with(&body(&before)));
        assert_ne!(after.blob, before);
        assert_eq!(
            open(&keyring, p, &after.blob).await.unwrap().as_slice(),
            b"s3cret"
        );
        assert!(
            open(&keyring, place("db/password", 8), &after.blob)
                .await
                .is_err()
        );
        assert!(rewrap(&keyring, place("other", 7), &before).await.is_err());
    }

    #[tokio::test]
    async fn rewrapping_v1_seals_the_value_again_as_v2() {
        let (keks, keyring) = numbered_keyring();
        let p = place("legacy", 2);
        // A format-1 blob as the first release wrote it.
        let key = DataKey::generate().unwrap();
        let wrapped = keyring.wrap(key.clone(), p.wrap_aad()).await.unwrap();
        let nonce = [9; NONCE_LEN];
        let aad = p.value_aad_v1(&wrapped.kek_id).unwrap();
        let ciphertext = encrypt_value(&key, &nonce, b"old value", &aad).unwrap();
        let v1 = encode(&Parts {
            format: FORMAT_V1,
            wrapped,
            nonce,
            ciphertext,
        })
        .unwrap();
        assert_eq!(
            open(&keyring, p, &v1).await.unwrap().as_slice(),
            b"old value"
        );
        keks.rotate_to(2);

        let after = rewrap(&keyring, p, &v1).await.unwrap();

        assert!(after.resealed);
        assert_eq!(after.kek_id, vec![2; 16]);
        assert_eq!(after.blob[0], FORMAT_V2);
        assert_eq!(
            open(&keyring, p, &after.blob).await.unwrap().as_slice(),
            b"old value"
        );
    }
}
