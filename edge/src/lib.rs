//! The oxvault edge: a Cloudflare Worker that stands in front of the origin.
//!
//! It answers `GET /v1/health` itself (its own state plus the origin's), renders share pages
//! (`GET /s/{id}`, [`share_page`]) and secret request pages (`GET /r/{id}`, [`request_page`])
//! and forwards every other `/v1/*` request, and `GET
//! /.well-known/jwks.json`, and the MCP endpoint `/mcp` ([`mcp`]), to the origin named by the `ORIGIN_URL` binding, adding
//! `X-Forwarded-For`, `X-Request-Id` and, with a shared secret, the headers the origin trusts
//! ([`headers`]), and dropping hop-by-hop and spoofable headers. Routes not listed as public in
//! [`access`] are forwarded only with a bearer token that verifies against the origin's
//! published keys ([`auth`], [`keys`]); anything else gets a 401 from the edge and never
//! reaches the origin; a token the isolate has verified before is recognised by its exact text
//! (`oxvault_core::verified`). Rate limits ([`rate_limit`]) are checked before the origin is called; the
//! per-subject one is leased to the isolate a few requests at a time
//! ([`rate_limit::allowance`]), so most authenticated requests wait on no Durable Object.
//!
//! The crate is split so that almost all of it tests natively:
//! - pure modules ([`config`], [`route`], [`access`], [`auth`], [`keys`], [`target`],
//!   [`headers`], [`request_id`], [`body`], [`relay`], [`health`], [`error`],
//!   [`rate_limit`], [`share`], [`share_page`], [`request_page`]) decide everything and know
//!   nothing of the Workers runtime;
//! - `runtime` (compiled for `wasm32` only) moves bytes between the runtime's `Request`,
//!   `Response`, `fetch` and Durable Objects and those decisions. It must never panic: a panic
//!   kills the isolate.

pub mod access;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod headers;
pub mod health;
pub mod keys;
pub mod mcp;
pub mod rate_limit;
pub mod relay;
pub mod request_id;
pub mod request_page;
pub mod route;
pub mod share;
pub mod share_page;
pub mod target;

#[cfg(target_arch = "wasm32")]
mod runtime;
