//! The Model Context Protocol server, `/mcp`: the vault's tools for any MCP client, over the
//! Streamable HTTP transport of the official Rust SDK (`rmcp`), stateless, with JSON answers.
//!
//! Every request is authenticated here before the SDK sees it ([`authenticate`]): a bearer
//! access token (the edge has already turned an `ocv_` or `1ck_` key into one), checked like
//! any REST call's (signature, token version, the agent active). Each tool then stands for one
//! REST route and is held to that route's scope ([`super::extract::Gate::for_route`]) and calls
//! the same service, so policies, tier limits and the audit trail are the REST API's own.
//! A browser page of another origin is refused (`Origin` must be the service's own).
//!
//! Failures of a tool (403, 404, 400...) are tool results with `isError` and the RFC 7807 body
//! as their structured content; protocol errors are JSON-RPC errors; refusals before a message
//! is read (no token, another origin, the transport's own checks) are problem documents.

mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oxvault_core::claims::Claims;
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::client::ClientContext;
use super::error::problem_response;
use super::{ApiError, AppState};
use crate::service::ServiceError;
use crate::service::principal::Principal;
pub use tools::VaultTools;

/// Where the server is mounted, at the origin and at the edge.
pub const MCP_PATH: &str = "/mcp";

/// The authenticated caller of an MCP request, put in its extensions by [`authenticate`].
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    /// For the secret read, whose one statement checks the principal again.
    pub claims: Claims,
}

/// The SDK's service for `/mcp`, answering with [`VaultTools`].
pub fn service(state: AppState) -> StreamableHttpService<VaultTools, NeverSessionManager> {
    let tools = VaultTools::new(state);
    let config = StreamableHttpServerConfig::default()
        // No sessions: every POST stands alone, so any origin process can serve it.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // The origin is reached by many names (the edge, a load balancer); `Origin` is checked
        // in [`authenticate`] against the service's public URL instead.
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// Authenticates an MCP request and refuses browsers of other origins, before the SDK reads
/// its body; answers the SDK's own refusals as problem documents.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = ClientContext::of(&parts, &state.edge_trust);
    if let Some(origin) = parts.headers.get(header::ORIGIN)
        && !same_origin(origin.as_bytes(), &client.public_url)
    {
        let detail = "this Origin may not use the MCP endpoint";
        return problem_response(ProblemKind::Forbidden.with_detail(detail));
    }
    let Some(token) = super::extract::bearer(&parts).map(str::to_owned) else {
        let detail = "a bearer token is required";
        return problem_response(ProblemKind::Unauthorized.with_detail(detail));
    };
    let checked = async {
        let claims = state.auth.verify(&token).await?;
        let principal = state.auth.admit(&claims).await?;
        Ok::<_, ServiceError>(Caller { principal, claims })
    };
    match checked.await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            accept_json_answers(&mut parts.headers);
            as_problem(next.run(Request::from_parts(parts, body)).await).await
        }
        Err(other) => ApiError::from(other).into_response(),
    }
}

/// The transport wants clients to accept both JSON and event streams; this server only ever
/// answers JSON, so a client that accepts JSON (or anything, or says nothing) is served.
fn accept_json_answers(headers: &mut HeaderMap) {
    let accepts_json = headers.get_all(header::ACCEPT).iter().all(|value| {
        let value = value.to_str().unwrap_or_default();
        value.contains("application/json") || value.contains("*/*")
    });
    if accepts_json {
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
}

/// The SDK refuses a wrong method, `Accept`, `Content-Type`, body or protocol version in plain
/// text; such an answer becomes a problem document with the same status and words.
async fn as_problem(response: Response) -> Response {
    let kind = match response.status().as_u16() {
        400 => ProblemKind::BadRequest,
        405 => ProblemKind::MethodNotAllowed,
        406 => ProblemKind::NotAcceptable,
        413 => ProblemKind::PayloadTooLarge,
        415 => ProblemKind::UnsupportedMediaType,
        _ => return response,
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), MAX_REFUSAL_BYTES)
        .await
        .unwrap_or_default();
    let detail: String = String::from_utf8_lossy(&text)
        .trim()
        .chars()
        .take(300)
        .collect();
    let mut problem = problem_response(kind.with_detail(detail));
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// The longest plain-text refusal of the SDK's that is read.
const MAX_REFUSAL_BYTES: usize = 4096;

/// Whether an `Origin` header names the service's own origin (that of `public_url`).
fn same_origin(origin: &[u8], public_url: &str) -> bool {
    let own = url::Url::parse(public_url).map(|url| url.origin().ascii_serialization());
    own.is_ok_and(|own| own.as_bytes() == origin)
}

/// One JSON-RPC 2.0 message of the Model Context Protocol: a request (with an `id`) or a
/// notification (without one).
#[derive(ToSchema)]
#[allow(dead_code)] // A shape for the document; the SDK parses the messages.
pub struct JsonRpcMessage {
    /// Always `2.0`.
    #[schema(pattern = "^2\\.0$")]
    jsonrpc: String,
    /// Present on requests, absent on notifications.
    #[schema(nullable = false)]
    id: Option<JsonRpcId>,
    /// `initialize`, `notifications/initialized`, `tools/list`, `tools/call`, `ping`, ...
    method: String,
    /// What the method takes.
    #[schema(nullable = false)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A JSON-RPC request id: a number or a string.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
#[allow(dead_code)] // A shape for the document.
pub enum JsonRpcId {
    Number(i64),
    Text(String),
}

/// The protocol revisions with an `initialize` handshake that the server speaks (the SDK's);
/// any other `MCP-Protocol-Version` is a 400.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)] // A shape for the document; the SDK checks the header.
pub enum ProtocolRevision {
    #[serde(rename = "2024-11-05")]
    V20241105,
    #[serde(rename = "2025-03-26")]
    V20250326,
    #[serde(rename = "2025-06-18")]
    V20250618,
    #[serde(rename = "2025-11-25")]
    V20251125,
}

/// The headers of an MCP request besides the bearer token.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // A shape for the document; the SDK checks the header.
pub struct McpHeaders {
    /// The protocol revision agreed in `initialize` (absent on `initialize` itself).
    #[param(rename = "MCP-Protocol-Version", required = false)]
    mcp_protocol_version: ProtocolRevision,
}

/// The Model Context Protocol server (Streamable HTTP, stateless, JSON answers): initialize,
/// list the tools, call them. Each tool is held to the scope and policies of the REST route it
/// stands for (see README, "MCP (for agents)"). A tool's failure is a JSON-RPC result with
/// `isError`; an unknown method or tool is a JSON-RPC error (both status 200).
#[utoipa::path(post, path = "/mcp", tag = "MCP", operation_id = "mcp",
    request_body(content = JsonRpcMessage, content_type = "application/json"),
    params(McpHeaders),
    responses(
        (status = 200, description = "The JSON-RPC response", body = Object, content_type = "application/json"),
        (status = 202, description = "A notification or response, accepted"),
        (status = 400, description = "An unknown `MCP-Protocol-Version`", body = ProblemDetails),
        (status = 401, description = "No valid token (an `ocv_` or `1ck_` key is exchanged at the edge)", body = ProblemDetails),
        (status = 403, description = "A browser page of another origin", body = ProblemDetails),
        (status = 406, description = "The client accepts neither JSON nor event streams", body = ProblemDetails),
        (status = 415, description = "Not a JSON-RPC message (a batch, or not JSON)", body = ProblemDetails),
    ))]
#[allow(dead_code)] // Documents the SDK's service mounted at `/mcp`.
fn mcp_document() {}

/// The document of `/mcp`, merged into the API's.
#[derive(OpenApi)]
#[openapi(paths(mcp_document), components(schemas(ProtocolRevision, JsonRpcMessage, JsonRpcId)), tags((name = "MCP", description = "The Model Context Protocol server for agents")))]
pub struct McpDocument;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_accepts_json_is_served_and_others_are_left_to_the_sdk() {
        for given in [None, Some("application/json"), Some("*/*")] {
            let mut headers = HeaderMap::new();
            if let Some(given) = given {
                headers.insert(header::ACCEPT, HeaderValue::from_static(given));
            }
            accept_json_answers(&mut headers);
            assert_eq!(
                headers[header::ACCEPT],
                "application/json, text/event-stream",
                "{given:?}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        accept_json_answers(&mut headers);
        assert_eq!(headers[header::ACCEPT], "text/html");
    }

    #[test]
    fn only_the_services_own_origin_passes() {
        let public = "https://vault.example.com";
        assert!(same_origin(b"https://vault.example.com", public));
        assert!(same_origin(
            b"http://127.0.0.1:8787",
            "http://127.0.0.1:8787/"
        ));
        for other in [
            &b"https://evil.example"[..],
            b"null",
            b"https://vault.example.com:8443",
            b"http://vault.example.com",
            b"",
        ] {
            assert!(!same_origin(other, public), "{other:?}");
        }
    }
}
