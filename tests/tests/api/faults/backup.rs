//! Backup and restore: a `pg_dump` of a live stack's database restored into a new database.
//! An origin on the copy with the same HSM token opens every secret version and its audit
//! chain verifies; an origin on the copy with another token opens none: every read fails
//! closed with a 503 problem, never a value or garbage.

use oxvault_tests::{Origin, OriginSettings, SoftHsmToken, TestDatabase, TestStack, pg_tool};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Two versions of each of three secrets: (path, version, value), every one kept.
async fn write_secrets(stack: &TestStack, token: &str, vault: &str) -> Vec<(String, u32, String)> {
    let mut written = Vec::new();
    for secret in 0..3 {
        let path = format!("backup/{secret}");
        for version in 1..=2 {
            let value = format!("value-{secret}-{version}-{}", uuid::Uuid::new_v4().simple());
            let (status, body) = stack
                .put_secret(token, vault, &path, json!({"value": value}))
                .await;
            assert!(status.is_success(), "{path}: {status} {body}");
            written.push((path.clone(), version, value));
        }
    }
    written
}

/// `pg_dump` of `from` (custom format), `pg_restore` into `to`: as an operator backs up and
/// restores, with the server's own tools.
fn dump_and_restore(from: &str, to: &str) {
    let dir = tempfile::tempdir().expect("dump dir");
    let dump = dir.path().join("oxvault.dump");
    let dump = dump.to_str().expect("UTF-8 path");
    for (tool, args) in [
        ("pg_dump", vec!["--format=custom", "--file", dump, from]),
        (
            "pg_restore",
            vec!["--no-owner", "--exit-on-error", "-d", to, dump],
        ),
    ] {
        let out = std::process::Command::new(pg_tool(tool))
            .args(&args)
            .output()
            .unwrap_or_else(|err| panic!("{tool} could not run: {err}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn origin_on(database: &TestDatabase, token: &SoftHsmToken) -> Origin {
    let settings = OriginSettings::new(database.url(), token);
    tokio::task::spawn_blocking(move || Origin::start(&settings))
        .await
        .expect("origin start")
}

/// `GET path` on `origin` directly, as the holder of `token`.
async fn get(origin: &Origin, token: &str, path: &str) -> (StatusCode, String) {
    let response = oxvault_tests::client()
        .get(format!("{}{path}", origin.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the origin answers");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

fn version_path(vault: &str, path: &str, version: u32) -> String {
    format!("/v1/vaults/{vault}/secret-version/{path}/{version}")
}

#[tokio::test]
async fn a_restored_dump_opens_with_the_same_token_and_fails_closed_with_another() {
    let stack = TestStack::start().await;
    let email = stack.email("backup@example.com");
    let owner = stack.signup(&email).await;
    let vault = stack.create_vault(&owner.access_token, "backup").await;
    let written = write_secrets(&stack, &owner.access_token, &vault).await;

    let copy = TestDatabase::create().await;
    let (from, to) = (stack.database_url().to_owned(), copy.url().to_owned());
    tokio::task::spawn_blocking(move || dump_and_restore(&from, &to))
        .await
        .expect("dump and restore");

    // The same token: the owner's token is still good (same signing key), every version opens.
    let restored = origin_on(&copy, &stack.own().token).await;
    for (path, version, value) in &written {
        let (status, body) = get(
            &restored,
            &owner.access_token,
            &version_path(&vault, path, *version),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path} v{version}: {body}");
        let body: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body["value"], value.as_str(), "{path} v{version}");
    }
    let (status, verdict) = get(&restored, &owner.access_token, "/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    let verdict: Value = serde_json::from_str(&verdict).expect("JSON");
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
    drop(restored);

    // Another token holds none of the keys: the old access token no longer verifies, and a
    // fresh login's reads are refused, each with a problem body and never the value.
    let other_token = SoftHsmToken::initialized();
    let stranger = origin_on(&copy, &other_token).await;
    let (status, _) = get(&stranger, &owner.access_token, "/v1/auth/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let login = oxvault_tests::client()
        .post(format!("{}/v1/auth/token", stranger.url()))
        .json(&json!({"email": email, "password": oxvault_tests::PASSWORD}))
        .send()
        .await
        .expect("the origin answers");
    assert_eq!(login.status(), StatusCode::OK);
    let session: Value = login.json().await.expect("login body");
    let token = session["access_token"].as_str().expect("access token");
    for (path, version, value) in &written {
        let (status, body) = get(&stranger, token, &version_path(&vault, path, *version)).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} v{version}: {body}"
        );
        assert!(!body.contains(value.as_str()), "{body}");
        let problem: Value = serde_json::from_str(&body).expect("a problem body");
        assert_eq!(problem["status"], 503, "{problem}");
    }
    assert!(
        stranger
            .logged("a wrapped key names a KEK the token does not hold")
            .await,
        "{}",
        stranger.log_text()
    );
}
