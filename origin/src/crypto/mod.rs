//! Key handling of the origin. Every key that matters stays inside the HSM, and each kind is
//! reached through a trait of its own, so a network HSM or a cloud KMS slots in by
//! implementing them without touching the services:
//!
//! - [`KeyWrapper`]: seals and opens data keys under the key-encryption key (KEK);
//! - [`TokenSigner`]: signs access tokens with an Ed25519 key;
//! - [`AuditMac`]: the audit chain's HMAC;
//! - [`KekAdmin`]: KEK rotation (`oxvault-origin rotate-kek`): create a newer KEK, stop old
//!   ones from encrypting, destroy them once nothing is wrapped under them any more.
//!
//! [`pkcs11::Pkcs11Hsm`] implements all four. Services call [`Keyring`] (async, bounded),
//! which runs the first three (blocking) on tokio's blocking pool; only the
//! KEK rotation ([`crate::service::kek_rotation`]) holds a [`KekAdmin`].

mod data_key;
mod dek_cache;
pub mod envelope;
mod keyring;
pub mod pkcs11;
#[cfg(test)]
pub(crate) mod testing;

/// A data key's bytes, in and out: for tests of [`KeyWrapper`] implementations against a real
/// HSM (`tests/softhsm.rs`), behind the `hazmat` feature. Nothing that serves requests needs
/// them outside this module.
#[cfg(feature = "hazmat")]
pub mod hazmat {
    use super::DataKey;
    use super::data_key::DATA_KEY_LEN;

    /// The key made of `bytes`.
    pub fn data_key(bytes: [u8; DATA_KEY_LEN]) -> DataKey {
        DataKey::from_bytes(bytes)
    }

    /// The bytes of `key`.
    pub fn bytes(key: &DataKey) -> &[u8; DATA_KEY_LEN] {
        key.expose()
    }
}

#[cfg(test)]
use data_key::DATA_KEY_LEN;
pub use data_key::{DataKey, WrappedKey};
pub use dek_cache::DekCacheSettings;
pub use keyring::{HSM_CALL_TIMEOUT, Keyring};
pub use pkcs11::Pkcs11Hsm;

/// What can go wrong when wrapping or unwrapping a data key.
///
/// Deliberately coarse: callers decide between "try again later" (503) and "this ciphertext
/// is not ours" (a generic failure), and nothing in here describes key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The HSM cannot be used right now (module missing, token absent, login refused, device
    /// error). Nothing was wrapped or unwrapped; the operation may be retried later.
    #[error("the HSM is unavailable")]
    Unavailable,
    /// The wrapped key failed authentication: it was altered, or it belongs to another place.
    #[error("the wrapped key did not authenticate")]
    Integrity,
    /// The HSM answered but holds no KEK with the id the wrapped key names: the database was
    /// restored against another token, or a KEK was destroyed while keys were still wrapped
    /// under it. Nothing opens until the right token is back; the caller gets a 503.
    #[error("the HSM holds no key-encryption key with the id the wrapped key names")]
    KekMissing,
}

impl CryptoError {
    /// A fixed name for the metrics' `error` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Integrity => "integrity",
            Self::KekMissing => "kek_missing",
        }
    }
}

/// Wraps and unwraps data keys under a key-encryption key that stays inside the HSM.
///
/// Implementations block (PKCS#11 calls are synchronous and may take milliseconds on a
/// network HSM), so they are only ever called through [`Keyring`], which moves them off the
/// async executor.
pub trait KeyWrapper: Send + Sync + 'static {
    /// Seals `key` under the KEK, binding `aad` (the place the key belongs to) into the tag.
    fn wrap(&self, key: &DataKey, aad: &[u8]) -> Result<WrappedKey, CryptoError>;

    /// Opens a key sealed by [`KeyWrapper::wrap`] with the same `aad`.
    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, CryptoError>;
}

/// A signature made by the HSM, with the public key that verifies it (so the caller names
/// the right key id even if the key changed between two calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub bytes: [u8; 64],
    pub public_key: [u8; 32],
}

/// Signs access tokens with an Ed25519 key whose private half stays inside the HSM.
pub trait TokenSigner: Send + Sync + 'static {
    /// Signs `message` (a JWT signing input).
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError>;

    /// The public key, for the JWKS and for verifying tokens at the origin.
    fn public_key(&self) -> Result<[u8; 32], CryptoError>;
}

/// Length of an audit MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;

/// Computes the audit trail's MACs with a key that stays inside the HSM (HMAC-SHA256).
///
/// Blocking, like [`KeyWrapper`]: called through [`Keyring::audit_mac`].
pub trait AuditMac: Send + Sync + 'static {
    /// The MAC of `message`.
    fn mac(&self, message: &[u8]) -> Result<[u8; MAC_LEN], CryptoError>;
}

/// A KEK id as lowercase hex, for logs and reports (ids name keys; they are not secret).
pub fn kek_id_hex(id: &[u8]) -> String {
    id.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One KEK in the HSM, as KEK rotation sees it. Ids are not secret (they name keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekInfo {
    /// The KEK's id (`CKA_ID` for PKCS#11), as stored beside every wrapped data key.
    pub id: Vec<u8>,
    /// Whether new data keys are wrapped under it.
    pub current: bool,
    /// Whether it may still wrap (a fenced KEK only unwraps).
    pub can_encrypt: bool,
}

/// Why a KEK administration call did nothing.
#[derive(Debug, thiserror::Error)]
pub enum KekAdminError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The call would have broken the keyring (e.g. destroying the current KEK).
    #[error("refused: {0}")]
    Refused(String),
}

/// Manages the key-encryption keys: what `rotate-kek` needs beyond wrapping and unwrapping.
///
/// Blocking, like [`KeyWrapper`]: run it off the async executor.
pub trait KekAdmin: Send + Sync + 'static {
    /// Creates a KEK that becomes the current one (for this process at once; for other
    /// processes sharing the HSM on their next listing). Returns its id.
    fn create_kek(&self) -> Result<Vec<u8>, KekAdminError>;

    /// Every usable KEK, oldest first, with the current one marked.
    fn list_keks(&self) -> Result<Vec<KekInfo>, KekAdminError>;

    /// Stops the KEK `id` from wrapping new keys; it still unwraps. Refuses the current KEK.
    fn fence_kek(&self, id: &[u8]) -> Result<(), KekAdminError>;

    /// Destroys the KEK `id`: every key wrapped under it is lost. Refuses the current KEK.
    fn destroy_kek(&self, id: &[u8]) -> Result<(), KekAdminError>;
}
