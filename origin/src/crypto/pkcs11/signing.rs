//! The Ed25519 key pair that signs access tokens, generated and kept inside the token: the
//! private half is `CKA_SENSITIVE` and never extractable, so a JWT can only be minted by
//! asking the HSM. The public half is read once per connection and published as a JWKS.

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{ConnectError, Pkcs11Hsm, find_converged, random_id};
use crate::crypto::{CryptoError, Signature, TokenSigner};

/// DER of the Ed25519 curve OID 1.3.101.112, the `CKA_EC_PARAMS` of the key pair.
const ED25519_OID_DER: [u8; 5] = [0x06, 0x03, 0x2B, 0x65, 0x70];

/// The signing key of a connection.
pub(super) struct SigningKey {
    private: ObjectHandle,
    public: [u8; 32],
}

impl TokenSigner for Pkcs11Hsm {
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError> {
        let (bytes, public_key) = self.with_session(|session, connection| {
            let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
            let bytes = session.sign(&mechanism, connection.signing.private, message)?;
            Ok((bytes, connection.signing.public))
        })?;
        let bytes: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
            tracing::error!(
                len = bytes.len(),
                "the HSM returned a signature of unexpected length"
            );
            CryptoError::Unavailable
        })?;
        Ok(Signature { bytes, public_key })
    }

    fn public_key(&self) -> Result<[u8; 32], CryptoError> {
        self.with_session(|_, connection| Ok(connection.signing.public))
    }
}

fn private_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
    ]
}

fn public_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
    ]
}

/// Finds the signing key pair by label, or generates it in the token.
pub(super) fn find_or_create_signing_key(
    session: &Session,
    label: &str,
) -> Result<SigningKey, ConnectError> {
    let mut private = find_converged(session, &private_template(label))?;
    if private.is_empty() {
        let id = random_id()?;
        let mut public = public_template(label);
        public.extend([
            Attribute::Id(id.clone()),
            Attribute::EcParams(ED25519_OID_DER.to_vec()),
            Attribute::Verify(true),
        ]);
        let mut secret = private_template(label);
        secret.extend([
            Attribute::Id(id),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ]);
        session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &secret)?;
        tracing::info!(key = %label, "created the token-signing key pair in the HSM");
        private = find_converged(session, &private_template(label))?;
    }
    let Some((private, id)) = private.into_iter().next() else {
        return Err(ConnectError::Other(format!(
            "the signing key {label:?} was created but cannot be found"
        )));
    };
    // The public half with the same CKA_ID belongs to the private half we picked.
    let mut template = public_template(label);
    template.push(Attribute::Id(id));
    let public_handle = session
        .find_objects(&template)?
        .into_iter()
        .next()
        .ok_or_else(|| ConnectError::Other(format!("the public half of {label:?} is missing")))?;
    let point = session
        .get_attributes(public_handle, &[AttributeType::EcPoint])?
        .into_iter()
        .find_map(|attribute| match attribute {
            Attribute::EcPoint(point) => Some(point),
            _ => None,
        })
        .unwrap_or_default();
    let public = ed25519_point(&point).ok_or_else(|| {
        ConnectError::Other(format!(
            "the public key of {label:?} is not an Ed25519 point"
        ))
    })?;
    Ok(SigningKey { private, public })
}

/// The 32-byte public key from `CKA_EC_POINT`: a DER OCTET STRING (`04 20 ..`) in PKCS#11
/// 3.0, or the raw bytes in some modules.
fn ed25519_point(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw if raw.len() == 32 => raw.try_into().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ec_point_is_read_in_both_encodings() {
        let mut der = vec![0x04, 0x20];
        der.extend([7u8; 32]);
        assert_eq!(ed25519_point(&der), Some([7u8; 32]));
        assert_eq!(ed25519_point(&[9u8; 32]), Some([9u8; 32]));
        assert_eq!(ed25519_point(&[0x04, 0x21, 1, 2]), None);
        assert_eq!(ed25519_point(&[]), None);
    }
}
