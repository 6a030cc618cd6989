//! Secret versions, server-side rotation and conditional writes through the edge: version
//! list, read and disable; rotate's charsets and limits; `If-Match` and `Idempotency-Key`
//! (SECURITY.md cases 15 and 25, and 7 and 16 for the new routes).

use std::collections::HashSet;

use oxvault_tests::shares::in_an_hour;
use oxvault_tests::{Session, TestStack};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// A call through the edge with extra headers: status, response headers and JSON body.
async fn send(
    stack: &TestStack,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = stack.request(method, path, token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{path} through the edge failed: {err}"));
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, headers, body)
}

async fn put(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    send(
        stack,
        Method::PUT,
        &format!("/v1/vaults/{vault}/secrets/{path}"),
        &session.access_token,
        headers,
        Some(body),
    )
    .await
}

async fn rotate(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    send(
        stack,
        Method::POST,
        &format!("/v1/vaults/{vault}/secret-rotate/{path}"),
        &session.access_token,
        headers,
        Some(body),
    )
    .await
}

async fn read_version(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
    version: &str,
) -> (StatusCode, Value) {
    stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}/secret-version/{path}/{version}"),
            &session.access_token,
            None,
        )
        .await
}

async fn versions(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
) -> (StatusCode, Value) {
    stack
        .call(
            Method::GET,
            &format!("/v1/vaults/{vault}/secret-versions/{path}"),
            &session.access_token,
            None,
        )
        .await
}

async fn disable(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
    version: &str,
) -> StatusCode {
    stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-version-disable/{path}/{version}"),
            &session.access_token,
            None,
        )
        .await
        .0
}

/// The version numbers a version listing shows, in its order.
async fn version_numbers(
    stack: &TestStack,
    session: &Session,
    vault: &str,
    path: &str,
) -> Vec<i64> {
    let (status, list) = versions(stack, session, vault, path).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn versions_are_listed_newest_first_and_each_reads_its_own_value() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("versions@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    for value in ["value-one", "value-two", "value-three"] {
        let (status, _, body) = put(
            &stack,
            &owner,
            &vault,
            "db/pw",
            &[],
            json!({"value": value, "type": "password"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let (status, list) = versions(&stack, &owner, &vault, "db/pw").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = list["versions"].as_array().unwrap();
    let numbers: Vec<_> = listed.iter().map(|v| v["version"].clone()).collect();
    assert_eq!(numbers, [json!(3), json!(2), json!(1)]);
    for version in listed {
        assert_eq!(version["path"], "db/pw");
        assert_eq!(version["type"], "password");
        assert_eq!(version["is_disabled"], false);
        assert!(version.get("value").is_none());
    }
    assert!(
        !list.to_string().contains("value-"),
        "listings never carry values"
    );

    for (version, value) in [("1", "value-one"), ("2", "value-two"), ("3", "value-three")] {
        let (status, body) = read_version(&stack, &owner, &vault, "db/pw", version).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"], value);
        assert_eq!(body["version"], version.parse::<i64>().unwrap());
        assert_eq!(body["path"], "db/pw");
    }
    assert_eq!(
        read_version(&stack, &owner, &vault, "db/pw", "4").await.0,
        StatusCode::NOT_FOUND
    );
    for bad in ["0", "x", "-1"] {
        assert_eq!(
            read_version(&stack, &owner, &vault, "db/pw", bad).await.0,
            StatusCode::BAD_REQUEST,
            "version {bad}"
        );
    }
    assert_eq!(
        versions(&stack, &owner, &vault, "db/never").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        read_version(&stack, &owner, &vault, "db/never", "1")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Path tricks are refused on the version routes too.
    assert_eq!(
        read_version(&stack, &owner, &vault, "db%2Fpw", "1").await.0,
        StatusCode::BAD_REQUEST
    );

    // A deleted secret's versions are gone with it.
    stack
        .call(
            Method::DELETE,
            &format!("/v1/vaults/{vault}/secrets/db/pw"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(
        versions(&stack, &owner, &vault, "db/pw").await.0,
        StatusCode::GONE
    );
    assert_eq!(
        read_version(&stack, &owner, &vault, "db/pw", "1").await.0,
        StatusCode::GONE
    );
}

#[tokio::test]
async fn disabled_versions_answer_gone_and_disabling_the_current_one_stops_reads() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("disable@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    for value in ["a1", "a2", "a3"] {
        put(&stack, &owner, &vault, "k", &[], json!({"value": value})).await;
    }

    assert_eq!(
        disable(&stack, &owner, &vault, "k", "1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        read_version(&stack, &owner, &vault, "k", "1").await.0,
        StatusCode::GONE
    );
    let (_, list) = versions(&stack, &owner, &vault, "k").await;
    let flags: Vec<_> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["is_disabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, [(3, false), (2, false), (1, true)]);
    assert_eq!(
        stack.get_secret(&owner.access_token, &vault, "k").await.1["value"],
        "a3"
    );

    // Disabling the current version makes the current read 410 as well.
    assert_eq!(
        disable(&stack, &owner, &vault, "k", "3").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        stack.get_secret(&owner.access_token, &vault, "k").await.0,
        StatusCode::GONE
    );
    assert_eq!(
        read_version(&stack, &owner, &vault, "k", "3").await.0,
        StatusCode::GONE
    );
    // Older versions that were not disabled still read.
    assert_eq!(
        read_version(&stack, &owner, &vault, "k", "2").await.1["value"],
        "a2"
    );
    // Disabling again changes nothing; a version that never existed is 404.
    assert_eq!(
        disable(&stack, &owner, &vault, "k", "3").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        disable(&stack, &owner, &vault, "k", "9").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        disable(&stack, &owner, &vault, "nope", "1").await,
        StatusCode::NOT_FOUND
    );
    // A new version is readable again.
    put(&stack, &owner, &vault, "k", &[], json!({"value": "a4"})).await;
    assert_eq!(
        stack.get_secret(&owner.access_token, &vault, "k").await.1["value"],
        "a4"
    );
}

#[tokio::test]
async fn a_version_read_counts_against_that_versions_own_limit() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("vcount@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    put(
        &stack,
        &owner,
        &vault,
        "once",
        &[],
        json!({"value": "first", "max_access_count": 1}),
    )
    .await;
    put(
        &stack,
        &owner,
        &vault,
        "once",
        &[],
        json!({"value": "second"}),
    )
    .await;

    assert_eq!(
        read_version(&stack, &owner, &vault, "once", "1").await.0,
        StatusCode::OK
    );
    assert_eq!(
        read_version(&stack, &owner, &vault, "once", "1").await.0,
        StatusCode::GONE
    );
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "once")
            .await
            .1["value"],
        "second"
    );
    assert_eq!(
        read_version(&stack, &owner, &vault, "once", "2").await.0,
        StatusCode::OK
    );
}

fn is_of(value: &str, charset: &str) -> bool {
    value.bytes().all(|b| match charset {
        "hex" => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        "base64" => b.is_ascii_alphanumeric() || b == b'+' || b == b'/',
        "alphanumeric" => b.is_ascii_alphanumeric(),
        "ascii" => b.is_ascii_graphic(),
        _ => false,
    })
}

#[tokio::test]
async fn rotation_writes_a_random_value_of_the_asked_length_and_charset() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("rotate@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    put(
        &stack,
        &owner,
        &vault,
        "svc/token",
        &[],
        json!({"value": "seed-value", "type": "api_key", "metadata": {"team": "core"}}),
    )
    .await;

    // The default: 32 hex characters; type and metadata carried over; no value answered.
    let (status, _, rotated) = rotate(&stack, &owner, &vault, "svc/token", &[], json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["version"], 2);
    assert_eq!(rotated["type"], "api_key");
    assert_eq!(rotated["metadata"], json!({"team": "core"}));
    assert!(rotated.get("value").is_none(), "{rotated}");
    let (_, current) = stack
        .get_secret(&owner.access_token, &vault, "svc/token")
        .await;
    let first = current["value"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 32);
    assert!(is_of(&first, "hex"), "{first}");
    assert_ne!(first, "seed-value");

    let mut seen = HashSet::from([first]);
    for (length, charset) in [
        (64, "alphanumeric"),
        (8, "ascii"),
        (1024, "base64"),
        (100, "hex"),
    ] {
        let (status, _, rotated) = rotate(
            &stack,
            &owner,
            &vault,
            "svc/token",
            &[],
            json!({"length": length, "charset": charset}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{rotated}");
        let (_, current) = stack
            .get_secret(&owner.access_token, &vault, "svc/token")
            .await;
        assert_eq!(current["version"], rotated["version"]);
        let value = current["value"].as_str().unwrap().to_owned();
        assert_eq!(value.len(), length, "{charset}");
        assert!(is_of(&value, charset), "{charset}: {value}");
        assert!(seen.insert(value), "a rotated value repeated");
    }

    // Another type may be asked for.
    let (_, _, typed) = rotate(
        &stack,
        &owner,
        &vault,
        "svc/token",
        &[],
        json!({"type": "password"}),
    )
    .await;
    assert_eq!(typed["type"], "password");

    // Bad requests are refused and write nothing.
    let before = version_numbers(&stack, &owner, &vault, "svc/token").await;
    for bad in [
        json!({"length": 7}),
        json!({"length": 1025}),
        json!({"length": 0}),
        json!({"length": -5}),
        json!({"length": "32"}),
        json!({"charset": "emoji"}),
        json!({"type": "blob"}),
    ] {
        let (status, _, body) = rotate(&stack, &owner, &vault, "svc/token", &[], bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    assert_eq!(
        version_numbers(&stack, &owner, &vault, "svc/token").await,
        before
    );

    // What the SDK may also send: no body at all.
    let response = stack
        .request(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-rotate/svc/token"),
            &owner.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Only existing secrets rotate.
    assert_eq!(
        rotate(&stack, &owner, &vault, "svc/none", &[], json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // No generated value ever reaches the origin's log.
    let log = stack.origin_log();
    for value in &seen {
        assert!(!log.contains(value.as_str()), "a rotated value was logged");
    }
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_writes_nothing() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("ifmatch@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    put(&stack, &owner, &vault, "cfg", &[], json!({"value": "v1"})).await;
    put(&stack, &owner, &vault, "cfg", &[], json!({"value": "v2"})).await;

    let (status, headers, problem) = put(
        &stack,
        &owner,
        &vault,
        "cfg",
        &[("If-Match", "1")],
        json!({"value": "lost-update"}),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{problem}");
    assert_eq!(problem["status"], 412);
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "a problem body"
    );
    assert_eq!(version_numbers(&stack, &owner, &vault, "cfg").await, [2, 1]);
    assert_eq!(
        stack.get_secret(&owner.access_token, &vault, "cfg").await.1["value"],
        "v2"
    );

    let (status, _, written) = put(
        &stack,
        &owner,
        &vault,
        "cfg",
        &[("If-Match", "2")],
        json!({"value": "v3"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    assert_eq!(written["version"], 3);
    // Entity-tag spellings of the version work too.
    for (if_match, version) in [("\"3\"", 4), ("W/\"4\"", 5)] {
        let (status, _, written) = put(
            &stack,
            &owner,
            &vault,
            "cfg",
            &[("If-Match", if_match)],
            json!({"value": "next"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{if_match}");
        assert_eq!(written["version"], version);
    }

    // Rotation honours it as well.
    let (status, _, _) = rotate(
        &stack,
        &owner,
        &vault,
        "cfg",
        &[("If-Match", "4")],
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, _, rotated) = rotate(
        &stack,
        &owner,
        &vault,
        "cfg",
        &[("If-Match", "5")],
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(rotated["version"], 6);

    // Not a version: 400. A path that does not exist has no current version: 412.
    for bad in ["abc", "*", "1, 2", "-1"] {
        let (status, _, _) = put(
            &stack,
            &owner,
            &vault,
            "cfg",
            &[("If-Match", bad)],
            json!({"value": "x"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "If-Match: {bad}");
    }
    let (status, _, _) = put(
        &stack,
        &owner,
        &vault,
        "fresh",
        &[("If-Match", "1")],
        json!({"value": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "fresh")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        version_numbers(&stack, &owner, &vault, "cfg").await.len(),
        6
    );
}

#[tokio::test]
async fn concurrent_writers_with_the_same_if_match_cannot_both_win() {
    let stack = std::sync::Arc::new(TestStack::shared().await);
    let owner = stack.signup(&stack.email("race@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    put(&stack, &owner, &vault, "hot", &[], json!({"value": "base"})).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (stack, owner, vault) = (stack.clone(), owner.clone(), vault.clone());
        tasks.spawn(async move {
            put(
                &stack,
                &owner,
                &vault,
                "hot",
                &[("If-Match", "1")],
                json!({"value": format!("writer-{i}")}),
            )
            .await
            .0
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let stale = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((won, stale), (1, 9), "{statuses:?}");
    assert_eq!(version_numbers(&stack, &owner, &vault, "hot").await, [2, 1]);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_make_one_version() {
    let stack = TestStack::start().await;
    let owner = stack.signup(&stack.email("idem@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    let key = [("Idempotency-Key", "order-7f3a")];
    let body = json!({"value": "idem-value", "metadata": {"n": 1}});

    let (first_status, first_headers, first) =
        put(&stack, &owner, &vault, "idem", &key, body.clone()).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    assert!(first_headers.get("idempotent-replayed").is_none());
    let (again_status, again_headers, again) =
        put(&stack, &owner, &vault, "idem", &key, body.clone()).await;
    assert_eq!(again_status, first_status);
    assert_eq!(again, first, "the first answer, unchanged");
    assert_eq!(again_headers["idempotent-replayed"], "true");
    assert_eq!(version_numbers(&stack, &owner, &vault, "idem").await, [1]);

    // The same key with another body, or on another path, is a conflict; nothing is written.
    let (status, _, problem) = put(
        &stack,
        &owner,
        &vault,
        "idem",
        &key,
        json!({"value": "other-value"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, _, _) = put(&stack, &owner, &vault, "elsewhere", &key, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(version_numbers(&stack, &owner, &vault, "idem").await, [1]);
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "elsewhere")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "idem")
            .await
            .1["value"],
        "idem-value"
    );

    // Keys belong to the caller, not to a path or vault: reused in another vault, a conflict.
    let other_vault = stack.create_vault(&owner.access_token, "second").await;
    let (status, _, _) = put(&stack, &owner, &other_vault, "idem", &key, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A retry of a conditional write replays, even though its If-Match is stale by now.
    let conditional = [("Idempotency-Key", "cond-1"), ("If-Match", "1")];
    let (status, _, written) = put(
        &stack,
        &owner,
        &vault,
        "idem",
        &conditional,
        json!({"value": "v2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, replayed) = put(
        &stack,
        &owner,
        &vault,
        "idem",
        &conditional,
        json!({"value": "v2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replayed, written);
    assert_eq!(
        version_numbers(&stack, &owner, &vault, "idem").await,
        [2, 1]
    );

    // Rotation: the same key twice is one rotation, and the value stays the first one's.
    let rot = [("Idempotency-Key", "rotate-1")];
    let (status, _, rotated) =
        rotate(&stack, &owner, &vault, "idem", &rot, json!({"length": 40})).await;
    assert_eq!(status, StatusCode::CREATED);
    let value = stack
        .get_secret(&owner.access_token, &vault, "idem")
        .await
        .1["value"]
        .clone();
    let (status, _, again) =
        rotate(&stack, &owner, &vault, "idem", &rot, json!({"length": 40})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, rotated);
    assert_eq!(
        stack
            .get_secret(&owner.access_token, &vault, "idem")
            .await
            .1["value"],
        value
    );
    let (status, _, _) = rotate(&stack, &owner, &vault, "idem", &rot, json!({"length": 41})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        version_numbers(&stack, &owner, &vault, "idem").await,
        [3, 2, 1]
    );

    // Stored answers hold metadata only, never a value.
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let stored: Vec<(String,)> = sqlx::query_as("SELECT response_body::text FROM idempotency_keys")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    for (body,) in stored {
        assert!(
            !body.contains("idem-value") && !body.contains("\"value\""),
            "{body}"
        );
        assert!(!body.contains(value.as_str().unwrap()), "{body}");
    }

    // Malformed keys are refused.
    let long = "k".repeat(256);
    for bad in ["", "has space", long.as_str()] {
        let (status, _, _) = put(
            &stack,
            &owner,
            &vault,
            "idem",
            &[("Idempotency-Key", bad)],
            json!({"value": "x"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "key {bad:?}");
    }
}

#[tokio::test]
async fn concurrent_puts_with_one_key_make_exactly_one_version() {
    let stack = std::sync::Arc::new(TestStack::shared().await);
    let owner = stack.signup(&stack.email("idemrace@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    // One new path (the first writer creates the secret) and one existing path (the
    // writers queue on its row).
    put(
        &stack,
        &owner,
        &vault,
        "existing",
        &[],
        json!({"value": "v1"}),
    )
    .await;

    for (path, key, expected) in [
        ("brand-new", "race-new", vec![1]),
        ("existing", "race-old", vec![2, 1]),
    ] {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (stack, owner, vault) = (stack.clone(), owner.clone(), vault.clone());
            tasks.spawn(async move {
                let (status, _, body) = put(
                    &stack,
                    &owner,
                    &vault,
                    path,
                    &[("Idempotency-Key", key)],
                    json!({"value": "raced"}),
                )
                .await;
                (status, body)
            });
        }
        let mut answers = Vec::new();
        while let Some(answer) = tasks.join_next().await {
            answers.push(answer.unwrap());
        }
        let (status, first) = answers[0].clone();
        assert_eq!(status, StatusCode::CREATED, "{first}");
        assert!(
            answers
                .iter()
                .all(|answer| *answer == (status, first.clone())),
            "{path}: {answers:?}"
        );
        assert_eq!(
            version_numbers(&stack, &owner, &vault, path).await,
            expected,
            "{path}"
        );
    }
}

/// SECURITY.md case 15 through the whole stack: 200 versions of one path, written by
/// concurrent PUTs and rotations, each sealed under its own data key and nonce.
#[tokio::test]
async fn every_stored_version_has_its_own_wrapped_key_and_nonce() {
    const VERSIONS: usize = 200;
    // Every version stays stored: more of them than the default 100 kept per path.
    let stack = TestStack::builder()
        .origin_env("OXVAULT_MAX_SECRET_VERSIONS", "1000")
        .start()
        .await;
    let stack = std::sync::Arc::new(stack);
    let owner = stack.signup(&stack.email("nonces@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    put(
        &stack,
        &owner,
        &vault,
        "same",
        &[],
        json!({"value": "same"}),
    )
    .await;

    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..10 {
        let (stack, owner, vault) = (stack.clone(), owner.clone(), vault.clone());
        tasks.spawn(async move {
            for i in 0..(VERSIONS - 1) / 10 + 1 {
                let status = if (worker + i) % 4 == 0 {
                    rotate(&stack, &owner, &vault, "same", &[], json!({}))
                        .await
                        .0
                } else {
                    // The same value every time: only a fresh key and nonce tell them apart.
                    put(
                        &stack,
                        &owner,
                        &vault,
                        "same",
                        &[],
                        json!({"value": "same"}),
                    )
                    .await
                    .0
                };
                assert_eq!(status, StatusCode::CREATED);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let blobs: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT sealed FROM secret_versions")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert!(blobs.len() > VERSIONS, "{} versions", blobs.len());
    let mut wrapped_keys = HashSet::new();
    let mut nonces = HashSet::new();
    let mut ciphertexts = HashSet::new();
    for (blob,) in &blobs {
        // The stored layout (origin/src/crypto/envelope.rs; formats 1 and 2 share it):
        // format | kek_id_len | kek_id | wrapped_len (BE16) | wrapped DEK | nonce (12) |
        // ciphertext || tag.
        assert!(matches!(blob[0], 0x01 | 0x02), "format {}", blob[0]);
        let at = 2 + usize::from(blob[1]);
        let wrapped_len = usize::from(u16::from_be_bytes([blob[at], blob[at + 1]]));
        let wrapped = &blob[at + 2..at + 2 + wrapped_len];
        let nonce = &blob[at + 2 + wrapped_len..at + 14 + wrapped_len];
        wrapped_keys.insert(wrapped.to_vec());
        nonces.insert(nonce.to_vec());
        ciphertexts.insert(blob[at + 14 + wrapped_len..].to_vec());
    }
    assert_eq!(
        wrapped_keys.len(),
        blobs.len(),
        "a wrapped data key repeated"
    );
    assert_eq!(nonces.len(), blobs.len(), "a nonce repeated");
    assert_eq!(ciphertexts.len(), blobs.len(), "a ciphertext repeated");
}

/// Inserts a policy straight into the database (the policy endpoints are another module's).
async fn grant(stack: &TestStack, vault: &str, agent_id: &str, permissions: &[&str]) {
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    sqlx::query(
        "INSERT INTO policies (id, org_id, vault_id, principal_type, principal_id, \
           secret_path_pattern, permissions) \
         SELECT gen_random_uuid(), org_id, id, 'agent', $2::uuid, '**', $3 \
         FROM vaults WHERE id = $1::uuid",
    )
    .bind(vault)
    .bind(agent_id)
    .bind(
        permissions
            .iter()
            .map(|p| (*p).to_owned())
            .collect::<Vec<_>>(),
    )
    .execute(&mut db)
    .await
    .unwrap();
}

async fn agent_session(stack: &TestStack, owner: &Session, name: &str) -> (String, Session) {
    let (id, access_token) = stack.create_agent(&owner.access_token, name).await;
    let session = Session {
        email: String::new(),
        access_token,
        refresh_token: String::new(),
    };
    (id, session)
}

#[tokio::test]
async fn rotation_needs_the_rotate_permission_and_disabling_needs_write() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("perm@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "v").await;
    put(&stack, &owner, &vault, "k", &[], json!({"value": "x"})).await;
    let (writer_id, writer) = agent_session(&stack, &owner, "writer").await;
    let (rotator_id, rotator) = agent_session(&stack, &owner, "rotator").await;
    grant(&stack, &vault, &writer_id, &["read", "write"]).await;
    grant(&stack, &vault, &rotator_id, &["read", "rotate"]).await;

    assert_eq!(
        rotate(&stack, &writer, &vault, "k", &[], json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, body) = rotate(&stack, &rotator, &vault, "k", &[], json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        disable(&stack, &rotator, &vault, "k", "1").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        disable(&stack, &writer, &vault, "k", "1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        versions(&stack, &rotator, &vault, "k").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_orgs_secret_versions_are_not_found() {
    let stack = TestStack::shared().await;
    let alice = stack.signup(&stack.email("alice-v@a.example")).await;
    let mallory = stack.signup(&stack.email("mallory-v@b.example")).await;
    let vault = stack.create_vault(&alice.access_token, "alice").await;
    put(
        &stack,
        &alice,
        &vault,
        "k",
        &[],
        json!({"value": "alice-only"}),
    )
    .await;

    assert_eq!(
        versions(&stack, &mallory, &vault, "k").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = read_version(&stack, &mallory, &vault, "k", "1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("alice-only"));
    assert_eq!(
        disable(&stack, &mallory, &vault, "k", "1").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        rotate(&stack, &mallory, &vault, "k", &[], json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Mallory's idempotency key cannot replay alice's answer either.
    let key = [("Idempotency-Key", "shared-key")];
    put(&stack, &alice, &vault, "k", &key, json!({"value": "y"})).await;
    assert_eq!(
        put(&stack, &mallory, &vault, "k", &key, json!({"value": "y"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(version_numbers(&stack, &alice, &vault, "k").await, [2, 1]);
    assert_eq!(
        read_version(&stack, &alice, &vault, "k", "1").await.1["value"],
        "alice-only"
    );
}

#[tokio::test]
async fn an_agents_scopes_bound_what_its_policies_allow() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("owner@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "ops").await;
    let (status, _, _) = put(
        &stack,
        &owner,
        &vault,
        "api/key",
        &[],
        json!({"value": "v1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (agent_id, token) = stack
        .create_agent_with(
            &owner.access_token,
            json!({"name": "reader", "scopes": ["secrets:read"]}),
        )
        .await;
    grant(&stack, &vault, &agent_id, &["read", "write"]).await;
    let agent = Session {
        email: String::new(),
        access_token: token,
        refresh_token: String::new(),
    };

    let (status, body) = read_version(&stack, &agent, &vault, "api/key", "1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, problem) = put(
        &stack,
        &agent,
        &vault,
        "api/key",
        &[],
        json!({"value": "v2"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the policy allows the write, the scope does not: {problem}"
    );
    assert_eq!(
        version_numbers(&stack, &owner, &vault, "api/key").await,
        [1]
    );
}

#[tokio::test]
async fn a_deleted_secret_stays_deleted_and_a_new_write_at_its_path_starts_over() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("owner@example.com")).await;
    let vault = stack.create_vault(&owner.access_token, "ops").await;
    let (_, _, first) = put(
        &stack,
        &owner,
        &vault,
        "db/pw",
        &[],
        json!({"value": "old-1"}),
    )
    .await;
    put(
        &stack,
        &owner,
        &vault,
        "db/pw",
        &[],
        json!({"value": "old-2"}),
    )
    .await;
    let old_id = first["id"].as_str().unwrap().to_owned();
    let (status, share) = stack
        .create_share(
            &owner.access_token,
            &old_id,
            json!({"recipient_type": "anyone_with_link", "expires_at": oxvault_tests::shares::in_an_hour()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let share_path = format!("/v1/share/{}", share["id"].as_str().unwrap());

    let (status, _, _) = send(
        &stack,
        Method::DELETE,
        &format!("/v1/vaults/{vault}/secrets/db/pw"),
        &owner.access_token,
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        stack.get(&share_path).await.status(),
        StatusCode::NOT_FOUND,
        "its share ended"
    );

    let (status, _, again) = put(
        &stack,
        &owner,
        &vault,
        "db/pw",
        &[],
        json!({"value": "new-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "a new secret: {again}");
    assert_eq!(again["version"], 1);
    assert_ne!(again["id"], old_id.as_str());

    let (status, body) = read_version(&stack, &owner, &vault, "db/pw", "1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], "new-1", "version 1 is the new secret's");
    let (status, _) = read_version(&stack, &owner, &vault, "db/pw", "2").await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "the deleted secret's version 2 never comes back"
    );
    assert_eq!(version_numbers(&stack, &owner, &vault, "db/pw").await, [1]);
    assert_eq!(stack.get(&share_path).await.status(), StatusCode::NOT_FOUND);

    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM secret_versions WHERE secret_id = $1::uuid")
            .bind(&old_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(left, 0, "the deleted secret's sealed versions are erased");
}

#[tokio::test]
async fn versions_past_the_configured_number_are_pruned_and_read_as_gone() {
    let stack = TestStack::builder()
        .origin_env("OXVAULT_MAX_SECRET_VERSIONS", "3")
        .start()
        .await;
    let owner = stack.signup(&stack.email("pruner@example.com")).await;
    let token = owner.access_token.as_str();
    let vault = stack.create_vault(token, "v").await;
    let (status, first) = stack
        .put_secret(token, &vault, "db/key", json!({"value": "value-1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // A link made now hands out version 1 for good.
    let secret_id = first["id"].as_str().unwrap();
    let body = json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()});
    let (status, share) = stack.create_share(token, secret_id, body).await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let share = format!("/v1/share/{}", share["id"].as_str().unwrap());
    let (status, read) = stack.call(Method::GET, &share, token, None).await;
    assert_eq!(
        (status, read["value"].as_str()),
        (StatusCode::OK, Some("value-1"))
    );

    for n in 2..=5 {
        let (status, body) = stack
            .put_secret(
                token,
                &vault,
                "db/key",
                json!({"value": format!("value-{n}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["version"], n);
    }

    // Three kept, newest first; the two oldest are gone (410), like disabled ones.
    let versions = format!("/v1/vaults/{vault}/secret-versions/db/key");
    let (status, listed) = stack.call(Method::GET, &versions, token, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let numbers: Vec<i64> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [5, 4, 3]);
    assert!(listed["next_cursor"].is_null(), "{listed}");
    for (version, expected) in [
        (1, StatusCode::GONE),
        (2, StatusCode::GONE),
        (3, StatusCode::OK),
        (6, StatusCode::NOT_FOUND),
    ] {
        let path = format!("/v1/vaults/{vault}/secret-version/db/key/{version}");
        let (status, body) = stack.call(Method::GET, &path, token, None).await;
        assert_eq!(status, expected, "version {version}: {body}");
    }
    let (status, current) = stack.get_secret(token, &vault, "db/key").await;
    assert_eq!(
        (status, current["value"].as_str()),
        (StatusCode::OK, Some("value-5"))
    );
    // The link to the pruned version 1 now answers like any dead link.
    let (status, body) = stack.call(Method::GET, &share, token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The version list pages too, newest first.
    let (paged, pages) = stack.page_through(token, &versions, "versions", 2).await;
    let paged: Vec<i64> = paged
        .iter()
        .map(|version| version["version"].as_i64().unwrap())
        .collect();
    assert_eq!((paged, pages), (vec![5, 4, 3], 2));
    stack.assert_bad_pages_refused(token, &versions).await;
}
