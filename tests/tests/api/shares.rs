//! Share links through the edge: creating them for every kind of recipient, reading them
//! (with and without the right token, passphrase and address), their limits, revocation,
//! listings, accept and decline. SECURITY.md cases 17 (50 concurrent reads of a one-view
//! link: exactly one value) and 18 (boundaries of counts and expiry; revocation at once; every
//! refusal the same 404), and the share-id half of 20 (ids are 128-bit random UUIDs).
//!
//! The client address under `wrangler dev` is 127.0.0.1: the edge reports it to the origin in
//! `x-oxvault-client-ip`, which the origin believes because the test stack shares the edge
//! secret between the two.

use std::collections::HashSet;
use std::time::Duration;

use oxvault_tests::shares::{in_an_hour, rfc3339_in};
use oxvault_tests::{Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

const VALUE: &str = "sk-share-test-4c1d9e";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An owner with a vault holding `db/password` = [`VALUE`]: (owner, vault id, secret id).
async fn owner_with_secret(stack: &TestStack, email: &str) -> (Session, String, String) {
    stack.owner_with_secret(email, "db/password", VALUE).await
}

/// Creates a share (asserting 201) and returns its id.
async fn share(stack: &TestStack, token: &str, secret: &str, body: Value) -> String {
    let (status, created) = stack.create_share(token, secret, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// An `anyone_with_link` share body expiring in an hour, with `extra` fields.
fn link(extra: Value) -> Value {
    let mut body = json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// How a share is read.
#[derive(Default, Clone, Copy)]
struct As<'a> {
    token: Option<&'a str>,
    /// Sent in `X-Share-Passphrase`.
    passphrase: Option<&'a str>,
    /// Sent as the JSON body `{"passphrase": ...}` of the GET (the 1Claw SDK's way).
    body_passphrase: Option<&'a str>,
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request through the edge");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

/// `GET /v1/share/{id}`.
async fn read(stack: &TestStack, id: &str, how: As<'_>) -> (StatusCode, Value) {
    let mut request = stack.client.get(stack.edge_url(&format!("/v1/share/{id}")));
    if let Some(token) = how.token {
        request = request.bearer_auth(token);
    }
    if let Some(passphrase) = how.passphrase {
        request = request.header("X-Share-Passphrase", passphrase);
    }
    if let Some(passphrase) = how.body_passphrase {
        request = request.json(&json!({"passphrase": passphrase}));
    }
    send(request).await
}

/// `GET /v1/share/{id}/status`, without a token.
async fn status_of(stack: &TestStack, id: &str) -> (StatusCode, Value) {
    send(
        stack
            .client
            .get(stack.edge_url(&format!("/v1/share/{id}/status"))),
    )
    .await
}

/// The body every refused read answers: that of a share that never existed.
async fn refusal(stack: &TestStack) -> Value {
    let (status, body) = read(stack, &uuid::Uuid::new_v4().to_string(), As::default()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["detail"], "share not found", "{body}");
    body
}

/// Asserts a refused read, with exactly the body of a missing share.
fn assert_refused((status, body): (StatusCode, Value), missing: &Value, context: &str) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{context}: {body}");
    assert_eq!(
        &body, missing,
        "{context}: the refusal must look like a missing share"
    );
}

/// Asserts a successful read of [`VALUE`]; returns the access count it reported.
fn assert_value((status, body): (StatusCode, Value), context: &str) -> i64 {
    assert_eq!(status, StatusCode::OK, "{context}: {body}");
    assert_eq!(body["value"], VALUE, "{context}: {body}");
    body["access_count"].as_i64().unwrap()
}

/// Grants `permissions` on every path of `vault` to a user or agent.
async fn grant(
    stack: &TestStack,
    owner: &Session,
    vault: &str,
    principal: (&str, &str),
    permissions: &[&str],
    conditions: Value,
) {
    let (status, policy) = stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/policies"),
            &owner.access_token,
            Some(json!({
                "principal_type": principal.0,
                "principal_id": principal.1,
                "secret_path_pattern": "**",
                "permissions": permissions,
                "conditions": conditions,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
}

async fn list(stack: &TestStack, token: &str, which: &str) -> Vec<Value> {
    let (status, body) = stack
        .call(Method::GET, &format!("/v1/shares/{which}"), token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["shares"].as_array().unwrap().clone()
}

fn ids(shares: &[Value]) -> HashSet<String> {
    shares
        .iter()
        .map(|share| share["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Link shares
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_link_share_hands_out_the_current_value_without_a_token() {
    let stack = TestStack::shared().await;
    let (owner, vault, secret) =
        owner_with_secret(&stack, &stack.email("linkowner@example.com")).await;
    let token = owner.access_token.as_str();

    let (status, created) = stack
        .create_share(
            token,
            &secret,
            link(json!({"max_access_count": 5, "permissions": ["read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    // 128 bits in UUID form; the link points at the edge the client used.
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id);
    assert_eq!(
        created["share_url"],
        format!("{}/s/{id}", stack.edge_base()),
        "{created}"
    );
    assert_eq!(created["recipient_type"], "anyone_with_link");
    assert!(created["recipient_email"].is_null());
    assert_eq!(created["max_access_count"], 5);
    assert!(created["expires_at"].is_string());

    let (status, body) = read(&stack, id, As::default()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], VALUE);
    assert_eq!(body["path"], "db/password");
    assert_eq!(body["type"], "generic");
    assert_eq!(body["id"], secret);
    assert_eq!(body["access_count"], 1);
    assert_eq!(body["max_access_count"], 5);

    // A share hands out the version it was made with: a value written (or rotated in) after
    // it never goes down the old link; a share made now hands out the new one.
    let (status, _) = stack
        .put_secret(
            token,
            &vault,
            "db/password",
            json!({"value": "rotated-value"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = read(&stack, id, As::default()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], VALUE);
    assert_eq!(body["access_count"], 2);
    let newer = share(&stack, token, &secret, link(json!({}))).await;
    let (status, body) = read(&stack, &newer, As::default()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], "rotated-value");
    // Disabling the shared version stops the link.
    let missing = refusal(&stack).await;
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-version-disable/db/password/2"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_refused(
        read(&stack, &newer, As::default()).await,
        &missing,
        "disabled shared version",
    );

    // Ids are random: many shares of one secret never repeat or look alike.
    let mut seen = HashSet::from([id.to_owned()]);
    for _ in 0..20 {
        let next = share(&stack, token, &secret, link(json!({}))).await;
        assert!(uuid::Uuid::parse_str(&next).is_ok(), "{next}");
        assert!(seen.insert(next), "a share id repeated");
    }

    // The status check tells the page what it needs and never counts.
    for _ in 0..3 {
        let (status, body) = status_of(&stack, id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id);
        assert_eq!(body["requires_passphrase"], false);
        assert_eq!(body["expires_at"], created["expires_at"]);
    }
    let (status, body) = read(&stack, id, As::default()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["access_count"], 3,
        "status checks are not reads: {body}"
    );
    // The id is the link's credential: the origin's log never shows it.
    assert!(!stack.origin_log().contains(id), "a share id was logged");
}

#[tokio::test]
async fn reads_stop_exactly_at_max_access_count_and_every_refusal_looks_the_same() {
    let stack = TestStack::shared().await;
    let (owner, vault, secret) =
        owner_with_secret(&stack, &stack.email("counter@example.com")).await;
    let token = owner.access_token.as_str();
    let missing = refusal(&stack).await;

    // N = 3: reads N-1 and N succeed, N+1 is refused.
    let id = share(&stack, token, &secret, link(json!({"max_access_count": 3}))).await;
    for expected in 1..=3 {
        assert_eq!(
            assert_value(read(&stack, &id, As::default()).await, "within the count"),
            expected
        );
    }
    assert_refused(read(&stack, &id, As::default()).await, &missing, "read N+1");
    assert_refused(
        status_of(&stack, &id).await,
        &missing,
        "status when used up",
    );
    // Not a UUID: the same answer.
    assert_refused(
        read(&stack, "not-a-share-id", As::default()).await,
        &missing,
        "a malformed id",
    );

    // The secret's own version limit also binds a share; a read it refuses does not use up a
    // view of the share.
    let (status, _) = stack
        .put_secret(
            token,
            &vault,
            "one/shot",
            json!({"value": VALUE, "max_access_count": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listing) = stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}/secrets?prefix=one"),
            token,
            None,
        )
        .await;
    let one_shot = listing["secrets"][0]["id"].as_str().unwrap().to_owned();
    let id = share(
        &stack,
        token,
        &one_shot,
        link(json!({"max_access_count": 5})),
    )
    .await;
    assert_eq!(
        assert_value(read(&stack, &id, As::default()).await, "first"),
        1
    );
    assert_refused(
        read(&stack, &id, As::default()).await,
        &missing,
        "the version is used up",
    );
    let outbound = list(&stack, token, "outbound").await;
    let row = outbound
        .iter()
        .find(|share| share["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        row["access_count"], 1,
        "the refused read was rolled back: {row}"
    );

    // A deleted secret's shares stop at once.
    let id = share(&stack, token, &secret, link(json!({}))).await;
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{vault}/secrets/db/password"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_refused(
        read(&stack, &id, As::default()).await,
        &missing,
        "deleted secret",
    );
}

#[tokio::test]
async fn a_share_works_until_its_expiry_and_not_a_moment_after() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("expiry@example.com")).await;
    let missing = refusal(&stack).await;
    let id = share(
        &stack,
        &owner.access_token,
        &secret,
        json!({"recipient_type": "anyone_with_link", "expires_at": rfc3339_in(3_000)}),
    )
    .await;

    assert_value(read(&stack, &id, As::default()).await, "just before expiry");
    let (status, _) = status_of(&stack, &id).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_refused(
        read(&stack, &id, As::default()).await,
        &missing,
        "just after",
    );
    assert_refused(
        status_of(&stack, &id).await,
        &missing,
        "status after expiry",
    );
    let outbound = list(&stack, &owner.access_token, "outbound").await;
    assert_eq!(outbound[0]["is_expired"], true, "{outbound:?}");
}

#[tokio::test]
async fn fifty_concurrent_reads_of_a_one_view_link_yield_exactly_one_value() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("race@example.com")).await;
    let missing = refusal(&stack).await;
    let id = share(
        &stack,
        &owner.access_token,
        &secret,
        link(json!({"max_access_count": 1})),
    )
    .await;

    let url = stack.edge_url(&format!("/v1/share/{id}"));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = stack.client.get(&url);
        readers.spawn(async move { send(request).await });
    }
    let mut values = 0;
    let mut refused = 0;
    while let Some(outcome) = readers.join_next().await {
        let (status, body) = outcome.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(body["value"], VALUE);
                values += 1;
            }
            StatusCode::NOT_FOUND => {
                assert_eq!(body, missing);
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((values, refused), (1, 49));
    let outbound = list(&stack, &owner.access_token, "outbound").await;
    assert_eq!(outbound[0]["access_count"], 1, "{outbound:?}");
}

#[tokio::test]
async fn revoking_a_share_stops_it_at_once_and_only_its_creator_or_a_manager_may() {
    let stack = TestStack::shared().await;
    let (owner, vault, secret) =
        owner_with_secret(&stack, &stack.email("revoker@example.com")).await;
    let missing = refusal(&stack).await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("revoke-member@example.com"))
        .await;
    let stranger = stack
        .signup(&stack.email("revoke-stranger@example.com"))
        .await;

    let id = share(&stack, &owner.access_token, &secret, link(json!({}))).await;
    assert_value(read(&stack, &id, As::default()).await, "before revocation");
    let revoke = |token: &str| {
        let token = token.to_owned();
        let path = format!("/v1/share/{id}");
        let stack = &stack;
        async move { stack.call(Method::DELETE, &path, &token, None).await }
    };
    let (status, body) = revoke(&stranger.access_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another org: {body}");
    let (status, body) = revoke(&member.access_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not the creator: {body}");
    assert_value(
        read(&stack, &id, As::default()).await,
        "refused revocations",
    );
    let (status, _) = revoke(&owner.access_token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_refused(read(&stack, &id, As::default()).await, &missing, "revoked");
    assert_refused(status_of(&stack, &id).await, &missing, "status revoked");
    let (status, _) = revoke(&owner.access_token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "revoking twice is fine");
    assert!(!ids(&list(&stack, &owner.access_token, "outbound").await).contains(&id));

    // A member's own share: the owner may revoke it, and so may the member.
    grant(
        &stack,
        &owner,
        &vault,
        ("user", &member_id),
        &["read", "share"],
        json!({}),
    )
    .await;
    let mine = share(&stack, &member.access_token, &secret, link(json!({}))).await;
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/share/{mine}"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "an owner may revoke a member's share"
    );
    assert_refused(
        read(&stack, &mine, As::default()).await,
        &missing,
        "revoked by owner",
    );
    let also_mine = share(&stack, &member.access_token, &secret, link(json!({}))).await;
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/share/{also_mine}"),
            &member.access_token,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "a creator may revoke their share"
    );
    assert_refused(
        read(&stack, &also_mine, As::default()).await,
        &missing,
        "self-revoked",
    );
}

// ---------------------------------------------------------------------------------------------
// Passphrases and addresses
// ---------------------------------------------------------------------------------------------

/// Holding a link does not allow guessing its passphrase for ever: after ten wrong ones the
/// share opens for nobody, the right passphrase included, and says so the uniform way.
#[tokio::test]
async fn ten_wrong_passphrases_lock_a_share_for_good() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("guess@example.com")).await;
    let missing = refusal(&stack).await;
    let id = share(
        &stack,
        &owner.access_token,
        &secret,
        link(json!({"passphrase": "right one"})),
    )
    .await;
    let right = As {
        passphrase: Some("right one"),
        ..As::default()
    };
    for attempt in 1..=10 {
        let wrong = format!("guess {attempt}");
        let how = As {
            passphrase: Some(&wrong),
            ..As::default()
        };
        assert_refused(read(&stack, &id, how).await, &missing, "a wrong guess");
        if attempt == 9 {
            // Nine wrong guesses leave the share usable.
            let (status, body) = status_of(&stack, &id).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert_refused(
        read(&stack, &id, right).await,
        &missing,
        "after ten wrong guesses",
    );
    assert_refused(
        status_of(&stack, &id).await,
        &missing,
        "status after the lockout",
    );
}

#[tokio::test]
async fn a_passphrase_share_opens_only_with_it_and_wrong_tries_cost_no_view() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("sesame@example.com")).await;
    let missing = refusal(&stack).await;
    let id = share(
        &stack,
        &owner.access_token,
        &secret,
        link(json!({"max_access_count": 2, "passphrase": "open sesame"})),
    )
    .await;

    let (status, body) = status_of(&stack, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requires_passphrase"], true);

    for (how, context) in [
        (As::default(), "no passphrase"),
        (
            As {
                passphrase: Some("open sesame!"),
                ..As::default()
            },
            "wrong passphrase",
        ),
        (
            As {
                passphrase: Some("OPEN SESAME"),
                ..As::default()
            },
            "wrong case",
        ),
        (
            As {
                body_passphrase: Some("close sesame"),
                ..As::default()
            },
            "wrong passphrase in the body",
        ),
    ] {
        assert_refused(read(&stack, &id, how).await, &missing, context);
    }
    // None of those used a view: two reads remain.
    let right = As {
        passphrase: Some("open sesame"),
        ..As::default()
    };
    assert_eq!(assert_value(read(&stack, &id, right).await, "header"), 1);
    let in_body = As {
        body_passphrase: Some("open sesame"),
        ..As::default()
    };
    assert_eq!(
        assert_value(read(&stack, &id, in_body).await, "JSON body"),
        2
    );
    assert_refused(read(&stack, &id, right).await, &missing, "used up");

    // The passphrase is stored hashed only and never logged.
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let hash: String = sqlx::query_scalar("SELECT passphrase_hash FROM shares WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!stack.origin_log().contains("open sesame"));
}

#[tokio::test]
async fn an_ip_allowlist_admits_its_networks_only() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("allowlist@example.com")).await;
    let token = owner.access_token.as_str();
    let missing = refusal(&stack).await;

    let inside = share(
        &stack,
        token,
        &secret,
        link(json!({"ip_allowlist": ["127.0.0.1/32", "2001:db8::/32"]})),
    )
    .await;
    let (status, _) = status_of(&stack, &inside).await;
    assert_eq!(status, StatusCode::OK);
    assert_value(read(&stack, &inside, As::default()).await, "from 127.0.0.1");

    let outside = share(
        &stack,
        token,
        &secret,
        link(json!({"ip_allowlist": ["10.0.0.0/8"], "max_access_count": 1})),
    )
    .await;
    assert_refused(
        read(&stack, &outside, As::default()).await,
        &missing,
        "outside",
    );
    assert_refused(
        status_of(&stack, &outside).await,
        &missing,
        "status outside",
    );
    let outbound = list(&stack, token, "outbound").await;
    let row = outbound
        .iter()
        .find(|share| share["id"] == outside.as_str())
        .unwrap();
    assert_eq!(row["access_count"], 0, "a refused address uses no view");
}

// ---------------------------------------------------------------------------------------------
// Recipients
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn targeted_shares_open_only_with_their_recipients_token() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("targets@example.com")).await;
    let token = owner.access_token.as_str();
    let missing = refusal(&stack).await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("target-member@example.com"))
        .await;
    let (other, _) = stack
        .invite_member(&owner, &stack.email("target-other@example.com"))
        .await;
    let (agent_id, agent_token) = stack.create_agent(&owner.access_token, "reader-bot").await;
    let (_, other_agent_token) = stack.create_agent(&owner.access_token, "other-bot").await;
    let outsider = stack
        .signup(&stack.email("target-outsider@example.com"))
        .await;

    let expires_at = in_an_hour();
    let to_user = share(
        &stack,
        token,
        &secret,
        json!({"recipient_type": "user", "recipient_id": member_id, "expires_at": expires_at}),
    )
    .await;
    let to_agent = share(
        &stack,
        token,
        &secret,
        json!({"recipient_type": "agent", "recipient_id": agent_id, "expires_at": expires_at}),
    )
    .await;
    let to_self = share(
        &stack,
        token,
        &secret,
        json!({"recipient_type": "creator", "expires_at": expires_at}),
    )
    .await;

    let with = |token| As {
        token: Some(token),
        ..As::default()
    };
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            &to_user,
            &member.access_token,
            &[
                token,
                &other.access_token,
                &agent_token,
                &outsider.access_token,
                "not-a-token",
            ],
        ),
        (
            &to_agent,
            &agent_token,
            &[token, &other_agent_token, &member.access_token],
        ),
        (
            &to_self,
            token,
            &[&member.access_token, &agent_token, &outsider.access_token],
        ),
    ];
    for (id, right, wrong) in cases {
        assert_refused(read(&stack, id, As::default()).await, &missing, "no token");
        for wrong in wrong {
            assert_refused(read(&stack, id, with(wrong)).await, &missing, "wrong token");
        }
        assert_value(read(&stack, id, with(right)).await, "the recipient");
        // The page's status check is for link shares only.
        assert_refused(
            status_of(&stack, id).await,
            &missing,
            "status of a targeted share",
        );
    }

    // An outside address: the link works without a token, and a mail is queued with it.
    let (status, created) = stack
        .create_share(
            token,
            &secret,
            json!({
                "recipient_type": "external_email",
                "email": &format!("  {} ", stack.email("Friend@Example.ORG")),
                "expires_at": expires_at,
                "passphrase": "kettle",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["recipient_email"],
        stack.email("friend@example.org")
    );
    let to_mail = created["id"].as_str().unwrap();
    let (status, body) = status_of(&stack, to_mail).await;
    assert_eq!(
        (status, body["requires_passphrase"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_value(
        read(
            &stack,
            to_mail,
            As {
                passphrase: Some("kettle"),
                ..As::default()
            },
        )
        .await,
        "external email link",
    );
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let mails: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT kind, recipient, body_text FROM mail_outbox \
             WHERE kind = 'share' AND recipient = $1",
    )
    .bind(stack.email("friend@example.org"))
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        (mails[0].0.as_str(), mails[0].1.as_str()),
        ("share", stack.email("friend@example.org").as_str())
    );
    if let Some(body) = &mails[0].2 {
        assert!(
            body.contains(created["share_url"].as_str().unwrap()),
            "{body}"
        );
        assert!(!body.contains("kettle") && !body.contains(VALUE), "{body}");
    }
}

#[tokio::test]
async fn share_requests_are_checked_before_anything_is_stored() {
    let stack = TestStack::shared().await;
    let (owner, vault, secret) =
        owner_with_secret(&stack, &stack.email("checks@example.com")).await;
    let token = owner.access_token.as_str();
    let (outsider, _, outsider_secret) =
        owner_with_secret(&stack, &stack.email("checks-outsider@example.com")).await;
    let outsider_id = stack.user_id(&outsider.access_token).await;

    for (body, context) in [
        (
            json!({"recipient_type": "anyone_with_link", "expires_at": rfc3339_in(-60_000)}),
            "expiry in the past",
        ),
        (
            json!({"recipient_type": "anyone_with_link",
                   "expires_at": rfc3339_in(31 * 24 * 3_600_000)}),
            "expiry past 30 days",
        ),
        (json!({"recipient_type": "anyone_with_link"}), "no expiry"),
        (
            json!({"recipient_type": "user", "expires_at": in_an_hour()}),
            "user share without recipient_id",
        ),
        (
            json!({"recipient_type": "agent", "expires_at": in_an_hour()}),
            "agent share without recipient_id",
        ),
        (
            json!({"recipient_type": "user", "recipient_id": outsider_id,
                   "expires_at": in_an_hour()}),
            "a user of another org",
        ),
        (
            json!({"recipient_type": "external_email", "expires_at": in_an_hour()}),
            "external_email without email",
        ),
        (
            json!({"recipient_type": "external_email", "email": "not-an-address",
                   "expires_at": in_an_hour()}),
            "a malformed email",
        ),
        (
            link(json!({"email": stack.email("a@b.example")})),
            "an email on a link share",
        ),
        (link(json!({"ip_allowlist": ["10.0.0.0/33"]})), "bad CIDR"),
        (
            link(json!({"ip_allowlist": ["10.1.2.3/8"]})),
            "host bits set",
        ),
        (link(json!({"ip_allowlist": []})), "empty allowlist"),
        (link(json!({"max_access_count": 0})), "zero views"),
        (link(json!({"passphrase": ""})), "empty passphrase"),
        (
            link(json!({"passphrase": "x".repeat(1025)})),
            "huge passphrase",
        ),
        (
            link(json!({"permissions": ["write"]})),
            "a permission beyond read",
        ),
        (
            json!({"recipient_type": "everyone", "expires_at": in_an_hour()}),
            "unknown recipient type",
        ),
    ] {
        let (status, body) = stack.create_share(token, &secret, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{context}: {body}");
        assert_eq!(body["status"], 400, "{context}: {body}");
    }
    assert!(list(&stack, token, "outbound").await.is_empty());

    // Secrets the caller cannot see: 404, another org's included.
    for missing in [
        outsider_secret.as_str(),
        "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
        "nope",
    ] {
        let (status, body) = stack.create_share(token, missing, link(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
    }

    // Agents cannot mail secrets out, even with every permission.
    let (agent_id, agent_token) = stack.create_agent(&owner.access_token, "mailer-bot").await;
    grant(
        &stack,
        &owner,
        &vault,
        ("agent", &agent_id),
        &["read", "share"],
        json!({}),
    )
    .await;
    let (status, body) = stack
        .create_share(
            &agent_token,
            &secret,
            json!({"recipient_type": "external_email", "email": stack.email("x@example.org"),
               "expires_at": in_an_hour()}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let agent_link = share(&stack, &agent_token, &secret, link(json!({}))).await;
    assert_value(
        read(&stack, &agent_link, As::default()).await,
        "an agent's link share",
    );

    // A member needs the `share` permission: `read` alone is not enough.
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("checks-member@example.com"))
        .await;
    grant(
        &stack,
        &owner,
        &vault,
        ("user", &member_id),
        &["read"],
        json!({}),
    )
    .await;
    let (status, body) = stack
        .create_share(&member.access_token, &secret, link(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    grant(
        &stack,
        &owner,
        &vault,
        ("user", &member_id),
        &["share"],
        json!({}),
    )
    .await;
    let (status, body) = stack
        .create_share(&member.access_token, &secret, link(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn recipients_see_their_inbound_shares_and_may_accept_or_decline_them() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) = owner_with_secret(&stack, &stack.email("lists@example.com")).await;
    let token = owner.access_token.as_str();
    let missing = refusal(&stack).await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("lists-member@example.com"))
        .await;
    let (agent_id, agent_token) = stack.create_agent(&owner.access_token, "lists-bot").await;
    let expires_at = in_an_hour();

    let to_user = share(
        &stack,
        token,
        &secret,
        json!({"recipient_type": "user", "recipient_id": member_id, "expires_at": expires_at,
               "max_access_count": 4}),
    )
    .await;
    let to_agent = share(
        &stack,
        token,
        &secret,
        json!({"recipient_type": "agent", "recipient_id": agent_id, "expires_at": expires_at}),
    )
    .await;
    // Addressed to the member's email: NOT theirs as a user (sign-up proves no address, so an
    // account with that address must not see or decline what was mailed to it).
    let to_email = share(
        &stack,
        token,
        &secret,
        json!({"recipient_type": "external_email", "email": stack.email("LISTS-member@example.com"),
               "expires_at": expires_at}),
    )
    .await;
    let to_link = share(&stack, token, &secret, link(json!({}))).await;

    let outbound = list(&stack, token, "outbound").await;
    assert_eq!(
        ids(&outbound),
        HashSet::from([
            to_user.clone(),
            to_agent.clone(),
            to_email.clone(),
            to_link.clone()
        ])
    );
    let row = outbound
        .iter()
        .find(|s| s["id"] == to_user.as_str())
        .unwrap();
    assert_eq!(row["secret_path"], "db/password");
    assert_eq!(row["recipient_type"], "user");
    assert_eq!(row["access_count"], 0);
    assert_eq!(row["max_access_count"], 4);
    assert_eq!(row["is_expired"], false);
    assert_eq!(row["is_accepted"], false);
    assert!(row["created_at"].is_string() && row["expires_at"].is_string());
    let row = outbound
        .iter()
        .find(|s| s["id"] == to_email.as_str())
        .unwrap();
    assert_eq!(
        row["recipient_email"],
        stack.email("lists-member@example.com")
    );

    assert_eq!(
        ids(&list(&stack, &member.access_token, "inbound").await),
        HashSet::from([to_user.clone()])
    );
    assert_eq!(
        ids(&list(&stack, &agent_token, "inbound").await),
        HashSet::from([to_agent.clone()])
    );
    assert!(
        list(&stack, &member.access_token, "outbound")
            .await
            .is_empty()
    );
    assert!(ids(&list(&stack, token, "inbound").await).is_empty());

    let respond = |token: &str, id: &str, what: &str| {
        let (token, path) = (token.to_owned(), format!("/v1/shares/{id}/{what}"));
        let stack = &stack;
        async move { stack.call(Method::POST, &path, &token, None).await.0 }
    };
    // Only the recipient may answer.
    assert_eq!(
        respond(token, &to_user, "accept").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        respond(&agent_token, &to_user, "decline").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        respond(&member.access_token, &to_link, "accept").await,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        respond(&member.access_token, &to_user, "accept").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        respond(&agent_token, &to_agent, "accept").await,
        StatusCode::NO_CONTENT
    );
    let inbound = list(&stack, &member.access_token, "inbound").await;
    let row = inbound
        .iter()
        .find(|s| s["id"] == to_user.as_str())
        .unwrap();
    assert_eq!(row["is_accepted"], true);
    let member_reads = As {
        token: Some(&member.access_token),
        ..As::default()
    };
    assert_value(read(&stack, &to_user, member_reads).await, "accepted");

    // Declined: gone from the inbox, and unreadable even by its recipient.
    assert_eq!(
        respond(&member.access_token, &to_user, "decline").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        respond(&member.access_token, &to_email, "decline").await,
        StatusCode::NOT_FOUND,
        "an account holding the address may not decline what was mailed to it"
    );
    assert!(
        list(&stack, &member.access_token, "inbound")
            .await
            .is_empty()
    );
    assert_refused(
        read(&stack, &to_user, member_reads).await,
        &missing,
        "declined",
    );
    assert_value(
        read(&stack, &to_email, As::default()).await,
        "the mailed link still opens for whoever holds it",
    );
    assert_eq!(
        respond(&member.access_token, &to_user, "accept").await,
        StatusCode::CONFLICT
    );
}

// ---------------------------------------------------------------------------------------------
// Trusting the edge
// ---------------------------------------------------------------------------------------------

/// The origin believes `x-oxvault-client-ip` and `x-oxvault-public-url` only from a request
/// carrying the edge's secret; anything else is judged by its TCP peer (127.0.0.1 here) and
/// the configured public URL. Requests go straight to the origin, as an attacker who found
/// it would send them.
#[tokio::test]
async fn the_origin_trusts_forwarded_addresses_only_with_the_edge_secret() {
    const SECRET: &str = "a-known-edge-secret-for-this-test-0123456789";
    let stack = TestStack::builder()
        .origin_env("OXVAULT_EDGE_SHARED_SECRET", SECRET)
        .edge(|edge| {
            edge.var("ORIGIN_SHARED_SECRET", SECRET);
        })
        .start()
        .await;
    let (owner, vault, secret) = owner_with_secret(&stack, &stack.email("trust@example.com")).await;
    let token = owner.access_token.as_str();
    let direct_as =
        |bearer: &str, method: Method, path: &str, auth: Option<&str>, ip: Option<&str>| {
            let mut request = stack
                .client
                .request(method, stack.origin_url(path))
                .bearer_auth(bearer)
                .header("x-oxvault-public-url", "https://vault.example.com");
            if let Some(auth) = auth {
                request = request.header("x-oxvault-edge-auth", auth);
            }
            if let Some(ip) = ip {
                request = request.header("x-oxvault-client-ip", ip);
            }
            request
        };
    let direct = |method: Method, path: &str, auth: Option<&str>, ip: Option<&str>| {
        direct_as(token, method, path, auth, ip)
    };

    // Share links point where the edge says people reach it, and only the edge may say so.
    let body = link(json!({"ip_allowlist": ["10.0.0.0/8"]}));
    let path = format!("/v1/secrets/{secret}/share");
    let (status, vouched) = send(direct(Method::POST, &path, Some(SECRET), None).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{vouched}");
    let id = vouched["id"].as_str().unwrap();
    assert_eq!(
        vouched["share_url"],
        format!("https://vault.example.com/s/{id}")
    );
    let (status, unvouched) =
        send(direct(Method::POST, &path, Some("not-the-secret"), None).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{unvouched}");
    let configured = unvouched["share_url"].as_str().unwrap();
    assert!(
        !configured.starts_with("https://vault.example.com"),
        "{configured}"
    );

    // The share admits 10.0.0.0/8: an address the edge vouches for opens it, the same address
    // claimed without the secret does not (the peer, 127.0.0.1, is what counts then).
    let read_path = format!("/v1/share/{id}");
    let (status, body) = send(direct(
        Method::GET,
        &read_path,
        Some(SECRET),
        Some("10.1.2.3"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], VALUE);
    for auth in [None, Some("not-the-secret"), Some("")] {
        let (status, body) = send(direct(Method::GET, &read_path, auth, Some("10.1.2.3"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{auth:?}: {body}");
    }
    // Vouched for, but with no address named: unknown, which no allowlist admits.
    let (status, _) = send(direct(Method::GET, &read_path, Some(SECRET), None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Policy conditions see the same address.
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "trust-bot").await;
    grant(
        &stack,
        &owner,
        &vault,
        ("agent", &agent_id),
        &["read"],
        json!({"ip_allowlist": ["10.0.0.0/8"]}),
    )
    .await;
    let secret_path = format!("/v1/vaults/{vault}/secrets/db/password");
    let as_bot =
        |auth: Option<&str>, ip: Option<&str>| direct_as(&bot, Method::GET, &secret_path, auth, ip);
    let (status, body) = send(as_bot(Some(SECRET), Some("10.9.8.7"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (auth, ip) in [
        (None, Some("10.9.8.7")),
        (Some("not-the-secret"), Some("10.9.8.7")),
        (Some(SECRET), Some("192.0.2.1")),
        (Some(SECRET), None),
    ] {
        let (status, body) = send(as_bot(auth, ip)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{auth:?} {ip:?}: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Creator standing and the org-wide list
// ---------------------------------------------------------------------------------------------

/// A column of share `id`, read from the database.
async fn share_column(stack: &TestStack, id: &str, column: &str) -> Option<i64> {
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column}::int8 FROM shares WHERE id = $1::uuid"
    )))
    .bind(id)
    .fetch_optional(&mut db)
    .await
    .unwrap()
}

/// An agent of `owner`'s org allowed to read and share everything in `vault`: (id, token).
async fn sharing_agent(
    stack: &TestStack,
    owner: &Session,
    vault: &str,
    name: &str,
) -> (String, String) {
    let (id, token) = stack.create_agent(&owner.access_token, name).await;
    grant(
        stack,
        owner,
        vault,
        ("agent", &id),
        &["read", "share"],
        json!({}),
    )
    .await;
    (id, token)
}

/// A link lives no longer than its creator's access: deactivating an agent, rotating its key,
/// or removing a member ends the links they made, answered exactly like a missing link, and the
/// refused reads use up no view. The owner's own link, and another agent's, keep working.
#[tokio::test]
async fn a_link_ends_when_its_creator_loses_access_and_counts_no_view() {
    let stack = TestStack::shared().await;
    let (owner, vault, secret) =
        owner_with_secret(&stack, &stack.email("standing@example.com")).await;
    let token = owner.access_token.as_str();
    let missing = refusal(&stack).await;
    let (deactivated_id, deactivated) = sharing_agent(&stack, &owner, &vault, "gone-bot").await;
    let (rotated_id, rotated) = sharing_agent(&stack, &owner, &vault, "rotated-bot").await;
    let (_, steady) = sharing_agent(&stack, &owner, &vault, "steady-bot").await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("standing-member@example.com"))
        .await;
    grant(
        &stack,
        &owner,
        &vault,
        ("user", &member_id),
        &["read", "share"],
        json!({}),
    )
    .await;

    let by_deactivated = share(&stack, &deactivated, &secret, link(json!({}))).await;
    let by_rotated = share(&stack, &rotated, &secret, link(json!({}))).await;
    let by_steady = share(&stack, &steady, &secret, link(json!({}))).await;
    let by_member = share(&stack, &member.access_token, &secret, link(json!({}))).await;
    let by_owner = share(&stack, token, &secret, link(json!({}))).await;
    for id in [
        &by_deactivated,
        &by_rotated,
        &by_steady,
        &by_member,
        &by_owner,
    ] {
        assert_eq!(
            assert_value(read(&stack, id, As::default()).await, "before"),
            1
        );
    }

    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/v1/agents/{deactivated_id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = stack
        .call(
            Method::POST,
            &format!("/v1/agents/{rotated_id}/rotate-key"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/v1/org/members/{member_id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    for (id, context) in [
        (&by_deactivated, "the agent was deactivated"),
        (&by_rotated, "the agent's key was rotated"),
        (&by_member, "the member was removed"),
    ] {
        for _ in 0..2 {
            assert_refused(read(&stack, id, As::default()).await, &missing, context);
        }
        assert_refused(status_of(&stack, id).await, &missing, context);
    }
    // The refused reads used up nothing (the removed member's rows went with the member).
    for id in [&by_deactivated, &by_rotated] {
        assert_eq!(share_column(&stack, id, "access_count").await, Some(1));
    }
    assert_eq!(share_column(&stack, &by_member, "access_count").await, None);
    for id in [&by_steady, &by_owner] {
        assert_eq!(
            assert_value(read(&stack, id, As::default()).await, "after"),
            2
        );
    }
    // The managers' list shows only what can still be read.
    let (status, page) = stack.call(Method::GET, "/v1/org/shares", token, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = ids(page["shares"].as_array().unwrap());
    assert_eq!(
        listed,
        HashSet::from([by_steady.clone(), by_owner.clone()]),
        "{page}"
    );
}

/// Owners and admins list every live share of their org, page by page, without values, and
/// may revoke any of them; members and agents may not list; another org's shares never show.
#[tokio::test]
async fn managers_page_through_the_orgs_live_shares_and_may_revoke_any() {
    let stack = TestStack::shared().await;
    let (owner, vault, secret) =
        owner_with_secret(&stack, &stack.email("org-shares@example.com")).await;
    let token = owner.access_token.as_str();
    let missing = refusal(&stack).await;
    let (status, body) = stack
        .call(
            Method::POST,
            "/v1/org/invite",
            token,
            Some(json!({"email": stack.email("org-shares-admin@example.com"), "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Signing up makes an org of one's own; accepting the mailed invitation moves in.
    let invited = stack
        .signup(&stack.email("org-shares-admin@example.com"))
        .await;
    let invitation = stack
        .invitation_token(&stack.email("org-shares-admin@example.com"))
        .await;
    let admin = stack.accept_invitation(&invited, &invitation).await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("org-shares-member@example.com"))
        .await;
    grant(
        &stack,
        &owner,
        &vault,
        ("user", &member_id),
        &["read", "share"],
        json!({}),
    )
    .await;
    let (agent_id, agent) = sharing_agent(&stack, &owner, &vault, "org-shares-bot").await;
    let (other_owner, _, other_secret) =
        owner_with_secret(&stack, &stack.email("org-shares-other@example.com")).await;
    let elsewhere = share(
        &stack,
        &other_owner.access_token,
        &other_secret,
        link(json!({})),
    )
    .await;

    let mut made = Vec::new();
    made.push(
        share(
            &stack,
            token,
            &secret,
            link(json!({"passphrase": "never listed 9f"})),
        )
        .await,
    );
    made.push(
        share(
            &stack,
            token,
            &secret,
            link(json!({"ip_allowlist": ["10.0.0.0/8"]})),
        )
        .await,
    );
    made.push(share(&stack, &member.access_token, &secret, link(json!({}))).await);
    made.push(
        share(
            &stack,
            &agent,
            &secret,
            link(json!({"max_access_count": 5})),
        )
        .await,
    );
    made.push(
        share(
            &stack,
            token,
            &secret,
            json!({"recipient_type": "agent", "recipient_id": agent_id, "expires_at": in_an_hour()}),
        )
        .await,
    );
    let revoked = share(&stack, token, &secret, link(json!({}))).await;
    let (status, _) = stack
        .call(Method::DELETE, &format!("/v1/share/{revoked}"), token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let used_up = share(&stack, token, &secret, link(json!({"max_access_count": 1}))).await;
    assert_value(read(&stack, &used_up, As::default()).await, "its one view");

    // Two at a time, newest first, until no cursor comes back.
    let mut seen = Vec::new();
    let mut path = "/v1/org/shares?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = stack
            .call(Method::GET, &path, &admin.access_token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let text = page.to_string();
        assert!(
            !text.contains(VALUE) && !text.contains("never listed 9f"),
            "{text}"
        );
        assert!(
            !text.contains("10.0.0.0/8") && !text.contains("argon2"),
            "{text}"
        );
        let shares = page["shares"].as_array().unwrap();
        assert!(shares.len() <= 2, "{page}");
        seen.extend(shares.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/org/shares?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    let listed: Vec<String> = seen
        .iter()
        .map(|share| share["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, newest_first);
    let by_id = |id: &str| seen.iter().find(|share| share["id"] == id).unwrap().clone();
    let with_passphrase = by_id(&made[0]);
    assert_eq!(with_passphrase["secret_id"], secret.as_str());
    assert_eq!(with_passphrase["vault_id"], vault.as_str());
    assert_eq!(with_passphrase["secret_path"], "db/password");
    assert_eq!(with_passphrase["creator_type"], "user");
    assert_eq!(with_passphrase["recipient_type"], "anyone_with_link");
    assert_eq!(with_passphrase["has_passphrase"], true);
    assert_eq!(with_passphrase["access_count"], 0);
    assert!(with_passphrase["expires_at"].is_string());
    assert_eq!(by_id(&made[1])["has_ip_allowlist"], true);
    assert_eq!(by_id(&made[2])["creator_id"], member_id.as_str());
    let agents_link = by_id(&made[3]);
    assert_eq!(agents_link["creator_type"], "agent");
    assert_eq!(agents_link["creator_id"], agent_id.as_str());
    assert_eq!(agents_link["max_access_count"], 5);
    assert_eq!(by_id(&made[4])["recipient_id"], agent_id.as_str());
    assert!(!listed.contains(&elsewhere) && !listed.contains(&revoked));
    assert!(!listed.contains(&used_up));

    // Members and agents may not list; bad pages are 400 problems.
    for who in [&member.access_token, &agent] {
        let (status, body) = stack.call(Method::GET, "/v1/org/shares", who, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    for query in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=not-a-cursor",
        "limit=1&limit=2",
    ] {
        let (status, body) = stack
            .call(Method::GET, &format!("/v1/org/shares?{query}"), token, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["status"], 400, "{query}: {body}");
    }
    let (status, page) = stack
        .call(Method::GET, "/v1/org/shares?limit=200", token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["shares"].as_array().unwrap().len(), made.len());
    assert!(page["next_cursor"].is_null(), "{page}");

    // An admin revokes the agent's link and the member's: both stop at once.
    for id in [&made[3], &made[2]] {
        let (status, body) = stack
            .call(
                Method::DELETE,
                &format!("/v1/share/{id}"),
                &admin.access_token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_refused(
            read(&stack, id, As::default()).await,
            &missing,
            "revoked by an admin",
        );
    }
    // Not another org's, though: that one is not theirs to find.
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/share/{elsewhere}"),
            &admin.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = stack.call(Method::GET, "/v1/org/shares", token, None).await;
    assert_eq!(page["shares"].as_array().unwrap().len(), made.len() - 2);
    // The route is in the OpenAPI document with its parameters and answers.
    let doc: Value = stack.get("/v1/openapi.json").await.json().await.unwrap();
    let operation = &doc["paths"]["/v1/org/shares"]["get"];
    assert_eq!(operation["operationId"], "listOrgShares", "{operation}");
    assert_eq!(operation["tags"], json!(["Sharing"]));
    let params: HashSet<&str> = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|param| param["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, HashSet::from(["limit", "cursor"]));
    for status in ["200", "400", "401", "403"] {
        assert!(operation["responses"][status].is_object(), "{status}");
    }
    assert!(doc["components"]["schemas"]["OrgShareListResponse"].is_object());
}

/// Concurrent wrong guesses cannot outrun the lockout: each takes one of the ten attempts in
/// the database before its hash is checked, so of thirty at once exactly ten are evaluated,
/// the link locks, and the right passphrase is refused afterwards. A right guess before that
/// hands its attempt back.
#[tokio::test(flavor = "multi_thread")]
async fn thirty_concurrent_wrong_passphrases_get_exactly_ten_evaluated() {
    let stack = TestStack::shared().await;
    let (owner, _, secret) =
        owner_with_secret(&stack, &stack.email("burst-guess@example.com")).await;
    let missing = refusal(&stack).await;
    let id = share(
        &stack,
        &owner.access_token,
        &secret,
        link(json!({"passphrase": "the right one"})),
    )
    .await;
    let right = As {
        passphrase: Some("the right one"),
        ..As::default()
    };
    assert_value(read(&stack, &id, right).await, "the right passphrase");
    assert_eq!(
        share_column(&stack, &id, "failed_passphrase_attempts").await,
        Some(0),
        "a right guess hands its attempt back"
    );

    let url = stack.edge_url(&format!("/v1/share/{id}"));
    let mut guesses = tokio::task::JoinSet::new();
    for attempt in 0..30 {
        let request = stack
            .client
            .get(&url)
            .header("X-Share-Passphrase", format!("wrong guess {attempt}"));
        guesses.spawn(async move { send(request).await });
    }
    while let Some(outcome) = guesses.join_next().await {
        assert_refused(outcome.unwrap(), &missing, "a wrong guess");
    }
    assert_eq!(
        share_column(&stack, &id, "failed_passphrase_attempts").await,
        Some(10),
        "exactly ten guesses were evaluated"
    );
    assert_refused(
        read(&stack, &id, right).await,
        &missing,
        "after the lockout",
    );
    assert_refused(
        status_of(&stack, &id).await,
        &missing,
        "status after the lockout",
    );
    assert_eq!(share_column(&stack, &id, "access_count").await, Some(1));
}

#[tokio::test]
async fn outbound_and_inbound_share_lists_page_newest_first() {
    let stack = TestStack::shared().await;
    let (owner, _vault, secret) =
        owner_with_secret(&stack, &stack.email("shares-pager@example.com")).await;
    let token = owner.access_token.as_str();
    let (agent_id, agent) = stack.create_agent(token, "recipient").await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(
            share(
                &stack,
                token,
                &secret,
                json!({"recipient_type": "agent", "recipient_id": agent_id, "expires_at": in_an_hour()}),
            )
            .await,
        );
    }
    made.reverse();
    for (who, list) in [
        (token, "/v1/shares/outbound"),
        (agent.as_str(), "/v1/shares/inbound"),
    ] {
        let (listed, pages) = stack.page_through(who, list, "shares", 2).await;
        let listed: Vec<String> = listed
            .iter()
            .map(|share| share["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!((&listed, pages), (&made, 3), "{list}");
        stack.assert_bad_pages_refused(who, list).await;
    }
}
