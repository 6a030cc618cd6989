//! Wire types of vaults and secrets. Field names follow 1Claw's v1 API. Responses that carry a
//! secret value are only ever produced by a read; write responses carry metadata alone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{SecretId, VaultId};

/// `POST /v1/vaults`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateVaultRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A vault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VaultResponse {
    pub id: VaultId,
    pub name: String,
    pub description: Option<String>,
    /// The user or agent id that created the vault.
    pub created_by: Option<uuid::Uuid>,
    /// `user` or `agent`.
    pub created_by_type: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/vaults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VaultListResponse {
    pub vaults: Vec<VaultResponse>,
}

/// The kinds of secret 1Claw knows; they change nothing in how a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretType {
    #[default]
    Generic,
    Password,
    ApiKey,
    Certificate,
    PrivateKey,
    SshKey,
    Env,
    Note,
    File,
}

impl SecretType {
    /// The wire and database name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Password => "password",
            Self::ApiKey => "api_key",
            Self::Certificate => "certificate",
            Self::PrivateKey => "private_key",
            Self::SshKey => "ssh_key",
            Self::Env => "env",
            Self::Note => "note",
            Self::File => "file",
        }
    }

    /// Parses the wire and database name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Generic,
            Self::Password,
            Self::ApiKey,
            Self::Certificate,
            Self::PrivateKey,
            Self::SshKey,
            Self::Env,
            Self::Note,
            Self::File,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// `PUT /v1/vaults/{vault_id}/secrets/{path}`: every PUT makes a new version.
#[derive(Clone, Deserialize, ToSchema)]
pub struct PutSecretRequest {
    pub value: String,
    #[serde(default, rename = "type")]
    pub secret_type: Option<SecretType>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub max_access_count: Option<i32>,
}

impl std::fmt::Debug for PutSecretRequest {
    // The value is a secret: it never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecretRequest")
            .field("value", &"<redacted>")
            .field("type", &self.secret_type)
            .field("expires_at", &self.expires_at)
            .field("max_access_count", &self.max_access_count)
            .finish_non_exhaustive()
    }
}

/// What a write answers: the new version's metadata, never the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretMetadataResponse {
    pub id: SecretId,
    pub path: String,
    #[serde(rename = "type")]
    pub secret_type: SecretType,
    pub version: i32,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_disabled: bool,
}

/// A secret with its value: what a read answers.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretResponse {
    pub id: SecretId,
    pub path: String,
    #[serde(rename = "type")]
    pub secret_type: SecretType,
    pub value: String,
    pub version: i32,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_by: Option<uuid::Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SecretResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretResponse")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("version", &self.version)
            .field("value", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `GET /v1/vaults/{vault_id}/secrets`: metadata only, never values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretListResponse {
    pub secrets: Vec<SecretMetadataResponse>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_types_round_trip_through_their_names() {
        for name in [
            "generic",
            "password",
            "api_key",
            "certificate",
            "private_key",
            "ssh_key",
            "env",
            "note",
            "file",
        ] {
            let kind = SecretType::parse(name).unwrap();
            assert_eq!(kind.as_str(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        assert_eq!(SecretType::parse("blob"), None);
    }

    #[test]
    fn debug_output_never_shows_a_value() {
        let request: PutSecretRequest =
            serde_json::from_value(serde_json::json!({"value": "canary-value-1234"})).unwrap();
        assert!(!format!("{request:?}").contains("canary-value-1234"));
    }
}
