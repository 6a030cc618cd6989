//! Health reports of the origin (`/v1/health`, `/v1/health/hsm`) and the edge.
//!
//! The shapes follow 1Claw's `HealthResponse` and `healthHsm`. The edge's report is a superset
//! of the origin's, so a client that reads only `status` and `version` works against either.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Overall state of a tier: `healthy` when every dependency answers, else `degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
}

impl HealthStatus {
    /// `healthy` only when every part is.
    pub fn all(parts: impl IntoIterator<Item = bool>) -> Self {
        if parts.into_iter().all(|ok| ok) {
            Self::Healthy
        } else {
            Self::Degraded
        }
    }
}

/// Body of `GET /v1/health` at the origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    pub status: HealthStatus,
    pub version: String,
}

/// State of the HSM as seen by a real operation with the key-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HsmStatus {
    Ok,
    Unavailable,
}

/// Body of `GET /v1/health/hsm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HsmHealthResponse {
    pub status: HsmStatus,
}

/// The origin's state as the edge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OriginStatus {
    Healthy,
    Degraded,
    /// The origin did not answer, or answered something that is not a health report.
    Unreachable,
}

impl From<HealthStatus> for OriginStatus {
    fn from(status: HealthStatus) -> Self {
        match status {
            HealthStatus::Healthy => Self::Healthy,
            HealthStatus::Degraded => Self::Degraded,
        }
    }
}

/// What the edge knows about the origin behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OriginHealth {
    pub status: OriginStatus,
    /// The origin's version, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Body of `GET /v1/health` at the edge: the edge's own state plus the origin's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EdgeHealthResponse {
    /// `healthy` only when the origin answered `healthy`.
    pub status: HealthStatus,
    /// The edge's version.
    pub version: String,
    pub origin: OriginHealth,
}

impl EdgeHealthResponse {
    /// Combines the edge with what the origin answered (`None`: it did not answer usably).
    pub fn from_origin(origin: Option<HealthResponse>) -> Self {
        let (status, origin) = match origin {
            Some(report) => (
                report.status,
                OriginHealth {
                    status: report.status.into(),
                    version: Some(report.version),
                },
            ),
            None => (
                HealthStatus::Degraded,
                OriginHealth {
                    status: OriginStatus::Unreachable,
                    version: None,
                },
            ),
        };
        Self {
            status,
            version: crate::VERSION.to_owned(),
            origin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_status_is_healthy_only_when_every_part_is() {
        assert_eq!(HealthStatus::all([true, true]), HealthStatus::Healthy);
        assert_eq!(HealthStatus::all([true, false]), HealthStatus::Degraded);
        assert_eq!(HealthStatus::all([]), HealthStatus::Healthy);
    }

    #[test]
    fn health_bodies_use_the_1claw_lowercase_labels() {
        let body = HealthResponse {
            status: HealthStatus::Degraded,
            version: "1.2.3".into(),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"status": "degraded", "version": "1.2.3"})
        );
        let hsm = HsmHealthResponse {
            status: HsmStatus::Unavailable,
        };
        assert_eq!(
            serde_json::to_value(&hsm).unwrap(),
            json!({"status": "unavailable"})
        );
    }

    #[test]
    fn the_edge_is_degraded_when_the_origin_does_not_answer() {
        let body = EdgeHealthResponse::from_origin(None);
        assert_eq!(body.status, HealthStatus::Degraded);
        assert_eq!(body.origin.status, OriginStatus::Unreachable);
        assert_eq!(body.origin.version, None);
    }

    #[test]
    fn the_edge_reports_what_the_origin_said() {
        let origin = HealthResponse {
            status: HealthStatus::Healthy,
            version: "9.9.9".into(),
        };
        let body = EdgeHealthResponse::from_origin(Some(origin));
        assert_eq!(body.status, HealthStatus::Healthy);
        assert_eq!(
            serde_json::to_value(&body.origin).unwrap(),
            json!({"status": "healthy", "version": "9.9.9"})
        );
    }
}
