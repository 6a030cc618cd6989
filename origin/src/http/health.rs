//! `GET /v1/health` and `GET /v1/health/hsm`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use oxvault_core::health::{HealthResponse, HsmHealthResponse, HsmStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The health routes (`/metrics` has a listener of its own: see `super::metrics`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(health_hsm))
}

/// Service health: `healthy` when both the database and the HSM answer, else `degraded`.
///
/// Always 200, as in the 1Claw API: the body says which. The checks run at most once every
/// two seconds, whoever asks; callers in between get the last answer.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "Health",
    operation_id = "healthCheck",
    security(()),
    responses((status = 200, description = "Health of the origin", body = HealthResponse))
)]
async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    Json(state.health.report().await)
}

/// HSM health, checked by wrapping and unwrapping a probe key with the KEK (at most once every
/// two seconds, shared with `/v1/health`).
#[utoipa::path(
    get,
    path = "/v1/health/hsm",
    tag = "Health",
    operation_id = "healthHsm",
    security(()),
    responses(
        (status = 200, description = "The HSM works", body = HsmHealthResponse),
        (status = 503, description = "The HSM is unavailable", body = HsmHealthResponse),
    )
)]
async fn health_hsm(State(state): State<AppState>) -> (StatusCode, Json<HsmHealthResponse>) {
    let status = state.health.hsm_status().await;
    let code = match status {
        HsmStatus::Ok => StatusCode::OK,
        HsmStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(HsmHealthResponse { status }))
}
