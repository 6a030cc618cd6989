//! Invitations to join an org, redeemed at sign-up.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// An open invitation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invite {
    pub org_id: Uuid,
    pub role: String,
}

/// Creates (or replaces) the open invitation for `email`. Replacing keeps one open invite per
/// address, so sign-up always knows which org to join.
#[tracing::instrument(skip(conn, email))]
pub async fn upsert_invite(
    conn: &mut PgConnection,
    org_id: Uuid,
    email: &str,
    role: &str,
    invited_by: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM org_invites WHERE email = $1 AND accepted_at IS NULL")
        .bind(email)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO org_invites (id, org_id, email, role, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(org_id)
    .bind(email)
    .bind(role)
    .bind(invited_by)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the open, unexpired invitation for `email` accepted and returns it, in one
/// statement so two sign-ups cannot both redeem it.
#[tracing::instrument(skip(conn, email))]
pub async fn take_open_invite(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<Invite>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE org_invites SET accepted_at = now() \
         WHERE email = $1 AND accepted_at IS NULL AND expires_at > now() \
         RETURNING org_id, role",
    )
    .bind(email)
    .fetch_optional(conn)
    .await?)
}

/// Serialises invitations to `email` until the transaction ends (an advisory lock keyed by
/// the address), then returns the org of its open, unexpired invitation, if any.
///
/// The lock is what makes "check, then replace" safe: without it two orgs inviting the same
/// address at once would both see no invitation and one insert would hit the unique index.
#[tracing::instrument(skip(conn, email))]
pub async fn lock_open_invite(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<Uuid>, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('org_invites:' || $1, 0))")
        .bind(email)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT org_id FROM org_invites \
         WHERE email = $1 AND accepted_at IS NULL AND expires_at > now()",
    )
    .bind(email)
    .fetch_optional(conn)
    .await?)
}
