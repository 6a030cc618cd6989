//! Fault drills (SECURITY.md cases 24, 26 and 27): PostgreSQL restarted under mixed load, the
//! HSM taken away and brought back under it, the HSM hung (its token's files locked), the
//! origin killed with SIGKILL mid-write and started again, and stopped with SIGTERM under 32
//! connections; also a soak, backup and restore, and two origins behind one edge
//! (submodules). Each drill owns what it breaks (a private PostgreSQL cluster, its own origin,
//! its own token), drives real load through the edge for a few seconds (see `load`) and stops
//! by itself.
//!
//! During a fault a client gets a 2xx or a proper "retry later": a 503 problem with
//! `Retry-After` from the origin, or a 502 one from the edge while no origin answers. Never a
//! 500. Afterwards nothing acknowledged is lost: every acknowledged write reads back with its
//! value, no secret lacks its current version and no version lies past it (no partial secret,
//! no orphaned data key), the share counted at least every view it served, every
//! acknowledged write has its audit event, and the org's chain verifies.

mod backup;
mod load;
mod soak;
mod two_origins;

use futures_util::StreamExt;
use load::{Mix, SEEDED_PATH, Target};
use oxvault_tests::shares::in_an_hour;
use oxvault_tests::{PASSWORD, PrivatePostgres, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// A few of each kind: enough concurrency that a fault strikes requests in flight, little
/// enough for two cores shared with other tests.
const MIX: Mix = Mix {
    writers: 3,
    readers: 2,
    share_readers: 2,
    logins: 1,
};

/// What the origin answers while the database or HSM is down, and the edge while no origin
/// answers.
const RETRY_LATER: &[StatusCode] = &[StatusCode::SERVICE_UNAVAILABLE, StatusCode::BAD_GATEWAY];

/// An owner with a vault holding the seeded secret, shared as a link without a view limit.
async fn target_on(stack: &TestStack) -> Target {
    let email = stack.email("drill@example.com");
    let value = format!("seeded-{}", uuid::Uuid::new_v4().simple());
    let (owner, vault, secret_id) = stack.owner_with_secret(&email, SEEDED_PATH, &value).await;
    let (status, share) = stack
        .create_share(
            &owner.access_token,
            &secret_id,
            json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    Target {
        client: oxvault_tests::client_builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client"),
        base: stack.edge_base().to_owned(),
        token: owner.access_token,
        email,
        password: PASSWORD.to_owned(),
        vault,
        share_id: share["id"].as_str().expect("share id").to_owned(),
        value,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_mixed_load_gets_2xx_or_503_and_loses_nothing() {
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .expect("private PostgreSQL");
    let stack = TestStack::builder()
        .database_server(postgres.admin_url())
        .start()
        .await;
    let target = target_on(&stack).await;
    let tallies = load::run(&target, MIX, &[StatusCode::SERVICE_UNAVAILABLE], async {
        tokio::task::block_in_place(|| postgres.restart());
    })
    .await;
    load::assert_clean(&tallies, "database restart");
    assert_nothing_lost(&stack, &target, &tallies).await;
}

/// SECURITY.md case 24 under load: the token directory taken away for two seconds while the
/// loops run, then brought back; the origin is not restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hsm_gone_and_back_under_mixed_load_gets_2xx_or_503_and_loses_nothing() {
    let stack = TestStack::start().await;
    let target = target_on(&stack).await;
    let token = &stack.own().token;
    let tallies = load::run(&target, MIX, &[StatusCode::SERVICE_UNAVAILABLE], async {
        token.take_away();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        token.bring_back();
    })
    .await;
    load::assert_clean(&tallies, "HSM outage");
    let refused: u64 = tallies.iter().map(|tally| tally.retry_later).sum();
    assert!(refused > 0, "no request saw the HSM gone");
    assert_nothing_lost(&stack, &target, &tallies).await;
}

/// SECURITY.md case 24 with an HSM that hangs instead of failing: every PKCS#11 call waits on
/// the token's file locks, held by another process. Reads and writes answer 503 with
/// `Retry-After` within the call timeout instead of hanging, and the origin serves again once
/// the HSM does, with its audit chain intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_hsm_answers_503_within_the_call_timeout_and_recovers() {
    let stack = TestStack::builder()
        .origin_env("OXVAULT_HSM_CALL_TIMEOUT_MS", "1000")
        // Every read unwraps its data key in the HSM. With a cached key, a read needs only
        // the audit MAC, whose key is a session copy in SoftHSM's memory: it touches no
        // token file, so the wedge below would not hold it.
        .origin_env("OXVAULT_DEK_CACHE_SIZE", "0")
        .start()
        .await;
    let target = target_on(&stack).await;
    let read = format!("/v1/vaults/{}/secrets/{SEEDED_PATH}", target.vault);
    let write = format!("/v1/vaults/{}/secrets/hung/write", target.vault);
    let (status, body) = stack.call(Method::GET, &read, &target.token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let wedge = stack.own().token.wedge();
    for (method, path, body) in [
        (Method::GET, &read, None),
        (Method::PUT, &write, Some(json!({"value": "never stored"}))),
    ] {
        let started = std::time::Instant::now();
        let mut request = stack.request(method.clone(), path, &target.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an answer while the HSM hangs");
        let waited = started.elapsed();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "{method} {path}"
        );
        assert!(
            waited < std::time::Duration::from_secs(8),
            "{method} {path} took {waited:?} with a 1 s HSM call timeout"
        );
    }

    drop(wedge);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = stack.call(Method::GET, &read, &target.token, None).await;
        if status == StatusCode::OK {
            assert_eq!(body["value"], target.value.as_str(), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no read served 20 s after the HSM came back: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, body) = stack.call(Method::GET, &write, &target.token, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused write was stored: {body}"
    );
    let (status, verdict) = stack
        .call(Method::GET, "/v1/audit/verify", &target.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_killed_mid_write_and_started_again_loses_nothing_acknowledged() {
    let mut stack = TestStack::start().await;
    let target = target_on(&stack).await;
    let origin = &mut stack.own_mut().origin;
    let tallies = load::run(&target, MIX, RETRY_LATER, async {
        // SIGKILL, then the same binary on the same address, as a supervisor would.
        tokio::task::block_in_place(|| origin.restart());
    })
    .await;
    load::assert_clean(&tallies, "kill -9");
    assert_nothing_lost(&stack, &target, &tallies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_32_connections_drains_flushes_and_loses_nothing() {
    let mut stack = TestStack::start().await;
    let target = target_on(&stack).await;
    let mix = Mix {
        writers: 16,
        readers: 8,
        share_readers: 6,
        logins: 2,
    };
    let origin = &mut stack.own_mut().origin;
    let tallies = load::run(&target, mix, RETRY_LATER, async {
        tokio::task::block_in_place(|| {
            origin.process().signal("TERM");
            let status = origin
                .process()
                .wait_timeout(std::time::Duration::from_secs(20));
            assert!(
                status.is_some_and(|status| status.success()),
                "the origin did not stop cleanly on SIGTERM ({status:?}):\n{}",
                origin.log_text()
            );
            origin.restart();
        });
    })
    .await;
    load::assert_clean(&tallies, "SIGTERM");
    assert_nothing_lost(&stack, &target, &tallies).await;
    // Drained, not cut: a write told to retry never reached a handler (it found the
    // listener closed), so it left nothing behind. One cut mid-way could have.
    for tally in &tallies {
        for path in &tally.refused_writes {
            let (status, body) = stack.get_secret(&target.token, &target.vault, path).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "refused {path} was written: {body}"
            );
        }
    }
    let refused: usize = tallies.iter().map(|tally| tally.refused_writes.len()).sum();
    eprintln!("SIGTERM: {refused} writes refused while the origin was down, none written");
    // The meter's buffer was flushed on the way down: every acknowledged write was metered.
    let written = load::acknowledged(&tallies).len();
    let metered: i64 = scalar(
        &stack,
        "SELECT count(*) FROM usage_events WHERE method = 'PUT' AND status_code BETWEEN 200 AND 299",
    )
    .await;
    assert!(
        usize::try_from(metered).unwrap_or_default() >= written,
        "{metered} metered writes for {written} acknowledged"
    );
}

/// The checks after every drill; see the module docs.
async fn assert_nothing_lost(stack: &TestStack, target: &Target, tallies: &[load::Tally]) {
    let written = load::acknowledged(tallies);
    assert!(!written.is_empty(), "no write was acknowledged");
    let mut reads = futures_util::stream::iter(&written)
        .map(|(path, value)| async move {
            let (status, body) = stack.get_secret(&target.token, &target.vault, path).await;
            (path, value, status, body)
        })
        .buffer_unordered(8);
    while let Some((path, value, status, body)) = reads.next().await {
        assert_eq!(status, StatusCode::OK, "acknowledged {path}: {body}");
        assert_eq!(body["value"], value.as_str(), "acknowledged {path}");
    }

    let partial: i64 = scalar(
        stack,
        "SELECT count(*) FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM secret_versions v \
         WHERE v.secret_id = s.id AND v.version = s.current_version)",
    )
    .await;
    assert_eq!(partial, 0, "secrets without their current version");
    let orphaned: i64 = scalar(
        stack,
        "SELECT count(*) FROM secret_versions v JOIN secrets s ON s.id = v.secret_id \
         WHERE v.version > s.current_version",
    )
    .await;
    assert_eq!(
        orphaned, 0,
        "versions (and data keys) past their secret's current version"
    );

    let (served, retried) = tallies
        .iter()
        .filter(|tally| tally.name.starts_with("shareread"))
        .fold((0, 0), |(served, retried), tally| {
            (served + tally.served, retried + tally.retry_later)
        });
    let counted = u64::try_from(
        stack
            .share_access_count(&target.token, &target.share_id)
            .await,
    )
    .expect("a count");
    assert!(
        (served..=served + retried).contains(&counted),
        "the share counted {counted} views; {served} were served and {retried} refused"
    );

    let audited: i64 = scalar(
        stack,
        "SELECT count(*) FROM audit_events WHERE action = 'secret.write'",
    )
    .await;
    assert!(
        usize::try_from(audited).unwrap_or_default() > written.len(),
        "{audited} secret.write events for {} acknowledged writes and the seed",
        written.len()
    );
    let (status, verdict) = stack
        .call(Method::GET, "/v1/audit/verify", &target.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["chain_valid"], true, "{verdict}");
}

async fn scalar(stack: &TestStack, sql: &'static str) -> i64 {
    let mut db = PgConnection::connect(stack.database_url())
        .await
        .expect("the stack's database");
    sqlx::query_scalar(sql).fetch_one(&mut db).await.expect(sql)
}
