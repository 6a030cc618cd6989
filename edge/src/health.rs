//! The edge's health report: its own version and what the origin's `/v1/health` said.
//!
//! An origin that answers with a health report (healthy or degraded, whatever its HTTP status)
//! is reachable, so the edge answers 200 and lets the body carry the state. An origin that
//! does not answer, or answers something that is not a report, makes the edge answer 503 so
//! load balancers and probes that read only the status take this edge out of rotation.

use oxvault_core::health::{EdgeHealthResponse, HealthResponse};

/// How long the edge waits for the origin's health report before calling it unreachable.
pub const ORIGIN_HEALTH_TIMEOUT_MS: u32 = 5_000;

/// The status and body of the edge's `/v1/health`, from the origin's body (`None`: no answer).
pub fn edge_health(origin_body: Option<&[u8]>) -> (u16, EdgeHealthResponse) {
    let report = origin_body.and_then(|body| serde_json::from_slice::<HealthResponse>(body).ok());
    let status = if report.is_some() { 200 } else { 503 };
    (status, EdgeHealthResponse::from_origin(report))
}

/// The report as JSON text. Serializing plain strings and enums cannot fail; the fallback keeps
/// the caller free of an error path that would never be taken.
pub fn to_json(report: &EdgeHealthResponse) -> String {
    serde_json::to_string(report).unwrap_or_else(|_| {
        String::from(
            r#"{"status":"degraded","version":"unknown","origin":{"status":"unreachable"}}"#,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxvault_core::health::{HealthStatus, OriginStatus};
    use serde_json::{Value, json};

    #[test]
    fn a_healthy_origin_makes_a_healthy_edge_with_status_200() {
        let (status, report) = edge_health(Some(br#"{"status":"healthy","version":"1.0.0"}"#));
        assert_eq!(status, 200);
        assert_eq!(report.status, HealthStatus::Healthy);
        let json: Value = serde_json::from_str(&to_json(&report)).unwrap();
        assert_eq!(
            json["origin"],
            json!({"status": "healthy", "version": "1.0.0"})
        );
        assert_eq!(json["version"], oxvault_core::VERSION);
    }

    #[test]
    fn a_degraded_origin_is_reported_in_the_body_with_status_200() {
        let (status, report) = edge_health(Some(br#"{"status":"degraded","version":"1.0.0"}"#));
        assert_eq!(status, 200);
        assert_eq!(report.status, HealthStatus::Degraded);
        assert_eq!(report.origin.status, OriginStatus::Degraded);
    }

    #[test]
    fn an_origin_that_did_not_answer_makes_a_503() {
        let (status, report) = edge_health(None);
        assert_eq!(status, 503);
        assert_eq!(report.origin.status, OriginStatus::Unreachable);
        let json: Value = serde_json::from_str(&to_json(&report)).unwrap();
        assert_eq!(json["origin"], json!({"status": "unreachable"}));
    }

    #[test]
    fn an_origin_that_answered_something_else_counts_as_unreachable() {
        for body in [&b"<html>502</html>"[..], b"", br#"{"status":"fine"}"#] {
            let (status, report) = edge_health(Some(body));
            assert_eq!(status, 503);
            assert_eq!(report.origin.status, OriginStatus::Unreachable);
        }
    }
}
