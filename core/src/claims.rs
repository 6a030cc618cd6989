//! The claims of an oxvault access token: who it speaks for, in which org, until when.
//!
//! The origin issues these (signed in its HSM, see [`crate::jwt`]); the edge and the origin both
//! verify them. They are wire types only: whether a token's version `tv` is still current, or
//! whether a role may do something to a given vault, is decided by the origin.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{AgentId, OrgId, UserId, VaultId};

/// The `iss` of every token the origin issues.
pub const TOKEN_ISSUER: &str = "oxvault";
/// The `aud` of every token the origin issues: the oxvault API.
pub const TOKEN_AUDIENCE: &str = "oxvault-api";

/// Length of a UUID in its hyphenated text form.
const HYPHENATED_UUID_LEN: usize = 36;

/// The text given was not `user:<uuid>` or `agent:<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subject must be user:<uuid> or agent:<uuid>")]
pub struct InvalidSubject;

/// Who a token speaks for; on the wire `"user:<uuid>"` or `"agent:<uuid>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    User(UserId),
    Agent(AgentId),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Agent(id) => write!(f, "agent:{id}"),
        }
    }
}

impl FromStr for Subject {
    type Err = InvalidSubject;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, id) = text.split_once(':').ok_or(InvalidSubject)?;
        // Only the hyphenated form: `uuid` also takes braced, URN and undashed forms, and a
        // principal should have one spelling in a signed token, the one `Display` writes.
        if id.len() != HYPHENATED_UUID_LEN {
            return Err(InvalidSubject);
        }
        match kind {
            "user" => UserId::parse(id).map(Self::User),
            "agent" => AgentId::parse(id).map(Self::Agent),
            _ => return Err(InvalidSubject),
        }
        .map_err(|_| InvalidSubject)
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SubjectVisitor;

        impl serde::de::Visitor<'_> for SubjectVisitor {
            type Value = Subject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string user:<uuid> or agent:<uuid>")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Subject, E> {
                text.parse().map_err(E::custom)
            }
        }

        // A visitor rather than `String::deserialize`: no allocation for a value that is
        // parsed into a copyable id straight away.
        deserializer.deserialize_str(SubjectVisitor)
    }
}

/// The text given was not one of `owner`, `admin`, `member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("role must be owner, admin or member")]
pub struct InvalidRole;

/// A user's role in an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    /// The role's wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Whether the role may manage the org (its members, vaults, agents and policies).
    pub const fn can_manage(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// For rows read from the database (`#[sqlx(try_from = "String")]`): a stored role is parsed
/// where it is read, once.
impl TryFrom<String> for Role {
    type Error = InvalidRole;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl FromStr for Role {
    type Err = InvalidRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(InvalidRole),
        }
    }
}

/// The payload of an access token.
///
/// `exp` is a plain `i64`, not an `Option`: a token without it does not deserialize, so
/// [`crate::jwt::verify`] reports it as `Malformed`. Unknown claims are ignored so that a
/// newer origin may add some without breaking an older edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Subject,
    pub org: OrgId,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique token id.
    pub jti: Uuid,
    /// Token version of the principal at issue time; the origin compares it with the current
    /// one, so bumping it revokes every token issued before.
    pub tv: i64,
    /// The user session the token belongs to (users only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The user's role in `org` (users only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// What the token may do (agents and API keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The vaults an agent may reach (agents only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_ids: Option<Vec<VaultId>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";

    #[test]
    fn subjects_are_kind_colon_uuid_on_the_wire() {
        let user = Subject::User(UserId::parse(ID).unwrap());
        let agent = Subject::Agent(AgentId::parse(ID).unwrap());
        assert_eq!(
            serde_json::to_value(user).unwrap(),
            json!(format!("user:{ID}"))
        );
        assert_eq!(
            serde_json::to_value(agent).unwrap(),
            json!(format!("agent:{ID}"))
        );
        assert_eq!(
            serde_json::from_value::<Subject>(json!(format!("user:{ID}"))).unwrap(),
            user
        );
        assert_eq!(
            serde_json::from_value::<Subject>(json!(format!("agent:{ID}"))).unwrap(),
            agent
        );
        assert_eq!(user.to_string().parse::<Subject>().unwrap(), user);
    }

    #[test]
    fn subjects_of_another_kind_or_without_a_uuid_do_not_deserialize() {
        for bad in [
            json!(format!("admin:{ID}")),
            json!("user:notauuid"),
            json!(format!("User:{ID}")),
            json!(format!("user:{{{ID}}}")),
            json!(format!("user:urn:uuid:{ID}")),
            json!("user:6f1c2d3e4b5a4c6d8e7f9a0b1c2d3e4f"),
            json!(ID),
            json!(format!("user:{ID}:x")),
            json!(""),
            json!(42),
        ] {
            assert!(
                serde_json::from_value::<Subject>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn roles_are_lowercase_and_only_owners_and_admins_manage() {
        for (role, label) in [
            (Role::Owner, "owner"),
            (Role::Admin, "admin"),
            (Role::Member, "member"),
        ] {
            assert_eq!(serde_json::to_value(role).unwrap(), json!(label));
            assert_eq!(role.as_str(), label);
            assert_eq!(label.parse::<Role>().unwrap(), role);
        }
        assert!(Role::Owner.can_manage());
        assert!(Role::Admin.can_manage());
        assert!(!Role::Member.can_manage());
        assert!("Owner".parse::<Role>().is_err());
        assert!(serde_json::from_value::<Role>(json!("root")).is_err());
    }

    #[test]
    fn optional_claims_are_left_out_of_the_json_when_absent() {
        let claims = Claims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_AUDIENCE.into(),
            sub: Subject::User(UserId::parse(ID).unwrap()),
            org: OrgId::parse(ID).unwrap(),
            iat: 1,
            exp: 2,
            jti: Uuid::nil(),
            tv: 0,
            sid: None,
            role: Some(Role::Member),
            scopes: None,
            vault_ids: None,
        };
        let value = serde_json::to_value(&claims).unwrap();
        assert_eq!(
            value,
            json!({
                "iss": "oxvault", "aud": "oxvault-api", "sub": format!("user:{ID}"),
                "org": ID, "iat": 1, "exp": 2, "jti": Uuid::nil(), "tv": 0, "role": "member",
            })
        );
        assert_eq!(serde_json::from_value::<Claims>(value).unwrap(), claims);
    }
}
