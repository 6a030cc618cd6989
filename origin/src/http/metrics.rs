//! Operators' metrics in Prometheus' text format, on a listener of their own
//! (`OXVAULT_METRICS_ADDR`, loopback by default): never on the API's port, never through the
//! edge.
//!
//! Two kinds of source feed one registry:
//! - recorded where things happen, through the `metrics` facade: requests and their latency
//!   per route template ([`record_request`]), HSM calls and failures (`crypto::keyring`), audit
//!   batch sizes and write latency (the audit appender), and the rate-limit refusals the edge
//!   answered itself, which it reports with its next forwarded request;
//! - read when scraped ([`read_gauges`]): database pool use, the data-key cache, the mail
//!   outbox's depth, and the counters the keyring and the appender keep.
//!
//! Histogram samples wait in the recorder until something drains them: a scrape, or the
//! upkeep ([`keep_up`]) that runs beside the listener every few seconds.
//!
//! Labels are route templates and fixed words only, never a concrete path, an id or anything
//! a tenant chose: a secret's path must not leak into a monitoring system.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use crate::store;

/// Latency buckets in seconds: a cached read is well under a millisecond at the origin, a
/// login (Argon2) tens of milliseconds, anything past a few seconds is an outage.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Events per audit batch, up to the appender's largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The longest a scrape waits for the outbox count: a slow database must not hang scrapes.
const OUTBOX_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// How often recorded latencies are folded into their buckets. The exporter keeps every
/// histogram sample until a scrape or an upkeep drains it, so an origin nobody scraped grew
/// with every request for as long as it ran (measured on the bench stack, 10 s runs of reads at
/// 32 connections, ~37,000 requests each, no scrape: RSS 48, 51, 54, 56 MiB without upkeep,
/// 51, 55, 55, 54 MiB with it).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's registry, installed as the global `metrics` recorder on first use.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("oxvault_audit_batch_events".to_owned()),
                    BATCH_BUCKETS,
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("oxvault_read_batch_reads".to_owned()),
                    BATCH_BUCKETS,
                )
            })
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "metric buckets refused; histograms become summaries");
                PrometheusBuilder::new()
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only gauges");
        }
        handle
    })
}

/// Folds the histogram samples recorded since the last scrape into their buckets every
/// [`UPKEEP_INTERVAL`], for as long as it is polled: run it beside the metrics listener.
pub async fn keep_up() {
    every(UPKEEP_INTERVAL, || handle().run_upkeep()).await;
}

/// Calls `upkeep` once per `interval`, the first time one interval from now; never returns.
async fn every(interval: Duration, mut upkeep: impl FnMut()) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // After a stall, one upkeep drains everything: no burst of catch-up calls.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        upkeep();
    }
}

/// The metrics listener's routes: `GET /metrics`.
pub fn router(state: AppState) -> Router {
    // Installed now, so the first requests are counted before the first scrape.
    handle();
    Router::new()
        .route("/metrics", get(render))
        .with_state(state)
}

async fn render(
    State(state): State<AppState>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    read_gauges(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}

/// Sets what is read rather than recorded: pool use, cache size, outbox depth, and the
/// keyring's and appender's own counters.
async fn read_gauges(state: &AppState) {
    let open = state.pool.size();
    let idle = u32::try_from(state.pool.num_idle()).unwrap_or(u32::MAX);
    metrics::gauge!("oxvault_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("oxvault_db_pool_connections", "state" => "in_use")
        .set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!("oxvault_dek_cache_keys").set(state.keyring.cached_keys() as f64);
    metrics::counter!("oxvault_hsm_calls_total").absolute(state.keyring.hsm_calls());
    let (batches, events, missed_heads) = state.audit.counts();
    metrics::counter!("oxvault_audit_transactions_total").absolute(batches);
    metrics::counter!("oxvault_audit_events_total").absolute(events);
    metrics::counter!("oxvault_audit_missed_heads_total").absolute(missed_heads);
    match tokio::time::timeout(OUTBOX_QUERY_TIMEOUT, store::outbox::depth(&state.pool)).await {
        Ok(Ok(depth)) => metrics::gauge!("oxvault_mail_outbox_depth").set(depth as f64),
        // The gauge keeps its last value; the database's own trouble shows elsewhere.
        Ok(Err(err)) => tracing::warn!(error = %err, "cannot count the mail outbox"),
        Err(_) => tracing::warn!("counting the mail outbox timed out"),
    }
}

/// Middleware on every matched route: one count and one latency per request, by method,
/// route template and status class; and the rate-limit refusals the edge reports with it.
pub async fn record_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(refusals) = state.edge_trust.refusals(request.headers()) {
        for (limit, count) in refusals.counts() {
            metrics::counter!("oxvault_edge_rate_limit_refusals_total", "limit" => limit.as_str())
                .increment(count);
        }
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // Any token is a method: only the standard ones become labels, so odd ones sent straight
    // at the origin cannot grow the series without bound.
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_owned()),
    ];
    metrics::counter!("oxvault_http_requests_total", &labels).increment(1);
    metrics::histogram!("oxvault_http_request_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn upkeep_runs_once_per_interval_while_nobody_scrapes() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let task = tokio::spawn(every(UPKEEP_INTERVAL, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        tokio::time::sleep(UPKEEP_INTERVAL * 3 + UPKEEP_INTERVAL / 2).await;
        task.abort();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
