//! The audit log's appender: group commit for the audit trail.
//!
//! Every act hands its events to one appender task per process and waits until they are
//! committed. The task takes whatever has queued up since its last commit (up to
//! [`MAX_BATCH`] requests) and writes it in one transaction: one statement locks the heads
//! of the batch's chains, one HSM call seals the events (linked in order by SHA-256, one HMAC
//! over each chain's last event: `super::link`), one statement stores them and moves the
//! heads, one commit (one WAL flush) makes them durable. Under load the cost of a chain-head
//! lock and of a commit is shared by the whole batch instead of serialising one org's
//! requests on its head row, one commit at a time.
//!
//! What does not change: an event is durable before the act that it records answers
//! (a secret value never leaves the origin before its read is on the record), and a failed
//! append fails the act. Acts with a transaction of their own commit it after their event
//! ([`AuditLog::commit`]): if that final commit fails, the trail records an act that did not
//! happen, never the other way round. The chain stays gapless and ordered across processes,
//! because each batch holds its chains' head locks until it commits.
//!
//! The appender remembers the head of each chain it last wrote. When it knows every head a
//! batch needs, it appends in a single statement that moves each head only if it still stands
//! where it was left (a compare-and-swap, `store::audit::append_if_current`): one round trip
//! and one commit. When another origin moved a head meanwhile, that statement stores nothing
//! and the batch takes the locked path above, which also learns the heads afresh.
//!
//! A batch the database refuses is retried request by request, so one event it refuses fails
//! only the act it belongs to; a batch that fails because the HSM or the database is down fails
//! all its requests at once (503). The appender writes on a connection pool of its own: acts
//! waiting for it hold connections of the main pool, and must never starve it of one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Event, GENESIS_MAC, SealedBatch, chain_of, link, now_micros};
use crate::crypto::{CryptoError, Keyring};
use crate::service::ServiceError;
use crate::store::audit::{self, ChainHead};
use crate::store::{StatementPool, StoreError};

/// The most requests whose events go into one transaction: large enough to absorb a burst of
/// hundreds of connections, small enough that one batch's statement stays modest.
const MAX_BATCH: usize = 256;

/// Requests that may wait for the appender before senders wait for room (back-pressure).
const QUEUE: usize = 4096;

/// The most chain heads an appender remembers (one per org it wrote to lately); past that it
/// forgets them all and learns them again from the locked path.
const MAX_KNOWN_HEADS: usize = 10_000;

/// Why events could not be appended; the same for every request of a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The HSM could not MAC the events (503).
    Hsm,
    /// The database could not be reached (503).
    Database,
    /// The database refused the events, or the appender is gone (500).
    Refused,
}

impl From<Failure> for ServiceError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Hsm => Self::Unavailable("HSM"),
            Failure::Database => Self::Unavailable("database"),
            Failure::Refused => Self::Internal("the audit trail refused an event".into()),
        }
    }
}

fn store_failure(err: impl Into<StoreError>) -> Failure {
    let err = err.into();
    tracing::error!(error = %err, "audit events could not be stored");
    if err.is_unavailable() {
        Failure::Database
    } else {
        Failure::Refused
    }
}

fn hsm_failure(err: CryptoError) -> Failure {
    tracing::error!(error = %err, "audit events could not be sealed");
    Failure::Hsm
}

/// One request's events and where to tell it how they fared.
struct Pending {
    events: Vec<Event>,
    done: oneshot::Sender<Result<(), Failure>>,
}

/// The handle acts record their events through; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    counts: Arc<Counts>,
}

/// What the appender has done so far, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
struct Counts {
    batches: AtomicU64,
    events: AtomicU64,
    /// Single-statement appends that found a head moved (or failed) and took the locked path.
    missed_heads: AtomicU64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// The running appender, stopped after the server has drained.
#[derive(Debug)]
pub struct AuditTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl AuditTask {
    /// Writes what is still queued, then ends the task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.handle.await {
            tracing::error!(error = %err, "the audit appender ended abnormally");
        }
    }
}

impl AuditLog {
    /// Starts the appender on `pool` (its own: see the module docs), sealing with `keyring`.
    /// Starts the appender on connections of its own: `pool` for the locked path's
    /// transactions, `statements` for the one-statement appends.
    pub fn start(pool: PgPool, statements: StatementPool, keyring: Keyring) -> (Self, AuditTask) {
        let (queue, pending) = mpsc::channel(QUEUE);
        let (stop, stopping) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let appender = Appender {
            pool,
            statements,
            keyring,
            counts: Arc::clone(&counts),
            heads: HashMap::new(),
        };
        let handle = tokio::spawn(appender.run(pending, stopping));
        (Self { queue, counts }, AuditTask { stop, handle })
    }

    /// (transactions committed, events appended, single-statement appends that missed a
    /// head) since start.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.counts.batches.load(Ordering::Relaxed),
            self.counts.events.load(Ordering::Relaxed),
            self.counts.missed_heads.load(Ordering::Relaxed),
        )
    }

    /// Appends `events` (one request's, in order) and waits until they are committed.
    pub async fn append(&self, events: Vec<Event>) -> Result<(), ServiceError> {
        let (done, outcome) = oneshot::channel();
        let gone = || {
            tracing::error!("the audit appender is not running; failing the act");
            ServiceError::from(Failure::Refused)
        };
        self.queue
            .send(Pending { events, done })
            .await
            .map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?.map_err(Into::into)
    }

    /// Appends one event and waits until it is committed.
    pub async fn record(&self, event: Event) -> Result<(), ServiceError> {
        self.append(vec![event]).await
    }

    /// Commits `tx`, the transaction of the act `event` records, once the event is durable.
    /// When the event cannot be written, `tx` rolls back and the act fails.
    pub async fn commit(
        &self,
        tx: Transaction<'_, Postgres>,
        event: Event,
    ) -> Result<(), ServiceError> {
        self.record(event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}

/// The task's side: where and how it writes.
struct Appender {
    /// For the locked path's transaction.
    pool: PgPool,
    /// For the one-statement fast path: no ping when the connection comes back.
    statements: StatementPool,
    keyring: Keyring,
    counts: Arc<Counts>,
    /// The heads this appender left its chains at (they may have moved since).
    heads: HashMap<uuid::Uuid, ChainHead>,
}

impl Appender {
    async fn run(
        mut self,
        mut pending: mpsc::Receiver<Pending>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                // Queued events first: a stop never drops what was accepted.
                biased;
                received = pending.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    self.settle(std::mem::take(&mut batch)).await;
                }
                _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    pending.close();
                    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
                        self.settle(std::mem::take(&mut batch)).await;
                    }
                    break;
                }
            }
        }
    }

    /// Writes a batch and tells each request how it fared. A batch of several requests that
    /// the database refused is tried again one request at a time, so only the requests whose
    /// events fail are failed. An HSM or a database that is down fails them all at once:
    /// retrying one by one would ask it again per request, and a hung HSM would make each ask
    /// wait out its timeout while the queue grows.
    async fn settle(&mut self, batch: Vec<Pending>) {
        let events: Vec<Event> = batch
            .iter()
            .flat_map(|pending| pending.events.iter().cloned())
            .collect();
        let outcome = self.write(events).await;
        if outcome != Err(Failure::Refused) || batch.len() == 1 {
            for pending in batch {
                // A request that stopped waiting (its client went away) needs no answer.
                let _ = pending.done.send(outcome);
            }
            return;
        }
        for pending in batch {
            let outcome = self.write(pending.events).await;
            let _ = pending.done.send(outcome);
        }
    }

    /// Appends `events`: in one statement when every head is known and still in place, else
    /// in one transaction that locks the heads, links and MACs, stores and commits.
    async fn write(&mut self, events: Vec<Event>) -> Result<(), Failure> {
        if events.is_empty() {
            return Ok(());
        }
        let count = events.len() as u64;
        let started = Instant::now();
        let chains: BTreeSet<_> = events.iter().map(chain_of).collect();
        let known: Option<HashMap<_, _>> = chains
            .iter()
            .map(|id| self.heads.get(id).map(|head| (*id, head.clone())))
            .collect();
        if let Some(known) = known {
            match self.append_known(events.clone(), known).await {
                Ok(true) => {
                    self.counted(count, "known", started);
                    return Ok(());
                }
                // Moved by another origin, or the statement failed: the locked path decides.
                Ok(false) | Err(_) => {
                    self.counts.missed_heads.fetch_add(1, Ordering::Relaxed);
                    self.forget(&chains);
                }
            }
        }
        let outcome = self.append_locked(events, &chains).await;
        match outcome {
            Ok(()) => self.counted(count, "locked", started),
            Err(_) => {
                metrics::counter!("oxvault_audit_failed_writes_total").increment(1);
                self.forget(&chains);
            }
        }
        outcome
    }

    /// The fast path: link onto the remembered heads and store with a compare-and-swap.
    async fn append_known(
        &mut self,
        events: Vec<Event>,
        known: HashMap<uuid::Uuid, ChainHead>,
    ) -> Result<bool, Failure> {
        let expected = known.iter().map(|(id, head)| (*id, head.seq)).collect();
        let batch = self.link_and_seal(events, known).await?;
        let mut lease = self.statements.acquire().await.map_err(store_failure)?;
        let stored =
            audit::append_if_current(lease.conn(), &batch.rows, &batch.seal, &expected).await;
        let stored = lease.finish(stored).map_err(store_failure)?;
        if stored {
            self.remember(&batch.rows);
        }
        Ok(stored)
    }

    /// The locked path: lock the heads, link and seal, store, commit.
    async fn append_locked(
        &mut self,
        events: Vec<Event>,
        chains: &BTreeSet<uuid::Uuid>,
    ) -> Result<(), Failure> {
        let mut tx = self.pool.begin().await.map_err(store_failure)?;
        let heads = audit::lock_heads(&mut tx, chains, &GENESIS_MAC)
            .await
            .map_err(store_failure)?;
        let batch = self.link_and_seal(events, heads).await?;
        audit::append_all(&mut tx, &batch.rows, &batch.seal)
            .await
            .map_err(store_failure)?;
        tx.commit().await.map_err(store_failure)?;
        self.remember(&batch.rows);
        Ok(())
    }

    /// Links `events` onto `heads` and seals them, in one HSM call: the rows to store.
    async fn link_and_seal(
        &self,
        events: Vec<Event>,
        heads: HashMap<uuid::Uuid, ChainHead>,
    ) -> Result<SealedBatch, Failure> {
        let created_at = now_micros();
        self.keyring
            .mac_with(move |mac| link(events, &heads, created_at, mac))
            .await
            .map_err(hsm_failure)
    }

    fn remember(&mut self, rows: &[crate::store::audit::EventRow]) {
        if self.heads.len() >= MAX_KNOWN_HEADS {
            self.heads.clear();
        }
        self.heads.extend(audit::new_heads(rows));
    }

    fn forget(&mut self, chains: &BTreeSet<uuid::Uuid>) {
        for chain in chains {
            self.heads.remove(chain);
        }
    }

    /// Counts a stored batch of `events` that took the `path` ("known" or "locked") and
    /// began at `started`.
    fn counted(&self, events: u64, path: &'static str, started: Instant) {
        self.counts.batches.fetch_add(1, Ordering::Relaxed);
        self.counts.events.fetch_add(events, Ordering::Relaxed);
        metrics::histogram!("oxvault_audit_batch_events").record(events as f64);
        metrics::histogram!("oxvault_audit_write_seconds", "path" => path)
            .record(started.elapsed().as_secs_f64());
    }
}
