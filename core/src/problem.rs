//! The RFC 7807 error body every oxvault endpoint answers with.
//!
//! Both tiers build errors from [`ProblemKind`] so that a given failure has the same `type` and
//! `title` whether the edge or the origin reports it. `detail` is for the caller and must never
//! carry internal error text: that goes to the log of the tier that saw it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of an error body (RFC 7807 section 3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The largest request body accepted, at the edge and at the origin alike (so a body the edge
/// forwards always fits, and going to the origin directly gives no more room): 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The detail of the 413 answered to a larger body.
pub fn body_too_large_detail() -> String {
    format!("the request body must be at most {MAX_BODY_BYTES} bytes")
}

/// The `Retry-After` (seconds) of a 503 or 502 answered because a dependency is down (the
/// database, the HSM, the origin): a restarted database or origin is back within seconds, so
/// the hint is short; clients back off further on their own.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// An RFC 7807 problem details body: `{type, title, status, detail}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemDetails {
    /// A URI naming the kind of problem; stable, so clients may match on it.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code of this response.
    pub status: u16,
    /// What went wrong this time, in words meant for the caller.
    pub detail: String,
}

/// The kinds of problem oxvault reports. Each maps to one status, `type` and `title`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    /// A tier's object limit (vaults, secrets, agents) refuses a create: 403 with 1Claw's
    /// literal `type`, which its SDKs match on.
    ResourceLimitExceeded,
    NotFound,
    MethodNotAllowed,
    /// The client does not accept any type the answer could have (the MCP transport needs
    /// `Accept: application/json, text/event-stream`).
    NotAcceptable,
    Conflict,
    Gone,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Internal,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

impl ProblemKind {
    /// The HTTP status code for this kind.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::ResourceLimitExceeded => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::Gone => 410,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::NotAcceptable => 406,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::BadGateway => 502,
            Self::ServiceUnavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }

    /// The stable slug used in the `type` URI.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::ResourceLimitExceeded => "resource-limit-exceeded",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::Gone => "gone",
            Self::PreconditionFailed => "precondition-failed",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::NotAcceptable => "not-acceptable",
            Self::TooManyRequests => "too-many-requests",
            Self::Internal => "internal",
            Self::BadGateway => "bad-gateway",
            Self::ServiceUnavailable => "service-unavailable",
            Self::GatewayTimeout => "gateway-timeout",
        }
    }

    /// The human title, identical for every occurrence of this kind.
    pub const fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad Request",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::ResourceLimitExceeded => "Resource limit exceeded",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::Conflict => "Conflict",
            Self::Gone => "Gone",
            Self::PreconditionFailed => "Precondition Failed",
            Self::PayloadTooLarge => "Payload Too Large",
            Self::UnsupportedMediaType => "Unsupported Media Type",
            Self::NotAcceptable => "Not Acceptable",
            Self::TooManyRequests => "Too Many Requests",
            Self::Internal => "Internal Server Error",
            Self::BadGateway => "Bad Gateway",
            Self::ServiceUnavailable => "Service Unavailable",
            Self::GatewayTimeout => "Gateway Timeout",
        }
    }

    /// The `type` URI: a URN, so it never suggests a page that might not exist. Except for
    /// [`Self::ResourceLimitExceeded`], whose `type` is 1Claw's bare `resource_limit_exceeded`:
    /// 1Claw's SDKs recognise the error by that exact string.
    pub fn type_uri(self) -> String {
        match self {
            Self::ResourceLimitExceeded => "resource_limit_exceeded".to_owned(),
            _ => format!("urn:oxvault:problem:{}", self.slug()),
        }
    }

    /// A body of this kind with the given caller-facing detail.
    pub fn with_detail(self, detail: impl Into<String>) -> ProblemDetails {
        ProblemDetails {
            type_uri: self.type_uri(),
            title: self.title().to_owned(),
            status: self.status(),
            detail: detail.into(),
        }
    }
}

impl ProblemDetails {
    /// The body as JSON text. Serializing four plain fields cannot fail; the fallback keeps
    /// callers free of an error path that would never be taken.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"type":"urn:oxvault:problem:internal","title":"Internal Server Error","status":500,"detail":"error body could not be encoded"}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_serializes_with_the_rfc7807_field_names() {
        let body = ProblemKind::NotFound.with_detail("no such vault");
        let json: serde_json::Value = serde_json::from_str(&body.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:oxvault:problem:not-found",
                "title": "Not Found",
                "status": 404,
                "detail": "no such vault",
            })
        );
    }

    #[test]
    fn every_kind_has_an_error_status_and_a_distinct_slug() {
        let kinds = [
            ProblemKind::BadRequest,
            ProblemKind::Unauthorized,
            ProblemKind::Forbidden,
            ProblemKind::ResourceLimitExceeded,
            ProblemKind::NotFound,
            ProblemKind::MethodNotAllowed,
            ProblemKind::Conflict,
            ProblemKind::Gone,
            ProblemKind::PreconditionFailed,
            ProblemKind::PayloadTooLarge,
            ProblemKind::UnsupportedMediaType,
            ProblemKind::NotAcceptable,
            ProblemKind::TooManyRequests,
            ProblemKind::Internal,
            ProblemKind::BadGateway,
            ProblemKind::ServiceUnavailable,
            ProblemKind::GatewayTimeout,
        ];
        let mut slugs: Vec<_> = kinds.iter().map(|k| k.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), kinds.len());
        assert!(kinds.iter().all(|k| (400..600).contains(&k.status())));
    }

    #[test]
    fn a_resource_limit_has_the_literal_type_1claw_sdks_match_on() {
        let body = ProblemKind::ResourceLimitExceeded.with_detail("the free tier allows 3 vaults");
        assert_eq!(body.type_uri, "resource_limit_exceeded");
        assert_eq!(body.status, 403);
        assert_eq!(body.title, "Resource limit exceeded");
    }

    #[test]
    fn a_problem_round_trips_through_json() {
        let body = ProblemKind::BadGateway.with_detail("origin unreachable");
        let back: ProblemDetails = serde_json::from_str(&body.to_json()).unwrap();
        assert_eq!(back, body);
    }
}
