//! The `RateLimiter` Durable Object: one instance per limited key, holding that key's GCRA
//! state (one number, the theoretical arrival time) in its SQLite-backed storage.
//!
//! Storage, not a field, holds the state, so an object that is evicted and started again (or
//! moved) keeps its count. Reading and writing it is atomic per check without explicit
//! locking: while a storage call of the object is in flight the runtime delivers no other
//! event to it (its input gate), and this handler does no other I/O between the read and the
//! write. Once a key is back to a full bucket its state is the same as none, so an alarm then
//! deletes it; keys seen once do not keep storage forever.

use worker::{Date, DurableObject, Env, Request, Response, State, durable_object};

use crate::rate_limit::gcra::{check_many, idle_after_ms};
use crate::rate_limit::wire::{CheckRequest, Grant, MAX_CHECK_BYTES};

/// The storage key of the theoretical arrival time (µs since the Unix epoch).
const TAT_KEY: &str = "tat";

#[durable_object(alarm)]
pub struct RateLimiter {
    state: State,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        // Only the Worker can reach the object, but its input is still checked: a bad check
        // is an error (503 at the Worker), never a guess.
        let body = req.bytes().await?;
        if body.len() > MAX_CHECK_BYTES {
            return Response::error("check too large", 400);
        }
        let Ok(ask) = serde_json::from_slice::<CheckRequest>(&body) else {
            return Response::error("malformed check", 400);
        };
        let Ok(limit) = ask.limit() else {
            return Response::error("limit out of range", 400);
        };

        let storage = self.state.storage();
        let stored: Option<i64> = storage.get(TAT_KEY).await?;
        let now = now_micros();
        // One request, or a lease of several for an isolate's allowance (see
        // `rate_limit::allowance`): either way every granted request moves the TAT.
        let (outcome, granted) = check_many(limit, stored, now, ask.take());
        if let Some(tat) = outcome.store {
            storage.put(TAT_KEY, tat).await?;
            // A key with no state had no alarm either; later checks move the TAT, and the
            // alarm re-arms itself until the key is idle.
            if stored.is_none() {
                storage.set_alarm(idle_after_ms(tat, now)).await?;
            }
        }
        Response::from_json(&Grant {
            decision: outcome.decision,
            granted,
        })
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let storage = self.state.storage();
        let stored: Option<i64> = storage.get(TAT_KEY).await?;
        let now = now_micros();
        match stored {
            Some(tat) if tat > now => storage.set_alarm(idle_after_ms(tat, now)).await?,
            _ => storage.delete_all().await?,
        }
        Response::empty()
    }
}

/// The runtime's clock in microseconds. `Date.now()` has millisecond resolution (and in a
/// Worker only advances across I/O), which is plenty for limits of a second or more.
fn now_micros() -> i64 {
    i64::try_from(Date::now().as_millis())
        .unwrap_or(i64::MAX / 1_000)
        .saturating_mul(1_000)
}
