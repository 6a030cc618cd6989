//! Health through the edge: healthy, HSM down (wrong PIN, no token yet, then recovered),
//! database down, origin down. SECURITY.md case 24 (its health half).

use oxvault_core::health::{EdgeHealthResponse, HealthResponse, HealthStatus, OriginStatus};
use oxvault_tests::{SoftHsmToken, TestStack};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_healthy_stack_reports_healthy_through_the_edge() {
    let stack = TestStack::start().await;

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
    let stack = TestStack::start().await;

    let response = stack.get("/v1/health/hsm").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    assert!(
        stack
            .origin
            .log_text()
            .contains("created the key-encryption key in the HSM"),
        "the first start creates the KEK in the fresh token"
    );
}

#[tokio::test]
async fn a_wrong_pin_makes_the_hsm_unavailable_and_health_degraded() {
    let stack = TestStack::start_with(SoftHsmToken::initialized(), |settings| {
        settings.pin = "not-the-pin".to_owned();
    })
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
    let stack = TestStack::start_with(SoftHsmToken::empty(), |_| {}).await;

    let before = stack.get("/v1/health/hsm").await;
    assert_eq!(before.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: HealthResponse = stack.get("/v1/health").await.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Degraded);

    stack.token.init();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = stack.get("/v1/health/hsm").await.status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the origin did not recover after the token appeared (last {status}):\n{}",
            stack.origin.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let body: HealthResponse = stack.get("/v1/health").await.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn a_database_that_does_not_answer_makes_health_degraded() {
    let stack = TestStack::start_with(SoftHsmToken::initialized(), |settings| {
        // Nothing listens on port 1: every connection attempt is refused.
        settings.database_url = "postgres://postgres@127.0.0.1:1/oxvault".to_owned();
        settings.migrate = false;
    })
    .await;

    let body: EdgeHealthResponse = stack.get("/v1/health").await.json().await.unwrap();

    assert_eq!(body.status, HealthStatus::Degraded);
    assert_eq!(body.origin.status, OriginStatus::Degraded);
    // The HSM half is still fine: degraded names the database alone.
    assert_eq!(stack.get("/v1/health/hsm").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_the_origin_down_the_edge_answers_with_its_own_json_errors() {
    let mut stack = TestStack::start().await;
    stack.origin.process().kill();

    let forwarded = stack.get("/v1/health/hsm").await;
    assert_eq!(forwarded.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        forwarded.headers()["content-type"],
        "application/problem+json"
    );
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

    let health = stack.get("/v1/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: EdgeHealthResponse = health.json().await.unwrap();
    assert_eq!(body.status, HealthStatus::Degraded);
    assert_eq!(body.origin.status, OriginStatus::Unreachable);
}
