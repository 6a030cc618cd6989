//! Which forwarded requests the edge lets through without a bearer token: the one table of
//! public routes.
//!
//! Everything the edge forwards needs a valid access token unless this table says otherwise,
//! so a route the table forgets is refused (401) at the edge, never opened by accident; a
//! route added to the origin is protected until it is listed here. The edge only filters: the
//! origin authenticates every protected route again (revocation, token version), and a public
//! route the origin protects is still protected there.
//!
//! A public route's path asked with a method it does not serve at all (`TRACE /v1/auth/signup`)
//! is a 405 naming the methods it does serve, with or without a token: there is nothing behind
//! it to protect, and the answer is the same one the origin gives on its other routes.
//!
//! Paths are the ones the runtime parsed (WHATWG rules: dot segments resolved, percent-escapes
//! kept as sent) and are compared byte for byte, so `/v1/auth/signup/` or `/v1/auth/%73ignup`
//! are not public; they need a token, and the origin has no such route anyway. The table
//! itself is in the core ([`oxvault_core::routes`]), which the origin's document is checked
//! against.

pub use oxvault_core::routes::path_matches;
use oxvault_core::routes::{allows, public_route};

/// Whether a request needs a token at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Forwarded as it is; the origin decides (a credential may travel in the body).
    Public,
    /// Forwarded only with a bearer token that verifies.
    Token,
    /// A public route's path with a method it does not serve: 405 with this `Allow`.
    MethodNotAllowed(&'static str),
}

/// The access rule for a request.
pub fn access(method: &str, path: &str) -> Access {
    match public_route(path) {
        Some(route) if method_matches(route.method, method) => Access::Public,
        Some(route) if !allows(route.allow, method) => Access::MethodNotAllowed(route.allow),
        _ => Access::Token,
    }
}

fn method_matches(public: &str, method: &str) -> bool {
    // Methods are case-sensitive (RFC 9110 section 9.1): `get` is not `GET`.
    method == public || (public == "GET" && method == "HEAD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_is_public_with_its_method() {
        for (method, path) in [
            ("POST", "/v1/auth/signup"),
            ("POST", "/v1/auth/token"),
            ("POST", "/v1/auth/refresh"),
            ("POST", "/v1/auth/agent-token"),
            ("POST", "/v1/auth/api-key-token"),
            ("POST", "/v1/auth/google"),
            ("GET", "/v1/auth/jwt-public-key"),
            ("GET", "/.well-known/jwks.json"),
            ("GET", "/v1/health"),
            ("GET", "/v1/health/hsm"),
            ("GET", "/v1/openapi.json"),
            ("GET", "/v1/share/3f1c2d3e4b5a4c6d"),
            ("GET", "/v1/share/3f1c2d3e4b5a4c6d/status"),
            ("GET", "/v1/secret-requests/3f1c2d3e4b5a4c6d/prompt"),
            ("POST", "/v1/secret-requests/3f1c2d3e4b5a4c6d/fulfil"),
        ] {
            assert_eq!(access(method, path), Access::Public, "{method} {path}");
        }
    }

    #[test]
    fn head_is_public_where_get_is() {
        assert_eq!(access("HEAD", "/v1/health/hsm"), Access::Public);
        assert_eq!(access("HEAD", "/v1/share/abc"), Access::Public);
        assert_eq!(
            access("HEAD", "/v1/auth/signup"),
            Access::MethodNotAllowed("POST")
        );
    }

    #[test]
    fn a_public_path_with_its_protected_method_needs_a_token() {
        for (method, path) in [("DELETE", "/v1/auth/token"), ("DELETE", "/v1/share/abc")] {
            assert_eq!(access(method, path), Access::Token, "{method} {path}");
        }
    }

    #[test]
    fn a_public_path_with_a_method_it_does_not_serve_is_not_allowed() {
        for (method, path, allow) in [
            ("GET", "/v1/auth/token", "POST, DELETE"),
            ("PUT", "/v1/auth/signup", "POST"),
            ("TRACE", "/v1/auth/agent-token", "POST"),
            ("POST", "/v1/auth/jwt-public-key", "GET, HEAD"),
            ("DELETE", "/v1/health", "GET, HEAD"),
            ("PATCH", "/v1/share/abc", "GET, DELETE"),
            ("POST", "/v1/share/abc", "GET, DELETE"),
            ("POST", "/v1/share/abc/status", "GET, HEAD"),
            // Methods are case-sensitive: `get` is not one the path serves.
            ("get", "/v1/health/hsm", "GET, HEAD"),
        ] {
            assert_eq!(
                access(method, path),
                Access::MethodNotAllowed(allow),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn everything_else_under_v1_needs_a_token() {
        for (method, path) in [
            ("GET", "/v1/auth/me"),
            ("POST", "/v1/auth/change-password"),
            ("POST", "/v1/auth/api-keys"),
            ("GET", "/v1/auth/api-keys"),
            ("GET", "/v1/agents"),
            ("GET", "/v1/agents/me"),
            ("GET", "/v1/org/members"),
            ("GET", "/v1/vaults"),
            ("GET", "/v1/share"),
            ("GET", "/v1/no-such-thing"),
            ("GET", "/v1/secret-requests/abc"),
            ("DELETE", "/v1/secret-requests/abc"),
            ("POST", "/v1/vaults/abc/secret-requests"),
            ("POST", "/mcp"),
        ] {
            assert_eq!(access(method, path), Access::Token, "{method} {path}");
        }
    }

    #[test]
    fn near_misses_of_public_paths_need_a_token() {
        for path in [
            "/v1/auth/signup/",
            "/v1/auth/signup/x",
            "/v1/auth/signupx",
            "/v1/auth/%73ignup",
            "/V1/auth/signup",
            "/v1//auth/signup",
            "v1/auth/signup",
            "/v1/auth",
        ] {
            assert_eq!(access("POST", path), Access::Token, "{path}");
        }
        for path in [
            "/v1/health/hsm/",
            "/v1/health/hsm/x",
            "/v1/openapi.json/",
            "/.well-known/jwks.json/",
            "/.well-known/jwks",
        ] {
            assert_eq!(access("GET", path), Access::Token, "{path}");
        }
    }

    #[test]
    fn a_share_id_is_exactly_one_non_empty_segment() {
        assert_eq!(access("GET", "/v1/share/"), Access::Token);
        assert_eq!(access("GET", "/v1/share//abc"), Access::Token);
        assert_eq!(access("GET", "/v1/share/abc/"), Access::Token);
        assert_eq!(access("GET", "/v1/share/abc/reveal"), Access::Token);
        assert_eq!(access("GET", "/v1/share/abc/status/"), Access::Token);
        assert_eq!(access("GET", "/v1/share//status"), Access::Token);
        // An escaped slash stays inside the segment: still one share id, and the origin
        // looks it up as a share id, which is all a public share route can do.
        assert_eq!(access("GET", "/v1/share/a%2Fb"), Access::Public);
    }

    #[test]
    fn every_table_entry_is_a_known_method_and_an_absolute_path() {
        for route in oxvault_core::routes::PUBLIC_ROUTES {
            assert!(matches!(route.method, "GET" | "POST"), "{route:?}");
            assert!(route.pattern.starts_with('/'), "{route:?}");
            assert!(!route.pattern.ends_with('/'), "{route:?}");
        }
    }
}
