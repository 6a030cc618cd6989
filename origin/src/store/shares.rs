//! Share links. The read path is two statements: [`find_live`] (no side effect, for the
//! checks that must not use up a view: recipient, passphrase) and [`consume`], which re-checks
//! everything that can change and counts the read in one UPDATE. A passphrase guess is
//! counted by [`reserve_passphrase_attempt`] before it is hashed, and handed back by
//! [`refund_passphrase_attempt`] when it was right.
//!
//! Every statement that can open a share also checks its creator's standing (see
//! [`live`]): a link lives no longer than its maker's right to have made it.
//!
//! A share id is the credential of a link share, so no span here records one.
//!
//! Client addresses and allowlists are compared by PostgreSQL (`inet <<= cidr`): the address
//! is bound as text in canonical form (an IPv4-mapped IPv6 address as the IPv4 address), the
//! same form the blocks were stored in.

use chrono::{DateTime, Utc};
use oxvault_core::share::RecipientType;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use super::vaults::Creator;
use oxvault_core::page::TimeKey;

/// The secret a new share points at, found within the creator's org.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareTarget {
    pub secret_id: Uuid,
    pub vault_id: Uuid,
    pub path: String,
    /// The version the share will hand out.
    pub current_version: i32,
}

/// A live secret of `org_id` in a live vault; another org's secret is `None`, like a
/// missing one.
#[tracing::instrument(skip(conn))]
pub async fn find_target(
    conn: &mut PgConnection,
    org_id: Uuid,
    secret_id: Uuid,
) -> Result<Option<ShareTarget>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.id AS secret_id, s.vault_id, s.path, s.current_version FROM secrets s \
         JOIN vaults v ON v.id = s.vault_id AND v.deleted_at IS NULL \
         WHERE s.id = $1 AND s.org_id = $2 AND s.deleted_at IS NULL",
    )
    .bind(secret_id)
    .bind(org_id)
    .fetch_optional(conn)
    .await?)
}

/// What a new share row holds.
#[derive(Debug)]
pub struct NewShare<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub secret_id: Uuid,
    pub vault_id: Uuid,
    pub secret_version: i32,
    pub creator: Creator,
    pub recipient_type: RecipientType,
    pub recipient_user_id: Option<Uuid>,
    pub recipient_agent_id: Option<Uuid>,
    pub recipient_email: Option<&'a str>,
    /// The Argon2id hash, never the passphrase.
    pub passphrase_hash: Option<&'a str>,
    /// Blocks in canonical text form (`10.0.0.0/8`).
    pub ip_allowlist: Option<Vec<String>>,
    pub expires_at: DateTime<Utc>,
    pub max_access_count: Option<i32>,
}

/// Records a new share. An agent creator's current token version is recorded with it (in the
/// same statement), so that any later bump (deactivation, key rotation, new settings) ends the
/// link.
#[tracing::instrument(skip_all)]
pub async fn insert(conn: &mut PgConnection, share: &NewShare<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO shares (id, org_id, secret_id, vault_id, created_by_user, created_by_agent, \
           recipient_type, recipient_user_id, recipient_agent_id, recipient_email, \
           passphrase_hash, ip_allowlist, expires_at, max_access_count, secret_version, \
           creator_token_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::cidr[], $13, $14, $15, \
           (SELECT token_version FROM agents WHERE id = $6))",
    )
    .bind(share.id)
    .bind(share.org_id)
    .bind(share.secret_id)
    .bind(share.vault_id)
    .bind(share.creator.user)
    .bind(share.creator.agent)
    .bind(share.recipient_type.as_str())
    .bind(share.recipient_user_id)
    .bind(share.recipient_agent_id)
    .bind(share.recipient_email)
    .bind(share.passphrase_hash)
    .bind(share.ip_allowlist.as_deref())
    .bind(share.expires_at)
    .bind(share.max_access_count)
    .bind(share.secret_version)
    .execute(conn)
    .await?;
    Ok(())
}

/// A share that can be read right now, with what the read still has to check.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveShare {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub recipient_type: RecipientType,
    pub recipient_user_id: Option<Uuid>,
    pub recipient_agent_id: Option<Uuid>,
    pub passphrase_hash: Option<String>,
    /// Whether the client address given is allowed (always, with no allowlist).
    pub ip_allowed: bool,
    pub expires_at: DateTime<Utc>,
}

/// Wrong passphrases after which a share no longer opens for anyone.
pub const MAX_PASSPHRASE_FAILURES: i32 = 10;

/// The conditions of a readable share but its id and allowlist, on the shares table aliased
/// `sh`; shared by [`find_live`], [`consume`], [`reserve_passphrase_attempt`] and
/// [`list_live_in_org`] so that they cannot drift apart.
///
/// The creator's standing is part of it: a user creator must still be a member of the share's
/// org; an agent creator must be active, unexpired, of the same org, and hold the token version
/// it had when it made the share (the agent store bumps it on deactivation, key rotation and
/// every change of settings). A share whose creator lost standing is answered like a missing
/// one, and counts no view.
fn live() -> String {
    format!(
        "sh.revoked_at IS NULL AND sh.declined_at IS NULL \
         AND sh.expires_at > now() \
         AND sh.failed_passphrase_attempts < {MAX_PASSPHRASE_FAILURES} \
         AND (sh.max_access_count IS NULL OR sh.access_count < sh.max_access_count) \
         AND (EXISTS (SELECT 1 FROM users cu \
                      WHERE cu.id = sh.created_by_user AND cu.org_id = sh.org_id) \
              OR EXISTS (SELECT 1 FROM agents ca \
                         WHERE ca.id = sh.created_by_agent AND ca.org_id = sh.org_id \
                           AND ca.is_active AND (ca.expires_at IS NULL OR ca.expires_at > now()) \
                           AND ca.token_version = sh.creator_token_version))"
    )
}

/// Whether the client address bound as `$2` (text, or NULL when unknown, which no allowlist
/// admits) is in the share's allowlist; always true without one.
const IP_ALLOWED: &str =
    "(sh.ip_allowlist IS NULL OR COALESCE($2::inet <<= ANY (sh.ip_allowlist), false))";

/// The share `id` if it is readable now (not revoked, declined, expired or used up, and its
/// secret and vault still live); counts nothing. `client_ip` is the canonical text form.
#[tracing::instrument(skip_all)]
pub async fn find_live(
    conn: &mut PgConnection,
    id: Uuid,
    client_ip: Option<&str>,
) -> Result<Option<LiveShare>, StoreError> {
    let live = live();
    let sql = format!(
        "SELECT sh.id, sh.recipient_type, sh.recipient_user_id, sh.recipient_agent_id, \
                sh.passphrase_hash, {IP_ALLOWED} AS ip_allowed, sh.expires_at \
         FROM shares sh \
         JOIN secrets s ON s.id = sh.secret_id AND s.deleted_at IS NULL \
         JOIN vaults v ON v.id = sh.vault_id AND v.deleted_at IS NULL \
         WHERE sh.id = $1 AND {live}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(client_ip)
        .fetch_optional(conn)
        .await?)
}

/// A read counted by [`consume`].
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Consumed {
    pub org_id: Uuid,
    pub secret_id: Uuid,
    pub vault_id: Uuid,
    /// The version to hand out; `None` (older shares): the current one.
    pub secret_version: Option<i32>,
    /// Reads so far, this one included.
    pub access_count: i32,
    pub max_access_count: Option<i32>,
}

/// Counts one read of share `id` if it is still readable from `client_ip`, in one
/// statement: the check against `max_access_count` and the increment cannot interleave with
/// another reader's (a concurrent reader waits for this row, then re-checks the count this
/// one left). `None`: not readable. The count is undone if the transaction rolls back.
///
/// One table is updated, so PostgreSQL's re-check of a row another reader updated meanwhile
/// sees every condition on the new row (see `store::secrets::lock`); the creator's standing is
/// read from the statement's snapshot.
#[tracing::instrument(skip_all)]
pub async fn consume(
    conn: &mut PgConnection,
    id: Uuid,
    client_ip: Option<&str>,
) -> Result<Option<Consumed>, StoreError> {
    let live = live();
    let sql = format!(
        "UPDATE shares sh SET access_count = sh.access_count + 1 \
         WHERE sh.id = $1 AND {live} AND {IP_ALLOWED} \
         RETURNING sh.org_id, sh.secret_id, sh.vault_id, sh.secret_version, sh.access_count, \
                   sh.max_access_count"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(client_ip)
        .fetch_optional(conn)
        .await?)
}

/// Takes one of share `id`'s passphrase attempts before the guess is hashed: counts it as a
/// failure at once, if the share is still readable from `client_ip` and has attempts left,
/// and returns the hash to check against. `None`: no attempt left (or not readable).
///
/// One UPDATE, so concurrent guesses queue on the row and each re-checks the count the one
/// before left: at most [`MAX_PASSPHRASE_FAILURES`] guesses are ever evaluated, however many
/// arrive at once. A right guess is handed back with [`refund_passphrase_attempt`].
#[tracing::instrument(skip_all)]
pub async fn reserve_passphrase_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    client_ip: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let live = live();
    let sql = format!(
        "UPDATE shares sh SET failed_passphrase_attempts = sh.failed_passphrase_attempts + 1 \
         WHERE sh.id = $1 AND sh.passphrase_hash IS NOT NULL AND {live} AND {IP_ALLOWED} \
         RETURNING sh.passphrase_hash"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(client_ip)
        .fetch_optional(conn)
        .await?)
}

/// Hands back the attempt [`reserve_passphrase_attempt`] took for a guess that was right.
#[tracing::instrument(skip_all)]
pub async fn refund_passphrase_attempt(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE shares SET failed_passphrase_attempts = failed_passphrase_attempts - 1 \
         WHERE id = $1 AND failed_passphrase_attempts > 0",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The path of a live secret in a live vault of `vault_id` (what a counted share read then
/// opens); `None` when either was deleted.
#[tracing::instrument(skip(conn))]
pub async fn live_path(
    conn: &mut PgConnection,
    vault_id: Uuid,
    secret_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT s.path FROM secrets s \
         JOIN vaults v ON v.id = s.vault_id AND v.deleted_at IS NULL \
         WHERE s.id = $1 AND s.vault_id = $2 AND s.deleted_at IS NULL",
    )
    .bind(secret_id)
    .bind(vault_id)
    .fetch_optional(conn)
    .await?)
}

/// Who may manage (revoke) a share.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct ShareOwner {
    pub org_id: Uuid,
    pub created_by_user: Option<Uuid>,
    pub created_by_agent: Option<Uuid>,
}

#[tracing::instrument(skip_all)]
pub async fn find_owner(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ShareOwner>, StoreError> {
    Ok(
        sqlx::query_as(
            "SELECT org_id, created_by_user, created_by_agent FROM shares WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Revokes a share for good; revoking it again changes nothing.
#[tracing::instrument(skip_all)]
pub async fn revoke(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE shares SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A share as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SummaryRow {
    pub id: Uuid,
    pub secret_path: String,
    #[sqlx(try_from = "String")]
    pub recipient_type: RecipientType,
    pub recipient_email: Option<String>,
    pub access_count: i32,
    pub max_access_count: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub is_expired: bool,
    pub is_accepted: bool,
}

const SUMMARY: &str = "SELECT sh.id, s.path AS secret_path, sh.recipient_type, \
                         sh.recipient_email, sh.access_count, sh.max_access_count, \
                         sh.expires_at, sh.created_at, sh.expires_at <= now() AS is_expired, \
                         sh.accepted_at IS NOT NULL AS is_accepted \
                       FROM shares sh JOIN secrets s ON s.id = sh.secret_id";

/// Up to `limit` of the shares `creator` made and has not revoked, newest first, after
/// `after` (keyset on `(created_at, id)`).
#[tracing::instrument(skip(conn))]
pub async fn list_outbound(
    conn: &mut PgConnection,
    creator: Creator,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<SummaryRow>, StoreError> {
    let sql = format!(
        "{SUMMARY} WHERE sh.revoked_at IS NULL \
           AND (sh.created_by_user = $1 OR sh.created_by_agent = $2) \
           AND ($3::timestamptz IS NULL OR (sh.created_at, sh.id) < ($3, $4)) \
         ORDER BY sh.created_at DESC, sh.id DESC LIMIT $5"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(creator.user)
        .bind(creator.agent)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// A live share as an org's owners and admins see it: who made it, for whom, until when and
/// how often read; never a value, a passphrase hash or an allowlist's blocks.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgShareRow {
    pub id: Uuid,
    pub secret_id: Uuid,
    pub vault_id: Uuid,
    pub secret_path: String,
    pub created_by_user: Option<Uuid>,
    pub created_by_agent: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub recipient_type: RecipientType,
    pub recipient_user_id: Option<Uuid>,
    pub recipient_agent_id: Option<Uuid>,
    pub recipient_email: Option<String>,
    pub has_passphrase: bool,
    pub has_ip_allowlist: bool,
    pub access_count: i32,
    pub max_access_count: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Up to `limit` of `org_id`'s shares that can be read now (by the same rules as a read, the
/// creator's standing included, but for the client's address), newest first, after `after`.
/// Paged by keyset on `(created_at, id)`, so shares made meanwhile neither shift nor repeat
/// the pages.
#[tracing::instrument(skip(conn))]
pub async fn list_live_in_org(
    conn: &mut PgConnection,
    org_id: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<OrgShareRow>, StoreError> {
    let live = live();
    let sql = format!(
        "SELECT sh.id, sh.secret_id, sh.vault_id, s.path AS secret_path, sh.created_by_user, \
                sh.created_by_agent, sh.recipient_type, sh.recipient_user_id, \
                sh.recipient_agent_id, sh.recipient_email, \
                sh.passphrase_hash IS NOT NULL AS has_passphrase, \
                sh.ip_allowlist IS NOT NULL AS has_ip_allowlist, sh.access_count, \
                sh.max_access_count, sh.expires_at, sh.created_at \
         FROM shares sh \
         JOIN secrets s ON s.id = sh.secret_id AND s.deleted_at IS NULL \
         JOIN vaults v ON v.id = sh.vault_id AND v.deleted_at IS NULL \
         WHERE sh.org_id = $1 AND {live} \
           AND ($2::timestamptz IS NULL OR (sh.created_at, sh.id) < ($2, $3)) \
         ORDER BY sh.created_at DESC, sh.id DESC \
         LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Who a share is addressed to: a user or an agent by id, or an outside address (stored on
/// `external_email` shares only; listings and responses never match by it).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecipientKey<'a> {
    pub user: Option<Uuid>,
    pub agent: Option<Uuid>,
    pub email: Option<&'a str>,
}

/// Matches the shares addressed to the recipient bound as `$n`, `$n+1` (user id, agent id;
/// NULL matches nothing). Never by email: sign-up does not prove an address, so an account
/// with someone's address must not see (or decline) the links mailed to them.
fn addressed(n: usize) -> String {
    format!(
        "(sh.recipient_user_id = ${n} OR sh.recipient_agent_id = ${})",
        n + 1
    )
}

/// Up to `limit` of the shares addressed to `recipient` that are neither revoked nor
/// declined, newest first, after `after` (keyset on `(created_at, id)`).
#[tracing::instrument(skip(conn, recipient))]
pub async fn list_inbound(
    conn: &mut PgConnection,
    recipient: RecipientKey<'_>,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<SummaryRow>, StoreError> {
    let sql = format!(
        "{SUMMARY} WHERE sh.revoked_at IS NULL AND sh.declined_at IS NULL AND {} \
           AND ($3::timestamptz IS NULL OR (sh.created_at, sh.id) < ($3, $4)) \
         ORDER BY sh.created_at DESC, sh.id DESC LIMIT $5",
        addressed(1)
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(recipient.user)
        .bind(recipient.agent)
        .bind(after.map(|a| a.created_at))
        .bind(after.map(|a| a.id))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// What [`respond`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Recorded (or already so).
    Done,
    /// Accepting a share its recipient had declined.
    AlreadyDeclined,
    /// No such share addressed to this recipient, or it was revoked.
    NotFound,
}

/// Records the recipient's acceptance (`accept`) or refusal of share `id`. A declined share
/// can no longer be read, nor accepted again.
#[tracing::instrument(skip_all)]
pub async fn respond(
    conn: &mut PgConnection,
    id: Uuid,
    recipient: RecipientKey<'_>,
    accept: bool,
) -> Result<Response, StoreError> {
    let sql = format!(
        "UPDATE shares sh SET \
           accepted_at = CASE WHEN $4 THEN COALESCE(sh.accepted_at, now()) ELSE sh.accepted_at END, \
           declined_at = CASE WHEN $4 THEN sh.declined_at ELSE COALESCE(sh.declined_at, now()) END \
         WHERE sh.id = $1 AND sh.revoked_at IS NULL AND {} \
           AND ($4 = false OR sh.declined_at IS NULL) \
         RETURNING sh.id",
        addressed(2)
    );
    let updated: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(recipient.user)
        .bind(recipient.agent)
        .bind(accept)
        .fetch_optional(&mut *conn)
        .await?;
    if updated.is_some() {
        return Ok(Response::Done);
    }
    // Told apart only for the recipient themself: the same filter, without the state.
    let sql = format!(
        "SELECT sh.declined_at IS NOT NULL FROM shares sh \
         WHERE sh.id = $1 AND sh.revoked_at IS NULL AND {}",
        addressed(2)
    );
    let declined: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(recipient.user)
        .bind(recipient.agent)
        .fetch_optional(conn)
        .await?;
    Ok(match declined {
        Some(true) => Response::AlreadyDeclined,
        _ => Response::NotFound,
    })
}
