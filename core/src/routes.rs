//! The API's public routes, shared by the edge (which forwards them without a token and
//! answers 405 for the methods their paths do not serve) and the origin (whose OpenAPI
//! document marks them `security: []`, checked against this table by a unit test).
//!
//! Paths are compared byte for byte with the patterns: a `{name}` segment matches exactly one
//! non-empty segment, every other segment must match exactly.

/// The public routes: method and path pattern. A `{name}` segment matches exactly one
/// non-empty segment; every other segment must match exactly. `GET` also admits `HEAD`, which
/// the origin answers like `GET` without the body.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    // Ways to obtain a token: the credential is in the body.
    ("POST", "/v1/auth/signup"),
    ("POST", "/v1/auth/token"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/agent-token"),
    ("POST", "/v1/auth/api-key-token"),
    ("POST", "/v1/auth/google"),
    // What anyone may read: the verification keys, health and the API description.
    ("GET", "/v1/auth/jwt-public-key"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/v1/health"),
    ("GET", "/v1/health/hsm"),
    ("GET", "/v1/openapi.json"),
    // Share links: the unguessable id is the credential (user, agent and creator shares
    // are checked against the caller's token by the origin). The status never uses a view.
    ("GET", "/v1/share/{id}"),
    ("GET", "/v1/share/{id}/status"),
];

/// Every method each public route's path answers, public or not, as an `Allow` header lists
/// them: a request with any other method is a 405 at the edge, token or not.
pub const PUBLIC_PATH_METHODS: &[(&str, &str)] = &[
    ("/v1/auth/signup", "POST"),
    ("/v1/auth/token", "POST, DELETE"),
    ("/v1/auth/refresh", "POST"),
    ("/v1/auth/agent-token", "POST"),
    ("/v1/auth/api-key-token", "POST"),
    ("/v1/auth/google", "POST"),
    ("/v1/auth/jwt-public-key", "GET, HEAD"),
    ("/.well-known/jwks.json", "GET, HEAD"),
    ("/v1/health", "GET, HEAD"),
    ("/v1/health/hsm", "GET, HEAD"),
    ("/v1/openapi.json", "GET, HEAD"),
    // No HEAD: it would use up a view and show nothing (the edge answers it 405 itself).
    ("/v1/share/{id}", "GET, DELETE"),
    ("/v1/share/{id}/status", "GET, HEAD"),
];

/// The methods the public path `path` answers (its `Allow`), or `None` when it is not one.
pub fn public_path_methods(path: &str) -> Option<&'static str> {
    PUBLIC_PATH_METHODS
        .iter()
        .find(|(pattern, _)| path_matches(pattern, path))
        .map(|(_, methods)| *methods)
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
    fn every_public_route_has_its_path_listed_with_its_method() {
        for (method, pattern) in PUBLIC_ROUTES {
            let methods = PUBLIC_PATH_METHODS
                .iter()
                .find(|(listed, _)| listed == pattern)
                .map(|(_, methods)| *methods)
                .unwrap_or_else(|| panic!("{pattern} has no PUBLIC_PATH_METHODS row"));
            assert!(allows(methods, method), "{method} {pattern}");
            if *method == "GET" && *pattern != "/v1/share/{id}" {
                assert!(allows(methods, "HEAD"), "{pattern}: GET without HEAD");
            }
        }
        assert_eq!(PUBLIC_PATH_METHODS.len(), PUBLIC_ROUTES.len());
    }

    #[test]
    fn a_public_path_names_all_its_methods() {
        assert_eq!(public_path_methods("/v1/auth/token"), Some("POST, DELETE"));
        assert_eq!(public_path_methods("/v1/share/abc"), Some("GET, DELETE"));
        assert_eq!(
            public_path_methods("/v1/share/abc/status"),
            Some("GET, HEAD")
        );
        assert_eq!(public_path_methods("/v1/vaults"), None);
        assert_eq!(public_path_methods("/v1/share/"), None);
        assert!(allows("GET, HEAD", "HEAD"));
        assert!(!allows("GET, HEAD", "get"));
        assert!(!allows("POST, DELETE", "POS"));
    }
}
