//! The audit trail's MAC key: a 256-bit generic secret generated inside the token
//! (`CKA_SENSITIVE`, never extractable) that computes HMAC-SHA256 over each audit seal. Rows
//! in the database can then be checked, but not forged or re-linked, by anyone without the
//! HSM. Found by label like the other keys; origins racing to create it converge on the one
//! with the smallest `CKA_ID`.
//!
//! Each connection computes MACs with a copy of that key made as a session object
//! ([`session_copy`]): the same key, held in the HSM's memory for the life of the connection.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{ConnectError, Pkcs11Hsm, find_converged, random_id};
use crate::crypto::{AuditMac, CryptoError, MAC_LEN};

/// Length of the key in bytes.
const KEY_LEN: u64 = 32;

fn template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
    ]
}

/// Finds the audit MAC key by label, or generates it in the token.
pub(super) fn find_or_create_audit_key(
    session: &Session,
    label: &str,
) -> Result<ObjectHandle, ConnectError> {
    let mut found = find_converged(session, &template(label))?;
    if found.is_empty() {
        let mut attributes = template(label);
        attributes.extend([
            Attribute::Id(random_id()?),
            Attribute::ValueLen(KEY_LEN.into()),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
        ]);
        session.generate_key(&Mechanism::GenericSecretKeyGen, &attributes)?;
        tracing::info!(key = %label, "created the audit MAC key in the HSM");
        found = find_converged(session, &template(label))?;
    }
    found
        .into_iter()
        .next()
        .map(|(handle, _)| handle)
        .ok_or_else(|| {
            ConnectError::Other(format!(
                "the audit key {label:?} was created but cannot be found"
            ))
        })
}

/// A copy of the audit key `key` as a session object of `session` (the connection's login
/// session, open for the connection's whole life), or `key` itself when the HSM declines.
///
/// Why: every batch of audit events is sealed with this key (and, before seals, every event
/// was), and SoftHSM2 re-reads a token object's file (open, lock, read, decrypt) on every
/// `C_SignInit`. A session object
/// lives in the module's memory: measured here, an event's MAC falls from about 28 to 10 us,
/// with no file locks shared between threads. HSMs generally keep session objects in their
/// own memory too.
///
/// The copy is no weaker than the key: PKCS#11 lets a copy only raise `CKA_SENSITIVE` and lower
/// `CKA_EXTRACTABLE`, it never leaves the HSM, and it is destroyed when the session closes
/// (the connection dropped, the process gone). Every origin computes the same MACs, since the
/// value is the token key's.
pub(super) fn session_copy(session: &Session, key: ObjectHandle) -> ObjectHandle {
    match session.copy_object(key, &[Attribute::Token(false)]) {
        Ok(copy) => copy,
        Err(err) => {
            tracing::warn!(error = %err, "the HSM would not copy the audit MAC key into a session object; using the token object");
            key
        }
    }
}

impl AuditMac for Pkcs11Hsm {
    fn mac(&self, message: &[u8]) -> Result<[u8; MAC_LEN], CryptoError> {
        let bytes = self.with_session(|session, connection| {
            Ok(session.sign(&Mechanism::Sha256Hmac, connection.audit_key, message)?)
        })?;
        bytes.as_slice().try_into().map_err(|_| {
            tracing::error!(
                len = bytes.len(),
                "the HSM returned an audit MAC of unexpected length"
            );
            CryptoError::Unavailable
        })
    }
}
