//! The secret request page in a real browser: Debian's headless Chromium, driven by
//! `tests/browser/request_page.mjs`, opens `request_url` as the person asked would. Loading
//! the page (as a link previewer does) changes nothing; submitting stores the value once, the
//! asking agent then reads it through its policy, and a second visit finds the link closed.
//! Screenshots land in `target/e2e-artifacts/`.

use oxvault_tests::TestStack;
use oxvault_tests::browser::{artifacts, run_script};
use oxvault_tests::shares::rfc3339_in;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const VALUE: &str = "ghp_typed-by-a-person-51c2";

async fn visit(url: &str, name: &str, value: Option<&str>) -> Value {
    let mut args = vec![
        "--url".to_owned(),
        url.to_owned(),
        "--name".to_owned(),
        name.to_owned(),
    ];
    args.extend([
        "--screenshots".to_owned(),
        artifacts(name).display().to_string(),
    ]);
    if let Some(value) = value {
        args.extend([
            "--value".to_owned(),
            value.to_owned(),
            "--type".to_owned(),
            "api_key".to_owned(),
        ]);
    }
    run_script("request_page.mjs", args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_fills_the_page_once_and_the_agent_reads_the_value() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("page-owner@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "asked").await;
    let (agent_id, agent) = stack.create_agent(&owner.access_token, "deploy-bot").await;
    stack
        .grant_agent(
            &owner.access_token,
            &vault,
            &agent_id,
            "ci/**",
            &["read", "write"],
        )
        .await;
    let (status, created) = stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-requests"),
            &agent,
            Some(
                json!({"path": "ci/github-token", "description": "to push release tags",
                        "type": "password"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    let url = created["request_url"].as_str().expect("request_url");

    // A preview: the page loads, shows what is asked, and nothing changes.
    let seen = visit(url, "request-page-preview", None).await;
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["path"], "ci/github-token", "{seen}");
    assert_eq!(seen["description"], "to push release tags", "{seen}");
    assert_eq!(seen["selected_type"], "password", "{seen}");
    assert_eq!(seen["form"], true, "{seen}");
    assert!(
        seen["loaded_state"]
            .as_str()
            .unwrap_or_default()
            .contains("deploy-bot"),
        "{seen}"
    );

    let (_, pending) = stack
        .call(
            Method::GET,
            &format!("/v1/secret-requests/{id}"),
            &agent,
            None,
        )
        .await;
    assert_eq!(pending["status"], "pending", "{pending}");

    // The person types the value, picks a type and submits.
    let seen = visit(url, "request-page-submit", Some(VALUE)).await;
    assert_eq!(seen["form_after"], false, "{seen}");
    assert_eq!(seen["value_left_in_page"], "", "{seen}");
    assert!(
        seen["submitted_state"]
            .as_str()
            .unwrap_or_default()
            .contains("Stored"),
        "{seen}"
    );
    assert_eq!(seen["console_errors"], json!([]), "{seen}");

    let (status, secret) = stack.get_secret(&agent, &vault, "ci/github-token").await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["value"], VALUE);
    assert_eq!(secret["type"], "api_key", "the person's choice wins");

    // A second visit finds the link closed: no form, nothing written.
    let seen = visit(url, "request-page-closed", Some("second value")).await;
    assert_eq!(seen["status"], 404, "{seen}");
    assert_eq!(seen["form"], false, "{seen}");
    let (_, secret) = stack.get_secret(&agent, &vault, "ci/github-token").await;
    assert_eq!(secret["version"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_link_shows_the_closed_page() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("page-expiry@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "lapsed").await;
    let (status, created) = stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-requests"),
            &owner.access_token,
            Some(json!({"path": "x", "description": "soon gone", "expires_at": rfc3339_in(1_000)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let url = created["request_url"].as_str().expect("request_url");
    let seen = visit(url, "request-page-expired", Some(VALUE)).await;
    assert_eq!(seen["status"], 404, "{seen}");
    assert_eq!(seen["form"], false, "{seen}");
    assert!(
        seen["loaded_state"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer open"),
        "{seen}"
    );
}
