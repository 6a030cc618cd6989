//! The Worker's entry point: the only code that touches the Workers runtime (wasm32 only).
//!
//! Each request is routed, gets the isolate's [`EdgeConfig`] (the bindings, read and checked
//! by the first request that needed them), has its rate limits counted and, on a protected
//! route, its bearer token verified, and the pure modules decide what to do; this layer does
//! the I/O. Every failure becomes an [`EdgeError`] and then an
//! RFC 7807 response here, so `fetch` always returns `Ok`: an `Err` would reach the client as
//! the `worker` crate's bare "INTERNAL SERVER ERROR", and a panic would kill the isolate.
//!
//! The `RateLimiter` Durable Object class ([`rate_limiter`]) is exported from here too.

mod auth;
mod fetch;
mod forward;
mod health;
mod http;
mod limiter;
mod mcp_key;
mod origin_call;
mod page;
mod rate_limiter;

use std::sync::atomic::{AtomicUsize, Ordering};

use oxvault_core::request_id::REQUEST_ID_HEADER;
use worker::js_sys::JsString;
use worker::{Context, Env, Request, Response, Url, console_error, console_log, event};

use crate::access::{Access, access};
use crate::body::check_declared_length;
use crate::config::{BaseUrl, EdgeConfig};
use crate::error::EdgeError;
use crate::headers::{self, CLIENT_IP_HEADER, Trust};
use crate::rate_limit::plan;
use crate::request_id::{choose_request_id, fresh_request_id};
use crate::route::{READ_ONLY_METHODS, Route, route};
use crate::share::{self, PASSPHRASE_HEADER, ShareRoute};
use forward::Outbound;
use limiter::Limiter;
use page::PageKind;

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
        Route::MethodNotAllowed => Err(EdgeError::MethodNotAllowed {
            allow: READ_ONLY_METHODS,
        }),
        Route::EdgeHealth => {
            let config = load_config(env)?;
            // Limited per IP before the origin is asked: every answer costs it a database
            // query and an HSM round trip (which it caches only briefly).
            let incoming = http::header_list(req.headers());
            let client_ip = headers::find(&incoming, CLIENT_IP_HEADER);
            let mut limiter = Limiter::new(env, config.limits);
            if let Some(class) = plan::ip_class(&method, url.path()) {
                limiter.check(plan::ip_check(class, client_ip)).await?;
            }
            Ok(health::answer(&config, request_id, limiter.headers()).await)
        }
        Route::SharePage => {
            let config = load_config(env)?;
            page::answer(
                &req,
                &url,
                &method,
                env,
                &config,
                request_id,
                PageKind::Share,
            )
            .await
        }
        Route::RequestPage => {
            let config = load_config(env)?;
            let kind = PageKind::SecretRequest;
            page::answer(&req, &url, &method, env, &config, request_id, kind).await
        }
        Route::Forward => {
            let config = load_config(env)?;
            forward_request(req, &url, &method, env, &config, request_id).await
        }
    }
}

/// A `/v1/*` request: limits, token, body, then the origin. Each step that can refuse runs
/// before the work of the next, and all of them before the origin is called.
async fn forward_request(
    req: Request,
    url: &Url,
    method: &str,
    env: &Env,
    config: &EdgeConfig,
    request_id: &str,
) -> Result<Response, EdgeError> {
    let path = url.path();
    let mut incoming = http::header_list(req.headers());
    // Framing first: a malformed or oversized declared length is refused whoever sends it,
    // and costs nothing to check (the body itself is read only after the token check).
    let declared = check_declared_length(headers::find(&incoming, "content-length"))?;

    let share = share::share_route(path).filter(|_| matches!(method, "GET" | "HEAD"));
    if share.is_some() {
        share::refuse_passphrase_in_query(url.query())?;
    }
    if share == Some(ShareRoute::Lookup) && method == "HEAD" {
        return Err(EdgeError::HeadOnShareLookup);
    }

    let access = access(method, path);
    if let Access::MethodNotAllowed(allow) = access {
        return Err(EdgeError::MethodNotAllowed { allow });
    }

    let client_ip = headers::find(&incoming, CLIENT_IP_HEADER);
    let mut limiter = Limiter::new(env, config.limits);
    // Per IP first: it needs nothing but the address, so a flood from one address is turned
    // away before any token or body work.
    if let Some(class) = plan::ip_class(method, path) {
        limiter.check(plan::ip_check(class, client_ip)).await?;
    }
    // An MCP client may send its key itself: exchanged (or recalled) here, and its token
    // forwarded and checked like any other.
    let mut key_digest = None;
    if path == crate::mcp::MCP_PATH
        && let Some(key) = crate::mcp::key_credential(headers::find(&incoming, "authorization"))
    {
        let token =
            mcp_key::token_for(key, config, url, client_ip, request_id, &mut limiter).await?;
        key_digest = Some(key.digest());
        headers::set(&mut incoming, "authorization", &format!("Bearer {token}"));
    }
    // Found again: the headers may have changed above (the address has not).
    let client_ip = headers::find(&incoming, CLIENT_IP_HEADER);
    if access == Access::Token {
        let authorization = headers::find(&incoming, "authorization");
        let subject = auth::require_token(authorization, config, request_id).await?;
        limiter.check(plan::subject_check(&subject)).await?;
    }

    // A share lookup's GET may carry the passphrase in a JSON body; other GETs and HEADs are
    // forwarded without one, as fetch() requires.
    let lookup = share == Some(ShareRoute::Lookup);
    let body = if lookup || !matches!(method, "GET" | "HEAD") {
        forward::read_body(&req, declared).await?
    } else {
        None
    };
    let identity = plan::identity_check(
        method,
        path,
        body.as_deref().unwrap_or_default(),
        &nfkc_lower,
    );
    if let Some(check) = identity {
        limiter.check(check).await?;
    }

    let request_origin = url.origin().ascii_serialization();
    let mut outgoing = headers::to_origin(
        &incoming,
        client_ip,
        request_id,
        trust(config, &request_origin),
    );
    let body = if lookup {
        if let Some(passphrase) = share::passphrase_from_body(body.as_deref().unwrap_or_default())?
        {
            headers::set(&mut outgoing, PASSPHRASE_HEADER, passphrase.header_value());
        }
        None
    } else {
        body
    };
    let outbound = Outbound {
        method,
        url,
        headers: outgoing,
        body,
    };
    let response = forward::send(outbound, config, &limiter.headers(), request_id).await?;
    if let Some(digest) = key_digest
        && response.status_code() == 401
    {
        mcp_key::forget(&digest);
    }
    Ok(response)
}

/// NFKC, lower case, then NFKC again, by the JavaScript runtime: the same Unicode operations
/// as the core's `Email` normalisation (lower-casing can make a letter that composes with the
/// mark after it, so the second pass is what makes `J̌` and `ǰ` one key), without linking its
/// tables into the Worker (see [`crate::rate_limit::plan`]).
fn nfkc_lower(text: &str) -> String {
    JsString::from(text)
        .normalize("NFKC")
        .to_lower_case()
        .normalize("NFKC")
        .into()
}

/// What the edge vouches for to the origin, when it shares a secret with it.
fn trust<'a>(config: &'a EdgeConfig, request_origin: &'a str) -> Option<Trust<'a>> {
    config.shared_secret.as_ref().map(|secret| Trust {
        secret,
        public_url: headers::public_base(
            config.public_url.as_ref().map(BaseUrl::as_str),
            request_origin,
        ),
    })
}

/// The isolate's configuration and this request's origin, the next in this isolate's
/// rotation. Only routes that need the origin call it, so a 404 never depends on
/// configuration.
fn load_config(env: &Env) -> Result<EdgeConfig, EdgeError> {
    let mut config = match CONFIG.with_borrow(Clone::clone) {
        Some(config) => config,
        None => {
            let config =
                EdgeConfig::from_vars(|name| env.var(name).ok().map(|var| var.to_string()))?;
            CONFIG.with_borrow_mut(|kept| *kept = Some(config.clone()));
            config
        }
    };
    config.choose_origin(NEXT_ORIGIN.fetch_add(1, Ordering::Relaxed));
    Ok(config)
}

thread_local! {
    /// The bindings as checked by the first request that needed them. An isolate runs one
    /// version of the Worker, whose vars and secrets stay as they are for its whole life (a
    /// new deployment, var or secret starts new isolates), so reading and parsing them again
    /// for every request (about 5% of the isolate's time on a forwarded read, profiled under
    /// `wrangler dev`) would only find the same. A configuration that fails its checks is not
    /// kept: every request answers 503 and checks again. wasm32 runs one thread per isolate
    /// (see `runtime::auth`).
    static CONFIG: std::cell::RefCell<Option<EdgeConfig>> = const { std::cell::RefCell::new(None) };
}

/// This isolate's place in the rotation over the origins. Any order would do (every origin
/// serves every request); this one spreads evenly.
static NEXT_ORIGIN: AtomicUsize = AtomicUsize::new(0);
