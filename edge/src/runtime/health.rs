//! The edge's own `GET /v1/health`: ask the origin's `/v1/health`, then report both.
//!
//! The origin is given [`ORIGIN_HEALTH_TIMEOUT_MS`] to answer, so a hung origin makes a
//! prompt 503 rather than a probe that hangs too.

use oxvault_core::health::OriginStatus;
use oxvault_core::request_id::REQUEST_ID_HEADER;
use worker::{Response, console_error};

use super::fetch::origin_request;
use super::http::{reply, to_headers};
use crate::config::EdgeConfig;
use crate::error::Reply;
use crate::health::{ORIGIN_HEALTH_TIMEOUT_MS, edge_health, to_json};
use crate::route::HEALTH_PATH;
use crate::target::origin_target;

/// The edge's report, with `extra` headers (the rate limit that applied).
pub(super) async fn answer(
    config: &EdgeConfig,
    request_id: &str,
    extra: Vec<(&'static str, String)>,
) -> Response {
    let origin_body = ask_origin(config, request_id).await;
    let (status, report) = edge_health(origin_body.as_deref());
    if origin_body.is_some() && report.origin.status == OriginStatus::Unreachable {
        console_error!("request_id={request_id} origin health answer is not a health report");
    }
    reply(
        &Reply {
            status,
            content_type: "application/json",
            body: to_json(&report),
            headers: extra,
        },
        request_id,
    )
}

/// The body of the origin's health answer, or `None` (logged) when there is none.
async fn ask_origin(config: &EdgeConfig, request_id: &str) -> Option<Vec<u8>> {
    let target = origin_target(config.origin(), HEALTH_PATH, None);
    let headers = to_headers(&[
        ("accept".to_owned(), "application/json".to_owned()),
        (REQUEST_ID_HEADER.to_owned(), request_id.to_owned()),
    ])
    .map_err(|err| console_error!("request_id={request_id} health headers: {err}"))
    .ok()?;

    // The timeout also bounds reading the body: an origin that sends headers and then stalls
    // is as unhealthy as one that never answers.
    let timeout = Some(ORIGIN_HEALTH_TIMEOUT_MS);
    let request = origin_request(&target, "GET", &headers, None, timeout)
        .map_err(|err| console_error!("request_id={request_id} health request: {err:?}"))
        .ok()?;
    let mut response = super::fetch::fetch(&request)
        .await
        .map_err(|err| console_error!("request_id={request_id} origin health unreachable: {err}"))
        .ok()?;
    response
        .bytes()
        .await
        .map_err(|err| console_error!("request_id={request_id} origin health body: {err}"))
        .ok()
}
