//! The edge's configuration, read from the Worker's bindings once per request.
//!
//! Bindings are plain strings set in `wrangler.toml` (`[vars]`), as Worker secrets, or with
//! `--var`; parsing them here, into types, means the forwarding code never sees a malformed
//! origin or limit. A bad or missing binding is an operator mistake: the edge answers 503 and
//! logs the reason, never the caller, and never the value of a secret.

use std::fmt;

use thiserror::Error;
use url::Url;

use crate::rate_limit::{Limit, LimitError, RateLimits};

/// The binding that names the origin, e.g. `https://origin.example.com`, or
/// `http://127.0.0.1:8080` (plain http is accepted to a loopback host only); or several
/// origins, separated by commas or spaces, that requests are spread over in turn.
pub const ORIGIN_URL_VAR: &str = "ORIGIN_URL";
/// The most origins `ORIGIN_URL` may list.
pub const MAX_ORIGINS: usize = 16;
/// The secret the edge proves itself to the origin with (a Worker secret in production).
pub const SHARED_SECRET_VAR: &str = "ORIGIN_SHARED_SECRET";
/// The base URL people reach the edge at, e.g. `https://vault.example.com`; optional.
pub const PUBLIC_URL_VAR: &str = "PUBLIC_URL";
/// Per client IP, on the routes that hand out tokens.
pub const RATE_LIMIT_AUTH_IP_VAR: &str = "RATE_LIMIT_AUTH_IP";
/// Per identity (email, agent, API key) on token exchanges.
pub const RATE_LIMIT_LOGIN_IDENTITY_VAR: &str = "RATE_LIMIT_LOGIN_IDENTITY";
/// Per client IP, on share lookups and share pages.
pub const RATE_LIMIT_SHARE_IP_VAR: &str = "RATE_LIMIT_SHARE_IP";
/// Per token subject, on every authenticated route.
pub const RATE_LIMIT_IDENTITY_VAR: &str = "RATE_LIMIT_IDENTITY";
/// Per client IP, on `/v1/health` and `/v1/health/hsm`.
pub const RATE_LIMIT_HEALTH_IP_VAR: &str = "RATE_LIMIT_HEALTH_IP";

/// The longest shared secret accepted: it travels in a header on every request.
const MAX_SECRET_LEN: usize = 512;

/// Why the bindings could not be turned into an [`EdgeConfig`]. For the log only; no variant
/// carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("the {0} binding is missing or not a string")]
    Missing(&'static str),
    #[error("{0} is not a URL")]
    NotAUrl(&'static str),
    #[error("{0} must use http or https, not {1:?}")]
    UnsupportedScheme(&'static str, String),
    #[error("{0} must use https unless its host is loopback (127.0.0.0/8, ::1, localhost)")]
    PlainHttpOffLoopback(&'static str),
    #[error("{0} must not carry a user name or password")]
    HasCredentials(&'static str),
    #[error("{0} must not have a path other than `/`")]
    HasPath(&'static str),
    #[error("{0} must not have a query or fragment")]
    HasQueryOrFragment(&'static str),
    #[error("{SHARED_SECRET_VAR} must be 1 to {MAX_SECRET_LEN} visible ASCII characters")]
    BadSecret,
    #[error("{0} is not a rate limit: {1}")]
    BadLimit(&'static str, LimitError),
    #[error("{ORIGIN_URL_VAR} lists more than {MAX_ORIGINS} origins")]
    TooManyOrigins,
}

/// A base URL: `https` (or `http` to a loopback host), a host, perhaps a port, and nothing
/// after it.
///
/// Held without a trailing slash so that joining a request path (which starts with `/`) is
/// plain concatenation; see [`crate::target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

/// The origin's base URL.
pub type OriginUrl = BaseUrl;

impl BaseUrl {
    /// Parses and checks the value of the binding `var`, such as `http://127.0.0.1:8080/`.
    pub fn parse_var(var: &'static str, text: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(text.trim()).map_err(|_| ConfigError::NotAUrl(var))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::UnsupportedScheme(var, url.scheme().to_owned()));
        }
        // Plain http would carry tokens, secret values, share ids and the shared secret in
        // clear across whatever network lies between; only a hop inside this machine is safe.
        if url.scheme() == "http" && !is_loopback(&url) {
            return Err(ConfigError::PlainHttpOffLoopback(var));
        }
        // Credentials in a var would end up in every outbound request and in logs.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::HasCredentials(var));
        }
        // A base path would silently change every path joined to it; refuse rather than guess.
        if url.path() != "/" {
            return Err(ConfigError::HasPath(var));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::HasQueryOrFragment(var));
        }
        // http(s) URLs always have a host, so what is left is `scheme://host[:port]/`.
        let base = url.as_str().trim_end_matches('/');
        Ok(Self(base.to_owned()))
    }

    /// Parses an origin URL (the `ORIGIN_URL` binding).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_var(ORIGIN_URL_VAR, text)
    }

    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The origins requests are spread over: each URL of `ORIGIN_URL`, checked as
/// [`OriginUrl::parse`] checks one. Every origin serves every request (they share the database
/// and the HSM), so which one a request goes to is only a matter of load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(Vec<OriginUrl>);

impl Origins {
    /// Parses one origin URL or several separated by commas or spaces.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let origins = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(OriginUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match origins.len() {
            0 => Err(ConfigError::Missing(ORIGIN_URL_VAR)),
            n if n > MAX_ORIGINS => Err(ConfigError::TooManyOrigins),
            _ => Ok(Self(origins)),
        }
    }

    /// The origin of the `turn`-th request: each in turn, so every origin gets its share.
    pub fn pick(&self, turn: usize) -> &OriginUrl {
        &self.0[turn % self.0.len()]
    }
}

/// Whether the URL's host is this machine: `localhost`, 127.0.0.0/8 or `::1`. By the parsed
/// host, not the text, so `http://127.1` counts and `http://127.0.0.1.evil.example` does not.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The secret shared with the origin. Its `Debug` never shows the value, so a config printed
/// into a log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(String);

impl SharedSecret {
    /// Checks a secret: non-empty visible ASCII, because it is sent as a header value.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_SECRET_LEN
            && text.bytes().all(|byte| byte.is_ascii_graphic());
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(ConfigError::BadSecret)
        }
    }

    /// The value, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// Everything the edge needs from its bindings, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Every origin `ORIGIN_URL` names.
    pub origins: Origins,
    /// This request's place in the rotation over `origins` (0 until
    /// [`EdgeConfig::choose_origin`]); see [`EdgeConfig::origin`].
    turn: usize,
    /// When set, the origin trusts the client address and public URL the edge reports.
    pub shared_secret: Option<SharedSecret>,
    /// The public base URL; `None`: the one each request came in on.
    pub public_url: Option<BaseUrl>,
    /// The rate limits.
    pub limits: RateLimits,
}

impl EdgeConfig {
    /// Builds the configuration from the bindings; `var` returns a binding's value, `None`
    /// when it is absent.
    ///
    /// An empty `ORIGIN_SHARED_SECRET` or `PUBLIC_URL` counts as absent (a placeholder in
    /// `[vars]`); every rate limit must be present, so a deployment that lost one fails
    /// closed (503) instead of running unlimited.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let origin_url = var(ORIGIN_URL_VAR).ok_or(ConfigError::Missing(ORIGIN_URL_VAR))?;
        let present = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let shared_secret = present(SHARED_SECRET_VAR)
            .map(|text| SharedSecret::parse(&text))
            .transpose()?;
        let public_url = present(PUBLIC_URL_VAR)
            .map(|text| BaseUrl::parse_var(PUBLIC_URL_VAR, &text))
            .transpose()?;
        let limit = |name: &'static str| {
            let text = var(name).ok_or(ConfigError::Missing(name))?;
            Limit::parse(&text).map_err(|err| ConfigError::BadLimit(name, err))
        };
        Ok(Self {
            origins: Origins::parse(&origin_url)?,
            turn: 0,
            shared_secret,
            public_url,
            limits: RateLimits {
                auth_ip: limit(RATE_LIMIT_AUTH_IP_VAR)?,
                login_identity: limit(RATE_LIMIT_LOGIN_IDENTITY_VAR)?,
                share_ip: limit(RATE_LIMIT_SHARE_IP_VAR)?,
                identity: limit(RATE_LIMIT_IDENTITY_VAR)?,
                health_ip: limit(RATE_LIMIT_HEALTH_IP_VAR)?,
            },
        })
    }
}

impl EdgeConfig {
    /// Sends this request to the `turn`-th origin in the rotation (see [`Origins::pick`]).
    pub fn choose_origin(&mut self, turn: usize) {
        self.turn = turn;
    }

    /// Where this request goes (the origin's health, its keys, `/v1/*`): the first origin
    /// until [`EdgeConfig::choose_origin`].
    pub fn origin(&self) -> &OriginUrl {
        self.origins.pick(self.turn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = [
            (ORIGIN_URL_VAR, "http://127.0.0.1:8080"),
            (RATE_LIMIT_AUTH_IP_VAR, "30/60"),
            (RATE_LIMIT_LOGIN_IDENTITY_VAR, "10/300"),
            (RATE_LIMIT_SHARE_IP_VAR, "60/60"),
            (RATE_LIMIT_IDENTITY_VAR, "1200/60"),
            (RATE_LIMIT_HEALTH_IP_VAR, "60/60"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (name, value) in pairs {
            map.insert((*name).to_owned(), (*value).to_owned());
        }
        move |name| map.get(name).cloned()
    }

    fn without(name: &'static str) -> impl Fn(&str) -> Option<String> {
        let all = vars(&[]);
        move |asked| (asked != name).then(|| all(asked)).flatten()
    }

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
    fn plain_http_is_accepted_to_loopback_hosts_only() {
        for loopback in [
            "http://127.0.0.1:8080",
            "http://127.9.8.7",
            "http://127.1:9000",
            "http://[::1]:9000",
            "http://localhost:8080",
            "http://LOCALHOST",
        ] {
            assert!(OriginUrl::parse(loopback).is_ok(), "{loopback}");
        }
        for remote in [
            "http://origin.example.com",
            "http://10.0.0.5:8080",
            "http://128.0.0.1",
            "http://[::2]:9000",
            "http://[::ffff:127.0.0.1]",
            "http://127.0.0.1.nip.io",
            "http://localhost.example.com",
            "http://0.0.0.0:8080",
        ] {
            assert_eq!(
                OriginUrl::parse(remote),
                Err(ConfigError::PlainHttpOffLoopback(ORIGIN_URL_VAR)),
                "{remote}"
            );
        }
        assert!(OriginUrl::parse("https://10.0.0.5:8443").is_ok());
    }

    #[test]
    fn a_plain_http_origin_off_loopback_fails_the_config_by_name() {
        let err = EdgeConfig::from_vars(vars(&[(ORIGIN_URL_VAR, "http://origin.internal:8080")]))
            .unwrap_err();
        assert_eq!(err, ConfigError::PlainHttpOffLoopback(ORIGIN_URL_VAR));
        assert!(
            err.to_string().contains("ORIGIN_URL must use https"),
            "{err}"
        );
        assert_eq!(
            EdgeConfig::from_vars(vars(&[(PUBLIC_URL_VAR, "http://vault.example.com")])),
            Err(ConfigError::PlainHttpOffLoopback(PUBLIC_URL_VAR))
        );
    }

    #[test]
    fn schemes_other_than_http_and_https_are_refused() {
        assert_eq!(
            OriginUrl::parse("ftp://127.0.0.1/"),
            Err(ConfigError::UnsupportedScheme(ORIGIN_URL_VAR, "ftp".into()))
        );
        assert!(matches!(
            OriginUrl::parse("file:///etc/passwd"),
            Err(ConfigError::UnsupportedScheme(..))
        ));
    }

    #[test]
    fn a_path_query_or_fragment_is_refused() {
        let var = ORIGIN_URL_VAR;
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080/api"),
            Err(ConfigError::HasPath(var))
        );
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080//"),
            Err(ConfigError::HasPath(var))
        );
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080/?a=1"),
            Err(ConfigError::HasQueryOrFragment(var))
        );
        assert_eq!(
            OriginUrl::parse("http://127.0.0.1:8080/#x"),
            Err(ConfigError::HasQueryOrFragment(var))
        );
    }

    #[test]
    fn credentials_in_the_origin_url_are_refused() {
        assert_eq!(
            OriginUrl::parse("http://user:pw@127.0.0.1:8080/"),
            Err(ConfigError::HasCredentials(ORIGIN_URL_VAR))
        );
    }

    #[test]
    fn text_that_is_not_a_url_is_refused() {
        let var = ORIGIN_URL_VAR;
        assert_eq!(OriginUrl::parse(""), Err(ConfigError::NotAUrl(var)));
        assert_eq!(
            OriginUrl::parse("127.0.0.1:8080"),
            Err(ConfigError::NotAUrl(var))
        );
        // Without a scheme, `host:port` reads as scheme `host`: refused all the same.
        assert_eq!(
            OriginUrl::parse("localhost:8080"),
            Err(ConfigError::UnsupportedScheme(var, "localhost".into()))
        );
        assert_eq!(OriginUrl::parse("http://"), Err(ConfigError::NotAUrl(var)));
    }

    #[test]
    fn a_missing_binding_is_reported_by_name() {
        let err = EdgeConfig::from_vars(without(ORIGIN_URL_VAR)).unwrap_err();
        assert_eq!(err, ConfigError::Missing("ORIGIN_URL"));
        assert_eq!(
            err.to_string(),
            "the ORIGIN_URL binding is missing or not a string"
        );
    }

    #[test]
    fn several_origins_are_taken_in_turn() {
        let list = "http://127.0.0.1:8080, http://127.0.0.1:8081 https://origin.example.com";
        let mut config = EdgeConfig::from_vars(vars(&[(ORIGIN_URL_VAR, list)])).unwrap();
        assert_eq!(config.origin().as_str(), "http://127.0.0.1:8080");
        let picked: Vec<String> = (0..4)
            .map(|turn| {
                config.choose_origin(turn);
                config.origin().as_str().to_owned()
            })
            .collect();
        assert_eq!(
            picked,
            [
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8081",
                "https://origin.example.com",
                "http://127.0.0.1:8080"
            ]
        );
    }

    #[test]
    fn every_listed_origin_is_checked_and_the_list_is_bounded() {
        let bad = "http://127.0.0.1:8080,http://origin.internal:8081";
        assert_eq!(
            EdgeConfig::from_vars(vars(&[(ORIGIN_URL_VAR, bad)])),
            Err(ConfigError::PlainHttpOffLoopback(ORIGIN_URL_VAR))
        );
        assert_eq!(
            EdgeConfig::from_vars(vars(&[(ORIGIN_URL_VAR, " , ")])),
            Err(ConfigError::Missing(ORIGIN_URL_VAR))
        );
        let many = vec!["http://127.0.0.1:8080"; MAX_ORIGINS + 1].join(",");
        assert_eq!(
            EdgeConfig::from_vars(vars(&[(ORIGIN_URL_VAR, &many)])),
            Err(ConfigError::TooManyOrigins)
        );
    }

    #[test]
    fn good_bindings_become_the_config() {
        let config = EdgeConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(config.origin().as_str(), "http://127.0.0.1:8080");
        assert_eq!(config.shared_secret, None);
        assert_eq!(config.public_url, None);
        assert_eq!(config.limits.auth_ip, Limit::parse("30/60").unwrap());
        assert_eq!(
            config.limits.login_identity,
            Limit::parse("10/300").unwrap()
        );
        assert_eq!(config.limits.share_ip, Limit::parse("60/60").unwrap());
        assert_eq!(config.limits.identity, Limit::parse("1200/60").unwrap());
        assert_eq!(config.limits.health_ip, Limit::parse("60/60").unwrap());
    }

    #[test]
    fn the_shared_secret_and_public_url_are_read_when_set() {
        let config = EdgeConfig::from_vars(vars(&[
            (SHARED_SECRET_VAR, "s3cret-value"),
            (PUBLIC_URL_VAR, "https://vault.example.com/"),
        ]))
        .unwrap();
        assert_eq!(
            config.shared_secret.as_ref().map(SharedSecret::expose),
            Some("s3cret-value")
        );
        assert_eq!(
            config.public_url.as_ref().map(BaseUrl::as_str),
            Some("https://vault.example.com")
        );
    }

    #[test]
    fn empty_optional_bindings_count_as_absent() {
        let config =
            EdgeConfig::from_vars(vars(&[(SHARED_SECRET_VAR, ""), (PUBLIC_URL_VAR, "  ")]))
                .unwrap();
        assert_eq!(config.shared_secret, None);
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn a_public_url_with_a_path_is_refused_by_its_own_name() {
        assert_eq!(
            EdgeConfig::from_vars(vars(&[(PUBLIC_URL_VAR, "https://x.example/s")])),
            Err(ConfigError::HasPath(PUBLIC_URL_VAR))
        );
    }

    #[test]
    fn a_secret_that_cannot_be_a_header_value_is_refused_without_showing_it() {
        for bad in ["has space", "line\nbreak", "caf\u{e9}", &"x".repeat(513)] {
            let err = EdgeConfig::from_vars(vars(&[(SHARED_SECRET_VAR, bad)])).unwrap_err();
            assert_eq!(err, ConfigError::BadSecret);
            assert!(!err.to_string().contains(bad));
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let config =
            EdgeConfig::from_vars(vars(&[(SHARED_SECRET_VAR, "do-not-print-me")])).unwrap();
        assert!(!format!("{config:?}").contains("do-not-print-me"));
        assert!(format!("{config:?}").contains("<redacted>"));
    }

    #[test]
    fn a_missing_or_malformed_rate_limit_fails_closed() {
        assert_eq!(
            EdgeConfig::from_vars(without(RATE_LIMIT_SHARE_IP_VAR)),
            Err(ConfigError::Missing(RATE_LIMIT_SHARE_IP_VAR))
        );
        assert_eq!(
            EdgeConfig::from_vars(without(RATE_LIMIT_HEALTH_IP_VAR)),
            Err(ConfigError::Missing(RATE_LIMIT_HEALTH_IP_VAR))
        );
        let err = EdgeConfig::from_vars(vars(&[(RATE_LIMIT_IDENTITY_VAR, "lots")])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::BadLimit(RATE_LIMIT_IDENTITY_VAR, _)
        ));
        assert!(err.to_string().contains(RATE_LIMIT_IDENTITY_VAR));
    }
}
