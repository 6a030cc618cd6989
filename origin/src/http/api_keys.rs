//! `/v1/auth/api-keys*`: a user's personal API keys (`1ck_`), and
//! `POST /v1/auth/api-key-token`, which exchanges one for an access token. Rules live in
//! [`crate::service::api_keys`].

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oxvault_core::auth::{
    ApiKeyCreatedResponse, ApiKeyListResponse, ApiKeyTokenRequest, CreateApiKeyRequest,
    TokenResponse,
};
use oxvault_core::ids::ApiKeyId;
use oxvault_core::page::{PageParams, TimeKey};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::client::ClientContext;
use super::extract::{ApiJson, Paging};
use super::{ApiError, AppState};
use crate::service::principal::Principal;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
        .routes(routes!(api_key_token))
}

/// The key id in the path. Text that is not a UUID names no key: 404, like a missing one.
fn key_id(path: Result<Path<String>, PathRejection>) -> Result<ApiKeyId, ApiError> {
    path.ok()
        .and_then(|Path(text)| ApiKeyId::parse(&text).ok())
        .ok_or_else(|| ApiError::client(ProblemKind::NotFound, "API key not found"))
}

/// Create a personal API key; the key is in this answer and never again.
#[utoipa::path(post, path = "/v1/auth/api-keys", tag = "API Keys", operation_id = "createApiKey",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "API key created (full key shown once)", body = ApiKeyCreatedResponse),
        (status = 400, description = "Invalid name, scopes or expiry", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents have no personal keys", body = ProblemDetails),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreatedResponse>), ApiError> {
    let created = state.api_keys.create(&principal, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List the caller's personal API keys (prefix only), newest first, one page at a time.
#[utoipa::path(get, path = "/v1/auth/api-keys", tag = "API Keys", operation_id = "listApiKeys",
    params(PageParams),
    responses(
        (status = 200, description = "One page of API keys (masked)", body = ApiKeyListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents have no personal keys", body = ProblemDetails),
    ))]
async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<ApiKeyListResponse>, ApiError> {
    Ok(Json(state.api_keys.list(&principal, page).await?))
}

/// Revoke one of the caller's API keys and every session opened from it.
#[utoipa::path(delete, path = "/v1/auth/api-keys/{key_id}", tag = "API Keys",
    operation_id = "revokeApiKey",
    params(("key_id" = String, Path, format = Uuid, description = "The key's id")),
    responses(
        (status = 204, description = "Key revoked"),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents have no personal keys", body = ProblemDetails),
        (status = 404, description = "No such key of the caller", body = ProblemDetails),
    ))]
async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let key_id = key_id(path)?;
    state.api_keys.revoke(&principal, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exchange a personal API key for an access token (no refresh token: the key is the
/// long-lived credential).
#[utoipa::path(post, path = "/v1/auth/api-key-token", tag = "Authentication",
    operation_id = "apiKeyToken", security(()), request_body = ApiKeyTokenRequest,
    responses(
        (status = 200, description = "JWT issued", body = TokenResponse),
        (status = 401, description = "Invalid, revoked or expired key", body = ProblemDetails),
        (status = 503, description = "The sign-in could not be put on the audit record; nothing was done", body = ProblemDetails),
    ))]
async fn api_key_token(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(request): ApiJson<ApiKeyTokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(state.api_keys.exchange(request, client.ip).await?))
}
