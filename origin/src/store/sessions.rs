//! Login sessions and their rotating refresh tokens, and the per-request check that a token's
//! principal is still what the token says.

use chrono::{DateTime, Utc};
use oxvault_core::claims::Role;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

#[tracing::instrument(skip(conn))]
pub async fn create_session(
    conn: &mut PgConnection,
    session_id: Uuid,
    user_id: Uuid,
    api_key_id: Option<Uuid>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO auth_sessions (id, user_id, api_key_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(api_key_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(skip(conn, token_hash))]
pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// First use of a live token in a live session: it is now spent.
    Fresh { session_id: Uuid, user_id: Uuid },
    /// The token was spent before (or its session is dead): the session has been revoked.
    /// Names the session's user, so the replay goes on that user's record.
    Replayed { session_id: Uuid, user_id: Uuid },
    /// No such token.
    Unknown,
}

/// Spends a refresh token. Marking it used is one conditional UPDATE, so two concurrent
/// presentations cannot both succeed; a token already spent revokes its whole session,
/// because someone other than its owner may be holding it.
#[tracing::instrument(skip(conn, token_hash))]
pub async fn use_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<RefreshUse, StoreError> {
    let fresh: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens r SET used_at = now() \
         FROM auth_sessions s \
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now() \
           AND s.id = r.session_id AND s.revoked_at IS NULL AND s.expires_at > now() \
         RETURNING s.id, s.user_id",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((session_id, user_id)) = fresh {
        return Ok(RefreshUse::Fresh {
            session_id,
            user_id,
        });
    }
    let known: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT r.session_id, s.user_id FROM refresh_tokens r \
         JOIN auth_sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    match known {
        Some((session_id, user_id)) => {
            revoke_session(conn, session_id).await?;
            Ok(RefreshUse::Replayed {
                session_id,
                user_id,
            })
        }
        None => Ok(RefreshUse::Unknown),
    }
}

#[tracing::instrument(skip(conn))]
pub async fn revoke_session(conn: &mut PgConnection, session_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE auth_sessions SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every session of a user except `keep`.
#[tracing::instrument(skip(conn))]
pub async fn revoke_other_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE auth_sessions SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live state of a user principal: one indexed lookup per request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserState {
    pub org_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub token_version: i64,
    /// Whether the session exists, is not revoked and has not expired.
    pub session_live: bool,
}

#[tracing::instrument(skip(conn))]
pub async fn user_state(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<UserState>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT u.org_id, u.role, u.token_version, \
                (s.id IS NOT NULL AND s.revoked_at IS NULL AND s.expires_at > now()) AS session_live \
         FROM users u LEFT JOIN auth_sessions s ON s.id = $2 AND s.user_id = u.id \
         WHERE u.id = $1",
    )
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(conn)
    .await?)
}
