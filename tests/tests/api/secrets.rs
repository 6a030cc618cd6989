//! Vaults and secrets through the edge: versions, deletes, expiry and access counts, paths,
//! tenancy, and what is stored (SECURITY.md cases 7, 8, 12, 13, 16).

use oxvault_tests::{Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn every_put_makes_a_version_and_reads_see_the_latest() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("keeper@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "prod").await;

    let (status, first) = stack
        .put_secret(
            &owner.access_token,
            &vault,
            "db/password",
            json!({"value": "one", "type": "password", "metadata": {"env": "prod"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["version"], 1);
    assert_eq!(first["type"], "password");
    assert!(
        first.get("value").is_none(),
        "a write never echoes the value"
    );
    let (_, second) = stack
        .put_secret(
            &owner.access_token,
            &vault,
            "db/password",
            json!({"value": "two"}),
        )
        .await;
    assert_eq!(second["version"], 2);
    assert_eq!(second["id"], first["id"], "one secret, two versions");

    let (status, read) = stack
        .get_secret(&owner.access_token, &vault, "db/password")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["value"], "two");
    assert_eq!(read["version"], 2);
    assert_eq!(read["path"], "db/password");

    let (status, list) = stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}/secrets?prefix=db/"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains("two"),
        "listings never carry values"
    );
}

#[tokio::test]
async fn deleted_secrets_are_gone_and_unknown_ones_not_found() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("deleter@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    stack
        .put_secret(&owner.access_token, &vault, "temp", json!({"value": "x"}))
        .await;

    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{vault}/secrets/temp"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "temp")
            .await
            .0,
        StatusCode::GONE
    );
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "never")
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A new PUT starts a new secret at the path, from version 1.
    let (_, revived) = stack
        .put_secret(&owner.access_token, &vault, "temp", json!({"value": "y"}))
        .await;
    assert_eq!(revived["version"], 1);
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "temp")
            .await
            .1["value"],
        "y"
    );
}

#[tokio::test]
async fn access_counts_and_expiry_are_enforced() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("counter@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    stack
        .put_secret(
            &owner.access_token,
            &vault,
            "once",
            json!({"value": "x", "max_access_count": 2}),
        )
        .await;

    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "once")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "once")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "once")
            .await
            .0,
        StatusCode::GONE
    );

    let past = stack
        .put_secret(
            &owner.access_token,
            &vault,
            "old",
            json!({"value": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(past.0, StatusCode::BAD_REQUEST);
    let zero = stack
        .put_secret(
            &owner.access_token,
            &vault,
            "z",
            json!({"value": "x", "max_access_count": 0}),
        )
        .await;
    assert_eq!(zero.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn path_tricks_are_refused_not_normalised() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("paths@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    stack
        .put_secret(
            &owner.access_token,
            &vault,
            "a/b",
            json!({"value": "secret-ab"}),
        )
        .await;

    // Dot segments never get this far through the edge: URL parsing (the client's, then the
    // Worker runtime's) resolves them first, so `a/./b` arrives as `a/b`. What survives URL
    // parsing must be refused by the origin.
    for trick in [
        "a%2Fb",
        "a%2fb",
        "a//b",
        "a/b/",
        "A/B%00",
        "a/b%20",
        "a%2E%2E/b",
    ] {
        let (status, body) = stack.get_secret(&owner.access_token, &vault, trick).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{trick}: {status} {body}"
        );
        assert!(
            !body.to_string().contains("secret-ab"),
            "{trick} must not reach a/b"
        );
        let (status, _) = stack
            .put_secret(&owner.access_token, &vault, trick, json!({"value": "x"}))
            .await;
        assert_ne!(status, StatusCode::CREATED, "{trick} must not be writable");
    }
    // A client that does not resolve dot segments, straight at the origin: refused too.
    for raw in ["a/./b", "a/../a/b", "./a/b"] {
        let status = raw_get_status(
            stack.origin_base(),
            &format!("/v1/vaults/{vault}/secrets/{raw}"),
            &owner.access_token,
        )
        .await;
        assert_eq!(status, 400, "{raw} sent as is");
    }
    // Paths are case-sensitive: another case is another (missing) secret.
    assert_eq!(
        stack.get_secret(&owner.access_token, &vault, "A/B").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn another_orgs_vaults_and_secrets_are_not_found() {
    let stack = TestStack::shared().await;
    let alice = stack.signup(&stack.email("alice@a.example")).await;
    let mallory = stack.signup(&stack.email("mallory@b.example")).await;
    let vault = stack.create_vault(&alice.access_token, "alice").await;
    stack
        .put_secret(
            &alice.access_token,
            &vault,
            "k",
            json!({"value": "alice-only"}),
        )
        .await;

    let (status, _) = stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}"),
            &mallory.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        stack.get_secret(&mallory.access_token, &vault, "k").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack
            .put_secret(&mallory.access_token, &vault, "k", json!({"value": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = stack
        .call(Method::GET, "/v1/vaults", &mallory.access_token, None)
        .await;
    assert_eq!(list["vaults"], json!([]));
    // And alice's secret is untouched.
    assert_eq!(
        stack.get_secret(&alice.access_token, &vault, "k").await.1["value"],
        "alice-only"
    );
}

#[tokio::test]
async fn a_deleted_vaults_secrets_are_unreadable_at_once() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("vaultdel@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "doomed").await;
    stack
        .put_secret(&owner.access_token, &vault, "k", json!({"value": "x"}))
        .await;

    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{vault}"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        stack.get_secret(&owner.access_token, &vault, "k").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn values_are_stored_sealed_and_a_tampered_or_moved_value_fails_closed() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("sealed@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    let canary = "canary-7f3a9c2e-value";
    stack
        .put_secret(
            &owner.access_token,
            &vault,
            "canary",
            json!({"value": canary}),
        )
        .await;
    stack
        .put_secret(
            &owner.access_token,
            &vault,
            "other",
            json!({"value": "other-value"}),
        )
        .await;

    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT s.path, v.sealed FROM secret_versions v JOIN secrets s ON s.id = v.secret_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    for (path, sealed) in &rows {
        assert_eq!(sealed[0], 0x02, "{path}: format byte");
        assert!(
            !sealed.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{path} holds plaintext"
        );
    }
    assert!(
        !stack.origin_log().contains(canary),
        "the value never reaches the log"
    );

    // Move the canary's blob onto the other path: it must not open there, though its data
    // key sits in the origin's cache since the write (the cache is keyed by place too).
    sqlx::query(
        "UPDATE secret_versions SET sealed = (SELECT v.sealed FROM secret_versions v \
           JOIN secrets s ON s.id = v.secret_id WHERE s.path = 'canary' AND s.vault_id = $1::uuid) \
         WHERE secret_id = (SELECT id FROM secrets WHERE path = 'other' AND vault_id = $1::uuid)",
    )
    .bind(&vault)
    .execute(&mut db)
    .await
    .unwrap();
    let (status, body) = stack.get_secret(&owner.access_token, &vault, "other").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains(canary));

    // Flip one bit of the canary's ciphertext tail: it must not open either.
    sqlx::query(
        "UPDATE secret_versions SET sealed = set_byte(sealed, length(sealed) - 1, \
           get_byte(sealed, length(sealed) - 1) # 1) \
         WHERE secret_id = (SELECT id FROM secrets WHERE path = 'canary' AND vault_id = $1::uuid)",
    )
    .bind(&vault)
    .execute(&mut db)
    .await
    .unwrap();
    let (status, body) = stack
        .get_secret(&owner.access_token, &vault, "canary")
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains(canary));
}

#[tokio::test]
async fn an_agent_without_a_policy_sees_no_vault() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("agentowner@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    stack
        .put_secret(&owner.access_token, &vault, "k", json!({"value": "x"}))
        .await;
    let (_, access_token) = stack.create_agent(&owner.access_token, "bot").await;
    let agent_session = Session {
        email: String::new(),
        access_token,
        refresh_token: String::new(),
    };

    assert_eq!(
        stack
            .get_secret(&agent_session.access_token, &vault, "k")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = stack
        .call(Method::GET, "/v1/vaults", &agent_session.access_token, None)
        .await;
    assert_eq!(list["vaults"], json!([]));
}

/// A GET sent byte for byte, without any URL normalisation, returning the status code.
async fn raw_get_status(base: &str, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Reads of a hot secret open its data key from the keyring's cache: the HSM is asked only
/// for the audit MACs (at most one call per read, fewer when reads share a batch), never
/// again for the unwrap. (The cache is keyed by place too: a wrapped key moved elsewhere
/// still fails, see `values_are_stored_sealed_and_a_tampered_or_moved_value_fails_closed`.)
#[tokio::test]
async fn hot_reads_take_the_data_key_from_the_cache_and_batch_their_events() {
    let stack = TestStack::start().await;
    let owner = stack.signup(&stack.email("hot@example.com")).await;
    let token = &owner.access_token;
    let vault = stack.create_vault(token, "hot").await;
    let (status, _) = stack
        .put_secret(token, &vault, "api/key", json!({"value": "hot-value"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let calls_before = stack.origin_counter("oxvault_hsm_calls_total").await;
    let events_before = stack.origin_counter("oxvault_audit_events_total").await;
    const READS: u64 = 40;
    let reads = (0..READS).map(|_| stack.get_secret(token, &vault, "api/key"));
    for (status, body) in futures_util::future::join_all(reads).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"], "hot-value");
    }
    let calls = stack.origin_counter("oxvault_hsm_calls_total").await - calls_before;
    let events = stack.origin_counter("oxvault_audit_events_total").await - events_before;
    let transactions = stack
        .origin_counter("oxvault_audit_transactions_total")
        .await;
    assert_eq!(events, READS, "one event per read");
    assert!(
        calls <= READS,
        "{calls} HSM calls for {READS} reads: the data key was unwrapped again"
    );
    assert!(
        transactions < stack.origin_counter("oxvault_audit_events_total").await,
        "concurrent reads shared no audit transaction"
    );
    // One origin alone: after its first batch it knows every head, so each later batch is the
    // single compare-and-swap statement, and none ever finds a head moved.
    assert_eq!(
        stack
            .origin_counter("oxvault_audit_missed_heads_total")
            .await,
        0,
        "a lone origin's single-statement appends missed their heads"
    );
}

/// Reads that arrive together share one lookup statement (issue 10), and each still gets its
/// own answer: its caller's value, version, refusal or absence, never a neighbour's. The mix
/// covers every way a batched lookup decides: two agents with policies on different paths, a
/// deactivated agent, the owner (a user and session), a version, a missing path and a vault
/// that does not exist (read without the batch's row, from the caller's state alone).
#[tokio::test]
async fn reads_that_share_a_lookup_each_get_their_own_answer() {
    let stack = TestStack::start().await;
    let owner = stack.signup(&stack.email("batched@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "batched").await;
    for (path, value) in [("a/one", "a1"), ("a/two", "a2"), ("b/one", "b1")] {
        let (status, body) = stack
            .put_secret(token, &vault, path, json!({"value": format!("{value}-v1")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = stack
        .put_secret(token, &vault, "a/one", json!({"value": "a1-v2"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (a_id, a_agent) = stack.create_agent(token, "reads-a").await;
    stack
        .grant_agent(token, &vault, &a_id, "a/*", &["read"])
        .await;
    let (b_id, b_agent) = stack.create_agent(token, "reads-b").await;
    stack
        .grant_agent(token, &vault, &b_id, "b/*", &["read"])
        .await;
    let (gone_id, gone_agent) = stack.create_agent(token, "deactivated").await;
    stack
        .grant_agent(token, &vault, &gone_id, "a/*", &["read"])
        .await;
    stack.deactivate_agent(token, &gone_id).await;
    let missing_vault = "00000000-0000-4000-8000-000000000001";

    // (token, path, expected status, expected value)
    let cases: Vec<(&str, String, StatusCode, Option<&str>)> = vec![
        (
            &a_agent,
            format!("/v1/vaults/{vault}/secrets/a/one"),
            StatusCode::OK,
            Some("a1-v2"),
        ),
        (
            &a_agent,
            format!("/v1/vaults/{vault}/secrets/a/two"),
            StatusCode::OK,
            Some("a2-v1"),
        ),
        (
            &a_agent,
            format!("/v1/vaults/{vault}/secret-version/a/one/1"),
            StatusCode::OK,
            Some("a1-v1"),
        ),
        (
            &a_agent,
            format!("/v1/vaults/{vault}/secrets/b/one"),
            StatusCode::FORBIDDEN,
            None,
        ),
        (
            &a_agent,
            format!("/v1/vaults/{vault}/secrets/a/none"),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            &b_agent,
            format!("/v1/vaults/{vault}/secrets/b/one"),
            StatusCode::OK,
            Some("b1-v1"),
        ),
        (
            &b_agent,
            format!("/v1/vaults/{vault}/secrets/a/one"),
            StatusCode::FORBIDDEN,
            None,
        ),
        (
            &gone_agent,
            format!("/v1/vaults/{vault}/secrets/a/one"),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            token,
            format!("/v1/vaults/{vault}/secrets/a/two"),
            StatusCode::OK,
            Some("a2-v1"),
        ),
        (
            token,
            format!("/v1/vaults/{missing_vault}/secrets/a/one"),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            &a_agent,
            format!("/v1/vaults/{missing_vault}/secrets/a/one"),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            &gone_agent,
            format!("/v1/vaults/{missing_vault}/secrets/a/one"),
            StatusCode::UNAUTHORIZED,
            None,
        ),
    ];
    // The stack is the test's own: these are its first reads.
    const ROUNDS: usize = 8;
    let reads = (0..ROUNDS)
        .flat_map(|_| cases.iter())
        .map(|(who, path, _, _)| stack.call(Method::GET, path, who, None));
    let answers = futures_util::future::join_all(reads).await;
    for ((_, path, status, value), (got, body)) in
        (0..ROUNDS).flat_map(|_| cases.iter()).zip(answers)
    {
        assert_eq!(got, *status, "{path}: {body}");
        assert_eq!(
            body.get("value").and_then(|v| v.as_str()),
            *value,
            "{path}: {body}"
        );
    }
    let reads = stack.origin_counter("oxvault_read_batch_reads_sum").await;
    let batches = stack.origin_counter("oxvault_read_batch_reads_count").await;
    assert_eq!(
        reads,
        (ROUNDS * cases.len()) as u64,
        "every read went through a lookup"
    );
    assert!(
        batches < reads,
        "{reads} concurrent reads took {batches} lookup statements: none was shared"
    );
}

/// The secret read, the hot path (its principal check rides on its batched lookup, issue 10):
/// deactivating an agent or ending a session binds the very next
/// read, current and versioned alike, and nothing else.
#[tokio::test]
async fn a_secret_read_refuses_at_once_a_token_that_no_longer_speaks_for_anyone() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("checked@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    let (status, body) = stack
        .put_secret(token, &vault, "db/x", json!({"value": "v1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (agent_id, bot) = stack.create_agent(token, "bot").await;
    stack
        .grant_agent(token, &vault, &agent_id, "db/*", &["read"])
        .await;
    let versioned = format!("/v1/vaults/{vault}/secret-version/db/x/1");
    let read_version = |token: String| {
        let stack = &stack;
        let versioned = versioned.clone();
        async move { stack.call(Method::GET, &versioned, &token, None).await }
    };

    let (status, read) = stack.get_secret(&bot, &vault, "db/x").await;
    assert_eq!(
        (status, read["value"].as_str()),
        (StatusCode::OK, Some("v1"))
    );
    assert_eq!(read_version(bot.clone()).await.0, StatusCode::OK);

    stack.deactivate_agent(token, &agent_id).await;
    let (status, refused) = stack.get_secret(&bot, &vault, "db/x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert!(refused.get("value").is_none());
    assert_eq!(read_version(bot.clone()).await.0, StatusCode::UNAUTHORIZED);

    // A user's second session reads until it logs out; the first one is untouched.
    let second = stack.login(&stack.email("checked@example.com")).await;
    let (status, _) = stack.get_secret(&second.access_token, &vault, "db/x").await;
    assert_eq!(status, StatusCode::OK);
    let logout = stack
        .request(Method::DELETE, "/v1/auth/token", &second.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let (status, _) = stack.get_secret(&second.access_token, &vault, "db/x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        read_version(second.access_token.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = stack.get_secret(token, &vault, "db/x").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn secret_lists_page_through_every_path_once_and_only_what_the_caller_may_read() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("pager@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "many").await;
    // 60 paths an agent may not read, then 60 it may, in path order.
    let mut paths = Vec::new();
    for n in 0..60 {
        for dir in ["a", "b"] {
            let path = format!("{dir}/{n:03}");
            let (status, body) = stack
                .put_secret(token, &vault, &path, json!({"value": "v"}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            paths.push(path);
        }
    }
    paths.sort();
    let list = format!("/v1/vaults/{vault}/secrets");

    let (listed, pages) = stack.page_through(token, &list, "secrets", 50).await;
    let listed: Vec<String> = listed
        .iter()
        .map(|secret| secret["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pages, 3, "120 paths, 50 a page");
    assert_eq!(listed, paths, "every path once, in order, no gaps");
    let (with_prefix, _) = stack
        .page_through(token, &format!("{list}?prefix=a/"), "secrets", 7)
        .await;
    assert_eq!(with_prefix.len(), 60);

    // The default page is 50, and says where the next one starts.
    let (status, first) = stack.call(Method::GET, &list, token, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["secrets"].as_array().unwrap().len(), 50);
    assert!(first["next_cursor"].is_string(), "{first}");

    // An agent that may read b/ only gets full pages of b/ paths: its first page skips the
    // 60 unreadable rows before them.
    let (agent_id, bot) = stack.create_agent(token, "reader").await;
    stack
        .grant_agent(token, &vault, &agent_id, "b/**", &["read"])
        .await;
    let (seen, pages) = stack.page_through(&bot, &list, "secrets", 25).await;
    let seen: Vec<&str> = seen
        .iter()
        .map(|secret| secret["path"].as_str().unwrap())
        .collect();
    let readable: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .filter(|path| path.starts_with("b/"))
        .collect();
    assert_eq!(seen, readable);
    assert_eq!(pages, 3, "25 + 25 + 10");

    stack.assert_bad_pages_refused(token, &list).await;
}

#[tokio::test]
async fn oversized_metadata_is_a_400_problem_and_an_oversized_body_a_413() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("heavy@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;

    // The reproduction: 900 KB of metadata in a body under the 1 MiB limit.
    for (metadata, why) in [
        (json!({"blob": "x".repeat(900 * 1024)}), "900 KB"),
        (json!({"blob": "x".repeat(16 * 1024)}), "just over 16 KiB"),
        (
            json!({"a": [[[[[[[["nine levels"]]]]]]]]}),
            "nested nine levels",
        ),
    ] {
        let (status, body) = stack
            .put_secret(
                token,
                &vault,
                "db/heavy",
                json!({"value": "v", "metadata": metadata}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["status"], 400, "{why}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("metadata"),
            "{why}: {body}"
        );
    }
    let (status, body) = stack.get_secret(token, &vault, "db/heavy").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written: {body}");
    let (status, body) = stack
        .put_secret(
            token,
            &vault,
            "db/heavy",
            json!({"value": "v", "metadata": {"blob": "x".repeat(16 * 1024 - 20)}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "16 KiB fits: {body}");

    // A body over 1 MiB is a 413 problem, at the edge and at the origin alike.
    let huge = json!({"value": "v", "metadata": {"blob": "x".repeat(1024 * 1024)}}).to_string();
    let path = format!("/v1/vaults/{vault}/secrets/db/huge");
    for url in [stack.edge_url(&path), stack.origin_url(&path)] {
        let response = stack
            .client
            .put(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .expect("oversized PUT");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/problem+json"),
            "{url}: {content_type}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], 413, "{url}: {body}");
    }
    // Chunked, with no length declared: the origin stops reading at the limit all the same,
    // and says so in a problem body (the PUT handler reads raw bytes).
    let (status, body) = chunked_put(&stack.origin_url(&path), token, huge.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(body.contains("\"status\":413"), "{body}");
}

/// A PUT of `body` to `url` (plain http) sent chunked, with no `Content-Length`: the status
/// line and the body of the answer.
async fn chunked_put(url: &str, token: &str, body: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    for chunk in body.chunks(64 * 1024) {
        let sent = async {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            stream.write_all(chunk).await?;
            stream.write_all(b"\r\n").await
        };
        // The origin may answer and close before the whole body is sent.
        if sent.await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    (status, answer)
}

#[tokio::test]
async fn vault_lists_page_in_creation_order() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("vaults-pager@example.com")).await;
    let token = owner.access_token.as_str();
    let mut made = Vec::new();
    for n in 0..7 {
        made.push(stack.create_vault(token, &format!("v{n}")).await);
    }
    let (listed, pages) = stack.page_through(token, "/v1/vaults", "vaults", 3).await;
    let listed: Vec<&str> = listed
        .iter()
        .map(|vault| vault["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, made, "oldest first, each once");
    assert_eq!(pages, 3);
    stack.assert_bad_pages_refused(token, "/v1/vaults").await;

    // A name must be 1 to 200 characters without control characters.
    for name in ["x".repeat(201), "line\nbreak".to_owned(), "  ".to_owned()] {
        let (status, body) = stack
            .call(
                Method::POST,
                "/v1/vaults",
                token,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
    }
    let (status, body) = stack
        .call(
            Method::POST,
            "/v1/vaults",
            token,
            Some(json!({"name": "ok", "description": "d".repeat(2001)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("2000"), "{body}");
}
