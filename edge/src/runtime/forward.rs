//! Forwarding a `/v1/*` request to the origin and relaying its answer.
//!
//! The request body is read in full (bounded by [`crate::body::MAX_BODY_BYTES`]) before the
//! origin is contacted, so an oversized body costs the origin nothing. The origin's response
//! body is streamed back untouched. Redirects are relayed, not followed: the client decides
//! whether to follow them, as it would without the edge.

use futures_util::StreamExt;
use worker::js_sys::Uint8Array;
use worker::{ByteStream, Fetch, Request, Response, ResponseBody, Url, web_sys};

use super::http::{header_list, to_headers};
use crate::body::BodyCollector;
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::headers::{self, CLIENT_IP_HEADER};
use crate::relay::{must_not_have_body, relayable_status};
use crate::target::origin_target;

/// Sends the request on. `incoming` are its headers, `declared` its already-checked
/// `Content-Length` (see [`crate::body::check_declared_length`]).
pub(super) async fn forward(
    req: Request,
    url: &Url,
    method: &str,
    incoming: &[(String, String)],
    declared: Option<u64>,
    config: &EdgeConfig,
    request_id: &str,
) -> Result<Response, EdgeError> {
    let body = read_body(&req, method, declared).await?;

    let client_ip = headers::find(incoming, CLIENT_IP_HEADER);
    let outgoing = to_headers(&headers::to_origin(incoming, client_ip, request_id))?;
    let target = origin_target(&config.origin, url.path(), url.query());

    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers_headers(&outgoing.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = &body {
        init.set_body_opt_u8_array(Some(&Uint8Array::from(body.as_slice())));
    }
    let outbound = web_sys::Request::new_with_str_and_init(&target, &init)
        .map_err(|err| EdgeError::Internal(format!("origin request not built: {err:?}")))?;

    let response = Fetch::Request(Request::from(outbound))
        .send()
        .await
        .map_err(|err| EdgeError::OriginUnreachable(format!("{target}: {err}")))?;
    relay(response, request_id)
}

/// The request body, or `None` when there is none to send.
async fn read_body(
    req: &Request,
    method: &str,
    declared: Option<u64>,
) -> Result<Option<Vec<u8>>, EdgeError> {
    // fetch() refuses a body on GET and HEAD, so one sent there is not forwarded.
    if matches!(method, "GET" | "HEAD") {
        return Ok(None);
    }
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

/// The origin's response with its status, end-to-end headers and body, plus our request id.
fn relay(response: Response, request_id: &str) -> Result<Response, EdgeError> {
    let status = response.status_code();
    if !relayable_status(status) {
        return Err(EdgeError::BadOriginResponse(format!("status {status}")));
    }
    let headers = to_headers(&headers::to_client(
        &header_list(response.headers()),
        request_id,
    ))?;
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
