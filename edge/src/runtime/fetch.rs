//! The edge's own requests to the origin: built in one place, sent through the runtime's
//! global `fetch`.
//!
//! The `worker` crate's `Fetch::Request` takes a `worker::Request`, and making one from a
//! runtime request reads its method, URL, headers and `cf` back across the JavaScript
//! boundary; its `send` then builds a second, empty init object for the call. Profiled under
//! `wrangler dev`, that wrapping took about 6% of the isolate's busy time on a forwarded
//! secret read, for fields nothing here looks at. A timeout travels on the request itself
//! (`RequestInit::set_signal`), where it also bounds reading the body.

use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Headers, Response, js_sys, web_sys};

/// A request of the edge's to `target`, sent with exactly `headers` and `body`, that never
/// follows a redirect (the client, or the edge's own caller, decides about one). With
/// `timeout_ms` it gives up after that long; the signal rides on the request, so it also
/// bounds reading the body: an origin that sends its headers and then stalls cannot hold the
/// caller. The error is the runtime's, which repeats the URL: each caller decides what of it
/// may be logged.
pub(super) fn origin_request(
    target: &str,
    method: &str,
    headers: &Headers,
    body: Option<&[u8]>,
    timeout_ms: Option<u32>,
) -> Result<web_sys::Request, JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers_headers(&headers.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = body {
        init.set_body_opt_u8_array(Some(&js_sys::Uint8Array::from(body)));
    }
    if let Some(timeout_ms) = timeout_ms {
        init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(timeout_ms)));
    }
    web_sys::Request::new_with_str_and_init(target, &init)
}

/// Sends `request` and returns the answer's head; its body streams as it is read.
pub(super) async fn fetch(request: &web_sys::Request) -> worker::Result<Response> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let answer = JsFuture::from(global.fetch_with_request(request)).await?;
    let answer: web_sys::Response = answer.dyn_into()?;
    Ok(Response::from(answer))
}
