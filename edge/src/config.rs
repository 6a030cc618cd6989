//! The edge's configuration, read from the Worker's bindings once per request.
//!
//! Bindings are plain strings set in `wrangler.toml` (`[vars]`) or with `--var`; parsing them
//! here, into types, means the forwarding code never sees a malformed origin. A bad or missing
//! binding is an operator mistake: the edge answers 503 and logs the reason, never the caller.

use thiserror::Error;
use url::Url;

/// The binding that names the origin, e.g. `http://127.0.0.1:8080`.
pub const ORIGIN_URL_VAR: &str = "ORIGIN_URL";

/// Why the bindings could not be turned into an [`EdgeConfig`]. For the log only.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("the {0} binding is missing or not a string")]
    Missing(&'static str),
    #[error("{ORIGIN_URL_VAR} is not a URL")]
    NotAUrl,
    #[error("{ORIGIN_URL_VAR} must use http or https, not {0:?}")]
    UnsupportedScheme(String),
    #[error("{ORIGIN_URL_VAR} must not carry a user name or password")]
    HasCredentials,
    #[error("{ORIGIN_URL_VAR} must not have a path other than `/`")]
    HasPath,
    #[error("{ORIGIN_URL_VAR} must not have a query or fragment")]
    HasQueryOrFragment,
}

/// The origin's base URL: `http` or `https`, a host, perhaps a port, and nothing after it.
///
/// Held without a trailing slash so that joining a request path (which starts with `/`) is
/// plain concatenation; see [`crate::target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl(String);

impl OriginUrl {
    /// Parses and checks an origin URL such as `http://127.0.0.1:8080/`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(text.trim()).map_err(|_| ConfigError::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::UnsupportedScheme(url.scheme().to_owned()));
        }
        // Credentials in a var would end up in every outbound request and in logs.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::HasCredentials);
        }
        // A base path would silently change every forwarded path; refuse it rather than guess.
        if url.path() != "/" {
            return Err(ConfigError::HasPath);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::HasQueryOrFragment);
        }
        // http(s) URLs always have a host, so what is left is `scheme://host[:port]/`.
        let base = url.as_str().trim_end_matches('/');
        Ok(Self(base.to_owned()))
    }

    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything the edge needs from its bindings, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Where `/v1/*` requests are forwarded.
    pub origin: OriginUrl,
}

impl EdgeConfig {
    /// Builds the configuration from the raw binding values (`None`: binding absent).
    pub fn from_vars(origin_url: Option<&str>) -> Result<Self, ConfigError> {
        let origin_url = origin_url.ok_or(ConfigError::Missing(ORIGIN_URL_VAR))?;
        Ok(Self {
            origin: OriginUrl::parse(origin_url)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_and_port_is_kept_without_a_trailing_slash() {
        let origin = OriginUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(origin.as_str(), "http://127.0.0.1:8080");
        let origin = OriginUrl::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(origin.as_str(), "http://127.0.0.1:8080");
    }

    #[test]
    fn https_hostnames_and_ipv6_literals_are_accepted() {
        assert_eq!(
            OriginUrl::parse("https://origin.example.com/")
                .unwrap()
                .as_str(),
            "https://origin.example.com"
        );
        assert_eq!(
            OriginUrl::parse("http://[::1]:9000").unwrap().as_str(),
            "http://[::1]:9000"
        );
    }

    #[test]
    fn schemes_other_than_http_and_https_are_refused() {
        assert_eq!(
            OriginUrl::parse("ftp://127.0.0.1/"),
            Err(ConfigError::UnsupportedScheme("ftp".into()))
        );
        assert!(matches!(
            OriginUrl::parse("file:///etc/passwd"),
            Err(ConfigError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn a_path_query_or_fragment_is_refused() {
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080/api"),
            Err(ConfigError::HasPath)
        );
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080//"),
            Err(ConfigError::HasPath)
        );
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080/?a=1"),
            Err(ConfigError::HasQueryOrFragment)
        );
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080/#x"),
            Err(ConfigError::HasQueryOrFragment)
        );
    }

    #[test]
    fn credentials_in_the_origin_url_are_refused() {
        assert_eq!(
            OriginUrl::parse("http://user:pw@127.0.0.1:8080/"),
            Err(ConfigError::HasCredentials)
        );
    }

    #[test]
    fn text_that_is_not_a_url_is_refused() {
        assert_eq!(OriginUrl::parse(""), Err(ConfigError::NotAUrl));
        assert_eq!(
            OriginUrl::parse("127.0.0.1:8080"),
            Err(ConfigError::NotAUrl)
        );
        // Without a scheme, `host:port` reads as scheme `host`: refused all the same.
        assert_eq!(
            OriginUrl::parse("localhost:8080"),
            Err(ConfigError::UnsupportedScheme("localhost".into()))
        );
        assert_eq!(OriginUrl::parse("http://"), Err(ConfigError::NotAUrl));
    }

    #[test]
    fn a_missing_binding_is_reported_by_name() {
        let err = EdgeConfig::from_vars(None).unwrap_err();
        assert_eq!(err, ConfigError::Missing("ORIGIN_URL"));
        assert_eq!(
            err.to_string(),
            "the ORIGIN_URL binding is missing or not a string"
        );
    }

    #[test]
    fn a_good_binding_becomes_the_config() {
        let config = EdgeConfig::from_vars(Some("http://127.0.0.1:8080")).unwrap();
        assert_eq!(config.origin.as_str(), "http://127.0.0.1:8080");
    }
}
