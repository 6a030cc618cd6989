//! The edge's rate limits (SECURITY 20 and 21), through the real Worker and its Durable
//! Objects under `wrangler dev`: limits trip at N+1 with a 429 problem, `Retry-After` and
//! `X-RateLimit-*`, and reopen after `Retry-After`; they hold per client IP, per normalised
//! email across IPs, per token subject (also when the Worker counts a fast per-subject limit
//! through requests leased from the object a few at a time); guessing share ids trips them;
//! and a refused request never reaches the origin, so Argon2 never runs for it.
//!
//! Client addresses: `wrangler dev` sets `CF-Connecting-IP` from the TCP peer (unless the
//! client sends one itself; Cloudflare proper always overwrites it), so each "client" here is
//! a reqwest client bound to its own loopback address, 127.0.0.2, 127.0.0.3, ...

use std::time::Duration;

use oxvault_tests::{PASSWORD, TestStack, client_from};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn post(
    stack: &TestStack,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(stack.edge_url(path))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"))
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Checks a 429 from the edge: the problem body and every header; returns `Retry-After`.
async fn assert_limited(response: reqwest::Response, limit: u32) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let retry_after: u64 = header(&response, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry_after >= 1);
    assert_eq!(
        header(&response, "x-ratelimit-limit"),
        Some(limit.to_string())
    );
    assert_eq!(
        header(&response, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    let reset: u64 = header(&response, "x-ratelimit-reset")
        .expect("X-RateLimit-Reset")
        .parse()
        .expect("reset is whole seconds");
    assert!(
        reset >= retry_after,
        "reset {reset} < retry-after {retry_after}"
    );
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["type"], "urn:oxvault:problem:too-many-requests");
    assert_eq!(body["title"], "Too Many Requests");
    assert_eq!(body["status"], 429);
    retry_after
}

/// How many requests to `path` the origin has logged as finished.
fn origin_requests(stack: &TestStack, path: &str) -> usize {
    stack
        .origin_log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "request finished")
        .filter(|event| event["span"]["path"] == path || event["path"] == path)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_route_trips_at_n_plus_one_reopens_after_retry_after_and_counts_per_ip() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_AUTH_IP", "3/9");
        })
        .start()
        .await;
    let first = client_from(2);
    // A refresh with a made-up token: the origin answers 401 at once.
    let attempt = json!({"refresh_token": "ort_not-a-real-token"});

    for remaining in ["2", "1", "0"] {
        let response = post(&stack, &first, "/v1/auth/refresh", attempt.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        assert!(header(&response, "x-ratelimit-reset").is_some());
        assert!(header(&response, "retry-after").is_none());
    }
    let refused = post(&stack, &first, "/v1/auth/refresh", attempt.clone()).await;
    let retry_after = assert_limited(refused, 3).await;
    // Every token route shares the per-IP count.
    let signup = post(
        &stack,
        &first,
        "/v1/auth/signup",
        json!({"email": "x@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(signup.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another address has its own count.
    let other = post(&stack, &client_from(3), "/v1/auth/refresh", attempt.clone()).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = post(&stack, &first, "/v1/auth/refresh", attempt).await;
    assert_eq!(
        again.status(),
        StatusCode::UNAUTHORIZED,
        "open again after Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_logins_for_one_email_trip_the_limit_from_any_address() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_LOGIN_IDENTITY", "3/300");
        })
        .start()
        .await;
    stack.signup("victim@example.com").await;
    stack.signup("bystander@example.com").await;
    let wrong = |email: &str| json!({"email": email, "password": "not the password"});

    // Three guesses from three addresses, under three spellings of one address.
    for (last, email) in [
        (10, "victim@example.com"),
        (11, "VICTIM@Example.COM"),
        (12, "  victim@example.com "),
    ] {
        let response = post(&stack, &client_from(last), "/v1/auth/token", wrong(email)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
        // What is left of the per-email count is not told: it would show anyone how often
        // someone else tried that address. (The per-IP limit is what the headers describe.)
        assert_ne!(
            header(&response, "x-ratelimit-limit").as_deref(),
            Some("3"),
            "the per-email limit must not be reported"
        );
    }
    // The fourth, from a fresh address, in full-width letters (NFKC folds them): refused,
    // even with the right password.
    let full_width = "\u{ff36}\u{ff29}\u{ff23}\u{ff34}\u{ff29}\u{ff2d}@example.com";
    let response = post(
        &stack,
        &client_from(13),
        "/v1/auth/token",
        wrong(full_width),
    )
    .await;
    assert_limited(response, 3).await;
    let response = post(
        &stack,
        &client_from(14),
        "/v1/auth/token",
        json!({"email": "victim@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another identity, from an address that just guessed: still let through.
    let response = post(
        &stack,
        &client_from(10),
        "/v1/auth/token",
        json!({"email": "bystander@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticated_routes_are_limited_per_token_subject() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_IDENTITY", "3/300");
        })
        .start()
        .await;
    let busy = stack.signup("busy@example.com").await;
    let calm = stack.signup("calm@example.com").await;

    for remaining in ["2", "1", "0"] {
        let response = stack
            .request(Method::GET, "/v1/auth/me", &busy.access_token)
            .send()
            .await
            .expect("me");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
    // The subject, not the address, is counted: a new address does not help.
    let response = client_from(20)
        .get(stack.edge_url("/v1/vaults"))
        .bearer_auth(&busy.access_token)
        .send()
        .await
        .expect("vaults");
    assert_limited(response, 3).await;

    let (status, _) = stack.me(&calm.access_token).await;
    assert_eq!(status, StatusCode::OK);
}

/// A per-subject limit fast enough that the Worker leases it from the object ten requests at
/// a time (`100/10`: see the edge's `rate_limit::allowance`) still holds: of a flood far past
/// it, only the burst plus what the rate refilled meanwhile (and at most one lease more)
/// gets through, and the rest are 429s with the usual headers.
#[tokio::test(flavor = "multi_thread")]
async fn a_leased_per_subject_limit_still_holds_under_a_flood() {
    const BURST: usize = 100;
    const PER_SEC: f64 = 10.0;
    const LEASE: usize = 10;
    const SENT: usize = 400;
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_IDENTITY", "100/10");
        })
        .start()
        .await;
    let busy = stack.signup("flood@example.com").await;
    let calm = stack.signup("quiet@example.com").await;

    let started = std::time::Instant::now();
    let mut passed = 0;
    let mut refused = None;
    // Eight at a time: several requests of one isolate ask for leases concurrently too.
    for wave in 0..SENT / 8 {
        let requests = (0..8).map(|_| {
            stack
                .request(Method::GET, "/v1/auth/me", &busy.access_token)
                .send()
        });
        for response in futures_util::future::join_all(requests).await {
            let response = response.unwrap_or_else(|err| panic!("wave {wave}: {err}"));
            match response.status() {
                StatusCode::OK => {
                    assert!(header(&response, "x-ratelimit-remaining").is_some());
                    passed += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => refused = Some(response),
                other => panic!("wave {wave}: {other}"),
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // What one-by-one checks would allow in that time, plus one lease.
    let most = BURST + (elapsed * PER_SEC).ceil() as usize + LEASE;
    assert!(
        (BURST - LEASE..=most).contains(&passed),
        "{passed} of {SENT} passed in {elapsed:.1} s (at most {most})"
    );
    assert!(passed < SENT, "nothing was refused");
    assert_limited(refused.expect("a refusal"), 100).await;

    // Another subject is counted on its own.
    let (status, _) = stack.me(&calm.access_token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_share_ids_gets_uniform_404s_then_429s() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_SHARE_IP", "5/300");
        })
        .start()
        .await;
    let guesser = client_from(30);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let id = uuid::Uuid::new_v4();
        let response = guesser
            .get(stack.edge_url(&format!("/v1/share/{id}")))
            .send()
            .await
            .expect("guess");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: Value = response.json().await.expect("problem");
        bodies.push(body);
    }
    assert!(
        bodies.iter().all(|body| body == &bodies[0]),
        "every miss looks the same: {bodies:?}"
    );
    let response = guesser
        .get(stack.edge_url(&format!("/v1/share/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .expect("guess");
    assert_limited(response, 5).await;
    // The status endpoint and the share page count under the same limit.
    for path in ["/v1/share/{id}/status", "/s/{id}"] {
        let path = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let response = guesser
            .get(stack.edge_url(&path))
            .send()
            .await
            .expect(&path);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    // Someone else is not locked out by the guesser.
    let response = client_from(31)
        .get(stack.edge_url(&format!("/v1/share/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .expect("other");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_flood_past_the_limit_never_reaches_the_origin() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_AUTH_IP", "4/300");
        })
        .start()
        .await;
    let flooder = client_from(40);
    let mut refused_ids = Vec::new();
    let mut statuses = Vec::new();
    for attempt in 0..20 {
        let request_id = format!("flood-{attempt}-{}", uuid::Uuid::new_v4().simple());
        let response = flooder
            .post(stack.edge_url("/v1/auth/token"))
            .header("x-request-id", &request_id)
            .json(&json!({"email": format!("user{attempt}@example.com"), "password": "guess"}))
            .send()
            .await
            .expect("login");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused_ids.push(request_id);
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..4], [401, 401, 401, 401], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");

    // The four let through were logged; give the log a moment, then count.
    assert!(stack.origin_logged("\"/v1/auth/token\"").await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin_requests(&stack, "/v1/auth/token"), 4);
    let log = stack.origin_log();
    for id in &refused_ids {
        assert!(!log.contains(id.as_str()), "{id} reached the origin");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_limit_fails_closed_with_a_503() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_AUTH_IP", "thirty per minute");
        })
        .start()
        .await;
    let response = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("problem");
    assert_eq!(body["type"], "urn:oxvault:problem:service-unavailable");
    assert!(!body.to_string().contains("RATE_LIMIT"), "{body}");
    assert_eq!(origin_requests(&stack, "/v1/auth/token"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_against_one_limit_let_exactly_n_through() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("RATE_LIMIT_SHARE_IP", "5/300");
        })
        .start()
        .await;
    let client = client_from(50);
    // Twenty at once: one object per key decides them one after another, so exactly five
    // pass however they interleave.
    let requests = (0..20).map(|_| {
        let client = client.clone();
        let url = stack.edge_url(&format!("/v1/share/{}", uuid::Uuid::new_v4()));
        tokio::spawn(async move { client.get(url).send().await.expect("lookup").status() })
    });
    let mut statuses = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        statuses.push(request.await.expect("task").as_u16());
    }
    let passed = statuses.iter().filter(|status| **status == 404).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((passed, refused), (5, 15), "{statuses:?}");
}

/// The origin's own coarse limit (the second line, per origin process): reached directly, a
/// costly route refuses the client past its limit with a 429 and `Retry-After`, other clients
/// and cheap routes still pass, and behind the edge it counts the address the edge vouches
/// for, not the edge's own.
#[tokio::test(flavor = "multi_thread")]
async fn the_origin_keeps_its_own_coarse_limit_when_reached_directly() {
    let stack = TestStack::builder()
        .origin_env("OXVAULT_ORIGIN_RATE_LIMIT", "3/60")
        .start()
        .await;
    let direct = client_from(2);
    let login = json!({"email": "nobody@example.com", "password": "wrong password"});
    for _ in 0..3 {
        let response = direct
            .post(stack.origin_url("/v1/auth/token"))
            .json(&login)
            .send()
            .await
            .expect("direct login");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = direct
        .post(stack.origin_url("/v1/auth/token"))
        .json(&login)
        .send()
        .await
        .expect("direct login");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&refused, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.expect("problem body");
    assert_eq!(body["type"], "urn:oxvault:problem:too-many-requests");

    // Cheap routes are not counted; another address has its own bucket.
    let health = direct
        .get(stack.origin_url("/v1/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    let other = client_from(3)
        .post(stack.origin_url("/v1/auth/token"))
        .json(&login)
        .send()
        .await
        .expect("login from another address");
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);

    // Through the edge the origin counts the client the edge names, not the edge's own
    // address: 127.0.0.2 stays refused (the edge's generous limits pass it on), 127.0.0.4 passes.
    let via_edge = post(&stack, &direct, "/v1/auth/token", login.clone()).await;
    assert_eq!(via_edge.status(), StatusCode::TOO_MANY_REQUESTS);
    let via_edge = post(&stack, &client_from(4), "/v1/auth/token", login.clone()).await;
    assert_eq!(via_edge.status(), StatusCode::UNAUTHORIZED);
}
