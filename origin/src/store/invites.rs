//! Invitations to join an org, redeemed with the token their mail carries.

use chrono::{DateTime, Utc};
use oxvault_core::claims::Role;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

/// An open invitation, as its token finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invite {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// What a new invitation is made of.
#[derive(Debug)]
pub struct NewInvite<'a> {
    pub org_id: Uuid,
    pub email: &'a str,
    pub role: Role,
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
    /// SHA-256 of the token the mail carries; the token itself is stored nowhere.
    pub token_hash: &'a [u8],
}

/// Records `invite`, replacing the org's own open invitation for the address (its token stops
/// working). Other orgs' invitations to the address are left alone.
#[tracing::instrument(skip(conn, invite), fields(org_id = %invite.org_id))]
pub async fn replace_invite(
    conn: &mut PgConnection,
    invite: &NewInvite<'_>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM org_invites WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL")
        .bind(invite.org_id)
        .bind(invite.email)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO org_invites (id, org_id, email, role, invited_by, expires_at, token_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::new_v4())
    .bind(invite.org_id)
    .bind(invite.email)
    .bind(invite.role.as_str())
    .bind(invite.invited_by)
    .bind(invite.expires_at)
    .bind(invite.token_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the open, unexpired invitation whose token hashes to `token_hash` accepted by
/// `user_id` and returns it, in one statement, so a token redeems at most once.
#[tracing::instrument(skip(conn, token_hash))]
pub async fn redeem(
    conn: &mut PgConnection,
    token_hash: &[u8],
    user_id: Uuid,
) -> Result<Option<Invite>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE org_invites SET accepted_at = now(), accepted_by = $2 \
         WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > now() \
         RETURNING id, org_id, email, role",
    )
    .bind(token_hash)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}
