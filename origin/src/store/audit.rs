//! The audit trail's rows and chain heads. Appends come in batches from the appender
//! (`service::audit::log`): one transaction locks the heads of the batch's chains, stores its
//! events and moves the heads. The head rows' locks order appends to one chain across every
//! origin process.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::StoreError;

/// A chain's last link: its sequence number and MAC (0 and all zeros for an empty chain).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChainHead {
    pub seq: i64,
    pub mac: Vec<u8>,
}

/// An event as stored, every field covered by its MAC.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub chain_id: Uuid,
    pub seq: i64,
    pub org_id: Option<Uuid>,
    pub action: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub details: sqlx::types::Json<serde_json::Value>,
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
    pub prev_mac: Vec<u8>,
    pub mac: Vec<u8>,
    /// 1: `mac` is the event's own HMAC (events stored before seals); 2: `mac` is a SHA-256
    /// link, vouched for by the next seal of its chain.
    pub link_scheme: i16,
    /// The seal that covers this event (the last of its chain in a batch), if any.
    pub seal_id: Option<Uuid>,
}

/// One HMAC in the HSM over the last event of each chain a batch touched (migration 17).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// (chain_id, seq, mac) of each sealed event, 56 bytes each, in chain_id order.
    pub entries: Vec<u8>,
    pub mac: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct HeadRow {
    chain_id: Uuid,
    seq: i64,
    mac: Vec<u8>,
}

/// Locks the heads of `chain_ids` until the transaction ends, creating empty ones (`seq` 0,
/// `empty_mac`) on first use, and returns them by chain.
///
/// One statement: `ON CONFLICT DO UPDATE` locks an existing head as `FOR UPDATE` would and
/// returns it. The ids are locked in sorted order, so two appenders (in one process or
/// several) that need overlapping chains always take the locks in the same order and never
/// wait on each other in a cycle.
#[tracing::instrument(skip_all, fields(chains = chain_ids.len()))]
pub async fn lock_heads(
    conn: &mut PgConnection,
    chain_ids: &BTreeSet<Uuid>,
    empty_mac: &[u8],
) -> Result<HashMap<Uuid, ChainHead>, StoreError> {
    let ids: Vec<Uuid> = chain_ids.iter().copied().collect();
    let rows: Vec<HeadRow> = sqlx::query_as(
        "INSERT INTO audit_chain_heads (chain_id, seq, mac) \
         SELECT id, 0, $2 FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n) ORDER BY n \
         ON CONFLICT (chain_id) DO UPDATE SET seq = audit_chain_heads.seq \
         RETURNING chain_id, seq, mac",
    )
    .bind(&ids)
    .bind(empty_mac)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let head = ChainHead {
                seq: row.seq,
                mac: row.mac,
            };
            (row.chain_id, head)
        })
        .collect())
}

/// One field of every event, as an array parameter.
fn column<'a, T>(events: &'a [EventRow], field: impl Fn(&'a EventRow) -> T) -> Vec<T> {
    events.iter().map(field).collect()
}

/// Inserts the events bound as `$1` to `$16` (see [`bind_events`]).
const INSERT_EVENTS: &str = "INSERT INTO audit_events (id, chain_id, seq, org_id, action, \
        actor_type, actor_id, resource_type, resource_id, details, ip_address, created_at, \
        prev_mac, mac, link_scheme, seal_id) \
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::text[], \
        $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::text[], \
        $12::timestamptz[], $13::bytea[], $14::bytea[], $15::int2[], $16::uuid[])";

/// Inserts the seal bound as `$17` to `$20` (see [`bind_seal`]).
const INSERT_SEAL: &str = "INSERT INTO audit_seals (id, created_at, entries, mac) \
    VALUES ($17, $18, $19, $20)";

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds every field of `events` as the arrays `$1` to `$16` of [`INSERT_EVENTS`].
fn bind_events<'q>(query: PgQuery<'q>, events: &'q [EventRow]) -> PgQuery<'q> {
    query
        .bind(column(events, |e| e.id))
        .bind(column(events, |e| e.chain_id))
        .bind(column(events, |e| e.seq))
        .bind(column(events, |e| e.org_id))
        .bind(column(events, |e| e.action.as_str()))
        .bind(column(events, |e| e.actor_type.as_str()))
        .bind(column(events, |e| e.actor_id.as_deref()))
        .bind(column(events, |e| e.resource_type.as_str()))
        .bind(column(events, |e| e.resource_id.as_deref()))
        .bind(column(events, |e| &e.details))
        .bind(column(events, |e| e.ip_address.as_deref()))
        .bind(column(events, |e| e.created_at))
        .bind(column(events, |e| e.prev_mac.as_slice()))
        .bind(column(events, |e| e.mac.as_slice()))
        .bind(column(events, |e| e.link_scheme))
        .bind(column(events, |e| e.seal_id))
}

/// Binds `seal` as `$17` to `$20` of [`INSERT_SEAL`].
fn bind_seal<'q>(query: PgQuery<'q>, seal: &'q SealRow) -> PgQuery<'q> {
    query
        .bind(seal.id)
        .bind(seal.created_at)
        .bind(seal.entries.as_slice())
        .bind(seal.mac.as_slice())
}

/// Binds the new heads (chain, seq, MAC) as the arrays `$21` to `$23`.
fn bind_heads<'q>(query: PgQuery<'q>, heads: &'q BTreeMap<Uuid, ChainHead>) -> PgQuery<'q> {
    query
        .bind(heads.keys().copied().collect::<Vec<_>>())
        .bind(heads.values().map(|head| head.seq).collect::<Vec<_>>())
        .bind(
            heads
                .values()
                .map(|head| head.mac.as_slice())
                .collect::<Vec<_>>(),
        )
}

/// The last event of each chain in `events`: the chain's new head.
pub fn new_heads(events: &[EventRow]) -> BTreeMap<Uuid, ChainHead> {
    let mut heads = BTreeMap::new();
    for event in events {
        let head = ChainHead {
            seq: event.seq,
            mac: event.mac.clone(),
        };
        heads.insert(event.chain_id, head);
    }
    heads
}

/// Stores `events` with their `seal` and moves each chain's head to its last event, in one
/// statement. The heads must be locked ([`lock_heads`]) by the same transaction, and `events`
/// must continue each chain from its head in order (the appender builds them so).
#[tracing::instrument(skip_all, fields(events = events.len()))]
pub async fn append_all(
    conn: &mut PgConnection,
    events: &[EventRow],
    seal: &SealRow,
) -> Result<(), StoreError> {
    let heads = new_heads(events);
    let sql = format!(
        "WITH appended AS ({INSERT_EVENTS}), sealed AS ({INSERT_SEAL}) \
         UPDATE audit_chain_heads h SET seq = t.seq, mac = t.mac \
         FROM unnest($21::uuid[], $22::int8[], $23::bytea[]) AS t(chain_id, seq, mac) \
         WHERE h.chain_id = t.chain_id"
    );
    let query = bind_seal(bind_events(sqlx::query(AssertSqlSafe(sql)), events), seal);
    bind_heads(query, &heads).execute(conn).await?;
    Ok(())
}

/// Stores `events` with their `seal` in one statement (and so one implicit transaction),
/// moving each chain's head only if it still stands at `expected` (chain -> seq): a
/// compare-and-swap of the heads with the events. `Ok(false)`, with nothing stored, when any
/// head had moved (another origin appended meanwhile); the caller then locks the heads and
/// links again.
#[tracing::instrument(skip_all, fields(events = events.len()))]
pub async fn append_if_current(
    conn: &mut PgConnection,
    events: &[EventRow],
    seal: &SealRow,
    expected: &BTreeMap<Uuid, i64>,
) -> Result<bool, StoreError> {
    let heads = new_heads(events);
    // `audit_require_moved` raises when a head had moved, which undoes the whole statement,
    // the seal's insert included.
    let sql = format!(
        "WITH moved AS ( \
           UPDATE audit_chain_heads h SET seq = t.seq, mac = t.mac \
           FROM unnest($21::uuid[], $22::int8[], $23::bytea[], $24::int8[]) \
             AS t(chain_id, seq, mac, expected) \
           WHERE h.chain_id = t.chain_id AND h.seq = t.expected \
           RETURNING 1 \
         ), sealed AS ({INSERT_SEAL}) \
         {INSERT_EVENTS} WHERE audit_require_moved((SELECT count(*) FROM moved), $25)"
    );
    let expected_seqs: Option<Vec<i64>> =
        heads.keys().map(|id| expected.get(id).copied()).collect();
    let Some(expected_seqs) = expected_seqs else {
        return Ok(false);
    };
    let chains = i64::try_from(heads.len()).unwrap_or(i64::MAX);
    let query = bind_seal(bind_events(sqlx::query(AssertSqlSafe(sql)), events), seal);
    let result = bind_heads(query, &heads)
        .bind(expected_seqs)
        .bind(chains)
        .execute(conn)
        .await;
    match result {
        Ok(_) => Ok(true),
        // `audit_require_moved` (migration 11): a head moved, nothing was stored.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("40001") => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// A chain's head as it stands, without locking it; `None` before its first event.
#[tracing::instrument(skip(conn))]
pub async fn head(
    conn: &mut PgConnection,
    chain_id: Uuid,
) -> Result<Option<ChainHead>, StoreError> {
    Ok(
        sqlx::query_as("SELECT seq, mac FROM audit_chain_heads WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Which of an org's events a query wants. `None` filters are absent; the window is
/// `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery<'a> {
    pub org_id: Uuid,
    pub action: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl EventQuery<'_> {
    /// All of the org's events, however many.
    fn is_unfiltered(&self) -> bool {
        let Self {
            org_id: _,
            action,
            actor_id,
            resource_id,
            from,
            to,
        } = self;
        action.is_none()
            && actor_id.is_none()
            && resource_id.is_none()
            && from.is_none()
            && to.is_none()
    }
}

const EVENT_COLUMNS: &str = "id, chain_id, seq, org_id, action, actor_type, actor_id, \
    resource_type, resource_id, details, ip_address, created_at, prev_mac, mac, link_scheme, \
    seal_id";

/// Appends the WHERE clause of `query`. Only the filters present are written, so each
/// combination gets its own plan on the index that fits it (org + action, actor, resource
/// or time) instead of one generic plan full of `$n IS NULL OR ...`.
fn push_filters(builder: &mut QueryBuilder<Postgres>, query: &EventQuery<'_>) {
    builder.push(" WHERE org_id = ").push_bind(query.org_id);
    let exact = [
        (" AND action = ", query.action),
        (" AND actor_id = ", query.actor_id),
        (" AND resource_id = ", query.resource_id),
    ];
    for (clause, value) in exact {
        if let Some(value) = value {
            builder.push(clause).push_bind(value.to_owned());
        }
    }
    if let Some(from) = query.from {
        builder.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = query.to {
        builder.push(" AND created_at < ").push_bind(to);
    }
}

#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    event: EventRow,
    total: i64,
}

/// One page of the events matching `query`, newest first, and how many match in all. One
/// statement. Filtered, the total is a window count over the same scan. Unfiltered, it is the
/// org's chain head: every event of an org is on its chain, numbered from 1 without gaps, and
/// the head moves in the transaction that appends, so one snapshot sees both alike. (A window
/// count read every event of the org for each page: 0.6 to 1 s for an org of 216,000 events.)
#[tracing::instrument(skip(conn))]
pub async fn page(
    conn: &mut PgConnection,
    query: &EventQuery<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventRow>, i64), StoreError> {
    let mut builder = QueryBuilder::new(format!("SELECT {EVENT_COLUMNS}, "));
    if query.is_unfiltered() {
        builder
            .push("COALESCE((SELECT seq FROM audit_chain_heads WHERE chain_id = ")
            .push_bind(query.org_id)
            .push("), 0)");
    } else {
        builder.push("count(*) OVER ()");
    }
    builder.push(" AS total FROM audit_events");
    push_filters(&mut builder, query);
    builder
        .push(" ORDER BY created_at DESC, seq DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows: Vec<PageRow> = builder.build_query_as().fetch_all(&mut *conn).await?;
    let total = match rows.first() {
        Some(row) => row.total,
        // A page past the end has no row to carry the total: count separately.
        None if offset > 0 => count(conn, query).await?,
        None => 0,
    };
    Ok((rows.into_iter().map(|row| row.event).collect(), total))
}

/// How many events match `query`.
async fn count(conn: &mut PgConnection, query: &EventQuery<'_>) -> Result<i64, StoreError> {
    if query.is_unfiltered() {
        return Ok(head(conn, query.org_id).await?.map_or(0, |head| head.seq));
    }
    let mut builder = QueryBuilder::new("SELECT count(*) FROM audit_events");
    push_filters(&mut builder, query);
    Ok(builder.build_query_scalar().fetch_one(conn).await?)
}

/// Makes the caller's transaction a read-only snapshot: a verification then sees the events
/// and the chain head as of one instant, however many appends run meanwhile. Must be the
/// transaction's first statement.
pub async fn snapshot(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(conn)
        .await?;
    Ok(())
}

/// The sequence number of the org's first event at or after `at`.
#[tracing::instrument(skip(conn))]
pub async fn first_seq_since(
    conn: &mut PgConnection,
    org_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT seq FROM audit_events WHERE org_id = $1 AND created_at >= $2 \
         ORDER BY created_at, seq LIMIT 1",
    )
    .bind(org_id)
    .bind(at)
    .fetch_optional(conn)
    .await?)
}

/// The sequence number of the org's last event before `at`.
#[tracing::instrument(skip(conn))]
pub async fn last_seq_before(
    conn: &mut PgConnection,
    org_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT seq FROM audit_events WHERE org_id = $1 AND created_at < $2 \
         ORDER BY created_at DESC, seq DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(at)
    .fetch_optional(conn)
    .await?)
}

/// Up to `limit` events of chain `chain_id` from `first` to `last` (inclusive; open when
/// `None`), in sequence order. Whatever rows hold those numbers: gaps and duplicates are for
/// the verification to find.
#[tracing::instrument(skip(conn))]
pub async fn stretch(
    conn: &mut PgConnection,
    chain_id: Uuid,
    first: i64,
    last: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events \
         WHERE chain_id = $1 AND seq >= $2 AND seq <= COALESCE($3, 9223372036854775807) \
         ORDER BY seq LIMIT $4"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(chain_id)
        .bind(first)
        .bind(last)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// The event at `seq` of chain `chain_id`, if there is one.
#[tracing::instrument(skip(conn))]
pub async fn event_at(
    conn: &mut PgConnection,
    chain_id: Uuid,
    seq: i64,
) -> Result<Option<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain_id = $1 AND seq = $2");
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(chain_id)
        .bind(seq)
        .fetch_optional(conn)
        .await?)
}

/// The events of chain `chain_id` after `seq`, up to and including the first that vouches for
/// those before it (sealed, or with an HMAC of its own), at most `limit`: what a verification
/// whose stretch ends on an unsealed event reads to reach the seal that covers it.
#[tracing::instrument(skip(conn))]
pub async fn up_to_next_anchor(
    conn: &mut PgConnection,
    chain_id: Uuid,
    seq: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events \
         WHERE chain_id = $1 AND seq > $2 AND seq <= COALESCE( \
             (SELECT min(seq) FROM audit_events \
              WHERE chain_id = $1 AND seq > $2 AND seq <= $2 + $3 \
                AND (seal_id IS NOT NULL OR link_scheme = 1)), \
             $2 + $3) \
         ORDER BY seq LIMIT $3"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(chain_id)
        .bind(seq)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// The seals with the given ids (those that exist).
#[tracing::instrument(skip_all, fields(seals = ids.len()))]
pub async fn seals(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<SealRow>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, created_at, entries, mac FROM audit_seals WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(conn)
            .await?,
    )
}
