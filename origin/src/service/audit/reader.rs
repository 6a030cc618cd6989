//! Reading the audit trail: the org's events as a filtered, paged list, and the verification
//! of its hash chain.
//!
//! Who sees what: owners and admins see every event of their org; members only the events
//! they are the actor of; agents get 403 (the trail describes people and other agents, and
//! no agent scope covers it). Verification is for owners and admins only. Events of other
//! orgs, and those of no org (the org-less chains), are never answered.
//!
//! Verification walks a stretch of the org's chain in sequence order, recomputes every hash,
//! checks in the HSM the seals the stretch's events name (and the own HMAC of events from
//! before seals; in batches, one blocking call each), reads on past the stretch to the seal
//! that vouches for its last events when the stretch ends between two seals, and hands the
//! links to [`oxvault_core::audit::check_chain`]. It reads in one read-only snapshot, so
//! appends made meanwhile are simply not part of it. The chain's head row is compared with
//! the last event when the stretch reaches the end, which catches events removed from the
//! end, unless whoever removed them also rewrote the head to an earlier event's seq and MAC;
//! a stretch starting at the chain's beginning catches the removal of its first events.

use std::collections::{HashMap, HashSet};

use oxvault_core::audit::{
    AuditChainScheme, AuditEvent, AuditEventsResponse, AuditVerifyResponse, ChainCheck,
    EventFilter, Head, Link, VerifyRange, check_chain,
};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    GENESIS_MAC, SCHEME_HMAC, SEAL_ENTRY_LEN, canonical, link_hash, seal_entry, seal_message,
};
use crate::crypto::{CryptoError, Keyring, MAC_LEN};
use crate::service::ServiceError;
use crate::service::principal::Principal;
use crate::store::StoreError;
use crate::store::audit::{self, EventQuery, EventRow, SealRow};

/// MACs recomputed per blocking HSM call: large enough that the hop costs nothing, small
/// enough that one verification does not hold an HSM permit for long.
const MAC_BATCH: usize = 512;

/// The most events read past a stretch to reach the seal of its last events. A batch holds at
/// most a few hundred requests' events, so a real chain reaches a seal long before this; a
/// chain whose seals were removed does not, and fails.
const AHEAD_LIMIT: i64 = 10_000;

/// Reads of the audit trail; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditService {
    pool: PgPool,
    keyring: Keyring,
}

fn event(row: EventRow) -> AuditEvent {
    let details = match row.details.0 {
        serde_json::Value::Object(map) => map,
        // Every recorded event has object details; anything else is shown under one key
        // rather than dropped.
        other => serde_json::Map::from_iter([("value".to_owned(), other)]),
    };
    AuditEvent {
        id: row.id,
        action: row.action,
        actor_id: row.actor_id,
        actor_type: row.actor_type,
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        org_id: row.org_id,
        details,
        ip_address: row.ip_address,
        created_at: row.created_at,
    }
}

/// A UUID-shaped actor id in the form events store it (lower case, hyphenated); anything
/// else as given (it then matches nothing).
fn normalized_actor(text: String) -> String {
    Uuid::try_parse(&text).map_or(text, |id| id.hyphenated().to_string())
}

fn hsm_unavailable(err: CryptoError) -> ServiceError {
    tracing::warn!(error = %err, "audit MACs could not be recomputed");
    ServiceError::Unavailable("HSM")
}

impl AuditService {
    pub fn new(pool: PgPool, keyring: Keyring) -> Self {
        Self { pool, keyring }
    }

    /// The org's events matching `filter`, newest first, with the number matching in all.
    pub async fn events(
        &self,
        principal: &Principal,
        filter: EventFilter,
    ) -> Result<AuditEventsResponse, ServiceError> {
        let user = principal.require_user()?;
        let asked_actor = filter.actor_id.map(normalized_actor);
        let actor = if principal.role.is_some_and(|role| role.can_manage()) {
            asked_actor
        } else {
            // A member sees their own events only: asking for someone else's finds none.
            let me = user.as_uuid().hyphenated().to_string();
            if asked_actor.as_ref().is_some_and(|asked| *asked != me) {
                return Ok(AuditEventsResponse {
                    events: Vec::new(),
                    count: 0,
                });
            }
            Some(me)
        };
        let query = EventQuery {
            org_id: *principal.org.as_uuid(),
            action: filter.action.as_deref(),
            actor_id: actor.as_deref(),
            resource_id: filter.resource_id.as_deref(),
            from: filter.window.from,
            to: filter.window.to,
        };
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let (rows, count) = audit::page(&mut conn, &query, filter.limit, filter.offset).await?;
        Ok(AuditEventsResponse {
            events: rows.into_iter().map(event).collect(),
            count,
        })
    }

    /// Verifies the stretch of the org's chain that `range` names (owners and admins only).
    pub async fn verify(
        &self,
        principal: &Principal,
        range: VerifyRange,
    ) -> Result<AuditVerifyResponse, ServiceError> {
        principal.require_manager()?;
        let org = *principal.org.as_uuid();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        audit::snapshot(&mut tx).await?;

        let first = match range.window.from {
            None => Some(1),
            Some(from) => audit::first_seq_since(&mut tx, org, from).await?,
        };
        let last = match range.window.to {
            None => None,
            Some(to) => audit::last_seq_before(&mut tx, org, to).await?,
        };
        let rows = match (first, last, range.window.to) {
            // Nothing recorded in the window.
            (None, _, _) | (_, None, Some(_)) => Vec::new(),
            (Some(first), last, _) if last.is_some_and(|last| last < first) => Vec::new(),
            (Some(first), last, _) => {
                audit::stretch(&mut tx, org, first, last, range.limit).await?
            }
        };

        // The event the stretch must follow: genesis for seq 1, else the one at seq - 1.
        let predecessor = match rows.first() {
            Some(row) if row.seq > 1 => audit::event_at(&mut tx, org, row.seq - 1).await?,
            _ => None,
        };
        let starts_chain = rows.first().is_none_or(|row| row.seq == 1);
        let before = if starts_chain {
            Some((0, &GENESIS_MAC[..]))
        } else {
            predecessor
                .as_ref()
                .map(|row| (row.seq, row.mac.as_slice()))
        };

        // The head matters when the stretch reaches the end: no upper bound, and either not
        // cut short by the limit or already at the head. An empty window that started later
        // than the chain says nothing about its end.
        let head_row = audit::head(&mut tx, org).await?;
        let head = head_row.as_ref().map_or(
            Head {
                seq: 0,
                mac: &GENESIS_MAC,
            },
            |head| Head {
                seq: head.seq,
                mac: &head.mac,
            },
        );
        let cut_short = usize::try_from(range.limit).is_ok_and(|limit| rows.len() >= limit)
            && rows.last().is_some_and(|row| row.seq < head.seq);
        let reaches_end = range.window.to.is_none()
            && !cut_short
            && (range.window.from.is_none() || !rows.is_empty());

        // A stretch that stops short of the end on an unsealed event reads on to the seal
        // that vouches for it; at the end, the head check covers an unsealed last event.
        let ahead = match rows.last() {
            Some(last)
                if !reaches_end && last.seal_id.is_none() && last.link_scheme != SCHEME_HMAC =>
            {
                audit::up_to_next_anchor(&mut tx, org, last.seq, AHEAD_LIMIT).await?
            }
            _ => Vec::new(),
        };
        let seal_ids: Vec<Uuid> = rows
            .iter()
            .chain(&ahead)
            .filter_map(|row| row.seal_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let seals = audit::seals(&mut tx, &seal_ids).await?;
        tx.commit().await.map_err(StoreError::from)?;

        let all: Vec<&EventRow> = rows.iter().chain(&ahead).collect();
        let own_macs = self.check_own_macs(&all).await?;
        let holding = self.holding_seals(&seals).await?;
        let links: Vec<Link<'_>> = all
            .iter()
            .zip(&own_macs)
            .map(|(row, &own_mac)| judge(row, own_mac, &holding))
            .collect();
        let (stretch, after) = links.split_at(rows.len());
        let check = check_chain(before, stretch, after, reaches_end.then_some(head));
        Ok(verdict(principal, &rows, check))
    }

    /// The entries of each seal in `seals` whose HMAC matches, by seal id.
    async fn holding_seals(
        &self,
        seals: &[SealRow],
    ) -> Result<HashMap<Uuid, HashSet<Vec<u8>>>, ServiceError> {
        let checks = seals
            .iter()
            .map(|seal| (seal_message(&seal.entries), seal.mac.as_slice()))
            .collect();
        let holds = self.macs_match(checks).await?;
        Ok(seals
            .iter()
            .zip(holds)
            .filter(|(_, holds)| *holds)
            .map(|(seal, _)| {
                let entries = seal
                    .entries
                    .chunks_exact(SEAL_ENTRY_LEN)
                    .map(<[u8]>::to_vec)
                    .collect();
                (seal.id, entries)
            })
            .collect())
    }

    /// For each row from before seals (`link_scheme` 1), whether its stored MAC is the HSM's
    /// MAC of the row as it is now; `false` for the others (their hash is checked locally).
    async fn check_own_macs(&self, rows: &[&EventRow]) -> Result<Vec<bool>, ServiceError> {
        let checks = rows
            .iter()
            .filter(|row| row.link_scheme == SCHEME_HMAC)
            .map(|row| (canonical(row), row.mac.as_slice()))
            .collect();
        let mut valid = self.macs_match(checks).await?.into_iter();
        Ok(rows
            .iter()
            .map(|row| row.link_scheme == SCHEME_HMAC && valid.next().unwrap_or(false))
            .collect())
    }

    /// Whether the HSM's MAC of each message is the stored MAC beside it, computed in batches
    /// of [`MAC_BATCH`] (one blocking call each).
    async fn macs_match(&self, checks: Vec<(Vec<u8>, &[u8])>) -> Result<Vec<bool>, ServiceError> {
        let mut matches = Vec::with_capacity(checks.len());
        let mut checks = checks.into_iter().peekable();
        while checks.peek().is_some() {
            // The messages move into the HSM call; only the stored MACs stay here.
            let (messages, stored): (Vec<Vec<u8>>, Vec<&[u8]>) =
                checks.by_ref().take(MAC_BATCH).unzip();
            let macs = self
                .keyring
                .audit_macs(messages)
                .await
                .map_err(hsm_unavailable)?;
            matches.extend(
                stored
                    .iter()
                    .zip(&macs)
                    .map(|(stored, mac): (_, &[u8; MAC_LEN])| bool::from(stored.ct_eq(mac))),
            );
        }
        Ok(matches)
    }
}

/// The link `row` makes. An event from before seals stands on its own HMAC (`own_mac`). A
/// later one must hash to its `mac`; if it names a seal, that seal must hold in the HSM and
/// list it, and it then vouches for the events before it. `holding`: the seals that hold, with
/// their entries.
fn judge<'a>(
    row: &'a EventRow,
    own_mac: bool,
    holding: &HashMap<Uuid, HashSet<Vec<u8>>>,
) -> Link<'a> {
    let (mac_valid, anchored) = if row.link_scheme == SCHEME_HMAC {
        (own_mac, own_mac)
    } else {
        let hashed = bool::from(row.mac.as_slice().ct_eq(&link_hash(row)));
        let sealed = row.seal_id.map(|id| {
            holding
                .get(&id)
                .is_some_and(|entries| entries.contains(seal_entry(row).as_slice()))
        });
        (
            hashed && sealed != Some(false),
            hashed && sealed == Some(true),
        )
    };
    Link {
        seq: row.seq,
        prev_mac: &row.prev_mac,
        mac: &row.mac,
        mac_valid,
        anchored,
    }
}

/// The answer for `check` over `rows`, logged when the chain is broken.
fn verdict(principal: &Principal, rows: &[EventRow], check: ChainCheck) -> AuditVerifyResponse {
    let broken_at = check
        .first_broken
        .and_then(|index| rows.get(index))
        .map(|row| row.id);
    if !check.valid() {
        tracing::warn!(
            org = %principal.org,
            broken_at = ?broken_at,
            tail_broken = check.tail_broken,
            "the audit chain failed verification"
        );
    }
    AuditVerifyResponse {
        chain_valid: check.valid(),
        events_verified: i64::try_from(check.verified).unwrap_or(i64::MAX),
        events_checked: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        broken_at_event_id: broken_at,
        scheme: AuditChainScheme::current(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::super::SCHEME_SEALED;
    use super::*;

    fn event(seq: i64, prev_mac: Vec<u8>, seal_id: Option<Uuid>) -> EventRow {
        let mut row = EventRow {
            id: Uuid::now_v7(),
            chain_id: Uuid::from_u128(2),
            seq,
            org_id: Some(Uuid::from_u128(2)),
            action: "secret.read".into(),
            actor_type: "agent".into(),
            actor_id: Some(Uuid::from_u128(3).to_string()),
            resource_type: "secret".into(),
            resource_id: Some("db/password".into()),
            details: sqlx::types::Json(json!({"path": "db/password"})),
            ip_address: None,
            created_at: DateTime::from_timestamp_micros(1_764_000_000_000_000).unwrap(),
            prev_mac,
            mac: Vec::new(),
            link_scheme: SCHEME_SEALED,
            seal_id,
        };
        row.mac = link_hash(&row).to_vec();
        row
    }

    fn holding(seal: Uuid, rows: &[&EventRow]) -> HashMap<Uuid, HashSet<Vec<u8>>> {
        let entries = rows.iter().map(|row| seal_entry(row).to_vec()).collect();
        HashMap::from([(seal, entries)])
    }

    #[test]
    fn a_sealed_event_is_anchored_only_by_a_holding_seal_that_lists_it() {
        let seal = Uuid::now_v7();
        let first = event(1, GENESIS_MAC.to_vec(), None);
        let last = event(2, first.mac.clone(), Some(seal));
        let seals = holding(seal, &[&last]);

        let unsealed = judge(&first, false, &seals);
        assert!(unsealed.mac_valid && !unsealed.anchored);
        let sealed = judge(&last, false, &seals);
        assert!(sealed.mac_valid && sealed.anchored);

        // The seal does not hold (its HMAC failed, or it is gone): the event fails outright.
        let broken = judge(&last, false, &HashMap::new());
        assert!(!broken.mac_valid && !broken.anchored);
        // A holding seal that lists another event does not vouch for this one.
        let other = holding(seal, &[&first]);
        assert!(!judge(&last, false, &other).mac_valid);
    }

    /// An edit whose hash was recomputed (no HSM needed for that) passes its own hash but no
    /// longer matches what its seal listed.
    #[test]
    fn a_mended_hash_no_longer_matches_its_seal() {
        let seal = Uuid::now_v7();
        let original = event(5, vec![7; MAC_LEN], Some(seal));
        let seals = holding(seal, &[&original]);
        let mut edited = original.clone();
        edited.resource_id = Some("db/innocent".into());
        assert!(
            !judge(&edited, false, &seals).mac_valid,
            "the hash alone fails"
        );
        edited.mac = link_hash(&edited).to_vec();
        let mended = judge(&edited, false, &seals);
        assert!(!mended.mac_valid && !mended.anchored, "the seal catches it");
    }

    #[test]
    fn an_event_from_before_seals_stands_on_its_own_hmac() {
        let mut old = event(1, GENESIS_MAC.to_vec(), None);
        old.link_scheme = SCHEME_HMAC;
        let valid = judge(&old, true, &HashMap::new());
        assert!(valid.mac_valid && valid.anchored);
        let invalid = judge(&old, false, &HashMap::new());
        assert!(!invalid.mac_valid && !invalid.anchored);
    }
}
