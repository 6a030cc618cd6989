//! Which of the edge's answers a request gets, from its method and path alone. Whether a
//! forwarded request needs a token is the separate question of [`crate::access`].
//!
//! The path is the one the runtime parsed (WHATWG URL rules), so dot segments such as
//! `/v1/../admin` are already resolved before it gets here: a request cannot escape `/v1/`
//! by spelling.

/// The path of the health report the edge answers itself.
pub const HEALTH_PATH: &str = "/v1/health";

/// Everything under this prefix belongs to the API and is forwarded.
pub const API_PREFIX: &str = "/v1/";

/// The origin's public key set, the one path outside `/v1/` that is forwarded (`GET` and
/// `HEAD` only: it is a document, and other methods have no business there).
pub const JWKS_PATH: &str = crate::keys::JWKS_PATH;

/// The human page of a share link, `share_url` = `{public_url}/s/{id}`.
pub const SHARE_PAGE_PATTERN: &str = "/s/{id}";

/// What the edge does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD /v1/health`: the edge asks the origin and answers with both states.
    EdgeHealth,
    /// Any other `/v1/*` request, `/mcp` (see [`crate::mcp`]), and `GET`/`HEAD
    /// /.well-known/jwks.json`: sent on to the origin (after the token check of [`crate::access`]).
    Forward,
    /// `GET`/`HEAD /s/{id}`: the share page, rendered by the edge (see
    /// [`crate::share_page`]).
    SharePage,
    /// `GET`/`HEAD /r/{id}`: the secret request page, rendered by the edge (see
    /// [`crate::request_page`]).
    RequestPage,
    /// A path the edge serves itself or forwards for `GET`/`HEAD` only (the key set, share
    /// pages), asked with another method: 405 with `Allow`.
    MethodNotAllowed,
    /// Not part of the API: 404 without bothering the origin.
    NotFound,
}

/// The methods of the paths that only read ([`Route::MethodNotAllowed`]'s `Allow`).
pub const READ_ONLY_METHODS: &str = "GET, HEAD";

/// Picks the route for a request.
pub fn route(method: &str, path: &str) -> Route {
    if path == HEALTH_PATH && matches!(method, "GET" | "HEAD") {
        Route::EdgeHealth
    } else if path.starts_with(API_PREFIX)
        || path == crate::mcp::MCP_PATH
        || (path == JWKS_PATH && matches!(method, "GET" | "HEAD"))
    {
        Route::Forward
    } else if path == JWKS_PATH {
        // `GET` and `HEAD` were forwarded above.
        Route::MethodNotAllowed
    } else if crate::access::path_matches(SHARE_PAGE_PATTERN, path) {
        if matches!(method, "GET" | "HEAD") {
            Route::SharePage
        } else {
            Route::MethodNotAllowed
        }
    } else if crate::access::path_matches(crate::request_page::REQUEST_PAGE_PATTERN, path) {
        if matches!(method, "GET" | "HEAD") {
            Route::RequestPage
        } else {
            Route::MethodNotAllowed
        }
    } else {
        Route::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_head_on_the_health_path_are_answered_by_the_edge() {
        assert_eq!(route("GET", "/v1/health"), Route::EdgeHealth);
        assert_eq!(route("HEAD", "/v1/health"), Route::EdgeHealth);
    }

    #[test]
    fn other_methods_and_deeper_health_paths_go_to_the_origin() {
        // The origin owns `/v1/health/hsm` and answers 405 for a POST to `/v1/health`.
        assert_eq!(route("POST", "/v1/health"), Route::Forward);
        assert_eq!(route("GET", "/v1/health/hsm"), Route::Forward);
        assert_eq!(route("GET", "/v1/health/"), Route::Forward);
    }

    #[test]
    fn every_path_under_v1_is_forwarded() {
        assert_eq!(route("GET", "/v1/vaults"), Route::Forward);
        assert_eq!(
            route("DELETE", "/v1/vaults/abc/secrets/a%2Fb"),
            Route::Forward
        );
        assert_eq!(route("PROPFIND", "/v1/x"), Route::Forward);
    }

    #[test]
    fn the_mcp_endpoint_is_forwarded_with_every_method() {
        for method in ["POST", "GET", "DELETE"] {
            assert_eq!(route(method, "/mcp"), Route::Forward);
        }
        assert_eq!(route("POST", "/mcp/"), Route::NotFound);
        assert_eq!(route("POST", "/mcpx"), Route::NotFound);
    }

    #[test]
    fn the_key_set_is_forwarded_for_get_and_head_only() {
        assert_eq!(route("GET", "/.well-known/jwks.json"), Route::Forward);
        assert_eq!(route("HEAD", "/.well-known/jwks.json"), Route::Forward);
    }

    #[test]
    fn other_methods_on_the_key_set_and_share_pages_are_not_allowed() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "OPTIONS"] {
            assert_eq!(
                route(method, "/.well-known/jwks.json"),
                Route::MethodNotAllowed
            );
            assert_eq!(route(method, "/s/abc"), Route::MethodNotAllowed);
            assert_eq!(route(method, "/r/abc"), Route::MethodNotAllowed);
        }
    }

    #[test]
    fn nothing_else_under_well_known_is_forwarded() {
        assert_eq!(route("GET", "/.well-known/jwks.json/"), Route::NotFound);
        assert_eq!(
            route("GET", "/.well-known/openid-configuration"),
            Route::NotFound
        );
        assert_eq!(route("GET", "/.well-known/JWKS.json"), Route::NotFound);
    }

    #[test]
    fn share_pages_are_served_for_get_and_head_on_one_segment() {
        assert_eq!(route("GET", "/s/abc"), Route::SharePage);
        assert_eq!(route("HEAD", "/s/abc"), Route::SharePage);
        assert_eq!(route("GET", "/s/"), Route::NotFound);
        assert_eq!(route("GET", "/s"), Route::NotFound);
        assert_eq!(route("GET", "/s/abc/"), Route::NotFound);
        assert_eq!(route("GET", "/s/abc/x"), Route::NotFound);
        assert_eq!(route("GET", "/S/abc"), Route::NotFound);
    }

    #[test]
    fn request_pages_are_served_for_get_and_head_on_one_segment() {
        assert_eq!(route("GET", "/r/abc"), Route::RequestPage);
        assert_eq!(route("HEAD", "/r/abc"), Route::RequestPage);
        assert_eq!(route("GET", "/r/"), Route::NotFound);
        assert_eq!(route("GET", "/r/abc/x"), Route::NotFound);
    }

    #[test]
    fn paths_outside_v1_are_not_found() {
        assert_eq!(route("GET", "/"), Route::NotFound);
        assert_eq!(route("GET", "/v1"), Route::NotFound);
        assert_eq!(route("GET", "/v10/health"), Route::NotFound);
        assert_eq!(route("GET", "/V1/health"), Route::NotFound);
        assert_eq!(route("GET", "/admin/v1/"), Route::NotFound);
    }
}
