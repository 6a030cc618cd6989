//! The MCP tools: each one is a REST route's work, held to that route's scope ([`ROUTES`]) and
//! done by the same service. Outputs are small schema'd objects (the SDK publishes each one's
//! JSON Schema as the tool's `outputSchema`), reshaped from the REST answers by serde.

use axum::http::Method;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use oxvault_core::ids::{SecretId, VaultId};
use oxvault_core::page::{MAX_PAGE_LIMIT, Page, PathKey, TimeKey, VersionKey, decode_cursor};
use oxvault_core::problem::ProblemKind;
use oxvault_core::secret_request::{CreateSecretRequestRequest, SecretRequestId};
use oxvault_core::share::{CreateShareRequest, RecipientType};
use oxvault_core::vault::{PutSecretRequest, RotateSecretRequest, SecretType};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData as McpError, Json, RoleServer, ServerHandler, tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Caller;
use crate::http::client::ClientContext;
use crate::http::extract::Gate;
use crate::http::{ApiError, AppState};
use crate::service::principal::{Admit, Principal};
use crate::service::secrets::{WriteConditions, Written};

/// Each tool's REST route (method and route as documented): its scope, and what a caller
/// whose scopes do not cover it is refused (and not shown).
const ROUTES: &[(&str, &str, &str)] = &[
    ("list_vaults", "GET", "/v1/vaults"),
    ("list_secrets", "GET", "/v1/vaults/{vault_id}/secrets"),
    (
        "describe_secret",
        "GET",
        "/v1/vaults/{vault_id}/secret-versions/{path}",
    ),
    ("get_secret", "GET", "/v1/vaults/{vault_id}/secrets/{path}"),
    ("put_secret", "PUT", "/v1/vaults/{vault_id}/secrets/{path}"),
    (
        "rotate_secret",
        "POST",
        "/v1/vaults/{vault_id}/secret-rotate/{path}",
    ),
    ("create_share_link", "POST", "/v1/secrets/{secret_id}/share"),
    (
        "request_secret",
        "POST",
        "/v1/vaults/{vault_id}/secret-requests",
    ),
    (
        "get_secret_request",
        "GET",
        "/v1/secret-requests/{request_id}",
    ),
];

/// How long a share link made by `create_share_link` lives when the caller names no time.
const DEFAULT_SHARE_SECS: i64 = 3600;

/// The vault's MCP tools; one value serves every request (a clone is a reference count).
#[derive(Clone)]
pub struct VaultTools {
    state: AppState,
    tool_router: ToolRouter<VaultTools>,
}

/// A failed tool call: a result with `isError`, its structured content the RFC 7807 body the
/// REST route would have answered.
type Failed = CallToolResult;

fn failed(err: impl Into<ApiError>) -> Failed {
    let (problem, _) = err.into().into_problem();
    CallToolResult::structured_error(serde_json::to_value(problem).unwrap_or_default())
}

fn not_found(what: &str) -> Failed {
    failed(ApiError::client(
        ProblemKind::NotFound,
        format!("{what} not found"),
    ))
}

fn vault_id(text: &str) -> Result<VaultId, Failed> {
    VaultId::parse(text).map_err(|_| not_found("vault"))
}

/// `value`, a REST answer, in the shape of a tool output (same field names, fewer types).
fn reshape<T: Serialize, U: DeserializeOwned>(value: &T) -> Result<U, Failed> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|err| failed(ApiError::internal(err)))
}

fn page<K: oxvault_core::page::CursorKey>(cursor: Option<&str>) -> Result<Page<K>, Failed> {
    let after = match cursor {
        None => None,
        Some(text) => Some(decode_cursor(text).ok_or_else(|| {
            failed(ApiError::client(
                ProblemKind::BadRequest,
                "cursor is not one this tool gave",
            ))
        })?),
    };
    Ok(Page {
        limit: MAX_PAGE_LIMIT,
        after,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListSecretsArgs {
    /// The vault's id (from `list_vaults`).
    pub vault_id: String,
    /// Only paths under this prefix, e.g. `api/`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `next_cursor` of the previous answer, for the next page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SecretArgs {
    /// The vault's id (from `list_vaults`).
    pub vault_id: String,
    /// The secret's path, e.g. `api/stripe`.
    pub path: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct PutSecretArgs {
    /// The vault's id (from `list_vaults`).
    pub vault_id: String,
    /// The secret's path, e.g. `api/stripe`.
    pub path: String,
    /// The value to store (a new version).
    pub value: String,
    /// generic, password, api_key, certificate, private_key, ssh_key, env, note or file.
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RotateSecretArgs {
    /// The vault's id (from `list_vaults`).
    pub vault_id: String,
    /// The secret's path, e.g. `api/stripe`.
    pub path: String,
    /// Length of the generated value, 8 to 1024 (default 32).
    #[serde(default)]
    pub length: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareArgs {
    /// The secret's id (from `list_secrets` or `describe_secret`).
    pub secret_id: String,
    /// How long the link works, in seconds (default 3600, at most 30 days).
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
    /// How many times the link may be opened (default: until it expires).
    #[serde(default)]
    pub max_access_count: Option<i32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RequestSecretArgs {
    /// The vault's id (from `list_vaults`).
    pub vault_id: String,
    /// Where the value will be stored, e.g. `api/stripe`.
    pub path: String,
    /// Why you need it: shown to the person on the page.
    pub description: String,
    /// The kind of secret asked for (see `put_secret`).
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
    /// How long the link works, in seconds (default 86400, at most 7 days).
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RequestIdArgs {
    /// The request's id (from `request_secret`).
    pub request_id: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct VaultOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct VaultsOut {
    pub vaults: Vec<VaultOut>,
}

/// A secret's metadata: never its value.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SecretMetaOut {
    pub id: String,
    pub path: String,
    #[serde(rename = "type")]
    pub secret_type: String,
    pub version: i32,
    pub metadata: Value,
    pub created_at: String,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub is_disabled: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SecretsOut {
    pub secrets: Vec<SecretMetaOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DescribeOut {
    pub path: String,
    /// Newest first; disabled ones flagged.
    pub versions: Vec<SecretMetaOut>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct SecretOut {
    pub id: String,
    pub path: String,
    #[serde(rename = "type")]
    pub secret_type: String,
    pub value: String,
    pub version: i32,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ShareOut {
    pub id: String,
    /// The page to hand to the person.
    pub share_url: String,
    pub expires_at: String,
    pub max_access_count: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RequestOut {
    pub id: String,
    /// The page to hand to the person who has the value.
    pub request_url: String,
    /// pending, fulfilled, expired or cancelled.
    pub status: String,
    pub path: String,
    pub expires_at: String,
    /// The version the value became, once fulfilled.
    pub fulfilled_version: Option<i32>,
}

fn secret_type(text: Option<&str>) -> Result<Option<SecretType>, Failed> {
    text.map(|text| {
        SecretType::parse(text).ok_or_else(|| {
            failed(ApiError::client(
                ProblemKind::BadRequest,
                format!("unknown type `{text}`"),
            ))
        })
    })
    .transpose()
}

fn written(answer: Written) -> Result<Json<SecretMetaOut>, Failed> {
    match answer {
        Written::Created(meta) => Ok(Json(reshape(&meta)?)),
        Written::Replayed { body, .. } => Ok(Json(reshape(&body)?)),
    }
}

impl VaultTools {
    /// The caller of this request, let through `tool`'s route: 403 when its scopes do not
    /// cover it.
    fn caller<'p>(
        &self,
        parts: &'p Parts,
        tool: &str,
    ) -> Result<(Principal, Gate, &'p Caller), Failed> {
        let caller = parts.extensions.get::<Caller>().ok_or_else(|| {
            failed(ApiError::client(
                ProblemKind::Unauthorized,
                "not authenticated",
            ))
        })?;
        let gate = gate_of(&self.state, parts, tool);
        let principal = gate.admit(caller.principal.clone()).map_err(failed)?;
        Ok((principal, gate, caller))
    }
}

fn gate_of(state: &AppState, parts: &Parts, tool: &str) -> Gate {
    let (method, route) = ROUTES
        .iter()
        .find(|(name, _, _)| *name == tool)
        .map_or(("POST", "/mcp"), |(_, method, route)| (*method, *route));
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
    Gate::for_route(parts, state, method, route)
}

#[tool_router]
impl VaultTools {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the vaults you can see.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_vaults(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<VaultsOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "list_vaults")?;
        let listed = self
            .state
            .vaults
            .list(&principal, Page::<TimeKey>::first(MAX_PAGE_LIMIT))
            .await
            .map_err(failed)?;
        Ok(Json(reshape(&listed)?))
    }

    #[tool(
        description = "List the secrets of a vault: paths, types, versions and metadata, never values.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_secrets(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ListSecretsArgs>,
    ) -> Result<Json<SecretsOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "list_secrets")?;
        let page = page::<PathKey>(args.cursor.as_deref())?;
        let prefix = args.prefix.unwrap_or_default();
        let listed = self
            .state
            .secrets
            .list(&principal, vault_id(&args.vault_id)?, &prefix, page)
            .await
            .map_err(failed)?;
        Ok(Json(reshape(&listed)?))
    }

    #[tool(
        description = "Describe one secret: its versions' metadata (newest first), never a value.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn describe_secret(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<SecretArgs>,
    ) -> Result<Json<DescribeOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "describe_secret")?;
        let page = page::<VersionKey>(None)?;
        let listed = self
            .state
            .secrets
            .list_versions(&principal, vault_id(&args.vault_id)?, &args.path, page)
            .await
            .map_err(failed)?;
        Ok(Json(DescribeOut {
            path: args.path,
            versions: reshape(&listed.versions)?,
        }))
    }

    #[tool(
        description = "Read a secret's current value. Counted and audited like any read; keep the value out of chat.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn get_secret(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<SecretArgs>,
    ) -> Result<Json<SecretOut>, Failed> {
        let (_, gate, caller) = self.caller(&parts, "get_secret")?;
        let read = self
            .state
            .secrets
            .get(&caller.claims, &gate, vault_id(&args.vault_id)?, &args.path)
            .await
            .map_err(failed)?;
        Ok(Json(SecretOut {
            id: read.id.to_string(),
            secret_type: read.secret_type.as_str().to_owned(),
            version: read.version,
            path: read.path.clone(),
            value: read.value.clone(),
        }))
    }

    #[tool(
        description = "Store a value at a path, as a new version (the older ones are kept).",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn put_secret(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<PutSecretArgs>,
    ) -> Result<Json<SecretMetaOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "put_secret")?;
        let request = PutSecretRequest {
            secret_type: secret_type(args.secret_type.as_deref())?,
            value: args.value,
            metadata: None,
            expires_at: None,
            max_access_count: None,
        };
        let vault = vault_id(&args.vault_id)?;
        let answer = self
            .state
            .secrets
            .put(
                &principal,
                vault,
                &args.path,
                request,
                WriteConditions::default(),
            )
            .await
            .map_err(|err| failed(ApiError::from(err)))?;
        written(answer)
    }

    #[tool(
        description = "Rotate a secret: the server generates a new random value as the next version. The value is not returned.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn rotate_secret(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RotateSecretArgs>,
    ) -> Result<Json<SecretMetaOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "rotate_secret")?;
        let request = RotateSecretRequest {
            length: args.length,
            charset: None,
            secret_type: None,
        };
        let vault = vault_id(&args.vault_id)?;
        let answer = self
            .state
            .secrets
            .rotate(
                &principal,
                vault,
                &args.path,
                request,
                WriteConditions::default(),
            )
            .await
            .map_err(|err| failed(ApiError::from(err)))?;
        written(answer)
    }

    #[tool(
        description = "Make a share link to a secret for a person: anyone with the link may open it, until it expires or is used up.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_share_link(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ShareArgs>,
    ) -> Result<Json<ShareOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "create_share_link")?;
        let secret_id = SecretId::parse(&args.secret_id).map_err(|_| not_found("secret"))?;
        let seconds = args.expires_in_seconds.unwrap_or(DEFAULT_SHARE_SECS);
        let request = CreateShareRequest {
            recipient_type: RecipientType::AnyoneWithLink,
            recipient_id: None,
            email: None,
            permissions: None,
            expires_at: Utc::now() + Duration::seconds(seconds.clamp(-1, 31 * 86_400)),
            max_access_count: args.max_access_count,
            passphrase: None,
            ip_allowlist: None,
        };
        let public_url = ClientContext::of(&parts, &self.state.edge_trust).public_url;
        let share = self
            .state
            .shares
            .create(&principal, secret_id, request, &public_url)
            .await
            .map_err(failed)?;
        Ok(Json(reshape(&share)?))
    }

    #[tool(
        description = "Ask a person for a secret you do not have: answers a link to hand them; they type the value into a page and it goes straight into the vault at `path`. Check with get_secret_request, then read it with get_secret.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn request_secret(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RequestSecretArgs>,
    ) -> Result<Json<RequestOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "request_secret")?;
        let expires_at = args
            .expires_in_seconds
            .map(|seconds| Utc::now() + Duration::seconds(seconds.clamp(-1, 8 * 86_400)));
        let request = CreateSecretRequestRequest {
            path: args.path,
            description: args.description,
            secret_type: secret_type(args.secret_type.as_deref())?,
            expires_at,
            recipient_email: None,
        };
        let public_url = ClientContext::of(&parts, &self.state.edge_trust).public_url;
        let created = self
            .state
            .secret_requests
            .create(&principal, vault_id(&args.vault_id)?, request, &public_url)
            .await
            .map_err(failed)?;
        Ok(Json(reshape(&created)?))
    }

    #[tool(
        description = "Where a secret request stands: pending, fulfilled (with the version), expired or cancelled.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_secret_request(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<RequestIdArgs>,
    ) -> Result<Json<RequestOut>, Failed> {
        let (principal, _, _) = self.caller(&parts, "get_secret_request")?;
        let id =
            SecretRequestId::parse(&args.request_id).ok_or_else(|| not_found("secret request"))?;
        let public_url = ClientContext::of(&parts, &self.state.edge_trust).public_url;
        let found = self
            .state
            .secret_requests
            .get(&principal, id, &public_url)
            .await
            .map_err(failed)?;
        Ok(Json(reshape(&found)?))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for VaultTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("oxvault", oxvault_core::VERSION))
            .with_instructions(
                "oxvault holds this agent's secrets. Read one with get_secret when you need it \
                 and never repeat it in chat; ask a person for one you lack with request_secret.",
            )
    }

    /// Only the tools the caller's scopes allow (a call of another is refused anyway).
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let parts = context.extensions.get::<Parts>();
        let caller = parts.and_then(|parts| parts.extensions.get::<Caller>());
        let (Some(parts), Some(caller)) = (parts, caller) else {
            return Err(McpError::invalid_request("not authenticated", None));
        };
        let tools = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|tool| gate_of(&self.state, parts, &tool.name).allows(&caller.principal))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_route_and_every_route_a_tool() {
        let tools = VaultTools::tool_router().list_all();
        assert_eq!(tools.len(), ROUTES.len());
        for tool in &tools {
            assert!(
                ROUTES.iter().any(|(name, _, _)| *name == tool.name),
                "{}",
                tool.name
            );
            let annotations = tool.annotations.as_ref().expect("annotations");
            assert!(annotations.read_only_hint.is_some(), "{}", tool.name);
            assert!(
                tool.output_schema.is_some(),
                "{}: no output schema",
                tool.name
            );
        }
    }
}
