//! Share links: `POST /v1/secrets/{secret_id}/share`; `/v1/share/{share_id}` (read, status,
//! revoke); `/v1/shares/outbound`, `/v1/shares/inbound`, `/v1/shares/{share_id}/accept`,
//! `/v1/shares/{share_id}/decline`; and `GET /v1/org/shares`, the org's live shares for its
//! owners and admins.
//!
//! A read takes its passphrase from the `X-Share-Passphrase` header (what the edge sends,
//! since `fetch()` cannot forward a GET body), or from a JSON body `{"passphrase": ...}` when
//! called directly. A `HEAD` of a share answers like its status and never counts as a read:
//! link previewers and crawlers send those. Any share id that is not a UUID is the same 404
//! as any other share that cannot be read.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use oxvault_core::ids::SecretId;
use oxvault_core::page::{PageParams, TimeKey};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use oxvault_core::share::{
    CreateShareRequest, OrgShareListResponse, PASSPHRASE_HEADER, ShareId, ShareListResponse,
    SharePassphraseBody, ShareResponse, ShareStatusResponse, SharedSecretResponse,
};
use secrecy::SecretString;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::client::ClientContext;
use super::extract::{ApiJson, OptionalPrincipal, Paging, is_json_object};
use super::{ApiError, AppState};
use crate::service::principal::Principal;
use crate::service::shares::{Reader, SharesService};

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for SharesService {
    fn from_ref(state: &AppState) -> Self {
        state.shares.clone()
    }
}

/// The tag of this module's operations, merged into the document with them.
#[derive(OpenApi)]
#[openapi(tags((name = "Sharing", description = "Share links: hand one secret to one recipient, for a while, for a number of reads")))]
struct ShareTag;

pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(create_share))
        .routes(routes!(read_share, revoke_share))
        .routes(routes!(share_status))
        .routes(routes!(list_outbound))
        .routes(routes!(list_inbound))
        .routes(routes!(accept_share))
        .routes(routes!(decline_share))
        .routes(routes!(list_org_shares));
    router.get_openapi_mut().merge(ShareTag::openapi());
    router
}

fn not_found() -> ApiError {
    ApiError::client(ProblemKind::NotFound, "share not found")
}

fn share_id(path: Result<Path<String>, PathRejection>) -> Result<ShareId, ApiError> {
    match path {
        Ok(Path(text)) => ShareId::parse(&text).ok_or_else(not_found),
        Err(_) => Err(not_found()),
    }
}

/// The passphrase of a read: the header if present, else a JSON body's `passphrase`.
fn passphrase(headers: &HeaderMap, body: &[u8]) -> Result<Option<SecretString>, ApiError> {
    let mut values = headers.get_all(PASSPHRASE_HEADER).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(ApiError::client(
                ProblemKind::BadRequest,
                "X-Share-Passphrase may be sent once",
            ));
        }
        // Raw bytes, not `to_str`: a passphrase may hold any UTF-8, not only visible ASCII.
        let text = String::from_utf8(value.as_bytes().to_vec()).map_err(|_| {
            ApiError::client(ProblemKind::BadRequest, "X-Share-Passphrase must be UTF-8")
        })?;
        return Ok(Some(SecretString::from(text)));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed = is_json_object(body).then(|| serde_json::from_slice::<SharePassphraseBody>(body));
    let body = parsed.and_then(Result::ok).ok_or_else(|| {
        ApiError::client(
            ProblemKind::BadRequest,
            "the body must be JSON: {\"passphrase\": \"...\"}",
        )
    })?;
    Ok(body.passphrase.map(SecretString::from))
}

/// Share secret `secret_id`.
#[utoipa::path(post, path = "/v1/secrets/{secret_id}/share", tag = "Sharing",
    operation_id = "createShare", request_body = CreateShareRequest,
    params(("secret_id" = String, Path, description = "Secret id (UUID)")),
    responses(
        (status = 201, description = "Share created; `share_url` is the link to hand over", body = ShareResponse),
        (status = 400, description = "Invalid recipient, expiry, count, passphrase or allowlist", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "No `share` permission on the secret, or an agent sharing by email", body = ProblemDetails),
        (status = 404, description = "No such secret visible to the caller", body = ProblemDetails),
    ))]
async fn create_share(
    State(shares): State<SharesService>,
    principal: Principal,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<CreateShareRequest>,
) -> Result<(StatusCode, Json<ShareResponse>), ApiError> {
    let secret_id = match path {
        Ok(Path(text)) => SecretId::parse(&text)
            .map_err(|_| ApiError::client(ProblemKind::NotFound, "secret not found"))?,
        Err(_) => return Err(ApiError::client(ProblemKind::NotFound, "secret not found")),
    };
    let share = shares
        .create(&principal, secret_id, request, &client.public_url)
        .await?;
    Ok((StatusCode::CREATED, Json(share)))
}

/// Read a shared secret; counts one view. Link shares need no token; user, agent and creator
/// shares need their recipient's. Every refusal is the same 404.
#[utoipa::path(get, path = "/v1/share/{share_id}", tag = "Sharing", operation_id = "accessShare",
    security((), ("BearerAuth" = [])),
    params(
        ("share_id" = String, Path, description = "Share id"),
        ("X-Share-Passphrase" = Option<String>, Header, min_length = 1, max_length = 1024, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", description = "The share's passphrase, if it has one (1 to 1024 bytes, no control characters, no spaces at either end)"),
    ),
    request_body(content = Option<SharePassphraseBody>, description = "Optional, when called directly: the passphrase"),
    responses(
        (status = 200, description = "The secret's current value", body = SharedSecretResponse),
        (status = 404, description = "Missing, expired, used up, revoked, declined, wrong passphrase, address not allowed or not the recipient", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable; the view was not used", body = ProblemDetails),
    ))]
async fn read_share(
    State(shares): State<SharesService>,
    caller: OptionalPrincipal,
    client: ClientContext,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = share_id(path)?;
    if method == Method::HEAD {
        // axum answers HEAD with the GET handler; a HEAD must not use up a view.
        shares.status(id, client.ip).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let passphrase = passphrase(&headers, &body)?;
    let reader = Reader {
        principal: caller.0.as_ref(),
        client_ip: client.ip,
    };
    Ok(Json(shares.read(id, reader, passphrase).await?).into_response())
}

/// Whether a link share can be opened, and whether it needs a passphrase; never counts as a
/// view (the share page calls it on load).
#[utoipa::path(get, path = "/v1/share/{share_id}/status", tag = "Sharing",
    operation_id = "shareStatus", security(()),
    params(("share_id" = String, Path, description = "Share id")),
    responses(
        (status = 200, description = "A live link share", body = ShareStatusResponse),
        (status = 404, description = "Anything else, alike", body = ProblemDetails),
    ))]
async fn share_status(
    State(shares): State<SharesService>,
    client: ClientContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ShareStatusResponse>, ApiError> {
    let id = share_id(path)?;
    Ok(Json(shares.status(id, client.ip).await?))
}

/// Revoke a share: it stops working at once.
#[utoipa::path(delete, path = "/v1/share/{share_id}", tag = "Sharing",
    operation_id = "revokeShare",
    params(("share_id" = String, Path, description = "Share id")),
    responses(
        (status = 204, description = "Revoked (or already so)"),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Neither its creator nor an owner or admin", body = ProblemDetails),
        (status = 404, description = "No such share in the caller's org", body = ProblemDetails),
    ))]
async fn revoke_share(
    State(shares): State<SharesService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = share_id(path)?;
    shares.revoke(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shares the caller created (revoked ones left out), newest first, one page at a time.
#[utoipa::path(get, path = "/v1/shares/outbound", tag = "Sharing",
    operation_id = "listOutboundShares",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the shares created by the caller", body = ShareListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
    ))]
async fn list_outbound(
    State(shares): State<SharesService>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<ShareListResponse>, ApiError> {
    Ok(Json(shares.outbound(&principal, page).await?))
}

/// The shares addressed to the caller (revoked and declined ones left out), newest first,
/// one page at a time.
#[utoipa::path(get, path = "/v1/shares/inbound", tag = "Sharing",
    operation_id = "listInboundShares",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the shares addressed to the caller", body = ShareListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
    ))]
async fn list_inbound(
    State(shares): State<SharesService>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<ShareListResponse>, ApiError> {
    Ok(Json(shares.inbound(&principal, page).await?))
}

/// The org's shares that can be read now, newest first, one page at a time: who made each,
/// for whom, until when and how often read; never a value. Owners and admins only (they may
/// revoke any of them with `DELETE /v1/share/{share_id}`).
#[utoipa::path(get, path = "/v1/org/shares", tag = "Sharing", operation_id = "listOrgShares",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the org's live shares", body = OrgShareListResponse),
        (status = 400, description = "A malformed limit or cursor", body = ProblemDetails),
        (status = 401, description = "Not authenticated", body = ProblemDetails),
        (status = 403, description = "Not an owner or admin", body = ProblemDetails),
    ))]
async fn list_org_shares(
    State(shares): State<SharesService>,
    principal: Principal,
    Paging(page): Paging<TimeKey>,
) -> Result<Json<OrgShareListResponse>, ApiError> {
    Ok(Json(shares.org_shares(&principal, page).await?))
}

/// Accept a share addressed to the caller.
#[utoipa::path(post, path = "/v1/shares/{share_id}/accept", tag = "Sharing",
    operation_id = "acceptShare",
    params(("share_id" = String, Path, description = "Share id")),
    responses(
        (status = 204, description = "Accepted"),
        (status = 404, description = "No such share addressed to the caller", body = ProblemDetails),
        (status = 409, description = "The caller declined it before", body = ProblemDetails),
    ))]
async fn accept_share(
    State(shares): State<SharesService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = share_id(path)?;
    shares.respond(&principal, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Decline a share addressed to the caller: it can no longer be read.
#[utoipa::path(post, path = "/v1/shares/{share_id}/decline", tag = "Sharing",
    operation_id = "declineShare",
    params(("share_id" = String, Path, description = "Share id")),
    responses(
        (status = 204, description = "Declined"),
        (status = 404, description = "No such share addressed to the caller", body = ProblemDetails),
    ))]
async fn decline_share(
    State(shares): State<SharesService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = share_id(path)?;
    shares.respond(&principal, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_header_passphrase_wins_and_may_hold_any_utf8() {
        let mut headers = HeaderMap::new();
        headers.insert(
            PASSPHRASE_HEADER,
            HeaderValue::from_bytes("sésame ouvre-toi".as_bytes()).unwrap(),
        );
        let given = passphrase(&headers, br#"{"passphrase": "body"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(given.expose_secret(), "sésame ouvre-toi");
    }

    #[test]
    fn a_json_body_passphrase_is_read_when_no_header_came() {
        let given = passphrase(&HeaderMap::new(), br#"{"passphrase": "body"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(given.expose_secret(), "body");
        assert!(passphrase(&HeaderMap::new(), b"").unwrap().is_none());
        assert!(passphrase(&HeaderMap::new(), b"{}").unwrap().is_none());
        assert!(passphrase(&HeaderMap::new(), b"not json").is_err());
    }

    #[test]
    fn a_repeated_passphrase_header_is_refused() {
        let mut headers = HeaderMap::new();
        headers.append(PASSPHRASE_HEADER, HeaderValue::from_static("a"));
        headers.append(PASSPHRASE_HEADER, HeaderValue::from_static("b"));
        assert!(passphrase(&headers, b"").is_err());
    }
}
