//! Stand-ins for the HSM in unit tests, one set for the whole crate, so that the hazardous
//! parts of the crypto API (a data key's bytes, wrapping and unwrapping by hand) stay
//! visible to this module's own code only.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::{
    AuditMac, CryptoError, DATA_KEY_LEN, DataKey, KeyWrapper, MAC_LEN, Signature, TokenSigner,
    WrappedKey,
};

/// Numbered KEKs: wraps by XOR with the current KEK's number (0 leaves the key in clear, so a
/// blob shows its data key) and stores the AAD beside the key, so a wrong place or a KEK newer
/// than the current one fails like the real HSM. Counts its calls.
#[derive(Debug)]
pub(crate) struct XorKeks {
    current: AtomicU8,
    calls: AtomicUsize,
}

impl XorKeks {
    /// KEK number `current` is the one that wraps.
    pub(crate) fn new(current: u8) -> Self {
        Self {
            current: AtomicU8::new(current),
            calls: AtomicUsize::new(0),
        }
    }

    /// Makes KEK `number` the current one (a rotation).
    pub(crate) fn rotate_to(&self, number: u8) {
        self.current.store(number, Ordering::SeqCst);
    }

    /// Wraps and unwraps so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl KeyWrapper for XorKeks {
    fn wrap(&self, key: &DataKey, aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let kek = self.current.load(Ordering::SeqCst);
        let mut bytes: Vec<u8> = key.expose().iter().map(|b| b ^ kek).collect();
        bytes.extend_from_slice(aad);
        Ok(WrappedKey {
            kek_id: vec![kek; 16],
            bytes,
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, CryptoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let kek = *wrapped.kek_id.first().ok_or(CryptoError::Integrity)?;
        if kek > self.current.load(Ordering::SeqCst) || wrapped.bytes.len() < DATA_KEY_LEN {
            return Err(CryptoError::Integrity);
        }
        let (key, bound) = wrapped.bytes.split_at(DATA_KEY_LEN);
        if bound != aad {
            return Err(CryptoError::Integrity);
        }
        let mut out = [0u8; DATA_KEY_LEN];
        for (o, b) in out.iter_mut().zip(key) {
            *o = b ^ kek;
        }
        Ok(DataKey::from_bytes(out))
    }
}

/// An HSM that is not there: every call is `Unavailable`.
#[derive(Debug)]
pub(crate) struct NoHsm;

impl KeyWrapper for NoHsm {
    fn wrap(&self, _: &DataKey, _: &[u8]) -> Result<WrappedKey, CryptoError> {
        Err(CryptoError::Unavailable)
    }

    fn unwrap(&self, _: &WrappedKey, _: &[u8]) -> Result<DataKey, CryptoError> {
        Err(CryptoError::Unavailable)
    }
}

impl TokenSigner for NoHsm {
    fn sign(&self, _: &[u8]) -> Result<Signature, CryptoError> {
        Err(CryptoError::Unavailable)
    }

    fn public_key(&self) -> Result<[u8; 32], CryptoError> {
        Err(CryptoError::Unavailable)
    }
}

/// A stand-in audit MAC: the message's first byte repeated, enough to check order.
#[derive(Debug)]
pub(crate) struct FirstByteMac;

impl AuditMac for FirstByteMac {
    fn mac(&self, message: &[u8]) -> Result<[u8; MAC_LEN], CryptoError> {
        message
            .first()
            .map(|byte| [*byte; MAC_LEN])
            .ok_or(CryptoError::Unavailable)
    }
}
