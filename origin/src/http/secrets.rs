//! `/v1/vaults/{vault_id}/secrets`: write, read, delete and list secrets.
//!
//! The secret path is taken from the raw request path, never from axum's percent-decoded
//! capture: `a%2Fb` must stay one odd segment (and be refused), not become `a/b`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::routing::put;
use oxvault_core::ids::VaultId;
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use oxvault_core::vault::{
    PutSecretRequest, SecretListResponse, SecretMetadataResponse, SecretResponse,
};
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use super::vaults::vault_id;
use super::{ApiError, AppState};
use crate::service::principal::Principal;
use crate::service::secrets::SecretsService;

// Built from the shared pool and keyring on demand: no field of its own in AppState.
impl FromRef<AppState> for SecretsService {
    fn from_ref(state: &AppState) -> Self {
        SecretsService::new(state.pool.clone(), state.keyring.clone())
    }
}

/// The wildcard routes are registered by hand (utoipa-axum cannot express `{*path}`); their
/// documentation is merged from here.
#[derive(OpenApi)]
#[openapi(paths(put_secret, get_secret, delete_secret))]
struct WildcardDocs;

const SECRET_ROUTE: &str = "/v1/vaults/{vault_id}/secrets/{*path}";

pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new().routes(routes!(list_secrets)).route(
        SECRET_ROUTE,
        put(put_secret).get(get_secret).delete(delete_secret),
    );
    router.get_openapi_mut().merge(WildcardDocs::openapi());
    router
}

/// The vault id and the raw (still percent-encoded) secret path of a request.
fn target(uri: &Uri) -> Result<(VaultId, String), ApiError> {
    let not_found = || ApiError::client(ProblemKind::NotFound, "vault not found");
    let rest = uri
        .path()
        .strip_prefix("/v1/vaults/")
        .ok_or_else(not_found)?;
    let (vault, tail) = rest.split_once('/').ok_or_else(not_found)?;
    let path = tail.strip_prefix("secrets/").ok_or_else(not_found)?;
    Ok((vault_id(vault)?, path.to_owned()))
}

/// Write a new version of a secret.
#[utoipa::path(put, path = "/v1/vaults/{vault_id}/secrets/{path}", tag = "Secrets",
    operation_id = "putSecret", request_body = PutSecretRequest,
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, description = "Secret path, e.g. `db/credentials` (slashes are not encoded)"),
    ),
    responses(
        (status = 201, description = "Version written", body = SecretMetadataResponse),
        (status = 400, description = "Invalid path or body", body = ProblemDetails),
        (status = 403, description = "No policy allows writing this path", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable; nothing was written", body = ProblemDetails),
    ))]
async fn put_secret(
    State(secrets): State<SecretsService>,
    principal: Principal,
    uri: Uri,
    ApiJson(request): ApiJson<PutSecretRequest>,
) -> Result<(StatusCode, Json<SecretMetadataResponse>), ApiError> {
    let (vault_id, path) = target(&uri)?;
    let written = secrets.put(&principal, vault_id, &path, request).await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// Read the current version of a secret.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secrets/{path}", tag = "Secrets",
    operation_id = "getSecret",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, description = "Secret path"),
    ),
    responses(
        (status = 200, description = "The secret with its value", body = SecretResponse),
        (status = 403, description = "No policy allows reading this path", body = ProblemDetails),
        (status = 404, description = "Never existed, or not visible", body = ProblemDetails),
        (status = 410, description = "Deleted, expired or used up", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable", body = ProblemDetails),
    ))]
async fn get_secret(
    State(secrets): State<SecretsService>,
    principal: Principal,
    uri: Uri,
) -> Result<Json<SecretResponse>, ApiError> {
    let (vault_id, path) = target(&uri)?;
    Ok(Json(secrets.get(&principal, vault_id, &path).await?))
}

/// Delete a secret (later reads answer 410).
#[utoipa::path(delete, path = "/v1/vaults/{vault_id}/secrets/{path}", tag = "Secrets",
    operation_id = "deleteSecret",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, description = "Secret path"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "No policy allows deleting this path", body = ProblemDetails),
        (status = 404, description = "No such secret visible to the caller", body = ProblemDetails),
    ))]
async fn delete_secret(
    State(secrets): State<SecretsService>,
    principal: Principal,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let (vault_id, path) = target(&uri)?;
    secrets.delete(&principal, vault_id, &path).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// Only paths starting with this (e.g. `db/`).
    #[serde(default)]
    prefix: String,
}

/// List the secrets of a vault: metadata only, never values.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secrets", tag = "Secrets",
    operation_id = "listSecrets",
    params(("vault_id" = String, Path, description = "Vault id (UUID)"), ListQuery),
    responses(
        (status = 200, description = "Secret metadata", body = SecretListResponse),
        (status = 400, description = "Invalid prefix", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn list_secrets(
    State(secrets): State<SecretsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SecretListResponse>, ApiError> {
    let vault_id = match path {
        Ok(Path(text)) => vault_id(&text)?,
        Err(_) => return Err(ApiError::client(ProblemKind::NotFound, "vault not found")),
    };
    let Query(query) =
        query.map_err(|_| ApiError::client(ProblemKind::BadRequest, "invalid query string"))?;
    Ok(Json(
        secrets.list(&principal, vault_id, &query.prefix).await?,
    ))
}
