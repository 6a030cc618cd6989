//! The edge's pages: `GET`/`HEAD /s/{id}` asks the origin for the share's status (which never
//! uses a view) and renders [`crate::share_page`]; `GET`/`HEAD /r/{id}` asks for a secret
//! request's prompt (which changes nothing) and renders [`crate::request_page`].

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
use crate::request_page::{self, REQUEST_PAGE_PATTERN, RequestState, prompt_path};
use crate::route::SHARE_PAGE_PATTERN;
use crate::share::refuse_passphrase_in_query;
use crate::share_page::{
    Page, PageState, STATUS_TIMEOUT_MS, page_id, render, state_from_status, status_path,
};
use crate::target::origin_target;

/// The largest status answer read; a real one is about 120 bytes.
const MAX_STATUS_BYTES: usize = 16 * 1024;

/// Which page a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PageKind {
    Share,
    SecretRequest,
}

pub(super) async fn answer(
    req: &Request,
    url: &Url,
    method: &str,
    env: &Env,
    config: &EdgeConfig,
    request_id: &str,
    kind: PageKind,
) -> Result<Response, EdgeError> {
    if kind == PageKind::Share {
        refuse_passphrase_in_query(url.query())?;
    }
    let incoming = header_list(req.headers());
    let client_ip = headers::find(&incoming, CLIENT_IP_HEADER);
    // Per IP, like the lookups: guessing ids through the page trips the same limit.
    let mut limiter = Limiter::new(env, config.limits);
    limiter
        .check(ip_check(LimitClass::ShareIp, client_ip))
        .await?;

    let pattern = match kind {
        PageKind::Share => SHARE_PAGE_PATTERN,
        PageKind::SecretRequest => REQUEST_PAGE_PATTERN,
    };
    let segment = url
        .path()
        .strip_prefix(pattern.trim_end_matches("{id}"))
        .unwrap_or_default();
    // A fresh nonce per response, so an injected script could not guess it. A UUID v4's 122
    // random bits in hex (hex digits are valid nonce characters).
    let nonce = Uuid::new_v4().simple().to_string();
    // Not an id at all (ids are always UUIDs): it cannot be live, and the origin need not be
    // asked.
    let id = page_id(segment);
    let page = match kind {
        PageKind::Share => share_page(config, url, id, client_ip, request_id, &nonce).await,
        PageKind::SecretRequest => {
            request_page(config, url, id, client_ip, request_id, &nonce).await
        }
    };
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

async fn share_page(
    config: &EdgeConfig,
    url: &Url,
    id: Option<String>,
    client_ip: Option<&str>,
    request_id: &str,
    nonce: &str,
) -> Page {
    let state = match id {
        None => PageState::Unavailable,
        Some(id) => {
            let answer = ask_origin(config, url, &status_path(&id), client_ip, request_id).await;
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
    render(&state, nonce)
}

async fn request_page(
    config: &EdgeConfig,
    url: &Url,
    id: Option<String>,
    client_ip: Option<&str>,
    request_id: &str,
    nonce: &str,
) -> Page {
    let state = match id {
        None => RequestState::Closed,
        Some(id) => {
            let answer = ask_origin(config, url, &prompt_path(&id), client_ip, request_id).await;
            let answer_ref = answer.as_ref().map(|(s, b)| (*s, b.as_slice()));
            let state = request_page::state_from_prompt(&id, answer_ref);
            if state == RequestState::Trouble {
                console_error!(
                    "request_id={request_id} request prompt unusable: {:?}",
                    answer.map(|(status, _)| status)
                );
            }
            state
        }
    };
    request_page::render(&state, nonce)
}

/// The origin's answer (status code and body) to a `GET` of `path`, or `None` (logged) when
/// there is none.
async fn ask_origin(
    config: &EdgeConfig,
    url: &Url,
    path: &str,
    client_ip: Option<&str>,
    request_id: &str,
) -> Option<(u16, Vec<u8>)> {
    let asked = OriginCall {
        path,
        json_body: None,
        client_ip,
        request_id,
    };
    call_origin(config, url, asked).await
}

/// A request of the edge's own to the origin: a `GET` of `path`, or a `POST` of a JSON body.
pub(super) struct OriginCall<'a> {
    pub path: &'a str,
    pub json_body: Option<&'a [u8]>,
    pub client_ip: Option<&'a str>,
    pub request_id: &'a str,
}

/// The origin's answer (status code and body, at most [`MAX_STATUS_BYTES`]) to `call`, or
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

    let init = web_sys::RequestInit::new();
    init.set_method(if json_body.is_some() { "POST" } else { "GET" });
    if let Some(body) = json_body {
        init.set_body_opt_u8_array(Some(&worker::js_sys::Uint8Array::from(body)));
    }
    init.set_headers_headers(&outgoing.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let request = web_sys::Request::new_with_str_and_init(&target, &init)
        // The runtime's error repeats the URL, which holds the link's id: not logged.
        .map_err(|_| {
            console_error!("request_id={request_id} edge-to-origin request could not be built")
        })
        .ok()?;
    // Also bounds reading the body: a stalled origin must not hold the page forever.
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(STATUS_TIMEOUT_MS));
    let mut response = Fetch::Request(Request::from(request))
        .send_with_signal(&signal)
        .await
        .map_err(|err| console_error!("request_id={request_id} origin unreachable: {err}"))
        .ok()?;
    let status = response.status_code();
    let declared = response.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|length| length.trim().parse::<usize>().ok())
        .is_some_and(|length| length > MAX_STATUS_BYTES)
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
