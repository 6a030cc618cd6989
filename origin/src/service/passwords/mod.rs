//! Password hashing with Argon2id at OWASP's parameters (19 MiB, t=2, p=1).
//!
//! Hashing costs ~15 ms of CPU and 19 MiB of memory, so it runs on the blocking pool and at
//! most `concurrency` hashes run at once: a burst of logins queues instead of exhausting
//! memory or starving the executor. Each of those slots keeps its 19 MiB between hashes
//! ([`argon::Workspace`]: cheaper per hash, and resident memory that does not jump with every
//! login), so the origin holds at most `concurrency` times 19 MiB for hashing, from the first
//! hash on. Unknown emails verify against a dummy hash, so "no such user" and "wrong password"
//! take the same time.

mod argon;

use std::sync::{Arc, Mutex, PoisonError};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use argon::Workspace;

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
    /// Working memory of the slots not hashing right now; never more than `permits` holds.
    idle: Arc<Mutex<Vec<Workspace>>>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
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
    /// A hasher running at most `concurrency` hashes at once. Computes the dummy hash once,
    /// in the first slot's working memory.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let mut workspace = Workspace::new()?;
        let dummy_hash = workspace.hash(b"oxvault dummy password, never valid")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            idle: Arc::new(Mutex::new(vec![workspace])),
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
        self.run(move |workspace| workspace.hash(secret.expose_secret().as_bytes()))
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
            .run(move |workspace| workspace.verify(password.expose_secret().as_bytes(), &hash))
            .await?;
        Ok(known && matches)
    }

    /// Runs `op` on the blocking pool under a permit, with an idle slot's working memory (or
    /// new memory, allocated there, the first time a slot is used).
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Workspace) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| PasswordError::Internal(err.to_string()))?;
        let idle = self.take_idle();
        let span = tracing::Span::current();
        let (result, workspace) = tokio::task::spawn_blocking(move || {
            let mut workspace = match idle {
                Some(workspace) => workspace,
                None => Workspace::new()?,
            };
            let result = span.in_scope(|| op(&mut workspace));
            Ok::<_, PasswordError>((result, workspace))
        })
        .await
        .map_err(|err| PasswordError::Internal(err.to_string()))??;
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(workspace);
        result
    }

    fn take_idle(&self) -> Option<Workspace> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hashes_share_at_most_one_workspace_per_slot() {
        let passwords = Passwords::new(2).unwrap();
        let hash = passwords
            .hash(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let (passwords, hash) = (passwords.clone(), hash.clone());
            checks.spawn(async move {
                let given = SecretString::from("correct horse battery");
                passwords.verify(given, Some(hash)).await.unwrap()
            });
        }
        while let Some(check) = checks.join_next().await {
            assert!(check.unwrap());
        }
        let idle = passwords.idle.lock().unwrap().len();
        assert!(
            (1..=2).contains(&idle),
            "{idle} workspaces kept for 2 slots"
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
