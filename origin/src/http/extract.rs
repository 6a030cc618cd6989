//! Extractors shared by the handlers: JSON bodies whose rejections are RFC 7807 bodies, the
//! page a list asks for ([`Paging`]), and the authenticated [`Principal`] of a request,
//! carrying the client's address as [`super::client`] establishes it (for policy conditions),
//! or, for the secret reads, the verified token ([`Claimed`]) whose principal the read's own
//! statement checks.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{self, AUTHORIZATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use oxvault_core::claims::Claims;
use oxvault_core::page::{CursorKey, Page, PageParams};
use oxvault_core::problem::ProblemKind;
use serde::de::DeserializeOwned;

use super::client::ClientContext;
use super::metering::MeterSlot;
use super::scopes::RouteOf;
use super::{ApiError, AppState};
use crate::service::ServiceError;
use crate::service::principal::{Admit, Principal};

/// `axum::Json`, but the body must be a JSON object, and a bad body answers with a problem
/// body instead of plain text.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::from(JsonRejection::from(rejection)))?;
        json_object(&headers, &body).map(Self)
    }
}

/// A JSON object body read into `T`: 415 unless the content type is JSON, 400 unless the body
/// is an object (serde would also fill a struct from an array, field by field, so `[null]`
/// would pass as `{}`), 400 naming the field when it does not fit `T`.
pub fn json_object<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| {
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::client(
            ProblemKind::UnsupportedMediaType,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let blank = body.iter().all(u8::is_ascii_whitespace);
    if !blank && !is_json_object(body) {
        return Err(ApiError::client(
            ProblemKind::BadRequest,
            "the body must be a JSON object",
        ));
    }
    Ok(axum::Json::<T>::from_bytes(body)?.0)
}

/// Whether `body` starts a JSON object (its first byte past white space is `{`): serde would
/// also fill a struct from an array, field by field.
pub fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

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

/// What the HTTP layer checks of a caller once its principal is known, taken from the
/// request: its route (for the scope), the client's address and the billing meter's slot.
#[derive(Debug, Clone)]
pub struct Gate {
    route: RouteOf,
    client_ip: Option<IpAddr>,
    meter: Option<MeterSlot>,
}

impl Gate {
    fn of(parts: &Parts, state: &AppState) -> Self {
        Self {
            route: RouteOf::of(parts),
            client_ip: ClientContext::of(parts, &state.edge_trust).ip,
            meter: MeterSlot::of(parts),
        }
    }

    /// The gate of the REST route `method` + `route` (as documented) for a request that
    /// stands for it: an MCP tool call, held to the scope of the route it does the work of.
    pub fn for_route(parts: &Parts, state: &AppState, method: Method, route: &str) -> Self {
        Self {
            route: RouteOf::named(method, route),
            ..Self::of(parts, state)
        }
    }

    /// Whether a principal's scopes let it through this gate's route (for listing tools).
    pub fn allows(&self, principal: &Principal) -> bool {
        self.route.allows(principal)
    }
}

impl Admit for Gate {
    /// Refuses a scoped session that the route's scope does not cover (see
    /// [`super::scopes`]), notes the request's client address on the principal, and the
    /// principal as the caller billing meters.
    fn admit(&self, mut principal: Principal) -> Result<Principal, ServiceError> {
        self.route.check(&principal)?;
        principal.client_ip = self.client_ip;
        if let Some(meter) = &self.meter {
            meter.note(&principal);
        }
        Ok(principal)
    }
}

/// Authenticates `token` and lets the principal through the request's [`Gate`].
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<Principal, ServiceError> {
    let principal = state.auth.authenticate(token).await?;
    Gate::of(parts, state).admit(principal)
}

/// The bearer token of a request, if any.
pub(super) fn bearer(parts: &Parts) -> Option<&str> {
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
        Ok(authenticate(parts, state, required_bearer(parts)?).await?)
    }
}

fn required_bearer(parts: &Parts) -> Result<&str, ApiError> {
    bearer(parts)
        .ok_or_else(|| ApiError::client(ProblemKind::Unauthorized, "a bearer token is required"))
}

/// A request's bearer token with its signature, issuer, audience and lifetime verified, but
/// its principal's live state not yet checked: for a handler whose service checks that state
/// in the same statement as what it reads (a secret read), then lets the principal through
/// the [`Gate`]. No token, or one that does not verify, is refused here as [`Principal`]
/// refuses it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub claims: Claims,
    pub gate: Gate,
}

impl FromRequestParts<AppState> for Claimed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = state.auth.verify(required_bearer(parts)?).await?;
        Ok(Self {
            claims,
            gate: Gate::of(parts, state),
        })
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct AllOptional {
        #[serde(default)]
        name: Option<String>,
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    fn refusal(body: &str, headers: &HeaderMap) -> (ProblemKind, String) {
        match json_object::<AllOptional>(headers, body.as_bytes()) {
            Err(ApiError::Client { kind, detail }) => (kind, detail),
            other => panic!("{body}: expected a client error, got {other:?}"),
        }
    }

    #[test]
    fn an_object_is_read_into_its_type() {
        let read: AllOptional = json_object(&json_headers(), br#" {"name": "x"}"#).unwrap();
        assert_eq!(read.name.as_deref(), Some("x"));
        assert_eq!(
            json_object::<AllOptional>(&json_headers(), b"{}").unwrap(),
            AllOptional::default()
        );
    }

    #[test]
    fn an_array_or_a_scalar_is_not_an_object_even_where_serde_would_fill_the_struct() {
        for body in ["[null, null]", " [\"x\"]", "null", "7", "\"x\""] {
            assert_eq!(
                refusal(body, &json_headers()),
                (
                    ProblemKind::BadRequest,
                    "the body must be a JSON object".to_owned()
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_by_its_content_type_first() {
        let (kind, _) = refusal("{}", &HeaderMap::new());
        assert_eq!(kind, ProblemKind::UnsupportedMediaType);
        let (kind, _) = refusal("", &json_headers());
        assert_eq!(kind, ProblemKind::BadRequest);
    }
}
