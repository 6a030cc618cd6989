//! The edge's one error type and the RFC 7807 reply each error becomes.
//!
//! Variants are split the way the origin splits its errors: what the caller did wrong (they
//! are told precisely) and what went wrong inside (they are told only that it did, with the
//! status that says whose turn it is to act). The internal cause is carried for the log and is
//! never put into the body.

use oxvault_core::jwt::JwtError;
use oxvault_core::problem::{
    PROBLEM_JSON, ProblemKind, UNAVAILABLE_RETRY_AFTER_SECS, body_too_large_detail,
};
use oxvault_core::share::MAX_PASSPHRASE_LEN;
use thiserror::Error;

use crate::body::BodyError;
use crate::config::ConfigError;
use crate::rate_limit::wire::Decision;

/// Everything that makes the edge answer for itself instead of relaying the origin.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EdgeError {
    // The caller's doing.
    #[error("path is not part of the API")]
    NotFound,
    #[error("method not allowed here (allowed: {allow})")]
    MethodNotAllowed { allow: &'static str },
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
    /// An `ocv_`/`1ck_` key sent to `/mcp` that the origin would not exchange.
    #[error("key refused by the exchange")]
    KeyRefused,
    #[error("share passphrase in the query string")]
    PassphraseInQuery,
    #[error("share lookup body is not a JSON object with a string passphrase")]
    MalformedShareBody,
    #[error("share passphrase cannot be sent as a header value")]
    UnusablePassphrase,
    /// `HEAD` on a share lookup: it would use up a view and show nothing.
    #[error("HEAD on a share lookup")]
    HeadOnShareLookup,
    #[error("rate limited: retry after {}s", .0.retry_after_secs)]
    RateLimited(Decision),

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
    /// The rate limiter could not be asked; the request is refused rather than let through
    /// unlimited (fail closed).
    #[error("rate limiter unavailable: {0}")]
    LimiterUnavailable(String),
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

/// A complete answer the edge makes up itself: status, content type, body text and the
/// headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Headers the status calls for: the `WWW-Authenticate` challenge of a 401 (RFC 9110
    /// section 11.6.1 requires one), `Allow` of a 405, `Retry-After` and `X-RateLimit-*` of a
    /// 429.
    pub headers: Vec<(&'static str, String)>,
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
            Self::MethodNotAllowed { allow } => (
                ProblemKind::MethodNotAllowed,
                format!("this path answers only {allow}"),
            ),
            Self::PayloadTooLarge => (ProblemKind::PayloadTooLarge, body_too_large_detail()),
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
            Self::InvalidToken(_) | Self::KeyRefused => (
                ProblemKind::Unauthorized,
                "invalid or expired token".to_owned(),
            ),
            Self::PassphraseInQuery => (
                ProblemKind::BadRequest,
                "a share passphrase must never be sent in the URL; send it in the \
                 X-Share-Passphrase header or as {\"passphrase\": ...} in the body"
                    .to_owned(),
            ),
            Self::MalformedShareBody => (
                ProblemKind::BadRequest,
                "the body of a share lookup must be a JSON object whose passphrase is a string"
                    .to_owned(),
            ),
            Self::UnusablePassphrase => (
                ProblemKind::BadRequest,
                format!(
                    "a share passphrase must be 1 to {MAX_PASSPHRASE_LEN} bytes of text without \
                     control characters or spaces at either end"
                ),
            ),
            Self::HeadOnShareLookup => (
                ProblemKind::MethodNotAllowed,
                "a share is read with GET; HEAD would use up a view".to_owned(),
            ),
            Self::RateLimited(decision) => (
                ProblemKind::TooManyRequests,
                format!(
                    "too many requests; try again in {} s",
                    decision.retry_after_secs.max(1)
                ),
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
            Self::LimiterUnavailable(_) => (
                ProblemKind::ServiceUnavailable,
                "the service cannot take requests right now; try again later".to_owned(),
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
                | Self::LimiterUnavailable(_)
        )
    }

    /// The headers this error's reply carries besides the body's.
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::KeyRefused => {
                vec![("www-authenticate", BEARER_CHALLENGE.to_owned())]
            }
            Self::HeadOnShareLookup => vec![("allow", "GET, DELETE".to_owned())],
            Self::MethodNotAllowed { allow } => vec![("allow", (*allow).to_owned())],
            Self::RateLimited(decision) => decision.headers(),
            // A part that is down is expected back shortly: tell clients when to retry.
            Self::OriginUnreachable(_)
            | Self::BadOriginResponse(_)
            | Self::KeysUnavailable
            | Self::LimiterUnavailable(_) => {
                vec![("retry-after", UNAVAILABLE_RETRY_AFTER_SECS.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The RFC 7807 reply for this error.
    pub fn reply(&self) -> Reply {
        let (kind, detail) = self.problem();
        Reply {
            status: kind.status(),
            content_type: PROBLEM_JSON,
            body: kind.with_detail(detail).to_json(),
            headers: self.headers(),
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

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn challenge(reply: &Reply) -> Option<&str> {
        header(reply, "www-authenticate")
    }

    #[test]
    fn a_rate_limited_request_is_a_429_problem_with_retry_after_and_the_limit() {
        let err = EdgeError::RateLimited(Decision {
            allowed: false,
            limit: 3,
            remaining: 0,
            reset_secs: 2,
            retry_after_secs: 1,
        });
        let reply = err.reply();
        assert_eq!(reply.status, 429);
        assert_eq!(
            body(&err),
            json!({
                "type": "urn:oxvault:problem:too-many-requests",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "too many requests; try again in 1 s",
            })
        );
        assert_eq!(header(&reply, "retry-after"), Some("1"));
        assert_eq!(header(&reply, "x-ratelimit-limit"), Some("3"));
        assert_eq!(header(&reply, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(&reply, "x-ratelimit-reset"), Some("2"));
        assert!(!err.is_internal());
    }

    #[test]
    fn an_unavailable_limiter_fails_closed_with_a_503() {
        let err = EdgeError::LimiterUnavailable("storage said no".into());
        assert_eq!(err.reply().status, 503);
        assert!(err.is_internal());
        assert!(!err.reply().body.contains("storage"));
    }

    #[test]
    fn share_passphrase_mistakes_are_400s_and_head_on_a_lookup_is_a_405() {
        for err in [
            EdgeError::PassphraseInQuery,
            EdgeError::MalformedShareBody,
            EdgeError::UnusablePassphrase,
        ] {
            assert_eq!(err.reply().status, 400, "{err:?}");
            assert!(!err.is_internal());
        }
        let reply = EdgeError::HeadOnShareLookup.reply();
        assert_eq!(reply.status, 405);
        assert_eq!(header(&reply, "allow"), Some("GET, DELETE"));
    }

    #[test]
    fn a_method_the_path_does_not_answer_is_a_405_problem_naming_the_allowed_ones() {
        let reply = EdgeError::MethodNotAllowed { allow: "GET, HEAD" }.reply();
        assert_eq!(reply.status, 405);
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(header(&reply, "allow"), Some("GET, HEAD"));
        assert_eq!(
            body(&EdgeError::MethodNotAllowed { allow: "GET, HEAD" })["status"],
            405
        );
    }

    #[test]
    fn an_unreachable_origin_is_a_502_problem_without_the_cause() {
        let err = EdgeError::OriginUnreachable("connect ECONNREFUSED 127.0.0.1:8080".into());
        let reply = err.reply();
        assert_eq!(reply.status, 502);
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(header(&reply, "retry-after"), Some("2"));
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
        let err = EdgeError::from(ConfigError::HasPath(crate::config::ORIGIN_URL_VAR));
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
        assert_eq!(challenge(&reply), Some("Bearer"));
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
        assert_eq!(challenge(&replies[0]), Some("Bearer"));
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
        assert_eq!(challenge(&err.reply()), None);
        assert!(err.is_internal());
    }

    #[test]
    fn only_401s_carry_a_challenge() {
        assert_eq!(challenge(&EdgeError::NotFound.reply()), None);
        assert_eq!(
            challenge(&EdgeError::OriginUnreachable(String::new()).reply()),
            None
        );
    }

    #[test]
    fn only_system_faults_count_as_internal() {
        assert!(!EdgeError::NotFound.is_internal());
        assert!(!EdgeError::PayloadTooLarge.is_internal());
        assert!(EdgeError::OriginUnreachable(String::new()).is_internal());
        assert!(EdgeError::from(ConfigError::NotAUrl("ORIGIN_URL")).is_internal());
    }
}
