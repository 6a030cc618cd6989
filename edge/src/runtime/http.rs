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

/// Sets each header on `headers`, logging (not failing) on a refusal: every value passed here
/// is made by the edge and known to be a valid header value.
pub(super) fn set_all(headers: &Headers, list: &[(&'static str, String)], request_id: &str) {
    for (name, value) in list {
        if let Err(err) = headers.set(name, value) {
            console_error!("request_id={request_id} could not set {name}: {err}");
        }
    }
}

/// A response the edge makes up itself, tagged with the request id.
pub(super) fn reply(reply: &Reply, request_id: &str) -> Response {
    let headers = Headers::new();
    // Every value is known-good (constants, numbers, and an id that passed
    // `is_acceptable_request_id` or is a UUID), so these cannot fail; log if they ever do
    // rather than lose the response.
    set_all(
        &headers,
        &[
            ("content-type", reply.content_type.to_owned()),
            ("cache-control", "no-store".to_owned()),
            (REQUEST_ID_HEADER, request_id.to_owned()),
        ],
        request_id,
    );
    set_all(&headers, &reply.headers, request_id);
    Response::builder()
        .with_status(reply.status)
        .with_headers(headers)
        .fixed(reply.body.clone().into_bytes())
}
