//! The browser tests' runner: a script of `tests/browser/` under Node, driving Debian's
//! headless Chromium through playwright-core, prints one JSON object of what it saw.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::repo_root;

/// Where a browser test's screenshots go: `target/e2e-artifacts/{name}/`.
pub fn artifacts(name: &str) -> PathBuf {
    let dir = repo_root().join("target/e2e-artifacts").join(name);
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Runs `tests/browser/{script}` with `args`; what it saw, as JSON (its screenshots printed).
pub async fn run_script(script: &str, args: Vec<String>) -> Value {
    let chromium =
        std::env::var("OXVAULT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} missing: scripts/test.sh installs Debian's chromium"
    );
    let mut command = Command::new("node");
    command
        .current_dir(repo_root())
        .env("OXVAULT_CHROMIUM", &chromium)
        .arg(repo_root().join("tests/browser").join(script))
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("browser task")
        .expect("run node");
    assert!(
        output.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("browser JSON");
    for shot in seen["screenshots"].as_array().into_iter().flatten() {
        println!("screenshot: {}", shot.as_str().unwrap_or_default());
    }
    seen
}
