//! Billing usage through the edge: every authenticated request is metered (principal, method,
//! route template, status) and written in batches; `GET /v1/billing/usage` and `/history`
//! report it, split into free and paid with exact decimal costs; graceful shutdown writes what
//! is still buffered; tier object limits answer 403 `resource_limit_exceeded`, exactly even
//! under concurrent creates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxvault_tests::TestStack;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// A stack whose meter flushes every 100 ms, with more origin settings from `env`.
async fn metered_stack(env: &[(&str, &str)]) -> TestStack {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TestStack::builder()
        .origin(move |settings| {
            settings
                .extra_env
                .push(("OXVAULT_USAGE_FLUSH_MS".to_owned(), "100".to_owned()));
            settings.extra_env.extend(env);
        })
        .start()
        .await
}

async fn db(stack: &TestStack) -> PgConnection {
    PgConnection::connect(stack.database_url()).await.unwrap()
}

async fn stored_rows(stack: &TestStack) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_events")
        .fetch_one(&mut db(stack).await)
        .await
        .unwrap()
}

/// Waits until exactly `expected` usage rows are stored (the meter writes within a flush
/// interval); fails if more show up or they do not arrive.
async fn wait_for_rows(stack: &TestStack, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = stored_rows(stack).await;
        assert!(
            stored <= expected,
            "{stored} rows stored, expected {expected}"
        );
        if stored == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {stored} of {expected} usage rows were written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn usage(stack: &TestStack, token: &str) -> Value {
    let (status, body) = stack
        .call(Method::GET, "/v1/billing/usage", token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn history(stack: &TestStack, token: &str, query: &str) -> (StatusCode, Value) {
    stack
        .call(
            Method::GET,
            &format!("/v1/billing/history{query}"),
            token,
            None,
        )
        .await
}

/// The events of a history answer as (principal_type, method, endpoint, status_code).
fn summaries(events: &[Value]) -> Vec<(String, String, String, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["principal_type"].as_str().unwrap().to_owned(),
                e["method"].as_str().unwrap().to_owned(),
                e["endpoint"].as_str().unwrap().to_owned(),
                e["status_code"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn row(kind: &str, method: &str, endpoint: &str, status: u64) -> (String, String, String, u64) {
    (
        kind.to_owned(),
        method.to_owned(),
        endpoint.to_owned(),
        status,
    )
}

const SECRET_ROUTE: &str = "/v1/vaults/{vault_id}/secrets/{*path}";

async fn org_of(stack: &TestStack, email: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT org_id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&mut db(stack).await)
        .await
        .unwrap()
}

async fn set_tier(stack: &TestStack, email: &str, tier: &str) {
    let org = org_of(stack, email).await;
    sqlx::query("UPDATE organizations SET billing_tier = $1 WHERE id = $2")
        .bind(tier)
        .bind(org)
        .execute(&mut db(stack).await)
        .await
        .unwrap();
}

fn assert_limit_refusal(status: StatusCode, body: &Value, noun: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "resource_limit_exceeded", "{body}");
    assert_eq!(body["title"], "Resource limit exceeded", "{body}");
    assert_eq!(body["status"], 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(noun), "{detail}");
}

#[tokio::test]
async fn usage_counts_match_the_requests_made() {
    let stack = metered_stack(&[]).await;
    let owner = stack.signup("meter@example.com").await;
    let token = &owner.access_token;

    // Seven metered requests: user writes and reads (a 404 among them), then an agent's two
    // refused reads of billing (403). Sign-up and the key exchange are not metered.
    let (status, vault) = stack
        .call(
            Method::POST,
            "/v1/vaults",
            token,
            Some(json!({"name": "m"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vault}");
    let (vault_id, user_id) = (
        vault["id"].as_str().unwrap(),
        vault["created_by"].as_str().unwrap(),
    );
    let body = json!({"value": "meter-canary-value"});
    let (status, _) = stack
        .put_secret(token, vault_id, "prod/db-password", body)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = stack.get_secret(token, vault_id, "prod/db-password").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stack.get_secret(token, vault_id, "prod/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (agent_id, agent_token) = stack.create_agent(token, "meter bot").await;
    let (status, body) = stack
        .call(Method::GET, "/v1/billing/usage", &agent_token, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = history(&stack, &agent_token, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    wait_for_rows(&stack, 7).await;

    let summary = usage(&stack, token).await;
    assert_eq!(
        summary,
        json!({
            "billing_tier": "free",
            "free_tier_limit": 100000,
            "current_month": {
                "total_requests": 7, "paid_requests": 0, "free_requests": 7,
                "total_cost_usd": "0.0000",
            },
        })
    );

    let (status, body) = history(&stack, token, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body.to_string();
    for concrete in [
        "prod/db-password",
        "prod/missing",
        vault_id,
        "meter-canary-value",
    ] {
        assert!(!text.contains(concrete), "{concrete} leaked into {text}");
    }
    // The usage call above may or may not be written yet; everything else must be, in order.
    let events: Vec<Value> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !(e["endpoint"] == "/v1/billing/usage" && e["principal_type"] == "user"))
        .cloned()
        .collect();
    assert_eq!(
        summaries(&events),
        [
            row("agent", "GET", "/v1/billing/history", 403),
            row("agent", "GET", "/v1/billing/usage", 403),
            row("user", "POST", "/v1/agents", 201),
            row("user", "GET", SECRET_ROUTE, 404),
            row("user", "GET", SECRET_ROUTE, 200),
            row("user", "PUT", SECRET_ROUTE, 201),
            row("user", "POST", "/v1/vaults", 201),
        ]
    );
    for event in &events {
        let expected_id = if event["principal_type"] == "agent" {
            &agent_id
        } else {
            user_id
        };
        assert_eq!(event["principal_id"], *expected_id, "{event}");
        assert_eq!(event["is_paid"], false, "{event}");
        assert_eq!(event["price_usd"], "0.0000", "{event}");
        assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(event["created_at"].is_string());
    }

    // The billing reads count too: the usage and history calls above are requests 8 and 9.
    wait_for_rows(&stack, 9).await;
    assert_eq!(
        usage(&stack, token).await["current_month"]["total_requests"],
        9
    );
}

#[tokio::test]
async fn requests_past_the_free_allowance_are_paid_at_their_class_price() {
    let stack = metered_stack(&[(
        "OXVAULT_BILLING_TIER_FREE",
        "requests=3,read_price=0.0015,write_price=0.0075",
    )])
    .await;
    let owner = stack.signup("payg@example.com").await;
    let token = &owner.access_token;

    // Ranks 1-3 free (reads), 4 a paid write, 5 and 6 paid reads.
    for _ in 0..3 {
        let (status, _) = stack.call(Method::GET, "/v1/vaults", token, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let vault = stack.create_vault(token, "paid").await;
    let (status, _) = stack
        .call(Method::GET, &format!("/v1/vaults/{vault}"), token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stack.call(Method::GET, "/v1/vaults", token, None).await;
    assert_eq!(status, StatusCode::OK);
    wait_for_rows(&stack, 6).await;

    let summary = usage(&stack, token).await;

    assert_eq!(summary["free_tier_limit"], 3);
    assert_eq!(
        summary["current_month"],
        json!({
            "total_requests": 6, "paid_requests": 3, "free_requests": 3,
            // 0.0075 + 2 * 0.0015, exactly.
            "total_cost_usd": "0.0105",
        })
    );

    wait_for_rows(&stack, 7).await;
    let (status, body) = history(&stack, token, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let priced: Vec<(String, String, bool, String)> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["endpoint"].as_str().unwrap().to_owned(),
                e["is_paid"].as_bool().unwrap(),
                e["price_usd"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |method: &str, endpoint: &str, paid: bool, price: &str| {
        (
            method.to_owned(),
            endpoint.to_owned(),
            paid,
            price.to_owned(),
        )
    };
    assert_eq!(
        priced,
        [
            expect("GET", "/v1/billing/usage", true, "0.0015"),
            expect("GET", "/v1/vaults", true, "0.0015"),
            expect("GET", "/v1/vaults/{vault_id}", true, "0.0015"),
            expect("POST", "/v1/vaults", true, "0.0075"),
            expect("GET", "/v1/vaults", false, "0.0000"),
            expect("GET", "/v1/vaults", false, "0.0000"),
            expect("GET", "/v1/vaults", false, "0.0000"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_shutdown_writes_every_buffered_request() {
    // A flush interval far longer than the test: only the shutdown can write these rows.
    let mut stack = TestStack::builder()
        .origin_env("OXVAULT_USAGE_FLUSH_MS", "600000")
        .start()
        .await;
    let owner = stack.signup("drain@example.com").await;
    stack.create_vault(&owner.access_token, "drained").await;
    for _ in 0..20 {
        let (status, _) = stack
            .call(Method::GET, "/v1/vaults", &owner.access_token, None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored_rows(&stack).await,
        0,
        "nothing is written before a flush"
    );

    stack.own_mut().origin.process().signal("TERM");
    let status = tokio::task::block_in_place(|| {
        stack
            .own_mut()
            .origin
            .process()
            .wait_timeout(Duration::from_secs(20))
    });

    let status = status.expect("the origin exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert_eq!(stored_rows(&stack).await, 21);
    let org = org_of(&stack, "drain@example.com").await;
    let in_org: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM usage_events WHERE org_id = $1 AND method = 'GET'",
    )
    .bind(org)
    .fetch_one(&mut db(&stack).await)
    .await
    .unwrap();
    assert_eq!(in_org, 20);
    assert!(
        stack
            .origin_log()
            .contains("every metered request is written"),
        "{}",
        stack.origin_log()
    );
}

#[tokio::test]
async fn tier_object_limits_answer_403_resource_limit_exceeded() {
    let stack =
        metered_stack(&[("OXVAULT_BILLING_TIER_FREE", "vaults=2,secrets=2,agents=1")]).await;
    let owner = stack.signup("limits@example.com").await;
    let token = &owner.access_token;

    // Vaults: two live ones at most; deleting one frees its slot.
    let first = stack.create_vault(token, "one").await;
    let second = stack.create_vault(token, "two").await;
    let (status, body) = stack
        .call(
            Method::POST,
            "/v1/vaults",
            token,
            Some(json!({"name": "three"})),
        )
        .await;
    assert_limit_refusal(status, &body, "vaults");
    assert!(body["detail"].as_str().unwrap().contains("free"), "{body}");
    let (status, _) = stack
        .call(Method::DELETE, &format!("/v1/vaults/{second}"), token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let third = stack.create_vault(token, "three").await;

    // Secrets: two live paths; new versions of a path are not new secrets.
    for path in ["a", "b"] {
        let (status, body) = stack
            .put_secret(token, &first, path, json!({"value": "v1"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = stack
        .put_secret(token, &third, "c", json!({"value": "v1"}))
        .await;
    assert_limit_refusal(status, &body, "secrets");
    let (status, body) = stack
        .put_secret(token, &first, "a", json!({"value": "v2"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 2);
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{first}/secrets/b"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = stack
        .put_secret(token, &third, "c", json!({"value": "v1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A deleted path coming back is a live secret again, and counts.
    let (status, body) = stack
        .put_secret(token, &first, "b", json!({"value": "back"}))
        .await;
    assert_limit_refusal(status, &body, "secrets");

    // Agents: one active; a deactivated one frees its slot.
    let (agent_id, _) = stack.create_agent(token, "only bot").await;
    let (status, body) = stack
        .call(
            Method::POST,
            "/v1/agents",
            token,
            Some(json!({"name": "extra"})),
        )
        .await;
    assert_limit_refusal(status, &body, "agents");
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/agents/{agent_id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    stack.create_agent(token, "replacement").await;

    // Limits are per org.
    let other = stack.signup("other-org@example.com").await;
    stack.create_vault(&other.access_token, "theirs").await;
    stack.create_vault(&other.access_token, "theirs too").await;

    // Another tier, other limits; an unknown tier counts as free.
    set_tier(&stack, "limits@example.com", "pro").await;
    stack.create_vault(token, "pro vault").await;
    assert_eq!(usage(&stack, token).await["billing_tier"], "pro");
    set_tier(&stack, "limits@example.com", "platinum").await;
    let (status, body) = stack
        .call(
            Method::POST,
            "/v1/vaults",
            token,
            Some(json!({"name": "plat"})),
        )
        .await;
    assert_limit_refusal(status, &body, "vaults");
    assert_eq!(usage(&stack, token).await["billing_tier"], "free");
    assert!(
        stack
            .origin_logged("an org is on a tier this origin does not know")
            .await
    );
}

#[tokio::test]
async fn concurrent_creates_cannot_overrun_the_last_slot() {
    let stack = Arc::new(metered_stack(&[("OXVAULT_BILLING_TIER_FREE", "vaults=3")]).await);
    let owner = stack.signup("race-limit@example.com").await;
    stack.create_vault(&owner.access_token, "one").await;
    stack.create_vault(&owner.access_token, "two").await;

    // Straight to the origin, all released at once: the edge would add its own spacing.
    let racers = 12;
    let start = Arc::new(tokio::sync::Barrier::new(racers));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..racers {
        let (stack, token, start) = (stack.clone(), owner.access_token.clone(), start.clone());
        tasks.spawn(async move {
            let request = stack
                .client
                .post(stack.origin_url("/v1/vaults"))
                .bearer_auth(token)
                .json(&json!({"name": format!("racer {i}")}));
            start.wait().await;
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }

    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_limit_refusal(*status, body, "vaults");
    }
    let org = org_of(&stack, "race-limit@example.com").await;
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM vaults WHERE org_id = $1 AND deleted_at IS NULL")
            .bind(org)
            .fetch_one(&mut db(&stack).await)
            .await
            .unwrap();
    assert_eq!(live, 3);
}

#[tokio::test]
async fn history_limits_outside_1_to_500_are_refused() {
    let stack = metered_stack(&[]).await;
    let owner = stack.signup("limit-check@example.com").await;
    let token = &owner.access_token;
    for _ in 0..3 {
        stack.call(Method::GET, "/v1/vaults", token, None).await;
    }
    wait_for_rows(&stack, 3).await;

    for bad in ["0", "501", "-1", "abc", "1.5", "", "99999999999"] {
        let (status, body) = history(&stack, token, &format!("?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {body}");
        assert_eq!(body["type"], "urn:oxvault:problem:bad-request", "{body}");
    }
    let (status, body) = history(&stack, token, "?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    let (status, body) = history(&stack, token, "?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["events"].as_array().unwrap().len() >= 3, "{body}");
}

#[tokio::test]
async fn an_org_sees_only_its_own_usage() {
    let stack = metered_stack(&[]).await;
    let ada = stack.signup("ada-usage@example.com").await;
    let bob = stack.signup("bob-usage@example.com").await;
    for _ in 0..4 {
        stack
            .call(Method::GET, "/v1/vaults", &ada.access_token, None)
            .await;
    }
    stack.create_vault(&bob.access_token, "bob's").await;
    wait_for_rows(&stack, 5).await;

    assert_eq!(
        usage(&stack, &bob.access_token).await["current_month"]["total_requests"],
        1
    );
    assert_eq!(
        usage(&stack, &ada.access_token).await["current_month"]["total_requests"],
        4
    );
    wait_for_rows(&stack, 7).await;
    let (status, body) = history(&stack, &bob.access_token, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bob_id = stack.user_id(&bob.access_token).await;
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{body}");
    assert!(
        events.iter().all(|e| e["principal_id"] == *bob_id.as_str()),
        "{body}"
    );
}
