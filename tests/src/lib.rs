//! Test harness for oxvault's black-box tests: starts the real stack.
//!
//! A stack is a fresh PostgreSQL database, a fresh SoftHSM2 token, the `oxvault-origin` binary
//! (`migrate`, then `serve`) and `wrangler dev` running the pre-built Worker in front of it.
//! Tests speak HTTP to its edge, as a client would.
//!
//! - [`TestStack::shared`]: the one stack of this test binary, started by the first test that
//!   asks (see `shared.rs`). A test on it works in organisations of its own, signing up the
//!   addresses [`TestStack::email`] makes unique to it; it must not stop, break or reconfigure
//!   anything, nor assert on rows or log lines other tests may write too.
//! - [`TestStack::start`] or [`TestStack::builder`]: a stack of the test's own
//!   ([`OwnParts`]), for tests that restart or break a part, change settings, or count what
//!   the whole stack did. It is torn down when dropped.
//!
//! Where the pieces come from (all set by `scripts/test.sh`; defaults in brackets):
//! - `OXVAULT_ORIGIN_BIN` [the `oxvault-origin` next to this test binary's `deps/` dir],
//!   `OXVAULT_TEST_STACK_BIN` [likewise `oxvault-test-stack`]
//! - `OXVAULT_WORKER_MAIN` [`edge/build/worker/shim.mjs`], `OXVAULT_WRANGLER`
//!   [`node_modules/.bin/wrangler`]
//! - `OXVAULT_TEST_DATABASE_URL` [`postgres://postgres@127.0.0.1:5432/postgres`]
//! - `OXVAULT_HSM_MODULE` [`/usr/lib/softhsm/libsofthsm2.so`]; `softhsm2-util` on `PATH`.
//!
//! A missing piece fails the test with a message naming it: a test never passes by skipping.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod browser;
mod client;
mod database;
mod edge;
mod origin;
pub mod pages;
mod postgres;
mod process;
mod shared;
pub mod shares;
mod smtp;
mod softhsm;
mod stack;

pub use client::{POOL_IDLE_TIMEOUT, client, client_builder, client_from};
pub use database::TestDatabase;
pub use edge::{Edge, EdgeSettings, GENEROUS_LIMITS};
pub use origin::{Origin, OriginSettings};
pub use postgres::{PrivatePostgres, pg_tool};
pub use shared::StackAddresses;
pub use smtp::{ReceivedMail, ReservedPort, SmtpListener, SmtpSettings, TempFailure};
pub use softhsm::{SoftHsmToken, Wedge};
pub use stack::{OwnParts, PASSWORD, Session, StackBuilder, TestStack, invitation_token_in};

use std::path::PathBuf;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo profile directory (`target/<profile>`) holding the workspace's binaries: test
/// binaries live in its `deps/`, this crate's own binaries in it.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let dir = exe.parent().expect("a binary lives in a directory");
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().expect("target/<profile>/deps").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// A variable's value, or the default.
fn env_or(name: &str, default: impl FnOnce() -> String) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(default)
}
