//! Batched secret-read lookups: the reads that arrive while every connection of this reader is
//! busy go to PostgreSQL together, as one statement ([`super::read_view::read_views`]).
//!
//! Under load most of a read's cost in PostgreSQL is not the lookup (about 20 us of index
//! scans) but the statement around it: the backend's wake-up, the protocol messages, the
//! snapshot and the implicit transaction, and the kernel's loopback or network work on both
//! sides. Measured on the bench's database (2 cores, the backend's CPU per read): 90 us as
//! single statements, 40 us in batches of 4, 20 us in batches of 8, 17 us in batches of 16.
//!
//! How batches form: one dispatcher task first takes a free connection of its own pool, then
//! whatever reads are queued (waiting for the first), and hands both to a task that runs the
//! statement. While all connections are busy, reads queue and the next statement takes them
//! all. A lone read waits for nothing: with a connection free it goes at once.
//!
//! What does not change: each read sees the database as of its statement, which starts after
//! the read was asked for, so revoking a token or a policy binds the very next read. A read
//! whose caller went away is simply not answered.
//!
//! Its connections plan the statement once (`plan_cache_mode = force_generic_plan`): with the
//! reads as array parameters PostgreSQL's custom plans looked cheaper than the generic one for
//! every batch size, so it planned the 6-way join afresh on every execution (about 0.5 ms).

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::StatementPool;
use super::StoreError;
use super::read_view::{self, Found, ViewRequest};
use super::statements::{IDLE_TIMEOUT, Lease};

/// The most reads one statement carries.
const MAX_BATCH: usize = 64;

/// Reads that may queue before callers wait for room (back-pressure).
const QUEUE: usize = 4096;

/// Where one read's answer goes.
type Answer = oneshot::Sender<Result<Found, StoreError>>;

/// One queued read and where its answer goes.
struct Asked {
    request: ViewRequest,
    answer: Answer,
}

/// The handle reads go through; cheap to clone.
#[derive(Debug, Clone)]
pub struct ViewReader {
    queue: mpsc::Sender<Asked>,
}

impl ViewReader {
    /// Starts the dispatcher on `pool`, whose connections must plan generically (see the
    /// module docs and [`super::view_pool`]). It ends when every handle is gone.
    pub fn start(pool: StatementPool) -> Self {
        let (queue, asked) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(pool, asked));
        Self { queue }
    }

    /// Looks up one read, batched with whatever else is waiting.
    pub async fn read(&self, request: ViewRequest) -> Result<Found, StoreError> {
        let (answer, answered) = oneshot::channel();
        let gone = || StoreError::Database(sqlx::Error::PoolClosed);
        self.queue
            .send(Asked { request, answer })
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// Pairs a free connection with the reads queued by then, until every handle is dropped.
async fn dispatch(pool: StatementPool, mut asked: mpsc::Receiver<Asked>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // The connection first: while none is free, reads gather into the next batch.
        let lease = pool.acquire().await;
        let taken = Instant::now();
        if asked.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let batch = std::mem::take(&mut batch);
        // A failure to get a connection may be older than the reads: ask once more for them.
        // A connection held idle as long as the pool would keep an idle one may have been
        // closed by the server or a proxy meanwhile: dropped, it closes, and a fresh one
        // serves the batch (the pool's own rule for idle connections, [`IDLE_TIMEOUT`]).
        let lease = match lease {
            Ok(lease) if taken.elapsed() < IDLE_TIMEOUT => Ok(lease),
            _ => pool.acquire().await,
        };
        match lease {
            Ok(lease) => {
                tokio::spawn(run(lease, batch));
            }
            Err(err) => fail_all(batch.into_iter().map(|asked| asked.answer), &err),
        }
    }
}

/// Runs one batch's statement and answers each of its reads.
async fn run(mut lease: Lease, batch: Vec<Asked>) {
    let (requests, answers): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|asked| (asked.request, asked.answer))
        .unzip();
    metrics::histogram!("oxvault_read_batch_reads").record(requests.len() as f64);
    let found = read_view::read_views(lease.conn(), &requests).await;
    match lease.finish(found) {
        Ok(found) => {
            for (answer, found) in answers.into_iter().zip(found) {
                // A read whose caller went away needs no answer.
                let _ = answer.send(found);
            }
        }
        Err(err) => fail_all(answers, &err),
    }
}

/// Fails every read of a batch whose statement (or connection) failed: each gets an error of
/// the same kind (503 when the database could not serve, else 500); the cause is logged once.
fn fail_all(answers: impl IntoIterator<Item = Answer>, err: &StoreError) {
    tracing::error!(error = %err, "a batch of secret reads failed");
    const REASON: &str = "the batched secret read failed";
    let unavailable = err.is_unavailable();
    for answer in answers {
        let err = if unavailable {
            sqlx::Error::Io(std::io::Error::other(REASON))
        } else {
            sqlx::Error::Protocol(REASON.to_owned())
        };
        let _ = answer.send(Err(StoreError::Database(err)));
    }
}
