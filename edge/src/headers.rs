//! Which headers cross the edge, in each direction.
//!
//! The edge is a proxy in the RFC 9110 sense: hop-by-hop headers (section 7.6.1) describe one
//! connection and are dropped, together with any header the `Connection` header names.
//! Requests also lose every header that claims to say who the client is (`X-Forwarded-For`,
//! `X-Real-IP`, `Forwarded`) and every `cf-*` header, because the client could have written
//! them; the edge then adds the ones it vouches for. The `x-oxvault-` prefix is reserved for
//! headers the edge itself sends the origin, so a client's `x-oxvault-*` headers are always
//! dropped.
//!
//! When the edge shares a secret with the origin (`ORIGIN_SHARED_SECRET`), every forwarded
//! request proves it came through the edge with `x-oxvault-edge-auth` and carries what only
//! the edge knows: the client's address (`x-oxvault-client-ip`) and the public base URL
//! people use (`x-oxvault-public-url`, for links the origin writes, such as share URLs). The
//! origin believes those two only next to the right secret.
//!
//! Headers are `(name, value)` pairs so this module stays free of the runtime's types; names
//! are compared case-insensitively.

use std::net::IpAddr;

use oxvault_core::request_id::REQUEST_ID_HEADER;

use crate::config::SharedSecret;

/// The header the edge sets to the client's address.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// The header in which Cloudflare passes the address of the connecting client.
pub const CLIENT_IP_HEADER: &str = "cf-connecting-ip";

/// Headers that describe a single connection (RFC 9110 section 7.6.1, plus the older
/// `keep-alive`, `proxy-connection` and `trailers` spellings), and `host`, which the runtime
/// sets for the origin's own address.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Headers a client could use to pretend to be someone else.
const CLIENT_ADDRESS: &[&str] = &["x-forwarded-for", "x-real-ip", "forwarded"];

/// The prefix of headers only the edge may send to the origin.
pub const RESERVED_PREFIX: &str = "x-oxvault-";

/// Proves to the origin that a request came through the edge: the shared secret.
pub const EDGE_AUTH_HEADER: &str = "x-oxvault-edge-auth";
/// The client's address as the edge saw it; trusted by the origin only with the secret.
pub const TRUSTED_CLIENT_IP_HEADER: &str = "x-oxvault-client-ip";
/// The base URL clients reach the service at; trusted by the origin only with the secret.
pub const PUBLIC_URL_HEADER: &str = "x-oxvault-public-url";

/// What the edge vouches for when it shares a secret with the origin.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    pub secret: &'a SharedSecret,
    /// `scheme://host[:port]`, see [`public_base`].
    pub public_url: &'a str,
}

/// The public base URL: the configured `PUBLIC_URL`, else the `scheme://host[:port]` the
/// request came in on (`request_origin`, as the runtime serialises the URL's origin).
pub fn public_base<'a>(configured: Option<&'a str>, request_origin: &'a str) -> &'a str {
    configured.unwrap_or(request_origin)
}

/// The header list of a request or response, as `(name, value)` pairs.
pub type HeaderList = Vec<(String, String)>;

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|known| name.eq_ignore_ascii_case(known))
}

/// The header names listed in every `Connection` header, lower-cased.
fn connection_options(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// The end-to-end headers: everything but hop-by-hop ones and those `Connection` names.
fn end_to_end(headers: &[(String, String)]) -> impl Iterator<Item = &(String, String)> {
    let named = connection_options(headers);
    headers.iter().filter(move |(name, _)| {
        !is_one_of(name, HOP_BY_HOP) && !named.iter().any(|n| name.eq_ignore_ascii_case(n))
    })
}

/// The headers to send to the origin for a client request.
///
/// `client_ip` is the runtime's `CF-Connecting-IP`; when it is absent or not an IP address
/// (some local setups) no `X-Forwarded-For` (nor `x-oxvault-client-ip`) is sent rather than
/// a made-up one. `trust` adds the edge's proof and what it vouches for (see the module
/// docs). `Content-Length` is dropped because the edge re-sends the body it read and the
/// runtime frames it; a stale length would corrupt the request.
pub fn to_origin(
    incoming: &[(String, String)],
    client_ip: Option<&str>,
    request_id: &str,
    trust: Option<Trust<'_>>,
) -> HeaderList {
    let mut out: HeaderList = end_to_end(incoming)
        .filter(|(name, _)| {
            !is_one_of(name, CLIENT_ADDRESS)
                && !is_cloudflare_header(name)
                && !has_prefix(name, RESERVED_PREFIX)
                && !name.eq_ignore_ascii_case(REQUEST_ID_HEADER)
                && !name.eq_ignore_ascii_case("content-length")
        })
        .cloned()
        .collect();
    let ip = client_ip.and_then(valid_ip);
    if let Some(ip) = &ip {
        out.push((FORWARDED_FOR_HEADER.to_owned(), ip.clone()));
    }
    out.push((REQUEST_ID_HEADER.to_owned(), request_id.to_owned()));
    if let Some(trust) = trust {
        out.push((
            EDGE_AUTH_HEADER.to_owned(),
            trust.secret.expose().to_owned(),
        ));
        if let Some(ip) = ip {
            out.push((TRUSTED_CLIENT_IP_HEADER.to_owned(), ip));
        }
        out.push((PUBLIC_URL_HEADER.to_owned(), trust.public_url.to_owned()));
    }
    out
}

/// Sets a header to one value, dropping every earlier value of that name.
pub fn set(headers: &mut HeaderList, name: &str, value: &str) {
    headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value.to_owned()));
}

/// The headers to return to the client for an origin response: the origin's end-to-end
/// headers, with the edge's request id (the origin echoes the same one, but the edge's is
/// authoritative and must be there even if the origin forgot it).
pub fn to_client(origin: &[(String, String)], request_id: &str) -> HeaderList {
    let mut out: HeaderList = end_to_end(origin)
        .filter(|(name, _)| !name.eq_ignore_ascii_case(REQUEST_ID_HEADER))
        .cloned()
        .collect();
    out.push((REQUEST_ID_HEADER.to_owned(), request_id.to_owned()));
    out
}

/// The first value of a header, if present.
pub fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn is_cloudflare_header(name: &str) -> bool {
    has_prefix(name, "cf-")
}

/// Whether `name` starts with `prefix`, ignoring ASCII case.
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The address in canonical text form, or `None` when it is not an IP address: the value is
/// written into a header the origin trusts, so only a plain address gets through.
fn valid_ip(text: &str) -> Option<String> {
    text.trim().parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn names(headers: &HeaderList) -> Vec<&str> {
        headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn end_to_end_request_headers_are_forwarded_unchanged() {
        let incoming = list(&[
            ("authorization", "Bearer abc"),
            ("content-type", "application/json"),
            ("accept", "*/*"),
            ("x-custom", "1"),
            ("x-custom", "2"),
        ]);
        let out = to_origin(&incoming, None, "rid", None);
        assert_eq!(&out[..5], &incoming[..]);
    }

    #[test]
    fn hop_by_hop_request_headers_are_dropped() {
        let incoming = list(&[
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eA=="),
            ("Proxy-Authenticate", "Basic"),
            ("TE", "trailers"),
            ("Trailer", "x-sum"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "websocket"),
            ("Host", "edge.example"),
            ("accept", "*/*"),
        ]);
        let out = to_origin(&incoming, None, "rid", None);
        assert_eq!(names(&out), ["accept", "x-request-id"]);
    }

    #[test]
    fn headers_named_in_connection_are_dropped() {
        let incoming = list(&[
            ("connection", "close, X-Secret-Hop ,x-other"),
            ("x-secret-hop", "1"),
            ("X-Other", "2"),
            ("x-kept", "3"),
        ]);
        let out = to_origin(&incoming, None, "rid", None);
        assert_eq!(names(&out), ["x-kept", "x-request-id"]);
    }

    #[test]
    fn client_supplied_address_headers_are_replaced_by_the_edges() {
        let incoming = list(&[
            ("X-Forwarded-For", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("accept", "*/*"),
        ]);
        let out = to_origin(&incoming, Some("203.0.113.7"), "rid", None);
        assert_eq!(
            out,
            list(&[
                ("accept", "*/*"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-request-id", "rid"),
            ])
        );
    }

    #[test]
    fn cloudflare_headers_never_reach_the_origin() {
        let incoming = list(&[
            ("cf-connecting-ip", "203.0.113.7"),
            ("CF-Ray", "abc"),
            ("cf-ipcountry", "XX"),
            ("cfx", "kept: not the cf- prefix"),
        ]);
        let out = to_origin(&incoming, None, "rid", None);
        assert_eq!(names(&out), ["cfx", "x-request-id"]);
    }

    #[test]
    fn headers_with_the_reserved_prefix_never_come_from_the_client() {
        let incoming = list(&[
            ("x-oxvault-sub", "user:00000000-0000-0000-0000-000000000001"),
            ("X-OxVault-Role", "owner"),
            ("x-oxvault-", "empty suffix"),
            ("x-oxvaultish", "kept: not the x-oxvault- prefix"),
            ("x-oxvaul", "kept: shorter than the prefix"),
            ("accept", "*/*"),
        ]);
        let out = to_origin(&incoming, None, "rid", None);
        assert_eq!(
            names(&out),
            ["x-oxvaultish", "x-oxvaul", "accept", "x-request-id"]
        );
    }

    #[test]
    fn the_clients_request_id_header_is_replaced_by_the_chosen_one() {
        let incoming = list(&[("X-Request-Id", "bad id\n"), ("accept", "*/*")]);
        let out = to_origin(&incoming, None, "chosen", None);
        assert_eq!(out, list(&[("accept", "*/*"), ("x-request-id", "chosen")]));
    }

    #[test]
    fn content_length_is_left_to_the_runtime() {
        let incoming = list(&[("content-length", "5"), ("content-type", "text/plain")]);
        let out = to_origin(&incoming, None, "rid", None);
        assert_eq!(names(&out), ["content-type", "x-request-id"]);
    }

    #[test]
    fn a_client_ip_that_is_not_an_address_is_not_forwarded() {
        let out = to_origin(&[], Some("1.2.3.4, 5.6.7.8"), "rid", None);
        assert_eq!(names(&out), ["x-request-id"]);
        let out = to_origin(&[], Some(""), "rid", None);
        assert_eq!(names(&out), ["x-request-id"]);
        let out = to_origin(&[], Some("::1"), "rid", None);
        assert_eq!(find(&out, "x-forwarded-for"), Some("::1"));
    }

    #[test]
    fn origin_responses_keep_end_to_end_headers_and_get_the_request_id() {
        let origin = list(&[
            ("content-type", "application/json"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-request-id", "origin-said-this"),
        ]);
        let out = to_client(&origin, "rid");
        assert_eq!(
            out,
            list(&[
                ("content-type", "application/json"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("x-request-id", "rid"),
            ])
        );
    }

    fn secret() -> SharedSecret {
        SharedSecret::parse("edge-secret-123").unwrap()
    }

    #[test]
    fn with_a_shared_secret_the_edge_vouches_for_the_client_and_public_url() {
        let secret = secret();
        let trust = Trust {
            secret: &secret,
            public_url: "https://vault.example.com",
        };
        let out = to_origin(
            &list(&[("accept", "*/*")]),
            Some("203.0.113.7"),
            "rid",
            Some(trust),
        );
        assert_eq!(
            out,
            list(&[
                ("accept", "*/*"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-request-id", "rid"),
                ("x-oxvault-edge-auth", "edge-secret-123"),
                ("x-oxvault-client-ip", "203.0.113.7"),
                ("x-oxvault-public-url", "https://vault.example.com"),
            ])
        );
    }

    #[test]
    fn the_clients_own_trust_headers_are_replaced_not_kept() {
        let secret = secret();
        let trust = Trust {
            secret: &secret,
            public_url: "https://vault.example.com",
        };
        let incoming = list(&[
            ("X-OxVault-Edge-Auth", "guess"),
            ("x-oxvault-client-ip", "10.0.0.1"),
            ("x-oxvault-public-url", "https://evil.example"),
        ]);
        let out = to_origin(&incoming, Some("203.0.113.7"), "rid", Some(trust));
        assert_eq!(find(&out, "x-oxvault-edge-auth"), Some("edge-secret-123"));
        assert_eq!(find(&out, "x-oxvault-client-ip"), Some("203.0.113.7"));
        assert_eq!(
            find(&out, "x-oxvault-public-url"),
            Some("https://vault.example.com")
        );
        assert_eq!(out.len(), 5, "{out:?}");
    }

    #[test]
    fn without_a_usable_client_address_no_client_ip_is_vouched_for() {
        let secret = secret();
        let trust = Trust {
            secret: &secret,
            public_url: "http://127.0.0.1:8787",
        };
        for ip in [None, Some("not-an-ip"), Some("")] {
            let out = to_origin(&[], ip, "rid", Some(trust));
            assert_eq!(find(&out, "x-oxvault-client-ip"), None, "{ip:?}");
            assert_eq!(find(&out, "x-oxvault-edge-auth"), Some("edge-secret-123"));
            assert_eq!(
                find(&out, "x-oxvault-public-url"),
                Some("http://127.0.0.1:8787")
            );
        }
    }

    #[test]
    fn without_a_shared_secret_no_trust_header_is_sent() {
        let out = to_origin(&[], Some("203.0.113.7"), "rid", None);
        assert!(
            out.iter()
                .all(|(name, _)| !has_prefix(name, RESERVED_PREFIX)),
            "{out:?}"
        );
    }

    #[test]
    fn the_public_base_is_the_configured_one_else_the_requests() {
        assert_eq!(
            public_base(Some("https://vault.example.com"), "http://127.0.0.1:8787"),
            "https://vault.example.com"
        );
        assert_eq!(
            public_base(None, "http://127.0.0.1:8787"),
            "http://127.0.0.1:8787"
        );
    }

    #[test]
    fn set_replaces_every_earlier_value() {
        let mut headers = list(&[("X-Share-Passphrase", "a"), ("x-share-passphrase", "b")]);
        set(&mut headers, "x-share-passphrase", "c");
        assert_eq!(headers, list(&[("x-share-passphrase", "c")]));
    }

    #[test]
    fn find_matches_names_case_insensitively() {
        let headers = list(&[("Content-Length", "12")]);
        assert_eq!(find(&headers, "content-length"), Some("12"));
        assert_eq!(find(&headers, "content-type"), None);
    }
}
