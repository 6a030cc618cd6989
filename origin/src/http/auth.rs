//! `/v1/auth/*` for humans: sign-up, login, refresh, logout, password change, profile; and
//! the public key that verifies access tokens (`/.well-known/jwks.json`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use oxvault_core::auth::{
    ChangePasswordRequest, GoogleAuthRequest, JwtPublicKeyResponse, LoginRequest,
    PasswordChangedResponse, RefreshRequest, SignupRequest, SignupResponse, TokenResponse,
    UserProfileResponse,
};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::client::ClientContext;
use super::extract::ApiJson;
use super::{ApiError, AppState};
use crate::service::principal::Principal;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login, logout))
        .routes(routes!(refresh))
        .routes(routes!(google))
        .routes(routes!(change_password))
        .routes(routes!(me))
        .routes(routes!(jwt_public_key))
        .routes(routes!(jwks))
}

/// Create an account (and an org, unless an invitation names one).
#[utoipa::path(post, path = "/v1/auth/signup", tag = "Authentication", operation_id = "signup",
    security(()), request_body = SignupRequest,
    responses(
        (status = 200, description = "Account created; a session is open", body = SignupResponse),
        (status = 400, description = "Invalid email or password", body = ProblemDetails),
        (status = 409, description = "Email already registered", body = ProblemDetails),
        (status = 503, description = "The sign-in could not be put on the audit record; nothing was done", body = ProblemDetails),
    ))]
async fn signup(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(request): ApiJson<SignupRequest>,
) -> Result<Json<SignupResponse>, ApiError> {
    Ok(Json(state.auth.signup(request, client.ip).await?))
}

/// Log in with email and password.
#[utoipa::path(post, path = "/v1/auth/token", tag = "Authentication", operation_id = "login",
    security(()), request_body = LoginRequest,
    responses(
        (status = 200, description = "Authenticated", body = TokenResponse),
        (status = 401, description = "Invalid email or password", body = ProblemDetails),
        (status = 503, description = "The sign-in could not be put on the audit record; nothing was done", body = ProblemDetails),
    ))]
async fn login(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(state.auth.login(request, client.ip).await?))
}

/// Revoke the presented token (for a user, its whole session).
#[utoipa::path(delete, path = "/v1/auth/token", tag = "Authentication", operation_id = "logout",
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
    ))]
async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    state.auth.logout(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exchange a refresh token for a new access token and a new refresh token.
///
/// Only the refresh token renews a session: an access token alone (what the official SDK's
/// bodyless `auth.refresh()` sends) is refused, so a stolen 15-minute token cannot be kept
/// alive for the session's 30 days.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "Authentication", operation_id = "refreshToken",
    security(()), request_body = RefreshRequest,
    responses(
        (status = 200, description = "Rotated", body = TokenResponse),
        (status = 400, description = "No JSON body with a refresh_token", body = ProblemDetails),
        (status = 401, description = "Unknown, spent or revoked refresh token", body = ProblemDetails),
        (status = 503, description = "The sign-in could not be put on the audit record; nothing was done", body = ProblemDetails),
    ))]
async fn refresh(
    State(state): State<AppState>,
    client: ClientContext,
    body: axum::body::Bytes,
) -> Result<Json<TokenResponse>, ApiError> {
    // Parsed by hand: whatever is wrong with the body (none, not JSON, wrong type), the answer
    // is the same 400, whatever Content-Type came with it.
    let request: RefreshRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::client(
            ProblemKind::BadRequest,
            "a JSON body with the refresh_token is required; an access token cannot renew itself",
        )
    })?;
    Ok(Json(state.auth.refresh(request, client.ip).await?))
}

/// Sign in with a Google id_token (links or creates the account).
#[utoipa::path(post, path = "/v1/auth/google", tag = "Authentication", operation_id = "googleAuth",
    security(()), request_body = GoogleAuthRequest,
    responses(
        (status = 200, description = "Authenticated", body = TokenResponse),
        (status = 401, description = "The id_token does not verify", body = ProblemDetails),
        (status = 404, description = "Google sign-in is not configured", body = ProblemDetails),
        (status = 503, description = "The sign-in could not be put on the audit record; nothing was done", body = ProblemDetails),
    ))]
async fn google(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(request): ApiJson<GoogleAuthRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(state.auth.google(request, client.ip).await?))
}

/// Change the caller's password. Every session of the user ends, the caller's too: sign in
/// again with the new password. (1Claw answers 204 and keeps the caller's session.)
#[utoipa::path(post, path = "/v1/auth/change-password", tag = "Authentication",
    operation_id = "changePassword", request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; every session has ended", body = PasswordChangedResponse),
        (status = 400, description = "Wrong current password or invalid new one", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "A scoped key's session", body = ProblemDetails),
        (status = 429, description = "Too many attempts for this user; see Retry-After", body = ProblemDetails),
    ))]
async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<Json<PasswordChangedResponse>, ApiError> {
    state.auth.change_password(&principal, request).await?;
    Ok(Json(PasswordChangedResponse {
        message: "password changed; every session of this account has ended: sign in again \
                  with the new password (POST /v1/auth/token)"
            .into(),
    }))
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/auth/me", tag = "Authentication", operation_id = "getMe",
    responses(
        (status = 200, description = "Profile", body = UserProfileResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents have no user profile", body = ProblemDetails),
    ))]
async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<UserProfileResponse>, ApiError> {
    Ok(Json(state.auth.me(&principal).await?))
}

/// The Ed25519 public key that verifies access tokens.
#[utoipa::path(get, path = "/v1/auth/jwt-public-key", tag = "Authentication",
    operation_id = "getJwtPublicKey", security(()),
    responses(
        (status = 200, description = "Public key", body = JwtPublicKeyResponse),
        (status = 503, description = "HSM unavailable", body = ProblemDetails),
    ))]
async fn jwt_public_key(
    State(state): State<AppState>,
) -> Result<Json<JwtPublicKeyResponse>, ApiError> {
    Ok(Json(
        state
            .auth
            .tokens()
            .public_key()
            .await
            .map_err(crate::service::ServiceError::from)?,
    ))
}

/// The token-verification keys as a JSON Web Key Set.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "Authentication",
    operation_id = "getJwks", security(()),
    responses(
        (status = 200, description = "JWKS", body = serde_json::Value),
        (status = 503, description = "HSM unavailable", body = ProblemDetails),
    ))]
async fn jwks(State(state): State<AppState>) -> Result<Json<oxvault_core::jwt::Jwks>, ApiError> {
    Ok(Json(
        state
            .auth
            .tokens()
            .jwks()
            .await
            .map_err(crate::service::ServiceError::from)?,
    ))
}
