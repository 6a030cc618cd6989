//! The edge's pages: `GET`/`HEAD /s/{id}` asks the origin for the share's status (which never
//! uses a view) and renders [`crate::share_page`]; `GET`/`HEAD /r/{id}` asks for a secret
//! request's prompt (which changes nothing) and renders [`crate::request_page`].

use oxvault_core::request_id::REQUEST_ID_HEADER;
use uuid::Uuid;
use worker::{Env, Headers, Request, Response, Url, console_error};

use super::http::{header_list, set_all};
use super::limiter::Limiter;
use super::origin_call::{OriginCall, call_origin};
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::headers::{self, CLIENT_IP_HEADER};
use crate::rate_limit::plan::{LimitClass, ip_check};
use crate::request_page::{self, REQUEST_PAGE_PATTERN, RequestState, prompt_path};
use crate::route::SHARE_PAGE_PATTERN;
use crate::share::refuse_passphrase_in_query;
use crate::share_page::{Page, PageState, page_id, render, state_from_status, status_path};

/// Which page a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PageKind {
    Share,
    SecretRequest,
}

impl PageKind {
    fn pattern(self) -> &'static str {
        match self {
            Self::Share => SHARE_PAGE_PATTERN,
            Self::SecretRequest => REQUEST_PAGE_PATTERN,
        }
    }

    /// The origin path that describes link `id` without using it up.
    fn origin_path(self, id: &str) -> String {
        match self {
            Self::Share => status_path(id),
            Self::SecretRequest => prompt_path(id),
        }
    }

    /// The page for the origin's `answer` about link `id`, and whether that answer was
    /// unusable.
    fn page(self, id: &str, answer: Option<(u16, &[u8])>, nonce: &str) -> (Page, bool) {
        match self {
            Self::Share => {
                let state = state_from_status(id, answer);
                (render(&state, nonce), state == PageState::Trouble)
            }
            Self::SecretRequest => {
                let state = request_page::state_from_prompt(id, answer);
                (
                    request_page::render(&state, nonce),
                    state == RequestState::Trouble,
                )
            }
        }
    }
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

    let segment = url
        .path()
        .strip_prefix(kind.pattern().trim_end_matches("{id}"))
        .unwrap_or_default();
    let id = page_id(segment);
    let answer = match &id {
        Some(id) => {
            let path = kind.origin_path(id);
            let asked = OriginCall {
                path: &path,
                json_body: None,
                client_ip,
                request_id,
            };
            call_origin(config, url, asked).await
        }
        // Not an id at all (ids are always UUIDs): it names nothing, which is what the
        // origin's 404 would say, and the origin need not be asked.
        None => Some((404, Vec::new())),
    };
    // A fresh nonce per response, so an injected script could not guess it. A UUID v4's 122
    // random bits in hex (hex digits are valid nonce characters).
    let nonce = Uuid::new_v4().simple().to_string();
    let answered = answer
        .as_ref()
        .map(|(status, body)| (*status, body.as_slice()));
    let (page, unusable) = kind.page(&id.unwrap_or_default(), answered, &nonce);
    if unusable {
        console_error!(
            "request_id={request_id} {kind:?} page: the origin's answer is unusable: {:?}",
            answer.map(|(status, _)| status)
        );
    }
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
