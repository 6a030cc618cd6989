//! What a policy grants or refuses: the permissions a principal may hold on a secret and the
//! effect of a policy. One set of wire labels, shared by the evaluation and the API types.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Something a principal may do to a secret.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read the value (and list the metadata).
    Read,
    /// Write new versions.
    Write,
    /// Delete the secret.
    Delete,
    /// Have the server write a new random value.
    Rotate,
    /// Make share links.
    Share,
}

impl Permission {
    /// Every permission, in wire order.
    pub const ALL: [Self; 5] = [
        Self::Read,
        Self::Write,
        Self::Delete,
        Self::Rotate,
        Self::Share,
    ];

    /// The permission's wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Rotate => "rotate",
            Self::Share => "share",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a policy grants or refuses its permissions. `allow` when a request leaves it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

impl Effect {
    /// The effect's wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}
