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

/// An id that is a credential while it lives (a link share's, a pending secret request's):
/// 128 random bits written as a UUID (a v4 UUID has only 122), made only from CSPRNG bytes.
/// Text that is not a UUID parses to `None`, answered like an id that names nothing.
#[macro_export]
macro_rules! link_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize,
            serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// An id made of these 16 bytes, which must come from a CSPRNG.
            pub const fn from_random_bytes(bytes: [u8; 16]) -> Self {
                Self(uuid::Uuid::from_bytes(bytes))
            }

            /// Wraps a UUID already known to name one.
            pub const fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            /// The UUID behind the id.
            pub const fn as_uuid(&self) -> &uuid::Uuid {
                &self.0
            }

            /// Parses the text form; `None` for anything that is not a UUID.
            pub fn parse(text: &str) -> Option<Self> {
                uuid::Uuid::try_parse(text).ok().map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
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

/// Property tests: every id has one text form, and any text accepted names the id that form
/// spells.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The forms `uuid` reads besides the hyphenated one, with hex in either case.
    fn spellings(id: Uuid) -> Vec<String> {
        let hyphenated = id.hyphenated().to_string();
        vec![
            hyphenated.to_uppercase(),
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn an_id_parses_back_from_its_text_and_its_json(n in any::<u128>()) {
            let id = VaultId::from_uuid(Uuid::from_u128(n));
            let text = id.to_string();
            prop_assert_eq!(text.len(), 36);
            prop_assert!(text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-')));
            prop_assert_eq!(VaultId::parse(&text), Ok(id));
            prop_assert_eq!(text.parse::<VaultId>(), Ok(id));
            let json = serde_json::to_string(&id).unwrap_or_default();
            prop_assert_eq!(serde_json::from_str::<VaultId>(&json).ok(), Some(id));
            // Other spellings name the same id, and print as the one form.
            for spelling in spellings(*id.as_uuid()) {
                prop_assert_eq!(OrgId::parse(&spelling).map(|id| id.to_string()), Ok(text.clone()));
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_what_parses_prints_as_one_form(
            text in prop_oneof![
                crate::any_text(),
                "[{(urn:uid]{0,4}[0-9a-fA-F-]{30,40}[})]?",
            ],
        ) {
            match PolicyId::parse(&text) {
                Ok(id) => {
                    let canonical = id.to_string();
                    prop_assert_eq!(PolicyId::parse(&canonical), Ok(id));
                    // The same hex digits, whatever the case, hyphens, braces or URN.
                    let digits = |text: &str| {
                        text.to_lowercase()
                            .trim_start_matches("urn:uuid:")
                            .replace(['-', '{', '}'], "")
                    };
                    prop_assert_eq!(digits(&canonical), digits(&text));
                }
                Err(err) => prop_assert_eq!(err.kind, "policy_id"),
            }
        }
    }
}
