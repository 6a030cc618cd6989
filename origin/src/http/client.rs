//! Who is on the other end of a request: the client's address and the public base URL it
//! used, as far as the origin can trust them.
//!
//! The edge forwards every request with `x-oxvault-edge-auth: <shared secret>`,
//! `x-oxvault-client-ip` (the address the Cloudflare runtime saw) and `x-oxvault-public-url`
//! (the base URL the client reached the edge at). Those two are believed only on a request
//! whose `x-oxvault-edge-auth` matches `OXVAULT_EDGE_SHARED_SECRET`: anyone able to reach the
//! origin directly could send them. Otherwise the client is the TCP peer and the public URL
//! is the configured `OXVAULT_PUBLIC_URL`. (The edge strips clients' own `x-oxvault-*`
//! headers, so a client cannot pass its own values through the edge either.)

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use oxvault_core::edge_report::{REFUSALS_HEADER, Refusals};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;

/// The edge's proof that it sent the request.
pub const EDGE_AUTH_HEADER: &str = "x-oxvault-edge-auth";
/// The client's address as the edge saw it.
pub const CLIENT_IP_HEADER: &str = "x-oxvault-client-ip";
/// The base URL the client reached the edge at, e.g. `https://vault.example.com`.
pub const PUBLIC_URL_HEADER: &str = "x-oxvault-public-url";

/// What the origin knows of the edge: the shared secret (kept only as its SHA-256) and the
/// configured public URL. Cheap to clone.
#[derive(Clone)]
pub struct EdgeTrust {
    /// SHA-256 of the shared secret; `None` when none is configured (nothing is trusted).
    secret_digest: Option<[u8; 32]>,
    public_url: Arc<str>,
}

impl std::fmt::Debug for EdgeTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeTrust")
            .field("secret", &self.secret_digest.map(|_| "<redacted>"))
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The client of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientContext {
    /// The client's address: the edge's word for it on a request the edge vouches for (`None`
    /// if the edge named none), else the TCP peer's.
    pub ip: Option<IpAddr>,
    /// The base URL links should point at, without a trailing slash.
    pub public_url: String,
}

/// The one value of a header, if it is present exactly once and is text.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok().map(str::trim)
}

/// An http(s) base URL with nothing but an optional path, without its trailing slash; the
/// same rule as `OXVAULT_PUBLIC_URL`.
fn parse_public_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    plain.then(|| url.as_str().trim_end_matches('/').to_owned())
}

impl EdgeTrust {
    /// Trust in the edge holding `secret` (none without one); `public_url` is the fallback
    /// base of links.
    pub fn new(secret: Option<&SecretString>, public_url: &str) -> Self {
        Self {
            secret_digest: secret.map(|secret| Sha256::digest(secret.expose_secret()).into()),
            public_url: Arc::from(public_url.trim_end_matches('/')),
        }
    }

    /// Whether the request carries the edge's secret. The digests are compared in constant
    /// time, and comparing digests hides the secret's length as well.
    fn vouches_for(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.secret_digest else {
            return false;
        };
        let Some(given) = single(headers, EDGE_AUTH_HEADER) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(expected))
    }

    /// The rate-limit refusals the edge reports with this request, when the edge's secret
    /// came with them (see `oxvault_core::edge_report`); `None` otherwise or when malformed.
    pub fn refusals(&self, headers: &HeaderMap) -> Option<Refusals> {
        if !self.vouches_for(headers) {
            return None;
        }
        single(headers, REFUSALS_HEADER).and_then(Refusals::parse)
    }

    /// The client of a request with these headers from TCP peer `peer`.
    pub fn context(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> ClientContext {
        if self.vouches_for(headers) {
            ClientContext {
                ip: single(headers, CLIENT_IP_HEADER).and_then(|text| text.parse().ok()),
                public_url: single(headers, PUBLIC_URL_HEADER)
                    .and_then(parse_public_url)
                    .unwrap_or_else(|| self.public_url.to_string()),
            }
        } else {
            ClientContext {
                ip: peer.map(|peer| peer.ip()),
                public_url: self.public_url.to_string(),
            }
        }
    }
}

impl ClientContext {
    /// The client of the request `parts` belong to.
    pub fn of(parts: &Parts, trust: &EdgeTrust) -> Self {
        // Absent only when the router is served without connect info (some unit tests).
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        trust.context(&parts.headers, peer)
    }
}

impl FromRequestParts<AppState> for ClientContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(parts, &state.edge_trust))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-edge";
    const CONFIGURED: &str = "https://vault.example.com";

    fn trust() -> EdgeTrust {
        EdgeTrust::new(Some(&SecretString::from(SECRET)), CONFIGURED)
    }

    fn peer() -> Option<SocketAddr> {
        Some("192.0.2.7:41000".parse().unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_edge_with_the_secret_names_the_client_and_the_public_url() {
        let context = trust().context(
            &headers(&[
                (EDGE_AUTH_HEADER, SECRET),
                (CLIENT_IP_HEADER, "203.0.113.9"),
                (PUBLIC_URL_HEADER, "http://127.0.0.1:8787/"),
            ]),
            peer(),
        );
        assert_eq!(context.ip, ip("203.0.113.9"));
        assert_eq!(context.public_url, "http://127.0.0.1:8787");
    }

    #[test]
    fn refusal_counts_are_believed_only_beside_the_edge_secret() {
        let report = (REFUSALS_HEADER, "share_ip=3");
        let counted = trust()
            .refusals(&headers(&[(EDGE_AUTH_HEADER, SECRET), report]))
            .expect("a vouched report");
        assert_eq!(counted.to_header(), "share_ip=3");
        assert_eq!(trust().refusals(&headers(&[report])), None);
        assert_eq!(
            trust().refusals(&headers(&[(EDGE_AUTH_HEADER, "not-the-secret"), report])),
            None
        );
        assert_eq!(
            trust().refusals(&headers(&[
                (EDGE_AUTH_HEADER, SECRET),
                (REFUSALS_HEADER, "share_ip=3,share_ip=4")
            ])),
            None
        );
    }

    #[test]
    fn without_the_secret_forwarded_values_are_ignored() {
        for auth in [
            None,
            Some("wrong"),
            Some(""),
            Some(&SECRET[..SECRET.len() - 1]),
        ] {
            let mut pairs = vec![
                (CLIENT_IP_HEADER, "203.0.113.9"),
                (PUBLIC_URL_HEADER, "https://evil.example"),
            ];
            if let Some(auth) = auth {
                pairs.push((EDGE_AUTH_HEADER, auth));
            }
            let context = trust().context(&headers(&pairs), peer());
            assert_eq!(context.ip, ip("192.0.2.7"), "{auth:?}");
            assert_eq!(context.public_url, CONFIGURED, "{auth:?}");
        }
    }

    #[test]
    fn an_origin_without_a_secret_trusts_nobody() {
        let trust = EdgeTrust::new(None, CONFIGURED);
        let context = trust.context(
            &headers(&[(EDGE_AUTH_HEADER, ""), (CLIENT_IP_HEADER, "203.0.113.9")]),
            peer(),
        );
        assert_eq!(context.ip, ip("192.0.2.7"));
    }

    #[test]
    fn a_vouched_request_without_a_usable_client_ip_has_none() {
        // The peer is then the edge itself, not the client: it must not stand in.
        for value in [None, Some("not-an-ip"), Some("203.0.113.9, 10.0.0.1")] {
            let mut pairs = vec![(EDGE_AUTH_HEADER, SECRET)];
            if let Some(value) = value {
                pairs.push((CLIENT_IP_HEADER, value));
            }
            assert_eq!(
                trust().context(&headers(&pairs), peer()).ip,
                None,
                "{value:?}"
            );
        }
        let repeated = headers(&[
            (EDGE_AUTH_HEADER, SECRET),
            (CLIENT_IP_HEADER, "203.0.113.9"),
            (CLIENT_IP_HEADER, "10.0.0.1"),
        ]);
        assert_eq!(trust().context(&repeated, peer()).ip, None);
    }

    #[test]
    fn ipv6_clients_are_understood() {
        let context = trust().context(
            &headers(&[
                (EDGE_AUTH_HEADER, SECRET),
                (CLIENT_IP_HEADER, "2001:db8::5"),
            ]),
            peer(),
        );
        assert_eq!(context.ip, ip("2001:db8::5"));
    }

    #[test]
    fn an_odd_public_url_from_the_edge_falls_back_to_the_configured_one() {
        for bad in [
            "javascript:alert(1)",
            "https://user:pw@vault.example",
            "https://vault.example/?q=1",
            "https://vault.example/#x",
            "vault.example",
            "",
        ] {
            let context = trust().context(
                &headers(&[(EDGE_AUTH_HEADER, SECRET), (PUBLIC_URL_HEADER, bad)]),
                peer(),
            );
            assert_eq!(context.public_url, CONFIGURED, "{bad:?}");
        }
        let context = trust().context(
            &headers(&[
                (EDGE_AUTH_HEADER, SECRET),
                (PUBLIC_URL_HEADER, "https://edge.example/vault/"),
            ]),
            peer(),
        );
        assert_eq!(context.public_url, "https://edge.example/vault");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        assert!(!format!("{:?}", trust()).contains(SECRET));
    }
}
