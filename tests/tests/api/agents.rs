//! Agents through the edge: create, list, get, change, deactivate, rotate keys, the agent's
//! view of itself, and the exchange of an `ocv_` key for an access token. SECURITY.md cases 6
//! (rotated and malformed keys refused, one answer for every failure), 7 (another org's agent
//! ids answer 404), 9 (fields the SDK sends for features oxvault lacks, and server-owned
//! fields, do not break or steer a create) and 11 (a change or deactivation kills the agent's
//! existing tokens at once).

use oxvault_core::api_key::{KEY_SECRET_BYTES, KeyKind, format_key};
use oxvault_tests::{Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Creates an agent as `session`; returns the whole answer (`{agent, api_key}`).
async fn create_agent(stack: &TestStack, session: &Session, body: Value) -> Value {
    let (status, created) = stack
        .call(
            Method::POST,
            "/v1/agents",
            &session.access_token,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// `POST /v1/auth/agent-token`, without credentials: status and body.
async fn exchange(stack: &TestStack, body: Value) -> (StatusCode, Value) {
    let response = stack.post_json("/v1/auth/agent-token", &body).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Exchanges `api_key` and returns the access token, asserting success.
async fn agent_token(stack: &TestStack, api_key: &str) -> String {
    let (status, body) = exchange(stack, json!({"api_key": api_key})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn agent_me(stack: &TestStack, token: &str) -> (StatusCode, Value) {
    stack.call(Method::GET, "/v1/agents/me", token, None).await
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

#[tokio::test]
async fn a_created_agent_shows_its_key_once_and_listings_never_do() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let vault = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";

    let created = create_agent(
        &stack,
        &ada,
        json!({
            "name": "  deploy bot ", "description": "ships things",
            "scopes": ["secrets:read", "vaults:*"], "vault_ids": [vault],
            "token_ttl_seconds": 600,
        }),
    )
    .await;

    let api_key = str_of(&created, "api_key");
    assert!(
        api_key.starts_with("ocv_") && api_key.len() == 43,
        "{api_key}"
    );
    let agent = &created["agent"];
    let agent_id = str_of(agent, "id");
    assert_eq!(agent["name"], "deploy bot");
    assert_eq!(agent["description"], "ships things");
    assert_eq!(agent["auth_method"], "api_key");
    assert_eq!(agent["is_active"], true);
    assert_eq!(agent["intents_api_enabled"], false);
    assert_eq!(agent["shroud_enabled"], false);
    assert_eq!(agent["scopes"], json!(["secrets:read", "vaults:*"]));
    assert_eq!(agent["vault_ids"], json!([vault]));
    assert_eq!(agent["token_ttl_seconds"], 600);

    let (status, list) = stack
        .call(Method::GET, "/v1/agents", &ada.access_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    assert_eq!(list["agents"][0]["id"], agent_id);
    let (status, one) = stack
        .call(
            Method::GET,
            &format!("/v1/agents/{agent_id}"),
            &ada.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one, agent);
    for shown in [list.to_string(), one.to_string()] {
        assert!(!shown.contains(api_key), "the key was shown again");
        assert!(
            !shown.contains(&api_key[16..]),
            "a part of the secret was shown"
        );
        assert!(!shown.contains("key_hash"), "{shown}");
    }
}

#[tokio::test]
async fn the_key_exchanges_for_a_token_with_or_without_the_agent_id() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let vault = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
    let created = create_agent(
        &stack,
        &ada,
        json!({"name": "reader", "scopes": ["secrets:read"], "vault_ids": [vault], "token_ttl_seconds": 120}),
    )
    .await;
    let other = create_agent(&stack, &ada, json!({"name": "other"})).await;
    let api_key = str_of(&created, "api_key");
    let agent_id = str_of(&created["agent"], "id");

    // Key only: the answer names the agent the key belongs to.
    let (status, token) = exchange(&stack, json!({"api_key": api_key})).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["agent_id"], agent_id);
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 120);
    assert_eq!(token["vault_ids"], json!([vault]));

    let (status, me) = agent_me(&stack, str_of(&token, "access_token")).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], agent_id);
    assert_eq!(me["name"], "reader");
    assert_eq!(me["scopes"], json!(["secrets:read"]));
    assert_eq!(me["vault_ids"], json!([vault]));
    assert_eq!(me["is_active"], true);
    let (_, profile) = stack.me(&ada.access_token).await;
    assert_eq!(me["org_id"], profile["org_id"]);
    assert_eq!(me["created_by"], profile["id"]);

    // With the right id; the default lifetime is an hour.
    let (status, with_id) =
        exchange(&stack, json!({"api_key": api_key, "agent_id": agent_id})).await;
    assert_eq!(status, StatusCode::OK, "{with_id}");
    assert_eq!(with_id["agent_id"], agent_id);
    let (status, default_ttl) = exchange(&stack, json!({"api_key": other["api_key"]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(default_ttl["expires_in"], 3600);

    // Another agent's id, or no id at all, with this key: one 401 for both.
    let (status, wrong_id) = exchange(
        &stack,
        json!({"api_key": api_key, "agent_id": other["agent"]["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, not_an_id) =
        exchange(&stack, json!({"api_key": api_key, "agent_id": "nope"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_id, not_an_id);
}

#[tokio::test]
async fn malformed_and_unknown_keys_get_one_and_the_same_401() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_agent(&stack, &ada, json!({"name": "bot"})).await;
    let api_key = str_of(&created, "api_key");

    let last = if api_key.ends_with('0') { '1' } else { '0' };
    let bad_checksum = format!("{}{last}", &api_key[..42]);
    let user_key = format_key(KeyKind::User, &[7; KEY_SECRET_BYTES]);
    let foreign_prefix = format!("ghp_{}", &api_key[4..]);
    let unknown = format_key(KeyKind::Agent, &[7; KEY_SECRET_BYTES]);
    let (_, reference) = exchange(&stack, json!({"api_key": unknown})).await;

    for key in [
        bad_checksum.as_str(),
        &user_key,
        &foreign_prefix,
        "ocv_garbage",
        "",
        &unknown,
    ] {
        let (status, body) = exchange(&stack, json!({"api_key": key})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {body}");
        assert_eq!(body, reference, "{key:?}: the answers must not differ");
    }
    // The real key still works: nothing above locked it.
    agent_token(&stack, api_key).await;
}

#[tokio::test]
async fn rotating_the_key_kills_the_old_key_and_the_tokens_minted_with_it() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_agent(&stack, &ada, json!({"name": "bot"})).await;
    let old_key = str_of(&created, "api_key");
    let agent_id = str_of(&created["agent"], "id");
    let old_token = agent_token(&stack, old_key).await;
    assert_eq!(agent_me(&stack, &old_token).await.0, StatusCode::OK);

    let (status, rotated) = stack
        .call(
            Method::POST,
            &format!("/v1/agents/{agent_id}/rotate-key"),
            &ada.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = str_of(&rotated, "api_key");
    assert!(new_key.starts_with("ocv_"));
    assert_ne!(new_key, old_key);

    let (status, _) = exchange(&stack, json!({"api_key": old_key})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old key still works");
    assert_eq!(
        agent_me(&stack, &old_token).await.0,
        StatusCode::UNAUTHORIZED,
        "a token minted before the rotation still works"
    );
    let new_token = agent_token(&stack, new_key).await;
    let (status, me) = agent_me(&stack, &new_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], agent_id);
}

#[tokio::test]
async fn a_change_to_an_agent_revokes_its_existing_tokens() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_agent(
        &stack,
        &ada,
        json!({"name": "bot", "description": "old", "scopes": ["secrets:read"]}),
    )
    .await;
    let api_key = str_of(&created, "api_key");
    let agent_id = str_of(&created["agent"], "id");
    let path = format!("/v1/agents/{agent_id}");
    let before = agent_token(&stack, api_key).await;

    let (status, updated) = stack
        .call(
            Method::PATCH,
            &path,
            &ada.access_token,
            Some(json!({"scopes": ["secrets:write"], "name": "renamed", "token_ttl_seconds": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["scopes"], json!(["secrets:write"]));
    assert_eq!(updated["name"], "renamed");
    assert_eq!(
        updated["description"], "old",
        "absent fields stay as they are"
    );
    assert_eq!(updated["token_ttl_seconds"], 300);

    assert_eq!(
        agent_me(&stack, &before).await.0,
        StatusCode::UNAUTHORIZED,
        "a token from before the change still works"
    );
    let (status, fresh) = exchange(&stack, json!({"api_key": api_key})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fresh["expires_in"], 300);
    let (status, me) = agent_me(&stack, str_of(&fresh, "access_token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["scopes"], json!(["secrets:write"]));

    // Deactivating by PATCH kills the key and the fresh token alike; reactivating revives
    // the key (not the token).
    let fresh_token = str_of(&fresh, "access_token");
    let (status, off) = stack
        .call(
            Method::PATCH,
            &path,
            &ada.access_token,
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["is_active"], false);
    assert_eq!(
        agent_me(&stack, fresh_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        exchange(&stack, json!({"api_key": api_key})).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = stack
        .call(
            Method::PATCH,
            &path,
            &ada.access_token,
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        agent_me(&stack, fresh_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    agent_token(&stack, api_key).await;
}

#[tokio::test]
async fn deleting_an_agent_deactivates_its_key_and_its_tokens() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_agent(&stack, &ada, json!({"name": "bot"})).await;
    let api_key = str_of(&created, "api_key");
    let agent_id = str_of(&created["agent"], "id");
    let path = format!("/v1/agents/{agent_id}");
    let token = agent_token(&stack, api_key).await;

    let (status, body) = stack
        .call(Method::DELETE, &path, &ada.access_token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);

    assert_eq!(agent_me(&stack, &token).await.0, StatusCode::UNAUTHORIZED);
    let (status, refused) = exchange(&stack, json!({"api_key": api_key})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unknown = format_key(KeyKind::Agent, &[7; KEY_SECRET_BYTES]);
    assert_eq!(
        refused,
        exchange(&stack, json!({"api_key": unknown})).await.1,
        "a deactivated agent's key is refused like an unknown one"
    );
    let (status, shown) = stack
        .call(Method::GET, &path, &ada.access_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["is_active"], false);
}

#[tokio::test]
async fn another_orgs_agents_are_not_found_on_every_route() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let mallory = stack.signup(&stack.email("mallory@example.com")).await;
    let created = create_agent(&stack, &ada, json!({"name": "ada's bot"})).await;
    let api_key = str_of(&created, "api_key");
    let agent_id = str_of(&created["agent"], "id");
    let path = format!("/v1/agents/{agent_id}");
    let token = agent_token(&stack, api_key).await;

    for (method, route, body) in [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"is_active": false})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate-key"), None),
    ] {
        let (status, problem) = stack
            .call(method.clone(), &route, &mallory.access_token, body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {route}: {problem}");
        assert_eq!(problem["status"], 404);
    }
    let (status, list) = stack
        .call(Method::GET, "/v1/agents", &mallory.access_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["agents"], json!([]));

    // None of it touched ada's agent: its key and its token still work, unchanged.
    let (status, me) = agent_me(&stack, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["is_active"], true);
    agent_token(&stack, api_key).await;
}

#[tokio::test]
async fn agents_cannot_manage_agents_and_users_have_no_agent_profile() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_agent(&stack, &ada, json!({"name": "bot"})).await;
    let agent_id = str_of(&created["agent"], "id");
    let path = format!("/v1/agents/{agent_id}");
    let token = agent_token(&stack, str_of(&created, "api_key")).await;

    for (method, route, body) in [
        (
            Method::POST,
            "/v1/agents".to_owned(),
            Some(json!({"name": "child"})),
        ),
        (Method::GET, "/v1/agents".to_owned(), None),
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"scopes": ["*"]}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate-key"), None),
    ] {
        let (status, problem) = stack.call(method.clone(), &route, &token, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {route}: {problem}");
    }
    // The refused PATCH changed nothing, so the token is still good.
    let (status, me) = agent_me(&stack, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["scopes"], json!([]));

    let (status, _) = agent_me(&stack, &ada.access_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sdk_only_and_server_owned_fields_on_create_neither_fail_nor_apply() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let foreign_org = "00000000-0000-0000-0000-000000000001";

    // What oneclaw 0.61's `agents.create` sends, plus fields only the server may set.
    let created = create_agent(
        &stack,
        &ada,
        json!({
            "name": "sdk bot", "description": "", "auth_method": "api_key",
            "intents_api_enabled": false, "shroud_enabled": false, "tx_max_value": "1",
            "tx_allowed_chains": ["ethereum"], "shroud_config": {"pii_policy": "redact"},
            "org_id": foreign_org, "created_by": foreign_org, "is_active": false,
            "token_version": 99, "id": foreign_org,
        }),
    )
    .await;
    let agent = &created["agent"];
    assert_ne!(agent["id"], foreign_org);
    assert_eq!(agent["is_active"], true);
    assert_eq!(agent["description"], Value::Null);

    let (status, token) = exchange(&stack, json!({"api_key": created["api_key"]})).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let (_, me) = agent_me(&stack, str_of(&token, "access_token")).await;
    let (_, profile) = stack.me(&ada.access_token).await;
    assert_eq!(me["org_id"], profile["org_id"]);
    assert_eq!(me["created_by"], profile["id"]);
}

#[tokio::test]
async fn invalid_agent_settings_are_400_problems() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let many_vaults: Vec<String> = (0..101u32)
        .map(|n| format!("00000000-0000-4000-8000-{n:012}"))
        .collect();

    for body in [
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "bot", "token_ttl_seconds": 59}),
        json!({"name": "bot", "token_ttl_seconds": 86_401}),
        json!({"name": "bot", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "bot", "scopes": ["Secrets:Read"]}),
        json!({"name": "bot", "scopes": [""]}),
        json!({"name": "bot", "vault_ids": ["not-a-uuid"]}),
        json!({"name": "bot", "vault_ids": many_vaults}),
        json!({"description": "no name"}),
    ] {
        let (status, problem) = stack
            .call(
                Method::POST,
                "/v1/agents",
                &ada.access_token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem["status"], 400);
    }
    let (_, list) = stack
        .call(Method::GET, "/v1/agents", &ada.access_token, None)
        .await;
    assert_eq!(list["agents"], json!([]), "nothing was created");

    let created = create_agent(&stack, &ada, json!({"name": "bot"})).await;
    let path = format!("/v1/agents/{}", str_of(&created["agent"], "id"));
    for body in [
        json!({"name": ""}),
        json!({"token_ttl_seconds": 10}),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
        json!({"scopes": ["a b"]}),
    ] {
        let (status, problem) = stack
            .call(Method::PATCH, &path, &ada.access_token, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }
}

#[tokio::test]
async fn malformed_agent_ids_in_the_path_are_404_problems() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;

    for id in [
        "not-a-uuid",
        "123",
        "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4",
        "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4fff",
        "%00",
        "00000000-0000-0000-0000-000000000000",
    ] {
        let path = format!("/v1/agents/{id}");
        for (method, route, body) in [
            (Method::GET, path.clone(), None),
            (Method::PATCH, path.clone(), Some(json!({"name": "x"}))),
            (Method::DELETE, path.clone(), None),
            (Method::POST, format!("{path}/rotate-key"), None),
        ] {
            let (status, problem) = stack
                .call(method.clone(), &route, &ada.access_token, body)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {route}: {problem}");
            assert_eq!(problem["status"], 404, "{method} {route}");
        }
    }
}

#[tokio::test]
async fn agent_lists_page_in_creation_order_and_names_are_bounded() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("agents-pager@example.com")).await;
    let token = owner.access_token.as_str();
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(stack.create_agent(token, &format!("bot-{n}")).await.0);
    }
    let (listed, pages) = stack.page_through(token, "/v1/agents", "agents", 2).await;
    let listed: Vec<String> = listed
        .iter()
        .map(|agent| agent["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((listed, pages), (made, 3));
    stack.assert_bad_pages_refused(token, "/v1/agents").await;

    let (status, body) = stack
        .call(
            Method::POST,
            "/v1/agents",
            token,
            Some(json!({"name": "tab\there"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
