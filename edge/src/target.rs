//! Where a forwarded request goes: the origin's base URL plus the client's path and query.
//!
//! The path and query come from the runtime's parsed URL, already percent-encoded, and are
//! passed through byte for byte: decoding and re-encoding them here could turn `%2F` into a
//! path separator at the origin.

use oxvault_core::share::loggable_path;

use crate::config::OriginUrl;

/// The URL to fetch at the origin for a request with this path and query.
///
/// `query` is the text after `?` (`Some("")` for a bare `?`, kept so the origin sees what the
/// client sent).
pub fn origin_target(origin: &OriginUrl, path: &str, query: Option<&str>) -> String {
    let mut target = String::with_capacity(origin.as_str().len() + path.len() + 1);
    target.push_str(origin.as_str());
    // Request paths from a parsed URL always start with `/`; guard anyway so the host can
    // never be extended by a path such as `evil.com/x` (`http://originevil.com/x`).
    if !path.starts_with('/') {
        target.push('/');
    }
    target.push_str(path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    target
}

/// How a log line names the target of a request with this path: the origin, the path with
/// any share id redacted (a link's id is its credential), and no query (it may hold anything
/// a client put there). The same redaction as the origin's access log.
pub fn loggable_target(origin: &OriginUrl, path: &str) -> String {
    format!("{}{}", origin.as_str(), loggable_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> OriginUrl {
        OriginUrl::parse("http://127.0.0.1:8080/").unwrap()
    }

    #[test]
    fn the_path_is_appended_to_the_origin() {
        assert_eq!(
            origin_target(&origin(), "/v1/vaults", None),
            "http://127.0.0.1:8080/v1/vaults"
        );
    }

    #[test]
    fn the_query_string_is_kept_as_sent() {
        assert_eq!(
            origin_target(&origin(), "/v1/vaults", Some("limit=10&after=a%20b")),
            "http://127.0.0.1:8080/v1/vaults?limit=10&after=a%20b"
        );
        assert_eq!(
            origin_target(&origin(), "/v1/vaults", Some("")),
            "http://127.0.0.1:8080/v1/vaults?"
        );
    }

    #[test]
    fn percent_encoded_slashes_stay_encoded() {
        assert_eq!(
            origin_target(&origin(), "/v1/secrets/a%2Fb", None),
            "http://127.0.0.1:8080/v1/secrets/a%2Fb"
        );
    }

    #[test]
    fn a_path_without_a_leading_slash_cannot_extend_the_host() {
        assert_eq!(
            origin_target(&origin(), "evil.com/x", None),
            "http://127.0.0.1:8080/evil.com/x"
        );
    }

    #[test]
    fn the_logged_target_never_holds_a_share_id_or_the_query() {
        let id = "3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";
        let logged = loggable_target(&origin(), &format!("/v1/share/{id}"));
        assert_eq!(logged, "http://127.0.0.1:8080/v1/share/{share_id}");
        assert_eq!(
            loggable_target(&origin(), &format!("/v1/share/{id}/status")),
            "http://127.0.0.1:8080/v1/share/{share_id}/status"
        );
        assert_eq!(
            loggable_target(&origin(), "/v1/vaults"),
            "http://127.0.0.1:8080/v1/vaults"
        );
    }
}
