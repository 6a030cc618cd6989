//! The HTTP boundary's one error type and the one place it becomes a response.
//!
//! Handlers return `Result<_, ApiError>`. What the caller did wrong carries a detail meant for
//! them; what went wrong inside is logged here with its source and answered with a generic
//! body, so no internal text (SQL, PKCS#11 codes, paths) ever reaches a client.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxvault_core::problem::{
    PROBLEM_JSON, ProblemDetails, ProblemKind, UNAVAILABLE_RETRY_AFTER_SECS, body_too_large_detail,
};

use crate::service::ServiceError;

/// An error answered to an HTTP caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be served as sent; `detail` tells the caller why.
    #[error("{detail}")]
    Client { kind: ProblemKind, detail: String },
    /// Too many attempts; the answer carries `Retry-After`.
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    /// A dependency (database, HSM) is down; try again later.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// Something failed that should not have; the source goes to the log only.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A caller error of the given kind.
    pub fn client(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self::Client {
            kind,
            detail: detail.into(),
        }
    }

    /// Wraps an unexpected failure.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(detail) => Self::client(ProblemKind::BadRequest, detail),
            ServiceError::Unauthenticated(detail) => {
                Self::client(ProblemKind::Unauthorized, detail)
            }
            ServiceError::Forbidden(detail) => Self::client(ProblemKind::Forbidden, detail),
            ServiceError::LimitExceeded(detail) => {
                Self::client(ProblemKind::ResourceLimitExceeded, detail)
            }
            ServiceError::NotFound(what) => {
                Self::client(ProblemKind::NotFound, format!("{what} not found"))
            }
            ServiceError::Conflict(detail) => Self::client(ProblemKind::Conflict, detail),
            ServiceError::Gone(what) => {
                Self::client(ProblemKind::Gone, format!("{what} is no longer available"))
            }
            ServiceError::TooManyAttempts { retry_after_secs } => {
                Self::TooManyAttempts { retry_after_secs }
            }
            ServiceError::Unavailable(what) => Self::Unavailable(what),
            ServiceError::Internal(source) => Self::Internal(source),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::client(
                ProblemKind::UnsupportedMediaType,
                "the body must be JSON (Content-Type: application/json)",
            ),
            // Over the body limit (see super::body_limit) is a 413; anything else (the
            // client went away mid-body) is the caller's too, but not a size problem.
            JsonRejection::BytesRejection(rejection)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::client(ProblemKind::PayloadTooLarge, body_too_large_detail())
            }
            // serde's message names the field and what was expected, never server state.
            JsonRejection::JsonDataError(err) => {
                Self::client(ProblemKind::BadRequest, err.body_text())
            }
            JsonRejection::JsonSyntaxError(_) => {
                Self::client(ProblemKind::BadRequest, "the body is not valid JSON")
            }
            _ => Self::client(ProblemKind::BadRequest, "the body could not be read"),
        }
    }
}

impl ApiError {
    /// The problem body this error answers with, and the `Retry-After` seconds it carries if
    /// any; what only the log may hold (an internal error's source) is logged here. Also the
    /// body of an MCP tool's failed result.
    pub fn into_problem(self) -> (ProblemDetails, Option<u64>) {
        match self {
            Self::Client { kind, detail } => (kind.with_detail(detail), None),
            Self::TooManyAttempts { retry_after_secs } => (
                ProblemKind::TooManyRequests.with_detail("too many attempts; retry later"),
                Some(retry_after_secs),
            ),
            Self::Unavailable(what) => {
                tracing::warn!(dependency = what, "answering 503");
                let body = ProblemKind::ServiceUnavailable
                    .with_detail(format!("the {what} is unavailable; try again later"));
                (body, Some(UNAVAILABLE_RETRY_AFTER_SECS))
            }
            Self::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                let body =
                    ProblemKind::Internal.with_detail("the request failed; it has been logged");
                (body, None)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.into_problem() {
            (body, Some(retry_after_secs)) => {
                with_retry_after(problem_response(body), retry_after_secs)
            }
            (body, None) => problem_response(body),
        }
    }
}

/// A 429 problem with `detail` and `Retry-After` (whole seconds, at least one).
pub fn retry_later(detail: &str, retry_after_secs: u64) -> Response {
    let response = problem_response(ProblemKind::TooManyRequests.with_detail(detail));
    with_retry_after(response, retry_after_secs)
}

/// `response` with `Retry-After` (whole seconds, at least one).
fn with_retry_after(mut response: Response, retry_after_secs: u64) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    response
}

/// A problem body as a response with the right status and `application/problem+json`.
pub fn problem_response(body: ProblemDetails) -> Response {
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_never_show_their_source() {
        let source = std::io::Error::other("connection to 10.0.0.7:5432 refused, password=x");
        let response = ApiError::internal(source).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = body_of(response).await;
        let text = body.to_string();
        assert!(!text.contains("10.0.0.7") && !text.contains("password"));
        assert_eq!(body["type"], "urn:oxvault:problem:internal");
    }

    #[tokio::test]
    async fn client_errors_carry_their_detail_and_status() {
        let response = ApiError::client(ProblemKind::NotFound, "no such vault").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = body_of(response).await;
        assert_eq!(body["detail"], "no such vault");
        assert_eq!(body["status"], 404);
    }

    #[tokio::test]
    async fn unavailable_dependencies_answer_503() {
        let response = ApiError::Unavailable("HSM").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body_of(response).await["title"], "Service Unavailable");
    }
}
