//! Vault access policies through the edge: their CRUD endpoints, and every policy rule seen
//! from the principals they govern. SECURITY.md cases 7 (another org's vaults and policies
//! answer 404), 8 (patterns never widen access; deny beats allow), 9 (bodies cannot set
//! server-owned fields), 10 (a member cannot manage policies) and 11 (a policy change or
//! removal binds the agent's existing token at once).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oxvault_tests::TestStack;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::types::chrono::{DateTime, Utc};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Writes `path` in `vault` as `token` (expected to control it).
async fn seed(stack: &TestStack, token: &str, vault: &str, path: &str) {
    let (status, body) = write(stack, token, vault, path).await;
    assert_eq!(status, StatusCode::CREATED, "seeding {path}: {body}");
}

async fn write(stack: &TestStack, token: &str, vault: &str, path: &str) -> (StatusCode, Value) {
    stack
        .put_secret(
            token,
            vault,
            path,
            json!({"value": format!("value-of-{path}")}),
        )
        .await
}

/// The status of reading `path`; on 200, the value read is checked to be `path`'s own.
async fn read(stack: &TestStack, token: &str, vault: &str, path: &str) -> StatusCode {
    let (status, body) = stack.get_secret(token, vault, path).await;
    if status == StatusCode::OK {
        assert_eq!(body["value"], format!("value-of-{path}"), "{body}");
    }
    status
}

fn policies_path(vault: &str) -> String {
    format!("/v1/vaults/{vault}/policies")
}

fn policy_path(vault: &str, policy: &str) -> String {
    format!("/v1/vaults/{vault}/policies/{policy}")
}

/// Creates a policy (asserting 201) and returns its id.
async fn grant(stack: &TestStack, token: &str, vault: &str, body: Value) -> String {
    let (status, policy) = stack.create_policy(token, vault, body).await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    policy["id"].as_str().unwrap().to_owned()
}

async fn update_policy(
    stack: &TestStack,
    token: &str,
    vault: &str,
    policy: &str,
    body: Value,
) -> (StatusCode, Value) {
    stack
        .call(Method::PUT, &policy_path(vault, policy), token, Some(body))
        .await
}

async fn delete_policy(stack: &TestStack, token: &str, vault: &str, policy: &str) -> StatusCode {
    stack
        .call(Method::DELETE, &policy_path(vault, policy), token, None)
        .await
        .0
}

async fn list_policies(stack: &TestStack, token: &str, vault: &str) -> (StatusCode, Value) {
    stack
        .call(Method::GET, &policies_path(vault), token, None)
        .await
}

/// A policy body for an agent.
fn for_agent(agent: &str, pattern: &str, permissions: &[&str]) -> Value {
    json!({
        "principal_type": "agent",
        "principal_id": agent,
        "secret_path_pattern": pattern,
        "permissions": permissions,
    })
}

/// `base` with `extra`'s fields added.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// The paths of `vault`'s secret listing as `token` sees it, sorted.
async fn listed_paths(stack: &TestStack, token: &str, vault: &str) -> Vec<String> {
    let (status, list) = stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}/secrets"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut paths: Vec<String> = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| secret["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// The RFC 3339 form of the instant `ahead` from now (sub-second precision kept).
fn rfc3339_in(ahead: Duration) -> String {
    let at = unix_now() + ahead;
    DateTime::<Utc>::from_timestamp(i64::try_from(at.as_secs()).unwrap(), at.subsec_nanos())
        .unwrap()
        .to_rfc3339()
}

/// `HH:MM` of the UTC minute of the day `shift` minutes from now in a zone `offset` minutes
/// east of UTC, wrapped around midnight.
fn clock_in(offset: i64, shift: i64) -> String {
    let minute_utc = i64::try_from(unix_now().as_secs() / 60 % 1440).unwrap();
    let minute = (minute_utc + offset + shift).rem_euclid(1440);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, context: &str) {
    assert_eq!(status, expected, "{context}: {body}");
    assert_eq!(body["status"], expected.as_u16(), "{context}: {body}");
    assert!(body["detail"].is_string(), "{context}: {body}");
}

// ---------------------------------------------------------------------------------------------
// The endpoints
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn policies_round_trip_through_create_list_update_and_delete() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("policyowner@example.com")).await;
    let token = owner.access_token.as_str();
    let owner_id = stack.user_id(token).await;
    let vault = stack.create_vault(token, "prod").await;
    let elsewhere = stack.create_vault(token, "elsewhere").await;
    let (agent_id, _) = stack.create_agent(&owner.access_token, "bot").await;

    // What the SDK sends: the four required fields only.
    let (status, minimal) = stack
        .create_policy(token, &vault, for_agent(&agent_id, "db/*", &["read"]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minimal}");
    assert_eq!(minimal["vault_id"], vault);
    assert_eq!(minimal["principal_type"], "agent");
    assert_eq!(minimal["principal_id"], agent_id);
    assert_eq!(minimal["secret_path_pattern"], "db/*");
    assert_eq!(minimal["permissions"], json!(["read"]));
    assert_eq!(minimal["effect"], "allow");
    assert_eq!(minimal["priority"], 0);
    assert_eq!(minimal["conditions"], json!({}));
    assert!(minimal["expires_at"].is_null());
    assert_eq!(minimal["created_by"], owner_id);
    assert!(minimal["created_at"].is_string());

    // Every field, plus server-owned fields and 1Claw fields oxvault does not build: the
    // latter neither fail the request nor apply.
    let planted_id = "00000000-0000-4000-8000-000000000001";
    let expires_at = rfc3339_in(Duration::from_secs(3600));
    let (status, full) = stack.create_policy(token,
        &vault,
        with(
            for_agent(&agent_id, "api/**", &["write", "read", "write"]),
            json!({
                "effect": "deny",
                "priority": 7,
                "conditions": {"time_window": {"after": "22:00", "before": "06:00", "timezone": "+02:00"}},
                "expires_at": expires_at,
                "id": planted_id,
                "vault_id": elsewhere,
                "org_id": planted_id,
                "created_by": planted_id,
                "created_at": "2001-01-01T00:00:00Z",
                "policy_schema_version": 2,
                "tx_conditions": null,
                "attribute_conditions": {},
            }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{full}");
    let full_id = full["id"].as_str().unwrap().to_owned();
    assert_ne!(full_id, planted_id, "the server picks the id");
    assert_eq!(full["vault_id"], vault, "the path names the vault");
    assert_eq!(full["created_by"], owner_id, "the caller made it");
    assert_ne!(full["created_at"], "2001-01-01T00:00:00Z");
    assert_eq!(
        full["permissions"],
        json!(["read", "write"]),
        "each once, in wire order"
    );
    assert_eq!(full["effect"], "deny");
    assert_eq!(full["priority"], 7);
    assert_eq!(
        full["conditions"],
        json!({"time_window": {"after": "22:00", "before": "06:00", "timezone": "+02:00"}})
    );
    assert!(full["expires_at"].is_string());
    let (_, elsewhere_list) = list_policies(&stack, token, &elsewhere).await;
    assert_eq!(elsewhere_list["policies"], json!([]));

    // Listed, oldest first.
    let (status, list) = list_policies(&stack, token, &vault).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [minimal["id"].as_str().unwrap(), full_id.as_str()]);
    assert_eq!(list["policies"][1], full);

    // Update: given fields change, absent ones stay; the principal and pattern never move.
    let (status, updated) = update_policy(
        &stack,
        token,
        &vault,
        &full_id,
        json!({
            "permissions": ["rotate", "share"],
            "effect": "allow",
            "priority": 1000,
            "conditions": {},
            "secret_path_pattern": "**",
            "principal_id": owner_id,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["permissions"], json!(["rotate", "share"]));
    assert_eq!(updated["effect"], "allow");
    assert_eq!(updated["priority"], 1000);
    assert_eq!(updated["conditions"], json!({}));
    assert_eq!(updated["expires_at"], full["expires_at"]);
    assert_eq!(updated["secret_path_pattern"], "api/**");
    assert_eq!(updated["principal_id"], agent_id);
    let (status, unchanged) = update_policy(&stack, token, &vault, &full_id, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unchanged, updated, "an empty update changes nothing");
    // The SDK's update with an expiry only.
    let later = rfc3339_in(Duration::from_secs(7200));
    let (status, extended) = update_policy(
        &stack,
        token,
        &vault,
        &full_id,
        json!({"expires_at": later}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert_ne!(extended["expires_at"], updated["expires_at"]);
    assert_eq!(extended["permissions"], updated["permissions"]);

    // Delete: 204, then the policy is gone for every route.
    assert_eq!(
        delete_policy(&stack, token, &vault, &full_id).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete_policy(&stack, token, &vault, &full_id).await,
        StatusCode::NOT_FOUND
    );
    let (status, body) = update_policy(&stack, token, &vault, &full_id, json!({})).await;
    assert_problem(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "update of a deleted policy",
    );
    let (_, list) = list_policies(&stack, token, &vault).await;
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);
    assert_eq!(list["policies"][0]["id"], minimal["id"]);

    // Ids in the path that are not UUIDs name nothing.
    let (status, body) = update_policy(&stack, token, &vault, "not-a-uuid", json!({})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "malformed policy id");
    let (status, body) = list_policies(&stack, token, "not-a-uuid").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "malformed vault id");
    let (status, body) = stack
        .call(
            Method::DELETE,
            &policy_path("not-a-uuid", minimal["id"].as_str().unwrap()),
            token,
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "malformed vault id");
    // A policy id of another vault of the same org names nothing on this one.
    let minimal_id = minimal["id"].as_str().unwrap();
    assert_eq!(
        delete_policy(&stack, token, &elsewhere, minimal_id).await,
        StatusCode::NOT_FOUND
    );
    let (status, _) = update_policy(
        &stack,
        token,
        &elsewhere,
        minimal_id,
        json!({"permissions": ["write"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = list_policies(&stack, token, &vault).await;
    assert_eq!(list["policies"][0]["permissions"], json!(["read"]));

    // The document lists the four operations under their tag.
    let doc: Value = stack.get("/v1/openapi.json").await.json().await.unwrap();
    let paths = &doc["paths"];
    for (path, method, operation) in [
        ("/v1/vaults/{vault_id}/policies", "post", "createPolicy"),
        ("/v1/vaults/{vault_id}/policies", "get", "listPolicies"),
        (
            "/v1/vaults/{vault_id}/policies/{policy_id}",
            "put",
            "updatePolicy",
        ),
        (
            "/v1/vaults/{vault_id}/policies/{policy_id}",
            "delete",
            "deletePolicy",
        ),
    ] {
        assert_eq!(
            paths[path][method]["operationId"], operation,
            "{path} {method}"
        );
        assert_eq!(paths[path][method]["tags"], json!(["Policies"]));
    }
    assert!(
        doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|tag| tag["name"] == "Policies")
    );
}

#[tokio::test]
async fn invalid_policies_are_400_problems_and_create_nothing() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("validator@example.com")).await;
    let token = owner.access_token.as_str();
    let owner_id = stack.user_id(token).await;
    let vault = stack.create_vault(token, "v").await;
    let (agent_id, _) = stack.create_agent(&owner.access_token, "bot").await;
    let stranger = stack.signup(&stack.email("stranger@other.example")).await;
    let stranger_id = stack.user_id(&stranger.access_token).await;
    let (stranger_agent, _) = stack.create_agent(&stranger.access_token, "bot").await;
    let nobody = "00000000-0000-4000-8000-00000000abcd";

    let good = for_agent(&agent_id, "db/*", &["read"]);
    let cases: Vec<(&str, Value)> = vec![
        ("partial wildcard", for_agent(&agent_id, "a*b", &["read"])),
        ("dot-dot segment", for_agent(&agent_id, "../x", &["read"])),
        ("inner dot-dot", for_agent(&agent_id, "db/../x", &["read"])),
        ("empty segment", for_agent(&agent_id, "db//x", &["read"])),
        ("leading slash", for_agent(&agent_id, "/db/*", &["read"])),
        ("trailing slash", for_agent(&agent_id, "db/", &["read"])),
        ("encoded slash", for_agent(&agent_id, "db%2F*", &["read"])),
        ("empty pattern", for_agent(&agent_id, "", &["read"])),
        ("no permissions", for_agent(&agent_id, "db/*", &[])),
        (
            "unknown permission",
            for_agent(&agent_id, "db/*", &["admin"]),
        ),
        (
            "upper-case permission",
            for_agent(&agent_id, "db/*", &["READ"]),
        ),
        (
            "negative priority",
            with(good.clone(), json!({"priority": -1})),
        ),
        (
            "priority too high",
            with(good.clone(), json!({"priority": 1001})),
        ),
        (
            "unknown effect",
            with(good.clone(), json!({"effect": "maybe"})),
        ),
        (
            "past expiry",
            with(good.clone(), json!({"expires_at": "2001-01-01T00:00:00Z"})),
        ),
        (
            "unknown condition",
            with(good.clone(), json!({"conditions": {"mfa": true}})),
        ),
        (
            "bad CIDR",
            with(
                good.clone(),
                json!({"conditions": {"ip_allowlist": ["nope"]}}),
            ),
        ),
        (
            "named time zone",
            with(
                good.clone(),
                json!({"conditions": {"time_window": {"after": "09:00", "before": "17:00", "timezone": "Europe/Paris"}}}),
            ),
        ),
        (
            "empty time window",
            with(
                good.clone(),
                json!({"conditions": {"time_window": {"after": "09:00", "before": "09:00", "timezone": "UTC"}}}),
            ),
        ),
        (
            "unknown principal type",
            with(good.clone(), json!({"principal_type": "org"})),
        ),
        (
            "principal id not a UUID",
            with(good.clone(), json!({"principal_id": "bot"})),
        ),
        (
            "missing pattern",
            json!({"principal_type": "agent", "principal_id": agent_id, "permissions": ["read"]}),
        ),
    ];
    for (case, body) in cases {
        let (status, problem) = stack.create_policy(token, &vault, body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, case);
    }

    // Principals that are not in this org: unknown ones and another org's alike, and an id
    // of the wrong kind. One answer for all, naming no other org.
    let principals = [
        ("agent", nobody, "unknown agent"),
        ("user", nobody, "unknown user"),
        ("agent", stranger_agent.as_str(), "another org's agent"),
        ("user", stranger_id.as_str(), "another org's user"),
        ("user", agent_id.as_str(), "an agent id as a user"),
        ("agent", owner_id.as_str(), "a user id as an agent"),
    ];
    for (kind, id, case) in principals {
        let body = with(
            good.clone(),
            json!({"principal_type": kind, "principal_id": id}),
        );
        let (status, problem) = stack.create_policy(token, &vault, body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, case);
        assert_eq!(
            problem["detail"], "principal not found in this organization",
            "{case}"
        );
    }

    let (_, list) = list_policies(&stack, token, &vault).await;
    assert_eq!(list["policies"], json!([]), "nothing was created");

    // Updates are checked the same way, and a refused update changes nothing.
    let policy = grant(&stack, token, &vault, good.clone()).await;
    let updates = [
        ("no permissions", json!({"permissions": []})),
        ("unknown permission", json!({"permissions": ["admin"]})),
        ("negative priority", json!({"priority": -5})),
        ("priority too high", json!({"priority": 5000})),
        ("past expiry", json!({"expires_at": "2001-01-01T00:00:00Z"})),
        ("unknown condition", json!({"conditions": {"geo": "EU"}})),
        ("unknown effect", json!({"effect": "perhaps"})),
    ];
    for (case, body) in updates {
        let (status, problem) = update_policy(&stack, token, &vault, &policy, body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, case);
    }
    let (_, list) = list_policies(&stack, token, &vault).await;
    assert_eq!(list["policies"][0]["permissions"], json!(["read"]));
    assert_eq!(list["policies"][0]["priority"], 0);
    assert_eq!(list["policies"][0]["effect"], "allow");
    assert!(list["policies"][0]["expires_at"].is_null());
}

// ---------------------------------------------------------------------------------------------
// The rules, as agents live them
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_single_star_grants_one_segment_and_writing_needs_its_own_grant() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("star@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    for path in ["db/x", "db/x/y", "other", "dbx"] {
        seed(&stack, token, &vault, path).await;
    }
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "db/*", &["read"]),
    )
    .await;

    assert_eq!(read(&stack, &bot, &vault, "db/x").await, StatusCode::OK);
    for denied in ["db/x/y", "other", "dbx", "DB/x", "db"] {
        assert_eq!(
            read(&stack, &bot, &vault, denied).await,
            StatusCode::FORBIDDEN,
            "{denied}"
        );
    }
    let (status, body) = write(&stack, &bot, &vault, "db/x").await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "write without a grant",
    );
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{vault}/secrets/db/x"),
            &bot,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "delete without a grant");

    // A write grant on the same pattern: writes on `db/*` now pass, nested ones still not.
    grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "db/*", &["write"]),
    )
    .await;
    let (status, body) = write(&stack, &bot, &vault, "db/new").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        write(&stack, &bot, &vault, "db/x/z").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        write(&stack, &bot, &vault, "other").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(read(&stack, &bot, &vault, "db/new").await, StatusCode::OK);
    // The agent still cannot see or manage the policies.
    assert_eq!(
        list_policies(&stack, &bot, &vault).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = stack
        .create_policy(&bot, &vault, for_agent(&agent_id, "**", &["read"]))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an agent cannot grant itself"
    );
}

#[tokio::test]
async fn a_double_star_grants_nested_paths() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("doublestar@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    for path in ["db", "db/x", "db/x/y/z", "other", "other/deep/key"] {
        seed(&stack, token, &vault, path).await;
    }
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "db/**", &["read"]),
    )
    .await;

    for allowed in ["db", "db/x", "db/x/y/z"] {
        assert_eq!(
            read(&stack, &bot, &vault, allowed).await,
            StatusCode::OK,
            "{allowed}"
        );
    }
    for denied in ["other", "other/deep/key"] {
        assert_eq!(
            read(&stack, &bot, &vault, denied).await,
            StatusCode::FORBIDDEN,
            "{denied}"
        );
    }

    grant(&stack, token, &vault, for_agent(&agent_id, "**", &["read"])).await;
    for path in ["other", "other/deep/key", "db/x/y/z"] {
        assert_eq!(
            read(&stack, &bot, &vault, path).await,
            StatusCode::OK,
            "{path}"
        );
    }
}

/// Reads of the deny test's three paths and its listing, `db/secret` answering `secret`.
async fn check_deny(stack: &TestStack, bot: &str, vault: &str, secret: StatusCode) {
    assert_eq!(read(stack, bot, vault, "db/secret").await, secret);
    assert_eq!(read(stack, bot, vault, "db/other").await, StatusCode::OK);
    assert_eq!(read(stack, bot, vault, "top").await, StatusCode::OK);
    let expected = if secret == StatusCode::OK {
        vec!["db/other", "db/secret", "top"]
    } else {
        vec!["db/other", "top"]
    };
    assert_eq!(listed_paths(stack, bot, vault).await, expected);
}

#[tokio::test]
async fn deny_beats_allow_whatever_the_priorities() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("deny@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    for path in ["db/secret", "db/other", "top"] {
        seed(&stack, token, &vault, path).await;
    }
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    let allow = grant(
        &stack,
        token,
        &vault,
        with(
            for_agent(&agent_id, "**", &["read"]),
            json!({"priority": 1000}),
        ),
    )
    .await;
    let deny = grant(
        &stack,
        token,
        &vault,
        with(
            for_agent(&agent_id, "db/secret", &["read"]),
            json!({"effect": "deny", "priority": 0}),
        ),
    )
    .await;

    check_deny(&stack, &bot, &vault, StatusCode::FORBIDDEN).await;

    // The priorities swapped: still denied.
    update_policy(&stack, token, &vault, &allow, json!({"priority": 0})).await;
    let (status, _) = update_policy(&stack, token, &vault, &deny, json!({"priority": 1000})).await;
    assert_eq!(status, StatusCode::OK);
    check_deny(&stack, &bot, &vault, StatusCode::FORBIDDEN).await;
    // Equal priorities: still denied.
    update_policy(&stack, token, &vault, &allow, json!({"priority": 1000})).await;
    check_deny(&stack, &bot, &vault, StatusCode::FORBIDDEN).await;

    // The deny turned into an allow: the path opens, on the same token.
    let (status, _) = update_policy(&stack, token, &vault, &deny, json!({"effect": "allow"})).await;
    assert_eq!(status, StatusCode::OK);
    check_deny(&stack, &bot, &vault, StatusCode::OK).await;
    // And back to a deny: closed again at once.
    update_policy(&stack, token, &vault, &deny, json!({"effect": "deny"})).await;
    check_deny(&stack, &bot, &vault, StatusCode::FORBIDDEN).await;
    // A deny for another permission does not touch reads.
    update_policy(
        &stack,
        token,
        &vault,
        &deny,
        json!({"permissions": ["write"]}),
    )
    .await;
    check_deny(&stack, &bot, &vault, StatusCode::OK).await;
}

#[tokio::test]
async fn an_agent_bound_to_another_vault_sees_404_here_even_with_a_policy() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("binding@example.com")).await;
    let token = owner.access_token.as_str();
    let here = stack.create_vault(token, "here").await;
    let there = stack.create_vault(token, "there").await;
    seed(&stack, token, &here, "db/x").await;
    seed(&stack, token, &there, "db/x").await;
    let (agent_id, bot) = stack
        .create_agent_with(
            &owner.access_token,
            json!({"name": "bound", "vault_ids": [there]}),
        )
        .await;
    grant(
        &stack,
        token,
        &here,
        for_agent(&agent_id, "**", &["read", "write"]),
    )
    .await;
    grant(
        &stack,
        token,
        &there,
        for_agent(&agent_id, "db/*", &["read"]),
    )
    .await;

    assert_eq!(
        read(&stack, &bot, &here, "db/x").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        write(&stack, &bot, &here, "db/y").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = stack
        .call(Method::GET, &format!("/v1/vaults/{here}"), &bot, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, vaults) = stack.call(Method::GET, "/v1/vaults", &bot, None).await;
    let ids: Vec<&str> = vaults["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [there.as_str()]);
    // Its own vault works as its policy says.
    assert_eq!(read(&stack, &bot, &there, "db/x").await, StatusCode::OK);
}

#[tokio::test]
async fn removing_or_narrowing_a_policy_binds_the_agents_existing_token_at_once() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("revoke@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    seed(&stack, token, &vault, "db/x").await;
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    let policy = grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "db/*", &["read", "write"]),
    )
    .await;
    assert_eq!(read(&stack, &bot, &vault, "db/x").await, StatusCode::OK);

    // Read dropped: the same token is refused on the next request; writing still works.
    let (status, body) = update_policy(
        &stack,
        token,
        &vault,
        &policy,
        json!({"permissions": ["write"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        read(&stack, &bot, &vault, "db/x").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        listed_paths(&stack, &bot, &vault).await,
        Vec::<String>::new()
    );
    assert_eq!(
        write(&stack, &bot, &vault, "db/x").await.0,
        StatusCode::CREATED
    );
    // Read given back: readable again with the same token.
    update_policy(
        &stack,
        token,
        &vault,
        &policy,
        json!({"permissions": ["read"]}),
    )
    .await;
    assert_eq!(read(&stack, &bot, &vault, "db/x").await, StatusCode::OK);

    // Removed: the vault is invisible to the same token at once.
    assert_eq!(
        delete_policy(&stack, token, &vault, &policy).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        read(&stack, &bot, &vault, "db/x").await,
        StatusCode::NOT_FOUND
    );
    let (_, vaults) = stack.call(Method::GET, "/v1/vaults", &bot, None).await;
    assert_eq!(vaults["vaults"], json!([]));
}

#[tokio::test]
async fn an_expired_policy_stops_matching() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("expiry@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    seed(&stack, token, &vault, "db/x").await;
    seed(&stack, token, &vault, "other/x").await;
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    // A lasting policy keeps the vault visible, so the expired one shows as a 403.
    grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "other/*", &["read"]),
    )
    .await;
    let lifetime = Duration::from_millis(2500);
    let created = unix_now();
    let (status, short) = stack
        .create_policy(
            token,
            &vault,
            with(
                for_agent(&agent_id, "db/*", &["read"]),
                json!({"expires_at": rfc3339_in(lifetime)}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{short}");
    let status = read(&stack, &bot, &vault, "db/x").await;
    if status != StatusCode::OK {
        assert!(
            unix_now() < created + lifetime,
            "the machine was too slow for this test: the policy expired before the first read"
        );
    }
    assert_eq!(status, StatusCode::OK);

    // Wait until just past the expiry.
    let past = (created + lifetime + Duration::from_millis(300)).saturating_sub(unix_now());
    tokio::time::sleep(past).await;
    assert_eq!(
        read(&stack, &bot, &vault, "db/x").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(read(&stack, &bot, &vault, "other/x").await, StatusCode::OK);
    assert_eq!(listed_paths(&stack, &bot, &vault).await, ["other/x"]);
    // Still listed for its managers, with its expiry.
    let (_, list) = list_policies(&stack, token, &vault).await;
    let listed = list["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == short["id"])
        .unwrap();
    assert_eq!(listed["expires_at"], short["expires_at"]);
    // An expiry cannot be set in the past by update either.
    let (status, _) = update_policy(
        &stack,
        token,
        &vault,
        short["id"].as_str().unwrap(),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_secret_listing_shows_an_agent_only_what_its_policies_let_it_read() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("listing@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    for path in ["db/x", "db/y", "db/x/y", "other", "api/key"] {
        seed(&stack, token, &vault, path).await;
    }
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "db/*", &["read"]),
    )
    .await;
    grant(
        &stack,
        token,
        &vault,
        with(
            for_agent(&agent_id, "db/y", &["read"]),
            json!({"effect": "deny"}),
        ),
    )
    .await;
    // Writing `api/**` is not reading it.
    grant(
        &stack,
        token,
        &vault,
        for_agent(&agent_id, "api/**", &["write"]),
    )
    .await;

    assert_eq!(listed_paths(&stack, &bot, &vault).await, ["db/x"]);
    assert_eq!(
        listed_paths(&stack, token, &vault).await,
        ["api/key", "db/x", "db/x/y", "db/y", "other"]
    );
}

// ---------------------------------------------------------------------------------------------
// Members and other orgs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_member_reads_what_a_policy_grants_and_cannot_manage_policies() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("memberowner@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "team").await;
    seed(&stack, token, &vault, "db/x").await;
    seed(&stack, token, &vault, "db/x/y").await;
    let (colleague, member_id) = stack
        .invite_member(&owner, &stack.email("member@example.com"))
        .await;
    let mine = colleague.access_token.as_str();

    // Without a policy the vault is invisible.
    assert_eq!(
        read(&stack, mine, &vault, "db/x").await,
        StatusCode::NOT_FOUND
    );
    let (_, vaults) = stack.call(Method::GET, "/v1/vaults", mine, None).await;
    assert_eq!(vaults["vaults"], json!([]));
    let (status, _) = list_policies(&stack, mine, &vault).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let policy = grant(
        &stack,
        token,
        &vault,
        json!({
            "principal_type": "user",
            "principal_id": member_id,
            "secret_path_pattern": "db/*",
            "permissions": ["read"],
        }),
    )
    .await;
    assert_eq!(read(&stack, mine, &vault, "db/x").await, StatusCode::OK);
    assert_eq!(
        read(&stack, mine, &vault, "db/x/y").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        write(&stack, mine, &vault, "db/x").await.0,
        StatusCode::FORBIDDEN
    );

    // Seeing the vault does not make the member its manager.
    let widen = json!({
        "principal_type": "user",
        "principal_id": member_id,
        "secret_path_pattern": "**",
        "permissions": ["read", "write"],
    });
    let (status, body) = stack.create_policy(mine, &vault, widen).await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "member creates a policy",
    );
    let (status, _) = list_policies(&stack, mine, &vault).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = update_policy(
        &stack,
        mine,
        &vault,
        &policy,
        json!({"permissions": ["read", "write"]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        delete_policy(&stack, mine, &vault, &policy).await,
        StatusCode::FORBIDDEN
    );
    let (_, list) = list_policies(&stack, token, &vault).await;
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);
    assert_eq!(list["policies"][0]["permissions"], json!(["read"]));

    // A vault the member created is theirs to manage.
    let own = stack.create_vault(mine, "mine").await;
    seed(&stack, mine, &own, "k").await;
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    let (status, created) = stack
        .create_policy(mine, &own, for_agent(&agent_id, "k", &["read"]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["created_by"], member_id);
    assert_eq!(read(&stack, &bot, &own, "k").await, StatusCode::OK);
    // And the org's owner manages it too.
    assert_eq!(list_policies(&stack, token, &own).await.0, StatusCode::OK);
}

#[tokio::test]
async fn another_orgs_owner_gets_404_on_every_policy_route() {
    let stack = TestStack::shared().await;
    let alice = stack.signup(&stack.email("alice@a.example")).await;
    let mallory = stack.signup(&stack.email("mallory@b.example")).await;
    let a = alice.access_token.as_str();
    let b = mallory.access_token.as_str();
    let vault = stack.create_vault(a, "alice").await;
    seed(&stack, a, &vault, "db/x").await;
    let (agent_id, bot) = stack.create_agent(&alice.access_token, "bot").await;
    let policy = grant(&stack, a, &vault, for_agent(&agent_id, "db/*", &["read"])).await;
    let (mallory_agent, _) = stack.create_agent(&mallory.access_token, "bot").await;
    let mallory_vault = stack.create_vault(b, "mallory").await;

    let (status, body) = list_policies(&stack, b, &vault).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "list");
    let (status, body) = stack
        .create_policy(b, &vault, for_agent(&mallory_agent, "**", &["read"]))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "create");
    let (status, body) = update_policy(
        &stack,
        b,
        &vault,
        &policy,
        json!({"permissions": ["write"]}),
    )
    .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "update");
    assert_eq!(
        delete_policy(&stack, b, &vault, &policy).await,
        StatusCode::NOT_FOUND
    );
    // Alice's policy id through Mallory's own vault: not found either.
    let (status, _) = update_policy(
        &stack,
        b,
        &mallory_vault,
        &policy,
        json!({"permissions": ["write"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        delete_policy(&stack, b, &mallory_vault, &policy).await,
        StatusCode::NOT_FOUND
    );
    // Nor can Mallory name Alice's agent on her own vault.
    let (status, body) = stack
        .create_policy(b, &mallory_vault, for_agent(&agent_id, "**", &["read"]))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "another org's agent",
    );

    // Alice's policy is untouched and still works.
    let (_, list) = list_policies(&stack, a, &vault).await;
    assert_eq!(list["policies"][0]["id"], policy);
    assert_eq!(list["policies"][0]["permissions"], json!(["read"]));
    assert_eq!(read(&stack, &bot, &vault, "db/x").await, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_time_window_applies_only_while_now_is_inside_it() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("window@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    seed(&stack, token, &vault, "closed/x").await;
    seed(&stack, token, &vault, "open/x").await;
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;

    // Windows relative to now, an hour away from either edge, so a minute ticking over
    // during the test changes nothing; the core wraps those that cross midnight.
    // In UTC, from one to two hours ahead: excludes now.
    grant(
        &stack,
        token,
        &vault,
        with(
            for_agent(&agent_id, "closed/*", &["read"]),
            json!({"conditions": {"time_window": {
                "after": clock_in(0, 60), "before": clock_in(0, 120), "timezone": "UTC"
            }}}),
        ),
    )
    .await;
    // At +02:00, from an hour ago to an hour ahead: includes now.
    grant(
        &stack,
        token,
        &vault,
        with(
            for_agent(&agent_id, "open/*", &["read"]),
            json!({"conditions": {"time_window": {
                "after": clock_in(120, -60), "before": clock_in(120, 60), "timezone": "+02:00"
            }}}),
        ),
    )
    .await;

    assert_eq!(
        read(&stack, &bot, &vault, "closed/x").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(read(&stack, &bot, &vault, "open/x").await, StatusCode::OK);
    // The same open window read as UTC lies two hours ahead: excludes now.
    let (_, list) = list_policies(&stack, token, &vault).await;
    let open = list["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["secret_path_pattern"] == "open/*")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = update_policy(
        &stack,
        token,
        &vault,
        &open,
        json!({"conditions": {"time_window": {
            "after": clock_in(120, -60), "before": clock_in(120, 60), "timezone": "UTC"
        }}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        read(&stack, &bot, &vault, "open/x").await,
        StatusCode::FORBIDDEN
    );
}

/// An IP allowlist is checked against the client's address as the edge reports it to the
/// origin (127.0.0.1 under `wrangler dev`): a list holding it allows, a list without it denies,
/// and a client naming another address in its own headers changes nothing.
#[tokio::test]
async fn an_ip_allowlist_admits_the_address_the_edge_reports_and_no_other() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("allowlist@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    seed(&stack, token, &vault, "db/x").await;
    let (agent_id, bot) = stack.create_agent(&owner.access_token, "bot").await;
    let (status, policy) = stack
        .create_policy(
            token,
            &vault,
            with(
                for_agent(&agent_id, "db/*", &["read"]),
                json!({"conditions": {"ip_allowlist": ["127.0.0.1/32"]}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    assert_eq!(
        policy["conditions"],
        json!({"ip_allowlist": ["127.0.0.1/32"]})
    );
    let policy_id = policy["id"].as_str().unwrap();
    assert_eq!(read(&stack, &bot, &vault, "db/x").await, StatusCode::OK);

    let (status, _) = update_policy(
        &stack,
        token,
        &vault,
        policy_id,
        json!({"conditions": {"ip_allowlist": ["10.0.0.0/8"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read(&stack, &bot, &vault, "db/x").await,
        StatusCode::FORBIDDEN
    );
    // A client cannot claim an address inside the list. (`CF-Connecting-IP` is left out:
    // Cloudflare sets it on every request, but `wrangler dev` lets a client's own through.)
    let spoofed = stack
        .request(
            Method::GET,
            &format!("/v1/vaults/{vault}/secrets/db/x"),
            &bot,
        )
        .header("x-oxvault-client-ip", "10.1.2.3")
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::FORBIDDEN);

    // Without the condition the same policy allows: the allowlist is what denied.
    let (status, _) =
        update_policy(&stack, token, &vault, policy_id, json!({"conditions": {}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read(&stack, &bot, &vault, "db/x").await, StatusCode::OK);
}

#[tokio::test]
async fn policy_lists_page_in_creation_order() {
    let stack = TestStack::shared().await;
    let owner = stack
        .signup(&stack.email("policies-pager@example.com"))
        .await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    let (agent_id, _) = stack.create_agent(token, "bot").await;
    let list = format!("/v1/vaults/{vault}/policies");
    let mut made = Vec::new();
    for n in 0..5 {
        let (status, body) = stack
            .call(
                Method::POST,
                &list,
                token,
                Some(json!({"principal_type": "agent", "principal_id": agent_id,
                            "secret_path_pattern": format!("p{n}/**"), "permissions": ["read"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        made.push(body["id"].as_str().unwrap().to_owned());
    }
    let (listed, pages) = stack.page_through(token, &list, "policies", 2).await;
    let listed: Vec<String> = listed
        .iter()
        .map(|policy| policy["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((listed, pages), (made, 3));
    stack.assert_bad_pages_refused(token, &list).await;
}
