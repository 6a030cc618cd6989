//! Conversions between the runtime's header and response types and the pure modules' plain
//! values. Nothing here may panic; every fallible runtime call is matched.

use oxvault_core::request_id::REQUEST_ID_HEADER;
use worker::{Headers, Response, console_error};

use crate::error::{EdgeError, Reply};
use crate::headers::HeaderList;

/// The runtime's headers as `(name, value)` pairs (names arrive lower-cased; each
/// `set-cookie` is its own pair).
pub(super) fn header_list(headers: &Headers) -> HeaderList {
    headers.entries().collect()
}

/// A runtime header object holding exactly these pairs, in order.
pub(super) fn to_headers(list: &[(String, String)]) -> Result<Headers, EdgeError> {
    let headers = Headers::new();
    for (name, value) in list {
        headers
            .append(name, value)
            .map_err(|err| EdgeError::Internal(format!("header {name:?} refused: {err}")))?;
    }
    Ok(headers)
}

/// A response the edge makes up itself, tagged with the request id.
pub(super) fn reply(reply: &Reply, request_id: &str) -> Response {
    let headers = Headers::new();
    // Every value is known-good (constants, and an id that passed
    // `is_acceptable_request_id` or is a UUID), so these cannot fail; log if they ever do
    // rather than lose the response.
    let challenge = reply
        .www_authenticate
        .map(|challenge| ("www-authenticate", challenge));
    for (name, value) in [
        ("content-type", reply.content_type),
        ("cache-control", "no-store"),
        (REQUEST_ID_HEADER, request_id),
    ]
    .into_iter()
    .chain(challenge)
    {
        if let Err(err) = headers.set(name, value) {
            console_error!("request_id={request_id} could not set {name}: {err}");
        }
    }
    Response::builder()
        .with_status(reply.status)
        .with_headers(headers)
        .fixed(reply.body.clone().into_bytes())
}
