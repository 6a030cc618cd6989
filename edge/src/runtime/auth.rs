//! The token check of a protected route, with the isolate's key cache and the JWKS fetch.
//!
//! The policy (when to fetch, what verifies) is in the pure [`crate::keys`] and
//! [`crate::auth`]; this module holds the cache and does the fetch.

use std::cell::RefCell;

use oxvault_core::request_id::REQUEST_ID_HEADER;
use worker::{Date, console_error, console_log};

use oxvault_core::claims::Subject;

use super::fetch::origin_request;
use super::http::to_headers;
use crate::auth::{bearer_token, recall_token, token_kid, unix_seconds, verify_token};
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::keys::{FetchReason, JWKS_PATH, JWKS_TIMEOUT_MS, KeyCache, MAX_JWKS_BYTES, parse_jwks};
use crate::request_id::fresh_request_id;
use crate::target::origin_target;

thread_local! {
    /// The isolate's verification keys. A per-isolate static is safe here, unlike the
    /// per-request state the workers-rs docs warn about sharing: it holds public keys only,
    /// every request of the isolate wants the same ones, and losing it (a new isolate) costs
    /// just a refetch. wasm32 runs one thread per isolate, so `thread_local!` is that static;
    /// requests interleave only at `.await`, and no borrow is held across one.
    static KEYS: RefCell<KeyCache> = const { RefCell::new(KeyCache::new()) };
}

/// Lets the request through only with a bearer token that verifies, and returns its subject
/// (what the per-identity rate limit counts); otherwise the error is the answer (401, or 503
/// when no keys can be had), and nothing is forwarded.
pub(super) async fn require_token(
    authorization: Option<&str>,
    config: &EdgeConfig,
    request_id: &str,
) -> Result<Subject, EdgeError> {
    let token = bearer_token(authorization)?;
    // A token this isolate verified before (with keys still within their TTL) costs a lookup
    // and the time checks only: the signature and the rest cannot have changed.
    let now = now_unix();
    if let Some(outcome) = KEYS.with_borrow(|cache| recall_token(cache, token, now)) {
        return outcome;
    }
    let kid = token_kid(token)?;

    if let Some(reason) = KEYS.with_borrow(|cache| cache.needs_fetch(&kid, now)) {
        KEYS.with_borrow_mut(|cache| cache.fetch_started(now));
        refresh(config, request_id, reason).await;
    }

    // Taken again after the fetch: the clock only moves across I/O in a Worker.
    let now = now_unix();
    KEYS.with_borrow_mut(|cache| verify_token(cache, token, now))
}

/// Fetches the origin's key set and caches it; a failure is logged and leaves the cache as
/// it was.
async fn refresh(config: &EdgeConfig, request_id: &str, reason: FetchReason) {
    // The fetch gets its own id: it serves every request of the isolate until the next one,
    // not only this request, and the origin's log must not show this request as arrived.
    let fetch_id = fresh_request_id();
    console_log!("request_id={request_id} fetching the key set ({reason:?}) as {fetch_id}");
    match fetch_jwks(config, &fetch_id).await {
        Ok((status, body)) => match parse_jwks(status, &body) {
            Ok(keys) => {
                let now = now_unix();
                KEYS.with_borrow_mut(|cache| cache.store(keys, now));
            }
            Err(err) => console_error!("request_id={request_id} key set refused: {err}"),
        },
        Err(err) => console_error!("request_id={request_id} key set not fetched: {err}"),
    }
}

/// The status and body of the origin's answer to `GET /.well-known/jwks.json`.
async fn fetch_jwks(config: &EdgeConfig, fetch_id: &str) -> Result<(u16, Vec<u8>), String> {
    let target = origin_target(config.origin(), JWKS_PATH, None);
    let headers = to_headers(&[
        ("accept".to_owned(), "application/json".to_owned()),
        (REQUEST_ID_HEADER.to_owned(), fetch_id.to_owned()),
    ])
    .map_err(|err| err.to_string())?;

    // The timeout also bounds reading the body, as for the health probe: a stalled origin
    // must not hold the request (and every one waiting on the keys) forever.
    let request = origin_request(&target, "GET", &headers, None, Some(JWKS_TIMEOUT_MS))
        .map_err(|err| format!("request not built: {err:?}"))?;
    let mut response = super::fetch::fetch(&request)
        .await
        .map_err(|err| format!("{target}: {err}"))?;
    let status = response.status_code();
    // A declared length over the limit is refused before the body is read into memory.
    let declared = response.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|length| length.trim().parse::<usize>().ok())
        .is_some_and(|length| length > MAX_JWKS_BYTES)
    {
        return Err(format!(
            "{target}: the key set is larger than {MAX_JWKS_BYTES} bytes"
        ));
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("{target} body: {err}"))?;
    Ok((status, body))
}

fn now_unix() -> i64 {
    unix_seconds(Date::now().as_millis())
}
