//! One stack shared by the tests of a test binary that do not need one of their own.
//!
//! Starting an origin and a `wrangler dev` costs seconds of CPU; most tests only need an
//! organisation of their own, and organisations are isolated by design. So the first test that
//! asks for the shared stack starts `oxvault-test-stack` (this crate's binary), which starts
//! one ordinary stack and prints where its parts answer. Every later test uses the same one.
//!
//! Tearing it down is the keeper's job, not this process's: statics are never dropped, and a
//! test binary can die by a signal. The keeper waits for its stdin to close, which happens when
//! this process ends however it ends, then stops the edge and the origin and drops the
//! database like any stack does when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::env_or;

/// Where a stack's parts answer and log: what the keeper prints on its first line.
#[derive(Debug, Clone)]
pub struct StackAddresses {
    pub edge_url: String,
    pub origin_url: String,
    pub database_url: String,
    pub origin_log: PathBuf,
    pub edge_log: PathBuf,
}

impl StackAddresses {
    /// The line the keeper prints.
    pub fn to_json(&self) -> Value {
        json!({
            "edge_url": self.edge_url,
            "origin_url": self.origin_url,
            "database_url": self.database_url,
            "origin_log": self.origin_log,
            "edge_log": self.edge_log,
        })
    }

    fn from_json(line: &str) -> Self {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("oxvault-test-stack printed {line:?}: {err}"));
        let field = |name: &str| {
            value[name]
                .as_str()
                .unwrap_or_else(|| panic!("oxvault-test-stack printed no {name}: {line}"))
                .to_owned()
        };
        Self {
            edge_url: field("edge_url"),
            origin_url: field("origin_url"),
            database_url: field("database_url"),
            origin_log: field("origin_log").into(),
            edge_log: field("edge_log").into(),
        }
    }
}

/// The shared stack of this process.
#[derive(Debug)]
pub struct SharedStack {
    pub addresses: StackAddresses,
    /// Holds the keeper's stdin open for as long as this process lives; its closing tells the
    /// keeper to tear down. Never waited for: the keeper outlives this process by design.
    _keeper: Child,
}

static SHARED: OnceLock<SharedStack> = OnceLock::new();

/// The shared stack, started by the first caller (blocking: call it off the async executor).
pub fn stack() -> &'static SharedStack {
    SHARED.get_or_init(start_keeper)
}

fn keeper_binary() -> String {
    env_or("OXVAULT_TEST_STACK_BIN", || {
        crate::profile_dir()
            .join("oxvault-test-stack")
            .display()
            .to_string()
    })
}

fn start_keeper() -> SharedStack {
    use std::os::unix::process::CommandExt;
    let binary = keeper_binary();
    assert!(
        Path::new(&binary).exists(),
        "{binary} does not exist: `cargo test -p oxvault-tests` builds it (or set OXVAULT_TEST_STACK_BIN)"
    );
    let mut keeper = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C on the terminal ends the tests, whose exit then
        // closes the pipe, instead of killing the keeper before it has cleaned up.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
    let stdout = keeper.stdout.take().expect("keeper stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the keeper's first line");
    assert!(
        !line.trim().is_empty(),
        "oxvault-test-stack exited before its stack was up ({:?}); its errors are above",
        keeper.try_wait()
    );
    SharedStack {
        addresses: StackAddresses::from_json(line.trim()),
        _keeper: keeper,
    }
}
