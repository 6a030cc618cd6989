//! Which headers cross the edge, in each direction.
//!
//! The edge is a proxy in the RFC 9110 sense: hop-by-hop headers (section 7.6.1) describe one
//! connection and are dropped, together with any header the `Connection` header names.
//! Requests also lose every header that claims to say who the client is (`X-Forwarded-For`,
//! `X-Real-IP`, `Forwarded`) and every `cf-*` header, because the client could have written
//! them; the edge then adds the ones it vouches for. The `x-oxvault-` prefix is reserved for
//! headers the edge itself may one day send the origin (such as a verified subject), so a
//! client's `x-oxvault-*` headers are dropped too. Headers are `(name, value)` pairs so
//! this module stays free of the runtime's types; names are compared case-insensitively.

use std::net::IpAddr;

use oxvault_core::request_id::REQUEST_ID_HEADER;

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
/// (some local setups) no `X-Forwarded-For` is sent rather than a made-up one.
/// `Content-Length` is dropped because the edge re-sends the body it read and the runtime
/// frames it; a stale length would corrupt the request.
pub fn to_origin(
    incoming: &[(String, String)],
    client_ip: Option<&str>,
    request_id: &str,
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
    if let Some(ip) = client_ip.and_then(valid_ip) {
        out.push((FORWARDED_FOR_HEADER.to_owned(), ip));
    }
    out.push((REQUEST_ID_HEADER.to_owned(), request_id.to_owned()));
    out
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
        let out = to_origin(&incoming, None, "rid");
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
        let out = to_origin(&incoming, None, "rid");
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
        let out = to_origin(&incoming, None, "rid");
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
        let out = to_origin(&incoming, Some("203.0.113.7"), "rid");
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
        let out = to_origin(&incoming, None, "rid");
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
        let out = to_origin(&incoming, None, "rid");
        assert_eq!(
            names(&out),
            ["x-oxvaultish", "x-oxvaul", "accept", "x-request-id"]
        );
    }

    #[test]
    fn the_clients_request_id_header_is_replaced_by_the_chosen_one() {
        let incoming = list(&[("X-Request-Id", "bad id\n"), ("accept", "*/*")]);
        let out = to_origin(&incoming, None, "chosen");
        assert_eq!(out, list(&[("accept", "*/*"), ("x-request-id", "chosen")]));
    }

    #[test]
    fn content_length_is_left_to_the_runtime() {
        let incoming = list(&[("content-length", "5"), ("content-type", "text/plain")]);
        let out = to_origin(&incoming, None, "rid");
        assert_eq!(names(&out), ["content-type", "x-request-id"]);
    }

    #[test]
    fn a_client_ip_that_is_not_an_address_is_not_forwarded() {
        let out = to_origin(&[], Some("1.2.3.4, 5.6.7.8"), "rid");
        assert_eq!(names(&out), ["x-request-id"]);
        let out = to_origin(&[], Some(""), "rid");
        assert_eq!(names(&out), ["x-request-id"]);
        let out = to_origin(&[], Some("::1"), "rid");
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

    #[test]
    fn find_matches_names_case_insensitively() {
        let headers = list(&[("Content-Length", "12")]);
        assert_eq!(find(&headers, "content-length"), Some("12"));
        assert_eq!(find(&headers, "content-type"), None);
    }
}
