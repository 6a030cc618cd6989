//! `/v1/billing/usage` and `/v1/billing/history`: what the caller's org has used this month,
//! and its newest metered requests (1Claw's legacy usage endpoints).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use chrono::Utc;
use oxvault_core::billing::{UsageHistoryResponse, UsageSummaryResponse, history_limit};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::service::billing::BillingService;
use crate::service::principal::Principal;

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for BillingService {
    fn from_ref(state: &AppState) -> Self {
        state.billing.clone()
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(history))
}

/// Get the usage summary of the current calendar month (UTC).
#[utoipa::path(get, path = "/v1/billing/usage", tag = "Billing", operation_id = "billingUsage",
    responses(
        (status = 200, description = "Usage summary", body = UsageSummaryResponse),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents may not read billing", body = ProblemDetails),
    ))]
async fn usage(
    State(billing): State<BillingService>,
    principal: Principal,
) -> Result<Json<UsageSummaryResponse>, ApiError> {
    Ok(Json(billing.usage(&principal, Utc::now()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// How many events, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// Get the newest metered requests of the caller's org, newest first.
#[utoipa::path(get, path = "/v1/billing/history", tag = "Billing", operation_id = "billingHistory",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Usage event list", body = UsageHistoryResponse),
        (status = 400, description = "limit is not a whole number from 1 to 500", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Agents may not read billing", body = ProblemDetails),
    ))]
async fn history(
    State(billing): State<BillingService>,
    principal: Principal,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<UsageHistoryResponse>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::client(ProblemKind::BadRequest, "invalid query string"))?;
    let limit = history_limit(query.limit.as_deref())
        .map_err(|detail| ApiError::client(ProblemKind::BadRequest, detail))?;
    Ok(Json(billing.history(&principal, limit).await?))
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;
    use crate::service::ServiceError;

    #[tokio::test]
    async fn a_limit_refusal_answers_403_with_the_type_1claw_sdks_match_on() {
        let refusal = ServiceError::LimitExceeded("the free tier allows 3 vaults".into());

        let response = ApiError::from(refusal).into_response();

        assert_eq!(response.status(), 403);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "resource_limit_exceeded",
                "title": "Resource limit exceeded",
                "status": 403,
                "detail": "the free tier allows 3 vaults",
            })
        );
    }
}
