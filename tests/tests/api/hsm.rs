//! The HSM under the secrets: an outage while the origin runs (reads and writes answer 503,
//! nothing is written, service resumes by itself), and KEK rotation with `rotate-kek` while
//! the origin serves (SECURITY.md cases 14 and 24).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use oxvault_tests::{Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

async fn put(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
    value: &str,
) -> (StatusCode, Value) {
    stack
        .put_secret(&session.access_token, vault, path, json!({"value": value}))
        .await
}

/// A stored secret version: its blob and the KEK id column beside it.
#[derive(Debug, Clone)]
struct Stored {
    sealed: Vec<u8>,
    kek_id: Vec<u8>,
}

async fn stored(stack: &TestStack) -> BTreeMap<(Uuid, i32), Stored> {
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let rows: Vec<(Uuid, i32, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT secret_id, version, sealed, kek_id FROM secret_versions")
            .fetch_all(&mut db)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(secret_id, version, sealed, kek_id)| {
            ((secret_id, version), Stored { sealed, kek_id })
        })
        .collect()
}

/// The parts of a blob, read from the documented layout (format | kek_id_len | kek_id |
/// wrapped_len (2, BE) | wrapped | nonce | ciphertext), independently of the origin's code:
/// the format byte, the KEK id, and the nonce with the ciphertext.
fn split_blob(sealed: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
    let kek_len = usize::from(sealed[1]);
    let kek_id = sealed[2..2 + kek_len].to_vec();
    let at = 2 + kek_len;
    let wrapped_len = usize::from(u16::from_be_bytes([sealed[at], sealed[at + 1]]));
    let body = sealed[at + 2 + wrapped_len..].to_vec();
    (sealed[0], kek_id, body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `GET path` answers 200, or fails after `within`.
async fn wait_readable(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = stack.get_secret(&session.access_token, vault, path).await;
        if status == StatusCode::OK {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {status} {body}:\n{}",
            stack.origin_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `oxvault-origin rotate-kek ARGS` against the stack's database and token; returns its
/// summary (the last stdout line) after checking it succeeded.
async fn rotate_kek(stack: &TestStack, args: &[&str]) -> Value {
    let mut command = stack.own().origin.subcommand("rotate-kek", args);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run rotate-kek");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rotate-kek {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("a summary line");
    let summary: Value = serde_json::from_str(last).expect("a JSON summary");
    for line in stdout.lines() {
        let event: Value = serde_json::from_str(line).expect("every line is JSON");
        assert!(event.is_object(), "{line}");
    }
    summary["kek_rotation"].clone()
}

async fn count(stack: &TestStack, sql: &'static str) -> i64 {
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap()
}

#[tokio::test]
async fn with_the_hsm_gone_secrets_answer_503_nothing_is_written_and_service_resumes() {
    let stack = TestStack::start().await;
    // Sign up (tokens are signed in the HSM) and warm the edge's key cache while it is up.
    let owner = stack.signup(&stack.email("outage@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "prod").await;
    let (status, body) = put(&stack, &owner, &vault, "db/password", "before-outage").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A secret that may be read once: an outage must not use up its one view.
    let (status, body) = stack
        .call(
            Method::PUT,
            &format!("/v1/vaults/{vault}/secrets/once"),
            &owner.access_token,
            Some(json!({"value": "single-view", "max_access_count": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rows_before = stored(&stack).await;

    stack.own().token.take_away();

    let canary = "canary-during-outage-5d1e";
    for (method, path) in [
        (Method::PUT, "db/password"),
        (Method::PUT, "brand/new"),
        (Method::GET, "db/password"),
        (Method::GET, "once"),
    ] {
        let mut request = stack.request(
            method.clone(),
            &format!("/v1/vaults/{vault}/secrets/{path}"),
            &owner.access_token,
        );
        if method == Method::PUT {
            request = request.json(&json!({"value": canary}));
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path} with the HSM gone"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 503, "{problem}");
        assert_eq!(problem["title"], "Service Unavailable");
        assert!(!problem.to_string().contains(canary));
    }
    assert_eq!(
        stack.get("/v1/health/hsm").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Nothing was written: no version, no new secret, no version number used up, and the
    // value is nowhere in the database or the log.
    let rows_during = stored(&stack).await;
    assert_eq!(
        rows_during.keys().collect::<Vec<_>>(),
        rows_before.keys().collect::<Vec<_>>()
    );
    assert_eq!(count(&stack, "SELECT count(*) FROM secrets").await, 2);
    assert_eq!(
        count(&stack, "SELECT max(current_version)::int8 FROM secrets").await,
        1
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM secret_versions WHERE position('canary' in encode(sealed, 'escape')) > 0",
        )
        .await,
        0
    );
    assert!(!stack.origin_log().contains(canary));

    stack.own().token.bring_back();

    let body = wait_readable(
        &stack,
        &owner,
        &vault,
        "db/password",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(body["value"], "before-outage");
    let (status, body) = put(&stack, &owner, &vault, "db/password", "after-outage").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["version"], 2,
        "the failed writes used no version number"
    );
    let (_, body) = stack
        .get_secret(&owner.access_token, &vault, "db/password")
        .await;
    assert_eq!(body["value"], "after-outage");
    let (status, body) = stack.get_secret(&owner.access_token, &vault, "once").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the failed read used up no view: {body}"
    );
    assert_eq!(body["value"], "single-view");
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "once")
            .await
            .0,
        StatusCode::GONE
    );
    // The origin reuses a health probe's answer for two seconds: the recovery shows within
    // that window of the last failed probe.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.get("/v1/health/hsm").await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the HSM health did not recover");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn rotate_kek_rewraps_every_version_leaves_ciphertexts_alone_and_the_origin_follows() {
    let stack = TestStack::builder()
        .origin_env("OXVAULT_HSM_KEK_REFRESH_SECS", "2")
        .start()
        .await;
    let owner = stack.signup(&stack.email("rotate@example.com")).await;
    let prod = stack.create_vault(&owner.access_token, "prod").await;
    let staging = stack.create_vault(&owner.access_token, "staging").await;
    let mut expected = BTreeMap::new();
    for i in 0..9 {
        let (vault, path) = if i % 3 == 0 {
            (&staging, format!("app/key-{i}"))
        } else {
            (&prod, format!("svc/{i}/token"))
        };
        for version in 1..=(1 + i % 2) {
            let value = format!("value-{i}-v{version}");
            let (status, body) = put(&stack, &owner, vault, &path, &value).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            expected.insert((vault.clone(), path.clone()), value);
        }
    }
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{prod}/secrets/svc/1/token"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expected.remove(&(prod.clone(), "svc/1/token".to_owned()));
    let before = stored(&stack).await;
    let old_kek = before.values().next().unwrap().kek_id.clone();
    assert!(before.values().all(|row| row.kek_id == old_kek));

    // Small batches, so the run takes several, deleted secrets included.
    let summary = rotate_kek(&stack, &["--batch", "4"]).await;

    assert_eq!(summary["created_kek"], true, "{summary}");
    assert_eq!(summary["rewrapped"], before.len(), "{summary}");
    assert_eq!(summary["resealed"], 0);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["remaining"], 0);
    let new_kek = summary["kek_id"].as_str().unwrap().to_owned();
    assert!(new_kek > hex(&old_kek), "the KEK id advanced");
    let after = stored(&stack).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (key, row) in &after {
        let (format, blob_kek, body) = split_blob(&row.sealed);
        let (_, old_blob_kek, old_body) = split_blob(&before[key].sealed);
        assert_eq!(format, 0x02, "{key:?}");
        assert_eq!(hex(&row.kek_id), new_kek, "{key:?}: the column moved");
        assert_eq!(blob_kek, row.kek_id, "{key:?}: the blob names the same KEK");
        assert_eq!(old_blob_kek, old_kek);
        assert_eq!(
            body, old_body,
            "{key:?}: nonce and ciphertext are untouched"
        );
        assert_ne!(
            row.sealed, before[key].sealed,
            "{key:?}: the wrapped key changed"
        );
    }

    // The running origin was not restarted: within its listing interval it wraps new
    // versions under the new KEK (no read has shown it the new id yet).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, written) = put(&stack, &owner, &prod, "after/rotation", "fresh").await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    expected.insert(
        (prod.clone(), "after/rotation".to_owned()),
        "fresh".to_owned(),
    );
    let newest = stored(&stack).await;
    let fresh = newest
        .iter()
        .find(|(key, _)| !after.contains_key(key))
        .map(|(_, row)| row)
        .unwrap();
    assert_eq!(hex(&fresh.kek_id), new_kek, "new writes use the new KEK");
    for ((vault, path), value) in &expected {
        let (status, body) = stack.get_secret(&owner.access_token, vault, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["value"], *value);
    }

    // Rerunning is idempotent: nothing is left to move.
    let again = rotate_kek(&stack, &["--resume"]).await;
    assert_eq!(again["created_kek"], false);
    assert_eq!(again["kek_id"], new_kek.as_str());
    assert_eq!(again["rewrapped"], 0);
    assert_eq!(stored(&stack).await.len(), newest.len());

    // Retiring destroys the old KEK; everything still reads and writes.
    let retired = rotate_kek(&stack, &["--resume", "--retire-old", "--settle-secs", "1"]).await;
    assert_eq!(retired["retired"], json!([hex(&old_kek)]), "{retired}");
    for ((vault, path), value) in &expected {
        let (status, body) = stack.get_secret(&owner.access_token, vault, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["value"], *value);
    }
    let (status, body) = put(&stack, &owner, &prod, "after/retire", "still").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(stack.get("/v1/health/hsm").await.status(), StatusCode::OK);
    assert_eq!(
        count(&stack, "SELECT count(DISTINCT kek_id) FROM secret_versions").await,
        1
    );
}

#[tokio::test]
async fn a_rotation_with_retirement_under_live_writes_loses_nothing() {
    // The origin lists KEKs only once a minute here, and reads only what it just wrote: it
    // keeps wrapping under the old KEK while the rotation runs, until the fence makes the
    // token refuse it (or, rarely, it reads a row the rotation just moved).
    let stack = TestStack::start().await;
    let owner = stack.signup(&stack.email("busy@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "busy").await;
    for i in 0..20 {
        let (status, body) = put(&stack, &owner, &vault, &format!("seed/{i}"), "seed").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let old_kek = stored(&stack).await.values().next().unwrap().kek_id.clone();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let stack = &stack;
        let owner = owner.clone();
        let vault = vault.clone();
        async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let path = format!("live/{i}");
                let value = format!("live-{i}");
                let (status, body) = put(stack, &owner, &vault, &path, &value).await;
                assert_eq!(
                    status,
                    StatusCode::CREATED,
                    "write {i} during rotation: {body}"
                );
                let (status, body) = stack.get_secret(&owner.access_token, &vault, &path).await;
                assert_eq!(status, StatusCode::OK, "read during rotation: {body}");
                acknowledged.push((path, value));
                i += 1;
            }
            acknowledged
        }
    };
    let rotation = async {
        let summary = rotate_kek(
            &stack,
            &["--batch", "5", "--retire-old", "--settle-secs", "2"],
        )
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        summary
    };
    let (acknowledged, summary) = tokio::join!(writer, rotation);

    assert!(!acknowledged.is_empty());
    assert_eq!(summary["remaining"], 0, "{summary}");
    assert_eq!(summary["retired"], json!([hex(&old_kek)]), "{summary}");
    let new_kek = summary["kek_id"].as_str().unwrap();
    assert!(
        stored(&stack)
            .await
            .values()
            .all(|row| hex(&row.kek_id) == new_kek)
    );
    for (path, value) in &acknowledged {
        let (status, body) = stack.get_secret(&owner.access_token, &vault, path).await;
        assert_eq!(status, StatusCode::OK, "{path} was acknowledged: {body}");
        assert_eq!(body["value"], *value);
    }
    let (status, body) = put(&stack, &owner, &vault, "after", "works").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        stack
            .origin_logged("wrapping under a new current KEK")
            .await,
        "the running origin moved to the new KEK"
    );
}

/// SECURITY.md case 24, a module that is not there at start: the origin starts anyway, says
/// why in its log, reports the HSM unavailable and answers 503 problems where it is needed.
#[tokio::test]
async fn a_missing_pkcs11_module_at_start_is_a_clear_503_not_a_crash() {
    let missing = "/nonexistent/oxvault-test/libpkcs11-missing.so";
    let stack = TestStack::builder()
        .origin_env("OXVAULT_HSM_MODULE", missing)
        .start()
        .await;

    let hsm = stack.get("/v1/health/hsm").await;
    assert_eq!(hsm.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = hsm.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    let health: serde_json::Value = stack.get("/v1/health").await.json().await.unwrap();
    assert_eq!(health["status"], "degraded");

    let signup = stack
        .post_json(
            "/v1/auth/signup",
            &serde_json::json!({"email": stack.email("early@example.com"), "password": "long enough password"}),
        )
        .await;
    assert_eq!(signup.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(signup.headers()["content-type"], "application/problem+json");
    assert!(
        stack.origin_logged(&format!("cannot load {missing}")).await,
        "the log says which module is missing"
    );
}
