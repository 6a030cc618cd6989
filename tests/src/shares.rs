//! Share-link helpers for the tests: times in the form `expires_at` takes, making a share,
//! and reading a share's count back from the creator's outbound list.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::types::chrono::{DateTime, Utc};

use crate::TestStack;

/// The RFC 3339 form of the instant `ahead_ms` milliseconds from now (negative: in the past).
/// The origin runs on this machine's clock.
pub fn rfc3339_in(ahead_ms: i64) -> String {
    let now = Utc::now().timestamp_millis();
    DateTime::<Utc>::from_timestamp_millis(now + ahead_ms)
        .expect("a representable time")
        .to_rfc3339()
}

/// An hour from now, as RFC 3339.
pub fn in_an_hour() -> String {
    rfc3339_in(3_600_000)
}

impl TestStack {
    /// `POST /v1/secrets/{secret_id}/share` with `body` as the holder of `token`.
    pub async fn create_share(
        &self,
        token: &str,
        secret_id: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/secrets/{secret_id}/share"),
            token,
            Some(body),
        )
        .await
    }

    /// Signs up `email`, stores `value` at `api/key` in a new vault and shares it as `body`
    /// says (asserting 201); returns the owner's access token and the share.
    pub async fn share_new_secret(&self, email: &str, value: &str, body: Value) -> (String, Value) {
        let (owner, _, secret_id) = self.owner_with_secret(email, "api/key", value).await;
        let token = owner.access_token;
        let (status, share) = self.create_share(&token, &secret_id, body).await;
        assert_eq!(status, StatusCode::CREATED, "{share}");
        (token, share)
    }

    /// The `access_count` of share `share_id` in the outbound list of the holder of `token`.
    pub async fn share_access_count(&self, token: &str, share_id: &str) -> i64 {
        let (status, list) = self
            .call(Method::GET, "/v1/shares/outbound", token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["shares"]
            .as_array()
            .expect("shares")
            .iter()
            .find(|share| share["id"] == share_id)
            .and_then(|share| share["access_count"].as_i64())
            .expect("the share in the outbound list")
    }
}
