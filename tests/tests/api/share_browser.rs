//! The share page in a real browser (SECURITY 19): Debian's headless Chromium, driven by
//! `tests/browser/share_page.mjs` (playwright-core), opens `share_url` as a person would.
//! Loading the page — as a chat app's link previewer does — must not use up a view; only the
//! Reveal click does, once, and shows the value with a working Copy button. Screenshots land
//! in `target/e2e-artifacts/` and their paths are printed.

use std::path::PathBuf;

use oxvault_tests::TestStack;
use oxvault_tests::browser::{artifacts, run_script};
use oxvault_tests::shares::in_an_hour;
use reqwest::StatusCode;
use serde_json::{Value, json};

const VALUE: &str = "sk-browser-test-7f3a9c";
const PASSPHRASE: &str = "correct horse";

/// Runs the share page script on `url`; what it saw, as JSON.
async fn browse(url: &str, screenshots: PathBuf, passphrase: Option<&str>, reveal: bool) -> Value {
    let mut args = vec![
        "--url".to_owned(),
        url.to_owned(),
        "--screenshots".to_owned(),
    ];
    args.push(screenshots.display().to_string());
    if let Some(passphrase) = passphrase {
        args.extend(["--passphrase".to_owned(), passphrase.to_owned()]);
    }
    if !reveal {
        args.push("--no-reveal".to_owned());
    }
    run_script("share_page.mjs", args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_costs_no_view_and_reveal_costs_exactly_one() {
    let stack = TestStack::shared().await;
    let (token, share) = stack
        .share_new_secret(
            &stack.email("browser-owner@example.com"),
            VALUE,
            json!({
                "recipient_type": "anyone_with_link",
                "expires_at": in_an_hour(),
                "max_access_count": 3,
                "passphrase": PASSPHRASE,
            }),
        )
        .await;
    let id = share["id"].as_str().expect("share id");
    let url = share["share_url"].as_str().expect("share_url");
    assert_eq!(url, format!("{}/s/{id}", stack.edge_base()));

    // Link previewers fetch the URL, sometimes more than once.
    for _ in 0..3 {
        let response = stack.client.get(url).send().await.expect("preview fetch");
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.expect("page");
        assert!(
            !html.contains(VALUE),
            "the page itself must not carry the value"
        );
    }
    let seen = browse(url, artifacts("share-page-no-reveal"), None, false).await;
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["passphrase_field"], true, "{seen}");
    assert_eq!(stack.share_access_count(&token, id).await, 0);

    // A wrong passphrase shows the uniform message and costs nothing.
    let seen = browse(url, artifacts("share-page-wrong"), Some("wrong"), true).await;
    assert!(seen["revealed_value"].is_null(), "{seen}");
    assert_ne!(seen["revealed_state"], seen["loaded_state"], "{seen}");
    assert_eq!(stack.share_access_count(&token, id).await, 0);

    let seen = browse(url, artifacts("share-page-reveal"), Some(PASSPHRASE), true).await;
    assert_eq!(seen["revealed_value"], VALUE, "{seen}");
    assert_eq!(seen["clipboard"], VALUE, "{seen}");
    assert_eq!(seen["console_errors"], json!([]), "{seen}");
    assert_eq!(stack.share_access_count(&token, id).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_link_shows_the_unavailable_state_without_a_reveal_button() {
    let stack = TestStack::shared().await;
    let (token, share) = stack
        .share_new_secret(
            &stack.email("browser-owner@example.com"),
            VALUE,
            json!({
                "recipient_type": "anyone_with_link",
                "expires_at": in_an_hour(),
                "max_access_count": 1,
            }),
        )
        .await;
    let id = share["id"].as_str().expect("share id");
    let url = share["share_url"].as_str().expect("share_url");

    let response = stack
        .client
        .get(stack.edge_url(&format!("/v1/share/{id}")))
        .send()
        .await
        .expect("access");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(stack.share_access_count(&token, id).await, 1);

    let seen = browse(url, artifacts("share-page-used-up"), None, true).await;
    assert_eq!(seen["reveal_button"], false, "{seen}");
    assert!(seen["revealed_value"].is_null(), "{seen}");
    let state = seen["loaded_state"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        state.contains("expired") || state.contains("no longer") || state.contains("used"),
        "{seen}"
    );
}
