//! Soak: mixed load for a minute (`OXVAULT_SOAK_SECS`; `scripts/soak.sh` runs five) with
//! nothing broken. Every valid request is served (error rate 0), the origin's resident memory
//! at the end is within 10% of what it was after the warm-up (the highest reading of each
//! third, see [`level`]), and the chain verifies.

use std::time::Duration;

use oxvault_tests::TestStack;

use super::load;
use super::{MIX, assert_nothing_lost, target_on};

/// Load before the first memory reading: connections, pools and caches filled.
const WARM_UP: Duration = Duration::from_secs(15);

/// The allowed growth of the origin's resident memory after the warm-up.
const MAX_GROWTH: f64 = 0.10;

/// The level of the first or last third of the readings: the highest of them. A sign-in's
/// password hash needs 19 MiB (argon2) while it runs, and the allocator keeps that or hands it
/// back to the system from one moment to the next, so single readings flick by 20 MiB either
/// way (seen: `[60812, 56528, 77016, ...]` and `[78832, 58412, 78932, ...]` KiB). The highest
/// of a third holds that buffer whichever way a reading fell; a leak raises it.
fn level(readings: &[u64]) -> u64 {
    readings.iter().copied().max().unwrap_or(0)
}

fn soak_duration() -> Duration {
    let secs = std::env::var("OXVAULT_SOAK_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(60_u64);
    Duration::from_secs(secs.max(WARM_UP.as_secs() + 5))
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the origin runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_mixed_load_is_all_served_and_memory_stays_flat() {
    // Opened data keys are cached for a minute by default, so under writers of new secrets
    // the cache only stops growing after a minute; a short TTL brings that steady state
    // inside the warm-up, and what grows after it is what the origin keeps and should not.
    let stack = TestStack::builder()
        .origin(|origin| {
            origin.extra_env.extend([
                ("OXVAULT_DEK_CACHE_TTL_SECS".to_owned(), "5".to_owned()),
                // Writers make new secrets all along: five minutes of them pass the free
                // tier's 10,000 per org, which is not what a soak is about.
                (
                    "OXVAULT_BILLING_TIER_FREE".to_owned(),
                    "vaults=unlimited,secrets=unlimited,agents=unlimited".to_owned(),
                ),
            ]);
        })
        .start()
        .await;
    let target = target_on(&stack).await;
    let pid = stack.own().origin.pid();
    let total = soak_duration();
    let mut readings = Vec::new();
    let tallies = load::run(&target, MIX, &[], async {
        tokio::time::sleep(WARM_UP).await;
        let mut left = total - WARM_UP;
        readings.push(rss_kib(pid));
        while !left.is_zero() {
            let step = left.min(Duration::from_secs(5));
            tokio::time::sleep(step).await;
            left -= step;
            readings.push(rss_kib(pid));
        }
    })
    .await;
    eprintln!("soak: origin RSS every 5 s after the warm-up, KiB: {readings:?}");
    load::assert_clean(&tallies, "soak");
    let third = (readings.len() / 3).max(1);
    let warm = level(&readings[..third]);
    let end = level(&readings[readings.len() - third..]);
    let growth = (end as f64 - warm as f64) / warm as f64;
    eprintln!(
        "soak: {} s, origin RSS level {warm} KiB after warm-up, {end} KiB at the end ({:+.1}%)",
        total.as_secs(),
        growth * 100.0
    );
    assert!(
        growth <= MAX_GROWTH,
        "the origin grew from {warm} KiB to {end} KiB under steady load"
    );
    assert_nothing_lost(&stack, &target, &tallies).await;
}
