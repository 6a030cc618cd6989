//! The API contract: schemathesis (pinned in tests/sdk/requirements.txt) reads the document the
//! edge serves at `/v1/openapi.json` and fuzzes every operation through the edge with every
//! check, once as an agent and once as the org's owner. Any finding fails the test: a 5xx, a
//! status or content type the document does not declare, a body off its schema, a request the
//! schema allows but the server refuses (or the reverse), a method answered without 405 and
//! `Allow`.
//!
//! The settings live in `tests/contract/schemathesis.toml`. Bounded by default (a few examples
//! per operation, a fixed seed, so CI is repeatable); `OXVAULT_CONTRACT_EXAMPLES` and
//! `OXVAULT_CONTRACT_SEED` (a number, or `random`) make a longer or different run.
//!
//! `tests/contract/baseline.json` lists the findings accepted for now, each with the reason
//! (schemathesis's baseline: a finding in it does not fail the run, any other does). It only
//! shrinks: `OXVAULT_CONTRACT_RECORD=1` writes this run's findings into it, to be reviewed
//! entry by entry before a commit.

use std::path::PathBuf;
use std::process::Command;

use oxvault_tests::{TestStack, repo_root};

/// Examples per operation and phase when `OXVAULT_CONTRACT_EXAMPLES` is not set.
const DEFAULT_EXAMPLES: &str = "8";

/// The seed when `OXVAULT_CONTRACT_SEED` is not set: the same cases on every CI run.
const DEFAULT_SEED: &str = "20261203";

/// The `st` command beside the python that `scripts/test.sh` made (`OXVAULT_SDK_PYTHON`).
fn schemathesis() -> PathBuf {
    let python = std::env::var("OXVAULT_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "OXVAULT_SDK_PYTHON is not set: it must name the python of the venv that \
             scripts/test.sh makes from tests/sdk/requirements.txt (with schemathesis)"
        )
    });
    let st = PathBuf::from(python).with_file_name("st");
    assert!(
        st.is_file(),
        "{} missing: is schemathesis in tests/sdk/requirements.txt?",
        st.display()
    );
    st
}

/// Runs schemathesis through the edge with `token` as the bearer of every secured operation;
/// panics with its report unless it found nothing.
async fn fuzz(stack: &TestStack, who: &str, token: &str, exclude: &[&str], phases: &str) {
    let st = schemathesis();
    let examples =
        std::env::var("OXVAULT_CONTRACT_EXAMPLES").unwrap_or_else(|_| DEFAULT_EXAMPLES.into());
    let seed = std::env::var("OXVAULT_CONTRACT_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let edge = stack.edge_base().to_owned();
    // Its example database and reports stay out of the checkout.
    let work = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(st);
    command
        .current_dir(work.path())
        .env("OXVAULT_CONTRACT_TOKEN", token)
        .arg("--config-file")
        .arg(repo_root().join("tests/contract/schemathesis.toml"))
        .arg("run")
        .arg(format!("{edge}/v1/openapi.json"))
        .args(["--url", &edge, "--max-examples", &examples, "--no-color"])
        .args(["--generation-database", "none", "--phases", phases]);
    if seed != "random" {
        command.args(["--seed", &seed]);
    }
    command
        .arg("--baseline")
        .arg(repo_root().join("tests/contract/baseline.json"));
    if recording() {
        command.arg("--baseline-update");
    }
    for operation_id in exclude {
        command.args(["--exclude-operation-id", operation_id]);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("run st"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems as the {who}:\n{stdout}\n{}\norigin log (tail):\n{}",
        String::from_utf8_lossy(&output.stderr),
        tail(&stack.origin_log(), 60)
    );
    println!("schemathesis as the {who}:\n{stdout}");
}

/// Whether this run writes its findings into the baseline (`OXVAULT_CONTRACT_RECORD=1`).
fn recording() -> bool {
    std::env::var("OXVAULT_CONTRACT_RECORD").as_deref() == Ok("1")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_difference_between_the_document_and_the_server() {
    let stack = TestStack::shared().await;
    // The agent's org and the owner's are two, so the two runs go side by side: the owner's
    // may rotate keys, deactivate agents and delete vaults, none of them the agent's.
    let (agents_owner, vault, _) = stack
        .owner_with_secret(
            &stack.email("contract-agents@example.com"),
            "db/password",
            "contract-value",
        )
        .await;
    let (agent_id, agent_token) = stack
        .create_agent(&agents_owner.access_token, "contract")
        .await;
    stack
        .grant_agent(
            &agents_owner.access_token,
            &vault,
            &agent_id,
            "**",
            &["read", "write"],
        )
        .await;
    let (owner, _, _) = stack
        .owner_with_secret(
            &stack.email("contract-owner@example.com"),
            "db/password",
            "contract-value",
        )
        .await;

    // The agent is refused most of the API (403) by its role; random and stateful cases are
    // enough there, the boundary-value (coverage) phase runs as the owner, who reaches it all.
    let as_agent = fuzz(
        &stack,
        "agent",
        &agent_token,
        &[],
        "examples,fuzzing,stateful",
    );
    // Signing out would end the session the rest of the run uses; the e2e suite covers it.
    let as_owner = fuzz(
        &stack,
        "owner",
        &owner.access_token,
        &["logout"],
        "examples,coverage,fuzzing,stateful",
    );
    if recording() {
        // One writer of the baseline file at a time.
        as_agent.await;
        as_owner.await;
    } else {
        tokio::join!(as_agent, as_owner);
    }
}
