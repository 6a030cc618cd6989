//! Data keys (the per-secret-version AES-256 keys) and their wrapped form.
//!
//! A [`DataKey`] is plaintext key material: it is zeroized on drop and its `Debug` prints
//! nothing of it. Only the [`WrappedKey`] is ever stored.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;

/// A plaintext AES-256 data key. Never logged, never stored, wiped when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    ///
    /// Fails only when the OS cannot give randomness, in which case no key must be made.
    pub fn generate() -> Result<Self, rand::rand_core::OsError> {
        let mut bytes = [0u8; DATA_KEY_LEN];
        OsRng.try_fill_bytes(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Takes ownership of key bytes (e.g. just unwrapped by the HSM).
    pub(in crate::crypto) fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key bytes, for the cipher that uses them (and the HSM that seals them): nothing
    /// outside this module sees a data key.
    pub(in crate::crypto) fn expose(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key sealed under the KEK: opaque bytes whose layout belongs to the [`KeyWrapper`]
/// that made them, plus the id of the KEK that sealed them (so a rotated KEK can still open
/// older keys).
///
/// [`KeyWrapper`]: super::KeyWrapper
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Identifies the KEK inside the HSM (its `CKA_ID` for PKCS#11).
    pub kek_id: Vec<u8>,
    /// The sealed key.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    // Wrapped keys are not secret, but printing them invites copying them around in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek_id_len", &self.kek_id.len())
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let key = DataKey::from_bytes([0xAB; DATA_KEY_LEN]);
        let printed = format!("{key:?}");
        assert_eq!(printed, "DataKey(<redacted>)");
        assert!(!printed.to_lowercase().contains("ab"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }
}
