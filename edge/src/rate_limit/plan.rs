//! Which limits a request is held to, and the key each is counted under.
//!
//! - Per client IP (`cf-connecting-ip`): the unauthenticated routes that hand out tokens
//!   ([`LimitClass::AuthIp`]), share lookups and pages ([`LimitClass::ShareIp`]) and the
//!   health routes ([`LimitClass::HealthIp`]).
//! - Per identity on token exchanges ([`LimitClass::LoginIdentity`]): a login counts against
//!   its email as the origin normalises it (so `USER@x.com` and `user@x.com`, or full-width
//!   letters, are one identity), an agent-token exchange against its agent, an API-key
//!   exchange against the key's lookup prefix. Spreading guesses over many IPs does not help.
//!
//! The email normalisation is passed in ([`NormaliseEmail`]): the Worker uses the runtime's
//! own `String.prototype.normalize("NFKC")` and `toLowerCase()`, which cost no Wasm, where
//! linking the core's Unicode tables (`oxvault_core::email`) would add about 150 KB (70 KB
//! gzipped) to the Worker. The tests here check the key against the core's normalisation.
//! - Per token subject on every authenticated route ([`LimitClass::Identity`]).
//!
//! Each key is the name of one rate-limiter object, prefixed by its class so classes never
//! share a count.

use std::net::IpAddr;

use oxvault_core::api_key::parse_key;
use oxvault_core::claims::Subject;
use oxvault_core::email::MAX_EMAIL_LEN;
use oxvault_core::rate_limit::client_block;
use serde_json::Value;
use uuid::Uuid;

use super::{Limit, RateLimits};
use oxvault_core::edge_report::LimitName;

use crate::access::path_matches;

/// A kind of limit, each with its own `wrangler.toml` var.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClass {
    AuthIp,
    LoginIdentity,
    ShareIp,
    Identity,
    HealthIp,
}

impl LimitClass {
    /// Whether a passing request may tell its caller how much of this limit is left. Not for
    /// the per-login-identity limit: its count is everyone's attempts on that email (or agent,
    /// or key), and `X-RateLimit-Remaining` would tell anyone how often someone else tried.
    pub fn reported(self) -> bool {
        !matches!(self, Self::LoginIdentity)
    }

    /// Whether a Worker isolate may lease several requests of this limit at once and count
    /// them without asking the object each time ([`super::allowance`]). Only the per-subject
    /// limit: it is on every authenticated request, so its round trip was the edge's largest
    /// cost, and being off by at most one lease is harmless there. The others guard guesses
    /// (passwords, keys, share ids) and stay exact, one object check per request.
    pub fn leased(self) -> bool {
        matches!(self, Self::Identity)
    }

    /// This class's name in the refusals the edge reports to the origin.
    pub fn report_name(self) -> LimitName {
        match self {
            Self::AuthIp => LimitName::AuthIp,
            Self::LoginIdentity => LimitName::LoginIdentity,
            Self::ShareIp => LimitName::ShareIp,
            Self::Identity => LimitName::Identity,
            Self::HealthIp => LimitName::HealthIp,
        }
    }

    /// The configured limit of this class.
    pub fn limit(self, limits: &RateLimits) -> Limit {
        match self {
            Self::AuthIp => limits.auth_ip,
            Self::LoginIdentity => limits.login_identity,
            Self::ShareIp => limits.share_ip,
            Self::Identity => limits.identity,
            Self::HealthIp => limits.health_ip,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::AuthIp => "auth-ip",
            Self::LoginIdentity => "login",
            Self::ShareIp => "share-ip",
            Self::Identity => "subject",
            Self::HealthIp => "health-ip",
        }
    }
}

/// One limit to check: its class and the rate-limiter object's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub class: LimitClass,
    pub key: String,
}

impl Check {
    fn new(class: LimitClass, key: &str) -> Self {
        Self {
            class,
            key: format!("{}:{key}", class.prefix()),
        }
    }
}

/// The routes that hand out tokens without one: limited per IP.
const TOKEN_ROUTES: &[&str] = &[
    "/v1/auth/signup",
    "/v1/auth/token",
    "/v1/auth/refresh",
    "/v1/auth/agent-token",
    "/v1/auth/api-key-token",
    "/v1/auth/google",
];

/// Share lookups, secret request prompts and their pages: limited per IP, so guessing ids
/// trips the limit.
const SHARE_ROUTES: &[&str] = &[
    "/v1/share/{id}",
    "/v1/share/{id}/status",
    "/s/{id}",
    "/v1/secret-requests/{id}/prompt",
    "/r/{id}",
];

/// The one link route that writes: a secret request's fulfilment, on the same per-IP count
/// as the lookups (a guessed id must cost the same either way).
const LINK_WRITE_ROUTE: &str = "/v1/secret-requests/{id}/fulfil";

/// The health routes: public, and each one costs the origin a database query and an HSM
/// round trip, so they are limited per IP like the other public routes.
const HEALTH_ROUTES: &[&str] = &[crate::route::HEALTH_PATH, "/v1/health/hsm"];

/// The per-IP limit a request falls under, if any.
pub fn ip_class(method: &str, path: &str) -> Option<LimitClass> {
    if method == "POST" && TOKEN_ROUTES.contains(&path) {
        Some(LimitClass::AuthIp)
    } else if matches!(method, "GET" | "HEAD") && HEALTH_ROUTES.contains(&path) {
        Some(LimitClass::HealthIp)
    } else if is_link_lookup(method, path)
        || (method == "POST" && path_matches(LINK_WRITE_ROUTE, path))
    {
        Some(LimitClass::ShareIp)
    } else {
        None
    }
}

fn is_link_lookup(method: &str, path: &str) -> bool {
    matches!(method, "GET" | "HEAD")
        && SHARE_ROUTES
            .iter()
            .any(|pattern| path_matches(pattern, path))
}

/// The per-IP check of `class` for a client at `client_ip` (the runtime's
/// `cf-connecting-ip`).
///
/// Clients are counted by [`client_block`]: an IPv6 client per /64, an IPv4-mapped address as
/// its IPv4 address. Without a usable address every such request shares one count (fail
/// closed; on Cloudflare the header is always there).
pub fn ip_check(class: LimitClass, client_ip: Option<&str>) -> Check {
    let key = match client_ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(ip) => match client_block(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(block) => format!("{block}/64"),
        },
        None => "unknown".to_owned(),
    };
    Check::new(class, &key)
}

/// The identity key for a request whose credential cannot be read (malformed body, email or
/// key): they share one count, which locks out nobody real.
const UNREADABLE: &str = "~unreadable";

/// Unicode NFKC, then lower case, of an already trimmed email: the steps of
/// `oxvault_core::email::Email::parse` after its `trim`.
pub type NormaliseEmail<'a> = &'a dyn Fn(&str) -> String;

/// The key of a login's email: trimmed as the core trims, then `normalise`d. An address the
/// origin would refuse still gets its own key: it matches no account, and the per-IP limit
/// holds its sender anyway.
fn email_key(email: &str, normalise: NormaliseEmail<'_>) -> Option<String> {
    let normalised = normalise(email.trim());
    (!normalised.is_empty() && normalised.len() <= MAX_EMAIL_LEN)
        .then(|| format!("email:{normalised}"))
}

/// The per-identity check of a token exchange, from its JSON body; `None` for other routes.
///
/// The identity is read the way the origin reads it (the same email normalisation, the core's
/// key parser), so no spelling the origin accepts can count as someone else here.
pub fn identity_check(
    method: &str,
    path: &str,
    body: &[u8],
    normalise_email: NormaliseEmail<'_>,
) -> Option<Check> {
    if method != "POST" {
        return None;
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|json| json.get(name))
            .and_then(Value::as_str)
    };
    let key = match path {
        "/v1/auth/token" => field("email").and_then(|email| email_key(email, normalise_email)),
        // `agent_id` is optional (the key names its agent), so without it the key's lookup
        // prefix, which belongs to one agent key, stands for the agent.
        "/v1/auth/agent-token" => match field("agent_id").map(str::trim) {
            Some(id) if !id.is_empty() => Uuid::try_parse(id)
                .ok()
                .map(|id| format!("agent:{}", id.hyphenated())),
            _ => field("api_key")
                .and_then(|key| parse_key(key).ok())
                .map(|key| format!("agent-key:{}", key.lookup_prefix)),
        },
        "/v1/auth/api-key-token" => field("api_key")
            .and_then(|key| parse_key(key).ok())
            .map(|key| format!("api-key:{}", key.lookup_prefix)),
        _ => return None,
    };
    Some(Check::new(
        LimitClass::LoginIdentity,
        key.as_deref().unwrap_or(UNREADABLE),
    ))
}

/// The per-subject check of an authenticated request, from its verified token.
pub fn subject_check(subject: &Subject) -> Check {
    Check::new(LimitClass::Identity, &subject.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_per_subject_limit_is_leased() {
        assert!(LimitClass::Identity.leased());
        for class in [
            LimitClass::AuthIp,
            LimitClass::LoginIdentity,
            LimitClass::ShareIp,
            LimitClass::HealthIp,
        ] {
            assert!(!class.leased(), "{class:?}");
        }
    }

    #[test]
    fn only_the_login_identity_limit_goes_unreported() {
        assert!(!LimitClass::LoginIdentity.reported());
        for class in [
            LimitClass::AuthIp,
            LimitClass::ShareIp,
            LimitClass::Identity,
            LimitClass::HealthIp,
        ] {
            assert!(class.reported(), "{class:?}");
        }
    }
    use oxvault_core::api_key::{KeyKind, format_key};
    use oxvault_core::email::Email;
    use serde_json::json;

    /// The core's normalisation, standing in for the runtime's (which the e2e tests cover).
    fn core_normalise(trimmed: &str) -> String {
        Email::parse(trimmed).map_or_else(|_| trimmed.to_lowercase(), |email| email.to_string())
    }

    fn identity(method: &str, path: &str, body: &[u8]) -> Option<Check> {
        identity_check(method, path, body, &core_normalise)
    }

    fn body(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn login(email: &str) -> Option<Check> {
        identity(
            "POST",
            "/v1/auth/token",
            &body(json!({"email": email, "password": "x"})),
        )
    }

    #[test]
    fn every_token_route_is_limited_per_ip_on_post_only() {
        for path in TOKEN_ROUTES {
            assert_eq!(ip_class("POST", path), Some(LimitClass::AuthIp), "{path}");
            assert_eq!(ip_class("GET", path), None, "{path}");
        }
        assert_eq!(ip_class("DELETE", "/v1/auth/token"), None);
        assert_eq!(ip_class("POST", "/v1/auth/token/"), None);
        assert_eq!(ip_class("POST", "/v1/auth/change-password"), None);
    }

    #[test]
    fn share_lookups_status_and_pages_are_limited_per_ip() {
        for path in [
            "/v1/share/abc",
            "/v1/share/abc/status",
            "/s/abc",
            "/v1/secret-requests/abc/prompt",
            "/r/abc",
        ] {
            assert_eq!(ip_class("GET", path), Some(LimitClass::ShareIp), "{path}");
            assert_eq!(ip_class("HEAD", path), Some(LimitClass::ShareIp), "{path}");
        }
        // A request's fulfilment too; its creator's routes are limited per subject instead.
        let fulfil = "/v1/secret-requests/abc/fulfil";
        assert_eq!(ip_class("POST", fulfil), Some(LimitClass::ShareIp));
        assert_eq!(ip_class("GET", "/v1/secret-requests/abc"), None);
        assert_eq!(ip_class("POST", "/v1/vaults/v/secret-requests"), None);
        assert_eq!(ip_class("DELETE", "/v1/share/abc"), None);
        assert_eq!(ip_class("GET", "/v1/shares/outbound"), None);
        assert_eq!(ip_class("GET", "/s/"), None);
        assert_eq!(ip_class("GET", "/s/a/b"), None);
    }

    #[test]
    fn the_health_routes_are_limited_per_ip_in_a_count_of_their_own() {
        for path in ["/v1/health", "/v1/health/hsm"] {
            assert_eq!(ip_class("GET", path), Some(LimitClass::HealthIp), "{path}");
            assert_eq!(ip_class("HEAD", path), Some(LimitClass::HealthIp), "{path}");
        }
        // Other methods are the origin's 405, which costs it nothing.
        assert_eq!(ip_class("POST", "/v1/health"), None);
        assert_eq!(ip_class("GET", "/v1/health/"), None);
        assert_eq!(ip_class("GET", "/v1/healthz"), None);
        assert_eq!(
            ip_check(LimitClass::HealthIp, Some("203.0.113.7")).key,
            "health-ip:203.0.113.7"
        );
        assert_ne!(
            ip_check(LimitClass::HealthIp, Some("203.0.113.7")),
            ip_check(LimitClass::ShareIp, Some("203.0.113.7"))
        );
    }

    #[test]
    fn ipv4_clients_are_counted_per_address() {
        let check = ip_check(LimitClass::AuthIp, Some("203.0.113.7"));
        assert_eq!(check.key, "auth-ip:203.0.113.7");
        assert_eq!(
            ip_check(LimitClass::ShareIp, Some(" 203.0.113.7 ")).key,
            "share-ip:203.0.113.7"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_slash_64() {
        let a = ip_check(LimitClass::AuthIp, Some("2001:db8:1:2:aaaa::1"));
        let b = ip_check(LimitClass::AuthIp, Some("2001:db8:1:2:bbbb::2"));
        let other = ip_check(LimitClass::AuthIp, Some("2001:db8:1:3::1"));
        assert_eq!(a.key, "auth-ip:2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(
            ip_check(LimitClass::AuthIp, Some("::ffff:198.51.100.1")).key,
            "auth-ip:198.51.100.1"
        );
    }

    #[test]
    fn clients_without_a_usable_address_share_one_count() {
        for ip in [None, Some(""), Some("1.2.3.4, 5.6.7.8"), Some("localhost")] {
            assert_eq!(
                ip_check(LimitClass::AuthIp, ip).key,
                "auth-ip:unknown",
                "{ip:?}"
            );
        }
    }

    #[test]
    fn logins_count_against_the_normalised_email() {
        let plain = login("user@example.com").unwrap();
        assert_eq!(plain.class, LimitClass::LoginIdentity);
        assert_eq!(plain.key, "login:email:user@example.com");
        for variant in [
            "USER@Example.COM",
            "  user@example.com ",
            "\u{ff35}\u{ff33}\u{ff25}\u{ff32}@example.com",
        ] {
            assert_eq!(login(variant).unwrap(), plain, "{variant}");
        }
        assert_ne!(login("other@example.com").unwrap(), plain);
    }

    #[test]
    fn the_key_is_the_email_the_origin_would_store() {
        for typed in [
            "User@Example.com",
            "\u{ff35}ser@example.com ",
            "a\u{fb01}@x.org",
        ] {
            let stored = Email::parse(typed).unwrap();
            assert_eq!(login(typed).unwrap().key, format!("login:email:{stored}"));
        }
    }

    #[test]
    fn the_email_is_trimmed_before_it_is_normalised() {
        let seen = std::cell::RefCell::new(Vec::new());
        let spy = |text: &str| {
            seen.borrow_mut().push(text.to_owned());
            text.to_owned()
        };
        identity_check(
            "POST",
            "/v1/auth/token",
            &body(json!({"email": "  a@b.c \n"})),
            &spy,
        );
        assert_eq!(seen.into_inner(), ["a@b.c"]);
    }

    #[test]
    fn unreadable_logins_share_one_count() {
        let unreadable = Some(Check::new(LimitClass::LoginIdentity, UNREADABLE));
        assert_eq!(login(""), unreadable);
        assert_eq!(login("   "), unreadable);
        assert_eq!(login(&format!("{}@x.org", "a".repeat(250))), unreadable);
        assert_eq!(identity("POST", "/v1/auth/token", b"{"), unreadable);
        assert_eq!(identity("POST", "/v1/auth/token", b""), unreadable);
        assert_eq!(
            identity("POST", "/v1/auth/token", &body(json!({"email": 5}))),
            unreadable
        );
    }

    #[test]
    fn agent_token_exchanges_count_against_the_agent() {
        let key = format_key(KeyKind::Agent, &[7; 24]);
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        let with_id = identity(
            "POST",
            "/v1/auth/agent-token",
            &body(json!({"api_key": key, "agent_id": id})),
        )
        .unwrap();
        assert_eq!(
            with_id.key,
            "login:agent:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        let without_id = identity(
            "POST",
            "/v1/auth/agent-token",
            &body(json!({"api_key": key})),
        )
        .unwrap();
        assert_eq!(without_id.key, format!("login:agent-key:{}", &key[..16]));
        let bad_id = identity(
            "POST",
            "/v1/auth/agent-token",
            &body(json!({"api_key": key, "agent_id": "nope"})),
        )
        .unwrap();
        assert_eq!(bad_id.key, "login:~unreadable");
    }

    #[test]
    fn api_key_exchanges_count_against_the_keys_lookup_prefix() {
        let key = format_key(KeyKind::User, &[9; 24]);
        let check = identity(
            "POST",
            "/v1/auth/api-key-token",
            &body(json!({"api_key": key})),
        )
        .unwrap();
        assert_eq!(check.key, format!("login:api-key:{}", &key[..16]));
        let mistyped = format!("{}x", &key[..42]);
        let check = identity(
            "POST",
            "/v1/auth/api-key-token",
            &body(json!({"api_key": mistyped})),
        )
        .unwrap();
        assert_eq!(check.key, "login:~unreadable");
    }

    #[test]
    fn other_routes_have_no_identity_check() {
        let login_body = body(json!({"email": "user@example.com", "password": "x"}));
        assert_eq!(identity("POST", "/v1/auth/signup", &login_body), None);
        assert_eq!(identity("POST", "/v1/auth/refresh", &login_body), None);
        assert_eq!(identity("GET", "/v1/auth/token", &login_body), None);
    }

    #[test]
    fn subjects_are_counted_per_principal() {
        let user: Subject = "user:6f9619ff-8b86-d011-b42d-00c04fc964ff".parse().unwrap();
        let agent: Subject = "agent:6f9619ff-8b86-d011-b42d-00c04fc964ff"
            .parse()
            .unwrap();
        assert_eq!(
            subject_check(&user).key,
            "subject:user:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        assert_ne!(subject_check(&user), subject_check(&agent));
        assert_eq!(subject_check(&user).class, LimitClass::Identity);
    }

    #[test]
    fn the_classes_read_their_own_limits() {
        let limits = RateLimits {
            auth_ip: Limit::new(1, 1).unwrap(),
            login_identity: Limit::new(2, 1).unwrap(),
            share_ip: Limit::new(3, 1).unwrap(),
            identity: Limit::new(4, 1).unwrap(),
            health_ip: Limit::new(5, 1).unwrap(),
        };
        let counts: Vec<u32> = [
            LimitClass::AuthIp,
            LimitClass::LoginIdentity,
            LimitClass::ShareIp,
            LimitClass::Identity,
            LimitClass::HealthIp,
        ]
        .iter()
        .map(|class| class.limit(&limits).count())
        .collect();
        assert_eq!(counts, [1, 2, 3, 4, 5]);
    }
}
