//! The official 1Claw Python SDK (`oneclaw`, pinned in tests/sdk/requirements.txt), unmodified,
//! against the whole stack: every SDK call whose endpoint oxvault serves, checked by value
//! (tests/sdk/sdk_flow.py): accounts, personal API keys and their scopes, agents from sign-up to
//! deactivation, vaults, secrets and their versions, policies steering an agent, shares of every
//! recipient kind, org membership from invitation to removal, the audit trail, revocation.
//!
//! The script asks for what only a mailbox holds (`mailbox? invite ADDRESS` on stdout); this
//! test answers on its stdin from the outbox, as the mail relay would deliver it.
//!
//! `scripts/test.sh` installs the SDK into a venv and exports `OXVAULT_SDK_PYTHON`; without it
//! this test fails with a message rather than pass silently.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use oxvault_tests::{TestStack, repo_root};

/// Every step the script prints, in order; a step missing, added or out of order fails the test.
const STEPS: &[&str] = &[
    "signup",
    "login and me",
    "refresh refused without a refresh token",
    "api key client",
    "api key exchange and scoped keys",
    "api key revoke",
    "agent client with an ocv_ key (agent id resolved)",
    "agent client with an explicit agent id",
    "agent token exchange",
    "vaults and secrets",
    "secret versions and server-side rotation",
    "secret version disable",
    "secret read limit and expiry",
    "policies drive what an agent may do",
    "share link: create, access with passphrase, list, revoke",
    "share to an agent: inbound, accept, access",
    "share declined by its recipient",
    "share link used up, then deleted",
    "share kinds: ip allowlist, external email, creator",
    "agents: list and get",
    "agents: update",
    "agents: rotate key",
    "agents: delete",
    "secret expired",
    "secret delete",
    "vault delete",
    "org members",
    "org invite and join",
    "share to a user",
    "org member role change",
    "change password",
    "org remove member",
    "audit events and chain verification",
    "audit filters, pages and verification windows",
    "billing usage and history",
    "revoke token",
    "bad agent key refused",
];

/// How long the whole script may take before the test gives up on it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_sdk_works_unmodified() {
    let python = std::env::var("OXVAULT_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "OXVAULT_SDK_PYTHON is not set: it must name a python with `oneclaw` installed \
             (scripts/test.sh makes one from tests/sdk/requirements.txt)"
        )
    });
    let stack = TestStack::shared().await;
    let script = repo_root().join("tests/sdk/sdk_flow.py");

    let mut child = Command::new(python)
        .arg(script)
        .arg(stack.edge_base())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let mut stdin = child.stdin.take().expect("the script's stdin");
    let stdout = child.stdout.take().expect("the script's stdout");
    let mut stderr = child.stderr.take().expect("the script's stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // The script's output, answering its mailbox questions as they come.
    let mut transcript = String::new();
    let conversation = async {
        while let Some(line) = lines.recv().await {
            if let Some(address) = line.strip_prefix("mailbox? invite ") {
                let token = stack.invitation_token(address).await;
                writeln!(stdin, "{token}").expect("answer the script");
            } else if line.starts_with("mailbox? ") {
                // A mail this test cannot read: an empty answer fails the script with its name.
                writeln!(stdin).expect("answer the script");
            }
            transcript.push_str(&line);
            transcript.push('\n');
        }
    };
    let finished = tokio::time::timeout(SCRIPT_TIMEOUT, conversation)
        .await
        .is_ok();
    if !finished {
        let _ = child.kill();
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .expect("wait for python");
    let stderr = errors.join().unwrap_or_default();

    assert!(
        finished && status.success(),
        "the SDK flow failed{}:\n{transcript}\n{stderr}\nedge log:\n{}\norigin log:\n{}",
        if finished { "" } else { " (timed out)" },
        stack.edge_log(),
        stack.origin_log()
    );
    let done: Vec<&str> = transcript
        .lines()
        .filter_map(|line| line.strip_prefix("step ")?.strip_suffix(" ... ok"))
        .collect();
    assert_eq!(done, STEPS, "the steps the script reported:\n{transcript}");
}
