//! The delivery loop: claim a due message, hand it to SMTP, record the outcome, repeat until
//! nothing is due; then sleep for the poll interval (or until told to stop).
//!
//! Claim, send and mark happen inside one transaction per message, with the row locked
//! (`FOR UPDATE SKIP LOCKED`, see [`outbox::claim_next`]): while a process sends a message no
//! other process can claim it, and the outcome commits right after the SMTP exchange. So in
//! normal operation each message is sent once, even with many origins delivering.
//!
//! At-least-once, not exactly-once: if the process dies (or loses its database connection)
//! after the relay accepted a message but before the commit, the lock goes with the
//! connection, the row is still pending, and some loop sends it again. The Message-ID is
//! derived from the outbox id, so both copies carry the same one. Nothing is ever lost: a
//! message leaves the pending state only in the transaction that records its outcome.

use std::time::Duration;

use lettre::message::Mailbox;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

use super::message::{self, BuildError};
use super::smtp::Smtp;
use crate::store::StoreError;
use crate::store::outbox::{self, QueuedMail};

/// What the loop needs besides the pool.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub smtp: Smtp,
    pub from: Mailbox,
    /// Longest wait between two attempts of one message.
    pub retry_max: Duration,
    /// Sleep between rounds when nothing is due.
    pub poll: Duration,
}

/// How long a message waits after its `attempts`-th failure (1 or more): one second, doubled
/// per failure, at most `max`.
pub fn retry_delay(attempts: i32, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0);
    let delay = 1u64
        .checked_shl(exponent)
        .filter(|secs| *secs <= max.as_secs())
        .map_or(max, Duration::from_secs);
    delay.min(max)
}

/// Runs rounds until `stop` turns true (or its sender is gone). A stop is noticed between
/// messages, never in the middle of one: the message being sent gets its outcome recorded.
pub async fn run(pool: PgPool, delivery: Delivery, mut stop: watch::Receiver<bool>) {
    tracing::info!(
        poll_ms = u64::try_from(delivery.poll.as_millis()).unwrap_or(u64::MAX),
        "mail delivery started"
    );
    let mut outbox_down = false;
    loop {
        match round(&pool, &delivery, &stop).await {
            Ok(()) if outbox_down => {
                outbox_down = false;
                tracing::info!("the mail outbox is reachable again");
            }
            Ok(()) => {}
            // Logged once per outage, not once per poll.
            Err(err) if !outbox_down => {
                outbox_down = true;
                tracing::warn!(error = %err, "cannot read the mail outbox; mail waits");
            }
            Err(_) => {}
        }
        tokio::select! {
            // A dropped sender (Err) also means stop.
            _ = stop.wait_for(|stopping| *stopping) => break,
            () = tokio::time::sleep(delivery.poll) => {}
        }
    }
    tracing::info!("mail delivery stopped; unsent mail stays in the outbox");
}

/// Delivers due messages one by one until none is due or a stop is asked for.
async fn round(
    pool: &PgPool,
    delivery: &Delivery,
    stop: &watch::Receiver<bool>,
) -> Result<(), StoreError> {
    while !*stop.borrow() {
        let mut tx = pool.begin().await?;
        let Some(mail) = outbox::claim_next(&mut tx).await? else {
            return Ok(());
        };
        let sent = deliver(&mut tx, delivery, &mail).await?;
        if let Err(err) = tx.commit().await {
            if sent {
                // The at-least-once case: the row is still pending and will be sent again.
                tracing::error!(
                    mail_id = %mail.id, kind = %mail.kind, error = %err,
                    "a message was sent but could not be marked sent; it will be sent again"
                );
            }
            return Err(err.into());
        }
    }
    Ok(())
}

/// Sends one claimed message and records the outcome on `conn` (its claim's transaction).
/// Returns whether the relay accepted it.
async fn deliver(
    conn: &mut PgConnection,
    delivery: &Delivery,
    mail: &QueuedMail,
) -> Result<bool, StoreError> {
    let domain = message::recipient_domain(&mail.recipient);
    let built = match message::build(&delivery.from, mail) {
        Ok(built) => built,
        Err(err) => {
            let reason = match err {
                BuildError::Recipient => "the recipient address does not parse",
                BuildError::NoBody => "the message has no body",
                BuildError::Message => "the message could not be built",
            };
            outbox::mark_undeliverable(conn, mail.id, reason).await?;
            tracing::warn!(
                mail_id = %mail.id, kind = %mail.kind, reason,
                "mail set aside as undeliverable"
            );
            return Ok(false);
        }
    };
    match delivery.smtp.send(built).await {
        Ok(()) => {
            if let Err(err) = outbox::mark_sent(conn, mail.id).await {
                tracing::error!(
                    mail_id = %mail.id, kind = %mail.kind, error = %err,
                    "a message was sent but could not be marked sent; it will be sent again"
                );
                return Err(err);
            }
            tracing::info!(
                mail_id = %mail.id, kind = %mail.kind, recipient_domain = %domain,
                attempts = mail.attempts + 1, "mail sent"
            );
            Ok(true)
        }
        Err(failure) if failure.permanent => {
            outbox::mark_undeliverable(conn, mail.id, &failure.reason).await?;
            tracing::warn!(
                mail_id = %mail.id, kind = %mail.kind, recipient_domain = %domain,
                reason = %failure.reason, "mail set aside as undeliverable"
            );
            Ok(false)
        }
        Err(failure) => {
            let attempts = mail.attempts.saturating_add(1);
            let delay = retry_delay(attempts, delivery.retry_max);
            outbox::mark_retry(conn, mail.id, attempts, delay, &failure.reason).await?;
            tracing::warn!(
                mail_id = %mail.id, kind = %mail.kind, recipient_domain = %domain, attempts,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason = %failure.reason, "mail delivery failed; will retry"
            );
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn the_wait_starts_at_one_second_and_doubles() {
        let waits: Vec<u64> = (1..=6)
            .map(|attempts| retry_delay(attempts, FIVE_MINUTES).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32]);
    }

    #[test]
    fn the_wait_stops_growing_at_the_maximum() {
        assert_eq!(retry_delay(9, FIVE_MINUTES), Duration::from_secs(256));
        assert_eq!(retry_delay(10, FIVE_MINUTES), FIVE_MINUTES);
        assert_eq!(
            retry_delay(1, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            retry_delay(2, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn huge_or_odd_attempt_counts_neither_overflow_nor_panic() {
        assert_eq!(retry_delay(64, FIVE_MINUTES), FIVE_MINUTES);
        assert_eq!(retry_delay(i32::MAX, FIVE_MINUTES), FIVE_MINUTES);
        assert_eq!(retry_delay(0, FIVE_MINUTES), Duration::from_secs(1));
        assert_eq!(retry_delay(-5, FIVE_MINUTES), Duration::from_secs(1));
    }
}
