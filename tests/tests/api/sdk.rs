//! The official 1Claw Python SDK (`oneclaw`, pinned in tests/sdk/requirements.txt), unmodified,
//! against the whole stack: sign-up, login, refresh, an API-key client, an agent client with an
//! `ocv_` key whose agent id is resolved by the exchange, vaults, secrets and their versions,
//! policies steering an agent, org members, revocation.
//!
//! `scripts/test.sh` installs the SDK into a venv and exports `OXVAULT_SDK_PYTHON`; without it
//! this test fails with a message rather than pass silently.

use std::process::Command;

use oxvault_tests::{TestStack, repo_root};

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_sdk_works_unmodified() {
    let python = std::env::var("OXVAULT_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "OXVAULT_SDK_PYTHON is not set: it must name a python with `oneclaw` installed \
             (scripts/test.sh makes one from tests/sdk/requirements.txt)"
        )
    });
    let stack = TestStack::start().await;
    let script = repo_root().join("tests/sdk/sdk_flow.py");
    let edge = stack.edge.url().to_owned();

    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(edge)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK flow failed:\n{stdout}\n{stderr}\norigin log:\n{}",
        stack.origin.log_text()
    );
    for step in [
        "signup",
        "login and me",
        "refresh refused without a refresh token",
        "api key client",
        "agent client with an ocv_ key (agent id resolved)",
        "vaults and secrets",
        "secret versions and server-side rotation",
        "policies drive what an agent may do",
        "share link: create, access with passphrase, list, revoke",
        "share to an agent: inbound, accept, access",
        "secret delete",
        "org members",
        "audit events and chain verification",
        "billing usage and history",
        "revoke token",
        "bad agent key refused",
    ] {
        assert!(
            stdout.contains(&format!("step {step} ... ok")),
            "missing step {step}:\n{stdout}"
        );
    }
}
