//! Rate limiting at the edge: what is limited, by how much, and the arithmetic of one limit.
//!
//! Every limited key (a client IP on the token routes, a normalised email on logins, a token
//! subject on authenticated routes, ...) has its own Durable Object, so a count holds across
//! every Cloudflare location and survives the object being evicted (its state is in the
//! object's storage). The Worker sends the limit with each check, so the limits live in
//! `wrangler.toml` vars, not in the object. Checks run before the origin is called: a refused
//! request never reaches it, so a flood of logins costs no Argon2 work there.
//!
//! This module and its children are pure and test natively:
//! - here: the five configured limits (a limit `N/S` itself is `oxvault_core::rate_limit`);
//! - [`gcra`]: the decision for one request, from the stored state and the time;
//! - [`plan`]: which limits apply to a request and under which keys;
//! - [`wire`]: the messages between the Worker and the object, and the response headers;
//! - [`allowance`]: the per-subject limit's requests leased to an isolate a few at a time,
//!   so most authenticated requests are counted without a round trip to the object.
//!
//! The object itself is `runtime::rate_limiter` (wasm32 only).

pub mod allowance;
pub mod gcra;
pub mod plan;
pub mod wire;

pub use oxvault_core::rate_limit::{Limit, LimitError, MAX_COUNT, MAX_PERIOD_SECS};

/// The five limits of `wrangler.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `RATE_LIMIT_AUTH_IP`: per client IP on the routes that hand out tokens.
    pub auth_ip: Limit,
    /// `RATE_LIMIT_LOGIN_IDENTITY`: per email, agent or API key on token exchanges.
    pub login_identity: Limit,
    /// `RATE_LIMIT_SHARE_IP`: per client IP on share lookups and share pages.
    pub share_ip: Limit,
    /// `RATE_LIMIT_IDENTITY`: per token subject on authenticated routes.
    pub identity: Limit,
    /// `RATE_LIMIT_HEALTH_IP`: per client IP on the public health routes, each of which
    /// costs the origin a database query and an HSM round trip (cached there briefly).
    pub health_ip: Limit,
}
