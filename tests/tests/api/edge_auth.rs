//! The edge's token check: protected routes need a bearer token that verifies against the
//! origin's published keys, and everything else is refused with a 401 before the origin sees
//! it. SECURITY.md case 3, at the edge (the origin's own check is tested in auth.rs).
//!
//! Two kinds of test:
//! - against the real stack, with what a client can forge: `alg: none`, HS256 keyed with the
//!   public key, an unknown kid, tampered and truncated tokens. The real signing key lives in
//!   the HSM, so a token with the real kid and other claims cannot be made here. Each case
//!   sends its own `X-Request-Id` and checks that the origin never logged it;
//! - against a stand-in origin that publishes a key the test holds, so that `iss`, `aud` and
//!   `exp` are checked at the edge itself, along with the key-refresh policy and the 503 when
//!   no keys can be had. The stand-in records every request other than its key set.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method as AxumMethod, StatusCode as AxumStatus, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use oxvault_core::jwt::{Jwk, Jwks, key_id};
use oxvault_tests::{Edge, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// A request id unique to this case, acceptable to the edge (so it is kept end to end).
fn request_id(case: &str) -> String {
    format!("ea-{case}-{}", uuid::Uuid::new_v4().simple())
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The three parts of a compact JWT.
fn parts(token: &str) -> (String, String, String) {
    let mut split = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (split.next(), split.next(), split.next(), split.next())
    else {
        panic!("not a compact JWT: {token}");
    };
    (header.to_owned(), payload.to_owned(), signature.to_owned())
}

/// `header.payload.signature` of the given JSON header and raw payload, signed by `sign`.
fn compact(header: &Value, payload: &[u8], sign: impl FnOnce(&str) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
    let signature = sign(&input);
    format!("{input}.{}", b64(&signature))
}

/// An EdDSA token with `claims`, signed by `key` and naming `kid`.
fn eddsa(key: &SigningKey, kid: &str, claims: &Value) -> String {
    compact(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
        claims.to_string().as_bytes(),
        |input| key.sign(input.as_bytes()).to_bytes().to_vec(),
    )
}

/// A throwaway Ed25519 key that no oxvault component knows.
fn stranger_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn kid_of(key: &SigningKey) -> String {
    key_id(&key.verifying_key().to_bytes())
}

/// Asserts the edge's 401 problem with its challenge and the expected detail.
async fn assert_edge_401(response: reqwest::Response, detail: &str, case: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer",
        "{case}: a 401 carries the Bearer challenge"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{case}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "type": "urn:oxvault:problem:unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "detail": detail,
        }),
        "{case}"
    );
}

// ---------------------------------------------------------------------------------------
// Against the real stack
// ---------------------------------------------------------------------------------------

/// GET /v1/auth/me through the edge with the given `Authorization` value and request id.
async fn me(stack: &TestStack, authorization: Option<&str>, id: &str) -> reqwest::Response {
    let mut request = stack
        .client
        .get(stack.edge_url("/v1/auth/me"))
        .header("x-request-id", id);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

/// Sends a request that must reach the origin, waits for its log line, then asserts that
/// none of `refused` ids was ever logged. The origin logs requests in the order it finishes
/// them, so once a later request is in the log, an earlier one that had reached it would be
/// there too.
async fn assert_origin_never_saw(stack: &TestStack, valid_token: &str, refused: &[String]) {
    let marker = request_id("marker");
    let response = me(stack, Some(&format!("Bearer {valid_token}")), &marker).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        stack
            .origin_logged(&format!("\"request_id\":\"{marker}\""))
            .await,
        "the marker request reached the origin"
    );
    let log = stack.origin_log();
    for id in refused {
        assert!(
            !log.contains(id.as_str()),
            "the origin saw a request the edge should have refused: {id}"
        );
    }
}

#[tokio::test]
async fn a_protected_route_without_a_bearer_token_is_refused_at_the_edge() {
    let stack = TestStack::shared().await;
    let session = stack.signup(&stack.email("no-token@example.com")).await;

    let mut refused = Vec::new();
    for (case, authorization) in [
        ("none", None),
        ("basic", Some("Basic bm8tdG9rZW5AZXhhbXBsZS5jb206cGFzcw==")),
        ("empty-bearer", Some("Bearer ")),
        ("bare-token", Some(session.access_token.as_str())),
    ] {
        let id = request_id(case);
        let response = me(&stack, authorization, &id).await;
        assert_eq!(response.headers()["x-request-id"], id.as_str(), "{case}");
        assert_edge_401(response, "a bearer token is required", case).await;
        refused.push(id);
    }

    assert_origin_never_saw(&stack, &session.access_token, &refused).await;
}

#[tokio::test]
async fn a_valid_token_passes_the_edge_and_reaches_the_origin() {
    let stack = TestStack::shared().await;
    let session = stack.signup(&stack.email("valid@example.com")).await;

    let id = request_id("valid");
    let response = me(
        &stack,
        Some(&format!("Bearer {}", session.access_token)),
        &id,
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["email"], stack.email("valid@example.com"));
    assert!(
        stack
            .origin_logged(&format!("\"request_id\":\"{id}\""))
            .await,
        "the origin handled the request"
    );
    let lower_case_scheme = me(
        &stack,
        Some(&format!("bearer {}", session.access_token)),
        &request_id("lower"),
    )
    .await;
    assert_eq!(lower_case_scheme.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_key_set_is_forwarded_and_names_the_key_tokens_are_signed_with() {
    let stack = TestStack::shared().await;
    let session = stack.signup(&stack.email("jwks@example.com")).await;

    let response = stack.get("/.well-known/jwks.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    let jwks: Value = response.json().await.unwrap();
    let (header, _, _) = parts(&session.access_token);
    let header: Value = serde_json::from_slice(&unb64(&header)).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    let refused = stack
        .client
        .post(stack.edge_url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    // A document: other methods are not allowed, and the answer names the ones that are.
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refused.headers()["allow"], "GET, HEAD");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused_at_the_edge_and_never_reach_the_origin() {
    let stack = TestStack::shared().await;
    let session = stack.signup(&stack.email("forger@example.com")).await;
    let other = stack.signup(&stack.email("bystander@example.com")).await;
    let real = session.access_token.as_str();
    let (header_b64, payload_b64, signature_b64) = parts(real);
    let header: Value = serde_json::from_slice(&unb64(&header_b64)).unwrap();
    let real_kid = header["kid"].as_str().unwrap().to_owned();
    let payload = unb64(&payload_b64);
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    let public: Value = stack
        .get("/v1/auth/jwt-public-key")
        .await
        .json()
        .await
        .unwrap();
    let public_key = STANDARD
        .decode(public["public_key_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(key_id(&public_key.clone().try_into().unwrap()), real_kid);

    // Each forgery next to the reason the edge refuses it.
    let mut cases: Vec<(&str, String)> = Vec::new();
    // The signature is dropped and the header claims there is none to check.
    cases.push((
        "alg-none",
        compact(&json!({"alg": "none", "kid": real_kid}), &payload, |_| {
            Vec::new()
        }),
    ));
    cases.push((
        "alg-none-upper",
        compact(
            &json!({"alg": "NONE", "typ": "JWT", "kid": real_kid}),
            &payload,
            |_| Vec::new(),
        ),
    ));
    // The classic confusion: HMAC keyed with the (public) verification key.
    cases.push((
        "hs256-public-key",
        compact(
            &json!({"alg": "HS256", "typ": "JWT", "kid": real_kid}),
            &payload,
            |input| {
                let mut mac = Hmac::<Sha256>::new_from_slice(&public_key).unwrap();
                mac.update(input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            },
        ),
    ));
    // A well-formed EdDSA token from a key the origin never published (the edge refetches
    // its keys at most once, then refuses).
    let stranger = stranger_key(42);
    cases.push(("unknown-kid", eddsa(&stranger, &kid_of(&stranger), &claims)));
    // Signed by a stranger, but claiming the real kid: the signature does not verify.
    cases.push(("real-kid-wrong-key", eddsa(&stranger, &real_kid, &claims)));
    // A key embedded in the header must never be used to verify.
    cases.push((
        "embedded-jwk",
        compact(
            &json!({
                "alg": "EdDSA", "kid": kid_of(&stranger),
                "jwk": Jwk::ed25519(&stranger.verifying_key().to_bytes()),
            }),
            &payload,
            |input| stranger.sign(input.as_bytes()).to_bytes().to_vec(),
        ),
    ));
    // One character of one claim changed, the real signature kept.
    let mut tampered = String::from_utf8(payload.clone()).unwrap();
    let sub_end = tampered.find("\"sub\":\"user:").unwrap() + "\"sub\":\"user:".len() + 35;
    let flipped = if &tampered[sub_end..=sub_end] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sub_end..=sub_end, flipped);
    assert_ne!(tampered.as_bytes(), payload.as_slice());
    cases.push((
        "tampered-sub",
        format!("{header_b64}.{}.{signature_b64}", b64(tampered.as_bytes())),
    ));
    // `exp` moved: later (a token made to live longer) and earlier (an expired-looking one);
    // either way the real signature no longer covers the payload.
    let exp = claims["exp"].as_i64().unwrap();
    for (case, new_exp) in [
        ("exp-extended", exp + 365 * 24 * 3600),
        ("exp-in-past", now() - 3600),
    ] {
        let mut edited = claims.clone();
        edited["exp"] = json!(new_exp);
        cases.push((
            case,
            format!(
                "{header_b64}.{}.{signature_b64}",
                b64(edited.to_string().as_bytes())
            ),
        ));
    }
    // The bystander's valid signature on the forger's header and payload.
    let (_, _, other_signature) = parts(&other.access_token);
    cases.push((
        "swapped-signature",
        format!("{header_b64}.{payload_b64}.{other_signature}"),
    ));
    // Truncations and junk.
    cases.push(("truncated-signature", real[..real.len() - 10].to_owned()));
    cases.push(("no-signature", format!("{header_b64}.{payload_b64}")));
    cases.push(("padded-signature", format!("{real}==")));
    cases.push(("two-tokens", format!("{real}.{real}")));
    cases.push(("oversized", format!("{real}{}", "A".repeat(10_000))));
    cases.push(("not-a-jwt", "definitely-not-a-jwt".to_owned()));

    let mut refused = Vec::new();
    for (case, token) in &cases {
        let id = request_id(case);
        let response = me(&stack, Some(&format!("Bearer {token}")), &id).await;
        assert_edge_401(response, "invalid or expired token", case).await;
        refused.push(id);
    }

    // The real token still works: the forgeries did not disturb the edge's keys.
    assert_origin_never_saw(&stack, real, &refused).await;
}

// ---------------------------------------------------------------------------------------
// Against a stand-in origin that publishes a key the test holds
// ---------------------------------------------------------------------------------------

/// What the stand-in publishes and what it saw.
#[derive(Debug)]
struct StandIn {
    /// Status and body of `GET /.well-known/jwks.json`.
    jwks: (AxumStatus, Value),
    jwks_fetches: usize,
    /// Every other request: method, path and headers.
    seen: Vec<Value>,
}

type Shared = Arc<Mutex<StandIn>>;

fn jwks_of(keys: &[&SigningKey]) -> Value {
    serde_json::to_value(Jwks {
        keys: keys
            .iter()
            .map(|key| Jwk::ed25519(&key.verifying_key().to_bytes()))
            .collect(),
    })
    .unwrap()
}

/// Starts the stand-in on a free loopback port and an edge in front of it.
async fn start_stand_in(jwks: (AxumStatus, Value)) -> (Shared, Edge) {
    async fn publish(State(state): State<Shared>) -> impl IntoResponse {
        let mut state = state.lock().unwrap();
        state.jwks_fetches += 1;
        let (status, body) = state.jwks.clone();
        (status, Json(body))
    }
    async fn record(
        State(state): State<Shared>,
        method: AxumMethod,
        uri: Uri,
        headers: HeaderMap,
    ) -> Json<Value> {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Value::String(value.to_str().unwrap_or("<binary>").to_owned()),
                )
            })
            .collect();
        let seen = json!({"method": method.as_str(), "path": uri.path(), "headers": headers});
        state.lock().unwrap().seen.push(seen.clone());
        Json(seen)
    }

    let state: Shared = Arc::new(Mutex::new(StandIn {
        jwks,
        jwks_fetches: 0,
        seen: Vec::new(),
    }));
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", axum::routing::get(publish))
        .fallback(record)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let edge = tokio::task::spawn_blocking(move || Edge::start(&origin_url))
        .await
        .unwrap();
    (state, edge)
}

/// Claims as the origin issues them, valid now.
fn good_claims() -> Value {
    let now = now();
    json!({
        "iss": "oxvault", "aud": "oxvault-api",
        "sub": "user:6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
        "org": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "iat": now - 5, "exp": now + 900,
        "jti": uuid::Uuid::new_v4(), "tv": 1, "role": "owner",
    })
}

fn seen_ids(state: &Shared) -> Vec<String> {
    state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter_map(|seen| seen["headers"]["x-request-id"].as_str().map(str::to_owned))
        .collect()
}

fn jwks_fetches(state: &Shared) -> usize {
    state.lock().unwrap().jwks_fetches
}

/// GET /v1/vaults through the edge with a bearer token and a request id.
async fn call(edge: &Edge, token: &str, id: &str) -> reqwest::Response {
    oxvault_tests::client()
        .get(format!("{}/v1/vaults", edge.url()))
        .bearer_auth(token)
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_audience_and_lifetime_are_checked_at_the_edge() {
    let key = stranger_key(1);
    let (state, edge) = start_stand_in((AxumStatus::OK, jwks_of(&[&key]))).await;
    let kid = kid_of(&key);

    let valid_id = request_id("valid");
    let valid = call(&edge, &eddsa(&key, &kid, &good_claims()), &valid_id).await;
    assert_eq!(
        valid.status(),
        StatusCode::OK,
        "a token the published key verifies"
    );

    let now = now();
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut edit = |case, field: &str, value: Value| {
        let mut claims = good_claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(field);
        } else {
            claims[field] = value;
        }
        cases.push((case, claims));
    };
    edit("wrong-iss", "iss", json!("someone-else"));
    edit("wrong-aud", "aud", json!("another-api"));
    edit("aud-list", "aud", json!(["oxvault-api"]));
    // Past the 30 s clock skew the verifier allows.
    edit("expired", "exp", json!(now - 120));
    edit("no-exp", "exp", Value::Null);
    edit("issued-in-future", "iat", json!(now + 3600));
    edit("bad-sub", "sub", json!("admin"));

    for (case, claims) in &cases {
        let response = call(&edge, &eddsa(&key, &kid, claims), &request_id(case)).await;
        assert_edge_401(response, "invalid or expired token", case).await;
    }

    let seen = seen_ids(&state);
    assert_eq!(seen, [valid_id], "only the valid request was forwarded");
    assert_eq!(
        jwks_fetches(&state),
        1,
        "one key fetch served every request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_kids_refresh_the_keys_at_most_once_per_interval_and_pick_up_a_rotation() {
    let old_key = stranger_key(1);
    let new_key = stranger_key(2);
    let (state, edge) = start_stand_in((AxumStatus::OK, jwks_of(&[&old_key]))).await;
    let old_token = eddsa(&old_key, &kid_of(&old_key), &good_claims());
    let new_token = eddsa(&new_key, &kid_of(&new_key), &good_claims());

    assert_eq!(
        call(&edge, &old_token, &request_id("first")).await.status(),
        200
    );
    assert_eq!(jwks_fetches(&state), 1);

    // A flood of made-up kids right after: refused, and the origin is not asked again.
    for seed in 10..30 {
        let stranger = stranger_key(seed);
        let token = eddsa(&stranger, &kid_of(&stranger), &good_claims());
        let response = call(&edge, &token, &request_id("random-kid")).await;
        assert_edge_401(response, "invalid or expired token", "random kid").await;
    }
    assert_eq!(
        jwks_fetches(&state),
        1,
        "made-up kids do not hammer the origin"
    );

    // The origin rotates its key. Within the interval the new kid is still unknown.
    state.lock().unwrap().jwks = (AxumStatus::OK, jwks_of(&[&new_key]));
    let early = call(&edge, &new_token, &request_id("early")).await;
    assert_edge_401(early, "invalid or expired token", "new kid too early").await;
    assert_eq!(jwks_fetches(&state), 1);

    // Once the interval has passed, the unknown kid triggers one refresh and is accepted.
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    let late = call(&edge, &new_token, &request_id("late")).await;
    assert_eq!(
        late.status(),
        StatusCode::OK,
        "the rotated key is picked up"
    );
    assert_eq!(jwks_fetches(&state), 2);

    // The retired key is gone from the refreshed set, and asking for it again does not
    // refetch within the interval.
    let retired = call(&edge, &old_token, &request_id("retired")).await;
    assert_edge_401(retired, "invalid or expired token", "retired key").await;
    assert_eq!(jwks_fetches(&state), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_keys_from_the_origin_protected_routes_get_503_and_are_not_forwarded() {
    let key = stranger_key(1);
    let (state, edge) = start_stand_in((
        AxumStatus::SERVICE_UNAVAILABLE,
        json!({"status": 503, "detail": "the HSM is unavailable"}),
    ))
    .await;
    let token = eddsa(&key, &kid_of(&key), &good_claims());

    let mut ids = Vec::new();
    for attempt in ["one", "two"] {
        let id = request_id(attempt);
        let response = call(&edge, &token, &id).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get("www-authenticate").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "urn:oxvault:problem:service-unavailable");
        ids.push(id);
    }
    // With nothing cached every request asks again (each would have reached the origin
    // without the edge anyway); none of them is forwarded.
    assert_eq!(jwks_fetches(&state), 2);
    assert!(seen_ids(&state).is_empty(), "nothing was forwarded");

    // A key set with no usable key counts as none.
    state.lock().unwrap().jwks = (
        AxumStatus::OK,
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}]}),
    );
    let response = call(&edge, &token, &request_id("hmac-only")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Once the origin publishes its key, the same token goes through.
    state.lock().unwrap().jwks = (AxumStatus::OK, jwks_of(&[&key]));
    let recovered_id = request_id("recovered");
    let response = call(&edge, &token, &recovered_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen_ids(&state), [recovered_id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_routes_need_no_token_and_reserved_headers_never_reach_the_origin() {
    let (state, edge) = start_stand_in((AxumStatus::SERVICE_UNAVAILABLE, json!({}))).await;
    let client = oxvault_tests::client();

    for (method, path) in [
        (Method::POST, "/v1/auth/signup"),
        (Method::POST, "/v1/auth/token"),
        (Method::POST, "/v1/auth/refresh"),
        (Method::POST, "/v1/auth/agent-token"),
        (Method::POST, "/v1/auth/api-key-token"),
        (Method::POST, "/v1/auth/google"),
        (Method::GET, "/v1/auth/jwt-public-key"),
        (Method::GET, "/v1/health/hsm"),
        (Method::GET, "/v1/openapi.json"),
        (Method::GET, "/v1/share/0123456789abcdef"),
        (Method::GET, "/v1/share/0123456789abcdef/status"),
    ] {
        let response = client
            .request(method.clone(), format!("{}{path}", edge.url()))
            .header(
                "x-oxvault-subject",
                "user:00000000-0000-0000-0000-000000000001",
            )
            .header("X-Oxvault-Role", "owner")
            .header("x-oxvaultish", "kept")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["path"], path);
        let headers = seen["headers"].as_object().unwrap();
        assert!(
            headers.keys().all(|name| !name.starts_with("x-oxvault-")),
            "{method} {path}: {headers:?}"
        );
        assert_eq!(headers["x-oxvaultish"], "kept");
    }
    // No public route needed the keys.
    assert_eq!(jwks_fetches(&state), 0);
    assert_eq!(state.lock().unwrap().seen.len(), 11);
}
