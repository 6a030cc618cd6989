//! Test harness for oxvault's black-box tests: starts the real stack, one per test.
//!
//! A [`TestStack`] is a fresh PostgreSQL database, a fresh SoftHSM2 token, the
//! `oxvault-origin` binary (`migrate`, then `serve`) and `wrangler dev` running the pre-built
//! Worker in front of it. Tests then speak HTTP to [`TestStack::edge`] only, as a client
//! would. Everything is torn down when the stack is dropped.
//!
//! Where the pieces come from (all set by `scripts/test.sh`; defaults in brackets):
//! - `OXVAULT_ORIGIN_BIN` [the `oxvault-origin` next to this test binary's `deps/` dir]
//! - `OXVAULT_WORKER_MAIN` [`edge/build/worker/shim.mjs`], `OXVAULT_WRANGLER`
//!   [`node_modules/.bin/wrangler`]
//! - `OXVAULT_TEST_DATABASE_URL` [`postgres://postgres@127.0.0.1:5432/postgres`]
//! - `OXVAULT_HSM_MODULE` [`/usr/lib/softhsm/libsofthsm2.so`]; `softhsm2-util` on `PATH`.
//!
//! A missing piece fails the test with a message naming it: a test never passes by skipping.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod database;
mod edge;
mod origin;
pub mod pages;
mod process;
pub mod shares;
mod smtp;
mod softhsm;
mod stack;

pub use database::TestDatabase;
pub use edge::{Edge, EdgeSettings, GENEROUS_LIMITS};
pub use origin::{Origin, OriginSettings};
pub use smtp::{ReceivedMail, SmtpListener, SmtpSettings, TempFailure};
pub use softhsm::SoftHsmToken;
pub use stack::{PASSWORD, Session, TestStack, invitation_token_in};

use std::path::PathBuf;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A variable's value, or the default.
fn env_or(name: &str, default: impl FnOnce() -> String) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(default)
}
