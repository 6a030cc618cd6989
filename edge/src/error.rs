//! The edge's one error type and the RFC 7807 reply each error becomes.
//!
//! Variants are split the way the origin splits its errors: what the caller did wrong (they
//! are told precisely) and what went wrong inside (they are told only that it did, with the
//! status that says whose turn it is to act). The internal cause is carried for the log and is
//! never put into the body.

use oxvault_core::jwt::JwtError;
use oxvault_core::problem::{PROBLEM_JSON, ProblemKind};
use thiserror::Error;

use crate::body::{BodyError, MAX_BODY_BYTES};
use crate::config::ConfigError;

/// Everything that makes the edge answer for itself instead of relaying the origin.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EdgeError {
    // The caller's doing.
    #[error("path is not part of the API")]
    NotFound,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("content-length is malformed")]
    MalformedContentLength,
    #[error("request body could not be read: {0}")]
    UnreadableBody(String),
    #[error("no bearer token on a protected route")]
    MissingToken,
    #[error("token refused: {0}")]
    InvalidToken(JwtError),

    // Inside the system.
    #[error("edge misconfigured: {0}")]
    Misconfigured(#[from] ConfigError),
    #[error("origin unreachable: {0}")]
    OriginUnreachable(String),
    #[error("origin answered an unusable response: {0}")]
    BadOriginResponse(String),
    #[error("edge failed internally: {0}")]
    Internal(String),
    /// No verification keys: the origin's key set could not be fetched and none is cached
    /// (the fetch's own error was logged where it happened).
    #[error("no token-verification keys available")]
    KeysUnavailable,
}

impl From<BodyError> for EdgeError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => Self::PayloadTooLarge,
            BodyError::MalformedLength => Self::MalformedContentLength,
            BodyError::Incomplete => {
                Self::UnreadableBody("body length differs from Content-Length".into())
            }
        }
    }
}

/// A complete answer the edge makes up itself: status, content type and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// The `WWW-Authenticate` challenge of a 401 (RFC 9110 section 11.6.1 requires one).
    pub www_authenticate: Option<&'static str>,
}

/// The challenge of every 401: the same bare `Bearer` the origin sends, so a client sees
/// one answer whichever tier refused it.
pub const BEARER_CHALLENGE: &str = "Bearer";

impl EdgeError {
    /// The problem kind and the caller-safe words for this error.
    fn problem(&self) -> (ProblemKind, String) {
        match self {
            Self::NotFound => (
                ProblemKind::NotFound,
                "no such endpoint; the API lives under /v1/".to_owned(),
            ),
            Self::PayloadTooLarge => (
                ProblemKind::PayloadTooLarge,
                format!("the request body must be at most {MAX_BODY_BYTES} bytes"),
            ),
            Self::MalformedContentLength => (
                ProblemKind::BadRequest,
                "the Content-Length header is not a valid length".to_owned(),
            ),
            Self::UnreadableBody(_) => (
                ProblemKind::BadRequest,
                "the request body could not be read".to_owned(),
            ),
            Self::MissingToken => (
                ProblemKind::Unauthorized,
                "a bearer token is required".to_owned(),
            ),
            // One answer for every reason, as at the origin: which check failed is for the log.
            Self::InvalidToken(_) => (
                ProblemKind::Unauthorized,
                "invalid or expired token".to_owned(),
            ),
            Self::Misconfigured(_) => (
                ProblemKind::ServiceUnavailable,
                "the service is not configured correctly; try again later".to_owned(),
            ),
            Self::OriginUnreachable(_) => (
                ProblemKind::BadGateway,
                "the origin did not answer".to_owned(),
            ),
            Self::BadOriginResponse(_) => (
                ProblemKind::BadGateway,
                "the origin answered with an unusable response".to_owned(),
            ),
            Self::Internal(_) => (
                ProblemKind::Internal,
                "the edge could not handle the request".to_owned(),
            ),
            Self::KeysUnavailable => (
                ProblemKind::ServiceUnavailable,
                "tokens cannot be verified right now; try again later".to_owned(),
            ),
        }
    }

    /// Whether this is the system's fault, i.e. worth an error line in the Worker's log.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Misconfigured(_)
                | Self::OriginUnreachable(_)
                | Self::BadOriginResponse(_)
                | Self::Internal(_)
                | Self::KeysUnavailable
        )
    }

    /// The RFC 7807 reply for this error.
    pub fn reply(&self) -> Reply {
        let (kind, detail) = self.problem();
        Reply {
            status: kind.status(),
            content_type: PROBLEM_JSON,
            body: kind.with_detail(detail).to_json(),
            www_authenticate: (kind == ProblemKind::Unauthorized).then_some(BEARER_CHALLENGE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(err: &EdgeError) -> Value {
        serde_json::from_str(&err.reply().body).unwrap()
    }

    #[test]
    fn an_unreachable_origin_is_a_502_problem_without_the_cause() {
        let err = EdgeError::OriginUnreachable("connect ECONNREFUSED 127.0.0.1:8080".into());
        let reply = err.reply();
        assert_eq!(reply.status, 502);
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(
            body(&err),
            json!({
                "type": "urn:oxvault:problem:bad-gateway",
                "title": "Bad Gateway",
                "status": 502,
                "detail": "the origin did not answer",
            })
        );
        assert!(!reply.body.contains("ECONNREFUSED"));
    }

    #[test]
    fn a_path_outside_the_api_is_a_404_problem() {
        let reply = EdgeError::NotFound.reply();
        assert_eq!(reply.status, 404);
        assert_eq!(
            body(&EdgeError::NotFound)["type"],
            "urn:oxvault:problem:not-found"
        );
    }

    #[test]
    fn an_oversized_body_is_a_413_problem_that_states_the_limit() {
        let err = EdgeError::from(BodyError::TooLarge);
        assert_eq!(err.reply().status, 413);
        assert_eq!(
            body(&err)["detail"],
            "the request body must be at most 1048576 bytes"
        );
    }

    #[test]
    fn a_malformed_content_length_is_a_400_problem() {
        let err = EdgeError::from(BodyError::MalformedLength);
        assert_eq!(err.reply().status, 400);
    }

    #[test]
    fn a_misconfiguration_is_a_503_problem_that_does_not_say_what_is_wrong() {
        let err = EdgeError::from(ConfigError::HasPath);
        let reply = err.reply();
        assert_eq!(reply.status, 503);
        assert!(!reply.body.contains("ORIGIN_URL"));
        assert!(
            err.to_string().contains("ORIGIN_URL"),
            "the log line names it"
        );
    }

    #[test]
    fn internal_causes_never_reach_the_body() {
        for err in [
            EdgeError::UnreadableBody("secret-cause".into()),
            EdgeError::OriginUnreachable("secret-cause".into()),
            EdgeError::BadOriginResponse("secret-cause".into()),
            EdgeError::Internal("secret-cause".into()),
        ] {
            assert!(!err.reply().body.contains("secret-cause"), "{err:?}");
        }
    }

    #[test]
    fn a_missing_token_is_a_401_problem_with_a_bearer_challenge() {
        let reply = EdgeError::MissingToken.reply();
        assert_eq!(reply.status, 401);
        assert_eq!(reply.www_authenticate, Some("Bearer"));
        assert_eq!(
            body(&EdgeError::MissingToken),
            json!({
                "type": "urn:oxvault:problem:unauthorized",
                "title": "Unauthorized",
                "status": 401,
                "detail": "a bearer token is required",
            })
        );
    }

    #[test]
    fn every_refused_token_gets_the_same_401_whatever_the_reason() {
        let replies: Vec<Reply> = [
            JwtError::Malformed,
            JwtError::UnsupportedAlgorithm,
            JwtError::UnknownKey,
            JwtError::BadSignature,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::Expired,
            JwtError::NotYetValid,
        ]
        .into_iter()
        .map(|reason| EdgeError::InvalidToken(reason).reply())
        .collect();
        for reply in &replies {
            assert_eq!(reply, &replies[0]);
        }
        assert_eq!(replies[0].status, 401);
        assert_eq!(replies[0].www_authenticate, Some("Bearer"));
        assert_eq!(
            body(&EdgeError::InvalidToken(JwtError::Expired))["detail"],
            "invalid or expired token"
        );
        assert!(!EdgeError::InvalidToken(JwtError::Expired).is_internal());
    }

    #[test]
    fn missing_keys_are_a_503_the_system_owns() {
        let err = EdgeError::KeysUnavailable;
        assert_eq!(err.reply().status, 503);
        assert_eq!(err.reply().www_authenticate, None);
        assert!(err.is_internal());
    }

    #[test]
    fn only_401s_carry_a_challenge() {
        assert_eq!(EdgeError::NotFound.reply().www_authenticate, None);
        assert_eq!(
            EdgeError::OriginUnreachable(String::new())
                .reply()
                .www_authenticate,
            None
        );
    }

    #[test]
    fn only_system_faults_count_as_internal() {
        assert!(!EdgeError::NotFound.is_internal());
        assert!(!EdgeError::PayloadTooLarge.is_internal());
        assert!(EdgeError::OriginUnreachable(String::new()).is_internal());
        assert!(EdgeError::from(ConfigError::NotAUrl).is_internal());
    }
}
