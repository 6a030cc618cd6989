//! Billing: the tiers an org may be on, the object limits checked inside creates, and the
//! usage summary and history of the metered requests (see [`oxvault_core::billing`] for how a
//! month's requests split into free and paid).
//!
//! Limits are exact across origin processes: [`require_room`] locks the org's row in the
//! creating transaction before it counts, so two creates racing for the last slot run one
//! after the other, and the second counts what the first committed.
//!
//! Usage and history are for the org's users, any role (every member sees what the org
//! spends and which principal made which request); agents get 403, as for the org's other
//! administrative views.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
pub use oxvault_core::billing::{FREE_TIER, TIER_NAMES, TierTable};
use oxvault_core::billing::{
    MethodClass, MonthSplit, MonthUsage, READ_METHODS, TierLimits, UsageEvent,
    UsageHistoryResponse, UsageSummaryResponse, month_bounds, price_of_request,
};
use oxvault_core::ids::OrgId;
use sqlx::{PgConnection, PgPool};

use super::ServiceError;
use super::principal::Principal;
use crate::store::StoreError;
use crate::store::usage;
pub use crate::store::usage::UsageRow;

/// What a tier limits the number of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Vaults,
    /// Live secret paths (a new version of a live path is not a new secret).
    Secrets,
    /// Active agents.
    Agents,
}

impl Resource {
    fn limit(self, tier: &TierLimits) -> Option<u64> {
        match self {
            Self::Vaults => tier.vaults,
            Self::Secrets => tier.secrets,
            Self::Agents => tier.agents,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Vaults => "vaults",
            Self::Secrets => "secrets",
            Self::Agents => "active agents",
        }
    }

    async fn count(self, conn: &mut PgConnection, org_id: uuid::Uuid) -> Result<i64, StoreError> {
        match self {
            Self::Vaults => usage::count_live_vaults(conn, org_id).await,
            Self::Secrets => usage::count_live_secrets(conn, org_id).await,
            Self::Agents => usage::count_active_agents(conn, org_id).await,
        }
    }
}

/// The configured tiers, shared by every request; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tiers {
    table: Arc<TierTable>,
    // Unknown tier names already logged, so each is logged once per process and not once per
    // request. A std mutex: held for one set lookup, never across an await.
    unknown_logged: Arc<Mutex<HashSet<String>>>,
}

impl Tiers {
    pub fn new(table: TierTable) -> Self {
        Self {
            table: Arc::new(table),
            unknown_logged: Arc::default(),
        }
    }

    /// The tier an org with `stored` in its `billing_tier` is billed as: that tier if the
    /// origin knows it, else `free` (logged once per name).
    pub fn resolve(&self, stored: &str) -> (&'static str, TierLimits) {
        if let Some(found) = self.table.get(stored) {
            return found;
        }
        let first_time = self
            .unknown_logged
            .lock()
            .map(|mut logged| logged.insert(stored.to_owned()))
            .unwrap_or(false);
        if first_time {
            tracing::warn!(
                billing_tier = stored,
                "an org is on a tier this origin does not know; treating it as free"
            );
        }
        (FREE_TIER, self.table.free())
    }

    /// Passes when the org may create one more `resource`; else 403 `resource_limit_exceeded`
    /// naming the limit.
    ///
    /// `conn` must be the transaction that then creates it: the org's row stays locked until
    /// that transaction ends, so no other create of the org counts before this one commits.
    pub async fn require_room(
        &self,
        conn: &mut PgConnection,
        org: OrgId,
        resource: Resource,
    ) -> Result<(), ServiceError> {
        let org_id = *org.as_uuid();
        let stored = usage::lock_org_tier(conn, org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let (name, tier) = self.resolve(&stored);
        let Some(limit) = resource.limit(&tier) else {
            return Ok(());
        };
        let count = u64::try_from(resource.count(conn, org_id).await?).unwrap_or(0);
        if count < limit {
            Ok(())
        } else {
            Err(ServiceError::LimitExceeded(format!(
                "the {name} tier allows {limit} {noun} per organization and this one has {count}",
                noun = resource.noun(),
            )))
        }
    }
}

/// The limit check of a create path, for services that carry their [`Tiers`] as an option
/// (built from the HTTP state with them, or elsewhere without). Without tiers the create
/// fails closed: a service wired without its limits must not create without limits.
pub async fn require_room(
    tiers: Option<&Tiers>,
    conn: &mut PgConnection,
    org: OrgId,
    resource: Resource,
) -> Result<(), ServiceError> {
    match tiers {
        Some(tiers) => tiers.require_room(conn, org, resource).await,
        None => Err(ServiceError::Internal(
            "a create ran in a service built without its tier limits".into(),
        )),
    }
}

/// Why a batch of metered requests was not written.
#[derive(Debug, thiserror::Error)]
pub enum UsageWriteError {
    /// The database refused the statement: the same rows will likely be refused again.
    #[error("the database refused the batch: {0}")]
    Refused(#[source] StoreError),
    /// The database was unreachable or the attempt broke off: worth retrying.
    #[error("the database is unreachable: {0}")]
    Unavailable(#[source] StoreError),
}

/// Writes a batch of metered requests (the meter's writer, origin/src/http/metering.rs);
/// rows already written by an earlier attempt are skipped.
pub async fn write_usage(pool: &PgPool, rows: &[UsageRow]) -> Result<u64, UsageWriteError> {
    usage::insert_batch(pool, rows)
        .await
        .map_err(|err| match err {
            StoreError::Database(sqlx::Error::Database(_)) => UsageWriteError::Refused(err),
            other => UsageWriteError::Unavailable(other),
        })
}

/// The usage summary and history; cheap to clone.
#[derive(Debug, Clone)]
pub struct BillingService {
    pool: PgPool,
    tiers: Tiers,
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn month_of(at: DateTime<Utc>) -> Result<DateTime<Utc>, ServiceError> {
    month_bounds(at)
        .map(|(start, _)| start)
        .ok_or_else(|| ServiceError::Internal(format!("no calendar month holds {at}").into()))
}

impl BillingService {
    pub fn new(pool: PgPool, tiers: Tiers) -> Self {
        Self { pool, tiers }
    }

    /// The tier of the caller's org and what it has used this calendar month (UTC) as of
    /// `now`. Requests reach the count within one flush interval of the meter.
    pub async fn usage(
        &self,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> Result<UsageSummaryResponse, ServiceError> {
        principal.require_user()?;
        let org_id = *principal.org.as_uuid();
        let (from, to) = month_bounds(now).ok_or_else(|| {
            ServiceError::Internal(format!("no calendar month holds {now}").into())
        })?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let stored = usage::tier_of(&mut conn, org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let (name, tier) = self.tiers.resolve(&stored);
        let free_limit = i64::try_from(tier.free_requests).unwrap_or(i64::MAX);
        let totals =
            usage::month_totals(&mut conn, org_id, from, to, free_limit, &READ_METHODS).await?;
        let split = MonthSplit::of(count(totals.total), tier.free_requests);
        let cost = tier
            .price(MethodClass::Read)
            .times(count(totals.paid_reads))
            .plus(
                tier.price(MethodClass::Write)
                    .times(count(totals.paid_writes)),
            );
        Ok(UsageSummaryResponse {
            billing_tier: name.to_owned(),
            free_tier_limit: tier.free_requests,
            current_month: MonthUsage {
                total_requests: split.total,
                paid_requests: split.paid,
                free_requests: split.free,
                total_cost_usd: cost.to_string(),
            },
        })
    }

    /// The caller's org's newest `limit` metered requests, newest first, each priced by its
    /// rank in its own calendar month under the org's current tier.
    pub async fn history(
        &self,
        principal: &Principal,
        limit: u32,
    ) -> Result<UsageHistoryResponse, ServiceError> {
        principal.require_user()?;
        let org_id = *principal.org.as_uuid();
        // One snapshot: rows a meter flushes meanwhile (possibly older than the newest ones
        // here) must not shift the ranks between the queries below.
        let mut tx = usage::begin_snapshot(&self.pool).await?;
        let stored = usage::tier_of(&mut tx, org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let (_, tier) = self.tiers.resolve(&stored);
        let rows = usage::newest(&mut tx, org_id, i64::from(limit)).await?;

        // The rows are the newest of the org, so within each month they are the month's
        // newest: consecutive ranks. Walking oldest first, one count per month finds the
        // first rank; the others follow.
        let mut ranks = vec![0u64; rows.len()];
        let mut current: Option<(DateTime<Utc>, u64)> = None;
        for (index, row) in rows.iter().enumerate().rev() {
            let month = month_of(row.created_at)?;
            let rank = match current {
                Some((seen, previous)) if seen == month => previous + 1,
                _ => {
                    count(
                        usage::count_before(&mut tx, org_id, month, row.created_at, row.id).await?,
                    ) + 1
                }
            };
            current = Some((month, rank));
            ranks[index] = rank;
        }
        tx.commit().await.map_err(StoreError::from)?;

        let events = rows
            .into_iter()
            .zip(ranks)
            .map(|(row, rank)| {
                let (is_paid, price) = price_of_request(rank, &tier, MethodClass::of(&row.method));
                UsageEvent {
                    id: row.id,
                    principal_type: row.principal_type,
                    principal_id: row.principal_id,
                    method: row.method,
                    endpoint: row.endpoint,
                    status_code: u16::try_from(row.status_code).unwrap_or(0),
                    price_usd: price.to_string(),
                    is_paid,
                    created_at: row.created_at,
                }
            })
            .collect();
        Ok(UsageHistoryResponse { events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_tier_has_finite_defaults_that_grow_with_the_tier() {
        let table = TierTable::default();
        let mut previous: Option<TierLimits> = None;
        for name in TIER_NAMES {
            let (found, limits) = table.get(name).unwrap();
            assert_eq!(found, name);
            assert!(limits.vaults.is_some() && limits.secrets.is_some() && limits.agents.is_some());
            if let Some(previous) = previous {
                assert!(limits.vaults > previous.vaults);
                assert!(limits.free_requests > previous.free_requests);
            }
            previous = Some(limits);
        }
    }

    #[test]
    fn an_unknown_tier_is_billed_as_free() {
        let mut table = TierTable::default();
        let small = table.free().with_overrides("vaults=1").unwrap();
        table.set(FREE_TIER, small);
        let tiers = Tiers::new(table);
        assert_eq!(tiers.resolve("platinum"), (FREE_TIER, small));
        assert_eq!(tiers.resolve("platinum"), (FREE_TIER, small));
        assert_eq!(tiers.resolve("pro").0, "pro");
        assert_eq!(tiers.unknown_logged.lock().unwrap().len(), 1);
    }

    #[test]
    fn setting_an_unknown_tier_changes_nothing() {
        let mut table = TierTable::default();
        let before = table.clone();
        table.set("platinum", table.free().with_overrides("vaults=1").unwrap());
        assert_eq!(table, before);
    }
}
