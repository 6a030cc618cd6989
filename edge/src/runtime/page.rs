//! `GET`/`HEAD /s/{id}`: asks the origin for the share's status (which never uses a view)
//! and renders [`crate::share_page`].

use oxvault_core::request_id::REQUEST_ID_HEADER;
use uuid::Uuid;
use worker::{AbortSignal, Env, Fetch, Headers, Request, Response, Url, console_error, web_sys};

use super::http::{header_list, set_all, to_headers};
use super::limiter::Limiter;
use super::trust;
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::headers::{self, CLIENT_IP_HEADER};
use crate::rate_limit::plan::{LimitClass, ip_check};
use crate::route::SHARE_PAGE_PATTERN;
use crate::share::refuse_passphrase_in_query;
use crate::share_page::{
    PageState, STATUS_TIMEOUT_MS, page_id, render, state_from_status, status_path,
};
use crate::target::origin_target;

/// The largest status answer read; a real one is about 120 bytes.
const MAX_STATUS_BYTES: usize = 16 * 1024;

pub(super) async fn answer(
    req: &Request,
    url: &Url,
    method: &str,
    env: &Env,
    config: &EdgeConfig,
    request_id: &str,
) -> Result<Response, EdgeError> {
    refuse_passphrase_in_query(url.query())?;
    let incoming = header_list(req.headers());
    let client_ip = headers::find(&incoming, CLIENT_IP_HEADER);
    // Per IP, like the lookups: guessing ids through the page trips the same limit.
    let mut limiter = Limiter::new(env, config.limits);
    limiter
        .check(ip_check(LimitClass::ShareIp, client_ip))
        .await?;

    let prefix = SHARE_PAGE_PATTERN.trim_end_matches("{id}");
    let segment = url.path().strip_prefix(prefix).unwrap_or_default();
    let state = match page_id(segment) {
        // Not a share id at all: it cannot be live, and the origin need not be asked.
        None => PageState::Unavailable,
        Some(id) => {
            let answer = ask_status(config, url, &id, client_ip, request_id).await;
            let state = state_from_status(&id, answer.as_ref().map(|(s, b)| (*s, b.as_slice())));
            if state == PageState::Trouble {
                console_error!(
                    "request_id={request_id} share status unusable: {:?}",
                    answer.map(|(status, _)| status)
                );
            }
            state
        }
    };

    // A fresh nonce per response, so an injected script could not guess it. A UUID v4's 122
    // random bits in hex (hex digits are valid nonce characters).
    let nonce = Uuid::new_v4().simple().to_string();
    let page = render(&state, &nonce);
    let response_headers = Headers::new();
    set_all(&response_headers, &page.headers, request_id);
    set_all(&response_headers, &limiter.headers(), request_id);
    set_all(
        &response_headers,
        &[(REQUEST_ID_HEADER, request_id.to_owned())],
        request_id,
    );
    let builder = Response::builder()
        .with_status(page.status)
        .with_headers(response_headers);
    Ok(if method == "HEAD" {
        builder.empty()
    } else {
        builder.fixed(page.body.into_bytes())
    })
}

/// The origin's status answer (status code and body), or `None` (logged) when there is none.
async fn ask_status(
    config: &EdgeConfig,
    url: &Url,
    id: &str,
    client_ip: Option<&str>,
    request_id: &str,
) -> Option<(u16, Vec<u8>)> {
    let target = origin_target(config.origin(), &status_path(id), None);
    let request_origin = url.origin().ascii_serialization();
    let mut list = headers::to_origin(&[], client_ip, request_id, trust(config, &request_origin));
    list.push(("accept".to_owned(), "application/json".to_owned()));
    let outgoing = to_headers(&list)
        .map_err(|err| console_error!("request_id={request_id} status headers: {err}"))
        .ok()?;

    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    init.set_headers_headers(&outgoing.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let request = web_sys::Request::new_with_str_and_init(&target, &init)
        // The runtime's error repeats the URL, which holds the share id: not logged.
        .map_err(|_| console_error!("request_id={request_id} status request could not be built"))
        .ok()?;
    // Also bounds reading the body: a stalled origin must not hold the page forever.
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(STATUS_TIMEOUT_MS));
    let mut response = Fetch::Request(Request::from(request))
        .send_with_signal(&signal)
        .await
        .map_err(|err| console_error!("request_id={request_id} share status unreachable: {err}"))
        .ok()?;
    let status = response.status_code();
    let declared = response.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|length| length.trim().parse::<usize>().ok())
        .is_some_and(|length| length > MAX_STATUS_BYTES)
    {
        console_error!("request_id={request_id} share status answer too large");
        return None;
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| console_error!("request_id={request_id} share status body: {err}"))
        .ok()?;
    Some((status, body))
}
