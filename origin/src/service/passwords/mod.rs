//! Password hashing with Argon2id at OWASP's parameters (19 MiB, t=2, p=1).
//!
//! A hash costs ~15 ms of one core and 19 MiB of memory. It runs on one of `concurrency`
//! hashing threads of its own (slots), never on the async executor or its blocking pool:
//! - A burst of logins queues for a slot instead of exhausting memory or the cores.
//! - The slots run at a lower priority (nice [`HASHING_NICE`]) than the threads that serve
//!   requests: a flood of logins takes the CPU that secret reads leave over, rather than
//!   an equal share of it, and a login on an idle origin is as fast as before.
//! - Each slot keeps its 19 MiB from its first hash on ([`argon::Workspace`]): cheaper per
//!   hash, and resident memory that does not jump with every login. The origin holds at most
//!   `concurrency` times 19 MiB for hashing.
//!
//! Unknown emails verify against a dummy hash, so "no such user" and "wrong password" take
//! the same time.

mod argon;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};

use argon::Workspace;

/// Shortest password accepted (NIST SP 800-63B asks for at least 8).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: bounds the work one request can ask for.
pub const MAX_PASSWORD_LEN: usize = 256;

/// The hashing threads' nice value. Under Linux's scheduler a thread at nice 10 weighs about
/// a tenth of one at 0: it still gets a whole core when nothing else wants it.
pub const HASHING_NICE: i32 = 10;

/// Why a password operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    Length,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Work for a slot: runs with the slot's memory (none before its first hash, or after a
/// hash panicked) and answers through a channel of its own.
type Job = Box<dyn FnOnce(&mut Option<Workspace>) + Send>;

/// The password hasher; cheap to clone. The slots stop when the last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
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
    /// A hasher with `concurrency` slots (at least one). Computes the dummy hash once, in the
    /// first slot's memory.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let mut workspace = Workspace::new()?;
        let dummy_hash = workspace.hash(b"oxvault dummy password, never valid")?;
        let slots = concurrency.max(1);
        let (jobs, queue) = mpsc::channel::<Job>(slots);
        let queue = Arc::new(Mutex::new(queue));
        let mut first = Some(workspace);
        for index in 0..slots {
            let (queue, workspace) = (Arc::clone(&queue), first.take());
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || serve_slot(&queue, workspace))
                .map_err(|err| PasswordError::Internal(format!("hashing thread: {err}")))?;
        }
        Ok(Self {
            jobs,
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

    /// Runs `op` on the next free slot and waits for its answer.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Workspace) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (answer, answered) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |slot| {
            // The caller may have gone (a client hung up): nobody to tell, nothing lost.
            let _ = answer.send(span.in_scope(|| run_in_slot(slot, op)));
        });
        let stopped = || PasswordError::Internal("the hashing threads have stopped".to_owned());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// A slot's thread: lowers its own priority, then runs jobs until every sender is gone.
fn serve_slot(queue: &Mutex<mpsc::Receiver<Job>>, workspace: Option<Workspace>) {
    lower_priority();
    let mut workspace = workspace;
    loop {
        // One idle slot waits on the queue while the others wait for the lock; the lock is
        // released before the job runs.
        let next = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match next {
            Some(job) => job(&mut workspace),
            None => return,
        }
    }
}

/// Runs `op` with the slot's memory, made on first use. A panic is caught so that the slot
/// lives on; its memory is dropped (wiped) and made again for the next hash.
fn run_in_slot<T>(
    slot: &mut Option<Workspace>,
    op: impl FnOnce(&mut Workspace) -> Result<T, PasswordError>,
) -> Result<T, PasswordError> {
    let workspace = match slot {
        Some(workspace) => workspace,
        None => slot.insert(Workspace::new()?),
    };
    std::panic::catch_unwind(AssertUnwindSafe(|| op(workspace))).unwrap_or_else(|_| {
        *slot = None;
        Err(PasswordError::Internal(
            "password hashing panicked".to_owned(),
        ))
    })
}

/// Sets the calling thread's nice value to [`HASHING_NICE`]. Linux applies `setpriority` on
/// a thread id to that thread alone; elsewhere it would apply to the whole process, so other
/// systems keep the default priority. A refusal is logged and hashing goes on.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(err) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE)
    {
        tracing::warn!(error = %err, "could not lower the hashing thread's priority");
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

    /// The calling thread's name and nice value, from `/proc/thread-self`.
    #[cfg(target_os = "linux")]
    fn this_threads_name_and_nice() -> (String, i64) {
        let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The fields after the command's closing parenthesis start at the third; nice is
        // the nineteenth.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        (name.trim().to_owned(), nice)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_run_on_their_own_threads_below_normal_priority() {
        let passwords = Passwords::new(3).unwrap();
        let mut jobs = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let passwords = passwords.clone();
            jobs.spawn(async move {
                passwords
                    .run(|workspace| {
                        workspace.hash(b"correct horse battery")?;
                        Ok(this_threads_name_and_nice())
                    })
                    .await
                    .unwrap()
            });
        }
        while let Some(job) = jobs.join_next().await {
            let (name, nice) = job.unwrap();
            assert!(name.starts_with("argon2-"), "{name}");
            assert_eq!(nice, i64::from(HASHING_NICE), "{name}");
        }
    }

    #[tokio::test]
    async fn a_panic_in_a_slot_is_an_error_and_the_slot_hashes_again() {
        let passwords = Passwords::new(1).unwrap();
        let panicked = passwords
            .run(|_: &mut Workspace| -> Result<(), PasswordError> { panic!("test panic") })
            .await;
        assert!(matches!(panicked, Err(PasswordError::Internal(_))));
        let hash = passwords
            .hash(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        let given = SecretString::from("correct horse battery");
        assert!(passwords.verify(given, Some(hash)).await.unwrap());
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_password_rules("short").is_err());
        assert!(check_password_rules(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_password_rules("eight ch").is_ok());
        assert!(check_password_rules("ünïcödé!").is_ok());
    }
}
