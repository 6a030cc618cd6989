//! Extractors shared by the handlers: JSON bodies whose rejections are RFC 7807 bodies, and
//! the authenticated [`Principal`] of a request.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use oxvault_core::problem::ProblemKind;

use super::{ApiError, AppState};
use crate::service::principal::Principal;

/// `axum::Json`, but a bad body answers with a problem body instead of plain text.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The bearer token of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::client(
                ProblemKind::Unauthorized,
                "a bearer token is required",
            ));
        };
        Ok(state.auth.authenticate(token).await?)
    }
}
