//! Forwarding a `/v1/*` request to the origin and relaying its answer.
//!
//! The request body is read in full (bounded by [`crate::body::MAX_BODY_BYTES`]) before the
//! origin is contacted, so an oversized body costs the origin nothing, and so the rate limiter
//! can read the identity a token exchange is for. The origin's response body is streamed back
//! untouched. Redirects are relayed, not followed: the client decides whether to follow them,
//! as it would without the edge.

use futures_util::StreamExt;
use worker::{ByteStream, Request, Response, ResponseBody, Url};

use oxvault_core::edge_report::{REFUSALS_HEADER, Refusals};

use super::fetch::origin_request;
use super::http::{header_list, set_all, to_headers};
use super::limiter::{put_back_refusals, take_refusals};
use crate::body::BodyCollector;
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::headers::{self, HeaderList};
use crate::relay::{must_not_have_body, relayable_status};
use crate::target::{loggable_target, origin_target};

/// The request body, or `None` when there is none. `declared` is its already-checked
/// `Content-Length` (see [`crate::body::check_declared_length`]).
pub(super) async fn read_body(
    req: &Request,
    declared: Option<u64>,
) -> Result<Option<Vec<u8>>, EdgeError> {
    // Built from the raw stream: `Request::stream()` unwraps a cast this way avoids.
    let Some(raw) = req.inner().body() else {
        return Ok(None);
    };
    let mut stream = ByteStream::from(raw);
    let mut collector = BodyCollector::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| EdgeError::UnreadableBody(err.to_string()))?;
        collector.push(&chunk)?;
    }
    Ok(Some(collector.finish(declared)?))
}

/// What goes to the origin: the headers already filtered by [`headers::to_origin`] (and
/// adjusted), and the body to send, if any.
#[derive(Debug)]
pub(super) struct Outbound<'a> {
    pub method: &'a str,
    pub url: &'a Url,
    pub headers: HeaderList,
    pub body: Option<Vec<u8>>,
}

/// Sends the request on and relays the answer, with `extra` headers (the rate limit that
/// applied) added to it.
pub(super) async fn send(
    mut outbound: Outbound<'_>,
    config: &EdgeConfig,
    extra: &[(&'static str, String)],
    request_id: &str,
) -> Result<Response, EdgeError> {
    // The isolate's refusals ride along, where the origin can believe them (it checks the
    // shared secret sent beside them); put back if the origin is not reached.
    let refusals = if config.shared_secret.is_some() {
        take_refusals()
    } else {
        Refusals::new()
    };
    if !refusals.is_empty() {
        headers::set(
            &mut outbound.headers,
            REFUSALS_HEADER,
            &refusals.to_header(),
        );
    }
    let sent = send_now(outbound, config, extra, request_id).await;
    if matches!(sent, Err(EdgeError::OriginUnreachable(_))) {
        put_back_refusals(refusals);
    }
    sent
}

async fn send_now(
    outbound: Outbound<'_>,
    config: &EdgeConfig,
    extra: &[(&'static str, String)],
    request_id: &str,
) -> Result<Response, EdgeError> {
    let outgoing = to_headers(&outbound.headers)?;
    let target = origin_target(config.origin(), outbound.url.path(), outbound.url.query());

    // fetch() refuses a body on GET and HEAD, so one sent there is never forwarded.
    let body = outbound
        .body
        .as_deref()
        .filter(|_| !matches!(outbound.method, "GET" | "HEAD"));
    let request =
        origin_request(&target, outbound.method, &outgoing, body, None).map_err(|err| {
            let target = loggable_target(config.origin(), outbound.url.path());
            EdgeError::Internal(format!("origin request to {target} not built: {err:?}"))
        })?;

    let response = super::fetch::fetch(&request).await.map_err(|err| {
        // Named without the query and with any share id redacted: this goes to the log.
        let target = loggable_target(config.origin(), outbound.url.path());
        EdgeError::OriginUnreachable(format!("{target}: {err}"))
    })?;
    relay(response, extra, request_id)
}

/// The origin's response with its status, end-to-end headers and body, plus our request id
/// and `extra`.
fn relay(
    response: Response,
    extra: &[(&'static str, String)],
    request_id: &str,
) -> Result<Response, EdgeError> {
    let status = response.status_code();
    if !relayable_status(status) {
        return Err(EdgeError::BadOriginResponse(format!("status {status}")));
    }
    let headers = to_headers(&headers::to_client(
        &header_list(response.headers()),
        request_id,
    ))?;
    set_all(&headers, extra, request_id);
    let (_, body) = response.into_parts();
    let body = if must_not_have_body(status) {
        ResponseBody::Empty
    } else {
        body
    };
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body))
}
