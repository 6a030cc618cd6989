//! Two origins behind one edge (`ORIGIN_URL` lists both; the edge takes them in turn), on one
//! database and one HSM token: nothing that must hold across processes lives in one of them.
//! Share view counts stay exact under concurrent reads, a refresh token replayed at the other
//! origin revokes the family, the audit chain stays one gapless chain, the edge's rate limits
//! stay exact, and a KEK rotation run beside them is followed by both.

use std::time::Duration;

use futures_util::future::join_all;
use oxvault_tests::shares::in_an_hour;
use oxvault_tests::{Origin, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// Requests that reached `origin`, from its log.
fn requests_served(origin: &Origin) -> usize {
    origin
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "request finished")
        .count()
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_origins_behind_one_edge_keep_every_cross_process_guarantee() {
    let stack = TestStack::builder()
        .origins(2)
        // Both origins list the KEKs every second, so both follow a rotation quickly.
        .origin_env("OXVAULT_HSM_KEK_REFRESH_SECS", "1")
        .edge(|edge| {
            edge.var("RATE_LIMIT_LOGIN_IDENTITY", "5/300");
        })
        .start()
        .await;
    let (first, second) = (&stack.own().origin, &stack.own().other_origins[0]);
    let client = oxvault_tests::client();

    // A link good for 5 views, read 40 times at once through the edge: exactly 5 values.
    let (owner, vault, secret_id) = stack
        .owner_with_secret("two@example.com", "db/password", "sk-two-origins")
        .await;
    let token = owner.access_token.clone();
    let (status, share) = stack
        .create_share(
            &token,
            &secret_id,
            json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour(),
                   "max_access_count": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let url = stack.edge_url(&format!("/v1/share/{}", share["id"].as_str().unwrap()));
    let reads = join_all((0..40).map(|_| client.get(&url).send())).await;
    let statuses: Vec<u16> = reads
        .into_iter()
        .map(|read| read.expect("an answer").status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 404].contains(s)),
        "{statuses:?}"
    );
    assert!(
        requests_served(first) > 0 && requests_served(second) > 0,
        "the edge sent everything to one origin"
    );

    // A refresh at one origin, its replay at the other: the whole family is revoked (a
    // session of its own, so the owner's stays usable).
    let session = stack.login("two@example.com").await;
    let (status, rotated) = post(
        &client,
        format!("{}/v1/auth/refresh", first.url()),
        json!({"refresh_token": session.refresh_token}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, _) = post(
        &client,
        format!("{}/v1/auth/refresh", second.url()),
        json!({"refresh_token": session.refresh_token}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the replay was accepted");
    let (status, _) = post(
        &client,
        format!("{}/v1/auth/refresh", first.url()),
        json!({"refresh_token": rotated["refresh_token"]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the family outlived the replay"
    );

    // The edge's limit counts one identity across both origins: 8 tries at once, 5 through.
    let tries = join_all((0..8).map(|_| {
        client
            .post(stack.edge_url("/v1/auth/token"))
            .json(&json!({"email": "limited@example.com", "password": "wrong password"}))
            .send()
    }))
    .await;
    let mut statuses: Vec<u16> = tries
        .into_iter()
        .map(|tried| tried.expect("an answer").status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);

    // A KEK rotation run beside both: new writes through the edge, at both origins, go under
    // the new KEK, and every earlier version was moved to it.
    let out = tokio::task::block_in_place(|| first.subcommand("rotate-kek", &[]).output())
        .expect("run rotate-kek");
    assert!(
        out.status.success(),
        "rotate-kek failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for n in 0..4 {
        let (status, body) = stack
            .put_secret(&token, &vault, &format!("after/{n}"), json!({"value": "v"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let keks: i64 = sqlx::query_scalar("SELECT count(DISTINCT kek_id) FROM secret_versions")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(
        keks, 1,
        "versions under more than one KEK after the rotation"
    );

    // One chain, whoever appended: gapless sequence numbers, and it verifies.
    let (count, last): (i64, i64) = sqlx::query_as(
        "SELECT count(*), max(seq) FROM audit_events WHERE chain_id = \
         (SELECT org_id FROM vaults WHERE id = $1::uuid)",
    )
    .bind(&vault)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(count, last, "gaps in the org's chain");
    let (status, verdict) = stack
        .call(Method::GET, "/v1/audit/verify", &token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
}
