//! `/v1/vaults/{vault_id}/policies`: create, list, change and delete a vault's access
//! policies.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use oxvault_core::ids::{PolicyId, VaultId};
use oxvault_core::page::{PageParams, TimeKey};
use oxvault_core::policy::{
    CreatePolicyRequest, PolicyListResponse, PolicyResponse, UpdatePolicyRequest,
};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Paging};
use super::vaults::vault_id;
use super::{ApiError, AppState};
use crate::service::policies::PoliciesService;
use crate::service::principal::Principal;

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for PoliciesService {
    fn from_ref(state: &AppState) -> Self {
        state.policies.clone()
    }
}

/// The tag of this module's operations, merged into the document with them.
#[derive(OpenApi)]
#[openapi(tags((name = "Policies", description = "Access policies: who may do what to which secret paths of a vault")))]
struct PolicyTag;

pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(update_policy, delete_policy));
    router.get_openapi_mut().merge(PolicyTag::openapi());
    router
}

fn the_vault(path: Result<Path<String>, PathRejection>) -> Result<VaultId, ApiError> {
    match path {
        Ok(Path(text)) => vault_id(&text),
        Err(_) => Err(ApiError::client(ProblemKind::NotFound, "vault not found")),
    }
}

/// The vault and policy ids of a path; anything that is not a UUID names nothing (404).
fn the_policy(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(VaultId, PolicyId), ApiError> {
    let Ok(Path((vault, policy))) = path else {
        return Err(ApiError::client(ProblemKind::NotFound, "policy not found"));
    };
    let vault = vault_id(&vault)?;
    let policy = PolicyId::parse(&policy)
        .map_err(|_| ApiError::client(ProblemKind::NotFound, "policy not found"))?;
    Ok((vault, policy))
}

/// Create an access policy on a vault.
#[utoipa::path(post, path = "/v1/vaults/{vault_id}/policies", tag = "Policies",
    operation_id = "createPolicy", request_body = CreatePolicyRequest,
    params(("vault_id" = String, Path, description = "Vault id (UUID)")),
    responses(
        (status = 201, description = "Policy created", body = PolicyResponse),
        (status = 400, description = "Invalid pattern, permissions, priority, expiry or conditions; or a principal not in this organization", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner, an admin or the vault's creator may manage its policies", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn create_policy(
    State(policies): State<PoliciesService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<CreatePolicyRequest>,
) -> Result<(StatusCode, Json<PolicyResponse>), ApiError> {
    let vault_id = the_vault(path)?;
    Ok((
        StatusCode::CREATED,
        Json(policies.create(&principal, vault_id, request).await?),
    ))
}

/// The policies of a vault, expired ones included, oldest first, one page at a time.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/policies", tag = "Policies",
    operation_id = "listPolicies",
    params(("vault_id" = String, Path, description = "Vault id (UUID)"), PageParams),
    responses(
        (status = 200, description = "One page of the policy list", body = PolicyListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner, an admin or the vault's creator may see its policies", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn list_policies(
    State(policies): State<PoliciesService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<PolicyListResponse>, ApiError> {
    let vault_id = the_vault(path)?;
    Ok(Json(policies.list(&principal, vault_id, page).await?))
}

/// Change a policy's permissions, conditions, expiry, effect or priority; absent fields stay.
/// Takes effect on the next request, also for tokens already issued.
#[utoipa::path(put, path = "/v1/vaults/{vault_id}/policies/{policy_id}", tag = "Policies",
    operation_id = "updatePolicy", request_body = UpdatePolicyRequest,
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("policy_id" = String, Path, description = "Policy id (UUID)"),
    ),
    responses(
        (status = 200, description = "Policy updated", body = PolicyResponse),
        (status = 400, description = "Invalid permissions, priority, expiry or conditions", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner, an admin or the vault's creator may manage its policies", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller, or no such policy on it", body = ProblemDetails),
    ))]
async fn update_policy(
    State(policies): State<PoliciesService>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(request): ApiJson<UpdatePolicyRequest>,
) -> Result<Json<PolicyResponse>, ApiError> {
    let (vault_id, policy_id) = the_policy(path)?;
    Ok(Json(
        policies
            .update(&principal, vault_id, policy_id, request)
            .await?,
    ))
}

/// Delete a policy. Takes effect on the next request, also for tokens already issued.
#[utoipa::path(delete, path = "/v1/vaults/{vault_id}/policies/{policy_id}", tag = "Policies",
    operation_id = "deletePolicy",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("policy_id" = String, Path, description = "Policy id (UUID)"),
    ),
    responses(
        (status = 204, description = "Policy deleted"),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner, an admin or the vault's creator may manage its policies", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller, or no such policy on it", body = ProblemDetails),
    ))]
async fn delete_policy(
    State(policies): State<PoliciesService>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (vault_id, policy_id) = the_policy(path)?;
    policies.delete(&principal, vault_id, policy_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
