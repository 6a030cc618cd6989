//! Personal API keys through the edge: create, list, exchange, revoke. SECURITY.md cases 6
//! (malformed keys refused before any lookup, one answer for every failure) and 7 (another
//! user's or org's key id answers 404).

use oxvault_core::api_key::{KEY_SECRET_BYTES, KeyKind, format_key};
use oxvault_tests::{Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Creates a key; returns the whole answer.
async fn create_key(stack: &TestStack, session: &Session, body: Value) -> Value {
    let (status, created) = stack
        .call(
            Method::POST,
            "/v1/auth/api-keys",
            &session.access_token,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn list_keys(stack: &TestStack, token: &str) -> (StatusCode, Value) {
    stack
        .call(Method::GET, "/v1/auth/api-keys", token, None)
        .await
}

async fn revoke(stack: &TestStack, token: &str, key_id: &str) -> StatusCode {
    let path = format!("/v1/auth/api-keys/{key_id}");
    stack.call(Method::DELETE, &path, token, None).await.0
}

/// `POST /v1/auth/api-key-token`, without credentials: status and body.
async fn exchange(stack: &TestStack, api_key: &str) -> (StatusCode, Value) {
    let response = stack
        .post_json("/v1/auth/api-key-token", &json!({"api_key": api_key}))
        .await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_listed_by_its_prefix_only() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;

    let created = create_key(
        &stack,
        &ada,
        json!({"name": " deploy bot ", "scopes": ["vaults:read", "secrets:*"]}),
    )
    .await;
    let api_key = created["api_key"].as_str().unwrap();
    assert!(api_key.starts_with("1ck_"), "{api_key}");
    assert_eq!(api_key.len(), 43);
    let key = &created["key"];
    assert_eq!(key["name"], "deploy bot");
    assert_eq!(key["key_prefix"], &api_key[..16]);
    assert_eq!(key["scopes"], json!(["vaults:read", "secrets:*"]));
    assert_eq!(key["is_active"], true);
    assert!(key["expires_at"].is_null() && key["last_used_at"].is_null());

    let (status, list) = list_keys(&stack, &ada.access_token).await;
    assert_eq!(status, StatusCode::OK);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], key["id"]);
    assert_eq!(keys[0]["key_prefix"], key["key_prefix"]);
    let text = list.to_string();
    assert!(
        !text.contains(&api_key[16..]),
        "the secret part is never listed"
    );
    assert!(keys[0].get("api_key").is_none() && keys[0].get("key_hash").is_none());
}

#[tokio::test]
async fn a_key_exchanges_for_a_session_of_its_user_without_a_refresh_token() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_key(&stack, &ada, json!({"name": "ci"})).await;

    let (status, token) = exchange(&stack, created["api_key"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_i64().unwrap() > 0);
    assert!(token.get("refresh_token").is_none(), "{token}");

    let access = token["access_token"].as_str().unwrap();
    let (status, profile) = stack.me(access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["email"], stack.email("ada@example.com"));
    let (_, list) = list_keys(&stack, &ada.access_token).await;
    assert!(
        list["keys"][0]["last_used_at"].is_string(),
        "the exchange is recorded"
    );
}

#[tokio::test]
async fn revoking_a_key_stops_the_key_and_every_token_minted_from_it_at_once() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_key(&stack, &ada, json!({"name": "laptop"})).await;
    let api_key = created["api_key"].as_str().unwrap();
    let key_id = created["key"]["id"].as_str().unwrap();
    let other = create_key(&stack, &ada, json!({"name": "server"})).await;
    let (_, minted) = exchange(&stack, api_key).await;
    let minted = minted["access_token"].as_str().unwrap().to_owned();
    let (_, other_minted) = exchange(&stack, other["api_key"].as_str().unwrap()).await;
    let other_minted = other_minted["access_token"].as_str().unwrap().to_owned();
    assert_eq!(stack.me(&minted).await.0, StatusCode::OK);

    assert_eq!(
        revoke(&stack, &ada.access_token, key_id).await,
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        stack.me(&minted).await.0,
        StatusCode::UNAUTHORIZED,
        "the JWT minted from the key died with it"
    );
    assert_eq!(exchange(&stack, api_key).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        stack.me(&other_minted).await.0,
        StatusCode::OK,
        "another key's session is untouched"
    );
    assert_eq!(stack.me(&ada.access_token).await.0, StatusCode::OK);
    let (_, list) = list_keys(&stack, &ada.access_token).await;
    let listed = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id)
        .unwrap();
    assert_eq!(listed["is_active"], false);
}

#[tokio::test]
async fn malformed_foreign_and_unknown_keys_all_get_the_same_401() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_key(&stack, &ada, json!({"name": "real"})).await;
    let real = created["api_key"].as_str().unwrap();

    // The last checksum digit changed: a mistyped key.
    let last = real.chars().last().unwrap();
    let bad_checksum = format!("{}{}", &real[..42], if last == 'A' { 'B' } else { 'A' });
    // A well-formed agent key, and the real key's body under the agent prefix.
    let agent_key = format_key(KeyKind::Agent, &[7u8; KEY_SECRET_BYTES]);
    let swapped = format!("ocv_{}", &real[4..]);
    // Well formed, right prefix, never issued.
    let never_issued = format_key(KeyKind::User, &[42u8; KEY_SECRET_BYTES]);
    // The real prefix with another secret: finds the row, fails the hash.
    let mut same_prefix = real[..16].to_owned();
    same_prefix.push_str(&never_issued[16..]);

    let mut bodies = Vec::new();
    for key in [
        bad_checksum.as_str(),
        agent_key.as_str(),
        swapped.as_str(),
        never_issued.as_str(),
        same_prefix.as_str(),
        "garbage",
        "",
        "1ck_",
        &format!("{real}0"),
    ] {
        let (status, body) = exchange(&stack, key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?} -> {body}");
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "every failure looks the same: {bodies:?}"
    );
    assert_eq!(exchange(&stack, real).await.0, StatusCode::OK);
}

#[tokio::test]
async fn another_users_or_orgs_key_id_answers_404_and_the_key_lives_on() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_key(&stack, &ada, json!({"name": "mine"})).await;
    let key_id = created["key"]["id"].as_str().unwrap();
    // A colleague in the same org, and a stranger in another.
    let (colleague, _) = stack
        .invite_member(&ada, &stack.email("colleague@example.com"))
        .await;
    let stranger = stack.signup(&stack.email("stranger@example.com")).await;

    for session in [&colleague, &stranger] {
        assert_eq!(
            revoke(&stack, &session.access_token, key_id).await,
            StatusCode::NOT_FOUND
        );
        let (_, list) = list_keys(&stack, &session.access_token).await;
        assert_eq!(list["keys"], json!([]), "only one's own keys are listed");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid"] {
        assert_eq!(
            revoke(&stack, &ada.access_token, id).await,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        exchange(&stack, created["api_key"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn key_requests_are_validated() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let past = "2020-01-01T00:00:00Z";
    for body in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "k", "expires_at": past}),
        json!({"name": "k", "expires_at": "tomorrow"}),
        json!({"name": "k", "scopes": ["Vaults:Read"]}),
        json!({"name": "k", "scopes": ["a b"]}),
        json!({"name": "k", "scopes": ["x".repeat(65)]}),
        json!({"name": "k", "scopes": ["secret:read"]}),
        json!({"name": "k", "scopes": ["audit:write"]}),
        json!({"scopes": []}),
    ] {
        let (status, problem) = stack
            .call(
                Method::POST,
                "/v1/auth/api-keys",
                &ada.access_token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {problem}");
        assert_eq!(problem["status"], 400);
    }
    let created = create_key(
        &stack,
        &ada,
        json!({"name": "x".repeat(100), "expires_at": "2999-01-01T00:00:00Z", "org_id": "x"}),
    )
    .await;
    assert_eq!(created["key"]["expires_at"], "2999-01-01T00:00:00Z");
}

#[tokio::test]
async fn an_expired_key_no_longer_exchanges() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let soon = now_plus_secs(&stack, 2).await;
    let created = create_key(&stack, &ada, json!({"name": "brief", "expires_at": soon})).await;
    let api_key = created["api_key"].as_str().unwrap();

    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    assert_eq!(exchange(&stack, api_key).await.0, StatusCode::UNAUTHORIZED);
    let (_, list) = list_keys(&stack, &ada.access_token).await;
    assert_eq!(list["keys"][0]["is_active"], false);
}

#[tokio::test]
async fn a_session_from_a_scoped_key_cannot_mint_a_wider_key() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let created = create_key(
        &stack,
        &ada,
        json!({"name": "narrow", "scopes": ["vaults:read", "api_keys:write"]}),
    )
    .await;
    let (_, token) = exchange(&stack, created["api_key"].as_str().unwrap()).await;
    let narrow = token["access_token"].as_str().unwrap();

    for scopes in [
        json!(null),
        json!([]),
        json!(["vaults:read", "vaults:write"]),
        json!(["vaults:*"]),
        json!(["*"]),
    ] {
        let (status, _) = stack
            .call(
                Method::POST,
                "/v1/auth/api-keys",
                narrow,
                Some(json!({"name": "wider", "scopes": scopes})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "scopes {scopes}");
    }
    let (status, _) = stack
        .call(
            Method::POST,
            "/v1/auth/api-keys",
            narrow,
            Some(json!({"name": "same", "scopes": ["vaults:read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_removed_members_keys_stop_working() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("owner@example.com")).await;
    let (temp, _) = stack
        .invite_member(&owner, &stack.email("temp@example.com"))
        .await;
    let created = create_key(&stack, &temp, json!({"name": "temp"})).await;
    let api_key = created["api_key"].as_str().unwrap();
    let (_, minted) = exchange(&stack, api_key).await;
    let minted = minted["access_token"].as_str().unwrap().to_owned();
    let (_, profile) = stack.me(&temp.access_token).await;

    let path = format!("/v1/org/members/{}", profile["id"].as_str().unwrap());
    let (status, _) = stack
        .call(Method::DELETE, &path, &owner.access_token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_eq!(stack.me(&minted).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(exchange(&stack, api_key).await.0, StatusCode::UNAUTHORIZED);
}

/// RFC 3339 text for "now + `secs`", from the database's clock (the origin's clock too):
/// the tests carry no date crate.
async fn now_plus_secs(stack: &TestStack, secs: i32) -> String {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(stack.database_url())
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT to_char((now() + make_interval(secs => $1)) AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .bind(secs)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// A session from a key with `scopes`, for `session`'s user.
async fn scoped_session(stack: &TestStack, session: &Session, scopes: Value) -> String {
    let created = create_key(stack, session, json!({"name": "scoped", "scopes": scopes})).await;
    let (status, token) = exchange(stack, created["api_key"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    token["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_keys_scopes_bound_what_its_session_may_do_whatever_the_users_role() {
    let stack = TestStack::shared().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let vault = stack.create_vault(&ada.access_token, "prod").await;
    let (status, _) = stack
        .put_secret(
            &ada.access_token,
            &vault,
            "db/password",
            json!({"value": "hunter2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let reader = scoped_session(&stack, &ada, json!(["secrets:read"])).await;
    let secret = format!("/v1/vaults/{vault}/secrets/db/password");

    // What the scope covers works, through the wildcard routes too.
    let (status, body) = stack.call(Method::GET, &secret, &reader, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], "hunter2");
    let versions = format!("/v1/vaults/{vault}/secret-version/db/password/1");
    assert_eq!(
        stack.call(Method::GET, &versions, &reader, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        stack.me(&reader).await.0,
        StatusCode::OK,
        "a session may always describe itself"
    );

    // Everything else is refused, before anything happens.
    let refused = [
        (
            Method::PUT,
            secret.clone(),
            Some(json!({"value": "changed"})),
        ),
        (Method::DELETE, secret.clone(), None),
        (Method::GET, "/v1/vaults".to_owned(), None),
        (Method::DELETE, format!("/v1/vaults/{vault}"), None),
        (
            Method::POST,
            "/v1/org/invite".to_owned(),
            Some(json!({"email": stack.email("mallory@example.com"), "role": "admin"})),
        ),
        (Method::GET, "/v1/audit/events".to_owned(), None),
        (
            Method::POST,
            "/v1/agents".to_owned(),
            Some(json!({"name": "bot"})),
        ),
        (
            Method::POST,
            "/v1/auth/change-password".to_owned(),
            Some(
                json!({"current_password": oxvault_tests::PASSWORD, "new_password": "another long password"}),
            ),
        ),
    ];
    for (method, path, body) in refused {
        let (status, problem) = stack.call(method.clone(), &path, &reader, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
        assert_eq!(problem["status"], 403);
    }
    let (_, value) = stack
        .call(Method::GET, &secret, &ada.access_token, None)
        .await;
    assert_eq!(value["value"], "hunter2", "the refused write wrote nothing");
    let (status, _) = stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}"),
            &ada.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the refused delete deleted nothing");

    // A secret read checks the scope in its own statement's wake (the read loads the
    // session's state itself): a scope for something else reads nothing, at either route.
    let vault_reader = scoped_session(&stack, &ada, json!(["vaults:read"])).await;
    for path in [&secret, &versions] {
        let (status, problem) = stack.call(Method::GET, path, &vault_reader, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path}: {problem}");
        assert!(problem.get("value").is_none(), "{problem}");
    }

    // A resource's `*` covers both actions; `*` covers everything.
    let writer = scoped_session(&stack, &ada, json!(["secrets:*"])).await;
    let (status, body) = stack
        .call(
            Method::PUT,
            &secret,
            &writer,
            Some(json!({"value": "rotated"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let all = scoped_session(&stack, &ada, json!(["*"])).await;
    assert_eq!(
        stack.call(Method::GET, "/v1/vaults", &all, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_key_lists_page_newest_first() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("keys-pager@example.com")).await;
    let token = owner.access_token.as_str();
    let mut made = Vec::new();
    for n in 0..5 {
        let (status, created) = stack
            .call(
                Method::POST,
                "/v1/auth/api-keys",
                token,
                Some(json!({"name": format!("key-{n}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        made.push(created["key"]["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    let (listed, pages) = stack
        .page_through(token, "/v1/auth/api-keys", "keys", 2)
        .await;
    let listed: Vec<String> = listed
        .iter()
        .map(|key| key["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((listed, pages), (made, 3));
    stack
        .assert_bad_pages_refused(token, "/v1/auth/api-keys")
        .await;
}
