//! `/v1/agents/*`: registering, listing, changing and deactivating an org's agents, rotating
//! their keys, an agent's view of itself; and `POST /v1/auth/agent-token`, where an agent
//! exchanges its `ocv_` key for an access token (under `/v1/auth` for 1Claw compatibility,
//! but part of the agents service).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use oxvault_core::auth::{
    AgentCreatedResponse, AgentKeyRotatedResponse, AgentListResponse, AgentResponse,
    AgentSelfResponse, AgentTokenRequest, AgentTokenResponse, CreateAgentRequest,
    UpdateAgentRequest,
};
use oxvault_core::ids::AgentId;
use oxvault_core::page::{PageParams, TimeKey};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::client::ClientContext;
use super::extract::{ApiJson, Paging};
use super::{ApiError, AppState};
use crate::service::agents::AgentsService;
use crate::service::principal::Principal;

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for AgentsService {
    fn from_ref(state: &AppState) -> Self {
        state.agents.clone()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent, list_agents))
        .routes(routes!(agent_self))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(rotate_agent_key))
        .routes(routes!(agent_token))
}

/// The agent id of a path. Anything that is not a UUID names no agent: 404, like an id of
/// another org, so the answer never tells the two apart.
fn agent_id(path: Result<Path<String>, PathRejection>) -> Result<AgentId, ApiError> {
    path.ok()
        .and_then(|Path(text)| AgentId::parse(&text).ok())
        .ok_or_else(|| ApiError::client(ProblemKind::NotFound, "agent not found"))
}

/// Register an agent; its API key (`ocv_...`) is in this answer and nowhere else, ever.
#[utoipa::path(post, path = "/v1/agents", tag = "Agents", operation_id = "createAgent",
    request_body = CreateAgentRequest,
    responses(
        (status = 201, description = "Agent created with one-time API key", body = AgentCreatedResponse),
        (status = 400, description = "Invalid name, scopes, vault ids, lifetime or expiry", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner or admin may create agents", body = ProblemDetails),
    ))]
async fn create_agent(
    State(agents): State<AgentsService>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateAgentRequest>,
) -> Result<(StatusCode, Json<AgentCreatedResponse>), ApiError> {
    let created = agents.create(&principal, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List the agents of the caller's org, oldest first, one page at a time.
#[utoipa::path(get, path = "/v1/agents", tag = "Agents", operation_id = "listAgents",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the agent list", body = AgentListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents cannot list agents", body = ProblemDetails),
    ))]
async fn list_agents(
    State(agents): State<AgentsService>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<AgentListResponse>, ApiError> {
    Ok(Json(agents.list(&principal, page).await?))
}

/// The calling agent's own profile.
#[utoipa::path(get, path = "/v1/agents/me", tag = "Agents", operation_id = "getAgentSelf",
    responses(
        (status = 200, description = "Agent self profile", body = AgentSelfResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only agents have an agent profile", body = ProblemDetails),
    ))]
async fn agent_self(
    State(agents): State<AgentsService>,
    principal: Principal,
) -> Result<Json<AgentSelfResponse>, ApiError> {
    Ok(Json(agents.me(&principal).await?))
}

/// One agent of the caller's org.
#[utoipa::path(get, path = "/v1/agents/{agent_id}", tag = "Agents", operation_id = "getAgent",
    params(("agent_id" = String, Path, format = Uuid, description = "The agent's id")),
    responses(
        (status = 200, description = "Agent details", body = AgentResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents cannot look up agents", body = ProblemDetails),
        (status = 404, description = "No such agent in the caller's org", body = ProblemDetails),
    ))]
async fn get_agent(
    State(agents): State<AgentsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AgentResponse>, ApiError> {
    let id = agent_id(path)?;
    Ok(Json(agents.get(&principal, id).await?))
}

/// Change an agent. Its tokens stop working at once; it exchanges its key again.
#[utoipa::path(patch, path = "/v1/agents/{agent_id}", tag = "Agents", operation_id = "updateAgent",
    params(("agent_id" = String, Path, format = Uuid, description = "The agent's id")),
    request_body = UpdateAgentRequest,
    responses(
        (status = 200, description = "Agent updated", body = AgentResponse),
        (status = 400, description = "Invalid change", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner or admin may change agents", body = ProblemDetails),
        (status = 404, description = "No such agent in the caller's org", body = ProblemDetails),
    ))]
async fn update_agent(
    State(agents): State<AgentsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<UpdateAgentRequest>,
) -> Result<Json<AgentResponse>, ApiError> {
    let id = agent_id(path)?;
    Ok(Json(agents.update(&principal, id, request).await?))
}

/// Deactivate an agent: its key and tokens stop working at once. The agent stays readable
/// (`is_active: false`), so the audit trail keeps naming it, and `PATCH` can turn it on again.
#[utoipa::path(delete, path = "/v1/agents/{agent_id}", tag = "Agents", operation_id = "deleteAgent",
    params(("agent_id" = String, Path, format = Uuid, description = "The agent's id")),
    responses(
        (status = 204, description = "Agent deactivated"),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner or admin may delete agents", body = ProblemDetails),
        (status = 404, description = "No such agent in the caller's org", body = ProblemDetails),
    ))]
async fn delete_agent(
    State(agents): State<AgentsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = agent_id(path)?;
    agents.deactivate(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give an agent a new API key; the old key and the agent's tokens stop working at once.
#[utoipa::path(post, path = "/v1/agents/{agent_id}/rotate-key", tag = "Agents",
    operation_id = "rotateAgentKey",
    params(("agent_id" = String, Path, format = Uuid, description = "The agent's id")),
    responses(
        (status = 200, description = "New API key returned", body = AgentKeyRotatedResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner or admin may rotate keys", body = ProblemDetails),
        (status = 404, description = "No such agent in the caller's org", body = ProblemDetails),
    ))]
async fn rotate_agent_key(
    State(agents): State<AgentsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AgentKeyRotatedResponse>, ApiError> {
    let id = agent_id(path)?;
    Ok(Json(agents.rotate_key(&principal, id).await?))
}

/// Exchange an agent API key for an access token. `agent_id` is optional: the key names
/// its agent, and the answer says which.
#[utoipa::path(post, path = "/v1/auth/agent-token", tag = "Authentication",
    operation_id = "agentToken", security(()), request_body = AgentTokenRequest,
    responses(
        (status = 200, description = "Agent JWT issued", body = AgentTokenResponse),
        (status = 401, description = "Invalid, rotated or deactivated agent credentials", body = ProblemDetails),
        (status = 503, description = "The sign-in could not be put on the audit record; nothing was done", body = ProblemDetails),
    ))]
async fn agent_token(
    State(agents): State<AgentsService>,
    client: ClientContext,
    ApiJson(request): ApiJson<AgentTokenRequest>,
) -> Result<Json<AgentTokenResponse>, ApiError> {
    Ok(Json(agents.exchange(request, client.ip).await?))
}
