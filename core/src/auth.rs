//! Wire types of authentication and identity: sessions, the caller's profile, personal API
//! keys, agents and org members. Field names and shapes follow 1Claw's v1 API; fields 1Claw
//! has for features oxvault does not build are left out of responses and ignored in requests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::claims::Role;
use crate::ids::{AgentId, ApiKeyId, OrgId, UserId, VaultId};
use crate::sensitive::Sensitive;

/// `POST /v1/auth/signup`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SignupRequest {
    /// `name@domain`: one `@`, no spaces or control characters, the domain not starting or
    /// ending with a dot; at most 254 bytes once normalised (NFKC, lower case).
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.]([^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.])?$"
    )]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256)]
    pub password: Sensitive,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `POST /v1/auth/token`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: Sensitive,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: Sensitive,
}

/// `POST /v1/auth/change-password`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: Sensitive,
    #[schema(value_type = String, format = Password)]
    pub new_password: Sensitive,
}

/// `POST /v1/auth/change-password` answer: every session has ended, and how to go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PasswordChangedResponse {
    pub message: String,
}

/// `POST /v1/auth/google`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct GoogleAuthRequest {
    #[schema(value_type = String)]
    pub id_token: Sensitive,
}

/// `POST /v1/auth/api-key-token`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ApiKeyTokenRequest {
    #[schema(value_type = String)]
    pub api_key: Sensitive,
}

/// `POST /v1/auth/agent-token`. `agent_id` is optional: the key names its agent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AgentTokenRequest {
    #[schema(value_type = String)]
    pub api_key: Sensitive,
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// A session: what login, refresh, Google and API-key exchanges answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// Opaque, single-use; absent for exchanges that do not open a refreshable session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /v1/auth/signup` answer: 1Claw's fields plus the refresh token and lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignupResponse {
    pub message: String,
    pub email: String,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

/// `POST /v1/auth/agent-token` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentTokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub agent_id: AgentId,
    pub vault_ids: Vec<VaultId>,
}

/// `GET /v1/auth/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserProfileResponse {
    pub id: UserId,
    pub org_id: OrgId,
    pub email: String,
    pub display_name: String,
    /// `password` or `google`.
    pub auth_method: String,
    pub role: Role,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/auth/api-keys`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    /// 1 to 100 characters, not all spaces (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A personal API key as listed: never the key itself, only its prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: ApiKeyId,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `POST /v1/auth/api-keys` answer: the key (`1ck_...`) is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreatedResponse {
    pub key: ApiKeyResponse,
    #[schema(value_type = String)]
    pub api_key: Sensitive,
}

/// `GET /v1/auth/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyListResponse {
    pub keys: Vec<ApiKeyResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `POST /v1/agents`. Unknown fields (1Claw's transaction, Shroud and card settings) are
/// accepted and ignored, so the official SDK's defaults never make a request fail.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateAgentRequest {
    /// 1 to 100 characters, not all spaces (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// At most 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub vault_ids: Option<Vec<VaultId>>,
    /// Lifetime of the agent's access tokens, 60 to 86400 seconds.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 86400)]
    pub token_ttl_seconds: Option<i32>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PATCH /v1/agents/{agent_id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateAgentRequest {
    /// 1 to 100 characters, not all spaces (trimmed), no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// At most 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub vault_ids: Option<Vec<VaultId>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Lifetime of the agent's access tokens, 60 to 86400 seconds.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 86400)]
    pub token_ttl_seconds: Option<i32>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An agent as shown to its org's admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentResponse {
    pub id: AgentId,
    pub name: String,
    pub description: Option<String>,
    /// Always `api_key`: the one way agents authenticate here.
    pub auth_method: String,
    pub scopes: Vec<String>,
    pub is_active: bool,
    /// Always `false`: transaction intents are not part of oxvault.
    pub intents_api_enabled: bool,
    /// Always `false`: Shroud is not part of oxvault.
    pub shroud_enabled: bool,
    pub token_ttl_seconds: Option<i32>,
    pub vault_ids: Vec<VaultId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/agents` answer: the key (`ocv_...`) is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentCreatedResponse {
    pub agent: AgentResponse,
    #[schema(value_type = String)]
    pub api_key: Sensitive,
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentListResponse {
    pub agents: Vec<AgentResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/agents/me`: an agent's view of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentSelfResponse {
    pub id: AgentId,
    pub name: String,
    pub description: Option<String>,
    pub org_id: OrgId,
    pub scopes: Vec<String>,
    pub is_active: bool,
    pub intents_api_enabled: bool,
    pub shroud_enabled: bool,
    pub vault_ids: Vec<VaultId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/agents/{agent_id}/rotate-key` answer: the new key, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentKeyRotatedResponse {
    #[schema(value_type = String)]
    pub api_key: Sensitive,
}

/// A member of the caller's org. `id` is the user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgMemberResponse {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub auth_method: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/org/members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgMemberListResponse {
    pub members: Vec<OrgMemberResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `PATCH /v1/org/members/{user_id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct UpdateMemberRoleRequest {
    pub role: Role,
}

/// `POST /v1/org/invite`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct InviteMemberRequest {
    /// `name@domain`: one `@`, no spaces or control characters, the domain not starting or
    /// ending with a dot; at most 254 bytes once normalised (NFKC, lower case).
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.]([^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.])?$"
    )]
    pub email: String,
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /v1/org/invite` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InviteMemberResponse {
    pub message: String,
    pub email: String,
}

/// `POST /v1/org/invitations/accept`: the token from the invitation mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AcceptInvitationRequest {
    /// `oiv_...`, as the mail gives it.
    #[schema(value_type = String)]
    pub token: Sensitive,
}

/// `GET /v1/auth/jwt-public-key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JwtPublicKeyResponse {
    pub alg: String,
    pub public_key_base64: String,
}
