//! What the edge forwards, observed by a stand-in origin that echoes each request back.
//!
//! The stand-in replaces the real origin only here, where the question is what the Worker
//! sends: the real origin has no endpoint that reflects a request. It also publishes a key
//! set with a key the test holds, so requests to protected routes carry a token the edge
//! accepts (the token check itself is tested in edge_auth.rs).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use oxvault_core::jwt::{Jwk, Jwks, key_id};
use oxvault_tests::Edge;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The stand-in's token-signing key.
fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// An access token the edge accepts: signed by the key the stand-in publishes.
fn token() -> String {
    let key = signing_key();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let header =
        json!({"alg": "EdDSA", "typ": "JWT", "kid": key_id(&key.verifying_key().to_bytes())});
    let claims = json!({
        "iss": "oxvault", "aud": "oxvault-api",
        "sub": "user:6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
        "org": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "iat": now, "exp": now + 900, "jti": uuid::Uuid::new_v4(), "tv": 1, "role": "owner",
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes());
    format!("{input}.{signature}")
}

/// Starts an echo origin on a free loopback port; returns its URL.
async fn start_echo_origin() -> String {
    async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Json<Value> {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::String(value.to_str().unwrap_or("<binary>").to_owned()),
                )
            })
            .collect();
        Json(json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    }
    async fn jwks() -> Json<Jwks> {
        Json(Jwks {
            keys: vec![Jwk::ed25519(&signing_key().verifying_key().to_bytes())],
        })
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", axum::routing::get(jwks))
        .fallback(echo);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

async fn start_edge(origin_url: String) -> Edge {
    tokio::task::spawn_blocking(move || Edge::start(&origin_url))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn method_path_query_body_and_headers_reach_the_origin() {
    let edge = start_edge(start_echo_origin().await).await;
    let token = token();

    let response = oxvault_tests::client()
        .patch(format!(
            "{}/v1/vaults/abc/secrets/db%2Fpass?prefix=a%20b&x=1",
            edge.url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("x-custom", "kept")
        .body(r#"{"value":"s3cret"}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "PATCH");
    assert_eq!(
        seen["path"], "/v1/vaults/abc/secrets/db%2Fpass",
        "encoded slashes stay encoded"
    );
    assert_eq!(seen["query"], "prefix=a%20b&x=1");
    assert_eq!(seen["body"], r#"{"value":"s3cret"}"#);
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));
    assert_eq!(seen["headers"]["content-type"], "application/json");
    assert_eq!(seen["headers"]["x-custom"], "kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_supplied_forwarding_headers_are_replaced_not_trusted() {
    let edge = start_edge(start_echo_origin().await).await;

    let response = oxvault_tests::client()
        .get(format!("{}/v1/anything", edge.url()))
        .bearer_auth(token())
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .send()
        .await
        .unwrap();

    let seen: Value = response.json().await.unwrap();
    let headers = &seen["headers"];
    assert_ne!(headers["x-forwarded-for"], "6.6.6.6");
    assert!(
        !headers["x-forwarded-for"]
            .as_str()
            .unwrap_or("")
            .contains("6.6.6.6")
    );
    assert!(headers.get("x-real-ip").is_none());
    assert!(headers.get("forwarded").is_none());
    let id = headers["x-request-id"]
        .as_str()
        .expect("the edge adds a request id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_refused_at_the_edge() {
    let edge = start_edge(start_echo_origin().await).await;

    let response = oxvault_tests::client()
        .post(format!("{}/v1/anything", edge.url()))
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 413);
}

/// A loopback port nothing listens on: bound, then let go.
fn dead_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// An `ORIGIN_URL` in plain http to a host off this machine would carry tokens and secrets in
/// clear: the edge refuses the configuration, answering every API request (the health report
/// too) with a 503 problem, and keeps answering (no panic).
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_origin_off_loopback_is_refused_with_a_503_problem() {
    let edge = start_edge("http://origin.example.com:8080".to_owned()).await;
    let client = oxvault_tests::client();

    for path in [
        "/v1/vaults",
        "/v1/health",
        "/v1/share/3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f",
        "/v1/vaults",
    ] {
        let response = client
            .get(format!("{}{path}", edge.url()))
            .bearer_auth(token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 503, "{path}");
        assert_eq!(
            body["detail"], "the service is not configured correctly; try again later",
            "{path}"
        );
    }
}

/// When the origin cannot be reached, the edge logs where it tried, but never a share id:
/// the id of a link share is its credential. The log names the route as the origin's access
/// log does.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_origin_is_logged_without_the_share_id() {
    let edge = start_edge(dead_origin()).await;
    let id = "5e0a8f3c-9b1d-4c2e-8f7a-6d5c4b3a2918";

    let response = oxvault_tests::client()
        .get(format!("{}/v1/share/{id}?x=1", edge.url()))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = edge.log_text();
        if log.contains("origin unreachable") || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        log.contains("origin unreachable") && log.contains("/v1/share/{share_id}"),
        "the failure is logged with the route:\n{log}"
    );
    assert!(!log.contains(id), "the share id reached the log:\n{log}");
    assert!(!log.contains("x=1"), "the query reached the log:\n{log}");
}

/// An origin that takes connections and never answers. Each call the edge makes on its own
/// gives up after its timeout (5 s each: the health probe, the key set a token needs, a share
/// page's status) and answers for the origin, instead of holding its client for as long as
/// the origin stalls. The timeouts travel on the runtime requests the edge builds: a call
/// sent without one would hang here until the client's own timeout.
#[tokio::test(flavor = "multi_thread")]
async fn the_edges_own_calls_give_up_on_an_origin_that_never_answers() {
    // Never accepted: the kernel completes each connection and buffers the request.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let edge = start_edge(format!("http://{}", silent.local_addr().unwrap())).await;
    let client = oxvault_tests::client_builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let page_id = "5e0a8f3c-9b1d-4c2e-8f7a-6d5c4b3a2918";

    let started = std::time::Instant::now();
    let (health, protected, page) = tokio::join!(
        client.get(format!("{}/v1/health", edge.url())).send(),
        client
            .get(format!("{}/v1/vaults", edge.url()))
            .bearer_auth(token())
            .send(),
        client.get(format!("{}/s/{page_id}", edge.url())).send(),
    );
    let waited = started.elapsed();

    let health = health.expect("the health check is answered");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = health.json().await.unwrap();
    assert_eq!(report["origin"]["status"], "unreachable", "{report}");

    let protected = protected.expect("the protected route is answered");
    assert_eq!(protected.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = protected.json().await.unwrap();
    assert_eq!(problem["type"], "urn:oxvault:problem:service-unavailable");

    let page = page.expect("the share page is answered");
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = page.text().await.unwrap();
    assert!(page.contains("cannot be checked right now"), "{page}");

    // They waited for the origin (so they asked it) and gave up on their timeouts.
    assert!(
        waited >= std::time::Duration::from_millis(4_500),
        "answered before any timeout: {waited:?}"
    );
    assert!(
        waited < std::time::Duration::from_secs(30),
        "a call waited past its timeout: {waited:?}"
    );
    drop(silent);
}
