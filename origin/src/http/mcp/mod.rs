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
//! as their structured content; protocol errors are JSON-RPC errors.

mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oxvault_core::claims::Claims;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::client::ClientContext;
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
/// its body.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = ClientContext::of(&parts, &state.edge_trust);
    if let Some(origin) = parts.headers.get(header::ORIGIN)
        && !same_origin(origin.as_bytes(), &client.public_url)
    {
        return protocol_refusal(
            StatusCode::FORBIDDEN,
            "this Origin may not use the MCP endpoint",
        );
    }
    let Some(token) = super::extract::bearer(&parts).map(str::to_owned) else {
        return protocol_refusal(StatusCode::UNAUTHORIZED, "a bearer token is required");
    };
    let checked = async {
        let claims = state.auth.verify(&token).await?;
        let principal = state.auth.authenticate(&token).await?;
        Ok::<_, ServiceError>(Caller { principal, claims })
    };
    match checked.await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(ServiceError::Unauthenticated(detail)) => {
            protocol_refusal(StatusCode::UNAUTHORIZED, detail)
        }
        Err(other) => ApiError::from(other).into_response(),
    }
}

/// Whether an `Origin` header names the service's own origin (that of `public_url`).
fn same_origin(origin: &[u8], public_url: &str) -> bool {
    let own = url::Url::parse(public_url).map(|url| url.origin().ascii_serialization());
    own.is_ok_and(|own| own.as_bytes() == origin)
}

/// A refusal before any JSON-RPC message was read, as a JSON-RPC error (which MCP clients
/// surface with its message), with `WWW-Authenticate` on a 401.
fn protocol_refusal(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32001, "message": message},
    });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
