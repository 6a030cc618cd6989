//! Wire types of vaults and secrets. Field names follow 1Claw's v1 API. Responses that carry a
//! secret value are only ever produced by a read; write responses carry metadata alone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{SecretId, VaultId};

/// `POST /v1/vaults`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateVaultRequest {
    /// 1 to 200 characters, not all spaces (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// At most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
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
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
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

    /// Every kind, in the order pages list them.
    pub const ALL: [Self; 9] = [
        Self::Generic,
        Self::Password,
        Self::ApiKey,
        Self::Certificate,
        Self::PrivateKey,
        Self::SshKey,
        Self::Env,
        Self::Note,
        Self::File,
    ];

    /// Parses the wire and database name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
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
    /// When the secret stops being readable; in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// How many reads the secret allows, at least 1.
    #[serde(default)]
    #[schema(minimum = 1)]
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

/// The most a secret's `metadata` may weigh, as compact JSON: 16 KiB. It is stored with
/// every version and returned by every listing, so it is for labels, not payloads.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// The deepest a secret's `metadata` may nest (the object itself is depth 1).
pub const MAX_METADATA_DEPTH: usize = 8;

/// Checks a secret's `metadata` against [`MAX_METADATA_BYTES`] and [`MAX_METADATA_DEPTH`];
/// `Err` says which, for a 400.
pub fn check_metadata(metadata: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    fn depth(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    let deepest = 1 + metadata.values().map(depth).max().unwrap_or(0);
    if deepest > MAX_METADATA_DEPTH {
        return Err(format!(
            "metadata may nest at most {MAX_METADATA_DEPTH} levels deep"
        ));
    }
    // Measured without building the text: a counting writer.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut size = Count(0);
    serde_json::to_writer(&mut size, metadata).map_err(|_| "metadata is not valid JSON")?;
    if size.0 > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata must be at most {MAX_METADATA_BYTES} bytes as JSON (it is {})",
            size.0
        ));
    }
    Ok(())
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
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/vaults/{vault_id}/secret-versions/{path}`: every version's metadata, newest
/// first, disabled ones included (flagged); never values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretVersionListResponse {
    pub versions: Vec<SecretMetadataResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The alphabets a rotated value is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RotateCharset {
    /// `0-9a-f`.
    #[default]
    Hex,
    /// The standard base64 alphabet `A-Za-z0-9+/`, no padding.
    Base64,
    /// `A-Za-z0-9`.
    Alphanumeric,
    /// Visible ASCII, `!` (0x21) to `~` (0x7E): no space, no control characters.
    Ascii,
}

const HEX: &[u8] = b"0123456789abcdef";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const ASCII: &[u8] = b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

impl RotateCharset {
    /// The characters a value may hold, each once; at most 256 of them.
    pub const fn alphabet(self) -> &'static [u8] {
        match self {
            Self::Hex => HEX,
            Self::Base64 => BASE64,
            Self::Alphanumeric => ALPHANUMERIC,
            Self::Ascii => ASCII,
        }
    }
}

/// Shortest server-generated value.
pub const ROTATE_MIN_LEN: u32 = 8;
/// Longest server-generated value.
pub const ROTATE_MAX_LEN: u32 = 1024;
/// Length of a server-generated value when the request names none.
pub const ROTATE_DEFAULT_LEN: u32 = 32;

/// `POST /v1/vaults/{vault_id}/secret-rotate/{path}`: the server writes a new version holding
/// a random value; every field is optional (an empty body or `{}` uses the defaults).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RotateSecretRequest {
    /// Length of the generated value, 8 to 1024 (default 32).
    #[serde(default)]
    #[schema(minimum = 8, maximum = 1024)]
    pub length: Option<u32>,
    /// Character set of the generated value (default `hex`, as in 1Claw's API).
    #[serde(default)]
    pub charset: Option<RotateCharset>,
    /// The new version's type (default: the current version's).
    #[serde(default, rename = "type")]
    pub secret_type: Option<SecretType>,
}

/// A rotation request that passed its checks: what to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSpec {
    length: usize,
    charset: RotateCharset,
}

impl RotationSpec {
    /// Checks the length (8..=1024) and fills in the defaults.
    pub fn parse(request: &RotateSecretRequest) -> Result<Self, String> {
        let length = request.length.unwrap_or(ROTATE_DEFAULT_LEN);
        if !(ROTATE_MIN_LEN..=ROTATE_MAX_LEN).contains(&length) {
            return Err(format!(
                "length must be between {ROTATE_MIN_LEN} and {ROTATE_MAX_LEN}"
            ));
        }
        Ok(Self {
            // u32 -> usize is lossless on every target this code runs on (32 and 64 bit).
            length: length as usize,
            charset: request.charset.unwrap_or_default(),
        })
    }

    /// How many characters to generate.
    pub const fn length(self) -> usize {
        self.length
    }

    /// Which characters.
    pub const fn charset(self) -> RotateCharset {
        self.charset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn metadata_up_to_16_kib_is_accepted_and_one_byte_more_refused() {
        // {"k":"…"} is 8 bytes around the string.
        let fits = object(serde_json::json!({ "k": "x".repeat(MAX_METADATA_BYTES - 8) }));
        assert_eq!(check_metadata(&fits), Ok(()));
        let over = object(serde_json::json!({ "k": "x".repeat(MAX_METADATA_BYTES - 7) }));
        let err = check_metadata(&over).unwrap_err();
        assert!(err.contains("16384 bytes"), "{err}");
        assert_eq!(check_metadata(&serde_json::Map::new()), Ok(()));
    }

    #[test]
    fn metadata_nested_deeper_than_8_levels_is_refused() {
        let mut value = serde_json::json!(1);
        for _ in 0..7 {
            value = serde_json::json!([value]);
        }
        let eight = object(serde_json::json!({ "a": value }));
        assert_eq!(check_metadata(&eight), Ok(()));
        let nine = object(serde_json::json!({ "a": [value] }));
        assert!(check_metadata(&nine).unwrap_err().contains("8 levels"));
    }

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
    #[test]
    fn rotation_lengths_outside_8_to_1024_are_refused() {
        for (length, ok) in [
            (7, false),
            (8, true),
            (1024, true),
            (1025, false),
            (0, false),
        ] {
            let request = RotateSecretRequest {
                length: Some(length),
                ..RotateSecretRequest::default()
            };
            assert_eq!(RotationSpec::parse(&request).is_ok(), ok, "length {length}");
        }
    }

    #[test]
    fn an_empty_rotation_request_means_32_hex_characters() {
        let request: RotateSecretRequest = serde_json::from_str("{}").unwrap();
        let spec = RotationSpec::parse(&request).unwrap();
        assert_eq!(spec.length(), 32);
        assert_eq!(spec.charset(), RotateCharset::Hex);
    }

    #[test]
    fn unknown_charsets_do_not_parse() {
        assert!(serde_json::from_str::<RotateSecretRequest>(r#"{"charset": "emoji"}"#).is_err());
        assert!(serde_json::from_str::<RotateSecretRequest>(r#"{"length": -1}"#).is_err());
    }

    #[test]
    fn each_alphabet_has_the_expected_distinct_characters() {
        for (charset, size) in [
            (RotateCharset::Hex, 16),
            (RotateCharset::Base64, 64),
            (RotateCharset::Alphanumeric, 62),
            (RotateCharset::Ascii, 94),
        ] {
            let alphabet = charset.alphabet();
            assert_eq!(alphabet.len(), size, "{charset:?}");
            let distinct: std::collections::BTreeSet<u8> = alphabet.iter().copied().collect();
            assert_eq!(distinct.len(), size, "{charset:?} repeats a character");
            assert!(alphabet.iter().all(|b| b.is_ascii_graphic()), "{charset:?}");
        }
    }
}
