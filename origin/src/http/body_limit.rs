//! The request-body size limit of the origin: the edge's own ([`MAX_BODY_BYTES`], 1 MiB),
//! so a body the edge forwards always fits, and a caller that reaches the origin directly
//! gets no more room than through the edge.
//!
//! Enforced twice, like at the edge: a declared `Content-Length` over the limit is refused
//! before any byte is read, and the body is read whole, up to the limit, before any handler
//! runs (a chunked body declares nothing); axum's [`DefaultBodyLimit`] stays as the
//! extractors' own cap. Any 413 that is not already a problem body is rewritten into one here.
//!
//! Reading the body first keeps connections reusable: a layer or handler that answers without
//! reading it (the throttle's 429, a 401 or a scope's 403 decided before the JSON is parsed)
//! would leave unread bytes behind, and hyper then closes the connection after the answer
//! without saying so. A client that pools connections, as the edge does, sends its next
//! request on that connection and loses it ("network connection lost", a 502 at the edge).
//! A 413 says `Connection: close`, since its body is left unread.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
pub use oxvault_core::problem::MAX_BODY_BYTES;
use oxvault_core::problem::{PROBLEM_JSON, ProblemKind, body_too_large_detail};

use super::error::problem_response;

/// The layer that caps what body extractors read.
pub fn default_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY_BYTES)
}

/// The 413, closing the connection: what is left of the body is not read.
fn too_large() -> Response {
    let mut response =
        problem_response(ProblemKind::PayloadTooLarge.with_detail(body_too_large_detail()));
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether a declared `Content-Length` is over the limit. A malformed one is left to hyper,
/// which refuses it before any handler runs.
fn declared_too_large(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
}

/// Refuses declared oversized bodies up front, reads the body whole (413 past the limit), and
/// turns any other 413 into a problem body.
pub async fn limit_body(request: Request, next: Next) -> Response {
    if declared_too_large(&request) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    // Over the limit, or the client went away mid-body: either way nothing more is read.
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return too_large();
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return too_large();
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn with_length(length: &str) -> Request {
        Request::builder()
            .header(header::CONTENT_LENGTH, length)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn a_body_declared_over_one_mebibyte_is_too_large() {
        assert!(!declared_too_large(&with_length("1048576")));
        assert!(declared_too_large(&with_length("1048577")));
        assert!(declared_too_large(&with_length("99999999999999")));
        assert!(!declared_too_large(
            &Request::builder().body(Body::empty()).unwrap()
        ));
    }
}
