//! Wire types and pure domain logic shared by the oxvault edge and origin.
//!
//! This crate sits under both deployable parts: the edge (a Cloudflare Worker compiled to
//! `wasm32-unknown-unknown`) and the origin (axum + PostgreSQL + HSM). It therefore holds only
//! pure code: no I/O, no async runtime, no database or PKCS#11 types. `scripts/test.sh` checks
//! with `cargo tree` that none of those ever creeps in.

pub mod api_key;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod claims;
pub mod email;
pub mod health;
pub mod ids;
pub mod jwt;
pub mod page;
pub mod policy;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod scope;
pub mod secret_path;
pub mod sensitive;
pub mod share;
pub mod vault;
pub mod verified;

/// The version both tiers report in their health bodies.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
