//! `/v1/org/*`: the caller's org members, their roles, and invitations. Rules live in
//! [`crate::service::org`]; handlers parse, call, and shape the answer.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use oxvault_core::auth::{
    AcceptInvitationRequest, InviteMemberRequest, InviteMemberResponse, OrgMemberListResponse,
    OrgMemberResponse, TokenResponse, UpdateMemberRoleRequest,
};
use oxvault_core::ids::UserId;
use oxvault_core::page::{PageParams, TimeKey};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Paging};
use super::{ApiError, AppState};
use crate::service::principal::Principal;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(update_member_role, remove_member))
        .routes(routes!(invite_member))
        .routes(routes!(accept_invitation))
}

/// The user id in the path. Text that is not a UUID names no member: 404, like a missing one.
fn member_id(path: Result<Path<String>, PathRejection>) -> Result<UserId, ApiError> {
    path.ok()
        .and_then(|Path(text)| UserId::parse(&text).ok())
        .ok_or_else(|| ApiError::client(ProblemKind::NotFound, "member not found"))
}

/// List the members of the caller's org, oldest first, one page at a time.
#[utoipa::path(get, path = "/v1/org/members", tag = "Organization", operation_id = "listOrgMembers",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the member list", body = OrgMemberListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents cannot list members", body = ProblemDetails),
    ))]
async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<OrgMemberListResponse>, ApiError> {
    Ok(Json(state.org.list_members(&principal, page).await?))
}

/// Change a member's role (owner or admin; only an owner grants or removes `owner`).
#[utoipa::path(patch, path = "/v1/org/members/{user_id}", tag = "Organization",
    operation_id = "updateMemberRole", request_body = UpdateMemberRoleRequest,
    params(("user_id" = String, Path, format = Uuid, description = "The member's user id")),
    responses(
        (status = 200, description = "Role updated; the member's tokens are void", body = OrgMemberResponse),
        (status = 400, description = "Unknown role", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Not an owner or admin, or an admin touching the owner role", body = ProblemDetails),
        (status = 404, description = "No such member in the caller's org", body = ProblemDetails),
        (status = 409, description = "The last owner cannot be demoted", body = ProblemDetails),
    ))]
async fn update_member_role(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<UpdateMemberRoleRequest>,
) -> Result<Json<OrgMemberResponse>, ApiError> {
    let user_id = member_id(path)?;
    Ok(Json(
        state.org.update_role(&principal, user_id, request).await?,
    ))
}

/// Remove a member from the org; their tokens stop working at once.
#[utoipa::path(delete, path = "/v1/org/members/{user_id}", tag = "Organization",
    operation_id = "removeMember",
    params(("user_id" = String, Path, format = Uuid, description = "The member's user id")),
    responses(
        (status = 204, description = "Member removed"),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Not an owner or admin, or an admin removing an owner", body = ProblemDetails),
        (status = 404, description = "No such member in the caller's org", body = ProblemDetails),
        (status = 409, description = "The last owner cannot be removed", body = ProblemDetails),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let user_id = member_id(path)?;
    state.org.remove_member(&principal, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invite an address to the org: its mail carries a single-use token, which the owner of
/// the address redeems at `POST /v1/org/invitations/accept` once signed in.
#[utoipa::path(post, path = "/v1/org/invite", tag = "Organization", operation_id = "inviteMember",
    request_body = InviteMemberRequest,
    responses(
        (status = 200, description = "Invitation recorded and mailed", body = InviteMemberResponse),
        (status = 400, description = "Invalid email or role", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Not an owner or admin, or an admin inviting an owner", body = ProblemDetails),
        (status = 409, description = "The address is already a member of the org", body = ProblemDetails),
    ))]
async fn invite_member(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<InviteMemberRequest>,
) -> Result<Json<InviteMemberResponse>, ApiError> {
    Ok(Json(state.invitations.invite(&principal, request).await?))
}

/// Accept an invitation with the token from its mail, signed in as the invited address. The
/// account moves into the inviting org (the org it leaves must hold nothing else); every
/// earlier session and personal API key ends, and the answer is a session in the new org.
/// oxvault's own: 1Claw's reference has no accept step.
#[utoipa::path(post, path = "/v1/org/invitations/accept", tag = "Organization",
    operation_id = "acceptInvitation", request_body = AcceptInvitationRequest,
    responses(
        (status = 200, description = "Joined; a session in the new org", body = TokenResponse),
        (status = 400, description = "No token in the body", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents and scoped keys cannot accept invitations", body = ProblemDetails),
        (status = 404, description = "No open invitation for the caller's address has this token", body = ProblemDetails),
        (status = 409, description = "Already a member, or the current org still holds members, vaults or agents", body = ProblemDetails),
    ))]
async fn accept_invitation(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<AcceptInvitationRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(state.invitations.accept(&principal, request).await?))
}
