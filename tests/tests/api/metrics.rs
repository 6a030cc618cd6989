//! The origin's `/metrics` for operators: on a listener of its own, never on the API's port
//! nor through the edge; Prometheus text with requests and latency per route template, HSM
//! calls, audit batches, pool use and the mail outbox; and never a concrete path or id.

use oxvault_tests::TestStack;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn metrics_have_a_listener_of_their_own_and_name_routes_never_paths() {
    let stack = TestStack::start().await;
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let (owner, vault, _) = stack
        .owner_with_secret(
            "metrics@example.com",
            &format!("{canary}/key"),
            "sk-metrics",
        )
        .await;
    let (status, _) = stack
        .get_secret(&owner.access_token, &vault, &format!("{canary}/key"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stack
        .put_secret(&owner.access_token, &vault, "", json!({"value": "x"}))
        .await;
    assert!(status.is_client_error());

    let text = stack.origin_metrics().await;
    for expected in [
        r#"oxvault_http_requests_total{method="GET",route="/v1/vaults/{vault_id}/secrets/{*path}",status="2xx"} 1"#,
        r#"oxvault_http_request_seconds_bucket{method="PUT",route="/v1/vaults/{vault_id}/secrets/{*path}",status="2xx",le="#,
        r#"oxvault_hsm_call_seconds_bucket{op="wrap",le="#,
        r#"oxvault_hsm_call_seconds_count{op="mac"}"#,
        "oxvault_audit_batch_events_bucket{le=",
        r#"oxvault_audit_write_seconds_count{path="#,
        r#"oxvault_db_pool_connections{state="idle"}"#,
        "oxvault_mail_outbox_depth 0",
        "oxvault_hsm_calls_total ",
        "oxvault_dek_cache_keys ",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains(&canary), "a secret's path in the metrics");
    assert!(!text.contains(&vault), "a vault id in the metrics");

    // Not on the API's port, and not through the edge.
    let api = stack
        .client
        .get(stack.origin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(stack.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}

/// The edge answers rate-limit refusals itself; it reports them with its next forwarded
/// request, and the origin counts them per limit.
#[tokio::test]
async fn the_edges_rate_limit_refusals_reach_the_origins_metrics() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_SHARE_IP", "2/60");
        })
        .start()
        .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let id = uuid::Uuid::new_v4();
        statuses.push(
            stack
                .get(&format!("/v1/share/{id}"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [404, 404, 429, 429, 429]);
    // The next request the edge forwards carries the count.
    stack.signup("after-refusals@example.com").await;
    let text = stack.origin_metrics().await;
    assert!(
        text.contains(r#"oxvault_edge_rate_limit_refusals_total{limit="share_ip"} 3"#),
        "{text}"
    );
}
