//! Health through the edge: healthy, HSM down (wrong PIN, no token yet, then recovered),
//! database down, origin down. SECURITY.md case 24 (its health half). The health routes are
//! public, so the edge limits them per address and the origin shares one probe among all
//! callers for two seconds.

use oxvault_core::health::{EdgeHealthResponse, HealthResponse, HealthStatus, OriginStatus};
use oxvault_tests::shares::in_an_hour;
use oxvault_tests::{SoftHsmToken, TestStack, client_from};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_healthy_stack_reports_healthy_through_the_edge() {
    let stack = TestStack::shared().await;

    let response = stack.get("/v1/health").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: EdgeHealthResponse = response.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Healthy);
    assert_eq!(body.origin.status, OriginStatus::Healthy);
    assert_eq!(body.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        body.origin.version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn the_hsm_probe_answers_ok_through_the_edge() {
    let stack = TestStack::shared().await;

    let response = stack.get("/v1/health/hsm").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    assert!(
        stack
            .origin_log()
            .contains("created the key-encryption key in the HSM"),
        "the first start creates the KEK in the fresh token"
    );
}

#[tokio::test]
async fn a_wrong_pin_makes_the_hsm_unavailable_and_health_degraded() {
    let stack = TestStack::builder()
        .origin(|settings| {
            settings.pin = "not-the-pin".to_owned();
        })
        .start()
        .await;

    let hsm = stack.get("/v1/health/hsm").await;
    assert_eq!(hsm.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        hsm.json::<Value>().await.unwrap(),
        json!({"status": "unavailable"})
    );

    let health = stack.get("/v1/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let body: EdgeHealthResponse = health.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Degraded);
    assert_eq!(body.origin.status, OriginStatus::Degraded);

    // The origin's own report, as a load balancer in front of it would read it.
    let direct: HealthResponse = stack
        .client
        .get(stack.origin_url("/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(direct.status, HealthStatus::Degraded);
}

#[tokio::test]
async fn an_origin_without_a_token_recovers_when_the_token_appears() {
    let stack = TestStack::builder()
        .token(SoftHsmToken::empty())
        .start()
        .await;

    let before = stack.get("/v1/health/hsm").await;
    assert_eq!(before.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: HealthResponse = stack.get("/v1/health").await.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Degraded);

    stack.own().token.init();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = stack.get("/v1/health/hsm").await.status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the origin did not recover after the token appeared (last {status}):\n{}",
            stack.origin_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let body: HealthResponse = stack.get("/v1/health").await.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn a_database_that_does_not_answer_makes_health_degraded() {
    let stack = TestStack::builder()
        .origin(|settings| {
            // Nothing listens on port 1: every connection attempt is refused.
            settings.database_url = "postgres://postgres@127.0.0.1:1/oxvault".to_owned();
            settings.migrate = false;
        })
        .start()
        .await;

    let body: EdgeHealthResponse = stack.get("/v1/health").await.json().await.unwrap();

    assert_eq!(body.status, HealthStatus::Degraded);
    assert_eq!(body.origin.status, OriginStatus::Degraded);
    // The HSM half is still fine: degraded names the database alone.
    assert_eq!(stack.get("/v1/health/hsm").await.status(), StatusCode::OK);
}

/// The origin down (issue 13's drill 5): the API answers 502 problems with `Retry-After`, the
/// share page a 503 that says to try again, health says degraded; when the origin is back on
/// its address, all three recover by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_origin_down_the_edge_answers_for_it_and_recovers_when_it_returns() {
    let mut stack = TestStack::start().await;
    let (_, share) = stack
        .share_new_secret(
            "down@example.com",
            "sk-down-test",
            json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()}),
        )
        .await;
    let page = format!("/s/{}", share["id"].as_str().unwrap());
    assert_eq!(stack.get(&page).await.status(), StatusCode::OK);
    stack.own_mut().origin.process().kill();

    let forwarded = stack.get("/v1/health/hsm").await;
    assert_eq!(forwarded.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        forwarded.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(forwarded.headers()["retry-after"], "2");
    let problem: Value = forwarded.json().await.unwrap();
    assert_eq!(problem["status"], 502);
    assert_eq!(problem["title"], "Bad Gateway");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:oxvault:problem:")
    );
    assert!(problem["detail"].is_string());

    let shown = stack.get(&page).await;
    assert_eq!(shown.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shown.headers()["retry-after"], "2");
    let html = shown.text().await.unwrap();
    assert!(html.contains("cannot be checked right now"), "{html}");

    let health = stack.get("/v1/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: EdgeHealthResponse = health.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Degraded);
    assert_eq!(body.origin.status, OriginStatus::Unreachable);

    tokio::task::block_in_place(|| stack.own_mut().origin.restart());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = stack.get("/v1/health").await.status();
        let page = stack.get(&page).await.status();
        let hsm = stack.get("/v1/health/hsm").await.status();
        if [health, page, hsm] == [StatusCode::OK; 3] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: health {health}, page {page}, hsm {hsm}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The public health routes cost the origin a database query and an HSM round trip each, so
/// the edge limits them per client address, in one count for both: past it, a 429 problem
/// with `Retry-After`; another address is not affected.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_health_checks_from_one_address_gets_429s() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_HEALTH_IP", "3/60");
        })
        .start()
        .await;
    let busy = client_from(31);
    for (path, remaining) in [
        ("/v1/health", "2"),
        ("/v1/health/hsm", "1"),
        ("/v1/health", "0"),
    ] {
        let response = busy.get(stack.edge_url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
    }
    for path in ["/v1/health", "/v1/health/hsm", "/v1/health"] {
        let refused = busy.get(stack.edge_url(path)).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["type"], "urn:oxvault:problem:too-many-requests");
    }
    let calm = client_from(32);
    let response = calm.get(stack.edge_url("/v1/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// However many health checks arrive at once, the origin probes the HSM once and shares the
/// answer for two seconds (straight at the origin: what it does when the edge's limit is not
/// in front of it). After the window the next check probes again.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_health_checks_share_one_hsm_probe() {
    let stack = TestStack::start().await;
    let before = stack.origin_counter("oxvault_hsm_calls_total").await;

    let started = Instant::now();
    let mut checks = tokio::task::JoinSet::new();
    for n in 0..60 {
        let path = if n % 2 == 0 {
            "/v1/health"
        } else {
            "/v1/health/hsm"
        };
        let request = stack.client.get(stack.origin_url(path));
        checks.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = checks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let burst = started.elapsed();
    let probes = stack.origin_counter("oxvault_hsm_calls_total").await - before;
    // One probe per started two-second window the burst spanned.
    let windows = burst.as_secs() / 2 + 1;
    assert!(
        (1..=windows).contains(&probes),
        "60 health checks in {burst:?} made {probes} HSM calls"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = stack.origin_counter("oxvault_hsm_calls_total").await;
    let body: HealthResponse = stack
        .client
        .get(stack.origin_url("/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body.status, HealthStatus::Healthy);
    assert_eq!(
        stack.origin_counter("oxvault_hsm_calls_total").await - before,
        1,
        "a stale answer is probed anew"
    );
}
