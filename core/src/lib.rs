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
pub mod edge_report;
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
pub mod secret_request;
pub mod sensitive;
pub mod share;
pub mod stored;
pub mod vault;
pub mod verified;

/// The version both tiers report in their health bodies.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The settings of the core's newer property suites: `cases` cases each by default, so that
/// `cargo test` stays quick, or as many as the `PROPTEST_CASES` environment variable asks for
/// on a longer run (`PROPTEST_CASES=20000 cargo test -p oxvault-core`).
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    // `ProptestConfig::default()` reads PROPTEST_CASES itself; `with_cases` would override it.
    let config = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        config
    } else {
        proptest::test_runner::Config { cases, ..config }
    }
}

/// Arbitrary text for the parsers' property suites: any Unicode, control characters, and
/// lengths far past every parser's bound, since all of them read text from the internet.
#[cfg(test)]
pub(crate) fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
        "[\\x00-\\x20\\x7f/.%*@:a-zA-Z0-9_-]{0,48}",
        proptest::collection::vec(any::<char>(), 0..4096).prop_map(String::from_iter),
    ]
}
