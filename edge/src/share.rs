//! Share lookups on their way to the origin: where the passphrase may travel.
//!
//! A share's passphrase goes to the origin in the `X-Share-Passphrase` header (as UTF-8, see
//! [`Passphrase::header_value`]). Clients that
//! follow the 1Claw API send it as a JSON body `{"passphrase": ...}` on `GET
//! /v1/share/{id}`; `fetch()` cannot send a body with a GET, so the edge reads that body
//! (bounded, like every body) and moves the passphrase into the header. A passphrase in the
//! query string is refused outright: URLs end up in logs, browser history and `Referer`
//! headers, so a passphrase must never be in one, even once.
//!
//! `HEAD /v1/share/{id}` is refused too: the origin answers HEAD like GET, which would use up
//! a view without showing anything to anyone.

use std::fmt;

use serde_json::Value;

use crate::access::path_matches;
use crate::error::EdgeError;

/// The header the origin reads a share's passphrase from.
pub const PASSPHRASE_HEADER: &str = "x-share-passphrase";

/// The longest passphrase the edge forwards (the core's rule).
use oxvault_core::share::is_usable_passphrase;

/// The share routes the edge treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareRoute {
    /// `GET /v1/share/{id}`: reads the value and uses up a view.
    Lookup,
    /// `GET /v1/share/{id}/status`: whether the link is live; never uses a view.
    Status,
}

/// Which share route a forwarded request is, if any (any method: the caller decides what
/// each method may do).
pub fn share_route(path: &str) -> Option<ShareRoute> {
    if path_matches("/v1/share/{id}", path) {
        Some(ShareRoute::Lookup)
    } else if path_matches("/v1/share/{id}/status", path) {
        Some(ShareRoute::Status)
    } else {
        None
    }
}

/// Refuses a query string that carries a passphrase under any spelling of its names.
pub fn refuse_passphrase_in_query(query: Option<&str>) -> Result<(), EdgeError> {
    let Some(query) = query else {
        return Ok(());
    };
    let named = url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| {
        let name = name.trim();
        name.eq_ignore_ascii_case("passphrase") || name.eq_ignore_ascii_case(PASSPHRASE_HEADER)
    });
    if named {
        Err(EdgeError::PassphraseInQuery)
    } else {
        Ok(())
    }
}

/// A share passphrase on its way to the origin. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl Passphrase {
    /// Checks that the passphrase can travel in a header unchanged: 1 to
    /// [`MAX_PASSPHRASE_LEN`](oxvault_core::share::MAX_PASSPHRASE_LEN) bytes of UTF-8 without control characters, and without spaces
    /// at either end (HTTP strips those, so the origin would compare another passphrase).
    pub fn parse(text: &str) -> Result<Self, EdgeError> {
        if is_usable_passphrase(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(EdgeError::UnusablePassphrase)
        }
    }

    /// The header value: the passphrase itself. The Workers runtime writes header values as
    /// UTF-8 (and reads them so), so the origin, reading the raw bytes as UTF-8, gets the
    /// passphrase back whatever its characters.
    pub fn header_value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// The passphrase a lookup's body carries, if any.
///
/// No body (or only whitespace) and a body without `passphrase` (or with `null` or `""`)
/// carry none. Anything that is not a JSON object, or a `passphrase` that is not a string, is
/// the caller's mistake (400): guessing would forward a request the caller did not mean.
pub fn passphrase_from_body(body: &[u8]) -> Result<Option<Passphrase>, EdgeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json: Value = serde_json::from_slice(body).map_err(|_| EdgeError::MalformedShareBody)?;
    let object = json.as_object().ok_or(EdgeError::MalformedShareBody)?;
    match object.get("passphrase") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Passphrase::parse(text).map(Some),
        Some(_) => Err(EdgeError::MalformedShareBody),
    }
}

#[cfg(test)]
mod tests {
    use oxvault_core::share::MAX_PASSPHRASE_LEN;

    use super::*;

    #[test]
    fn lookups_and_status_are_told_apart() {
        assert_eq!(share_route("/v1/share/abc"), Some(ShareRoute::Lookup));
        assert_eq!(
            share_route("/v1/share/abc/status"),
            Some(ShareRoute::Status)
        );
        assert_eq!(share_route("/v1/share/abc/other"), None);
        assert_eq!(share_route("/v1/shares/outbound"), None);
        assert_eq!(share_route("/v1/share/"), None);
    }

    #[test]
    fn a_passphrase_in_the_query_is_refused_however_it_is_spelled() {
        for query in [
            "passphrase=x",
            "a=1&passphrase=",
            "PassPhrase=x",
            "x-share-passphrase=x",
            "X-Share-Passphrase=x",
            "pass%70hrase=x",
            "passphrase",
        ] {
            assert_eq!(
                refuse_passphrase_in_query(Some(query)),
                Err(EdgeError::PassphraseInQuery),
                "{query}"
            );
        }
    }

    #[test]
    fn other_queries_pass() {
        for query in [None, Some(""), Some("a=passphrase"), Some("passphrases=1")] {
            assert_eq!(refuse_passphrase_in_query(query), Ok(()), "{query:?}");
        }
    }

    #[test]
    fn no_body_means_no_passphrase() {
        assert_eq!(passphrase_from_body(b""), Ok(None));
        assert_eq!(passphrase_from_body(b" \n"), Ok(None));
        assert_eq!(passphrase_from_body(b"{}"), Ok(None));
        assert_eq!(passphrase_from_body(br#"{"passphrase":null}"#), Ok(None));
        assert_eq!(passphrase_from_body(br#"{"passphrase":""}"#), Ok(None));
    }

    #[test]
    fn the_passphrase_is_taken_from_a_json_body() {
        let found = passphrase_from_body(br#"{"passphrase":"correct horse","x":1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(found.header_value(), "correct horse");
    }

    #[test]
    fn a_malformed_body_is_the_callers_mistake() {
        for body in [
            &b"{"[..],
            b"passphrase=x",
            b"[]",
            b"\"x\"",
            br#"{"passphrase":5}"#,
            br#"{"passphrase":["x"]}"#,
        ] {
            assert_eq!(
                passphrase_from_body(body),
                Err(EdgeError::MalformedShareBody),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_passphrase_that_cannot_travel_in_a_header_unchanged_is_refused() {
        let long = "x".repeat(MAX_PASSPHRASE_LEN + 1);
        for text in [
            "line\nbreak",
            "cr\rx",
            "nul\0x",
            " lead",
            "trail ",
            "tab\there",
            &long,
        ] {
            assert_eq!(
                Passphrase::parse(text),
                Err(EdgeError::UnusablePassphrase),
                "{text:?}"
            );
        }
        assert!(Passphrase::parse(&"x".repeat(MAX_PASSPHRASE_LEN)).is_ok());
        assert!(Passphrase::parse("in side ~!@#").is_ok());
    }

    #[test]
    fn a_utf8_passphrase_is_forwarded_as_it_is() {
        let accented = Passphrase::parse("p\u{e4}ss \u{1f511}").unwrap();
        assert_eq!(accented.header_value(), "p\u{e4}ss \u{1f511}");
    }

    #[test]
    fn the_passphrase_never_shows_in_debug_output() {
        let found = passphrase_from_body(br#"{"passphrase":"hunter2"}"#).unwrap();
        assert!(!format!("{found:?}").contains("hunter2"));
    }
}
