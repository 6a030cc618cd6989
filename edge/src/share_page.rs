//! The share page, `GET /s/{id}`: the HTML a person (or a chat app's link previewer) sees
//! when opening a `share_url`.
//!
//! Loading the page never uses up a view (SECURITY 19): the edge asks the origin only for the
//! share's status (`GET /v1/share/{id}/status`), and the value is fetched by the page's own
//! script when the person presses Reveal, with the passphrase in the `X-Share-Passphrase`
//! header (never the URL). Previewers do not run scripts or press buttons.
//!
//! A missing, expired, used-up, revoked or declined link renders one and the same
//! "unavailable" page (status 404), so the page tells no one which it was. A live link renders
//! with status 200. If the origin cannot be asked, the page says to try again (503).
//!
//! Everything interpolated into the HTML is escaped, the script and style are inline and
//! allowed by a per-response CSP nonce, and the script is a constant: the share id reaches it
//! through a `data-` attribute, never by splicing text into code.

use oxvault_core::problem::UNAVAILABLE_RETRY_AFTER_SECS;
use serde::Deserialize;
use uuid::Uuid;

/// How long the edge waits for the origin's status answer.
pub const STATUS_TIMEOUT_MS: u32 = 5_000;

/// The share id of a page path segment, as the canonical lower-case hyphenated UUID, or
/// `None` when the segment is not a UUID (share ids always are, so such a link cannot be
/// live and the origin need not be asked).
pub fn page_id(segment: &str) -> Option<String> {
    Uuid::try_parse(segment)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

/// The origin path that reports a share's status without using a view.
pub fn status_path(id: &str) -> String {
    format!("/v1/share/{id}/status")
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageState {
    /// A live link: a Reveal button, and a passphrase field when one is needed.
    Live(LiveShare),
    /// Missing, expired, used up, revoked: all alike.
    Unavailable,
    /// The origin could not say (unreachable, or an unusable answer).
    Trouble,
}

/// A live share as the status endpoint describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveShare {
    pub id: String,
    pub requires_passphrase: bool,
    /// When the link stops working, as the origin wrote it (RFC 3339).
    pub expires_at: String,
}

#[derive(Deserialize)]
struct StatusBody {
    requires_passphrase: bool,
    expires_at: String,
}

/// The page state from the origin's answer to the status request (`None`: no answer).
pub fn state_from_status(id: &str, answer: Option<(u16, &[u8])>) -> PageState {
    match answer {
        Some((200, body)) => match serde_json::from_slice::<StatusBody>(body) {
            Ok(status) => PageState::Live(LiveShare {
                id: id.to_owned(),
                requires_passphrase: status.requires_passphrase,
                expires_at: status.expires_at,
            }),
            Err(_) => PageState::Trouble,
        },
        Some((404, _)) => PageState::Unavailable,
        _ => PageState::Trouble,
    }
}

/// A rendered page: status, headers (content type and security headers) and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The headers of every share page. `nonce` must be fresh for each response.
pub fn security_headers(nonce: &str) -> Vec<(&'static str, String)> {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
         base-uri 'none'"
    );
    vec![
        ("content-type", "text/html; charset=utf-8".to_owned()),
        // A stored copy of the page would keep nothing secret, but a stored copy of the
        // *reveal* would; neither is ever cached.
        ("cache-control", "no-store".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-robots-tag", "noindex, nofollow".to_owned()),
        ("cross-origin-opener-policy", "same-origin".to_owned()),
        ("content-security-policy", csp),
    ]
}

/// The message of the unavailable state; the same for every reason.
pub const UNAVAILABLE_MESSAGE: &str = "This link has expired, was used up, or does not exist.";

/// Renders the page for `state`, with `nonce` on its script and style and in its CSP.
pub fn render(state: &PageState, nonce: &str) -> Page {
    let (status, main) = match state {
        PageState::Live(share) => (200, live_main(share)),
        PageState::Unavailable => (
            404,
            format!(
                r#"<main><p id="state">{}</p></main>"#,
                escape(UNAVAILABLE_MESSAGE)
            ),
        ),
        PageState::Trouble => (
            503,
            format!(r#"<main><p id="state">{TROUBLE_MESSAGE}</p></main>"#),
        ),
    };
    let script = matches!(state, PageState::Live(_)).then_some(SCRIPT);
    document(status, "Shared secret", &main, script, nonce)
}

/// The message of a page whose link could not be checked.
pub const TROUBLE_MESSAGE: &str = "This link cannot be checked right now. Try again in a minute.";

/// A whole page of the edge's (the share page, the secret request page): `title`, `main`,
/// and `script` if any, under the headers of [`security_headers`] with `nonce` on the script
/// and style; a 503 also says when to try again.
pub fn document(status: u16, title: &str, main: &str, script: Option<&str>, nonce: &str) -> Page {
    let mut headers = security_headers(nonce);
    if status == 503 {
        headers.push(("retry-after", UNAVAILABLE_RETRY_AFTER_SECS.to_string()));
    }
    let nonce = escape(nonce);
    let title = escape(title);
    let script = script
        .map(|script| format!(r#"<script nonce="{nonce}">{script}</script>"#))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="icon" href="data:,">
<style nonce="{nonce}">{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
{main}
{script}
</body>
</html>
"#
    );
    Page {
        status,
        headers,
        body,
    }
}

fn live_main(share: &LiveShare) -> String {
    let passphrase = if share.requires_passphrase {
        r#"<p><label for="passphrase">Passphrase</label>
<input id="passphrase" type="password" autocomplete="off" autocapitalize="off" spellcheck="false"></p>"#
    } else {
        ""
    };
    format!(
        r#"<main id="share" data-share-id="{id}">
<p id="state">Someone shared a secret with you. Press Reveal to show it; revealing may use up the link.</p>
<p>This link expires <time id="expires" datetime="{expires}">{expires}</time>.</p>
{passphrase}
<p><button id="reveal" type="button">Reveal</button></p>
<div id="result" hidden>
<pre id="secret-value"></pre>
<p><button id="copy" type="button">Copy to clipboard</button></p>
</div>
</main>"#,
        id = escape(&share.id),
        expires = escape(&share.expires_at),
    )
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;\
padding:0 1rem;line-height:1.5;color:#1b1b1b}\
h1{font-size:1.4rem}\
pre{background:#f3f3f3;padding:1rem;white-space:pre-wrap;word-break:break-all}\
button{font:inherit;padding:.4rem 1rem}\
input,select{font:inherit;padding:.3rem;margin-left:.5rem}\
textarea{font:inherit;width:100%;min-height:6rem;box-sizing:border-box}\
code{background:#f3f3f3;padding:0 .2rem}";

/// The Reveal logic. A constant: the id comes from `data-share-id`, the passphrase goes in a
/// header of a body-less GET, and the value is written with `textContent` (never parsed as
/// HTML).
const SCRIPT: &str = r#"
(function () {
  var main = document.getElementById('share');
  var state = document.getElementById('state');
  var reveal = document.getElementById('reveal');
  var passphrase = document.getElementById('passphrase');
  var result = document.getElementById('result');
  var value = document.getElementById('secret-value');
  var copy = document.getElementById('copy');
  var expires = document.getElementById('expires');
  var when = new Date(expires.getAttribute('datetime'));
  if (!isNaN(when.getTime())) { expires.textContent = when.toLocaleString(); }
  function say(text) { state.textContent = text; }
  function run() {
    var headers = { 'Accept': 'application/json' };
    if (passphrase) {
      var typed = passphrase.value;
      if (!typed || /[\x00-\x1f\x7f-\x9f]/.test(typed) || /^ | $/.test(typed)) {
        say('Enter the passphrase you were given (without spaces at either end).');
        return;
      }
      // fetch() takes header values as byte strings: send the passphrase's UTF-8 bytes, one
      // per character; the edge reads them back as UTF-8.
      headers['X-Share-Passphrase'] = Array.from(new TextEncoder().encode(typed), function (b) {
        return String.fromCharCode(b);
      }).join('');
    }
    reveal.disabled = true;
    fetch('/v1/share/' + encodeURIComponent(main.dataset.shareId), {
      method: 'GET', headers: headers, cache: 'no-store', credentials: 'omit',
      referrerPolicy: 'no-referrer'
    }).then(function (response) {
      if (response.ok) {
        return response.json().then(function (share) {
          value.textContent = typeof share.value === 'string' ? share.value : JSON.stringify(share.value);
          result.hidden = false;
          reveal.hidden = true;
          if (passphrase) { passphrase.disabled = true; }
          say('Here is the secret. Copy it now: it may not be shown again.');
        });
      }
      if (response.status === 429) {
        var wait = parseInt(response.headers.get('Retry-After') || '', 10);
        say('Too many attempts. Try again in ' + (wait > 0 ? wait : 60) + ' s.');
      } else if (response.status === 404) {
        say('This secret is no longer available, or the passphrase is wrong.');
      } else {
        say('Something went wrong. Try again later.');
      }
      reveal.disabled = false;
    }).catch(function () {
      say('The request did not go through. Check your connection and try again.');
      reveal.disabled = false;
    });
  }
  reveal.addEventListener('click', run);
  if (passphrase) {
    passphrase.addEventListener('keydown', function (event) {
      if (event.key === 'Enter') { run(); }
    });
  }
  copy.addEventListener('click', function () {
    navigator.clipboard.writeText(value.textContent).then(function () {
      copy.textContent = 'Copied';
    }, function () {
      copy.textContent = 'Copy failed: select the text instead';
    });
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

    fn live(requires_passphrase: bool) -> PageState {
        PageState::Live(LiveShare {
            id: ID.to_owned(),
            requires_passphrase,
            expires_at: "2030-01-02T03:04:05Z".to_owned(),
        })
    }

    #[test]
    fn page_ids_are_canonical_uuids() {
        assert_eq!(page_id(ID).as_deref(), Some(ID));
        assert_eq!(
            page_id("6F9619FF-8B86-D011-B42D-00C04FC964FF").as_deref(),
            Some(ID)
        );
        for bad in [
            "",
            "abc",
            "../x",
            "6f9619ff-8b86-d011-b42d-00c04fc964f",
            "<script>",
        ] {
            assert_eq!(page_id(bad), None, "{bad}");
        }
        assert_eq!(status_path(ID), format!("/v1/share/{ID}/status"));
    }

    #[test]
    fn a_live_status_becomes_the_live_state() {
        let body = br#"{"id":"x","requires_passphrase":true,"expires_at":"2030-01-02T03:04:05Z"}"#;
        assert_eq!(state_from_status(ID, Some((200, body))), live(true));
    }

    #[test]
    fn a_404_is_unavailable_and_anything_else_is_trouble() {
        assert_eq!(
            state_from_status(ID, Some((404, b"{}"))),
            PageState::Unavailable
        );
        for answer in [
            None,
            Some((200, &b"not json"[..])),
            Some((200, br#"{"requires_passphrase":"yes","expires_at":"x"}"#)),
            Some((500, b"")),
            Some((502, b"")),
            Some((401, b"")),
        ] {
            assert_eq!(state_from_status(ID, answer), PageState::Trouble);
        }
    }

    #[test]
    fn a_live_page_has_the_reveal_button_and_the_elements_the_browser_test_drives() {
        let page = render(&live(false), "n0nce");
        assert_eq!(page.status, 200);
        for id in [
            r#"id="reveal""#,
            r#"id="state""#,
            r#"id="secret-value""#,
            r#"id="copy""#,
        ] {
            assert!(page.body.contains(id), "{id}");
        }
        assert!(page.body.contains(&format!(r#"data-share-id="{ID}""#)));
        assert!(page.body.contains(r#"datetime="2030-01-02T03:04:05Z""#));
        assert!(!page.body.contains(r#"id="passphrase""#));
        assert!(!page.body.contains(UNAVAILABLE_MESSAGE));
    }

    #[test]
    fn a_passphrase_field_appears_only_when_one_is_needed() {
        assert!(render(&live(true), "n").body.contains(r#"id="passphrase""#));
        assert!(
            !render(&live(false), "n")
                .body
                .contains(r#"id="passphrase""#)
        );
    }

    #[test]
    fn the_unavailable_page_is_one_uniform_404_without_a_reveal_button() {
        let page = render(&PageState::Unavailable, "n");
        assert_eq!(page.status, 404);
        assert!(page.body.contains(UNAVAILABLE_MESSAGE));
        assert!(page.body.contains(r#"id="state""#));
        assert!(!page.body.contains(r#"id="reveal""#));
        assert!(!page.body.contains("<script"));
        // Two renders differ only by nonce: nothing about the link is in the page.
        assert_eq!(
            render(&PageState::Unavailable, "a")
                .body
                .replace("\"a\"", ""),
            render(&PageState::Unavailable, "b")
                .body
                .replace("\"b\"", "")
        );
    }

    #[test]
    fn trouble_is_a_503_that_invites_a_retry() {
        let page = render(&PageState::Trouble, "n");
        assert_eq!(page.status, 503);
        assert!(!page.body.contains(r#"id="reveal""#));
        assert!(page.headers.contains(&("retry-after", "2".to_owned())));
    }

    #[test]
    fn the_script_and_style_carry_the_nonce_the_csp_allows() {
        let page = render(&live(true), "abc123");
        assert!(page.body.contains(r#"<script nonce="abc123">"#));
        assert!(page.body.contains(r#"<style nonce="abc123">"#));
        assert_eq!(page.headers, security_headers("abc123"));
        let headers = security_headers("abc123");
        let csp = &headers
            .iter()
            .find(|(name, _)| *name == "content-security-policy")
            .unwrap()
            .1;
        for directive in [
            "default-src 'none'",
            "script-src 'nonce-abc123'",
            "style-src 'nonce-abc123'",
            "connect-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive}");
        }
        assert!(!csp.contains("unsafe-inline"));
    }

    #[test]
    fn the_security_headers_are_all_there() {
        let headers = security_headers("n");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("cache-control"), Some("no-store"));
        assert_eq!(get("referrer-policy"), Some("no-referrer"));
        assert_eq!(get("x-frame-options"), Some("DENY"));
        assert_eq!(get("x-content-type-options"), Some("nosniff"));
        assert_eq!(get("x-robots-tag"), Some("noindex, nofollow"));
        assert_eq!(get("content-type"), Some("text/html; charset=utf-8"));
    }

    #[test]
    fn everything_from_the_origin_is_escaped() {
        let state = PageState::Live(LiveShare {
            id: r#""><script>alert(1)</script>"#.to_owned(),
            requires_passphrase: false,
            expires_at: "<img src=x onerror=alert(1)>'".to_owned(),
        });
        let page = render(&state, "n");
        assert!(!page.body.contains("<script>alert"));
        assert!(!page.body.contains("<img"));
        assert!(
            page.body
                .contains("&lt;img src=x onerror=alert(1)&gt;&#39;")
        );
        assert_eq!(escape(r#"&<>"'"#), "&amp;&lt;&gt;&quot;&#39;");
    }

    #[test]
    fn the_script_never_puts_the_passphrase_in_the_url() {
        assert!(SCRIPT.contains("'X-Share-Passphrase'"));
        assert!(!SCRIPT.contains("?passphrase"));
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(SCRIPT.contains("textContent = typeof share.value"));
    }
}
