//! Request metering for billing usage: which principal called which route, with what
//! status — counted without making any request wait on the database.
//!
//! [`meter`] wraps every routed request. It puts an empty [`MeterSlot`] into the request's
//! extensions; the HTTP layer's gate (`extract::Gate`) fills it once the caller is
//! authenticated ([`MeterSlot::note`]). Once the handler has answered, a filled slot becomes
//! one row, offered to a bounded in-memory channel with `try_send`. A background task
//! ([`MeterTask`]) drains the channel and writes batches with one multi-row INSERT each: every
//! flush interval, or as soon as a batch is full.
//!
//! - Not metered: requests with no authenticated principal — sign-up, sign-in and token
//!   exchanges, public share reads without a token, health, the OpenAPI document, unknown
//!   routes — and requests refused before the principal was known (a bad token: 401).
//! - The endpoint is axum's route template (`/v1/vaults/{vault_id}/secrets/{*path}`), never
//!   the concrete path, which may name a secret.
//! - A full buffer never blocks or slows a request: the row is dropped, and drops are counted
//!   and logged (first, then every 1000th). That happens only when the database has been
//!   unreachable (or far behind) for a whole buffer's worth of requests.
//! - A batch the database cannot take is kept and retried with doubling waits (0.5 s up to
//!   30 s); meanwhile nothing more is read from the channel, so memory stays bounded by the
//!   buffer plus one batch. A batch the database *refuses* (the statement fails, not the
//!   connection) five times is dropped and logged, so one bad row cannot stop metering.
//!   Retries cannot double-count: each row's id is made here and the insert skips known ids.
//! - Graceful shutdown: once the server has drained its requests, [`MeterTask::stop`] closes
//!   the channel and writes everything in it before the origin exits (for at most
//!   [`SHUTDOWN_FLUSH_LIMIT`]; rows still unwritten then are counted in the log).
//! - Several origins: each meters its own requests into the same table; nothing is shared
//!   between processes, and totals are always computed from the table.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::config::MeterConfig;
use crate::service::billing::{self, UsageRow, UsageWriteError};
use crate::service::principal::Principal;

/// Longest the shutdown flush may take before unwritten rows are given up.
pub const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// First and longest wait between two attempts at a batch.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Refusals of one batch by the database (not outages) before it is dropped.
const MAX_REFUSALS: u32 = 5;

/// Who made a request, as far as billing cares.
#[derive(Debug, Clone, Copy)]
struct Caller {
    org_id: Uuid,
    principal_type: &'static str,
    principal_id: Uuid,
}

/// Where the `Principal` extractor leaves the caller of a request for [`meter`] to find.
/// Shared between the two (an `Arc`) because the handler owns the request by then.
#[derive(Debug, Clone, Default)]
pub struct MeterSlot(Arc<OnceLock<Caller>>);

impl MeterSlot {
    /// The slot of the request `parts` belongs to; requests outside [`meter`] have none and
    /// are not metered.
    pub fn of(parts: &Parts) -> Option<Self> {
        parts.extensions.get::<Self>().cloned()
    }

    /// Notes `principal` as the request's caller; set twice only if a handler authenticated
    /// twice, and then the first caller stands.
    pub fn note(&self, principal: &Principal) {
        let (principal_type, id) = principal.key();
        let _ = self.0.set(Caller {
            org_id: *principal.org.as_uuid(),
            principal_type,
            principal_id: id,
        });
    }
}

/// The sending side of the meter; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Meter {
    rows: mpsc::Sender<UsageRow>,
    dropped: Arc<AtomicU64>,
}

impl Meter {
    /// Offers a row to the buffer without waiting; a full (or closed) buffer drops it.
    fn record(&self, row: UsageRow) {
        let reason = match self.rows.try_send(row) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                "the usage buffer is full: a request was served but not metered"
            }
            // Only after shutdown began: the writer has stopped taking rows.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                "the usage meter has stopped: a request was served but not metered"
            }
        };
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped == 1 || dropped.is_multiple_of(1000) {
            tracing::warn!(dropped_total = dropped, "{reason}");
        }
    }
}

/// The middleware: meters the request if an authenticated principal made it.
pub async fn meter(State(meter): State<Meter>, mut request: Request, next: Next) -> Response {
    let slot = MeterSlot::default();
    request.extensions_mut().insert(slot.clone());
    let created_at = Utc::now();
    let method = request.method().as_str().to_owned();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if let (Some(caller), Some(endpoint), Ok(status_code)) =
        (slot.0.get(), endpoint, i16::try_from(status))
        && (100..=599).contains(&status)
    {
        meter.record(UsageRow {
            // Time-ordered, as audit event ids are: inserts stay at the index's right edge.
            id: Uuid::now_v7(),
            org_id: caller.org_id,
            principal_type: caller.principal_type.to_owned(),
            principal_id: caller.principal_id,
            method,
            endpoint,
            status_code,
            created_at,
        });
    }
    response
}

/// The background writer; stop it with [`MeterTask::stop`] after the server has drained.
#[derive(Debug)]
pub struct MeterTask {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    dropped: Arc<AtomicU64>,
}

/// Starts the writer on the current runtime and returns the handle requests record through.
pub fn start(pool: PgPool, config: &MeterConfig) -> (Meter, MeterTask) {
    let (rows, receiver) = mpsc::channel(config.buffer.max(1));
    let (stop, stopping) = watch::channel(false);
    let dropped = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(run(Writer::new(pool), receiver, config.clone(), stopping));
    (
        Meter {
            rows,
            dropped: Arc::clone(&dropped),
        },
        MeterTask {
            stop,
            task,
            dropped,
        },
    )
}

impl MeterTask {
    /// Writes every buffered row, then ends the writer. Call once no request can be metered
    /// any more (the server has drained): later rows are dropped.
    pub async fn stop(self) {
        // A writer that already ended has dropped its receiver; nothing to tell.
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        match tokio::time::timeout(SHUTDOWN_FLUSH_LIMIT + Duration::from_secs(5), self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "the usage meter task failed"),
            Err(_) => {
                abort.abort();
                tracing::error!("the usage meter did not stop in time; aborted");
            }
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped_total = dropped,
                "requests served but not metered since start"
            );
        }
    }
}

async fn run(
    mut writer: Writer,
    mut receiver: mpsc::Receiver<UsageRow>,
    config: MeterConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(config.batch_size);
    let mut ticker = tokio::time::interval(config.flush_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let room = config.batch_size.saturating_sub(batch.len()).max(1);
        let write_now = tokio::select! {
            biased;
            // A dropped sender (Err) also means stop.
            _ = stop.wait_for(|stopping| *stopping) => break,
            received = receiver.recv_many(&mut batch, room) => {
                if received == 0 {
                    break;
                }
                batch.len() >= config.batch_size
            }
            _ = ticker.tick() => !batch.is_empty(),
        };
        if write_now {
            // A stop while the database is down ends the retries here; the shutdown below
            // tries once more, with a deadline.
            let mut stopping = stop.clone();
            let stopped = async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            };
            writer.write(&mut batch, stopped).await;
        }
    }

    // Shutdown: take in nothing new, write out everything taken in.
    receiver.close();
    let deadline = Instant::now() + SHUTDOWN_FLUSH_LIMIT;
    loop {
        while batch.len() < config.batch_size {
            match receiver.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        writer
            .write(&mut batch, tokio::time::sleep_until(deadline))
            .await;
        if !batch.is_empty() {
            tracing::error!(
                lost = batch.len() + receiver.len(),
                "shutting down without writing every metered request: the database is unreachable"
            );
            return;
        }
    }
    tracing::info!("usage meter stopped; every metered request is written");
}

/// Writes batches and remembers whether the database is failing (to log an outage once).
#[derive(Debug)]
struct Writer {
    pool: PgPool,
    failing: bool,
}

impl Writer {
    fn new(pool: PgPool) -> Self {
        Self {
            pool,
            failing: false,
        }
    }

    /// Writes `batch` and clears it, retrying with doubling waits, until it is written or
    /// `give_up` completes (the batch is then kept). A batch refused [`MAX_REFUSALS`] times
    /// is dropped.
    async fn write(&mut self, batch: &mut Vec<UsageRow>, give_up: impl Future<Output = ()>) {
        let mut give_up = std::pin::pin!(give_up);
        let mut wait = FIRST_RETRY;
        let mut refusals = 0;
        loop {
            let attempt = tokio::select! {
                result = billing::write_usage(&self.pool, batch) => result,
                // Cancelling the insert is safe: a retry skips rows it did store.
                () = &mut give_up => return,
            };
            match attempt {
                Ok(_) => {
                    if self.failing {
                        self.failing = false;
                        tracing::info!("usage rows are being written again");
                    }
                    batch.clear();
                    return;
                }
                Err(UsageWriteError::Refused(err)) => {
                    refusals += 1;
                    tracing::error!(error = %err, attempt = refusals, rows = batch.len(),
                        "the database refused a batch of usage rows");
                    if refusals >= MAX_REFUSALS {
                        tracing::error!(lost = batch.len(), "dropping a batch of usage rows");
                        batch.clear();
                        return;
                    }
                }
                Err(UsageWriteError::Unavailable(err)) => {
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(error = %err, rows = batch.len(),
                            "cannot write usage rows; keeping them and retrying");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut give_up => return,
            }
            wait = (wait * 2).min(MAX_RETRY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use oxvault_core::claims::Subject;
    use oxvault_core::ids::{AgentId, OrgId};
    use tower::ServiceExt;

    fn agent() -> Principal {
        Principal {
            org: OrgId::from_uuid(Uuid::new_v4()),
            subject: Subject::Agent(AgentId::from_uuid(Uuid::new_v4())),
            role: None,
            session: None,
            scopes: Vec::new(),
            vault_ids: Vec::new(),
            client_ip: None,
        }
    }

    /// A router metered into a buffer of `capacity`: one route whose handler authenticates
    /// `caller` (as the gate does) and answers 404, one that authenticates
    /// nobody.
    fn app(caller: Principal, capacity: usize) -> (Router, Meter, mpsc::Receiver<UsageRow>) {
        let (rows, receiver) = mpsc::channel(capacity);
        let meter = Meter {
            rows,
            dropped: Arc::default(),
        };
        let authed = move |parts: Parts| {
            let caller = caller.clone();
            async move {
                if let Some(slot) = MeterSlot::of(&parts) {
                    slot.note(&caller);
                }
                StatusCode::NOT_FOUND
            }
        };
        let router = Router::new()
            .route("/v1/vaults/{vault_id}/secrets/{*path}", get(authed))
            .route("/v1/auth/signup", get(|| async { "anonymous" }))
            .route_layer(axum::middleware::from_fn_with_state(
                meter.clone(),
                super::meter,
            ));
        (router, meter, receiver)
    }

    async fn send(router: &Router, uri: &str) -> StatusCode {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_request_is_metered_by_its_route_template_never_its_concrete_path() {
        let caller = agent();
        let (router, _meter, mut rows) = app(caller.clone(), 8);

        let status = send(&router, "/v1/vaults/abc/secrets/prod/db-password").await;

        assert_eq!(status, StatusCode::NOT_FOUND);
        let row = rows.try_recv().unwrap();
        assert_eq!(row.endpoint, "/v1/vaults/{vault_id}/secrets/{*path}");
        assert_eq!(row.method, "GET");
        assert_eq!(row.status_code, 404);
        assert_eq!(row.principal_type, "agent");
        assert_eq!(row.principal_id, caller.key().1);
        assert_eq!(row.org_id, *caller.org.as_uuid());
        assert!(rows.try_recv().is_err(), "one request, one row");
    }

    #[tokio::test]
    async fn rows_get_time_ordered_ids_so_inserts_stay_at_the_index_edge() {
        let (router, _meter, mut rows) = app(agent(), 8);
        let mut ids = Vec::new();
        for _ in 0..20 {
            send(&router, "/v1/vaults/abc/secrets/a").await;
            ids.push(rows.try_recv().unwrap().id);
        }
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    }

    #[tokio::test]
    async fn requests_without_a_principal_are_not_metered() {
        let (router, _meter, mut rows) = app(agent(), 8);

        assert_eq!(send(&router, "/v1/auth/signup").await, StatusCode::OK);

        assert!(rows.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts_but_never_holds_up_the_request() {
        let (router, meter, mut rows) = app(agent(), 1);

        for _ in 0..3 {
            let answered = tokio::time::timeout(
                Duration::from_secs(5),
                send(&router, "/v1/vaults/abc/secrets/x"),
            )
            .await;
            assert_eq!(answered.unwrap(), StatusCode::NOT_FOUND);
        }

        assert_eq!(meter.dropped.load(Ordering::Relaxed), 2);
        assert!(rows.try_recv().is_ok());
        assert!(rows.try_recv().is_err());
    }
}
