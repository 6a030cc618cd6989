//! `/v1/vaults/{vault_id}/secrets`: write, read, delete and list secrets; and their versions
//! (`secret-versions`, `secret-version`, `secret-version-disable`) and server-side rotation
//! (`secret-rotate`).
//!
//! The secret path is taken from the raw request path, never from axum's percent-decoded
//! capture: `a%2Fb` must stay one odd segment (and be refused), not become `a/b`. Version
//! routes end in `/{version}`, split off the end of that raw path.
//!
//! Writes (PUT, rotate) read two headers: `If-Match: <version>` (quotes and `W/` allowed) and
//! `Idempotency-Key`. The key's request fingerprint is SHA-256 over the method, the raw path,
//! the `If-Match` version and the body bytes exactly as sent.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use oxvault_core::ids::VaultId;
use oxvault_core::page::{PageParams, PathKey, VersionKey};
use oxvault_core::problem::{ProblemDetails, ProblemKind};
use oxvault_core::vault::{
    PutSecretRequest, RotateSecretRequest, SecretListResponse, SecretMetadataResponse,
    SecretResponse, SecretVersionListResponse,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Claimed, Paging, json_object};
use super::vaults::vault_id;
use super::{ApiError, AppState};
use crate::service::principal::Principal;
use crate::service::secrets::{
    IdempotencyKey, SecretsService, WriteConditions, WriteError, Written, parse_version,
};

// Built once at start-up (`startup.rs`); a clone shares its handles.
impl FromRef<AppState> for SecretsService {
    fn from_ref(state: &AppState) -> Self {
        state.secrets.clone()
    }
}

/// The wildcard routes are registered by hand (utoipa-axum cannot express `{*path}`); their
/// documentation is merged from here.
#[derive(OpenApi)]
#[openapi(
    paths(
        put_secret,
        get_secret,
        delete_secret,
        list_versions,
        get_version,
        disable_version,
        rotate_secret
    ),
    components(schemas(oxvault_core::vault::RotateCharset))
)]
struct WildcardDocs;

const SECRETS: &str = "secrets";
const VERSIONS: &str = "secret-versions";
const VERSION: &str = "secret-version";
const DISABLE: &str = "secret-version-disable";
const ROTATE: &str = "secret-rotate";

pub fn router() -> OpenApiRouter<AppState> {
    let route =
        |collection: &str, rest: &str| format!("/v1/vaults/{{vault_id}}/{collection}/{{*{rest}}}");
    let mut router = OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .route(
            &route(SECRETS, "path"),
            put(put_secret).get(get_secret).delete(delete_secret),
        )
        .route(&route(VERSIONS, "path"), get(list_versions))
        .route(&route(VERSION, "rest"), get(get_version))
        .route(&route(DISABLE, "rest"), post(disable_version))
        .route(&route(ROTATE, "path"), post(rotate_secret));
    router.get_openapi_mut().merge(WildcardDocs::openapi());
    router
}

/// The vault id and the raw (still percent-encoded) rest of a request's path under
/// `/v1/vaults/{vault_id}/{collection}/`.
fn target(uri: &Uri, collection: &str) -> Result<(VaultId, String), ApiError> {
    let not_found = || ApiError::client(ProblemKind::NotFound, "vault not found");
    let rest = uri
        .path()
        .strip_prefix("/v1/vaults/")
        .ok_or_else(not_found)?;
    let (vault, tail) = rest.split_once('/').ok_or_else(not_found)?;
    let path = tail
        .strip_prefix(collection)
        .and_then(|tail| tail.strip_prefix('/'))
        .ok_or_else(not_found)?;
    Ok((vault_id(vault)?, path.to_owned()))
}

/// The vault id, raw secret path and version of a `.../{path}/{version}` route: the version
/// is the last segment, so a path may hold any number of segments (`a/b/c/3` is `a/b/c`, 3).
fn versioned_target(uri: &Uri, collection: &str) -> Result<(VaultId, String, i32), ApiError> {
    let (vault_id, rest) = target(uri, collection)?;
    let (path, version) = rest.rsplit_once('/').ok_or_else(|| {
        ApiError::client(
            ProblemKind::BadRequest,
            "expected a secret path followed by /{version}",
        )
    })?;
    Ok((vault_id, path.to_owned(), parse_version(version)?))
}

impl From<WriteError> for ApiError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Stale => ApiError::client(
                ProblemKind::PreconditionFailed,
                "If-Match does not name the secret's current version; nothing was written",
            ),
            WriteError::Service(err) => err.into(),
        }
    }
}

/// The one value of a header that may appear at most once; 400 if repeated or not text.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || ApiError::client(ProblemKind::BadRequest, format!("invalid {name} header"));
    if values.next().is_some() {
        return Err(bad());
    }
    value.to_str().map(Some).map_err(|_| bad())
}

/// `If-Match: <version>`, where the version may be quoted like an entity tag, weak or not
/// (`3`, `"3"`, `W/"3"`). Anything but one non-negative integer is a 400.
fn parse_if_match(text: &str) -> Result<i32, ApiError> {
    let text = text.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.parse::<i32>()
        .ok()
        .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::client(
                ProblemKind::BadRequest,
                "If-Match must be a secret version number",
            )
        })
}

/// The `If-Match` and `Idempotency-Key` of a write, the key with its request fingerprint.
fn write_conditions(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<WriteConditions, ApiError> {
    let if_match = single_header(headers, &header::IF_MATCH)?
        .map(parse_if_match)
        .transpose()?;
    let idempotency_key = HeaderName::from_static("idempotency-key");
    let idempotency = match single_header(headers, &idempotency_key)? {
        None => None,
        Some(text) => {
            let key = IdempotencyKey::parse(text)?;
            let mut hash = Sha256::new();
            let if_match = if_match.map(|v| v.to_string()).unwrap_or_default();
            for part in [
                method.as_str().as_bytes(),
                uri.path().as_bytes(),
                if_match.as_bytes(),
                body,
            ] {
                // Length-prefixed, so no two different requests give the same input.
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
            Some((key, hash.finalize().into()))
        }
    };
    Ok(WriteConditions {
        if_match,
        idempotency,
    })
}

/// A write's answer: 201 with the new version, or the replay of a key's first answer
/// (flagged with `Idempotent-Replayed: true`).
fn written(written: Written) -> Response {
    match written {
        Written::Created(metadata) => (StatusCode::CREATED, Json(metadata)).into_response(),
        Written::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
            let mut response = (status, Json(body)).into_response();
            response.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
            response
        }
    }
}

/// Write a new version of a secret.
///
/// `If-Match: <version>` writes only if that is the current version of a live secret (412
/// otherwise, also when the path does not exist). `Idempotency-Key` (1 to 255 visible ASCII
/// characters, remembered 24 hours per caller): the same request again answers the first
/// response and writes nothing; the same key with another request is a 409.
#[utoipa::path(put, path = "/v1/vaults/{vault_id}/secrets/{path}", tag = "Secrets",
    operation_id = "putSecret", request_body = PutSecretRequest,
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path, e.g. `db/credentials`: segments of letters, digits, `.`, `_` and `-` (not `.` or `..`) joined by `/`, sent as they are (never percent-encoded)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/"[0-9]{1,9}"|"[0-9]{1,9}"|[0-9]{1,9})$"#, description = "Write only if this is the current version: `3`, `\"3\"` or `W/\"3\"`"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$", description = "Repeat-safe write: same key and request, same answer (1 to 255 visible ASCII characters)"),
    ),
    responses(
        (status = 201, description = "Version written (or, with a used Idempotency-Key, the first answer replayed)", body = SecretMetadataResponse),
        (status = 400, description = "Invalid path, body or header", body = ProblemDetails),
        (status = 403, description = "No policy allows writing this path", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
        (status = 409, description = "The Idempotency-Key was used with another request", body = ProblemDetails),
        (status = 412, description = "If-Match is not the current version; nothing was written", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable; nothing was written", body = ProblemDetails),
    ))]
async fn put_secret(
    State(secrets): State<SecretsService>,
    principal: Principal,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (vault_id, path) = target(&uri, SECRETS)?;
    let conditions = write_conditions(&method, &uri, &headers, &body)?;
    let request: PutSecretRequest = json_object(&headers, &body)?;
    let result = secrets
        .put(&principal, vault_id, &path, request, conditions)
        .await?;
    Ok(written(result))
}

/// Read the current version of a secret.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secrets/{path}", tag = "Secrets",
    operation_id = "getSecret",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path (see `putSecret`)"),
    ),
    responses(
        (status = 200, description = "The secret with its value", body = SecretResponse),
        (status = 400, description = "Invalid secret path", body = ProblemDetails),
        (status = 403, description = "No policy allows reading this path", body = ProblemDetails),
        (status = 404, description = "Never existed, or not visible", body = ProblemDetails),
        (status = 410, description = "Deleted, expired or used up", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable", body = ProblemDetails),
    ))]
async fn get_secret(
    State(secrets): State<SecretsService>,
    caller: Claimed,
    uri: Uri,
) -> Result<Json<SecretResponse>, ApiError> {
    let (vault_id, path) = target(&uri, SECRETS)?;
    let secret = secrets
        .get(&caller.claims, &caller.gate, vault_id, &path)
        .await?;
    Ok(Json(secret))
}

/// Delete a secret (later reads answer 410).
#[utoipa::path(delete, path = "/v1/vaults/{vault_id}/secrets/{path}", tag = "Secrets",
    operation_id = "deleteSecret",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path (see `putSecret`)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid secret path", body = ProblemDetails),
        (status = 403, description = "No policy allows deleting this path", body = ProblemDetails),
        (status = 404, description = "No such secret visible to the caller", body = ProblemDetails),
    ))]
async fn delete_secret(
    State(secrets): State<SecretsService>,
    principal: Principal,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let (vault_id, path) = target(&uri, SECRETS)?;
    secrets.delete(&principal, vault_id, &path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the versions of a secret still kept, newest first, one page at a time: metadata
/// only, disabled ones flagged.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secret-versions/{path}", tag = "Secrets",
    operation_id = "listSecretVersions",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path (see `putSecret`)"),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of version metadata, never values", body = SecretVersionListResponse),
        (status = 400, description = "Invalid path, limit or cursor", body = ProblemDetails),
        (status = 403, description = "No policy allows reading this path", body = ProblemDetails),
        (status = 404, description = "Never existed, or not visible", body = ProblemDetails),
        (status = 410, description = "The secret was deleted", body = ProblemDetails),
    ))]
async fn list_versions(
    State(secrets): State<SecretsService>,
    principal: Principal,
    uri: Uri,
    Paging(page): Paging<VersionKey>,
) -> Result<Json<SecretVersionListResponse>, ApiError> {
    let (vault_id, path) = target(&uri, VERSIONS)?;
    Ok(Json(
        secrets
            .list_versions(&principal, vault_id, &path, page)
            .await?,
    ))
}

/// Read one version of a secret (counts against that version's `max_access_count`).
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secret-version/{path}/{version}", tag = "Secrets",
    operation_id = "getSecretVersion",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path (see `putSecret`)"),
        ("version" = i32, Path, minimum = 1, description = "Version number (1 and up)"),
    ),
    responses(
        (status = 200, description = "That version with its value", body = SecretResponse),
        (status = 400, description = "Invalid path or version", body = ProblemDetails),
        (status = 403, description = "No policy allows reading this path", body = ProblemDetails),
        (status = 404, description = "That version never existed, or is not visible", body = ProblemDetails),
        (status = 410, description = "Disabled, expired or used up; or the secret was deleted", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable", body = ProblemDetails),
    ))]
async fn get_version(
    State(secrets): State<SecretsService>,
    caller: Claimed,
    uri: Uri,
) -> Result<Json<SecretResponse>, ApiError> {
    let (vault_id, path, version) = versioned_target(&uri, VERSION)?;
    let secret = secrets
        .get_version(&caller.claims, &caller.gate, vault_id, &path, version)
        .await?;
    Ok(Json(secret))
}

/// Disable one version for good: reads of it answer 410. Needs the `write` permission.
#[utoipa::path(post, path = "/v1/vaults/{vault_id}/secret-version-disable/{path}/{version}", tag = "Secrets",
    operation_id = "disableSecretVersion",
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path (see `putSecret`)"),
        ("version" = i32, Path, minimum = 1, description = "Version number (1 and up)"),
    ),
    responses(
        (status = 204, description = "Disabled (or already disabled)"),
        (status = 400, description = "Invalid path or version", body = ProblemDetails),
        (status = 403, description = "No policy allows writing this path", body = ProblemDetails),
        (status = 404, description = "That version never existed, or is not visible", body = ProblemDetails),
        (status = 410, description = "The secret was deleted", body = ProblemDetails),
    ))]
async fn disable_version(
    State(secrets): State<SecretsService>,
    principal: Principal,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let (vault_id, path, version) = versioned_target(&uri, DISABLE)?;
    secrets
        .disable_version(&principal, vault_id, &path, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a secret: the server writes a new version holding a random value.
///
/// The value is drawn from the OS CSPRNG without bias and is never part of the answer; read
/// it back like any version. The secret must exist. Needs the `rotate` permission. Honours
/// `If-Match` and `Idempotency-Key` like `putSecret`. An empty body means `{}`.
#[utoipa::path(post, path = "/v1/vaults/{vault_id}/secret-rotate/{path}", tag = "Secrets",
    operation_id = "rotateSecret",
    request_body(content = Option<RotateSecretRequest>, description = "Optional: no body means every default"),
    params(
        ("vault_id" = String, Path, description = "Vault id (UUID)"),
        ("path" = String, Path, min_length = 1, max_length = 512, pattern = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$", description = "Secret path (see `putSecret`)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/"[0-9]{1,9}"|"[0-9]{1,9}"|[0-9]{1,9})$"#, description = "Rotate only if this is the current version: `3`, `\"3\"` or `W/\"3\"`"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$", description = "Repeat-safe rotation: same key and request, same answer (1 to 255 visible ASCII characters)"),
    ),
    responses(
        (status = 201, description = "New version written (or, with a used Idempotency-Key, the first answer replayed)", body = SecretMetadataResponse),
        (status = 400, description = "Invalid path, length, charset, type or header", body = ProblemDetails),
        (status = 403, description = "No policy allows rotating this path", body = ProblemDetails),
        (status = 404, description = "No such secret visible to the caller", body = ProblemDetails),
        (status = 409, description = "The Idempotency-Key was used with another request", body = ProblemDetails),
        (status = 410, description = "The secret was deleted", body = ProblemDetails),
        (status = 412, description = "If-Match is not the current version; nothing was written", body = ProblemDetails),
        (status = 503, description = "The HSM is unavailable; nothing was written", body = ProblemDetails),
    ))]
async fn rotate_secret(
    State(secrets): State<SecretsService>,
    principal: Principal,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (vault_id, path) = target(&uri, ROTATE)?;
    let conditions = write_conditions(&method, &uri, &headers, &body)?;
    // The official SDK always sends a JSON object; a bare POST means the defaults too.
    let request: RotateSecretRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecretRequest::default()
    } else {
        json_object(&headers, &body)?
    };
    let result = secrets
        .rotate(&principal, vault_id, &path, request, conditions)
        .await?;
    Ok(written(result))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only paths starting with this (e.g. `db/`).
    #[serde(default)]
    prefix: String,
}

/// List the secrets of a vault by path, one page at a time: metadata only, never values.
#[utoipa::path(get, path = "/v1/vaults/{vault_id}/secrets", tag = "Secrets",
    operation_id = "listSecrets",
    params(("vault_id" = String, Path, description = "Vault id (UUID)"), ListQuery, PageParams),
    responses(
        (status = 200, description = "One page of secret metadata", body = SecretListResponse),
        (status = 400, description = "Invalid prefix, limit or cursor", body = ProblemDetails),
        (status = 404, description = "No such vault visible to the caller", body = ProblemDetails),
    ))]
async fn list_secrets(
    State(secrets): State<SecretsService>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    Paging(page): Paging<PathKey>,
) -> Result<Json<SecretListResponse>, ApiError> {
    let vault_id = match path {
        Ok(Path(text)) => vault_id(&text)?,
        Err(_) => return Err(ApiError::client(ProblemKind::NotFound, "vault not found")),
    };
    let Query(query) =
        query.map_err(|_| ApiError::client(ProblemKind::BadRequest, "invalid query string"))?;
    Ok(Json(
        secrets
            .list(&principal, vault_id, &query.prefix, page)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAULT: &str = "0b9c6a0e-5f6d-4b8a-9a51-3c1f2e7d8a90";

    fn uri(tail: &str) -> Uri {
        format!("/v1/vaults/{VAULT}/{tail}").parse().unwrap()
    }

    #[test]
    fn the_version_is_split_off_the_end_of_the_raw_path() {
        let (vault, path, version) =
            versioned_target(&uri("secret-version/a/b/c/12"), VERSION).unwrap();
        assert_eq!(vault.to_string(), VAULT);
        assert_eq!(path, "a/b/c");
        assert_eq!(version, 12);
        // Still percent-encoded: the service refuses `a%2Fb`, it never becomes `a/b`.
        let (_, path, _) = versioned_target(&uri("secret-version/a%2Fb/1"), VERSION).unwrap();
        assert_eq!(path, "a%2Fb");
    }

    #[test]
    fn a_version_route_without_a_number_at_the_end_is_refused() {
        for tail in [
            "secret-version/3",
            "secret-version/a/b",
            "secret-version/a/0",
        ] {
            assert!(versioned_target(&uri(tail), VERSION).is_err(), "{tail}");
        }
    }

    #[test]
    fn similar_collection_names_do_not_match_each_other() {
        assert!(target(&uri("secret-versions/a"), VERSION).is_err());
        assert!(target(&uri("secret-version/a/1"), VERSIONS).is_err());
        assert_eq!(target(&uri("secret-versions/a"), VERSIONS).unwrap().1, "a");
    }

    #[test]
    fn if_match_takes_a_bare_quoted_or_weak_version() {
        for text in ["3", "\"3\"", "W/\"3\"", " 3 "] {
            assert_eq!(parse_if_match(text).unwrap(), 3, "{text}");
        }
        for bad in ["", "*", "\"\"", "abc", "-1", "3, 4", "\"3", "1.5"] {
            assert!(parse_if_match(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_covers_method_path_if_match_and_body() {
        let headers = |if_match: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert("idempotency-key", HeaderValue::from_static("k1"));
            if let Some(v) = if_match {
                headers.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            }
            headers
        };
        let hash = |method: Method, tail: &str, if_match: Option<&str>, body: &[u8]| {
            write_conditions(&method, &uri(tail), &headers(if_match), body)
                .unwrap()
                .idempotency
                .unwrap()
                .1
        };
        let base = hash(Method::PUT, "secrets/a", None, b"{}");
        assert_eq!(base, hash(Method::PUT, "secrets/a", None, b"{}"));
        assert_ne!(base, hash(Method::POST, "secrets/a", None, b"{}"));
        assert_ne!(base, hash(Method::PUT, "secrets/b", None, b"{}"));
        assert_ne!(base, hash(Method::PUT, "secrets/a", Some("1"), b"{}"));
        assert_ne!(base, hash(Method::PUT, "secrets/a", None, b"{ }"));
        // "3" and 3 are the same precondition, so the same request.
        assert_eq!(
            hash(Method::PUT, "secrets/a", Some("3"), b"{}"),
            hash(Method::PUT, "secrets/a", Some("\"3\""), b"{}")
        );
    }

    #[test]
    fn repeated_condition_headers_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(header::IF_MATCH, HeaderValue::from_static("1"));
        headers.append(header::IF_MATCH, HeaderValue::from_static("2"));
        assert!(write_conditions(&Method::PUT, &uri("secrets/a"), &headers, b"").is_err());
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_static("has space"));
        assert!(write_conditions(&Method::PUT, &uri("secrets/a"), &headers, b"").is_err());
    }
}
