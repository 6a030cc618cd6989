//! The edge's own small requests to the origin, on a client request's behalf: a page's status
//! or prompt lookup, an MCP key exchange. Bounded in time and size, and sent with the headers
//! the edge vouches with ([`headers::to_origin`]).

use worker::{Url, console_error};

use super::fetch::origin_request;
use super::http::to_headers;
use super::trust;
use crate::config::EdgeConfig;
use crate::headers;
use crate::share_page::STATUS_TIMEOUT_MS;
use crate::target::origin_target;

/// The largest answer read; a share status is about 120 bytes, a request prompt at most a few
/// KiB.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// A request of the edge's own to the origin: a `GET` of `path`, or a `POST` of a JSON body.
pub(super) struct OriginCall<'a> {
    pub path: &'a str,
    pub json_body: Option<&'a [u8]>,
    pub client_ip: Option<&'a str>,
    pub request_id: &'a str,
}

/// The origin's answer (status code and body, at most [`MAX_ANSWER_BYTES`]) to `call`, or
/// `None` (logged) when there is none. Bounded in time by [`STATUS_TIMEOUT_MS`].
pub(super) async fn call_origin(
    config: &EdgeConfig,
    url: &Url,
    call: OriginCall<'_>,
) -> Option<(u16, Vec<u8>)> {
    let OriginCall {
        path,
        json_body,
        client_ip,
        request_id,
    } = call;
    let target = origin_target(config.origin(), path, None);
    let request_origin = url.origin().ascii_serialization();
    let mut list = headers::to_origin(&[], client_ip, request_id, trust(config, &request_origin));
    list.push(("accept".to_owned(), "application/json".to_owned()));
    if json_body.is_some() {
        list.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    let outgoing = to_headers(&list)
        .map_err(|err| console_error!("request_id={request_id} edge-to-origin headers: {err}"))
        .ok()?;

    let method = if json_body.is_some() { "POST" } else { "GET" };
    // The timeout also bounds reading the body: a stalled origin must not hold the page forever.
    let timeout = Some(STATUS_TIMEOUT_MS);
    let request = origin_request(&target, method, &outgoing, json_body, timeout)
        // The runtime's error repeats the URL, which holds the link's id: not logged.
        .map_err(|_| {
            console_error!("request_id={request_id} edge-to-origin request could not be built")
        })
        .ok()?;
    let mut response = super::fetch::fetch(&request)
        .await
        .map_err(|err| console_error!("request_id={request_id} origin unreachable: {err}"))
        .ok()?;
    let status = response.status_code();
    let declared = response.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|length| length.trim().parse::<usize>().ok())
        .is_some_and(|length| length > MAX_ANSWER_BYTES)
    {
        console_error!("request_id={request_id} origin answer too large");
        return None;
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| console_error!("request_id={request_id} origin answer body: {err}"))
        .ok()?;
    Some((status, body))
}
