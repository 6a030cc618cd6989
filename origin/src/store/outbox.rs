//! The mail outbox: messages written in the same transaction as the act that causes them,
//! and handed to SMTP by the delivery loop (`crate::mail`). Nothing here talks to SMTP.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    pub org_id: Option<Uuid>,
    /// What caused it: `share` or `invite`.
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
}

/// Queues `mail` on `conn`, which should be the transaction of the act that causes it: the
/// message then exists exactly when the act committed. Returns the message id.
#[tracing::instrument(skip_all, fields(kind = mail.kind))]
pub async fn enqueue(conn: &mut PgConnection, mail: &NewMail<'_>) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO mail_outbox (id, org_id, kind, recipient, subject, body_text) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(mail.org_id)
    .bind(mail.kind)
    .bind(mail.recipient)
    .bind(mail.subject)
    .bind(mail.body_text)
    .execute(conn)
    .await?;
    Ok(id)
}
