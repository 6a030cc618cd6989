//! The MCP endpoint through the edge, driven by the official MCP Python SDK's Streamable HTTP
//! client (`tests/sdk/mcp_client.py`, in the venv `scripts/test.sh` makes): initialize, list
//! the tools, call each one with an agent's `ocv_` key as the bearer (the edge exchanges it),
//! an agent denied by policy and by scope, a revoked agent refused, and the audit trail
//! holding each call. Raw HTTP checks the transport's edges (Origin, GET, no token).

use std::process::Command;

use oxvault_tests::{Session, TestStack, repo_root};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const VALUE: &str = "mcp-secret-value-90ad";

/// Every tool, by name.
const TOOLS: [&str; 9] = [
    "create_share_link",
    "describe_secret",
    "get_secret",
    "get_secret_request",
    "list_secrets",
    "list_vaults",
    "put_secret",
    "request_secret",
    "rotate_secret",
];

/// Runs the client against the edge's `/mcp` with `token` and `calls`; its JSON output.
async fn mcp(stack: &TestStack, token: &str, calls: &[(&str, Value)]) -> Value {
    let python = std::env::var("OXVAULT_SDK_PYTHON")
        .expect("OXVAULT_SDK_PYTHON must name the venv python with `mcp` (scripts/test.sh)");
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/sdk/mcp_client.py"))
        .arg(stack.edge_url("/mcp"))
        .args(["--token", token]);
    for (name, args) in calls {
        command.args(["--call", name, &args.to_string()]);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("client task")
        .expect("run python");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "mcp_client.py printed no JSON:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The result of call `n` of a run, which must have succeeded (not `isError`).
fn ok(run: &Value, n: usize) -> &Value {
    let call = &run["calls"][n];
    assert_eq!(call["result"]["isError"], false, "call {n}: {call}");
    &call["result"]["structuredContent"]
}

/// The RFC 7807 status of call `n`, which must be a tool error.
fn refused(run: &Value, n: usize) -> u64 {
    let call = &run["calls"][n];
    assert_eq!(call["result"]["isError"], true, "call {n}: {call}");
    call["result"]["structuredContent"]["status"]
        .as_u64()
        .unwrap_or_else(|| panic!("call {n} without a problem status: {call}"))
}

/// An agent of `owner`'s org made with `body`: (agent id, its `ocv_` key).
async fn agent_key(stack: &TestStack, owner: &Session, body: Value) -> (String, String) {
    let (status, created) = stack
        .call(Method::POST, "/v1/agents", &owner.access_token, Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["agent"]["id"]
        .as_str()
        .expect("agent id")
        .to_owned();
    let key = created["api_key"].as_str().expect("api_key").to_owned();
    (id, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_uses_every_tool_with_its_key_and_each_call_is_audited() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("mcp-owner@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "agents").await;
    let (agent_id, key) = agent_key(&stack, &owner, json!({"name": "mcp-bot"})).await;
    let all = ["read", "write", "rotate", "share"];
    stack
        .grant_agent(&owner.access_token, &vault, &agent_id, "**", &all)
        .await;
    assert!(key.starts_with("ocv_"));

    let run = mcp(
        &stack,
        &key,
        &[
            ("list_vaults", json!({})),
            (
                "put_secret",
                json!({"vault_id": vault, "path": "api/openai", "value": VALUE, "type": "api_key"}),
            ),
            ("list_secrets", json!({"vault_id": vault})),
            (
                "describe_secret",
                json!({"vault_id": vault, "path": "api/openai"}),
            ),
            (
                "get_secret",
                json!({"vault_id": vault, "path": "api/openai"}),
            ),
            (
                "rotate_secret",
                json!({"vault_id": vault, "path": "api/rotated-first"}),
            ),
            (
                "request_secret",
                json!({"vault_id": vault, "path": "api/stripe",
                                      "description": "billing needs the Stripe key"}),
            ),
        ],
    )
    .await;
    assert!(run.get("fatal").is_none(), "{run}");
    // The newest revision the SDK asks for in `initialize` and the server knows.
    assert_eq!(run["protocolVersion"], "2025-11-25", "{run}");
    assert_eq!(run["serverInfo"]["name"], "oxvault");
    let mut names: Vec<&str> = run["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    for tool in run["tools"].as_array().into_iter().flatten() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
        assert!(tool["annotations"]["readOnlyHint"].is_boolean(), "{tool}");
        assert!(
            tool["annotations"]["destructiveHint"].is_boolean(),
            "{tool}"
        );
    }
    let read_only = |name: &str| {
        run["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|tool| tool["name"] == name)
            .map(|tool| tool["annotations"]["readOnlyHint"].clone())
    };
    assert_eq!(read_only("get_secret"), Some(json!(true)));
    assert_eq!(read_only("put_secret"), Some(json!(false)));

    let vaults = ok(&run, 0)["vaults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(vaults.iter().any(|v| v["id"] == vault), "{run}");
    let written = ok(&run, 1);
    assert_eq!(
        (written["path"].clone(), written["version"].clone()),
        (json!("api/openai"), json!(1))
    );
    assert!(written.get("value").is_none());
    let secret_id = written["id"].as_str().expect("secret id").to_owned();
    let listed = ok(&run, 2)["secrets"].to_string();
    assert!(
        listed.contains("api/openai") && !listed.contains(VALUE),
        "{listed}"
    );
    assert_eq!(ok(&run, 3)["versions"][0]["version"], 1);
    assert!(!ok(&run, 3).to_string().contains(VALUE));
    assert_eq!(ok(&run, 4)["value"], VALUE);
    assert_eq!(ok(&run, 4)["type"], "api_key");
    // Rotation of a path with no secret: the REST route's 404, as a tool error.
    assert_eq!(refused(&run, 5), 404);
    let request = ok(&run, 6);
    assert_eq!(request["status"], "pending");
    let request_id = request["id"].as_str().expect("request id").to_owned();
    assert_eq!(
        request["request_url"],
        format!("{}/r/{request_id}", stack.edge_base())
    );

    // A person answers the request; the agent sees it fulfilled, rotates, shares.
    let response = stack
        .post_json(
            &format!("/v1/secret-requests/{request_id}/fulfil"),
            &json!({"value": "sk_live_from_a_person"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let run = mcp(
        &stack,
        &key,
        &[
            ("get_secret_request", json!({"request_id": request_id})),
            (
                "get_secret",
                json!({"vault_id": vault, "path": "api/stripe"}),
            ),
            (
                "rotate_secret",
                json!({"vault_id": vault, "path": "api/openai"}),
            ),
            (
                "create_share_link",
                json!({"secret_id": secret_id, "max_access_count": 1}),
            ),
        ],
    )
    .await;
    assert_eq!(ok(&run, 0)["status"], "fulfilled", "{run}");
    assert_eq!(ok(&run, 0)["fulfilled_version"], 1);
    assert_eq!(ok(&run, 1)["value"], "sk_live_from_a_person");
    assert_eq!(ok(&run, 2)["version"], 2);
    assert!(ok(&run, 2).get("value").is_none());
    let share_url = ok(&run, 3)["share_url"].as_str().unwrap_or_default();
    assert!(
        share_url.starts_with(&format!("{}/s/", stack.edge_base())),
        "{run}"
    );
    assert_eq!(ok(&run, 3)["max_access_count"], 1);

    // The trail: every act by the agent, as through REST.
    let (status, events) = stack
        .call(
            Method::GET,
            &format!("/v1/audit/events?actor_id={agent_id}&limit=100"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let actions: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["action"].as_str())
        .collect();
    for action in [
        "secret.write",
        "secret.read",
        "secret.rotate",
        "secret_request.create",
        "share.create",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert_eq!(
        actions.iter().filter(|a| **a == "secret.read").count(),
        2,
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_and_scopes_refuse_tools_as_they_refuse_routes() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("mcp-limits@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "limited").await;
    let (status, _) = stack
        .put_secret(
            &owner.access_token,
            &vault,
            "api/readable",
            json!({"value": VALUE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = stack
        .put_secret(
            &owner.access_token,
            &vault,
            "db/hidden",
            json!({"value": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Read on api/** only: writes and other paths are the REST answers, as tool errors.
    let (reader_id, reader) = agent_key(&stack, &owner, json!({"name": "mcp-reader"})).await;
    stack
        .grant_agent(&owner.access_token, &vault, &reader_id, "api/**", &["read"])
        .await;
    let run = mcp(
        &stack,
        &reader,
        &[
            (
                "get_secret",
                json!({"vault_id": vault, "path": "api/readable"}),
            ),
            (
                "put_secret",
                json!({"vault_id": vault, "path": "api/new", "value": "x"}),
            ),
            (
                "get_secret",
                json!({"vault_id": vault, "path": "db/hidden"}),
            ),
            (
                "request_secret",
                json!({"vault_id": vault, "path": "api/x", "description": "why"}),
            ),
            (
                "get_secret",
                json!({"vault_id": "not-a-vault", "path": "api/readable"}),
            ),
        ],
    )
    .await;
    assert_eq!(ok(&run, 0)["value"], VALUE, "{run}");
    assert_eq!(refused(&run, 1), 403);
    assert_eq!(refused(&run, 2), 403);
    assert_eq!(refused(&run, 3), 403);
    assert_eq!(refused(&run, 4), 404);
    let (status, _) = stack
        .get_secret(&owner.access_token, &vault, "api/new")
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused write wrote nothing"
    );

    // Scoped to reading secrets: the write tools are not listed, and refused when called.
    let (scoped_id, scoped) = agent_key(
        &stack,
        &owner,
        json!({"name": "mcp-scoped", "scopes": ["secrets:read", "vaults:read"]}),
    )
    .await;
    stack
        .grant_agent(
            &owner.access_token,
            &vault,
            &scoped_id,
            "**",
            &["read", "write"],
        )
        .await;
    let run = mcp(
        &stack,
        &scoped,
        &[
            (
                "put_secret",
                json!({"vault_id": vault, "path": "api/scoped", "value": "x"}),
            ),
            (
                "get_secret",
                json!({"vault_id": vault, "path": "api/readable"}),
            ),
        ],
    )
    .await;
    let listed = run["tools"].to_string();
    assert!(!listed.contains("\"put_secret\""), "{listed}");
    assert!(listed.contains("\"get_secret\""), "{listed}");
    assert_eq!(refused(&run, 0), 403, "{run}");
    assert_eq!(ok(&run, 1)["value"], VALUE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivated_agent_is_refused_with_its_key_and_with_its_token() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("mcp-revoked@example.com")).await;
    let (agent_id, key) = agent_key(&stack, &owner, json!({"name": "mcp-gone"})).await;
    let exchanged = stack
        .post_json("/v1/auth/agent-token", &json!({"api_key": key}))
        .await;
    let token = exchanged.json::<Value>().await.expect("token")["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    // Works first (and the edge caches the key's token).
    let run = mcp(&stack, &key, &[("list_vaults", json!({}))]).await;
    ok(&run, 0);

    stack.deactivate_agent(&owner.access_token, &agent_id).await;
    for credential in [&key, &token] {
        let run = mcp(&stack, credential, &[("list_vaults", json!({}))]).await;
        assert!(
            run.get("fatal").is_some(),
            "a deactivated agent got through: {run}"
        );
        assert!(run.get("calls").is_none(), "{run}");
    }
    // A personal key works the same way as an agent's.
    let (status, created) = stack
        .call(
            Method::POST,
            "/v1/auth/api-keys",
            &owner.access_token,
            Some(json!({"name": "mcp"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let personal = created["api_key"].as_str().expect("api_key");
    assert!(personal.starts_with("1ck_"));
    let run = mcp(&stack, personal, &[("list_vaults", json!({}))]).await;
    ok(&run, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_transport_refuses_other_origins_other_methods_and_anonymous_callers() {
    let stack = TestStack::shared().await;
    let owner = stack
        .signup(&stack.email("mcp-transport@example.com"))
        .await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let post = |origin: Option<String>, token: Option<&str>| {
        let mut request = stack
            .client
            .post(stack.edge_url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let token = Some(owner.access_token.as_str());
    let answer = post(None, token).await.expect("post");
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.expect("json");
    // A client asking for 2025-06-18 gets it.
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18", "{body}");

    let foreign = post(Some("https://evil.example".into()), token)
        .await
        .expect("post");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let own = post(
        Some(stack.edge_base().trim_end_matches('/').to_owned()),
        token,
    )
    .await
    .expect("post");
    assert_eq!(own.status(), StatusCode::OK);
    let anonymous = post(None, None).await.expect("post");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bad_key = post(None, Some("ocv_0000000000000000000000000000000000000000")).await;
    assert_eq!(bad_key.expect("post").status(), StatusCode::UNAUTHORIZED);

    let get = stack
        .client
        .get(stack.edge_url("/mcp"))
        .bearer_auth(&owner.access_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let bad_version = stack
        .client
        .post(stack.edge_url("/mcp"))
        .bearer_auth(&owner.access_token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "1999-01-01")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad_version.status(), StatusCode::BAD_REQUEST);
    let problem: Value = bad_version.json().await.expect("a problem document");
    assert_eq!(problem["status"], 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("1999-01-01"),
        "{problem}"
    );

    // A plain JSON client (curl) is served: this server only ever answers JSON. One that
    // accepts neither is refused with a problem document.
    for (accept, status) in [
        ("application/json", StatusCode::OK),
        ("text/html", StatusCode::NOT_ACCEPTABLE),
    ] {
        let answer = stack
            .client
            .post(stack.edge_url("/mcp"))
            .bearer_auth(&owner.access_token)
            .header("accept", accept)
            .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), status, "{accept}");
        let body: Value = answer.json().await.expect("json");
        if status == StatusCode::OK {
            assert!(
                body["result"]["tools"]
                    .as_array()
                    .is_some_and(|t| t.len() == 9),
                "{body}"
            );
        } else {
            assert_eq!(body["status"], 406, "{body}");
        }
    }
}
