//! Request ids and the access log.
//!
//! The edge sets `X-Request-Id`; the origin keeps it when well-formed (it may also be reached
//! directly, so the id is checked, not trusted) and otherwise makes one. Every log line of the
//! request carries it, and the response echoes it so a client can quote it.
//!
//! A share link's id is its credential, so the access log writes `/v1/share/{share_id}` for
//! share routes instead of the id (`oxvault_core::share::loggable_path`, which the edge's log
//! lines use too).

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use oxvault_core::request_id::{REQUEST_ID_HEADER, is_acceptable_request_id};
use oxvault_core::share::loggable_path;
use tracing::Instrument;
use uuid::Uuid;

/// Middleware: settles the request id, runs the request inside a span carrying it, and logs
/// one line per request (method, path without query, status, latency). Answers without a
/// `Cache-Control` of their own get `no-store`.
pub async fn with_request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|value| value.to_str().is_ok_and(is_acceptable_request_id))
        .cloned()
        .unwrap_or_else(fresh_id);
    request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());

    let span = tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or_default(),
        method = %request.method(),
        path = %loggable_path(request.uri().path()),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID_HEADER, id);
    // API answers carry secret values, tokens and keys: no cache along the way may keep one.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn fresh_id() -> HeaderValue {
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(&Uuid::new_v4().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_ids_never_reach_the_access_log() {
        let id = "3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";
        assert_eq!(
            loggable_path(&format!("/v1/share/{id}")),
            "/v1/share/{share_id}"
        );
        assert_eq!(
            loggable_path(&format!("/v1/share/{id}/status")),
            "/v1/share/{share_id}/status"
        );
        assert_eq!(
            loggable_path(&format!("/v1/shares/{id}/accept")),
            "/v1/shares/{share_id}/accept"
        );
        assert_eq!(loggable_path("/v1/shares/inbound"), "/v1/shares/inbound");
        assert_eq!(loggable_path("/v1/vaults"), "/v1/vaults");
    }
}
