//! Envelope encryption of secret values: a fresh AES-256-GCM data key (DEK) per secret
//! version, wrapped by the KEK inside the HSM; only the wrapped DEK is ever stored.
//!
//! Both layers are bound to the value's place — org, vault, path, version — and to the KEK
//! that wrapped the DEK, through their additional authenticated data. A ciphertext or wrapped
//! DEK copied to another place fails to open, with the same error as any tampering.
//!
//! Stored format, version 1 (one self-describing blob):
//!
//! ```text
//! 0x01 | kek_id_len (1) | kek_id | wrapped_len (2, BE) | wrapped DEK | nonce (12) | ciphertext || tag (16)
//! ```
//!
//! The AAD of both layers is
//! `"oxvault/v1" | org (16) | vault (16) | path_len (2, BE) | path | version (4, BE)`,
//! with `| kek_id_len (1) | kek_id` appended for the value layer.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use oxvault_core::ids::{OrgId, VaultId};
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::{CryptoError, DataKey, Keyring, WrappedKey};

/// The format byte of what [`seal`] writes.
pub const FORMAT_V1: u8 = 0x01;
const NONCE_LEN: usize = 12;
const AAD_DOMAIN: &[u8] = b"oxvault/v1";

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
        let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 40 + self.path.len());
        aad.extend_from_slice(AAD_DOMAIN);
        aad.extend_from_slice(self.org.as_uuid().as_bytes());
        aad.extend_from_slice(self.vault.as_uuid().as_bytes());
        // Paths are at most 512 bytes (SecretPath), so the length always fits.
        let path_len = u16::try_from(self.path.len()).unwrap_or(u16::MAX);
        aad.extend_from_slice(&path_len.to_be_bytes());
        aad.extend_from_slice(self.path.as_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }

    /// The AAD of the value: the place and the KEK that wrapped its DEK.
    fn value_aad(&self, kek_id: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut aad = self.wrap_aad();
        aad.push(u8::try_from(kek_id.len()).map_err(|_| CryptoError::Integrity)?);
        aad.extend_from_slice(kek_id);
        Ok(aad)
    }
}

/// The parts of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parts {
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
    blob.push(FORMAT_V1);
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
    if format != FORMAT_V1 {
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

/// Seals `plaintext` for `place` under a fresh DEK wrapped by the HSM.
pub async fn seal(
    keyring: &Keyring,
    place: Place<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = DataKey::generate().map_err(|_| CryptoError::Unavailable)?;
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|_| CryptoError::Unavailable)?;
    let wrapped = keyring.wrap(key.clone(), place.wrap_aad()).await?;
    let ciphertext = encrypt_value(&key, &nonce, plaintext, &place.value_aad(&wrapped.kek_id)?)?;
    encode(&Parts {
        wrapped,
        nonce,
        ciphertext,
    })
}

/// The id of the KEK that wraps a blob's data key (stored beside the blob so KEK rotation
/// can find what still needs re-wrapping).
pub fn kek_id(blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(decode(blob)?.wrapped.kek_id)
}

/// Opens a blob written by [`seal`] for the same `place`.
pub async fn open(
    keyring: &Keyring,
    place: Place<'_>,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let parts = decode(blob)?;
    let aad = place.value_aad(&parts.wrapped.kek_id)?;
    let key = keyring.unwrap(parts.wrapped, place.wrap_aad()).await?;
    decrypt_value(&key, &parts.nonce, &parts.ciphertext, &aad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn place(path: &str, version: i32) -> Place<'_> {
        Place {
            org: OrgId::from_uuid(Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff)),
            vault: VaultId::from_uuid(Uuid::from_u128(0xffee_ddcc_bbaa_9988_7766_5544_3322_1100)),
            path,
            version,
        }
    }

    fn fixed_parts(place: Place<'_>) -> Parts {
        let key = DataKey::from_bytes([0x42; 32]);
        let nonce = [0x24; NONCE_LEN];
        let wrapped = WrappedKey {
            kek_id: vec![0xAA; 16],
            bytes: vec![0x55; 60],
        };
        let ciphertext = encrypt_value(
            &key,
            &nonce,
            b"hunter2",
            &place.value_aad(&wrapped.kek_id).unwrap(),
        )
        .unwrap();
        Parts {
            wrapped,
            nonce,
            ciphertext,
        }
    }

    /// The v1 format, pinned: a change here breaks every stored secret.
    #[test]
    fn the_v1_format_matches_its_test_vector() {
        let p = place("db/password", 3);
        let blob = encode(&fixed_parts(p)).unwrap();
        let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
        let expected_head = format!(
            "0110{}003c{}{}",
            "aa".repeat(16),
            "55".repeat(60),
            "24".repeat(12)
        );
        assert!(hex.starts_with(&expected_head), "{hex}");
        assert_eq!(blob.len(), 1 + 1 + 16 + 2 + 60 + 12 + 7 + 16);
        // Ciphertext + tag of "hunter2" under key 0x42.., nonce 0x24.., this place's AAD.
        assert_eq!(&hex[expected_head.len()..], VECTOR_CIPHERTEXT);
        let parts = decode(&blob).unwrap();
        let key = DataKey::from_bytes([0x42; 32]);
        let plain = decrypt_value(
            &key,
            &parts.nonce,
            &parts.ciphertext,
            &p.value_aad(&parts.wrapped.kek_id).unwrap(),
        )
        .unwrap();
        assert_eq!(plain.as_slice(), b"hunter2");
    }

    /// Computed independently of this code (Python `cryptography`'s AESGCM, with the AAD
    /// assembled from the layout in the module docs).
    const VECTOR_CIPHERTEXT: &str = "7de4aa358cb4f40ebd5978e87b5b003f3ea2f4ab96cf0f";

    #[test]
    fn a_value_moved_to_another_place_does_not_open() {
        let original = place("db/password", 3);
        let parts = fixed_parts(original);
        let key = DataKey::from_bytes([0x42; 32]);
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
            let aad = other.value_aad(&parts.wrapped.kek_id).unwrap();
            assert!(matches!(
                decrypt_value(&key, &parts.nonce, &parts.ciphertext, &aad),
                Err(CryptoError::Integrity)
            ));
        }
        let other_kek = original.value_aad(&[0xBB; 16]).unwrap();
        assert!(decrypt_value(&key, &parts.nonce, &parts.ciphertext, &other_kek).is_err());
    }

    #[test]
    fn any_flipped_bit_fails_closed() {
        let p = place("a", 1);
        let parts = fixed_parts(p);
        let key = DataKey::from_bytes([0x42; 32]);
        let aad = p.value_aad(&parts.wrapped.kek_id).unwrap();
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

    #[test]
    fn malformed_blobs_are_integrity_failures_not_panics() {
        let blob = encode(&fixed_parts(place("a", 1))).unwrap();
        for len in 0..blob.len() {
            let _ = decode(&blob[..len]);
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x02]).is_err(), "unknown format");
        assert!(decode(&[0x01, 0xFF]).is_err());
        let mut wrong_format = blob.clone();
        wrong_format[0] = 0x00;
        assert!(decode(&wrong_format).is_err());
        assert_eq!(decode(&blob).unwrap(), fixed_parts(place("a", 1)));
    }
}
