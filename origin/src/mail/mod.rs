//! Outgoing mail: the loop that delivers the outbox over SMTP.
//!
//! Services never send mail. They queue it with [`crate::store::outbox::enqueue`] inside the
//! transaction of the act that causes it (an invitation, a share with an outside address),
//! so a message exists exactly when its act committed. [`MailDelivery`] runs beside the HTTP
//! server and hands queued messages to the relay in `OXVAULT_SMTP_URL`, retrying with backoff
//! while it refuses; see [`delivery`] for why no message is sent twice in normal operation.
//!
//! - [`message`]: an outbox row as a typed RFC 5322 message (no header injection).
//! - [`smtp`]: lettre's async SMTP transport and what its failures mean.
//! - [`delivery`]: the loop, its backoff, and the claim/send/mark protocol.

pub mod delivery;
pub mod message;
pub mod smtp;

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::MailConfig;
use delivery::Delivery;
use smtp::{SEND_TIMEOUT, Smtp};

/// The mail settings cannot work.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    #[error(transparent)]
    SmtpUrl(#[from] smtp::InvalidSmtpUrl),
    #[error("OXVAULT_MAIL_FROM is not a valid mailbox (e.g. `oxvault <no-reply@vault.example>`)")]
    From,
}

/// The running delivery loop (or nothing, when no relay is configured).
#[derive(Debug)]
pub struct MailDelivery {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MailDelivery {
    /// Starts the loop on the current runtime. Without `OXVAULT_SMTP_URL` it says so once and
    /// runs nothing: mail stays queued until an origin with a relay starts. A URL or sender
    /// that cannot work is an error, so a misconfigured origin does not start.
    pub fn start(pool: PgPool, config: &MailConfig) -> Result<Self, MailSetupError> {
        let (stop, stopping) = watch::channel(false);
        let Some(url) = &config.smtp_url else {
            tracing::warn!("OXVAULT_SMTP_URL is not set: mail stays queued in the outbox, unsent");
            return Ok(Self { stop, task: None });
        };
        let delivery = Delivery {
            smtp: Smtp::from_url(url)?,
            from: message::parse_sender(&config.from).map_err(|_| MailSetupError::From)?,
            retry_max: config.retry_max,
            poll: config.poll,
        };
        let task = tokio::spawn(delivery::run(pool, delivery, stopping));
        Ok(Self {
            stop,
            task: Some(task),
        })
    }

    /// Asks the loop to stop and waits for it: it finishes the message in hand (bounded by
    /// the SMTP timeout) and sends no more. Unsent mail stays in the outbox for the next start.
    pub async fn stop(self) {
        // A loop that already ended has dropped its receiver; nothing to tell.
        let _ = self.stop.send(true);
        let Some(task) = self.task else {
            return;
        };
        let abort = task.abort_handle();
        match tokio::time::timeout(SEND_TIMEOUT + Duration::from_secs(5), task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "the mail delivery task failed"),
            Err(_) => {
                // Its transaction rolls back: the message stays pending and is sent later.
                abort.abort();
                tracing::warn!("mail delivery did not stop in time; aborted");
            }
        }
    }
}
