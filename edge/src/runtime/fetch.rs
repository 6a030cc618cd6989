//! The runtime's global `fetch`, for requests the edge builds itself.
//!
//! The `worker` crate's `Fetch::Request` takes a `worker::Request`, and making one from a
//! runtime request reads its method, URL, headers and `cf` back across the JavaScript
//! boundary; its `send` then builds a second, empty init object for the call. Profiled under
//! `wrangler dev`, that wrapping took about 6% of the isolate's busy time on a forwarded
//! secret read, for fields nothing here looks at. A timeout travels on the request itself
//! (`RequestInit::set_signal`), where it also bounds reading the body.

use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Response, js_sys, web_sys};

/// Sends `request` and returns the answer's head; its body streams as it is read.
pub(super) async fn fetch(request: &web_sys::Request) -> worker::Result<Response> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let answer = JsFuture::from(global.fetch_with_request(request)).await?;
    let answer: web_sys::Response = answer.dyn_into()?;
    Ok(Response::from(answer))
}
