//! The audit trail of identity, agents, API keys, membership, vaults and policies, read
//! straight from `audit_events` as the PostgreSQL superuser (not through the API): every act
//! writes exactly one event with the right action, actor, resource, org, client address and
//! details; a refused act writes none; refused sign-ins are on the record too (and answer 503
//! when they cannot be); and no password, token or key ever lands in a row (canary checks over
//! `row_to_json` of every row).

use std::collections::HashSet;

use oxvault_core::api_key::{KEY_SECRET_BYTES, KeyKind, format_key};
use oxvault_tests::{PASSWORD, Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::google::{FakeGoogle, stack_with};

/// Where every request of these tests comes from, as the edge reports it.
const CLIENT_IP: &str = "127.0.0.1";

/// One stored event, and the whole row as JSON text (what the canary checks search).
#[derive(Debug)]
struct Recorded {
    org_id: Option<String>,
    action: String,
    actor_type: String,
    actor_id: Option<String>,
    resource_type: String,
    resource_id: Option<String>,
    details: Value,
    ip_address: Option<String>,
    row: String,
}

/// What one event must say; its address must be [`CLIENT_IP`].
struct Want {
    org: Option<String>,
    /// `(actor_type, actor_id)`.
    actor: (&'static str, Option<String>),
    /// `(resource_type, resource_id)`.
    resource: (&'static str, Option<String>),
    details: Value,
}

impl Want {
    /// An act of `user` in their org on the resource `(type, id)`.
    fn by(user: &Who, resource: (&'static str, &str), details: Value) -> Self {
        Self {
            org: Some(user.org.clone()),
            actor: ("user", Some(user.id.clone())),
            resource: (resource.0, Some(resource.1.to_owned())),
            details,
        }
    }

    /// An act of agent `agent_id` of `user`'s org on itself.
    fn by_agent(user: &Who, agent_id: &str, details: Value) -> Self {
        Self {
            org: Some(user.org.clone()),
            actor: ("agent", Some(agent_id.to_owned())),
            resource: ("agent", Some(agent_id.to_owned())),
            details,
        }
    }

    /// An act of nobody known, in no org, on an unnamed resource of `resource_type`.
    fn by_nobody(resource_type: &'static str, details: Value) -> Self {
        Self {
            org: None,
            actor: ("anonymous", None),
            resource: (resource_type, None),
            details,
        }
    }
}

impl Recorded {
    fn assert(&self, want: Want) {
        let context = format!("{} event: {}", self.action, self.row);
        assert_eq!(self.org_id, want.org, "org of {context}");
        assert_eq!(self.actor_type, want.actor.0, "actor_type of {context}");
        assert_eq!(self.actor_id, want.actor.1, "actor_id of {context}");
        assert_eq!(
            self.resource_type, want.resource.0,
            "resource_type of {context}"
        );
        assert_eq!(
            self.resource_id, want.resource.1,
            "resource_id of {context}"
        );
        assert_eq!(self.details, want.details, "details of {context}");
        assert_eq!(
            self.ip_address.as_deref(),
            Some(CLIENT_IP),
            "ip of {context}"
        );
    }
}

/// The trail as a test sees it: each call returns the events written since the last one.
struct Trail {
    conn: PgConnection,
    seen: HashSet<Uuid>,
}

type Row = (
    Uuid,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
);

impl Trail {
    /// Connects as the superuser; events already written count as seen.
    async fn open(stack: &TestStack) -> Self {
        let conn = PgConnection::connect(stack.database_url())
            .await
            .expect("connect to the test database");
        let mut trail = Self {
            conn,
            seen: HashSet::new(),
        };
        trail.fresh().await;
        trail
    }

    async fn rows(&mut self) -> Vec<Row> {
        sqlx::query_as(
            "SELECT id, org_id::text, action, actor_type, actor_id, resource_type, resource_id, \
                    details::text, ip_address, row_to_json(audit_events)::text \
             FROM audit_events ORDER BY created_at, chain_id, seq",
        )
        .fetch_all(&mut self.conn)
        .await
        .expect("read audit_events")
    }

    /// The events written since the last call, oldest first.
    async fn fresh(&mut self) -> Vec<Recorded> {
        let mut fresh = Vec::new();
        for row in self.rows().await {
            if self.seen.insert(row.0) {
                fresh.push(Recorded {
                    org_id: row.1,
                    action: row.2,
                    actor_type: row.3,
                    actor_id: row.4,
                    resource_type: row.5,
                    resource_id: row.6,
                    details: serde_json::from_str(&row.7).expect("details are JSON"),
                    ip_address: row.8,
                    row: row.9,
                });
            }
        }
        fresh
    }

    /// The one event written since the last call, which must be `action`.
    async fn one(&mut self, action: &str) -> Recorded {
        let mut fresh = self.fresh().await;
        assert_eq!(
            fresh.len(),
            1,
            "expected exactly one {action} event, found {fresh:#?}"
        );
        let event = fresh.remove(0);
        assert_eq!(event.action, action, "{event:#?}");
        event
    }

    /// Asserts that nothing was written since the last call.
    async fn none(&mut self, after: &str) {
        let fresh = self.fresh().await;
        assert!(fresh.is_empty(), "{after} wrote events: {fresh:#?}");
    }

    /// Every row ever written, as JSON text.
    async fn every_row(&mut self) -> Vec<String> {
        self.rows().await.into_iter().map(|row| row.9).collect()
    }

    /// Asserts that no row holds any of `secrets`.
    async fn assert_nowhere(&mut self, secrets: &[&str]) {
        let rows = self.every_row().await;
        assert!(!rows.is_empty(), "the trail is empty: nothing was checked");
        for secret in secrets {
            assert!(!secret.is_empty());
            for row in &rows {
                assert!(
                    !row.contains(secret),
                    "{secret:?} is in an audit row: {row}"
                );
            }
        }
    }
}

/// A user's id and org, from `GET /v1/auth/me` (which is not audited).
struct Who {
    id: String,
    org: String,
}

async fn who(stack: &TestStack, token: &str) -> Who {
    let (status, me) = stack.me(token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    Who {
        id: me["id"].as_str().unwrap().to_owned(),
        org: me["org_id"].as_str().unwrap().to_owned(),
    }
}

/// A POST without credentials: status and body (`Null` when empty or not JSON).
async fn post(stack: &TestStack, path: &str, body: Value) -> (StatusCode, Value) {
    let response = stack.post_json(path, &body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A call as `token` that must answer `expected`; returns the body.
async fn expect(
    stack: &TestStack,
    expected: StatusCode,
    (method, path): (Method, &str),
    token: &str,
    body: Option<Value>,
) -> Value {
    let (status, answer) = stack.call(method.clone(), path, token, body).await;
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {value}"))
}

/// Registers an agent as `owner`: its id and key.
async fn register_agent(stack: &TestStack, owner: &Session, body: Value) -> (String, String) {
    let created = expect(
        stack,
        StatusCode::CREATED,
        (Method::POST, "/v1/agents"),
        &owner.access_token,
        Some(body),
    )
    .await;
    (
        text(&created, "/agent/id").to_owned(),
        text(&created, "/api_key").to_owned(),
    )
}

/// Creates a personal API key as `owner`: its id and key.
async fn create_api_key(stack: &TestStack, owner: &Session, body: Value) -> (String, String) {
    let created = expect(
        stack,
        StatusCode::CREATED,
        (Method::POST, "/v1/auth/api-keys"),
        &owner.access_token,
        Some(body),
    )
    .await;
    (
        text(&created, "/key/id").to_owned(),
        text(&created, "/api_key").to_owned(),
    )
}

#[tokio::test]
async fn every_sign_in_records_one_success_and_never_the_credential() {
    let stack = TestStack::start().await;
    let mut trail = Trail::open(&stack).await;

    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let me = who(&stack, &ada.access_token).await;
    let as_ada = |method: &str| Want::by(&me, ("user", &me.id), json!({"method": method}));
    trail.one("auth.success").await.assert(as_ada("signup"));

    let login = stack.login(&stack.email("ada@example.com")).await;
    trail.one("auth.success").await.assert(as_ada("password"));

    let (status, refreshed) = post(
        &stack,
        "/v1/auth/refresh",
        json!({"refresh_token": login.refresh_token}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    trail.one("auth.success").await.assert(as_ada("refresh"));

    // The SDK's renewal (the bearer token, no body) renews nothing, and records nothing.
    expect(
        &stack,
        StatusCode::BAD_REQUEST,
        (Method::POST, "/v1/auth/refresh"),
        &login.access_token,
        None,
    )
    .await;
    trail.none("a refresh without a refresh token").await;

    let (key_id, api_key) = create_api_key(&stack, &ada, json!({"name": "ci"})).await;
    trail.one("api_key.create").await;
    let (status, from_key) = post(
        &stack,
        "/v1/auth/api-key-token",
        json!({"api_key": api_key}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{from_key}");
    trail.one("auth.success").await.assert(Want::by(
        &me,
        ("api_key", &key_id),
        json!({"method": "api_key"}),
    ));

    let (agent_id, agent_key) = register_agent(&stack, &ada, json!({"name": "bot"})).await;
    trail.one("agent.register").await;
    let (status, agent_token) = post(
        &stack,
        "/v1/auth/agent-token",
        json!({"api_key": agent_key, "agent_id": agent_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{agent_token}");
    trail.one("auth.success").await.assert(Want::by_agent(
        &me,
        &agent_id,
        json!({"method": "agent_token"}),
    ));

    // Logging out: an agent's tokens, a user's session.
    let agent_access = text(&agent_token, "/access_token");
    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, "/v1/auth/token"),
        agent_access,
        None,
    )
    .await;
    trail
        .one("auth.logout")
        .await
        .assert(Want::by_agent(&me, &agent_id, json!({})));
    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, "/v1/auth/token"),
        &login.access_token,
        None,
    )
    .await;
    let logout = trail.one("auth.logout").await;
    let session = logout.resource_id.clone().expect("the session's id");
    logout.assert(Want::by(&me, ("session", &session), json!({})));

    let new_password = "Canary-NewPass-9d41c7e2";
    expect(
        &stack,
        StatusCode::OK,
        (Method::POST, "/v1/auth/change-password"),
        &ada.access_token,
        Some(json!({"current_password": PASSWORD, "new_password": new_password})),
    )
    .await;
    trail
        .one("user.password_change")
        .await
        .assert(Want::by(&me, ("user", &me.id), json!({})));

    trail
        .assert_nowhere(&[
            PASSWORD,
            new_password,
            &ada.access_token,
            &ada.refresh_token,
            &login.access_token,
            &login.refresh_token,
            text(&refreshed, "/access_token"),
            text(&refreshed, "/refresh_token"),
            &api_key,
            text(&from_key, "/access_token"),
            &agent_key,
            agent_access,
        ])
        .await;
}

#[tokio::test]
async fn refused_sign_ins_record_one_failure_each_and_never_the_attempted_secret() {
    let stack = TestStack::start().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let me = who(&stack, &ada.access_token).await;
    let (agent_id, agent_key) = register_agent(&stack, &ada, json!({"name": "bot"})).await;
    let (key_id, api_key) = create_api_key(&stack, &ada, json!({"name": "ci"})).await;
    let mut trail = Trail::open(&stack).await;
    let failure = |method: &str, reason: &str| json!({"method": method, "reason": reason});

    // Passwords: a known address (the user's org hears of it) and an unknown one (no org,
    // and the address typed is not kept).
    let wrong_password = "Canary-WrongPass-51f0aa3c";
    let (status, _) = post(
        &stack,
        "/v1/auth/token",
        json!({"email": stack.email("ada@example.com"), "password": wrong_password}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by(
        &me,
        ("user", &me.id),
        failure("password", "wrong_password"),
    ));
    let unknown_email = stack.email("canary-nobody-7c2e@example.com");
    let other_password = "Canary-OtherPass-0b8d61f4";
    let (status, _) = post(
        &stack,
        "/v1/auth/token",
        json!({"email": unknown_email, "password": other_password}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail
        .one("auth.failure")
        .await
        .assert(Want::by_nobody("user", failure("password", "unknown_user")));

    // Agent keys: unknown, unknown for a named agent, malformed, and a real key whose agent
    // is deactivated.
    let unknown_agent_key = format_key(KeyKind::Agent, &[0x5a; KEY_SECRET_BYTES]);
    let (status, _) = post(
        &stack,
        "/v1/auth/agent-token",
        json!({"api_key": unknown_agent_key}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by_nobody(
        "agent",
        failure("agent_token", "unknown_key"),
    ));
    let (status, _) = post(
        &stack,
        "/v1/auth/agent-token",
        json!({"api_key": unknown_agent_key, "agent_id": agent_id}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by_agent(
        &me,
        &agent_id,
        failure("agent_token", "unknown_key"),
    ));
    let malformed_agent_key = "ocv_Canary-Malformed-3e9a";
    let (status, _) = post(
        &stack,
        "/v1/auth/agent-token",
        json!({"api_key": malformed_agent_key}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by_nobody(
        "agent",
        failure("agent_token", "malformed_key"),
    ));
    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &format!("/v1/agents/{agent_id}")),
        &ada.access_token,
        None,
    )
    .await;
    trail.one("agent.deactivate").await;
    let (status, _) = post(
        &stack,
        "/v1/auth/agent-token",
        json!({"api_key": agent_key}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by_agent(
        &me,
        &agent_id,
        failure("agent_token", "inactive"),
    ));

    // API keys: unknown, malformed, and a real one after its revocation.
    let unknown_user_key = format_key(KeyKind::User, &[0x6b; KEY_SECRET_BYTES]);
    for (key, reason) in [
        (unknown_user_key.as_str(), "unknown_key"),
        ("1ck_Canary-Malformed-aa17", "malformed_key"),
    ] {
        let (status, _) = post(&stack, "/v1/auth/api-key-token", json!({"api_key": key})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key}");
        trail
            .one("auth.failure")
            .await
            .assert(Want::by_nobody("api_key", failure("api_key", reason)));
    }
    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &format!("/v1/auth/api-keys/{key_id}")),
        &ada.access_token,
        None,
    )
    .await;
    trail.one("api_key.revoke").await;
    let (status, _) = post(
        &stack,
        "/v1/auth/api-key-token",
        json!({"api_key": api_key}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by(
        &me,
        ("api_key", &key_id),
        failure("api_key", "revoked_or_expired"),
    ));

    // Refresh tokens: unknown, and a spent one presented again (which revokes the session).
    let unknown_refresh = "ort_Canary-Refresh-52d9b0e6";
    let (status, _) = post(
        &stack,
        "/v1/auth/refresh",
        json!({"refresh_token": unknown_refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail
        .one("auth.failure")
        .await
        .assert(Want::by_nobody("user", failure("refresh", "unknown_token")));
    let (status, _) = post(
        &stack,
        "/v1/auth/refresh",
        json!({"refresh_token": ada.refresh_token}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    trail.one("auth.success").await;
    let (status, _) = post(
        &stack,
        "/v1/auth/refresh",
        json!({"refresh_token": ada.refresh_token}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    trail.one("auth.failure").await.assert(Want::by(
        &me,
        ("user", &me.id),
        failure("refresh", "replayed_token"),
    ));

    trail
        .assert_nowhere(&[
            PASSWORD,
            wrong_password,
            other_password,
            &unknown_email,
            "canary-nobody",
            &unknown_agent_key,
            malformed_agent_key,
            &agent_key,
            &unknown_user_key,
            "Canary-Malformed",
            &api_key,
            unknown_refresh,
            &ada.refresh_token,
            &ada.access_token,
        ])
        .await;
}

#[tokio::test]
async fn a_sign_in_that_cannot_be_recorded_is_refused_with_503() {
    let stack = TestStack::start().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let (_, agent_key) = register_agent(&stack, &ada, json!({"name": "bot"})).await;
    let mut trail = Trail::open(&stack).await;
    let mut admin = PgConnection::connect(stack.database_url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'the audit store is down (test)'; END $$; \
         CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let count_sessions = "SELECT count(*) FROM auth_sessions";
    let sessions_before: i64 = sqlx::query_scalar(count_sessions)
        .fetch_one(&mut admin)
        .await
        .unwrap();

    // A refusal off the record is not a 401: the caller learns nothing about the password.
    for (path, body) in [
        (
            "/v1/auth/token",
            json!({"email": stack.email("ada@example.com"), "password": "not the password"}),
        ),
        (
            "/v1/auth/token",
            json!({"email": stack.email("nobody@example.com"), "password": "not the password"}),
        ),
        (
            "/v1/auth/agent-token",
            json!({"api_key": format_key(KeyKind::Agent, &[0x11; KEY_SECRET_BYTES])}),
        ),
    ] {
        let (status, answer) = post(&stack, path, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {answer}");
    }

    // Nor is a success answered without its event: no token, no session left behind.
    for (path, body) in [
        (
            "/v1/auth/token",
            json!({"email": stack.email("ada@example.com"), "password": PASSWORD}),
        ),
        ("/v1/auth/agent-token", json!({"api_key": agent_key})),
    ] {
        let (status, answer) = post(&stack, path, body).await;
        assert!(status.is_server_error(), "{path}: {status} {answer}");
        assert!(answer.get("access_token").is_none(), "{path}: {answer}");
    }
    let sessions_after: i64 = sqlx::query_scalar(count_sessions)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(sessions_after, sessions_before);
    trail.none("sign-ins while the trail refuses writes").await;

    sqlx::raw_sql("DROP TRIGGER test_refuse_audit ON audit_events")
        .execute(&mut admin)
        .await
        .unwrap();
    stack.login(&stack.email("ada@example.com")).await;
    trail.one("auth.success").await;
}

#[tokio::test]
async fn agent_and_api_key_changes_record_one_event_each_and_refused_ones_none() {
    let stack = TestStack::start().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let me = who(&stack, &ada.access_token).await;
    let (member, _) = stack
        .invite_member(&ada, &stack.email("bob@example.com"))
        .await;
    let vault = stack.create_vault(&ada.access_token, "ops").await;
    let mut trail = Trail::open(&stack).await;

    let (agent_id, agent_key) = register_agent(
        &stack,
        &ada,
        json!({"name": "bot", "scopes": ["vaults:read"], "vault_ids": [vault]}),
    )
    .await;
    let on_agent = ("agent", agent_id.as_str());
    trail.one("agent.register").await.assert(Want::by(
        &me,
        on_agent,
        json!({"name": "bot", "scopes": ["vaults:read"], "vault_ids": [vault]}),
    ));
    let agent_path = format!("/v1/agents/{agent_id}");

    for (change, details) in [
        (
            json!({"name": "bot-2", "scopes": ["secrets:*"]}),
            json!({"fields": ["name", "scopes"], "scopes": ["secrets:*"]}),
        ),
        (
            json!({"is_active": true}),
            json!({"fields": ["is_active"], "is_active": true}),
        ),
    ] {
        expect(
            &stack,
            StatusCode::OK,
            (Method::PATCH, &agent_path),
            &ada.access_token,
            Some(change),
        )
        .await;
        trail
            .one("agent.update")
            .await
            .assert(Want::by(&me, on_agent, details));
    }
    expect(
        &stack,
        StatusCode::OK,
        (Method::PATCH, &agent_path),
        &ada.access_token,
        Some(json!({})),
    )
    .await;
    trail.none("an empty PATCH, which changes nothing").await;

    let rotated = expect(
        &stack,
        StatusCode::OK,
        (Method::POST, &format!("{agent_path}/rotate-key")),
        &ada.access_token,
        None,
    )
    .await;
    trail
        .one("agent.rotate_key")
        .await
        .assert(Want::by(&me, on_agent, json!({})));

    // Refused: a member may not manage agents; an unknown agent; a bad body.
    let unknown_agent = format!("/v1/agents/{}", Uuid::new_v4());
    let unknown_rotate = format!("{unknown_agent}/rotate-key");
    for (status, method, path, token, body) in [
        (
            StatusCode::FORBIDDEN,
            Method::POST,
            "/v1/agents",
            &member.access_token,
            Some(json!({"name": "rogue"})),
        ),
        (
            StatusCode::FORBIDDEN,
            Method::DELETE,
            agent_path.as_str(),
            &member.access_token,
            None,
        ),
        (
            StatusCode::NOT_FOUND,
            Method::PATCH,
            unknown_agent.as_str(),
            &ada.access_token,
            Some(json!({"name": "x"})),
        ),
        (
            StatusCode::NOT_FOUND,
            Method::POST,
            unknown_rotate.as_str(),
            &ada.access_token,
            None,
        ),
        (
            StatusCode::BAD_REQUEST,
            Method::POST,
            "/v1/agents",
            &ada.access_token,
            Some(json!({"name": ""})),
        ),
    ] {
        expect(&stack, status, (method.clone(), path), token, body).await;
        trail.none(&format!("a refused {method} {path}")).await;
    }

    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &agent_path),
        &ada.access_token,
        None,
    )
    .await;
    trail
        .one("agent.deactivate")
        .await
        .assert(Want::by(&me, on_agent, json!({})));

    // Personal API keys.
    let (key_id, api_key) = create_api_key(
        &stack,
        &ada,
        json!({"name": "ci", "scopes": ["vaults:read"]}),
    )
    .await;
    let on_key = ("api_key", key_id.as_str());
    trail.one("api_key.create").await.assert(Want::by(
        &me,
        on_key,
        json!({"name": "ci", "scopes": ["vaults:read"]}),
    ));
    let key_path = format!("/v1/auth/api-keys/{key_id}");
    expect(
        &stack,
        StatusCode::NOT_FOUND,
        (Method::DELETE, &key_path),
        &member.access_token,
        None,
    )
    .await;
    trail.none("revoking another user's key").await;
    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &key_path),
        &ada.access_token,
        None,
    )
    .await;
    trail
        .one("api_key.revoke")
        .await
        .assert(Want::by(&me, on_key, json!({"sessions_revoked": 0})));
    // Revoking again is answered like the first time (harmless), and recorded like it.
    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &key_path),
        &ada.access_token,
        None,
    )
    .await;
    trail
        .one("api_key.revoke")
        .await
        .assert(Want::by(&me, on_key, json!({"sessions_revoked": 0})));

    trail
        .assert_nowhere(&[&agent_key, text(&rotated, "/api_key"), &api_key])
        .await;
}

#[tokio::test]
async fn membership_changes_record_one_event_each_and_refused_ones_none() {
    let stack = TestStack::start().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let me = who(&stack, &ada.access_token).await;
    let (bob, bob_id) = stack
        .invite_member(&ada, &stack.email("bob@example.com"))
        .await;
    let (dave, _) = stack
        .invite_member(&ada, &stack.email("dave@example.com"))
        .await;
    let mut trail = Trail::open(&stack).await;

    expect(
        &stack,
        StatusCode::OK,
        (Method::POST, "/v1/org/invite"),
        &ada.access_token,
        Some(json!({"email": stack.email("Carol@Example.com"), "role": "admin"})),
    )
    .await;
    let invite = trail.one("member.invite").await;
    invite.assert(Want::by(
        &me,
        ("invite", &stack.email("carol@example.com")),
        json!({"role": "admin"}),
    ));
    assert_eq!(
        invite
            .row
            .matches(&stack.email("carol@example.com"))
            .count(),
        1,
        "the address is the resource id and nothing else: {}",
        invite.row
    );

    let bob_path = format!("/v1/org/members/{bob_id}");
    let on_bob = ("user", bob_id.as_str());
    expect(
        &stack,
        StatusCode::OK,
        (Method::PATCH, &bob_path),
        &ada.access_token,
        Some(json!({"role": "admin"})),
    )
    .await;
    trail.one("member.role_change").await.assert(Want::by(
        &me,
        on_bob,
        json!({"old_role": "member", "new_role": "admin"}),
    ));
    expect(
        &stack,
        StatusCode::OK,
        (Method::PATCH, &bob_path),
        &ada.access_token,
        Some(json!({"role": "admin"})),
    )
    .await;
    trail.none("a role change to the same role").await;

    // Refused: an admin demoting the owner, a member managing members, an unknown member,
    // an address that already has an account.
    let bob = stack.login(&bob.email).await;
    trail.one("auth.success").await;
    let ada_path = format!("/v1/org/members/{}", me.id);
    let unknown = format!("/v1/org/members/{}", Uuid::new_v4());
    for (status, method, path, token, body) in [
        (
            StatusCode::FORBIDDEN,
            Method::PATCH,
            ada_path.as_str(),
            &bob.access_token,
            Some(json!({"role": "member"})),
        ),
        (
            StatusCode::FORBIDDEN,
            Method::PATCH,
            bob_path.as_str(),
            &dave.access_token,
            Some(json!({"role": "member"})),
        ),
        (
            StatusCode::FORBIDDEN,
            Method::DELETE,
            bob_path.as_str(),
            &dave.access_token,
            None,
        ),
        (
            StatusCode::NOT_FOUND,
            Method::DELETE,
            unknown.as_str(),
            &ada.access_token,
            None,
        ),
        (
            StatusCode::CONFLICT,
            Method::POST,
            "/v1/org/invite",
            &ada.access_token,
            Some(json!({"email": stack.email("dave@example.com")})),
        ),
    ] {
        expect(&stack, status, (method.clone(), path), token, body).await;
        trail.none(&format!("a refused {method} {path}")).await;
    }

    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &bob_path),
        &ada.access_token,
        None,
    )
    .await;
    trail
        .one("member.remove")
        .await
        .assert(Want::by(&me, on_bob, json!({"role": "admin"})));
    expect(
        &stack,
        StatusCode::NOT_FOUND,
        (Method::DELETE, &bob_path),
        &ada.access_token,
        None,
    )
    .await;
    trail.none("removing a removed member").await;
}

#[tokio::test]
async fn vault_and_policy_changes_record_one_event_each_and_refused_ones_none() {
    let stack = TestStack::start().await;
    let ada = stack.signup(&stack.email("ada@example.com")).await;
    let me = who(&stack, &ada.access_token).await;
    let (bob, bob_id) = stack
        .invite_member(&ada, &stack.email("bob@example.com"))
        .await;
    let mut trail = Trail::open(&stack).await;

    let vault = stack.create_vault(&ada.access_token, "payments").await;
    let on_vault = ("vault", vault.as_str());
    trail
        .one("vault.create")
        .await
        .assert(Want::by(&me, on_vault, json!({"name": "payments"})));
    let policies = format!("/v1/vaults/{vault}/policies");
    let for_bob = |permissions: Value| {
        json!({"principal_type": "user", "principal_id": bob_id,
               "secret_path_pattern": "db/*", "permissions": permissions})
    };

    // Refused before any policy exists: bob cannot see the vault (404); a bad body (400).
    expect(
        &stack,
        StatusCode::NOT_FOUND,
        (Method::POST, &policies),
        &bob.access_token,
        Some(for_bob(json!(["read"]))),
    )
    .await;
    expect(
        &stack,
        StatusCode::BAD_REQUEST,
        (Method::POST, &policies),
        &ada.access_token,
        Some(for_bob(json!([]))),
    )
    .await;
    trail.none("refused policy creates").await;

    let created = expect(
        &stack,
        StatusCode::CREATED,
        (Method::POST, &policies),
        &ada.access_token,
        Some(for_bob(json!(["read"]))),
    )
    .await;
    let policy_id = text(&created, "/id").to_owned();
    let on_policy = ("policy", policy_id.as_str());
    let recorded = |permissions: Value| {
        json!({
            "vault_id": vault, "principal_type": "user", "principal_id": bob_id,
            "pattern": "db/*", "permissions": permissions, "effect": "allow",
        })
    };
    trail
        .one("policy.create")
        .await
        .assert(Want::by(&me, on_policy, recorded(json!(["read"]))));

    let policy_path = format!("{policies}/{policy_id}");
    expect(
        &stack,
        StatusCode::OK,
        (Method::PUT, &policy_path),
        &ada.access_token,
        Some(json!({"permissions": ["read", "write"]})),
    )
    .await;
    trail.one("policy.update").await.assert(Want::by(
        &me,
        on_policy,
        recorded(json!(["read", "write"])),
    ));

    // Refused: bob now sees the vault but does not control it (403); an unknown policy (404).
    let vault_path = format!("/v1/vaults/{vault}");
    let unknown_policy = format!("{policies}/{}", Uuid::new_v4());
    for (status, path, token) in [
        (
            StatusCode::FORBIDDEN,
            policy_path.as_str(),
            &bob.access_token,
        ),
        (
            StatusCode::NOT_FOUND,
            unknown_policy.as_str(),
            &ada.access_token,
        ),
        (
            StatusCode::FORBIDDEN,
            vault_path.as_str(),
            &bob.access_token,
        ),
    ] {
        expect(&stack, status, (Method::DELETE, path), token, None).await;
        trail.none(&format!("a refused DELETE {path}")).await;
    }

    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &policy_path),
        &ada.access_token,
        None,
    )
    .await;
    trail.one("policy.delete").await.assert(Want::by(
        &me,
        on_policy,
        recorded(json!(["read", "write"])),
    ));

    expect(
        &stack,
        StatusCode::NO_CONTENT,
        (Method::DELETE, &vault_path),
        &ada.access_token,
        None,
    )
    .await;
    trail
        .one("vault.delete")
        .await
        .assert(Want::by(&me, on_vault, json!({"name": "payments"})));
    expect(
        &stack,
        StatusCode::NOT_FOUND,
        (Method::DELETE, &vault_path),
        &ada.access_token,
        None,
    )
    .await;
    trail.none("deleting a deleted vault").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn google_sign_ins_are_recorded_and_refused_id_tokens_name_nobody() {
    let google = FakeGoogle::start().await;
    let stack = stack_with(&google).await;
    let mut trail = Trail::open(&stack).await;

    let token = google.sign(&FakeGoogle::claims(
        "g-2002",
        &stack.email("gus@example.com"),
    ));
    let (status, body) = post(&stack, "/v1/auth/google", json!({"id_token": token})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = who(&stack, text(&body, "/access_token")).await;
    trail.one("auth.success").await.assert(Want::by(
        &me,
        ("user", &me.id),
        json!({"method": "google"}),
    ));

    let mut unverified =
        FakeGoogle::claims("g-3003", &stack.email("canary-unverified@example.com"));
    unverified["email_verified"] = json!(false);
    for (id_token, reason) in [
        ("Canary.NotA.Jwt".to_owned(), "invalid_id_token"),
        (google.sign(&unverified), "unverified_email"),
    ] {
        let (status, _) = post(&stack, "/v1/auth/google", json!({"id_token": id_token})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}");
        trail.one("auth.failure").await.assert(Want::by_nobody(
            "user",
            json!({"method": "google", "reason": reason}),
        ));
    }
    trail
        .assert_nowhere(&[&token, "Canary.NotA.Jwt", "canary-unverified"])
        .await;
}
