//! Share links: their wire types and the rules a new share must meet.
//!
//! A share hands one secret's current value to one recipient: anyone holding the link, a user
//! or agent of the same org, an outside email address, or the creator themself. It always
//! expires (at most [`MAX_SHARE_DAYS`] ahead) and may be limited in views, locked by a
//! passphrase and restricted to some networks. The origin stores and enforces shares; the
//! edge serves the human share page and forwards the API calls. [`ShareSpec::parse`] holds
//! every rule that needs no database, so both tiers agree on them.
//!
//! Share ids are 128 random bits written as a UUID: the id of a link share is its only
//! credential, so it must not be guessable (a v4 UUID has only 122 random bits, and ids made
//! from time or counters would be).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::email::Email;
use crate::ids::{AgentId, SecretId, UserId};
use crate::policy::{Cidr, Permission};
use crate::vault::SecretType;

/// Furthest a share may expire, in days from its creation.
pub const MAX_SHARE_DAYS: i64 = 30;
/// Longest passphrase accepted, in bytes of UTF-8: bounds the hashing work one request can ask
/// for.
pub const MAX_PASSPHRASE_LEN: usize = 1024;

/// Most entries in a share's `ip_allowlist` (as many as a policy's).
pub const MAX_SHARE_ALLOWLIST: usize = 100;

/// Whether `text` can be a share passphrase: 1 to [`MAX_PASSPHRASE_LEN`] bytes, no control
/// characters, no space at either end. The rule is what a passphrase needs to travel in the
/// `X-Share-Passphrase` header unchanged (HTTP trims spaces and refuses control characters),
/// so a share is never created with a passphrase that cannot then open it; the edge applies
/// the same rule on the way in.
pub fn is_usable_passphrase(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_PASSPHRASE_LEN
        && !text.chars().any(char::is_control)
        && !text.starts_with(' ')
        && !text.ends_with(' ')
}
/// The request header that carries a share's passphrase on `GET /v1/share/{share_id}`.
pub const PASSPHRASE_HEADER: &str = "x-share-passphrase";

crate::link_id!(
    /// The id of a share: 128 random bits in UUID form (see the module docs).
    ShareId
);

/// The link people open: `{public_url}/s/{id}`, with `public_url` lacking a trailing slash.
pub fn share_url(public_url: &str, id: ShareId) -> String {
    format!("{}/s/{id}", public_url.trim_end_matches('/'))
}

/// Where a link id can stand in a request path: a share's lookup and status routes, the
/// recipient's accept and decline routes and the share page (`/v1/shares/inbound` and
/// `/outbound` are lists, not ids); a secret request's routes and its page. A pending secret
/// request's id is a credential too (see [`crate::secret_request`]), so it is hidden the same
/// way and shown as `{share_id}` like a share's.
const SHARE_ID_PREFIXES: [&str; 5] = [
    "/v1/share/",
    "/v1/shares/",
    "/s/",
    "/v1/secret-requests/",
    "/r/",
];

/// The words that may follow a link id in a path; anything else there is redacted too.
const SHARE_PATH_WORDS: [&str; 5] = ["status", "accept", "decline", "prompt", "fulfil"];

/// `path` as a log line may show it: the segment holding a share id replaced by
/// `{share_id}`, since a link share's id is its only credential. Whatever else follows it is
/// kept only when it is one of the routes' own words, so no spelling of a path can carry an id
/// into a log. Used by the origin's access log and the edge's error lines alike.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    let Some((prefix, rest)) = SHARE_ID_PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix).map(|rest| (*prefix, rest)))
    else {
        return Cow::Borrowed(path);
    };
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or_default();
    if prefix == "/v1/shares/" && matches!(first, "inbound" | "outbound") && !rest.contains('/') {
        return Cow::Borrowed(path);
    }
    let mut redacted = format!("{prefix}{{share_id}}");
    for segment in segments {
        redacted.push('/');
        if SHARE_PATH_WORDS.contains(&segment) {
            redacted.push_str(segment);
        } else if !segment.is_empty() {
            redacted.push_str("{redacted}");
        }
    }
    Cow::Owned(redacted)
}

/// Who a share is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    /// Whoever holds the link.
    AnyoneWithLink,
    /// One user of the creator's org, who reads it with their own token.
    User,
    /// One agent of the creator's org, which reads it with its own token.
    Agent,
    /// An outside address: the link is mailed there and works without a token.
    ExternalEmail,
    /// The creating user or agent themself (a way to hand a value to a later session).
    Creator,
}

impl RecipientType {
    /// Every recipient type, in wire order.
    pub const ALL: [Self; 5] = [
        Self::AnyoneWithLink,
        Self::User,
        Self::Agent,
        Self::ExternalEmail,
        Self::Creator,
    ];

    /// The wire and database name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AnyoneWithLink => "anyone_with_link",
            Self::User => "user",
            Self::Agent => "agent",
            Self::ExternalEmail => "external_email",
            Self::Creator => "creator",
        }
    }

    /// Parses the wire and database name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether the link alone opens the share (no token): the kinds the share page serves.
    pub const fn is_link(self) -> bool {
        matches!(self, Self::AnyoneWithLink | Self::ExternalEmail)
    }
}

/// `POST /v1/secrets/{secret_id}/share`.
#[derive(Clone, Deserialize, ToSchema)]
pub struct CreateShareRequest {
    pub recipient_type: RecipientType,
    /// The user or agent id, for `user` and `agent` shares (and only for them).
    #[serde(default)]
    pub recipient_id: Option<Uuid>,
    /// The address, for `external_email` shares (and only for them).
    #[serde(default)]
    pub email: Option<String>,
    /// What the recipient may do; a share only ever grants `read` (the default).
    #[serde(default)]
    pub permissions: Option<Vec<Permission>>,
    /// When the share stops working: in the future, at most 30 days ahead. Required.
    pub expires_at: DateTime<Utc>,
    /// How many reads the share allows (at least 1); unset: no limit but the expiry.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_access_count: Option<i32>,
    /// A passphrase the recipient must also present (1 to 1024 bytes, no control characters,
    /// no spaces at either end). Only its Argon2id hash is kept.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub passphrase: Option<String>,
    /// Addresses or CIDR blocks the share may be read from.
    #[serde(default)]
    #[schema(example = json!(["203.0.113.0/24"]))]
    pub ip_allowlist: Option<Vec<String>>,
}

impl fmt::Debug for CreateShareRequest {
    // The passphrase is a credential: it never reaches a log through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateShareRequest")
            .field("recipient_type", &self.recipient_type)
            .field("recipient_id", &self.recipient_id)
            .field("expires_at", &self.expires_at)
            .field("max_access_count", &self.max_access_count)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("ip_allowlist", &self.ip_allowlist)
            .finish_non_exhaustive()
    }
}

/// Why a share request was refused; each message is meant for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidShare {
    #[error("recipient_id is required for user and agent shares")]
    MissingRecipientId,
    #[error("recipient_id is only for user and agent shares")]
    UnexpectedRecipientId,
    #[error("email is required for external_email shares")]
    MissingEmail,
    #[error("email is only for external_email shares")]
    UnexpectedEmail,
    #[error("invalid email: {0}")]
    Email(#[from] crate::email::InvalidEmail),
    #[error("a share only grants read: permissions may only list \"read\"")]
    Permissions,
    #[error("expires_at must be in the future")]
    ExpiryPast,
    #[error("expires_at must be at most {MAX_SHARE_DAYS} days ahead")]
    ExpiryTooFar,
    #[error("max_access_count must be at least 1")]
    MaxAccessCount,
    #[error(
        "passphrase must be 1 to {MAX_PASSPHRASE_LEN} bytes of text without control characters \
         or spaces at either end"
    )]
    Passphrase,
    #[error("ip_allowlist must name at least one address or CIDR block")]
    EmptyAllowlist,
    #[error("ip_allowlist may name at most {MAX_SHARE_ALLOWLIST} addresses or CIDR blocks")]
    AllowlistTooLong,
    #[error("{0}")]
    Allowlist(#[from] crate::policy::InvalidCidr),
}

/// Who a checked share is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    AnyoneWithLink,
    User(UserId),
    Agent(AgentId),
    ExternalEmail(Email),
    Creator,
}

impl Recipient {
    /// The kind of recipient.
    pub fn kind(&self) -> RecipientType {
        match self {
            Self::AnyoneWithLink => RecipientType::AnyoneWithLink,
            Self::User(_) => RecipientType::User,
            Self::Agent(_) => RecipientType::Agent,
            Self::ExternalEmail(_) => RecipientType::ExternalEmail,
            Self::Creator => RecipientType::Creator,
        }
    }
}

/// A passphrase that passed [`is_usable_passphrase`]. Its text never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl Passphrase {
    /// Checks the rule of [`is_usable_passphrase`].
    pub fn parse(text: String) -> Result<Self, InvalidShare> {
        if is_usable_passphrase(&text) {
            Ok(Self(text))
        } else {
            Err(InvalidShare::Passphrase)
        }
    }

    /// The passphrase itself, to hash or verify.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// A share request that passed every rule needing no database: what to store. Whether the
/// recipient id names someone of the creator's org, and whether the creator may share the
/// secret at all, is the origin's to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    pub recipient: Recipient,
    pub expires_at: DateTime<Utc>,
    pub max_access_count: Option<i32>,
    pub passphrase: Option<Passphrase>,
    /// Normalised blocks (`10.0.0.0/8`, a bare address as `/32` or `/128`).
    pub ip_allowlist: Option<Vec<Cidr>>,
}

impl ShareSpec {
    /// Checks `request` as of `now`. Fields that do not apply to the recipient type are
    /// refused rather than ignored: a caller who sent an email with an `anyone_with_link`
    /// share must not believe the link is restricted to that address.
    pub fn parse(request: CreateShareRequest, now: DateTime<Utc>) -> Result<Self, InvalidShare> {
        let kind = request.recipient_type;
        let wants_id = matches!(kind, RecipientType::User | RecipientType::Agent);
        let recipient = match (kind, request.recipient_id, request.email) {
            (_, Some(_), _) if !wants_id => return Err(InvalidShare::UnexpectedRecipientId),
            (_, _, Some(_)) if kind != RecipientType::ExternalEmail => {
                return Err(InvalidShare::UnexpectedEmail);
            }
            (RecipientType::User, Some(id), None) => Recipient::User(UserId::from_uuid(id)),
            (RecipientType::Agent, Some(id), None) => Recipient::Agent(AgentId::from_uuid(id)),
            (RecipientType::User | RecipientType::Agent, None, _) => {
                return Err(InvalidShare::MissingRecipientId);
            }
            (RecipientType::ExternalEmail, None, Some(email)) => {
                Recipient::ExternalEmail(Email::parse(&email)?)
            }
            (RecipientType::ExternalEmail, None, None) => return Err(InvalidShare::MissingEmail),
            (RecipientType::AnyoneWithLink, ..) => Recipient::AnyoneWithLink,
            (RecipientType::Creator, ..) => Recipient::Creator,
            // Unreachable given the guards above; refused all the same rather than panicking.
            _ => return Err(InvalidShare::UnexpectedRecipientId),
        };
        if let Some(permissions) = &request.permissions
            && (permissions.is_empty() || permissions.iter().any(|p| *p != Permission::Read))
        {
            return Err(InvalidShare::Permissions);
        }
        if request.expires_at <= now {
            return Err(InvalidShare::ExpiryPast);
        }
        if request.expires_at > now + Duration::days(MAX_SHARE_DAYS) {
            return Err(InvalidShare::ExpiryTooFar);
        }
        if request.max_access_count.is_some_and(|count| count < 1) {
            return Err(InvalidShare::MaxAccessCount);
        }
        let passphrase = request.passphrase.map(Passphrase::parse).transpose()?;
        let ip_allowlist = match request.ip_allowlist {
            None => None,
            Some(entries) if entries.is_empty() => return Err(InvalidShare::EmptyAllowlist),
            // Every read of the share checks the client against each entry.
            Some(entries) if entries.len() > MAX_SHARE_ALLOWLIST => {
                return Err(InvalidShare::AllowlistTooLong);
            }
            Some(entries) => Some(
                entries
                    .iter()
                    .map(|entry| Cidr::parse(entry.trim()))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Self {
            recipient,
            expires_at: request.expires_at,
            max_access_count: request.max_access_count,
            passphrase,
            ip_allowlist,
        })
    }
}

/// A share as created: `201` of `POST /v1/secrets/{secret_id}/share`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShareResponse {
    pub id: ShareId,
    /// `{public_url}/s/{id}`: the page a person opens.
    pub share_url: String,
    pub recipient_type: RecipientType,
    /// The address of an `external_email` share; `null` otherwise.
    pub recipient_email: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub max_access_count: Option<i32>,
}

/// The optional JSON body of `GET /v1/share/{share_id}` (the header form is preferred).
#[derive(Clone, Default, Deserialize, ToSchema)]
pub struct SharePassphraseBody {
    /// 1 to 1024 bytes, no control characters, no spaces at either end.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub passphrase: Option<String>,
}

impl fmt::Debug for SharePassphraseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharePassphraseBody")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A shared secret as read through its share: `200` of `GET /v1/share/{share_id}`.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SharedSecretResponse {
    /// The secret's id.
    pub id: SecretId,
    pub path: String,
    #[serde(rename = "type")]
    pub secret_type: SecretType,
    pub value: String,
    /// Reads of the share so far, this one included.
    pub access_count: i32,
    pub max_access_count: Option<i32>,
}

impl fmt::Debug for SharedSecretResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecretResponse")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("value", &"<redacted>")
            .field("access_count", &self.access_count)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/share/{share_id}/status`: what the share page needs before the reveal. Never
/// counts as a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShareStatusResponse {
    pub id: ShareId,
    pub requires_passphrase: bool,
    pub expires_at: DateTime<Utc>,
}

/// One share in `GET /v1/shares/outbound` or `/v1/shares/inbound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShareSummary {
    pub id: ShareId,
    pub secret_path: String,
    pub recipient_type: RecipientType,
    pub recipient_email: Option<String>,
    pub access_count: i32,
    pub max_access_count: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub is_expired: bool,
    pub is_accepted: bool,
}

/// `GET /v1/shares/outbound`, `GET /v1/shares/inbound`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShareListResponse {
    pub shares: Vec<ShareSummary>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The kind of principal that made a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreatorType {
    User,
    Agent,
}

/// One live share in `GET /v1/org/shares`: who made it, for whom, until when, how often read.
/// Never its value, passphrase or allowlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgShare {
    pub id: ShareId,
    pub secret_id: SecretId,
    #[schema(value_type = String, format = Uuid)]
    pub vault_id: Uuid,
    pub secret_path: String,
    pub creator_type: CreatorType,
    #[schema(value_type = String, format = Uuid)]
    pub creator_id: Uuid,
    pub recipient_type: RecipientType,
    /// The user or agent it is for (`user`, `agent` and `creator` shares).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub recipient_id: Option<Uuid>,
    /// The outside address it was mailed to (`external_email` shares).
    pub recipient_email: Option<String>,
    pub has_passphrase: bool,
    pub has_ip_allowlist: bool,
    pub access_count: i32,
    pub max_access_count: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/org/shares`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgShareListResponse {
    pub shares: Vec<OrgShare>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn share_ids_are_redacted_from_every_path_that_can_hold_one() {
        let id = "3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";
        for (path, logged) in [
            (format!("/v1/share/{id}"), "/v1/share/{share_id}"),
            (
                format!("/v1/share/{id}/status"),
                "/v1/share/{share_id}/status",
            ),
            (
                format!("/v1/shares/{id}/accept"),
                "/v1/shares/{share_id}/accept",
            ),
            (
                format!("/v1/shares/{id}/decline"),
                "/v1/shares/{share_id}/decline",
            ),
            (format!("/s/{id}"), "/s/{share_id}"),
            // Whatever sits in the id's place is taken for one, UUID or not.
            ("/v1/share/not-a-uuid".to_owned(), "/v1/share/{share_id}"),
            // An id hidden further along is redacted as well.
            (
                format!("/v1/share//{id}"),
                "/v1/share/{share_id}/{redacted}",
            ),
            (
                format!("/s/x/{id}/status"),
                "/s/{share_id}/{redacted}/status",
            ),
            (
                format!("/v1/shares/inbound/{id}"),
                "/v1/shares/{share_id}/{redacted}",
            ),
        ] {
            let shown = loggable_path(&path);
            assert_eq!(shown, logged, "{path}");
            assert!(!shown.contains(id), "{path}");
        }
    }

    #[test]
    fn secret_request_ids_are_redacted_like_share_ids() {
        let id = "3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";
        for (path, logged) in [
            (
                format!("/v1/secret-requests/{id}"),
                "/v1/secret-requests/{share_id}",
            ),
            (
                format!("/v1/secret-requests/{id}/fulfil"),
                "/v1/secret-requests/{share_id}/fulfil",
            ),
            (
                format!("/v1/secret-requests/{id}/prompt"),
                "/v1/secret-requests/{share_id}/prompt",
            ),
            (format!("/r/{id}"), "/r/{share_id}"),
        ] {
            assert_eq!(loggable_path(&path), logged, "{path}");
        }
        let list = "/v1/vaults/3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f/secret-requests";
        assert!(matches!(loggable_path(list), Cow::Borrowed(_)));
    }

    #[test]
    fn paths_without_a_share_id_are_logged_as_they_are() {
        for path in [
            "/v1/shares/inbound",
            "/v1/shares/outbound",
            "/v1/org/shares",
            "/v1/vaults",
            "/v1/secrets/3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f/share",
            "/v1/health",
        ] {
            assert!(
                matches!(loggable_path(path), Cow::Borrowed(p) if p == path),
                "{path}"
            );
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn request(body: Value) -> CreateShareRequest {
        let mut base = json!({
            "recipient_type": "anyone_with_link",
            "expires_at": (now() + Duration::hours(1)).to_rfc3339(),
        });
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), body) {
            base.extend(extra);
        }
        serde_json::from_value(base).unwrap()
    }

    fn parse(body: Value) -> Result<ShareSpec, InvalidShare> {
        ShareSpec::parse(request(body), now())
    }

    #[test]
    fn a_link_share_needs_nothing_but_an_expiry() {
        let spec = parse(json!({})).unwrap();
        assert_eq!(spec.recipient, Recipient::AnyoneWithLink);
        assert_eq!(spec.max_access_count, None);
        assert!(spec.passphrase.is_none() && spec.ip_allowlist.is_none());
    }

    #[test]
    fn a_request_without_an_expiry_does_not_parse() {
        let body = json!({"recipient_type": "anyone_with_link"});
        assert!(serde_json::from_value::<CreateShareRequest>(body).is_err());
    }

    #[test]
    fn expiry_must_be_ahead_and_within_thirty_days() {
        let at = |offset: Duration| json!({"expires_at": (now() + offset).to_rfc3339()});
        assert_eq!(parse(at(Duration::zero())), Err(InvalidShare::ExpiryPast));
        assert_eq!(
            parse(at(Duration::seconds(-1))),
            Err(InvalidShare::ExpiryPast)
        );
        assert!(parse(at(Duration::seconds(1))).is_ok());
        assert!(parse(at(Duration::days(MAX_SHARE_DAYS))).is_ok());
        assert_eq!(
            parse(at(Duration::days(MAX_SHARE_DAYS) + Duration::seconds(1))),
            Err(InvalidShare::ExpiryTooFar)
        );
    }

    #[test]
    fn user_and_agent_shares_need_a_recipient_id_and_only_they_take_one() {
        let id = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
        let uuid = Uuid::parse_str(id).unwrap();
        assert_eq!(
            parse(json!({"recipient_type": "user", "recipient_id": id}))
                .unwrap()
                .recipient,
            Recipient::User(UserId::from_uuid(uuid))
        );
        assert_eq!(
            parse(json!({"recipient_type": "agent", "recipient_id": id}))
                .unwrap()
                .recipient,
            Recipient::Agent(AgentId::from_uuid(uuid))
        );
        for kind in ["user", "agent"] {
            assert_eq!(
                parse(json!({"recipient_type": kind})),
                Err(InvalidShare::MissingRecipientId)
            );
        }
        for kind in ["anyone_with_link", "creator", "external_email"] {
            assert_eq!(
                parse(json!({"recipient_type": kind, "recipient_id": id, "email": "a@b.c"})),
                Err(InvalidShare::UnexpectedRecipientId),
                "{kind}"
            );
        }
    }

    #[test]
    fn external_email_shares_need_an_address_which_is_normalised() {
        assert_eq!(
            parse(json!({"recipient_type": "external_email", "email": " Ada@Example.ORG "}))
                .unwrap()
                .recipient,
            Recipient::ExternalEmail(Email::parse("ada@example.org").unwrap())
        );
        assert_eq!(
            parse(json!({"recipient_type": "external_email"})),
            Err(InvalidShare::MissingEmail)
        );
        assert!(matches!(
            parse(json!({"recipient_type": "external_email", "email": "nope"})),
            Err(InvalidShare::Email(_))
        ));
        assert_eq!(
            parse(json!({"email": "a@b.c"})),
            Err(InvalidShare::UnexpectedEmail)
        );
    }

    #[test]
    fn a_share_grants_read_and_nothing_else() {
        assert!(parse(json!({"permissions": ["read"]})).is_ok());
        for bad in [json!([]), json!(["read", "write"]), json!(["share"])] {
            assert_eq!(
                parse(json!({"permissions": bad})),
                Err(InvalidShare::Permissions)
            );
        }
    }

    #[test]
    fn access_counts_start_at_one() {
        assert!(parse(json!({"max_access_count": 1})).is_ok());
        for bad in [0, -1] {
            assert_eq!(
                parse(json!({"max_access_count": bad})),
                Err(InvalidShare::MaxAccessCount)
            );
        }
    }

    #[test]
    fn passphrases_must_travel_in_a_header_unchanged_and_are_never_shown() {
        for bad in [
            String::new(),
            "x".repeat(MAX_PASSPHRASE_LEN + 1),
            // 2 bytes each: 1024 characters are 2048 bytes.
            "\u{e9}".repeat(MAX_PASSPHRASE_LEN),
            " leading".to_owned(),
            "trailing ".to_owned(),
            "new\nline".to_owned(),
            "tab\there".to_owned(),
        ] {
            assert_eq!(
                parse(json!({"passphrase": bad})),
                Err(InvalidShare::Passphrase),
                "{bad:?}"
            );
        }
        for good in [
            "x".repeat(MAX_PASSPHRASE_LEN),
            "p\u{e4}ss phr\u{e4}se \u{1f511}".to_owned(),
            "1".to_owned(),
        ] {
            assert!(parse(json!({"passphrase": good})).is_ok(), "{good:?}");
        }
        let request = request(json!({"passphrase": "canary-passphrase-77"}));
        assert!(!format!("{request:?}").contains("canary-passphrase-77"));
        let spec = ShareSpec::parse(request, now()).unwrap();
        assert!(!format!("{spec:?}").contains("canary-passphrase-77"));
        let body: SharePassphraseBody =
            serde_json::from_value(json!({"passphrase": "canary-passphrase-77"})).unwrap();
        assert!(!format!("{body:?}").contains("canary-passphrase-77"));
    }

    #[test]
    fn allowlists_take_addresses_and_blocks_and_refuse_the_rest() {
        let spec =
            parse(json!({"ip_allowlist": ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]})).unwrap();
        let blocks: Vec<String> = spec
            .ip_allowlist
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(blocks, ["127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(
            parse(json!({"ip_allowlist": []})),
            Err(InvalidShare::EmptyAllowlist)
        );
        for bad in ["10.0.0.0/33", "not-an-ip", "10.1.2.3/8"] {
            assert!(
                matches!(
                    parse(json!({"ip_allowlist": [bad]})),
                    Err(InvalidShare::Allowlist(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn share_ids_round_trip_and_make_links() {
        let id = ShareId::from_random_bytes([0xAB; 16]);
        assert_eq!(ShareId::parse(&id.to_string()), Some(id));
        assert_eq!(ShareId::parse("../etc"), None);
        assert_eq!(
            share_url("https://vault.example.com/", id),
            format!("https://vault.example.com/s/{id}")
        );
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    #[test]
    fn recipient_types_round_trip_through_their_names() {
        for kind in RecipientType::ALL {
            assert_eq!(RecipientType::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!(RecipientType::AnyoneWithLink.is_link() && RecipientType::ExternalEmail.is_link());
        assert!(!RecipientType::User.is_link() && !RecipientType::Creator.is_link());
    }
}

/// Property tests: share ids round-trip, no log line carries one, and a checked share keeps
/// every rule.
#[cfg(test)]
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::{Value, json};

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    /// Segments after an id: the routes' own words, empty ones, and junk.
    fn tail_segment() -> impl Strategy<Value = String> {
        prop_oneof![
            select(SHARE_PATH_WORDS.to_vec()).prop_map(str::to_owned),
            Just(String::new()),
            "[a-zA-Z0-9%._{}-]{1,12}",
        ]
    }

    /// The segments a redacted path may show after its prefix.
    fn is_loggable_segment(segment: &str) -> bool {
        segment.is_empty()
            || segment == "{share_id}"
            || segment == "{redacted}"
            || SHARE_PATH_WORDS.contains(&segment)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn a_share_id_parses_back_from_its_text(bytes in any::<[u8; 16]>()) {
            let id = ShareId::from_random_bytes(bytes);
            prop_assert_eq!(ShareId::parse(&id.to_string()), Some(id));
            prop_assert_eq!(id.as_uuid().as_bytes(), &bytes);
            let json = serde_json::to_string(&id).unwrap_or_default();
            prop_assert_eq!(serde_json::from_str::<ShareId>(&json).ok(), Some(id));
            let link = share_url("https://x.example/", id);
            prop_assert_eq!(link, format!("https://x.example/s/{id}"));
        }

        #[test]
        fn arbitrary_text_never_panics_and_what_parses_prints_back_to_the_same_id(
            text in crate::any_text(),
        ) {
            if let Some(id) = ShareId::parse(&text) {
                prop_assert_eq!(ShareId::parse(&id.to_string()), Some(id));
            }
            prop_assert_eq!(
                RecipientType::parse(&text).map(RecipientType::as_str),
                RecipientType::ALL.into_iter().map(RecipientType::as_str).find(|name| *name == text)
            );
        }

        // Behind a share prefix, only the routes' words and placeholders survive: no id, in
        // whatever segment it hides.
        #[test]
        fn no_share_id_reaches_a_log_line_from_a_share_path(
            prefix in select(SHARE_ID_PREFIXES.to_vec()),
            bytes in any::<[u8; 16]>(),
            before in vec(tail_segment(), 0..3),
            after in vec(tail_segment(), 0..4),
        ) {
            let id = ShareId::from_random_bytes(bytes).to_string();
            let mut segments = before;
            segments.push(id.clone());
            segments.extend(after);
            let path = format!("{prefix}{}", segments.join("/"));
            let shown = loggable_path(&path);
            prop_assert!(!shown.contains(&id), "{} logged as {}", path, shown);
            let rest = shown.strip_prefix(prefix).unwrap_or_default();
            prop_assert!(rest.split('/').all(is_loggable_segment), "{} logged as {}", path, shown);
            prop_assert_eq!(loggable_path(&shown), shown.clone());
        }

        // Any path at all: no panic, kept as it is or redacted to loggable segments, and
        // redacting twice changes nothing.
        #[test]
        fn any_path_is_kept_or_redacted_and_redaction_is_stable(
            path in prop_oneof![
                crate::any_text(),
                "(/v1/shares?/|/s/|/r/|/v1/secret-requests/|/v1/shares/(in|out)bound)[a-z0-9/%{}-]{0,20}",
            ],
        ) {
            let shown = loggable_path(&path);
            match &shown {
                Cow::Borrowed(kept) => prop_assert_eq!(*kept, path.as_str()),
                Cow::Owned(redacted) => {
                    let prefix = SHARE_ID_PREFIXES
                        .into_iter()
                        .find(|prefix| path.starts_with(prefix));
                    prop_assert!(prefix.is_some());
                    let rest = redacted
                        .strip_prefix(prefix.unwrap_or_default())
                        .unwrap_or_default();
                    prop_assert!(rest.split('/').all(is_loggable_segment), "{}", redacted);
                }
            }
            prop_assert_eq!(loggable_path(&shown), shown.clone());
        }

        // A share request of random fields: checking never panics, and what passes keeps
        // every rule the module states.
        #[test]
        fn a_checked_share_keeps_every_rule(
            kind in select(RecipientType::ALL.to_vec()),
            // Mostly the fields the kind asks for, sometimes any.
            fields_match in proptest::bool::weighted(0.8),
            id in any::<u128>(),
            wrong_fields in (any::<bool>(), any::<bool>()),
            email in prop_oneof![
                3 => "[a-zA-Z. ]{0,6}@[a-z.]{0,6}",
                1 => crate::any_text(),
            ],
            permissions in proptest::option::of(
                vec(select(crate::policy::Permission::ALL.to_vec()), 0..3),
            ),
            expires_in in prop_oneof![3 => -5i64..800, 1 => any::<i32>().prop_map(i64::from)],
            max_access_count in proptest::option::of(prop_oneof![1i32..5, any::<i32>()]),
            passphrase in proptest::option::of(prop_oneof![
                "[ a-z\t\n]{0,8}",
                crate::any_text(),
            ]),
            ip_allowlist in proptest::option::of(vec(
                prop_oneof!["[0-9./:af ]{0,16}", "10\\.[0-9]{1,3}\\.0\\.0/[0-9]{1,3}", " ?::1 ?"],
                0..4,
            )),
        ) {
            let wants_id = matches!(kind, RecipientType::User | RecipientType::Agent);
            let (with_id, with_email) = if fields_match {
                (wants_id, kind == RecipientType::ExternalEmail)
            } else {
                wrong_fields
            };
            let recipient_id = with_id.then_some(id);
            let email = with_email.then_some(email);
            let mut body = json!({
                "recipient_type": kind,
                "expires_at": (now() + Duration::seconds(expires_in * 3_600)).to_rfc3339(),
                "permissions": permissions,
                "max_access_count": max_access_count,
                "passphrase": passphrase,
                "ip_allowlist": ip_allowlist,
            });
            if let (Some(body), Some(id)) = (body.as_object_mut(), recipient_id) {
                body.insert("recipient_id".into(), json!(Uuid::from_u128(id)));
            }
            if let (Some(body), Some(email)) = (body.as_object_mut(), &email) {
                body.insert("email".into(), Value::String(email.clone()));
            }
            let request: CreateShareRequest = serde_json::from_value(body)
                .map_err(|err| TestCaseError::fail(err.to_string()))?;
            if let Ok(spec) = ShareSpec::parse(request, now()) {
                prop_assert_eq!(spec.recipient.kind(), kind);
                prop_assert!(spec.expires_at > now());
                prop_assert!(spec.expires_at <= now() + Duration::days(MAX_SHARE_DAYS));
                prop_assert!(spec.max_access_count.is_none_or(|count| count >= 1));
                if let Some(passphrase) = spec.passphrase.clone() {
                    prop_assert!(is_usable_passphrase(&passphrase.into_inner()));
                }
                if let Some(blocks) = &spec.ip_allowlist {
                    prop_assert!((1..=MAX_SHARE_ALLOWLIST).contains(&blocks.len()));
                    for block in blocks {
                        prop_assert_eq!(Cidr::parse(&block.to_string()), Ok(*block));
                    }
                }
                if let Recipient::ExternalEmail(address) = &spec.recipient {
                    prop_assert_eq!(Email::parse(address.as_str()), Ok(address.clone()));
                }
                let wants_id = matches!(kind, RecipientType::User | RecipientType::Agent);
                prop_assert_eq!(recipient_id.is_some(), wants_id);
                prop_assert_eq!(email.is_some(), kind == RecipientType::ExternalEmail);
            }
        }
    }
}
