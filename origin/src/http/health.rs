//! `GET /v1/health` and `GET /v1/health/hsm`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use oxvault_core::health::{HealthResponse, HsmHealthResponse, HsmStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The health routes, and `/metrics` (origin only: the edge forwards `/v1` alone).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(health_hsm))
        .route("/metrics", axum::routing::get(metrics))
}

/// Counters for operators and `scripts/bench.sh`, in Prometheus' text format: HSM calls,
/// cached data keys, audit transactions and events, single-statement appends that found a
/// chain head moved. Counts only, nothing about any tenant.
async fn metrics(
    State(state): State<AppState>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let (batches, events, missed_heads) = state.audit.counts();
    let lines = [
        (
            "oxvault_hsm_calls_total",
            "counter",
            state.keyring.hsm_calls(),
        ),
        (
            "oxvault_dek_cache_keys",
            "gauge",
            state.keyring.cached_keys() as u64,
        ),
        ("oxvault_audit_transactions_total", "counter", batches),
        ("oxvault_audit_events_total", "counter", events),
        ("oxvault_audit_missed_heads_total", "counter", missed_heads),
    ];
    let body = lines
        .iter()
        .map(|(name, kind, value)| format!("# TYPE {name} {kind}\n{name} {value}\n"))
        .collect();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
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
