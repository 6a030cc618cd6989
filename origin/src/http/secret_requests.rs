//! Secret requests: `POST`/`GET /v1/vaults/{vault_id}/secret-requests` (create, list),
//! `GET`/`DELETE /v1/secret-requests/{request_id}` (status, cancel) for the creator, and the
//! public `GET /v1/secret-requests/{request_id}/prompt` (what the page shows) and `POST
//! /v1/secret-requests/{request_id}/fulfil` (the one value). Any request id that is not a UUID
//! is the same 404 as any other request that cannot be used.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use oxvault_core::secret_request::{
    CreateSecretRequestRequest, FulfilSecretRequest, SecretRequestId, SecretRequestListResponse,
    SecretRequestPrompt, SecretRequestResponse,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::client::ClientContext;
use super::extract::ApiJson;
use super::vaults::single_id;
use super::{ApiError, AppState};
use crate::service::principal::Principal;
use crate::service::secret_requests::SecretRequestsService;

impl FromRef<AppState> for SecretRequestsService {
    fn from_ref(state: &AppState) -> Self {
        state.secret_requests.clone()
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "Secret requests", description = "An agent asks a person for a secret: the person types it into a page, it goes straight into the vault")))]
struct RequestTag;

pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(create_request, list_requests))
        .routes(routes!(get_request, cancel_request))
        .routes(routes!(request_prompt))
        .routes(routes!(fulfil_request));
    router.get_openapi_mut().merge(RequestTag::openapi());
    router
}

fn request_id(path: Result<Path<String>, PathRejection>) -> Result<SecretRequestId, ApiError> {
    let not_found = || ApiError::client(ProblemKind::NotFound, "secret request not found");
    match path {
        Ok(Path(text)) => SecretRequestId::parse(&text).ok_or_else(not_found),
        Err(_) => Err(not_found()),
    }
}

/// The answer to a fulfilment: the version the value became (never the value).
#[derive(Debug, Serialize, ToSchema)]
pub struct FulfilResponse {
    pub status: &'static str,
    pub version: i32,
}

/// Ask a person for a secret: answers the request with the link (`request_url`) to hand
/// over, and mails it when `recipient_email` is given.
#[utoipa::path(post, path = "/v1/vaults/{vault_id}/secret-requests", tag = "Secret requests",
    operation_id = "createSecretRequest", request_body = CreateSecretRequestRequest,
    params(("vault_id" = String, Path, description = "Vault id (UUID)")),
    responses(
        (status = 201, description = "Request open; `request_url` is the page to hand over", body = SecretRequestResponse),
        (status = 400, description = "Invalid path, description, expiry or address", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "No `write` permission on the path, or an agent asking for a mail", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
        (status = 429, description = "Too many mails to that address or from the org", body = ProblemDetails),
    ))]
async fn create_request(
    State(requests): State<SecretRequestsService>,
    principal: Principal,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<CreateSecretRequestRequest>,
) -> Result<(StatusCode, Json<SecretRequestResponse>), ApiError> {
    let vault_id = single_id(path)?;
    let created = requests
        .create(&principal, vault_id, request, &client.public_url)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The vault's requests, newest first (at most 200): the caller's own, or all of them for an
/// owner or admin.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secret-requests", tag = "Secret requests",
    operation_id = "listSecretRequests",
    params(("vault_id" = String, Path, description = "Vault id (UUID)")),
    responses(
        (status = 200, description = "The requests", body = SecretRequestListResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn list_requests(
    State(requests): State<SecretRequestsService>,
    principal: Principal,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SecretRequestListResponse>, ApiError> {
    let vault_id = single_id(path)?;
    Ok(Json(
        requests
            .list(&principal, vault_id, &client.public_url)
            .await?,
    ))
}

/// Where a request stands: `pending`, `fulfilled` (with the version), `expired` or
/// `cancelled`. For its creator, or an owner or admin.
#[utoipa::path(get, path = "/v1/secret-requests/{request_id}", tag = "Secret requests",
    operation_id = "getSecretRequest",
    params(("request_id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "The request", body = SecretRequestResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 404, description = "No such request of the caller's", body = ProblemDetails),
    ))]
async fn get_request(
    State(requests): State<SecretRequestsService>,
    principal: Principal,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SecretRequestResponse>, ApiError> {
    let id = request_id(path)?;
    Ok(Json(
        requests.get(&principal, id, &client.public_url).await?,
    ))
}

/// Cancel a request: its link stops working at once. A closed request is answered as it is.
#[utoipa::path(delete, path = "/v1/secret-requests/{request_id}", tag = "Secret requests",
    operation_id = "cancelSecretRequest",
    params(("request_id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "The request, cancelled (or as it was, if already closed)", body = SecretRequestResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 404, description = "No such request of the caller's", body = ProblemDetails),
    ))]
async fn cancel_request(
    State(requests): State<SecretRequestsService>,
    principal: Principal,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SecretRequestResponse>, ApiError> {
    let id = request_id(path)?;
    Ok(Json(
        requests.cancel(&principal, id, &client.public_url).await?,
    ))
}

/// What a pending request asks for (the page shows it): who asks, for which path, and why.
/// Never a value; never changes anything.
#[utoipa::path(get, path = "/v1/secret-requests/{request_id}/prompt", tag = "Secret requests",
    operation_id = "secretRequestPrompt", security(()),
    params(("request_id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "A pending request", body = SecretRequestPrompt),
        (status = 404, description = "Missing, expired, fulfilled, cancelled, or its creator's access gone: all alike", body = ProblemDetails),
    ))]
async fn request_prompt(
    State(requests): State<SecretRequestsService>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SecretRequestPrompt>, ApiError> {
    let id = request_id(path)?;
    Ok(Json(requests.prompt(id).await?))
}

/// Give the value a pending request asks for: written as a new version at its path, sealed
/// like any other, audited as `secret.write` naming the request. Works once.
#[utoipa::path(post, path = "/v1/secret-requests/{request_id}/fulfil", tag = "Secret requests",
    operation_id = "fulfilSecretRequest", security(()), request_body = FulfilSecretRequest,
    params(("request_id" = String, Path, description = "Request id")),
    responses(
        (status = 201, description = "Stored; the request is closed", body = FulfilResponse),
        (status = 400, description = "A missing or too long value", body = ProblemDetails),
        (status = 404, description = "Missing, expired, already fulfilled, cancelled, or its creator's access gone: all alike", body = ProblemDetails),
    ))]
async fn fulfil_request(
    State(requests): State<SecretRequestsService>,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
    ApiJson(given): ApiJson<FulfilSecretRequest>,
) -> Result<(StatusCode, Json<FulfilResponse>), ApiError> {
    let id = request_id(path)?;
    let version = requests.fulfil(id, given, client.ip).await?;
    Ok((
        StatusCode::CREATED,
        Json(FulfilResponse {
            status: "fulfilled",
            version,
        }),
    ))
}
