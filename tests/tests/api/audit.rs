//! The audit trail through the edge: the events of secret reads and writes, the events query
//! (filters, paging, who sees what), the hash chain's verification against rows a superuser
//! edits, deletes or reorders, the append-only trigger, a failed audit write failing the
//! read (fail closed), and a canary that no secret value reaches any event (SECURITY.md
//! cases 22 and 23).

use oxvault_tests::{Origin, OriginSettings, Session, TestStack, client_from};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::types::chrono::{DateTime, FixedOffset};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// A superuser connection to the test's database, for reading and tampering.
async fn db(stack: &TestStack) -> PgConnection {
    PgConnection::connect(stack.database_url()).await.unwrap()
}

/// `GET /v1/audit/events?{query}` as the holder of `token`, which must answer 200.
async fn events(stack: &TestStack, token: &str, query: &str) -> Value {
    let (status, body) = stack
        .call(
            Method::GET,
            &format!("/v1/audit/events?{query}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "events?{query}: {body}");
    body
}

/// `GET /v1/audit/verify?{query}` as the holder of `token`, which must answer 200.
async fn verify(stack: &TestStack, token: &str, query: &str) -> Value {
    let (status, body) = stack
        .call(
            Method::GET,
            &format!("/v1/audit/verify?{query}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "verify?{query}: {body}");
    body
}

/// The actions of a page of events, oldest first.
fn actions(page: &Value) -> Vec<String> {
    let mut actions: Vec<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    actions
}

async fn org_of(stack: &TestStack, token: &str) -> String {
    let (status, me) = stack.me(token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["org_id"].as_str().unwrap().to_owned()
}

/// The org's chain as stored, in sequence order: (id, seq).
async fn chain(stack: &TestStack, org: &str) -> Vec<(Uuid, i64)> {
    let org = Uuid::parse_str(org).unwrap();
    sqlx::query_as("SELECT id, seq FROM audit_events WHERE chain_id = $1 ORDER BY seq")
        .bind(org)
        .fetch_all(&mut db(stack).await)
        .await
        .unwrap()
}

/// An owner whose org's chain holds at least 20 events: writes and reads of three secrets.
async fn busy_org(stack: &TestStack) -> (Session, String) {
    let owner = stack.signup(&stack.email("auditor@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "busy").await;
    for i in 0..3 {
        for n in 0..3 {
            let (status, body) = stack
                .put_secret(
                    &owner.access_token,
                    &vault,
                    &format!("app/key{i}"),
                    json!({"value": format!("value-{i}-{n}")}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        for _ in 0..4 {
            let (status, _) = stack
                .get_secret(&owner.access_token, &vault, &format!("app/key{i}"))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    let org = org_of(stack, &owner.access_token).await;
    assert!(chain(stack, &org).await.len() >= 20);
    (owner, org)
}

/// Runs `sql` as the superuser with triggers off (`session_replication_role = replica`
/// skips the append-only trigger), as an attacker with database access would.
async fn tamper(stack: &TestStack, sql: &str, ids: &[Uuid]) {
    let mut db = db(stack).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut db)
        .await
        .unwrap();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for id in ids {
        query = query.bind(*id);
    }
    let done = query.execute(&mut db).await.unwrap();
    assert!(done.rows_affected() >= 1, "{sql} changed nothing");
}

fn assert_broken_at(verdict: &Value, id: Uuid) {
    assert_eq!(verdict["chain_valid"], false, "{verdict}");
    assert_eq!(verdict["broken_at_event_id"], id.to_string(), "{verdict}");
}

/// SECURITY.md case 22: each read or write of a secret writes exactly one event, with the
/// right action, actor, resource, org, address and details.
#[tokio::test]
async fn each_secret_read_or_write_records_exactly_one_event() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("reader@example.com")).await;
    let token = &owner.access_token;
    let user = stack.user_id(token).await;
    let org = org_of(&stack, token).await;
    let vault = stack.create_vault(token, "prod").await;
    let path = "db/password";

    let (_, first) = stack
        .put_secret(token, &vault, path, json!({"value": "one"}))
        .await;
    let secret = first["id"].as_str().unwrap().to_owned();
    // The same Idempotency-Key twice: one write, the replay records nothing.
    for _ in 0..2 {
        let response = stack
            .request(
                Method::PUT,
                &format!("/v1/vaults/{vault}/secrets/{path}"),
                token,
            )
            .header("Idempotency-Key", "audit-once")
            .json(&json!({"value": "two"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let (status, _) = stack.get_secret(token, &vault, path).await;
    assert_eq!(status, StatusCode::OK);
    let version_path = format!("/v1/vaults/{vault}/secret-version/{path}/1");
    let (status, _) = stack.call(Method::GET, &version_path, token, None).await;
    assert_eq!(status, StatusCode::OK);
    let rotate = format!("/v1/vaults/{vault}/secret-rotate/{path}");
    let (status, _) = stack.call(Method::POST, &rotate, token, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let disable = format!("/v1/vaults/{vault}/secret-version-disable/{path}/1");
    let (status, _) = stack.call(Method::POST, &disable, token, None).await;
    assert!(status.is_success(), "{status}");
    // Failed acts record nothing: a disabled version, a missing path.
    let (status, _) = stack.call(Method::GET, &version_path, token, None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = stack.get_secret(token, &vault, "db/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let secret_path = format!("/v1/vaults/{vault}/secrets/{path}");
    let (status, _) = stack.call(Method::DELETE, &secret_path, token, None).await;
    assert!(status.is_success(), "{status}");

    let page = events(&stack, token, &format!("resource_id={secret}")).await;
    assert_eq!(
        actions(&page),
        [
            "secret.write",
            "secret.write",
            "secret.read",
            "secret.read",
            "secret.rotate",
            "secret.version_disable",
            "secret.delete"
        ]
    );
    assert_eq!(page["count"], 7);
    let expected_versions = [Some(1), Some(2), Some(2), Some(1), Some(3), Some(1), None];
    let listed = page["events"].as_array().unwrap().iter().rev();
    for (event, version) in listed.zip(expected_versions) {
        assert_eq!(event["actor_id"], user, "{event}");
        assert_eq!(event["actor_type"], "user", "{event}");
        assert_eq!(event["resource_type"], "secret", "{event}");
        assert_eq!(event["resource_id"], secret, "{event}");
        assert_eq!(event["org_id"], org, "{event}");
        assert_eq!(event["ip_address"], "127.0.0.1", "{event}");
        assert_eq!(event["details"]["path"], path, "{event}");
        assert_eq!(event["details"]["vault_id"], vault, "{event}");
        match version {
            Some(version) => assert_eq!(event["details"]["version"], version, "{event}"),
            None => assert!(event["details"].get("version").is_none(), "{event}"),
        }
        assert!(Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(event["created_at"].as_str().is_some());
    }

    // The table agrees with the API: no other secret event anywhere.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action LIKE 'secret.%' AND org_id = $1::uuid",
    )
    .bind(&org)
    .fetch_one(&mut db(&stack).await)
    .await
    .unwrap();
    assert_eq!(stored, 7);
}

#[tokio::test]
async fn a_fresh_chain_verifies_whole_and_in_windows() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let token = &owner.access_token;
    let stored = chain(&stack, &org).await;

    let verdict = verify(&stack, token, "").await;
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
    assert_eq!(verdict["events_checked"], stored.len());
    assert_eq!(verdict["events_verified"], stored.len());
    assert_eq!(verdict["broken_at_event_id"], Value::Null);
    assert_eq!(
        verdict["scheme"]["algorithm"],
        "SHA-256 links, HMAC-SHA256 seals"
    );
    assert_eq!(verdict["scheme"]["hash_field"], "mac");
    assert_eq!(verdict["scheme"]["link_field"], "prev_mac");
    assert!(verdict["scheme"]["chain_structure"].as_str().is_some());
    assert!(verdict["scheme"]["documentation"].as_str().is_some());

    // A window in the middle links to the event before it.
    let page = events(&stack, token, "limit=1000").await;
    let newest_first = page["events"].as_array().unwrap();
    let tenth_oldest = &newest_first[newest_first.len() - 10];
    let from = tenth_oldest["created_at"].as_str().unwrap();
    let windowed = verify(&stack, token, &format!("from={from}&limit=5")).await;
    assert_eq!(windowed["chain_valid"], true, "{windowed}");
    assert_eq!(windowed["events_checked"], 5);
    let before = verify(&stack, token, &format!("to={from}")).await;
    assert_eq!(before["chain_valid"], true, "{before}");
    assert_eq!(before["events_checked"], 9, "to is exclusive");

    for bad in [
        "limit=0",
        "limit=10001",
        "limit=x",
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
    ] {
        let (status, body) = stack
            .call(Method::GET, &format!("/v1/audit/verify?{bad}"), token, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (member, _) = stack
        .invite_member(&owner, &stack.email("plain@example.com"))
        .await;
    let (status, _) = stack
        .call(Method::GET, "/v1/audit/verify", &member.access_token, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// SECURITY.md case 22: an edited middle row fails its MAC.
#[tokio::test]
async fn verify_finds_an_edited_middle_row() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let stored = chain(&stack, &org).await;
    let (middle, _) = stored[stored.len() / 2];
    tamper(
        &stack,
        "UPDATE audit_events SET details = '{\"path\": \"app/innocent\"}' WHERE id = $1",
        &[middle],
    )
    .await;

    let verdict = verify(&stack, &owner.access_token, "").await;
    assert_broken_at(&verdict, middle);
    assert_eq!(verdict["events_checked"], stored.len());
    assert_eq!(verdict["events_verified"], stored.len() - 1);
}

/// SECURITY.md case 22: a deleted middle row leaves a gap, caught at the event after it.
#[tokio::test]
async fn verify_finds_a_deleted_middle_row() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let stored = chain(&stack, &org).await;
    let at = stored.len() / 2;
    tamper(
        &stack,
        "DELETE FROM audit_events WHERE id = $1",
        &[stored[at].0],
    )
    .await;

    let verdict = verify(&stack, &owner.access_token, "").await;
    assert_broken_at(&verdict, stored[at + 1].0);
    assert_eq!(verdict["events_checked"], stored.len() - 1);
}

/// Two middle rows trading places: the first one out of place is named.
#[tokio::test]
async fn verify_finds_reordered_middle_rows() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let stored = chain(&stack, &org).await;
    let at = stored.len() / 2;
    let ((first, first_seq), (second, second_seq)) = (stored[at], stored[at + 1]);
    let mut db = db(&stack).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut db)
        .await
        .unwrap();
    for (id, seq) in [(first, 1_000_000), (second, first_seq), (first, second_seq)] {
        sqlx::query("UPDATE audit_events SET seq = $2 WHERE id = $1")
            .bind(id)
            .bind(seq)
            .execute(&mut db)
            .await
            .unwrap();
    }

    let verdict = verify(&stack, &owner.access_token, "").await;
    // In sequence order the row that was second now comes first, and fails.
    assert_broken_at(&verdict, second);
    assert_eq!(verdict["events_checked"], stored.len());
}

/// Removing the newest events leaves a chain that is intact as far as it goes; the head row
/// still names the removed last event.
#[tokio::test]
async fn verify_finds_a_truncated_tail() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let stored = chain(&stack, &org).await;
    let n = stored.len();
    tamper(
        &stack,
        "DELETE FROM audit_events WHERE id IN ($1, $2)",
        &[stored[n - 1].0, stored[n - 2].0],
    )
    .await;

    let verdict = verify(&stack, &owner.access_token, "").await;
    assert_broken_at(&verdict, stored[n - 3].0);
    assert_eq!(verdict["events_verified"], n - 2);
}

/// The chain's newest event is always sealed: with its seal taken off, nothing in the HSM
/// vouches for it any more (its hash alone can be recomputed by anyone).
#[tokio::test]
async fn verify_finds_a_newest_event_without_its_seal() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let stored = chain(&stack, &org).await;
    let newest = stored[stored.len() - 1].0;
    tamper(
        &stack,
        "UPDATE audit_events SET seal_id = NULL WHERE id = $1 AND seal_id IS NOT NULL",
        &[newest],
    )
    .await;

    let verdict = verify(&stack, &owner.access_token, "").await;
    assert_broken_at(&verdict, newest);
    assert_eq!(verdict["events_verified"], stored.len() - 1);
}

/// A seal changed in the database no longer holds in the HSM: the event it sealed fails.
#[tokio::test]
async fn verify_finds_an_edited_seal() {
    let stack = TestStack::shared().await;
    let (owner, org) = busy_org(&stack).await;
    let stored = chain(&stack, &org).await;
    let (middle, _) = stored[stored.len() / 2];
    tamper(
        &stack,
        "UPDATE audit_seals SET mac = sha256(mac) \
         WHERE id = (SELECT seal_id FROM audit_events WHERE id = $1)",
        &[middle],
    )
    .await;

    let verdict = verify(&stack, &owner.access_token, "").await;
    assert_broken_at(&verdict, middle);
}

/// Events that several requests appended in one batch share one seal (one HSM call): the
/// chain's last event of each batch holds it. A verification whose stretch ends on an
/// unsealed event reads on to the seal after it, and the whole chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_share_seals_and_the_chain_verifies() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("batched@example.com")).await;
    let token = owner.access_token.clone();
    let vault = stack.create_vault(&token, "batched").await;
    let (status, body) = stack
        .put_secret(&token, &vault, "hot", json!({"value": "v"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let org = Uuid::parse_str(&org_of(&stack, &token).await).unwrap();
    let url = format!("{}/v1/vaults/{vault}/secrets/hot", stack.edge_base());
    let mut unsealed: Option<i64> = None;
    // Bursts of concurrent reads until one batch held several of them (the first nearly
    // always does).
    for _ in 0..5 {
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (client, url, token) = (stack.client.clone(), url.clone(), token.clone());
            reads.spawn(async move { client.get(url).bearer_auth(token).send().await });
        }
        while let Some(response) = reads.join_next().await {
            assert_eq!(response.unwrap().unwrap().status(), StatusCode::OK);
        }
        unsealed = sqlx::query_scalar(
            "SELECT min(seq) FROM audit_events WHERE chain_id = $1 AND seal_id IS NULL",
        )
        .bind(org)
        .fetch_one(&mut db(&stack).await)
        .await
        .unwrap();
        if unsealed.is_some() {
            break;
        }
    }
    let unsealed = unsealed.expect("no two concurrent reads ever shared a seal");
    let (events, seals, newest_sealed): (i64, i64, bool) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT seal_id), \
                bool_or(seal_id IS NOT NULL AND seq = (SELECT seq FROM audit_chain_heads \
                                                       WHERE chain_id = $1)) \
         FROM audit_events WHERE chain_id = $1",
    )
    .bind(org)
    .fetch_one(&mut db(&stack).await)
    .await
    .unwrap();
    assert!(seals < events, "{seals} seals for {events} events");
    assert!(newest_sealed, "the chain's newest event is sealed");

    let verdict = verify(&stack, &token, "").await;
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
    assert_eq!(verdict["events_verified"], events);
    let cut = verify(&stack, &token, &format!("limit={unsealed}")).await;
    assert_eq!(cut["chain_valid"], true, "{cut}");
    assert_eq!(cut["events_checked"], unsealed);
    assert_eq!(cut["events_verified"], unsealed);
}

/// Two origins reading and writing at once append to one chain: every act has its event,
/// the sequence has no gap or repeat, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_origins_appending_at_once_keep_one_exact_chain() {
    const PER_ORIGIN: usize = 20;
    let stack = TestStack::start().await;
    let owner = stack.signup(&stack.email("twice@example.com")).await;
    let token = owner.access_token.clone();
    let vault = stack.create_vault(&token, "v").await;
    stack
        .put_secret(&token, &vault, "shared", json!({"value": "s"}))
        .await;
    let mut settings = OriginSettings::new(stack.database_url(), &stack.own().token);
    settings.migrate = false;
    let second = tokio::task::spawn_blocking(move || Origin::start(&settings))
        .await
        .unwrap();

    // Half through the edge to the first origin, half straight to the second; reads and
    // writes interleaved.
    let mut tasks = tokio::task::JoinSet::new();
    for base in [stack.edge_base().to_owned(), second.url().to_owned()] {
        for i in 0..PER_ORIGIN {
            let (client, token) = (stack.client.clone(), token.clone());
            let url = format!("{base}/v1/vaults/{vault}/secrets/shared");
            tasks.spawn(async move {
                let request = if i % 2 == 0 {
                    client.get(&url)
                } else {
                    client.put(&url).json(&json!({"value": format!("v{i}")}))
                };
                request.bearer_auth(token).send().await.unwrap().status()
            });
        }
    }
    while let Some(status) = tasks.join_next().await {
        assert!(status.unwrap().is_success());
    }

    let org = org_of(&stack, &token).await;
    let stored = chain(&stack, &org).await;
    let seqs: Vec<i64> = stored.iter().map(|(_, seq)| *seq).collect();
    let expected: Vec<i64> = (1..=i64::try_from(seqs.len()).unwrap()).collect();
    assert_eq!(seqs, expected, "one gapless sequence");
    let acts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action IN ('secret.read', 'secret.write')",
    )
    .fetch_one(&mut db(&stack).await)
    .await
    .unwrap();
    assert_eq!(acts, i64::try_from(2 * PER_ORIGIN + 1).unwrap());
    let verdict = verify(&stack, &token, "").await;
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
    assert_eq!(verdict["events_checked"], stored.len());
}

/// The trigger refuses UPDATE, DELETE and TRUNCATE to every normal session, superusers too.
#[tokio::test]
async fn audit_rows_cannot_be_changed_or_removed() {
    let stack = TestStack::shared().await;
    let (_, org) = busy_org(&stack).await;
    let (id, _) = chain(&stack, &org).await[3];
    let mut db = db(&stack).await;
    for sql in [
        "UPDATE audit_events SET action = 'secret.nothing' WHERE id = $1",
        "DELETE FROM audit_events WHERE id = $1",
    ] {
        let err = sqlx::query(sql)
            .bind(id)
            .execute(&mut db)
            .await
            .expect_err(sql);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.code().as_deref(), Some("42501"), "{sql}: {db_err}");
        assert!(db_err.message().contains("append-only"), "{db_err}");
    }
    let err = sqlx::query("TRUNCATE audit_events")
        .execute(&mut db)
        .await
        .expect_err("truncate");
    assert!(err.to_string().contains("append-only"), "{err}");
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE id = $1")
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(still, 1);
}

/// SECURITY.md case 23: when the read's event cannot be written, the value is not answered
/// and the access is not counted.
#[tokio::test]
async fn a_failed_audit_write_fails_the_read_and_keeps_the_count() {
    let stack = TestStack::start().await;
    let owner = stack.signup(&stack.email("closed@example.com")).await;
    let token = &owner.access_token;
    let vault = stack.create_vault(token, "v").await;
    let value = format!("fail-closed-{}", Uuid::new_v4().simple());
    let (status, _) = stack
        .put_secret(
            token,
            &vault,
            "limited",
            json!({"value": value, "max_access_count": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // An unlimited secret takes the other read path (no count, no transaction of its own):
    // it must fail closed just the same.
    let open_value = format!("open-{}", Uuid::new_v4().simple());
    let (status, _) = stack
        .put_secret(token, &vault, "open", json!({"value": open_value}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = stack.get_secret(token, &vault, "open").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "read once so its data key is cached"
    );

    let mut db = db(&stack).await;
    sqlx::query(
        "ALTER TABLE audit_events ADD CONSTRAINT no_reads CHECK (action <> 'secret.read') \
         NOT VALID",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let version = format!("/v1/vaults/{vault}/secret-version/limited/1");
    for _ in 0..3 {
        let (status, body) = stack.get_secret(token, &vault, "limited").await;
        assert!(status.is_server_error(), "{status}: {body}");
        assert!(body["type"].as_str().is_some(), "a problem body: {body}");
        assert!(!body.to_string().contains(&value), "{body}");
        let (status, body) = stack.call(Method::GET, &version, token, None).await;
        assert!(status.is_server_error(), "{status}: {body}");
        assert!(!body.to_string().contains(&value), "{body}");
    }
    for _ in 0..2 {
        let (status, body) = stack.get_secret(token, &vault, "open").await;
        assert!(status.is_server_error(), "{status}: {body}");
        assert!(body["type"].as_str().is_some(), "a problem body: {body}");
        assert!(!body.to_string().contains(&open_value), "{body}");
    }
    let count: i32 = sqlx::query_scalar(
        "SELECT sv.access_count FROM secret_versions sv JOIN secrets s ON s.id = sv.secret_id \
         WHERE s.path = 'limited'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(count, 0, "failed reads are not counted");

    sqlx::query("ALTER TABLE audit_events DROP CONSTRAINT no_reads")
        .execute(&mut db)
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, body) = stack.get_secret(token, &vault, "limited").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"], value.as_str());
    }
    let (status, _) = stack.get_secret(token, &vault, "limited").await;
    assert_eq!(status, StatusCode::GONE, "the limit of 2 is intact");
    let reads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'secret.read'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(
        reads, 3,
        "one event per answered read (one of the open secret)"
    );
    let verdict = verify(&stack, token, "").await;
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
}

/// No secret value, given or generated, appears in any event (or in the origin's log).
#[tokio::test]
async fn no_secret_value_reaches_any_event() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("canary@example.com")).await;
    let token = &owner.access_token;
    let vault = stack.create_vault(token, "canaries").await;
    let canary = format!("CANARY-{}", Uuid::new_v4().simple());
    let mut values = vec![canary.clone()];
    for path in ["canary/one", "canary/two"] {
        for n in 0..2 {
            let value = format!("{canary}-{n}");
            let (status, _) = stack
                .put_secret(
                    token,
                    &vault,
                    path,
                    json!({"value": value, "metadata": {"note": "not secret"}}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, _) = stack
            .call(
                Method::POST,
                &format!("/v1/vaults/{vault}/secret-rotate/{path}"),
                token,
                Some(json!({"length": 48, "charset": "alphanumeric"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, rotated) = stack.get_secret(token, &vault, path).await;
        values.push(rotated["value"].as_str().unwrap().to_owned());
        let (status, _) = stack
            .call(
                Method::GET,
                &format!("/v1/vaults/{vault}/secret-version/{path}/1"),
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = stack
            .call(
                Method::POST,
                &format!("/v1/vaults/{vault}/secret-version-disable/{path}/2"),
                token,
                None,
            )
            .await;
        assert!(status.is_success());
    }
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{vault}/secrets/canary/two"),
            token,
            None,
        )
        .await;
    assert!(status.is_success());

    let rows: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(audit_events)::text FROM audit_events")
            .fetch_all(&mut db(&stack).await)
            .await
            .unwrap();
    let org = format!(r#""org_id":"{}""#, org_of(&stack, token).await);
    let secret_events = rows
        .iter()
        .filter(|row| row.contains(r#""action":"secret."#) && row.contains(&org))
        .count();
    // Per path: 2 writes, 1 rotation, 2 reads, 1 disable; and 1 delete.
    assert_eq!(secret_events, 13, "{rows:#?}");
    for row in &rows {
        for value in &values {
            assert!(!row.contains(value.as_str()), "a value in an event: {row}");
        }
    }
    let page = events(&stack, token, "limit=1000").await.to_string();
    let log = stack.origin_log();
    for value in &values {
        assert!(!page.contains(value.as_str()));
        assert!(!log.contains(value.as_str()), "a value in the origin's log");
    }
}

#[tokio::test]
async fn events_filter_page_and_count() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("filters@example.com")).await;
    let token = &owner.access_token;
    let vault = stack.create_vault(token, "v").await;
    let (_, a) = stack
        .put_secret(token, &vault, "a", json!({"value": "1"}))
        .await;
    stack
        .put_secret(token, &vault, "b", json!({"value": "2"}))
        .await;
    for _ in 0..3 {
        stack.get_secret(token, &vault, "a").await;
    }
    stack.get_secret(token, &vault, "b").await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("member@example.com"))
        .await;
    let member_vault = stack.create_vault(&member.access_token, "mine").await;
    stack
        .put_secret(
            &member.access_token,
            &member_vault,
            "m",
            json!({"value": "3"}),
        )
        .await;

    let reads = events(&stack, token, "action=secret.read").await;
    assert_eq!(reads["count"], 4);
    assert!(actions(&reads).iter().all(|action| action == "secret.read"));
    let secret_a = a["id"].as_str().unwrap();
    let on_a = events(&stack, token, &format!("resource_id={secret_a}")).await;
    assert_eq!(
        actions(&on_a),
        ["secret.write", "secret.read", "secret.read", "secret.read"]
    );
    let both = events(
        &stack,
        token,
        &format!("resource_id={secret_a}&action=secret.write"),
    )
    .await;
    assert_eq!(both["count"], 1);
    let by_member = events(
        &stack,
        token,
        &format!("actor_id={member_id}&action=secret.write"),
    )
    .await;
    assert_eq!(by_member["count"], 1);
    assert_eq!(by_member["events"][0]["actor_id"], member_id.as_str());
    let upper = member_id.to_uppercase();
    let by_upper = events(
        &stack,
        token,
        &format!("actor_id={upper}&action=secret.write"),
    )
    .await;
    assert_eq!(by_upper["count"], 1, "actor ids match whatever their case");

    // Unfiltered, the count is every event of the org (taken from its chain's head, which
    // moves in the same transaction as the events): on every page and past the end.
    let everything = events(&stack, token, "limit=200").await;
    let listed = everything["events"].as_array().unwrap().len();
    assert!(listed >= 8, "{everything}");
    assert_eq!(everything["count"], listed);
    let first_two = events(&stack, token, "limit=2").await;
    assert_eq!(first_two["count"], listed);
    assert_eq!(first_two["events"][1], everything["events"][1]);
    let beyond = events(&stack, token, "offset=500").await;
    assert_eq!(
        (beyond["count"].as_u64(), &beyond["events"]),
        (Some(listed as u64), &json!([]))
    );

    // Newest first; pages count everything that matches.
    let all = events(&stack, token, "action=secret.read").await;
    let times: Vec<DateTime<FixedOffset>> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| DateTime::parse_from_rfc3339(event["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] > pair[1]), "{times:?}");
    let page = events(&stack, token, "action=secret.read&limit=2&offset=1").await;
    assert_eq!(page["count"], 4);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0], all["events"][1]);
    let past = events(&stack, token, "action=secret.read&offset=10").await;
    assert_eq!(past["count"], 4);
    assert_eq!(past["events"], json!([]));

    // [from, to): from includes its event, to excludes it.
    let second_newest = all["events"][1]["created_at"].as_str().unwrap();
    let since = events(
        &stack,
        token,
        &format!("action=secret.read&from={second_newest}"),
    )
    .await;
    assert_eq!(since["count"], 2);
    let until = events(
        &stack,
        token,
        &format!("action=secret.read&to={second_newest}"),
    )
    .await;
    assert_eq!(until["count"], 2);

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "offset=-1",
        "from=2026-02-30T00:00:00Z",
        "to=now",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "action=a%00b",
    ] {
        let (status, body) = stack
            .call(Method::GET, &format!("/v1/audit/events?{bad}"), token, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn members_see_their_own_events_and_agents_and_other_orgs_see_none() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("boss@example.com")).await;
    let owner_id = stack.user_id(&owner.access_token).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    let (_, secret) = stack
        .put_secret(&owner.access_token, &vault, "s", json!({"value": "x"}))
        .await;
    let (member, member_id) = stack
        .invite_member(&owner, &stack.email("worker@example.com"))
        .await;
    let member_vault = stack.create_vault(&member.access_token, "mine").await;
    stack
        .put_secret(
            &member.access_token,
            &member_vault,
            "m",
            json!({"value": "y"}),
        )
        .await;
    stack
        .get_secret(&member.access_token, &member_vault, "m")
        .await;

    let own = events(&stack, &member.access_token, "limit=1000").await;
    let listed = own["events"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed
            .iter()
            .all(|event| event["actor_id"] == member_id.as_str()),
        "{own}"
    );
    assert_eq!(own["count"], listed.len());
    let others = events(
        &stack,
        &member.access_token,
        &format!("actor_id={owner_id}"),
    )
    .await;
    assert_eq!(others, json!({"events": [], "count": 0}));
    let owner_view = events(
        &stack,
        &owner.access_token,
        &format!("actor_id={member_id}"),
    )
    .await;
    assert_eq!(
        owner_view["count"], own["count"],
        "the owner sees the member's events"
    );

    let (_, agent_token) = stack.create_agent(&owner.access_token, "bot").await;
    let agent_token = agent_token.as_str();
    for path in ["/v1/audit/events", "/v1/audit/verify"] {
        let (status, _) = stack.call(Method::GET, path, agent_token, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }

    let stranger = stack.signup(&stack.email("stranger@example.com")).await;
    let secret_id = secret["id"].as_str().unwrap();
    let theirs = events(
        &stack,
        &stranger.access_token,
        &format!("resource_id={secret_id}"),
    )
    .await;
    assert_eq!(theirs["count"], 0);
    let all = events(&stack, &stranger.access_token, "limit=1000").await;
    let stranger_org = org_of(&stack, &stranger.access_token).await;
    assert!(
        all["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["org_id"] == stranger_org.as_str()),
        "{all}"
    );
    let verdict = verify(&stack, &stranger.access_token, "").await;
    assert_eq!(verdict["chain_valid"], true);
    let (status, _) = stack
        .call(Method::GET, "/v1/audit/events", "not-a-token", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Shares are on the record too — made, opened (by whoever held the link) and revoked — each
/// exactly once, naming the share by a fingerprint: its id is the link's credential and never
/// enters the trail, nor does its passphrase.
#[tokio::test]
async fn share_acts_record_one_event_each_without_the_id_or_passphrase() {
    const PASSPHRASE: &str = "canary-share-passphrase-5521";
    let stack = TestStack::shared().await;
    let (token, share) = stack
        .share_new_secret(
            &stack.email("share-audit@example.com"),
            "canary-shared-value-8812",
            json!({
                "recipient_type": "anyone_with_link",
                "expires_at": oxvault_tests::shares::in_an_hour(),
                "passphrase": PASSPHRASE,
            }),
        )
        .await;
    let id = share["id"].as_str().unwrap();
    let read = stack
        .client
        .get(stack.edge_url(&format!("/v1/share/{id}")))
        .header("X-Share-Passphrase", PASSPHRASE)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let (status, _) = stack
        .call(Method::DELETE, &format!("/v1/share/{id}"), &token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let page = events(&stack, &token, "limit=100").await;
    let shares: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["resource_type"] == "share")
        .collect();
    let mut seen: Vec<&str> = shares
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, ["share.access", "share.create", "share.revoke"]);
    let fingerprint = shares[0]["resource_id"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 16, "{fingerprint}");
    assert!(
        shares
            .iter()
            .all(|event| event["resource_id"] == fingerprint)
    );
    let access = shares
        .iter()
        .find(|event| event["action"] == "share.access")
        .unwrap();
    assert_eq!(access["actor_type"], "anonymous", "{access}");
    assert_eq!(access["ip_address"], "127.0.0.1", "{access}");
    assert_eq!(access["details"]["access_count"], 1, "{access}");

    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(e)::text FROM audit_events e")
        .fetch_all(&mut db(&stack).await)
        .await
        .unwrap();
    for row in rows {
        for leaked in [id, PASSPHRASE, "canary-shared-value-8812"] {
            assert!(!row.contains(leaked), "{leaked} in {row}");
        }
    }
    assert!(verify(&stack, &token, "").await["chain_valid"] == true);
}

#[tokio::test]
async fn anonymous_failures_from_many_addresses_spread_over_gapless_org_less_chains() {
    let stack = TestStack::start().await;
    for last in 2..=13u8 {
        let response = client_from(last)
            .post(stack.edge_url("/v1/auth/token"))
            .json(&json!({"email": format!("nobody{last}@example.com"), "password": "wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT chain_id, seq FROM audit_events WHERE org_id IS NULL ORDER BY chain_id, seq",
    )
    .fetch_all(&mut db(&stack).await)
    .await
    .unwrap();
    assert_eq!(rows.len(), 12, "one event per refused sign-in");
    let mut chains: std::collections::BTreeMap<Uuid, Vec<i64>> = Default::default();
    for (chain, seq) in rows {
        assert!(chain.as_u128() < 16, "an org-less chain: {chain}");
        chains.entry(chain).or_default().push(seq);
    }
    assert!(
        chains.len() > 1,
        "12 addresses share no single head row: {chains:?}"
    );
    for (chain, seqs) in chains {
        let expected: Vec<i64> = (1..=i64::try_from(seqs.len()).unwrap()).collect();
        assert_eq!(seqs, expected, "chain {chain} is gapless");
    }
}
