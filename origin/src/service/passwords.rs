//! Password hashing with Argon2id at OWASP's parameters (19 MiB, t=2, p=1).
//!
//! Hashing costs ~20 ms of CPU and 19 MiB of memory, so it runs on the blocking pool and at
//! most `concurrency` hashes run at once: a burst of logins queues instead of exhausting
//! memory or starving the executor. Unknown emails verify against a dummy hash, so "no such
//! user" and "wrong password" take the same time.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Shortest password accepted (NIST SP 800-63B asks for at least 8).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: bounds the work one request can ask for.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Why a password operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    Length,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The password hasher; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

fn argon2() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|err| PasswordError::Internal(err.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|err| PasswordError::Internal(err.to_string()))?;
    argon2()?
        .hash_password_with_salt(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Internal(err.to_string()))
}

/// Checks the length rule (in characters, not bytes).
pub fn check_password_rules(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&chars) {
        Ok(())
    } else {
        Err(PasswordError::Length)
    }
}

impl Passwords {
    /// A hasher running at most `concurrency` hashes at once. Computes the dummy hash once.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let dummy_hash = hash_blocking(b"oxvault dummy password, never valid")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password after checking the length rule.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        check_password_rules(password.expose_secret())?;
        self.hash_checked(password).await
    }

    /// Hashes a secret whose length rule the caller has already checked (a share's
    /// passphrase has its own, 1 to 1024 characters), with the same parameters and bounds.
    pub async fn hash_checked(&self, secret: SecretString) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(secret.expose_secret().as_bytes()))
            .await
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) it still does the work
    /// of a verify and answers `false`.
    pub async fn verify(
        &self,
        password: SecretString,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || {
                let argon2 = argon2()?;
                Ok(argon2
                    .verify_password(password.expose_secret().as_bytes(), hash.as_str())
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| PasswordError::Internal(err.to_string()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(op))
            .await
            .map_err(|err| PasswordError::Internal(err.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = Passwords::new(2).unwrap();
        let hash = passwords
            .hash(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify(
                    SecretString::from("correct horse battery"),
                    Some(hash.clone())
                )
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(SecretString::from("wrong horse battery"), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
        let passwords = Passwords::new(1).unwrap();
        assert!(
            !passwords
                .verify(
                    SecretString::from("oxvault dummy password, never valid"),
                    None
                )
                .await
                .unwrap()
        );
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_password_rules("short").is_err());
        assert!(check_password_rules(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_password_rules("eight ch").is_ok());
        assert!(check_password_rules("ünïcödé!").is_ok());
    }
}
