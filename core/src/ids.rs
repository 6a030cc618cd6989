//! Typed identifiers: one newtype per kind of resource, so an org id can never be passed where
//! a vault id is expected. All are UUIDs on the wire; parsing is the only way to make one from
//! text, and it rejects anything that is not a UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The text given was not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a UUID")]
pub struct InvalidId {
    /// Which kind of id was expected, e.g. `vault_id`.
    pub kind: &'static str,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID that is already known to name this kind of resource.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID behind the id.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses an id from its text form.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                Uuid::try_parse(text)
                    .map(Self)
                    .map_err(|_| InvalidId { kind: $label })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// An organisation: the tenant every other resource belongs to.
    OrgId,
    "org_id"
);
uuid_id!(
    /// A human user.
    UserId,
    "user_id"
);
uuid_id!(
    /// An AI agent identity.
    AgentId,
    "agent_id"
);
uuid_id!(
    /// A vault: a named container of secrets.
    VaultId,
    "vault_id"
);
uuid_id!(
    /// A secret (all of its versions).
    SecretId,
    "secret_id"
);
uuid_id!(
    /// An access policy on a vault.
    PolicyId,
    "policy_id"
);
uuid_id!(
    /// A personal API key.
    ApiKeyId,
    "key_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_parses_from_its_own_display_form() {
        let text = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
        let id = VaultId::parse(text).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(text.parse::<VaultId>().unwrap(), id);
    }

    #[test]
    fn text_that_is_not_a_uuid_is_rejected_with_the_kind_named() {
        let err = OrgId::parse("../etc/passwd").unwrap_err();
        assert_eq!(err.to_string(), "org_id must be a UUID");
        assert!(AgentId::parse("").is_err());
        assert!(AgentId::parse("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4").is_err());
    }

    #[test]
    fn ids_are_plain_uuid_strings_on_the_wire() {
        let id = SecretId::from_uuid(Uuid::nil());
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"00000000-0000-0000-0000-000000000000\""
        );
        let back: SecretId =
            serde_json::from_str("\"00000000-0000-0000-0000-000000000000\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<SecretId>("\"nope\"").is_err());
    }
}
