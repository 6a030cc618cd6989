//! Extractors shared by the handlers: JSON bodies whose rejections are RFC 7807 bodies, the
//! page a list asks for ([`Paging`]), and the authenticated [`Principal`] of a request,
//! carrying the client's address as [`super::client`] establishes it (for policy conditions).

use axum::extract::{FromRequest, FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use oxvault_core::page::{CursorKey, Page, PageParams};
use oxvault_core::problem::ProblemKind;

use super::client::ClientContext;
use super::{ApiError, AppState};
use crate::service::ServiceError;
use crate::service::principal::Principal;

/// `axum::Json`, but a bad body answers with a problem body instead of plain text.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The page a list request asks for with `limit` and `cursor` (see [`oxvault_core::page`]),
/// keyed by `K`; a malformed one is a 400 naming the parameter. The list's other query
/// parameters, if any, are read by their own `Query` alongside.
#[derive(Debug, Clone)]
pub struct Paging<K>(pub Page<K>);

impl<S: Send + Sync, K: CursorKey> FromRequestParts<S> for Paging<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<PageParams>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::client(ProblemKind::BadRequest, "invalid query string"))?;
        let page = params
            .parse()
            .map_err(|detail| ApiError::client(ProblemKind::BadRequest, detail))?;
        Ok(Self(page))
    }
}

/// Authenticates `token`, refuses a scoped session that the route's scope does not cover
/// (see [`super::scopes`]), and notes the request's client address on the principal.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<Principal, ServiceError> {
    let mut principal = state.auth.authenticate(token).await?;
    super::scopes::check(parts, &principal)?;
    principal.client_ip = ClientContext::of(parts, &state.edge_trust).ip;
    // Billing meters the request as this principal's (see super::metering).
    super::metering::note_caller(parts, &principal);
    Ok(principal)
}

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
        Ok(authenticate(parts, state, token).await?)
    }
}

/// The authenticated caller when a valid bearer token came with the request, else `None`:
/// for public routes that answer more to some callers (share reads). A token that does not
/// authenticate counts as no token, so such a route answers alike whatever is wrong with it;
/// an outage (HSM, database) is still an error, not an anonymous caller, and so is a session
/// whose scopes do not cover the route (403).
#[derive(Debug, Clone)]
pub struct OptionalPrincipal(pub Option<Principal>);

impl FromRequestParts<AppState> for OptionalPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = bearer(parts) else {
            return Ok(Self(None));
        };
        match authenticate(parts, state, token).await {
            Ok(principal) => Ok(Self(Some(principal))),
            Err(ServiceError::Unauthenticated(_)) => Ok(Self(None)),
            Err(other) => Err(other.into()),
        }
    }
}
