//! The origin as a program: migrations, OpenAPI document, error bodies, request ids, and
//! graceful shutdown — all observed from outside.

use oxvault_tests::TestStack;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::time::Duration;

#[tokio::test]
async fn migrate_creates_the_schema_in_the_tests_own_database() {
    let stack = TestStack::shared().await;

    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let orgs: Option<String> = sqlx::query_scalar("SELECT to_regclass('organizations')::text")
        .fetch_one(&mut db)
        .await
        .unwrap();

    assert!(applied >= 1);
    assert_eq!(orgs.as_deref(), Some("organizations"));
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_the_health_endpoints() {
    let stack = TestStack::shared().await;

    let response = stack.get("/v1/openapi.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["paths"]["/v1/health"]["get"]["operationId"],
        "healthCheck"
    );
    assert_eq!(
        doc["paths"]["/v1/health/hsm"]["get"]["operationId"],
        "healthHsm"
    );
    assert!(doc["paths"]["/v1/health/hsm"]["get"]["responses"]["503"].is_object());
    assert!(doc["components"]["schemas"]["ProblemDetails"].is_object());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_bodies_from_the_origin() {
    let stack = TestStack::shared().await;
    // Routes the edge does not list as public need a token to get past it (edge_auth.rs).
    let token = stack
        .signup(&stack.email("routes@example.com"))
        .await
        .access_token;

    let missing = stack
        .request(Method::GET, "/v1/no-such-thing", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["type"], "urn:oxvault:problem:not-found");
    assert_eq!(body["status"], 404);

    let wrong_method = stack
        .request(Method::DELETE, "/v1/health", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["status"], 405);
}

#[tokio::test]
async fn paths_outside_v1_are_answered_by_the_edge_alone() {
    let stack = TestStack::shared().await;

    let response = stack.get("/admin").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert!(
        !stack.origin_log().contains("\"path\":\"/admin\""),
        "the origin must not have been asked"
    );
}

#[tokio::test]
async fn a_clean_request_id_is_kept_end_to_end_and_a_bad_one_replaced() {
    let stack = TestStack::shared().await;

    let kept = stack
        .client
        .get(stack.edge_url("/v1/health/hsm"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-me-123");
    assert!(
        stack.origin_logged("\"request_id\":\"trace-me-123\"").await,
        "the origin logs the edge's request id"
    );

    let forged = "x".repeat(200);
    let replaced = stack
        .client
        .get(stack.edge_url("/v1/health/hsm"))
        .header("x-request-id", &forged)
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, forged);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh UUID, got {id}");
    assert!(
        stack
            .origin_logged(&format!("\"request_id\":\"{id}\""))
            .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_origin_cleanly() {
    let mut stack = TestStack::start().await;
    assert_eq!(stack.get("/v1/health/hsm").await.status(), StatusCode::OK);

    stack.own_mut().origin.process().signal("TERM");
    let status = tokio::task::block_in_place(|| {
        stack
            .own_mut()
            .origin
            .process()
            .wait_timeout(Duration::from_secs(15))
    });

    let status = status.expect("the origin exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let log = stack.origin_log();
    assert!(
        log.contains("shutting down: draining in-flight requests"),
        "{log}"
    );
    assert!(log.contains("\"message\":\"stopped\""), "{log}");
}
