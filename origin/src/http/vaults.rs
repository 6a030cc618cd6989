//! `/v1/vaults`: create, list, read and delete vaults.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use oxvault_core::ids::VaultId;
use oxvault_core::page::{PageParams, TimeKey};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use oxvault_core::vault::{CreateVaultRequest, VaultListResponse, VaultResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Paging};
use super::{ApiError, AppState};
use crate::service::principal::Principal;
use crate::service::vaults::VaultsService;

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for VaultsService {
    fn from_ref(state: &AppState) -> Self {
        state.vaults.clone()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_vault, list_vaults))
        .routes(routes!(get_vault, delete_vault))
}

/// The vault id of a path; anything that is not a UUID names no vault (404).
pub(super) fn vault_id(path: &str) -> Result<VaultId, ApiError> {
    VaultId::parse(path).map_err(|_| ApiError::client(ProblemKind::NotFound, "vault not found"))
}

pub(super) fn single_id(path: Result<Path<String>, PathRejection>) -> Result<VaultId, ApiError> {
    match path {
        Ok(Path(text)) => vault_id(&text),
        Err(_) => Err(ApiError::client(ProblemKind::NotFound, "vault not found")),
    }
}

/// Create a vault.
#[utoipa::path(post, path = "/v1/vaults", tag = "Vaults", operation_id = "createVault",
    request_body = CreateVaultRequest,
    responses(
        (status = 201, description = "Vault created", body = VaultResponse),
        (status = 400, description = "Invalid name or description", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
    ))]
async fn create_vault(
    State(vaults): State<VaultsService>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateVaultRequest>,
) -> Result<(StatusCode, Json<VaultResponse>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(vaults.create(&principal, request).await?),
    ))
}

/// The vaults the caller can see, oldest first, one page at a time.
#[utoipa::path(get, path = "/v1/vaults", tag = "Vaults", operation_id = "listVaults",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the vault list", body = VaultListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
    ))]
async fn list_vaults(
    State(vaults): State<VaultsService>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<VaultListResponse>, ApiError> {
    Ok(Json(vaults.list(&principal, page).await?))
}

/// One vault.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}", tag = "Vaults", operation_id = "getVault",
    params(("vault_id" = String, Path, description = "Vault id (UUID)")),
    responses(
        (status = 200, description = "Vault", body = VaultResponse),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn get_vault(
    State(vaults): State<VaultsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<VaultResponse>, ApiError> {
    let vault_id = single_id(path)?;
    Ok(Json(vaults.get(&principal, vault_id).await?))
}

/// Delete a vault: its secrets become unreadable at once.
#[utoipa::path(delete, path = "/v1/vaults/{vault_id}", tag = "Vaults", operation_id = "deleteVault",
    params(("vault_id" = String, Path, description = "Vault id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Only an owner, admin or the creator may delete", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn delete_vault(
    State(vaults): State<VaultsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let vault_id = single_id(path)?;
    vaults.delete(&principal, vault_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
