//! The API's public routes, shared by the edge (which forwards them without a token and
//! answers 405 for the methods their paths do not serve) and the origin (whose OpenAPI
//! document marks them `security: []`, checked against this table by a unit test).
//!
//! Paths are compared byte for byte with the patterns: a `{name}` segment matches exactly one
//! non-empty segment, every other segment must match exactly.

/// A public route: the method that needs no token on its path, and every method the path
/// answers, public or not, as an `Allow` header lists them (a request with any other method is
/// a 405 at the edge, token or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicRoute {
    /// `GET` also admits `HEAD`, which the origin answers like `GET` without the body.
    pub method: &'static str,
    /// A `{name}` segment matches exactly one non-empty segment; every other segment must
    /// match exactly.
    pub pattern: &'static str,
    pub allow: &'static str,
}

const fn public(method: &'static str, pattern: &'static str, allow: &'static str) -> PublicRoute {
    PublicRoute {
        method,
        pattern,
        allow,
    }
}

/// The public routes, one per path.
pub const PUBLIC_ROUTES: &[PublicRoute] = &[
    // Ways to obtain a token: the credential is in the body.
    public("POST", "/v1/auth/signup", "POST"),
    public("POST", "/v1/auth/token", "POST, DELETE"),
    public("POST", "/v1/auth/refresh", "POST"),
    public("POST", "/v1/auth/agent-token", "POST"),
    public("POST", "/v1/auth/api-key-token", "POST"),
    public("POST", "/v1/auth/google", "POST"),
    // What anyone may read: the verification keys, health and the API description.
    public("GET", "/v1/auth/jwt-public-key", "GET, HEAD"),
    public("GET", "/.well-known/jwks.json", "GET, HEAD"),
    public("GET", "/v1/health", "GET, HEAD"),
    public("GET", "/v1/health/hsm", "GET, HEAD"),
    public("GET", "/v1/openapi.json", "GET, HEAD"),
    // Share links: the unguessable id is the credential (user, agent and creator shares
    // are checked against the caller's token by the origin). The status never uses a view.
    // No HEAD on a lookup: it would use up a view and show nothing (the edge answers it 405).
    public("GET", "/v1/share/{id}", "GET, DELETE"),
    public("GET", "/v1/share/{id}/status", "GET, HEAD"),
    // Secret requests: the id is the credential. The prompt shows what is asked (never a
    // value); the fulfil writes the one value a pending request takes.
    public("GET", "/v1/secret-requests/{id}/prompt", "GET, HEAD"),
    public("POST", "/v1/secret-requests/{id}/fulfil", "POST"),
];

/// The public route of `path`, or `None` when it is not one's.
pub fn public_route(path: &str) -> Option<&'static PublicRoute> {
    PUBLIC_ROUTES
        .iter()
        .find(|route| path_matches(route.pattern, path))
}

/// Whether `method` is one of an `Allow` list's.
pub fn allows(methods: &str, method: &str) -> bool {
    methods.split(", ").any(|allowed| allowed == method)
}

/// Whether `path` fits `pattern`: `{name}` segments match one non-empty segment, the others
/// exactly. Shared with the rate limiter's route lists.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pattern = pattern.split('/');
    let mut path = path.split('/');
    loop {
        match (pattern.next(), path.next()) {
            (None, None) => return true,
            (Some(expected), Some(segment)) => {
                let is_param = expected.starts_with('{') && expected.ends_with('}');
                let matches = if is_param {
                    !segment.is_empty()
                } else {
                    expected == segment
                };
                if !matches {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_route_allows_its_own_method_and_head_with_get() {
        for route in PUBLIC_ROUTES {
            assert!(allows(route.allow, route.method), "{route:?}");
            if route.method == "GET" && route.pattern != "/v1/share/{id}" {
                assert!(allows(route.allow, "HEAD"), "{route:?}: GET without HEAD");
            }
            let others = PUBLIC_ROUTES
                .iter()
                .filter(|other| other.pattern == route.pattern);
            assert_eq!(others.count(), 1, "{route:?}: one row per path");
        }
    }

    #[test]
    fn a_public_path_names_all_its_methods() {
        let allow = |path| public_route(path).map(|route| route.allow);
        assert_eq!(allow("/v1/auth/token"), Some("POST, DELETE"));
        assert_eq!(allow("/v1/share/abc"), Some("GET, DELETE"));
        assert_eq!(allow("/v1/share/abc/status"), Some("GET, HEAD"));
        assert_eq!(allow("/v1/vaults"), None);
        assert_eq!(allow("/v1/share/"), None);
        assert!(allows("GET, HEAD", "HEAD"));
        assert!(!allows("GET, HEAD", "get"));
        assert!(!allows("POST, DELETE", "POS"));
    }
}
