//! The Worker's entry point: the only code that touches the Workers runtime (wasm32 only).
//!
//! Each request is routed, the bindings are read into an [`EdgeConfig`], protected routes
//! have their bearer token verified, and the pure modules decide what to do; this layer does
//! the I/O. Every failure becomes an [`EdgeError`] and then an RFC 7807 response here, so
//! `fetch` always returns `Ok`: an `Err` would reach the client as the `worker` crate's bare
//! "INTERNAL SERVER ERROR", and a panic would kill the isolate.

mod auth;
mod forward;
mod health;
mod http;

use oxvault_core::request_id::REQUEST_ID_HEADER;
use worker::{Context, Env, Request, Response, console_error, console_log, event};

use crate::access::{Access, access};
use crate::body::check_declared_length;
use crate::config::{EdgeConfig, ORIGIN_URL_VAR};
use crate::error::EdgeError;
use crate::headers;
use crate::request_id::{choose_request_id, fresh_request_id};
use crate::route::{Route, route};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    Ok(handle(req, &env).await)
}

async fn handle(req: Request, env: &Env) -> Response {
    // The id is chosen first so that every answer, errors included, carries it.
    let client_id = req.headers().get(REQUEST_ID_HEADER).ok().flatten();
    let request_id = choose_request_id(client_id.as_deref(), fresh_request_id);

    let outcome = dispatch(req, env, &request_id).await;
    match outcome {
        Ok(response) => response,
        Err(err) => {
            // The cause goes to the Worker's log, keyed by request id; the body says only what
            // the caller may know.
            if err.is_internal() {
                console_error!("request_id={request_id} {err}");
            } else {
                console_log!("request_id={request_id} refused: {err}");
            }
            http::reply(&err.reply(), &request_id)
        }
    }
}

async fn dispatch(req: Request, env: &Env, request_id: &str) -> Result<Response, EdgeError> {
    // `Request::method()` maps methods it does not know to GET; the raw one is exact.
    let method = req.inner().method();
    // Parsed by the runtime with WHATWG rules: dot segments are already resolved.
    let url = req
        .url()
        .map_err(|err| EdgeError::Internal(format!("request URL did not parse: {err}")))?;

    match route(&method, url.path()) {
        Route::NotFound => Err(EdgeError::NotFound),
        Route::EdgeHealth => {
            let config = load_config(env)?;
            Ok(health::answer(&config, request_id).await)
        }
        Route::Forward => {
            let config = load_config(env)?;
            let incoming = http::header_list(req.headers());
            // Framing first: a malformed or oversized declared length is refused whoever
            // sends it, and costs nothing to check (the body itself is read only after the
            // token check).
            let declared = check_declared_length(headers::find(&incoming, "content-length"))?;
            if access(&method, url.path()) == Access::Token {
                let authorization = headers::find(&incoming, "authorization");
                auth::require_token(authorization, &config, request_id).await?;
            }
            forward::forward(req, &url, &method, &incoming, declared, &config, request_id).await
        }
    }
}

/// Reads the bindings once for this request. Only routes that need the origin call it, so a
/// 404 never depends on configuration.
fn load_config(env: &Env) -> Result<EdgeConfig, EdgeError> {
    let origin_url = env.var(ORIGIN_URL_VAR).ok().map(|var| var.to_string());
    Ok(EdgeConfig::from_vars(origin_url.as_deref())?)
}
