//! [`Sensitive`]: a string that is a credential (a password, a key, a token). It travels in
//! wire types like any string, but its `Debug` prints nothing of it, so a request or response
//! logged with `{:?}` (by us, by a framework, by a panic message) never shows the credential.
//!
//! It is deliberately not `Display`: reading the value takes an explicit [`Sensitive::expose`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// A credential as a string; `Debug` shows only that there is one.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The credential, moved out (to hand it to a hasher or a secret type).
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(..)")
    }
}

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{
        AgentTokenRequest, ApiKeyTokenRequest, ChangePasswordRequest, LoginRequest, RefreshRequest,
        SignupRequest,
    };

    const CANARY: &str = "canary-7f3a9c-credential";

    #[test]
    fn debug_shows_that_there_is_a_value_and_nothing_of_it() {
        let debug = format!("{:?} {:#?}", Sensitive::new(CANARY), Sensitive::new(CANARY));
        assert!(!debug.contains("canary"), "{debug}");
        assert!(debug.contains("Sensitive(..)"));
    }

    #[test]
    fn it_is_a_plain_string_on_the_wire() {
        let parsed: Sensitive = serde_json::from_str(&format!("\"{CANARY}\"")).unwrap();
        assert_eq!(parsed.expose(), CANARY);
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            format!("\"{CANARY}\"")
        );
    }

    #[test]
    fn requests_that_carry_credentials_never_debug_them() {
        let body = serde_json::json!({
            "email": "a@example.com", "password": CANARY, "current_password": CANARY,
            "new_password": CANARY, "refresh_token": CANARY, "api_key": CANARY,
        });
        let debugs = [
            format!(
                "{:?}",
                serde_json::from_value::<SignupRequest>(body.clone()).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<LoginRequest>(body.clone()).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<ChangePasswordRequest>(body.clone()).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<RefreshRequest>(body.clone()).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<ApiKeyTokenRequest>(body.clone()).unwrap()
            ),
            format!(
                "{:?}",
                serde_json::from_value::<AgentTokenRequest>(body).unwrap()
            ),
        ];
        for debug in debugs {
            assert!(!debug.contains("canary"), "{debug}");
        }
    }
}
