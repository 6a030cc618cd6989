//! Secret requests: an agent (or user) asks a person for a secret it does not have. The person
//! opens the request's link (`{public_url}/r/{id}`), types the value into a page, and the value
//! goes straight into the vault as a new version at the requested path; the asker learns only
//! that it is there.
//!
//! A request id is 128 random bits written as a UUID: while the request is pending, the id is
//! the only credential needed to write that one path once, so it is never guessable and never
//! logged ([`crate::share::loggable_path`] redacts it). [`RequestSpec::parse`] holds every rule
//! of a new request that needs no database.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::email::Email;
use crate::secret_path::SecretPath;
use crate::vault::SecretType;

/// How long a request stays open when the creator names no expiry.
pub const DEFAULT_REQUEST_HOURS: i64 = 24;
/// Furthest a request may expire, in days from its creation.
pub const MAX_REQUEST_DAYS: i64 = 7;
/// Longest description, in characters: it is shown on the page, so it stays a sentence or two.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

crate::link_id!(
    /// A secret request's id: 128 random bits, the credential of a pending request.
    SecretRequestId
);

/// The page a person opens: `{public_url}/r/{id}`.
pub fn request_url(public_url: &str, id: SecretRequestId) -> String {
    format!("{}/r/{id}", public_url.trim_end_matches('/'))
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretRequestStatus {
    /// Open: the link takes one value.
    Pending,
    /// A value was given; `fulfilled_version` is the version it became.
    Fulfilled,
    /// Nobody answered in time.
    Expired,
    /// Its creator (or an owner or admin) withdrew it.
    Cancelled,
}

/// `POST /v1/vaults/{vault_id}/secret-requests`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretRequestRequest {
    /// Where the value will be written (the creator needs `write` on it): a secret path.
    #[schema(min_length = 1, max_length = 512)]
    pub path: String,
    /// Why the value is needed, shown to the person on the page: 1 to 1000 characters, not
    /// all spaces, no control characters but newlines and tabs.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    /// The kind of secret asked for; the person may pick another. Default `generic`.
    #[serde(rename = "type", default)]
    pub secret_type: Option<SecretType>,
    /// When the link stops working; default 24 hours from now, at most 7 days.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Who to mail the link to (users only).
    #[serde(default)]
    pub recipient_email: Option<String>,
}

/// A new request's checked fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub path: SecretPath,
    pub description: String,
    pub secret_type: SecretType,
    pub expires_at: DateTime<Utc>,
    pub recipient_email: Option<Email>,
}

impl RequestSpec {
    /// Checks `request` as made at `now`.
    pub fn parse(request: CreateSecretRequestRequest, now: DateTime<Utc>) -> Result<Self, String> {
        let path = SecretPath::parse(&request.path).map_err(|err| err.to_string())?;
        let description = request.description.trim().to_owned();
        if description.is_empty() {
            return Err("description must say why the secret is needed".into());
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        if description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err("description must not hold control characters".into());
        }
        let expires_at = request
            .expires_at
            .unwrap_or(now + Duration::hours(DEFAULT_REQUEST_HOURS));
        if expires_at <= now {
            return Err("expires_at must be in the future".into());
        }
        if expires_at > now + Duration::days(MAX_REQUEST_DAYS) {
            return Err(format!(
                "expires_at must be at most {MAX_REQUEST_DAYS} days ahead"
            ));
        }
        let recipient_email = request
            .recipient_email
            .map(|text| Email::parse(&text).map_err(|err| err.to_string()))
            .transpose()?;
        Ok(Self {
            path,
            description,
            secret_type: request.secret_type.unwrap_or_default(),
            expires_at,
            recipient_email,
        })
    }
}

/// Who made a request, as its creator's org sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestCreator {
    /// `user` or `agent`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Uuid,
}

/// A request as its creator sees it (`201` of the create, `GET /v1/secret-requests/{id}`, and
/// one entry of the vault's list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretRequestResponse {
    pub id: SecretRequestId,
    pub vault_id: Uuid,
    pub path: String,
    pub description: String,
    #[serde(rename = "type")]
    pub secret_type: SecretType,
    pub status: SecretRequestStatus,
    /// The page to hand to the person who has the value.
    pub request_url: String,
    pub recipient_email: Option<String>,
    pub created_by: RequestCreator,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    /// The version the value became, once fulfilled.
    pub fulfilled_version: Option<i32>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// `GET /v1/vaults/{vault_id}/secret-requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretRequestListResponse {
    pub requests: Vec<SecretRequestResponse>,
}

/// `GET /v1/secret-requests/{id}/prompt`: what the page shows a person while the request is
/// pending. Public: the id is the credential, and this answer never holds a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretRequestPrompt {
    /// The asker's name (an agent's or user's display name).
    pub requested_by: String,
    pub path: String,
    pub description: String,
    #[serde(rename = "type")]
    pub secret_type: SecretType,
    pub expires_at: DateTime<Utc>,
}

/// `POST /v1/secret-requests/{id}/fulfil`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfilSecretRequest {
    /// The secret value; stored sealed, never echoed.
    #[schema(min_length = 1, max_length = 262144)]
    pub value: String,
    /// The kind of secret; default the one the request asked for.
    #[serde(rename = "type", default)]
    pub secret_type: Option<SecretType>,
}

/// The value is never shown, not even in a debug print.
impl fmt::Debug for FulfilSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FulfilSecretRequest")
            .field("secret_type", &self.secret_type)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(extra: serde_json::Value) -> CreateSecretRequestRequest {
        let mut body = json!({"path": "api/stripe", "description": "the Stripe key for billing"});
        if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn defaults_are_a_day_and_generic() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let spec = RequestSpec::parse(request(json!({})), now).unwrap();
        assert_eq!(spec.expires_at, now + Duration::hours(24));
        assert_eq!(spec.secret_type, SecretType::Generic);
        assert_eq!(spec.path.as_str(), "api/stripe");
        assert!(spec.recipient_email.is_none());
    }

    #[test]
    fn expiry_is_in_the_future_and_at_most_a_week_ahead() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |t: DateTime<Utc>| request(json!({"expires_at": t.to_rfc3339()}));
        assert!(RequestSpec::parse(at(now + Duration::days(7)), now).is_ok());
        assert!(
            RequestSpec::parse(at(now + Duration::days(7) + Duration::seconds(1)), now).is_err()
        );
        assert!(RequestSpec::parse(at(now), now).is_err());
        assert!(RequestSpec::parse(at(now - Duration::hours(1)), now).is_err());
    }

    #[test]
    fn bad_paths_descriptions_and_addresses_are_refused() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for bad in [
            json!({"path": "../x"}),
            json!({"path": ""}),
            json!({"description": "   "}),
            json!({"description": "x".repeat(1001)}),
            json!({"description": "bell\u{7}"}),
            json!({"recipient_email": "not an address"}),
        ] {
            assert!(
                RequestSpec::parse(request(bad.clone()), now).is_err(),
                "{bad}"
            );
        }
        let spec = RequestSpec::parse(
            request(json!({"recipient_email": " Ada@Example.org "})),
            now,
        )
        .unwrap();
        assert_eq!(spec.recipient_email.unwrap().as_str(), "ada@example.org");
    }

    #[test]
    fn unknown_fields_are_refused_and_the_value_never_prints() {
        assert!(
            serde_json::from_value::<CreateSecretRequestRequest>(
                json!({"path": "a", "description": "b", "value": "x"})
            )
            .is_err()
        );
        let fulfil: FulfilSecretRequest =
            serde_json::from_value(json!({"value": "canary-value-77"})).unwrap();
        assert!(!format!("{fulfil:?}").contains("canary"));
    }

    #[test]
    fn the_link_is_under_r() {
        let id = SecretRequestId::from_random_bytes([7; 16]);
        assert_eq!(
            request_url("https://v.example/", id),
            format!("https://v.example/r/{id}")
        );
        assert_eq!(SecretRequestId::parse(&id.to_string()), Some(id));
        assert_eq!(SecretRequestId::parse("nope"), None);
    }
}
