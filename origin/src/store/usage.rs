//! Billing usage: the metered requests (`usage_events`), an org's tier, and the counts of the
//! objects a tier limits.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::StoreError;

/// One metered request, as the meter buffers it and the table stores it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    /// Made when the request is metered: a retried batch inserts each row once.
    pub id: Uuid,
    pub org_id: Uuid,
    /// `user` or `agent`.
    pub principal_type: String,
    pub principal_id: Uuid,
    pub method: String,
    /// The route template, never the concrete path.
    pub endpoint: String,
    pub status_code: i16,
    pub created_at: DateTime<Utc>,
}

/// Inserts a batch in one statement (one round trip, one commit) and returns how many rows
/// were new. Rows already stored (a retry of a batch whose commit was not acknowledged) are
/// skipped by id.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn insert_batch(pool: &PgPool, rows: &[UsageRow]) -> Result<u64, StoreError> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut orgs = Vec::with_capacity(rows.len());
    let mut principal_types = Vec::with_capacity(rows.len());
    let mut principal_ids = Vec::with_capacity(rows.len());
    let mut methods = Vec::with_capacity(rows.len());
    let mut endpoints = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.id);
        orgs.push(row.org_id);
        principal_types.push(row.principal_type.as_str());
        principal_ids.push(row.principal_id);
        methods.push(row.method.as_str());
        endpoints.push(row.endpoint.as_str());
        statuses.push(row.status_code);
        times.push(row.created_at);
    }
    let done = sqlx::query(
        "INSERT INTO usage_events \
           (id, org_id, principal_type, principal_id, method, endpoint, status_code, created_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], \
                              $6::text[], $7::int2[], $8::timestamptz[]) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(ids)
    .bind(orgs)
    .bind(principal_types)
    .bind(principal_ids)
    .bind(methods)
    .bind(endpoints)
    .bind(statuses)
    .bind(times)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// An org's requests in one month: how many, and how many paid ones of each method class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct MonthTotals {
    pub total: i64,
    pub paid_reads: i64,
    pub paid_writes: i64,
}

/// Counts `org_id`'s requests in `[from, to)`, ranking them by (created_at, id): those ranked
/// past `free_limit` are paid, split by whether their method is one of `read_methods`.
///
/// One statement over one range of `usage_events_org_time_idx`, which is already in rank
/// order.
#[tracing::instrument(skip(conn, read_methods))]
pub async fn month_totals(
    conn: &mut PgConnection,
    org_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    free_limit: i64,
    read_methods: &[&str],
) -> Result<MonthTotals, StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*) AS total, \
                count(*) FILTER (WHERE rank > $4 AND method = ANY($5)) AS paid_reads, \
                count(*) FILTER (WHERE rank > $4 AND method <> ALL($5)) AS paid_writes \
         FROM (SELECT method, row_number() OVER (ORDER BY created_at, id) AS rank \
               FROM usage_events \
               WHERE org_id = $1 AND created_at >= $2 AND created_at < $3) AS month",
    )
    .bind(org_id)
    .bind(from)
    .bind(to)
    .bind(free_limit)
    .bind(read_methods)
    .fetch_one(conn)
    .await?)
}

/// `org_id`'s newest `limit` requests, newest first.
#[tracing::instrument(skip(conn))]
pub async fn newest(
    conn: &mut PgConnection,
    org_id: Uuid,
    limit: i64,
) -> Result<Vec<UsageRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, principal_type, principal_id, method, endpoint, status_code, \
                created_at \
         FROM usage_events WHERE org_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(org_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// How many of `org_id`'s requests came in `[from, row)` in rank order: the rank of `row` in
/// its month is this plus one.
#[tracing::instrument(skip(conn))]
pub async fn count_before(
    conn: &mut PgConnection,
    org_id: Uuid,
    from: DateTime<Utc>,
    created_at: DateTime<Utc>,
    id: Uuid,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM usage_events \
         WHERE org_id = $1 AND created_at >= $2 AND (created_at, id) < ($3, $4)",
    )
    .bind(org_id)
    .bind(from)
    .bind(created_at)
    .bind(id)
    .fetch_one(conn)
    .await?)
}

/// A read-only transaction that sees one snapshot for all its statements (rows committed
/// meanwhile stay invisible to it).
pub async fn begin_snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The org's tier name, if the org exists.
#[tracing::instrument(skip(conn))]
pub async fn tier_of(conn: &mut PgConnection, org_id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT billing_tier FROM organizations WHERE id = $1")
            .bind(org_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Locks the org's row until the transaction ends and returns its tier name (`None`: no such
/// org). Creates that count against a limit call this first, so the count they take next
/// cannot be overtaken by a concurrent create of the same org on any origin.
///
/// `FOR NO KEY UPDATE`, not `FOR UPDATE`: it still excludes every other limited create, but
/// not the `FOR KEY SHARE` lock that any insert referencing the org takes for its foreign key,
/// so sign-ins, secret reads and the like never wait behind a create.
#[tracing::instrument(skip(conn))]
pub async fn lock_org_tier(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar(
            "SELECT billing_tier FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(org_id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Live (not deleted) vaults of the org.
#[tracing::instrument(skip(conn))]
pub async fn count_live_vaults(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM vaults WHERE org_id = $1 AND deleted_at IS NULL")
            .bind(org_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Live secret paths of the org: not deleted, in a vault that is not deleted. Versions do not
/// count.
#[tracing::instrument(skip(conn))]
pub async fn count_live_secrets(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM secrets s JOIN vaults v ON v.id = s.vault_id \
         WHERE v.org_id = $1 AND v.deleted_at IS NULL AND s.deleted_at IS NULL",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await?)
}

/// Active (not deactivated) agents of the org.
#[tracing::instrument(skip(conn))]
pub async fn count_active_agents(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM agents WHERE org_id = $1 AND is_active")
            .bind(org_id)
            .fetch_one(conn)
            .await?,
    )
}
