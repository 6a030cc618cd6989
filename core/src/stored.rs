//! Enums kept as text in the database come back through `TryFrom<String>` (the origin's rows
//! say `#[sqlx(try_from = "String")]`), so a stored name is parsed once, where it is read, and
//! a name this build does not know is an error there instead of a guess further on.

use crate::policy::{Effect, Permission, PrincipalType};
use crate::share::RecipientType;
use crate::vault::SecretType;

/// A stored name that is not one of its enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a known {what}")]
pub struct UnknownName {
    /// What the name should have been, e.g. `secret type`.
    pub what: &'static str,
    pub name: String,
}

/// The variant of `all` whose label is `name`.
fn named<T: Copy>(
    all: &[T],
    label: fn(T) -> &'static str,
    what: &'static str,
    name: String,
) -> Result<T, UnknownName> {
    all.iter()
        .copied()
        .find(|variant| label(*variant) == name)
        .ok_or(UnknownName { what, name })
}

impl TryFrom<String> for SecretType {
    type Error = UnknownName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or(UnknownName {
            what: "secret type",
            name,
        })
    }
}

impl TryFrom<String> for RecipientType {
    type Error = UnknownName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or(UnknownName {
            what: "recipient type",
            name,
        })
    }
}

impl TryFrom<String> for Permission {
    type Error = UnknownName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        named(&Self::ALL, Self::as_str, "permission", name)
    }
}

impl TryFrom<String> for Effect {
    type Error = UnknownName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        named(&[Self::Allow, Self::Deny], Self::as_str, "effect", name)
    }
}

impl TryFrom<String> for PrincipalType {
    type Error = UnknownName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        named(
            &[Self::User, Self::Agent],
            Self::as_str,
            "principal type",
            name,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_name_reads_back_as_its_variant() {
        for kind in RecipientType::ALL {
            assert_eq!(RecipientType::try_from(kind.as_str().to_owned()), Ok(kind));
        }
        for permission in Permission::ALL {
            assert_eq!(Permission::try_from(permission.to_string()), Ok(permission));
        }
        assert_eq!(Effect::try_from("deny".to_owned()), Ok(Effect::Deny));
        assert_eq!(
            PrincipalType::try_from("agent".to_owned()),
            Ok(PrincipalType::Agent)
        );
        assert_eq!(
            SecretType::try_from("api_key".to_owned()),
            Ok(SecretType::ApiKey)
        );
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        let err = SecretType::try_from("Password".to_owned()).unwrap_err();
        assert_eq!(err.to_string(), r#""Password" is not a known secret type"#);
        assert!(RecipientType::try_from(String::new()).is_err());
        assert!(Permission::try_from("READ".to_owned()).is_err());
        assert!(Effect::try_from("allow ".to_owned()).is_err());
    }
}
