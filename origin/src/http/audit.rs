//! `/v1/audit`: the org's audit events (`events`) and the verification of their hash chain
//! (`verify`). Query values are taken as text and checked by `oxvault_core::audit`, so a
//! malformed `limit`, `offset`, `from` or `to` is a 400 that names it.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use oxvault_core::audit::{
    AuditEventsParams, AuditEventsResponse, AuditVerifyParams, AuditVerifyResponse,
};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::service::audit::AuditService;
use crate::service::principal::Principal;

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for AuditService {
    fn from_ref(state: &AppState) -> Self {
        state.audit_trail.clone()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(verify_chain))
}

/// The query, or a 400 (a repeated parameter, say).
fn query<T: DeserializeOwned>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|_| ApiError::client(ProblemKind::BadRequest, "invalid query string"))
}

/// Query the org's audit events, newest first. Owners and admins see every event of the org;
/// members only their own; agents are refused.
#[utoipa::path(get, path = "/v1/audit/events", tag = "Audit", operation_id = "queryAuditEvents",
    params(AuditEventsParams),
    responses(
        (status = 200, description = "One page of events and the number matching in all", body = AuditEventsResponse),
        (status = 400, description = "A malformed filter, time, limit or offset", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents cannot read the audit trail", body = ProblemDetails),
    ))]
async fn list_events(
    State(audit): State<AuditService>,
    principal: Principal,
    params: Result<Query<AuditEventsParams>, QueryRejection>,
) -> Result<Json<AuditEventsResponse>, ApiError> {
    let filter = query(params)?
        .parse()
        .map_err(|detail| ApiError::client(ProblemKind::BadRequest, detail))?;
    Ok(Json(audit.events(&principal, filter).await?))
}

/// Verify the hash chain of the org's audit events: recomputes each event's SHA-256 link,
/// checks in the HSM the HMAC-SHA256 seals that vouch for them, checks each link to the event
/// before it and, when the stretch reaches the end, the chain's head. Owners and admins only.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "Audit", operation_id = "verifyAuditChain",
    params(AuditVerifyParams),
    responses(
        (status = 200, description = "The verdict on the stretch of the chain", body = AuditVerifyResponse),
        (status = 400, description = "A malformed time or limit", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Only an owner or admin may verify", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable", body = ProblemDetails),
    ))]
async fn verify_chain(
    State(audit): State<AuditService>,
    principal: Principal,
    params: Result<Query<AuditVerifyParams>, QueryRejection>,
) -> Result<Json<AuditVerifyResponse>, ApiError> {
    let range = query(params)?
        .parse()
        .map_err(|detail| ApiError::client(ProblemKind::BadRequest, detail))?;
    Ok(Json(audit.verify(&principal, range).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_routes_are_documented_with_their_query_and_schemas() {
        let doc = serde_json::to_value(crate::http::openapi_document()).unwrap();
        for (path, params) in [
            (
                "/v1/audit/events",
                &[
                    "action",
                    "actor_id",
                    "resource_id",
                    "from",
                    "to",
                    "limit",
                    "offset",
                ][..],
            ),
            ("/v1/audit/verify", &["from", "to", "limit"][..]),
        ] {
            let operation = &doc["paths"][path]["get"];
            assert_eq!(operation["tags"][0], "Audit", "{path}");
            let names: Vec<&str> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|param| param["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, params, "{path}");
        }
        for schema in [
            "AuditEvent",
            "AuditEventsResponse",
            "AuditVerifyResponse",
            "AuditChainScheme",
        ] {
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "{schema}"
            );
        }
    }
}
