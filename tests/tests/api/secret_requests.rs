//! Secret requests through the edge: an agent asks, a person answers through the public
//! routes (no token), the value lands in the vault under the agent's policy, and the request
//! takes exactly one value. The page itself is driven in Chromium by `request_browser.rs`.

use oxvault_tests::shares::rfc3339_in;
use oxvault_tests::{Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const VALUE: &str = "sk-live-requested-3b7e";

/// An owner, a vault, and an agent allowed `permissions` on `api/**` there: (owner, vault,
/// agent id, agent token).
async fn agent_in_vault(
    stack: &TestStack,
    who: &str,
    permissions: &[&str],
) -> (Session, String, String, String) {
    let owner = stack
        .signup(&stack.email(&format!("{who}@example.com")))
        .await;
    let vault = stack.create_vault(&owner.access_token, "requests").await;
    let (agent_id, agent) = stack
        .create_agent(&owner.access_token, &format!("{who}-bot"))
        .await;
    stack
        .grant_agent(
            &owner.access_token,
            &vault,
            &agent_id,
            "api/**",
            permissions,
        )
        .await;
    (owner, vault, agent_id, agent)
}

async fn ask(stack: &TestStack, token: &str, vault: &str, body: Value) -> (StatusCode, Value) {
    stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-requests"),
            token,
            Some(body),
        )
        .await
}

async fn open_request(stack: &TestStack, token: &str, vault: &str, path: &str) -> Value {
    let (status, created) = ask(
        stack,
        token,
        vault,
        json!({"path": path, "description": "the Stripe key for the billing job", "type": "api_key"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The public fulfilment, without a token, as the page sends it.
async fn fulfil(stack: &TestStack, id: &str, body: Value) -> (StatusCode, Value) {
    let response = stack
        .post_json(&format!("/v1/secret-requests/{id}/fulfil"), &body)
        .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn prompt(stack: &TestStack, id: &str) -> (StatusCode, Value) {
    let response = stack.get(&format!("/v1/secret-requests/{id}/prompt")).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn status_of(stack: &TestStack, token: &str, id: &str) -> Value {
    let (status, body) = stack
        .call(
            Method::GET,
            &format!("/v1/secret-requests/{id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_asks_a_person_and_then_reads_the_value_through_its_policy() {
    let stack = TestStack::shared().await;
    let (owner, vault, agent_id, agent) = agent_in_vault(&stack, "asker", &["read", "write"]).await;
    let created = open_request(&stack, &agent, &vault, "api/stripe").await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["type"], "api_key");
    assert_eq!(
        created["created_by"],
        json!({"type": "agent", "id": agent_id})
    );
    assert_eq!(
        created["request_url"],
        format!("{}/r/{id}", stack.edge_base())
    );
    assert!(created["fulfilled_version"].is_null());

    // The person's side: public, no token. The prompt shows who asks, for what and why.
    let (status, shown) = prompt(&stack, id).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["requested_by"], "asker-bot");
    assert_eq!(shown["path"], "api/stripe");
    assert_eq!(shown["description"], "the Stripe key for the billing job");
    assert!(shown.get("value").is_none());

    let (status, answer) = fulfil(&stack, id, json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer, json!({"status": "fulfilled", "version": 1}));

    let done = status_of(&stack, &agent, id).await;
    assert_eq!(done["status"], "fulfilled");
    assert_eq!(done["fulfilled_version"], 1);
    let (status, secret) = stack.get_secret(&agent, &vault, "api/stripe").await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["value"], VALUE);
    assert_eq!(secret["type"], "api_key");

    // Single use: the link is closed to a second value and to the prompt.
    let (status, _) = fulfil(&stack, id, json!({"value": "second"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(prompt(&stack, id).await.0, StatusCode::NOT_FOUND);
    let (_, secret) = stack.get_secret(&agent, &vault, "api/stripe").await;
    assert_eq!(secret["version"], 1);

    // The write is audited as the agent's secret.write, naming the request, from the
    // person's address; the id (a credential while it was open) never reached a log line.
    let (status, events) = stack
        .call(
            Method::GET,
            "/v1/audit/events?action=secret.write",
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let write = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["details"]["secret_request_id"] == id)
        .unwrap_or_else(|| panic!("no secret.write names the request: {events}"));
    assert_eq!(write["actor_type"], "agent");
    assert_eq!(write["actor_id"], agent_id);
    assert_eq!(write["details"]["path"], "api/stripe");
    assert_eq!(write["details"]["via"], "secret_request");
    assert!(!write.to_string().contains(VALUE));
    assert!(
        !stack.origin_log().contains(id),
        "the request id reached the origin log"
    );
    assert!(
        !stack.edge_log().contains(id),
        "the request id reached the edge log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submits_write_exactly_one_version() {
    let stack = TestStack::shared().await;
    let (_, vault, _, agent) = agent_in_vault(&stack, "racer", &["read", "write"]).await;
    let created = open_request(&stack, &agent, &vault, "api/raced").await;
    let id = created["id"].as_str().expect("id").to_owned();
    let attempts = (0..8).map(|n| {
        let stack = &stack;
        let id = id.clone();
        async move {
            fulfil(stack, &id, json!({"value": format!("value-{n}")}))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    assert_eq!((won, refused), (1, 7), "{statuses:?}");
    let (_, secret) = stack.get_secret(&agent, &vault, "api/raced").await;
    assert_eq!(secret["version"], 1, "{secret}");
}

#[tokio::test(flavor = "multi_thread")]
async fn asking_needs_write_on_the_path_and_agents_cannot_mail() {
    let stack = TestStack::shared().await;
    let (owner, vault, _, reader) = agent_in_vault(&stack, "reader", &["read"]).await;
    let body = json!({"path": "api/x", "description": "why"});
    let (status, problem) = ask(&stack, &reader, &vault, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (_, writer) = stack.create_agent(&owner.access_token, "writer-bot").await;
    // No policy at all on that vault: the agent does not see it.
    let (status, _) = ask(&stack, &writer, &vault, body.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An agent with `write` still may not have the link mailed to an outside address.
    let (_, mail_vault, _, mailer) = agent_in_vault(&stack, "mailer", &["write"]).await;
    let mut mailing = body.clone();
    mailing["recipient_email"] = json!("someone@example.org");
    let (status, problem) = ask(&stack, &mailer, &mail_vault, mailing).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    // Bad fields: 400 with a problem body, never a 500.
    for bad in [
        json!({"path": "../etc", "description": "why"}),
        json!({"path": "api/x", "description": " "}),
        json!({"path": "api/x", "description": "why", "expires_at": "2020-01-01T00:00:00Z"}),
        json!({"path": "api/x", "description": "why", "expires_at": "2999-01-01T00:00:00Z"}),
        json!({"path": "api/x", "description": "why", "value": "no values here"}),
        json!({"path": "api/x", "description": "why", "type": "spaceship"}),
    ] {
        let (status, problem) = ask(&stack, &owner.access_token, &vault, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(problem["status"], 400, "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_policy_or_a_deactivated_agent_closes_its_requests() {
    let stack = TestStack::shared().await;
    let (owner, vault, agent_id, agent) =
        agent_in_vault(&stack, "closing", &["read", "write"]).await;
    let first = open_request(&stack, &agent, &vault, "api/one").await;
    let first = first["id"].as_str().expect("id").to_owned();

    // The policy goes: the request's write is refused, answered like any closed link.
    let (_, policies) = stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}/policies"),
            &owner.access_token,
            None,
        )
        .await;
    for policy in policies["policies"].as_array().into_iter().flatten() {
        let path = format!(
            "/v1/vaults/{vault}/policies/{}",
            policy["id"].as_str().unwrap()
        );
        let (status, _) = stack
            .call(Method::DELETE, &path, &owner.access_token, None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _) = fulfil(&stack, &first, json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, secret) = stack
        .get_secret(&owner.access_token, &vault, "api/one")
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing was written: {secret}"
    );

    // With the policy back, a second request; then the agent is deactivated.
    stack
        .grant_agent(
            &owner.access_token,
            &vault,
            &agent_id,
            "api/**",
            &["read", "write"],
        )
        .await;
    let second = open_request(&stack, &agent, &vault, "api/two").await;
    let second = second["id"].as_str().expect("id").to_owned();
    assert_eq!(prompt(&stack, &second).await.0, StatusCode::OK);
    stack.deactivate_agent(&owner.access_token, &agent_id).await;
    assert_eq!(prompt(&stack, &second).await.0, StatusCode::NOT_FOUND);
    let (status, _) = fulfil(&stack, &second, json!({"value": VALUE})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = stack
        .get_secret(&owner.access_token, &vault, "api/two")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_and_expired_requests_take_nothing_and_say_so() {
    let stack = TestStack::shared().await;
    let (owner, vault, _, agent) = agent_in_vault(&stack, "lapsing", &["read", "write"]).await;
    let cancelled = open_request(&stack, &agent, &vault, "api/cancelled").await;
    let cancelled = cancelled["id"].as_str().expect("id").to_owned();
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/v1/secret-requests/{cancelled}"),
            &agent,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(
        fulfil(&stack, &cancelled, json!({"value": VALUE})).await.0,
        StatusCode::NOT_FOUND
    );
    // Cancelling again answers the request as it is and records nothing more.
    let (status, again) = stack
        .call(
            Method::DELETE,
            &format!("/v1/secret-requests/{cancelled}"),
            &agent,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "cancelled");
    let (_, events) = stack
        .call(
            Method::GET,
            "/v1/audit/events?action=secret_request.cancel",
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );

    let (status, expiring) = ask(
        &stack,
        &agent,
        &vault,
        json!({"path": "api/expiring", "description": "soon gone",
               "expires_at": rfc3339_in(1_500)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{expiring}");
    let expiring = expiring["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    assert_eq!(prompt(&stack, &expiring).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        fulfil(&stack, &expiring, json!({"value": VALUE})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&stack, &agent, &expiring).await["status"],
        "expired"
    );

    // The vault's list, for the owner (who sees all of them) and the agent (its own).
    for token in [&owner.access_token, &agent] {
        let (status, list) = stack
            .call(
                Method::GET,
                &format!("/v1/vaults/{vault}/secret-requests"),
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let statuses: Vec<&str> = list["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|request| request["status"].as_str())
            .collect();
        assert_eq!(statuses, ["expired", "cancelled"], "{list}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn strangers_see_nothing_and_bad_ids_or_values_are_refused_cleanly() {
    let stack = TestStack::shared().await;
    let (owner, vault, _, agent) = agent_in_vault(&stack, "private", &["read", "write"]).await;
    let created = open_request(&stack, &agent, &vault, "api/private").await;
    let id = created["id"].as_str().expect("id");
    // A member of the same org who did not ask, and someone of another org: 404.
    let (member, _) = stack
        .invite_member(&owner, &stack.email("private-member@example.com"))
        .await;
    let stranger = stack
        .signup(&stack.email("private-stranger@example.com"))
        .await;
    for token in [&member.access_token, &stranger.access_token] {
        for method in [Method::GET, Method::DELETE] {
            let (status, _) = stack
                .call(
                    method.clone(),
                    &format!("/v1/secret-requests/{id}"),
                    token,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        }
    }
    // The owner may look.
    assert_eq!(
        status_of(&stack, &owner.access_token, id).await["status"],
        "pending"
    );

    for bad_id in ["nope", "00000000-0000-0000-0000-000000000000"] {
        assert_eq!(prompt(&stack, bad_id).await.0, StatusCode::NOT_FOUND);
        let (status, problem) = fulfil(&stack, bad_id, json!({"value": VALUE})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        assert_eq!(problem["status"], 404);
    }
    for bad in [
        json!({"value": ""}),
        json!({}),
        json!({"value": VALUE, "path": "x"}),
    ] {
        let (status, problem) = fulfil(&stack, id, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
    }
    // Still open after all that.
    assert_eq!(prompt(&stack, id).await.0, StatusCode::OK);
    // A user asker is named by display name (an unproven address is never shown).
    let (status, own) = ask(
        &stack,
        &owner.access_token,
        &vault,
        json!({"path": "api/owners", "description": "mine"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (_, shown) = prompt(&stack, own["id"].as_str().expect("id")).await;
    assert_eq!(shown["requested_by"], "Test User", "{shown}");
    // Without a token the creator's routes are refused at the edge.
    let response = stack.get(&format!("/v1/secret-requests/{id}")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_page_is_served_by_the_edge_with_the_share_page_rules() {
    let stack = TestStack::shared().await;
    let (_, vault, _, agent) = agent_in_vault(&stack, "pager", &["read", "write"]).await;
    let (status, created) = ask(
        &stack,
        &agent,
        &vault,
        json!({"path": "api/page", "description": "<b>bold</b> & \"quoted\""}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    let page = stack.get(&format!("/r/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-robots-tag"), "noindex, nofollow");
    assert!(header("content-security-policy").contains("script-src 'nonce-"));
    let html = page.text().await.expect("page body");
    assert!(
        html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"),
        "{html}"
    );
    assert!(!html.contains("<b>bold"));
    assert!(html.contains(r#"id="value""#));

    // Loading it (as previewers do) changes nothing; other methods are refused; closed and
    // unknown links are one and the same 404.
    assert_eq!(prompt(&stack, id).await.0, StatusCode::OK);
    let client = oxvault_tests::client();
    let post = client
        .post(stack.edge_url(&format!("/r/{id}")))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        fulfil(&stack, id, json!({"value": VALUE})).await.0,
        StatusCode::CREATED
    );
    let closed = stack.get(&format!("/r/{id}")).await;
    assert_eq!(closed.status(), StatusCode::NOT_FOUND);
    let closed = closed.text().await.expect("body");
    let unknown = stack.get("/r/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(!closed.contains(r#"id="value""#));
    let strip = |html: &str| html.split("nonce").next().unwrap_or_default().to_owned();
    assert_eq!(strip(&closed), strip(&unknown.text().await.expect("body")));
}
