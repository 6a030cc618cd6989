//! Mixed load for the fault drills: writers of new secrets, readers of one seeded secret,
//! readers of one share link and logins, each a loop over HTTP through the edge until told to
//! stop, sorting every answer into "served", "retry later" or "wrong".
//!
//! A "retry later" is one of the statuses the drill allows (503 from the origin; 502 from the
//! edge while no origin answers) with a `Retry-After` of at least a second and an RFC 7807
//! body of that status. Anything else that is not a 2xx is wrong: a 500, a 404 for a secret that exists, a
//! value that is not the one stored, a dropped connection.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};

/// Where the seeded secret lives in the target vault.
pub const SEEDED_PATH: &str = "seeded/value";

/// Load before the fault starts, so it strikes requests in flight.
const WARM_UP: Duration = Duration::from_millis(1500);

/// Load after the fault ends, long enough for every task to be served again.
const SETTLE: Duration = Duration::from_secs(4);

/// What the load runs against, and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    pub client: Client,
    /// The edge's base URL.
    pub base: String,
    /// The owner's access token; the owner's email and password for the logins.
    pub token: String,
    pub email: String,
    pub password: String,
    pub vault: String,
    /// An `anyone_with_link` share of the seeded secret with room for every read.
    pub share_id: String,
    /// The seeded secret's value (also what the share shows).
    pub value: String,
}

/// How many loops of each kind run at once.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub writers: usize,
    pub readers: usize,
    pub share_readers: usize,
    pub logins: usize,
}

/// What one loop saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub name: String,
    /// 2xx answers, and how many of them came after the fault was over.
    pub served: u64,
    pub served_after: u64,
    /// Proper "retry later" answers.
    pub retry_later: u64,
    /// Everything a client must never be told, described.
    pub wrong: Vec<String>,
    /// Writes answered 2xx: (path, value).
    pub acknowledged: Vec<(String, String)>,
    /// Paths of writes answered "retry later".
    pub refused_writes: Vec<String>,
}

/// Shared by the loops and the driver: whether the fault is over, whether to stop.
#[derive(Debug, Default)]
struct Phase {
    recovered: AtomicBool,
    stop: AtomicBool,
}

/// Runs `mix` against `target`, `fault` after a warm-up, and the load on for a while after
/// the fault returns; then stops every loop and returns what each saw. `fault` may block
/// (the test must use the multi-thread runtime): the loops run on their own tasks.
pub async fn run(
    target: &Target,
    mix: Mix,
    allowed: &'static [StatusCode],
    fault: impl Future<Output = ()>,
) -> Vec<Tally> {
    let phase = Arc::new(Phase::default());
    let mut loops = Vec::new();
    let kinds: [(usize, Kind); 4] = [
        (mix.writers, Kind::Write),
        (mix.readers, Kind::Read),
        (mix.share_readers, Kind::ShareRead),
        (mix.logins, Kind::Login),
    ];
    for (count, kind) in kinds {
        for id in 0..count {
            let (target, phase) = (target.clone(), Arc::clone(&phase));
            loops.push(tokio::spawn(async move {
                run_loop(&target, kind, id, allowed, &phase).await
            }));
        }
    }
    tokio::time::sleep(WARM_UP).await;
    fault.await;
    phase.recovered.store(true, Ordering::SeqCst);
    tokio::time::sleep(SETTLE).await;
    phase.stop.store(true, Ordering::SeqCst);
    let mut tallies = Vec::new();
    for handle in loops {
        tallies.push(handle.await.expect("a load loop panicked"));
    }
    tallies
}

/// Fails the test unless every loop saw only 2xx and proper "retry later" answers and was
/// served again after the fault; prints the counts.
pub fn assert_clean(tallies: &[Tally], context: &str) {
    for tally in tallies {
        eprintln!(
            "{context}: {}: {} served ({} after), {} retry later, {} wrong",
            tally.name,
            tally.served,
            tally.served_after,
            tally.retry_later,
            tally.wrong.len()
        );
    }
    let wrong: Vec<String> = tallies
        .iter()
        .flat_map(|tally| tally.wrong.iter().map(|w| format!("{}: {w}", tally.name)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{context}: {} wrong answers, first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    for tally in tallies {
        assert!(
            tally.served_after > 0,
            "{context}: {} was never served after the fault",
            tally.name
        );
    }
}

/// Every acknowledged write of the run.
pub fn acknowledged(tallies: &[Tally]) -> Vec<(String, String)> {
    tallies
        .iter()
        .flat_map(|tally| tally.acknowledged.iter().cloned())
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Write,
    Read,
    ShareRead,
    Login,
}

async fn run_loop(
    target: &Target,
    kind: Kind,
    id: usize,
    allowed: &[StatusCode],
    phase: &Phase,
) -> Tally {
    let mut tally = Tally {
        name: format!("{kind:?} {id}").to_lowercase(),
        ..Tally::default()
    };
    let mut n = 0_u64;
    while !phase.stop.load(Ordering::SeqCst) {
        n += 1;
        let after = phase.recovered.load(Ordering::SeqCst);
        match kind {
            Kind::Write => {
                let path = format!("load/w{id}/{n}");
                let value = format!("value-{id}-{n}-{}", uuid::Uuid::new_v4().simple());
                let sent = target
                    .client
                    .put(format!(
                        "{}/v1/vaults/{}/secrets/{path}",
                        target.base, target.vault
                    ))
                    .bearer_auth(&target.token)
                    .json(&json!({"value": value}))
                    .send()
                    .await;
                let before = tally.retry_later;
                if tally.sort(sent, allowed, after).await.is_some() {
                    tally.acknowledged.push((path, value));
                } else if tally.retry_later > before {
                    tally.refused_writes.push(path);
                }
            }
            Kind::Read | Kind::ShareRead => {
                // Both read the seeded value: through the vault, or through the share link.
                let request = if matches!(kind, Kind::Read) {
                    let url = format!(
                        "{}/v1/vaults/{}/secrets/{SEEDED_PATH}",
                        target.base, target.vault
                    );
                    target.client.get(url).bearer_auth(&target.token)
                } else {
                    let url = format!("{}/v1/share/{}", target.base, target.share_id);
                    target.client.get(url)
                };
                if let Some(body) = tally.sort(request.send().await, allowed, after).await {
                    tally.expect_value(&body, &target.value);
                }
            }
            Kind::Login => {
                let sent = target
                    .client
                    .post(format!("{}/v1/auth/token", target.base))
                    .json(&json!({"email": target.email, "password": target.password}))
                    .send()
                    .await;
                tally.sort(sent, allowed, after).await;
            }
        }
    }
    tally
}

impl Tally {
    /// Sorts one answer; returns its body when it was a 2xx.
    async fn sort(
        &mut self,
        sent: reqwest::Result<reqwest::Response>,
        allowed: &[StatusCode],
        after: bool,
    ) -> Option<Value> {
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                // With the causes: reqwest's own text does not say whether the connection was
                // refused, reset, closed mid-answer or timed out.
                let mut text = format!("no answer: {err}");
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                self.wrong.push(text);
                return None;
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            self.served += 1;
            self.served_after += u64::from(after);
            return Some(body);
        }
        let proper = allowed.contains(&status)
            && retry_after.is_some_and(|secs| secs >= 1)
            && content_type == "application/problem+json"
            && body["status"] == status.as_u16();
        if proper {
            self.retry_later += 1;
        } else {
            self.wrong.push(format!(
                "{status} retry-after {retry_after:?} {content_type}: {text}"
            ));
        }
        None
    }

    fn expect_value(&mut self, body: &Value, value: &str) {
        if body["value"] != value {
            self.wrong.push(format!("served a wrong value: {body}"));
        }
    }
}
