//! The mail outbox: messages written in the same transaction as the act that causes them,
//! and handed to SMTP by the delivery loop (`crate::mail`). Nothing here talks to SMTP.
//!
//! A row is pending (`sent_at` and `failed_at` NULL, due at `next_attempt_at`), sent
//! (`sent_at` set, body erased) or undeliverable (`failed_at` set, body erased, never due).

use std::fmt;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::StoreError;

/// Longest `last_error` kept: it is a short reason for operators, never message content.
const MAX_ERROR_LEN: usize = 200;

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub org_id: Option<Uuid>,
    /// What caused it: `share` or `invite`.
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    /// The fingerprint of the share whose link it carries, so revoking the share can cancel it.
    pub share_fingerprint: Option<&'a str>,
}

/// Queues `mail` on `conn`, which should be the transaction of the act that causes it: the
/// message then exists exactly when the act committed. Returns the message id.
#[tracing::instrument(skip_all, fields(kind = mail.kind))]
pub async fn enqueue(conn: &mut PgConnection, mail: &NewMail<'_>) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO mail_outbox (id, org_id, kind, recipient, subject, body_text, \
             share_fingerprint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(mail.org_id)
    .bind(mail.kind)
    .bind(mail.recipient)
    .bind(mail.subject)
    .bind(mail.body_text)
    .bind(mail.share_fingerprint)
    .execute(conn)
    .await?;
    Ok(id)
}

/// How much mail may be queued: to one address from anyone, per hour, so no org (nor many
/// orgs made for the purpose) can flood a person; and by one org, per day.
#[derive(Debug, Clone, Copy)]
pub struct MailQuota {
    pub per_recipient_per_hour: i64,
    pub per_org_per_day: i64,
}

impl MailQuota {
    /// What every act that mails (invitations, shares) is held to, together.
    pub const STANDARD: Self = Self {
        per_recipient_per_hour: 3,
        per_org_per_day: 100,
    };
}

/// Queues `mail` (see [`enqueue`]) if it fits `quota` for its org and recipient; else
/// `Ok(Err(seconds))`, when to try again, and nothing is queued.
pub async fn enqueue_within(
    conn: &mut PgConnection,
    mail: &NewMail<'_>,
    quota: MailQuota,
) -> Result<Result<Uuid, u64>, StoreError> {
    if let Some(org_id) = mail.org_id
        && let Err(retry_after) = check_quota(conn, org_id, mail.recipient, quota).await?
    {
        return Ok(Err(retry_after));
    }
    Ok(Ok(enqueue(conn, mail).await?))
}

/// Whether one more message to `recipient` from `org_id` fits `quota`; `Err(seconds)` says
/// when to try again. Takes a transaction-long lock on the address first, so concurrent
/// requests count each other's messages (call it in the transaction that enqueues).
#[tracing::instrument(skip(conn, recipient))]
pub async fn check_quota(
    conn: &mut PgConnection,
    org_id: Uuid,
    recipient: &str,
    quota: MailQuota,
) -> Result<Result<(), u64>, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('mail_outbox:' || $1, 0))")
        .bind(recipient)
        .execute(&mut *conn)
        .await?;
    let (to_recipient, from_org): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM mail_outbox \
                  WHERE recipient = $1 AND created_at > now() - interval '1 hour'), \
                (SELECT count(*) FROM mail_outbox \
                  WHERE org_id = $2 AND created_at > now() - interval '1 day')",
    )
    .bind(recipient)
    .bind(org_id)
    .fetch_one(conn)
    .await?;
    Ok(if to_recipient >= quota.per_recipient_per_hour {
        Err(3600)
    } else if from_org >= quota.per_org_per_day {
        Err(86_400)
    } else {
        Ok(())
    })
}

/// A pending message, claimed for delivery.
#[derive(Clone, sqlx::FromRow)]
pub struct QueuedMail {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    /// NULL only on a sent or failed row, which is never claimed; read as `Option` anyway so
    /// a hand-edited row cannot make the loop fail to decode.
    pub body_text: Option<String>,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// Only the id, kind and attempts: the recipient is personal data and the body may hold a
/// share link, a credential.
impl fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Claims the oldest due, pending message: its row stays locked until `conn`'s transaction
/// ends, and other delivery loops skip it (`SKIP LOCKED`) instead of waiting or sending it too.
///
/// One row per transaction on purpose: its outcome is committed right after its SMTP
/// exchange, so a crash re-sends at most that one message, and the lock (not a lease timer)
/// is what keeps every other process off it for as long as the sender lives.
#[tracing::instrument(skip_all)]
pub async fn claim_next(conn: &mut PgConnection) -> Result<Option<QueuedMail>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, kind, recipient, subject, body_text, attempts FROM mail_outbox \
         WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now() \
         ORDER BY next_attempt_at \
         LIMIT 1 \
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(conn)
    .await?)
}

/// Messages waiting to be sent (due or not, never the ones set aside), for the metrics: the
/// partial index on unsent rows keeps this a scan of the queue, not of the history.
pub async fn depth(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(pool)
    .await?)
}

/// Records a delivery: the SMTP server accepted the message. The body goes, since it may hold
/// a share link and nothing needs it any more.
#[tracing::instrument(skip(conn))]
pub async fn mark_sent(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mail_outbox SET sent_at = now(), body_text = NULL, last_error = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt that is worth repeating: `attempts` becomes the new count and the
/// message is due again after `delay`.
#[tracing::instrument(skip(conn))]
pub async fn mark_retry(
    conn: &mut PgConnection,
    id: Uuid,
    attempts: i32,
    delay: Duration,
    error: &str,
) -> Result<(), StoreError> {
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE mail_outbox \
         SET attempts = $2, next_attempt_at = now() + $3::bigint * interval '1 millisecond', \
             last_error = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(delay_ms)
    .bind(short(error))
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets a message aside for good: it can never be delivered. Never due again (`infinity`, so
/// even a loop that predates `failed_at` skips it), and its body is erased like a sent one's.
#[tracing::instrument(skip(conn))]
pub async fn mark_undeliverable(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mail_outbox \
         SET attempts = attempts + 1, failed_at = now(), next_attempt_at = 'infinity', \
             body_text = NULL, last_error = $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(short(error))
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels the unsent mail of the share with `fingerprint`: set aside like an undeliverable
/// message, its body (the link) erased. A message being sent right now holds its row: this
/// waits for it and then finds it sent. Returns how many messages were cancelled.
#[tracing::instrument(skip(conn))]
pub async fn cancel_share_mail(
    conn: &mut PgConnection,
    fingerprint: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE mail_outbox \
         SET failed_at = now(), next_attempt_at = 'infinity', body_text = NULL, \
             last_error = 'share revoked' \
         WHERE share_fingerprint = $1 AND sent_at IS NULL AND failed_at IS NULL",
    )
    .bind(fingerprint)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// `error` cut to [`MAX_ERROR_LEN`] characters (on a character boundary).
fn short(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_LEN) {
        Some((end, _)) => &error[..end],
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary() {
        assert_eq!(short("refused (451)"), "refused (451)");
        let long = "é".repeat(MAX_ERROR_LEN + 10);
        assert_eq!(short(&long).chars().count(), MAX_ERROR_LEN);
    }

    #[test]
    fn debug_output_names_neither_recipient_nor_body() {
        let mail = QueuedMail {
            id: Uuid::nil(),
            kind: "share".into(),
            recipient: "alice@example.com".into(),
            subject: "A secret was shared with you".into(),
            body_text: Some("https://vault.example.com/s/link".into()),
            attempts: 2,
        };
        let printed = format!("{mail:?}");
        assert!(!printed.contains("alice"), "{printed}");
        assert!(!printed.contains("/s/link"), "{printed}");
        assert!(printed.contains("share"), "{printed}");
    }
}
