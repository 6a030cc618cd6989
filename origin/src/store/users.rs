//! Users and organisations.

use chrono::{DateTime, Utc};
use oxvault_core::claims::Role;
use oxvault_core::page::TimeKey;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{StoreError, on_unique};

/// A user row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub google_sub: Option<String>,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
    /// When the owner of the address proved it (Google, or an invitation's mailed token).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// What a new user is made of.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub google_sub: Option<&'a str>,
    pub role: Role,
    /// Whether the address is already proven (Google said so).
    pub email_verified: bool,
}

const USER_COLUMNS: &str = "id, org_id, email, display_name, password_hash, google_sub, role, \
                            token_version, created_at, email_verified_at";

#[tracing::instrument(skip(conn))]
pub async fn insert_org(conn: &mut PgConnection, id: Uuid, name: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// The name of org `id`, if it exists (invitation mails name the org).
#[tracing::instrument(skip(conn))]
pub async fn org_name(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Inserts a user; a taken email is `Conflict("users_email_key")`.
#[tracing::instrument(skip(conn, user), fields(user_id = %user.id))]
pub async fn insert_user(conn: &mut PgConnection, user: &NewUser<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, org_id, email, display_name, password_hash, google_sub, role, \
                            email_verified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN now() END)",
    )
    .bind(user.id)
    .bind(user.org_id)
    .bind(user.email)
    .bind(user.display_name)
    .bind(user.password_hash)
    .bind(user.google_sub)
    .bind(user.role.as_str())
    .bind(user.email_verified)
    .execute(conn)
    .await
    .map_err(on_unique)?;
    Ok(())
}

#[tracing::instrument(skip(conn, email))]
pub async fn find_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(email)
        .fetch_optional(conn)
        .await?)
}

#[tracing::instrument(skip(conn))]
pub async fn find_by_google_sub(
    conn: &mut PgConnection,
    google_sub: &str,
) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE google_sub = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(google_sub)
        .fetch_optional(conn)
        .await?)
}

/// A user by id, whatever the org (for flows that start from a credential, not a caller).
#[tracing::instrument(skip(conn))]
pub async fn find_by_id(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_optional(conn)
        .await?)
}

/// A user of `org_id`; another org's user is `None`, like a missing one.
#[tracing::instrument(skip(conn))]
pub async fn find_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<UserRow>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND org_id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .bind(org_id)
        .fetch_optional(conn)
        .await?)
}

/// Up to `limit` users of an org, oldest first, after `after` (keyset on
/// `(created_at, id)`).
#[tracing::instrument(skip(conn))]
pub async fn list_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 \
           AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
         ORDER BY created_at, id LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Links a Google account to an existing user.
#[tracing::instrument(skip(conn))]
pub async fn set_google_sub(
    conn: &mut PgConnection,
    user_id: Uuid,
    google_sub: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET google_sub = $2, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(google_sub)
        .execute(conn)
        .await
        .map_err(on_unique)?;
    Ok(())
}

/// Replaces the password hash and bumps the token version, so every access token issued
/// before stops working at once.
#[tracing::instrument(skip(conn, password_hash))]
pub async fn set_password(
    conn: &mut PgConnection,
    user_id: Uuid,
    password_hash: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE users SET password_hash = $2, token_version = token_version + 1, \
         password_change_attempts = 0, password_change_window = NULL, \
         updated_at = now() WHERE id = $1 RETURNING token_version",
    )
    .bind(user_id)
    .bind(password_hash)
    .fetch_one(conn)
    .await?)
}

/// Changes a member's role and bumps the token version (the role is in the claims).
#[tracing::instrument(skip(conn))]
pub async fn set_role(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET role = $3, token_version = token_version + 1, updated_at = now() \
         WHERE id = $2 AND org_id = $1",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a user from the org (the user row goes, and with it their sessions and keys).
#[tracing::instrument(skip(conn))]
pub async fn delete_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM users WHERE id = $2 AND org_id = $1")
        .bind(org_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Locks the org's owner rows and counts them, so two concurrent demotions cannot both see
/// "another owner remains" and leave none.
#[tracing::instrument(skip(conn))]
pub async fn lock_owners(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM users WHERE org_id = $1 AND role = 'owner' ORDER BY id FOR UPDATE",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await?)
}

/// Takes an account over for the proven owner of its address: the password goes, the address
/// is marked verified, and the token version moves on (every access token dies). Sessions,
/// keys and agents are ended by their own stores. Returns the user as it now is.
#[tracing::instrument(skip(conn))]
pub async fn take_over(conn: &mut PgConnection, user_id: Uuid) -> Result<UserRow, StoreError> {
    let sql = format!(
        "UPDATE users SET password_hash = NULL, email_verified_at = now(), \
         token_version = token_version + 1, updated_at = now() WHERE id = $1 \
         RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_one(conn)
        .await?)
}

/// Moves a user into `org_id` with `role`, with the address proven; the token version moves
/// on (the org is in every token). Returns the user as it now is.
#[tracing::instrument(skip(conn))]
pub async fn move_to_org(
    conn: &mut PgConnection,
    user_id: Uuid,
    org_id: Uuid,
    role: Role,
) -> Result<UserRow, StoreError> {
    let sql = format!(
        "UPDATE users SET org_id = $2, role = $3, email_verified_at = COALESCE(email_verified_at, now()), \
         token_version = token_version + 1, updated_at = now() WHERE id = $1 \
         RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .bind(org_id)
        .bind(role.as_str())
        .fetch_one(conn)
        .await?)
}

/// What else an org holds besides `user_id`: other members, live vaults, active agents. An
/// org holding nothing can be left without loss.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct OrgHoldings {
    pub other_members: i64,
    pub vaults: i64,
    pub agents: i64,
}

#[tracing::instrument(skip(conn))]
pub async fn holdings(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<OrgHoldings, StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE org_id = $1 AND id <> $2) AS other_members, \
                (SELECT count(*) FROM vaults WHERE org_id = $1 AND deleted_at IS NULL) AS vaults, \
                (SELECT count(*) FROM agents WHERE org_id = $1 AND is_active) AS agents",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_one(conn)
    .await?)
}

/// Takes one password-change attempt of `user_id` in the current window of `window_secs`
/// (a new window starts when the last one is over), in one statement: SET sees the row as
/// it was, and the row lock makes concurrent attempts each take their own. `true` while at most `max` were taken in the window.
#[tracing::instrument(skip(conn))]
pub async fn take_password_change_attempt(
    conn: &mut PgConnection,
    user_id: Uuid,
    max: i32,
    window_secs: f64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE users SET \
           password_change_attempts = CASE WHEN password_change_window IS NULL \
             OR password_change_window <= now() - make_interval(secs => $3) \
             THEN 1 ELSE password_change_attempts + 1 END, \
           password_change_window = CASE WHEN password_change_window IS NULL \
             OR password_change_window <= now() - make_interval(secs => $3) \
             THEN now() ELSE password_change_window END \
         WHERE id = $1 RETURNING password_change_attempts <= $2",
    )
    .bind(user_id)
    .bind(max)
    .bind(window_secs)
    .fetch_optional(conn)
    .await?
    .unwrap_or(false))
}
