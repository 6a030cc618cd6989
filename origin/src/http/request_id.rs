//! Request ids and the access log.
//!
//! The edge sets `X-Request-Id`; the origin keeps it when well-formed (it may also be reached
//! directly, so the id is checked, not trusted) and otherwise makes one. Every log line of the
//! request carries it, and the response echoes it so a client can quote it.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use oxvault_core::request_id::{REQUEST_ID_HEADER, is_acceptable_request_id};
use tracing::Instrument;
use uuid::Uuid;

/// Middleware: settles the request id, runs the request inside a span carrying it, and logs
/// one line per request (method, path without query, status, latency).
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
        path = %request.uri().path(),
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
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

fn fresh_id() -> HeaderValue {
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(&Uuid::new_v4().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
