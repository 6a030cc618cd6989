//! The secret request page, `GET /r/{id}`: where a person gives the value an agent asked for.
//!
//! The page shows who asks, for which path and why (from the origin's public
//! `GET /v1/secret-requests/{id}/prompt`, which changes nothing), with one value field and a
//! type select. The page's own script sends the value once, in a `POST` body to
//! `/v1/secret-requests/{id}/fulfil`; a link previewer loads the page and changes nothing. The
//! page never shows an existing value: the origin has none to give it.
//!
//! The rules are the share page's ([`crate::share_page`]): one uniform 404 for every request
//! that does not take a value (missing, expired, fulfilled, cancelled), a 503 that invites a
//! retry when the origin cannot say, everything interpolated escaped, a constant script reached
//! through `data-` attributes, a strict CSP with a per-response nonce, no-store, no-referrer,
//! DENY framing, noindex.

use oxvault_core::vault::SecretType;
use serde::Deserialize;

use crate::share_page::{Page, TROUBLE_MESSAGE, document, escape};

/// The page of a request, `request_url` = `{public_url}/r/{id}`.
pub const REQUEST_PAGE_PATTERN: &str = "/r/{id}";

/// The origin path that describes a pending request.
pub fn prompt_path(id: &str) -> String {
    format!("/v1/secret-requests/{id}/prompt")
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    /// A pending request: the value form.
    Open(OpenRequest),
    /// Missing, expired, fulfilled, cancelled: all alike.
    Closed,
    /// The origin could not say.
    Trouble,
}

/// A pending request as the prompt describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpenRequest {
    #[serde(skip)]
    pub id: String,
    pub requested_by: String,
    pub path: String,
    pub description: String,
    #[serde(rename = "type")]
    pub secret_type: String,
    /// RFC 3339, as the origin wrote it.
    pub expires_at: String,
}

/// The page state from the origin's answer to the prompt request (`None`: no answer).
pub fn state_from_prompt(id: &str, answer: Option<(u16, &[u8])>) -> RequestState {
    match answer {
        Some((200, body)) => match serde_json::from_slice::<OpenRequest>(body) {
            Ok(open) => RequestState::Open(OpenRequest {
                id: id.to_owned(),
                ..open
            }),
            Err(_) => RequestState::Trouble,
        },
        Some((404, _)) => RequestState::Closed,
        _ => RequestState::Trouble,
    }
}

/// The message of the closed state; the same for every reason.
pub const CLOSED_MESSAGE: &str =
    "This request is no longer open: it was answered, withdrawn, has expired, or does not exist.";

/// Renders the page for `state`, with `nonce` on its script and style and in its CSP.
pub fn render(state: &RequestState, nonce: &str) -> Page {
    let (status, main, script) = match state {
        RequestState::Open(open) => (200, open_main(open), Some(SCRIPT)),
        RequestState::Closed => (
            404,
            format!(
                r#"<main><p id="state">{}</p></main>"#,
                escape(CLOSED_MESSAGE)
            ),
            None,
        ),
        RequestState::Trouble => (
            503,
            format!(r#"<main><p id="state">{TROUBLE_MESSAGE}</p></main>"#),
            None,
        ),
    };
    document(status, "Secret request", &main, script, nonce)
}

fn open_main(open: &OpenRequest) -> String {
    let options: String = SecretType::ALL
        .iter()
        .map(|kind| {
            let name = kind.as_str();
            let selected = if name == open.secret_type {
                " selected"
            } else {
                ""
            };
            format!(r#"<option value="{name}"{selected}>{name}</option>"#)
        })
        .collect();
    format!(
        r#"<main id="request" data-request-id="{id}">
<p id="state"><strong id="requested-by">{by}</strong> asks you for a secret. What you type goes straight into the vault; nobody sees it on the way, and this page cannot show it again.</p>
<p>For: <code id="path">{path}</code></p>
<p>Why: <span id="description">{description}</span></p>
<p>This request expires <time id="expires" datetime="{expires}">{expires}</time>.</p>
<div id="form">
<p><label for="type">Type</label>
<select id="type">{options}</select></p>
<p><label for="value">Secret value</label></p>
<p><textarea id="value" autocomplete="off" autocapitalize="off" spellcheck="false"></textarea></p>
<p><button id="submit" type="button">Store it in the vault</button></p>
</div>
</main>"#,
        id = escape(&open.id),
        by = escape(&open.requested_by),
        path = escape(&open.path),
        description = escape(&open.description),
        expires = escape(&open.expires_at),
    )
}

/// The submit logic. A constant: the id comes from `data-request-id`, the value goes in a
/// JSON body (never a URL), and every message is set with `textContent`.
const SCRIPT: &str = r#"
(function () {
  var main = document.getElementById('request');
  var state = document.getElementById('state');
  var form = document.getElementById('form');
  var value = document.getElementById('value');
  var type = document.getElementById('type');
  var submit = document.getElementById('submit');
  var expires = document.getElementById('expires');
  var when = new Date(expires.getAttribute('datetime'));
  if (!isNaN(when.getTime())) { expires.textContent = when.toLocaleString(); }
  function say(text) { state.textContent = text; }
  submit.addEventListener('click', function () {
    if (!value.value) { say('Type the secret first.'); return; }
    submit.disabled = true;
    fetch('/v1/secret-requests/' + encodeURIComponent(main.dataset.requestId) + '/fulfil', {
      method: 'POST', cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify({ value: value.value, type: type.value })
    }).then(function (response) {
      if (response.status === 201) {
        value.value = '';
        form.hidden = true;
        say('Stored in the vault. You can close this page.');
        return;
      }
      if (response.status === 404) {
        value.value = '';
        form.hidden = true;
        say('This request is no longer open: it was answered, withdrawn, or has expired.');
        return;
      }
      if (response.status === 429) {
        var wait = parseInt(response.headers.get('Retry-After') || '', 10);
        say('Too many attempts. Try again in ' + (wait > 0 ? wait : 60) + ' s.');
      } else if (response.status === 400 || response.status === 413) {
        say('The value was refused: it may be too long.');
      } else {
        say('Something went wrong. Try again later.');
      }
      submit.disabled = false;
    }).catch(function () {
      say('The request did not go through. Check your connection and try again.');
      submit.disabled = false;
    });
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn open(by: &str, description: &str) -> RequestState {
        RequestState::Open(OpenRequest {
            id: ID.to_owned(),
            requested_by: by.to_owned(),
            path: "api/stripe".to_owned(),
            description: description.to_owned(),
            secret_type: "api_key".to_owned(),
            expires_at: "2030-01-02T03:04:05Z".to_owned(),
        })
    }

    #[test]
    fn a_prompt_becomes_the_open_state_and_a_404_the_closed_one() {
        let body = br#"{"requested_by":"billing-bot","path":"api/stripe","description":"why","type":"api_key","expires_at":"2030-01-02T03:04:05Z"}"#;
        assert_eq!(
            state_from_prompt(ID, Some((200, body))),
            open("billing-bot", "why")
        );
        assert_eq!(
            state_from_prompt(ID, Some((404, b"{}"))),
            RequestState::Closed
        );
        for answer in [
            None,
            Some((200, &b"nope"[..])),
            Some((500, b"")),
            Some((401, b"")),
        ] {
            assert_eq!(state_from_prompt(ID, answer), RequestState::Trouble);
        }
        assert_eq!(prompt_path(ID), format!("/v1/secret-requests/{ID}/prompt"));
    }

    #[test]
    fn the_open_page_has_the_form_the_browser_test_drives_with_the_asked_type_selected() {
        let page = render(&open("billing-bot", "for billing"), "n0nce");
        assert_eq!(page.status, 200);
        for id in [
            r#"id="value""#,
            r#"id="type""#,
            r#"id="submit""#,
            r#"id="state""#,
            r#"id="path""#,
        ] {
            assert!(page.body.contains(id), "{id}");
        }
        assert!(page.body.contains(&format!(r#"data-request-id="{ID}""#)));
        assert!(page.body.contains(r#"<option value="api_key" selected>"#));
        assert!(page.body.contains(r#"<script nonce="n0nce">"#));
        assert!(
            page.headers
                .iter()
                .any(|(name, value)| *name == "cache-control" && value == "no-store")
        );
    }

    #[test]
    fn closed_and_trouble_pages_have_no_form_and_no_script() {
        let closed = render(&RequestState::Closed, "n");
        assert_eq!(closed.status, 404);
        assert!(closed.body.contains(CLOSED_MESSAGE));
        let trouble = render(&RequestState::Trouble, "n");
        assert_eq!(trouble.status, 503);
        assert!(trouble.headers.contains(&("retry-after", "2".to_owned())));
        for page in [closed, trouble] {
            assert!(!page.body.contains(r#"id="value""#));
            assert!(!page.body.contains("<script"));
        }
    }

    #[test]
    fn everything_the_asker_wrote_is_escaped() {
        let page = render(
            &open(
                "<img src=x onerror=alert(1)>",
                r#""><script>alert(1)</script>"#,
            ),
            "n",
        );
        assert!(!page.body.contains("<img"));
        assert!(!page.body.contains("<script>alert"));
        assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn the_script_posts_the_value_in_the_body_and_writes_only_text() {
        assert!(SCRIPT.contains("method: 'POST'"));
        assert!(SCRIPT.contains("JSON.stringify({ value: value.value"));
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("?value"));
    }
}
