//! The audit trail: what every service calls to record a security-relevant act, and the MAC
//! chain that makes the record tamper-evident.
//!
//! An act hands its event to the [`AuditLog`] before it answers, and waits until the event is
//! committed: an act with a transaction of its own commits it only after its event is durable
//! ([`AuditLog::commit`]), and when the event cannot be written (database refusal, HSM down)
//! the act fails with it — a secret value is never answered without its read on the record.
//! The log groups the events of many concurrent requests into one transaction (group
//! commit); see [`appender`].
//!
//! Each event's `mac` is SHA-256 ([`link_hash`]) over [`canonical`]: a length-prefixed
//! encoding of every stored field and the previous event's `mac`. Each batch the appender
//! writes is sealed by one HMAC-SHA256, computed by the HSM under a key that never leaves it,
//! over the (chain, seq, mac) of the last event of every chain in the batch ([`seal_message`]),
//! so every chain's newest event is sealed. Changing, removing or reordering a row therefore
//! breaks the chain where it happened; mending the hashes after it runs into the next seal,
//! which nobody without the HSM can make. Events stored before seals existed (`link_scheme` 1)
//! carry an HMAC of their own instead and verify as before. Chains are per org (events with no org go to one of
//! [`NO_ORG_CHAINS`] chains, by client address); the chain head's row lock, taken once per batch, serialises appends across
//! origin processes.
//!
//! `details` never hold a secret value, passphrase, key or token: callers put ids, names,
//! paths and flags there, and the canary tests look for leaks in every event.

mod appender;
mod reader;

pub use appender::{AuditLog, AuditTask};
pub use reader::AuditService;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use oxvault_core::claims::Subject;
use oxvault_core::ids::{AgentId, OrgId, UserId};
use serde_json::{Map, Value};
use uuid::Uuid;

use sha2::{Digest, Sha256};

use super::principal::Principal;
use crate::crypto::{AuditMac, CryptoError, MAC_LEN};
use crate::store::audit::{ChainHead, EventRow, SealRow};

/// How many chains hold the events that belong to no org (refused sign-ins of unknown
/// addresses, anonymous share reads). They are spread by client address, so a flood of
/// anonymous failures from many addresses does not queue every origin's batches behind one
/// head row; one address's events still stay in one chain, in order.
pub const NO_ORG_CHAINS: u8 = 16;

/// The `prev_mac` of a chain's first event.
pub const GENESIS_MAC: [u8; MAC_LEN] = [0; MAC_LEN];

/// Domain separation for the MAC input, and the encoding's version.
const ENCODING_TAG: &[u8] = b"oxvault-audit-event-v1\0";

/// Domain separation for an event's SHA-256 link (`link_scheme` 2).
const LINK_TAG: &[u8] = b"oxvault-audit-link-v2\0";

/// Domain separation for a seal's HMAC input.
const SEAL_TAG: &[u8] = b"oxvault-audit-seal-v1\0";

/// `link_scheme` of events whose `mac` is their own HMAC (stored before seals existed).
pub const SCHEME_HMAC: i16 = 1;
/// `link_scheme` of events whose `mac` is a SHA-256 link, vouched for by a seal.
pub const SCHEME_SEALED: i16 = 2;

/// Bytes per entry of a seal: chain id (16), seq (8, big-endian), mac (32).
pub const SEAL_ENTRY_LEN: usize = 16 + 8 + MAC_LEN;

/// A batch ready to store: its events, linked in order, and the seal over the last event of
/// each chain among them.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub rows: Vec<EventRow>,
    pub seal: SealRow,
}

/// The `mac` of a `link_scheme` 2 event: SHA-256 over its [`canonical`] encoding.
pub fn link_hash(row: &EventRow) -> [u8; MAC_LEN] {
    let mut hash = Sha256::new();
    hash.update(LINK_TAG);
    hash.update(canonical(row));
    hash.finalize().into()
}

/// The entry a seal holds for `row`.
pub fn seal_entry(row: &EventRow) -> [u8; SEAL_ENTRY_LEN] {
    let mut entry = [0u8; SEAL_ENTRY_LEN];
    entry[..16].copy_from_slice(row.chain_id.as_bytes());
    entry[16..24].copy_from_slice(&row.seq.to_be_bytes());
    // A stored mac of another length cannot match any entry: it stays zeros here, and the
    // verification compares the whole entry.
    if row.mac.len() == MAC_LEN {
        entry[24..].copy_from_slice(&row.mac);
    }
    entry
}

/// What a seal's HMAC covers: its entries, behind a domain tag.
pub fn seal_message(entries: &[u8]) -> Vec<u8> {
    [SEAL_TAG, entries].concat()
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    Agent(AgentId),
    /// Nobody authenticated: a failed sign-in, a public share read.
    Anonymous,
}

impl Actor {
    /// The caller of an authenticated request.
    pub fn of(principal: &Principal) -> Self {
        match principal.subject {
            Subject::User(id) => Self::User(id),
            Subject::Agent(id) => Self::Agent(id),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Agent(_) => "agent",
            Self::Anonymous => "anonymous",
        }
    }

    fn id(self) -> Option<String> {
        match self {
            Self::User(id) => Some(id.as_uuid().to_string()),
            Self::Agent(id) => Some(id.as_uuid().to_string()),
            Self::Anonymous => None,
        }
    }
}

/// One act to record. Build it with [`Event::by`] (an authenticated caller) or [`Event::new`],
/// then name the resource and add details.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: &'static str,
    pub org: Option<OrgId>,
    pub actor: Actor,
    pub resource_type: &'static str,
    pub resource_id: Option<String>,
    pub details: Map<String, Value>,
    pub ip: Option<IpAddr>,
}

impl Event {
    /// An act by `actor` in `org` (if any), from `ip` (if known).
    pub fn new(action: &'static str, org: Option<OrgId>, actor: Actor, ip: Option<IpAddr>) -> Self {
        Self {
            action,
            org,
            actor,
            resource_type: "",
            resource_id: None,
            details: Map::new(),
            ip,
        }
    }

    /// An act by the authenticated caller, in the caller's org, from the caller's address.
    pub fn by(principal: &Principal, action: &'static str) -> Self {
        Self::new(
            action,
            Some(principal.org),
            Actor::of(principal),
            principal.client_ip,
        )
    }

    /// The resource acted on.
    pub fn on(mut self, resource_type: &'static str, resource_id: impl ToString) -> Self {
        self.resource_type = resource_type;
        self.resource_id = Some(resource_id.to_string());
        self
    }

    /// A detail: ids, names, paths, counts, flags — never secret material.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// The bytes an event's MAC covers: every stored field and the previous MAC, each length-
/// prefixed so no two different events encode alike. `details` are encoded as canonical JSON
/// (object keys sorted), so the encoding survives the round trip through `jsonb`.
pub fn canonical(row: &EventRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(ENCODING_TAG);
    let mut field = |bytes: &[u8]| {
        // Fields are bounded far below 4 GiB (the request body cap is 1 MiB).
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let optional = |text: &Option<String>| text.as_deref().map(str::as_bytes).map(<[u8]>::to_vec);
    field(row.id.as_bytes());
    field(row.chain_id.as_bytes());
    field(&row.seq.to_be_bytes());
    field(row.org_id.as_ref().map_or(&[][..], |org| org.as_bytes()));
    field(row.action.as_bytes());
    field(row.actor_type.as_bytes());
    field(&optional(&row.actor_id).unwrap_or_default());
    field(row.resource_type.as_bytes());
    field(&optional(&row.resource_id).unwrap_or_default());
    let mut details = Vec::new();
    write_canonical_json(&row.details.0, &mut details);
    field(&details);
    field(&optional(&row.ip_address).unwrap_or_default());
    field(&row.created_at.timestamp_micros().to_be_bytes());
    field(&row.prev_mac);
    out
}

/// JSON with object keys in sorted order and no insignificant whitespace.
fn write_canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(&Value::String(key.clone()), out);
                out.push(b':');
                if let Some(inner) = map.get(key) {
                    write_canonical_json(inner, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own rendering is already unique for them.
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// The current time at the database's precision (microseconds), so what is hashed is what is
/// stored.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Links `events` onto their chains, in order, and seals the batch with one call of `mac`:
/// the rows to store and their seal.
///
/// `heads` holds the current head of every chain the events name (a chain missing from it is
/// an error, never a new chain at seq 1: that would fork an existing chain). Each event takes
/// the next sequence number of its chain and the `mac` (SHA-256 link) of the event before it;
/// the last event of each chain names the seal, whose HMAC covers them all.
pub(crate) fn link(
    events: Vec<Event>,
    heads: &HashMap<Uuid, ChainHead>,
    created_at: DateTime<Utc>,
    mac: &dyn AuditMac,
) -> Result<SealedBatch, CryptoError> {
    let mut tails: HashMap<Uuid, (i64, Vec<u8>)> = HashMap::new();
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let chain_id = chain_of(&event);
        let (seq, prev_mac) = match tails.remove(&chain_id) {
            Some(tail) => tail,
            None => {
                let head = heads.get(&chain_id).ok_or_else(|| {
                    tracing::error!(%chain_id, "an audit chain head was not locked");
                    CryptoError::Unavailable
                })?;
                (head.seq, head.mac.clone())
            }
        };
        let mut row = EventRow {
            // Time-ordered, so each insert lands at the right edge of the primary key's index
            // (a random id touches a random leaf page of an index that only grows).
            id: Uuid::now_v7(),
            chain_id,
            seq: seq + 1,
            org_id: event.org.map(|org| *org.as_uuid()),
            action: event.action.to_owned(),
            actor_type: event.actor.kind().to_owned(),
            actor_id: event.actor.id(),
            resource_type: event.resource_type.to_owned(),
            resource_id: event.resource_id,
            details: sqlx::types::Json(Value::Object(event.details)),
            ip_address: event.ip.map(|ip| ip.to_canonical().to_string()),
            created_at,
            prev_mac,
            mac: Vec::new(),
            link_scheme: SCHEME_SEALED,
            seal_id: None,
        };
        row.mac = link_hash(&row).to_vec();
        tails.insert(chain_id, (row.seq, row.mac.clone()));
        rows.push(row);
    }
    // Each chain's last event in the batch, in chain order: the seal's entries.
    let mut last: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        last.insert(row.chain_id, index);
    }
    let seal_id = Uuid::now_v7();
    let mut entries = Vec::with_capacity(last.len() * SEAL_ENTRY_LEN);
    for &index in last.values() {
        rows[index].seal_id = Some(seal_id);
        entries.extend_from_slice(&seal_entry(&rows[index]));
    }
    let seal_mac = mac.mac(&seal_message(&entries))?;
    Ok(SealedBatch {
        rows,
        seal: SealRow {
            id: seal_id,
            created_at,
            entries,
            mac: seal_mac.to_vec(),
        },
    })
}

/// The chain an event belongs to: its org's, or one of the [`NO_ORG_CHAINS`] org-less chains
/// (`00000000-…-00000000000N`; the nil UUID, chain 0, is the one chain of earlier versions
/// and of events with no known address).
pub(crate) fn chain_of(event: &Event) -> Uuid {
    match event.org {
        Some(org) => *org.as_uuid(),
        None => Uuid::from_u128(u128::from(no_org_shard(event.ip))),
    }
}

/// The org-less chain of a client address: FNV-1a over its octets, the same in every origin
/// process and release (std's hasher promises neither).
fn no_org_shard(ip: Option<IpAddr>) -> u8 {
    const FNV_OFFSET: u32 = 0x811c_9dc5;
    const FNV_PRIME: u32 = 0x0100_0193;
    let Some(ip) = ip else { return 0 };
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let hash = octets.iter().fold(FNV_OFFSET, |hash, octet| {
        (hash ^ u32::from(*octet)).wrapping_mul(FNV_PRIME)
    });
    // The remainder is below NO_ORG_CHAINS, so it fits.
    u8::try_from(hash % u32::from(NO_ORG_CHAINS)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_less_events_spread_over_their_chains_by_address_and_stay_put_per_address() {
        let event = |ip: Option<IpAddr>| Event::new("auth.failure", None, Actor::Anonymous, ip);
        assert_eq!(chain_of(&event(None)), Uuid::nil());
        let mut chains = std::collections::BTreeSet::new();
        for last in 0..=255u8 {
            let ip = IpAddr::from([198, 51, 100, last]);
            let chain = chain_of(&event(Some(ip)));
            assert_eq!(chain, chain_of(&event(Some(ip))), "one address, one chain");
            assert!(chain.as_u128() < u128::from(NO_ORG_CHAINS));
            chains.insert(chain);
        }
        assert_eq!(
            chains.len(),
            usize::from(NO_ORG_CHAINS),
            "256 addresses use every chain"
        );
        let org = OrgId::from_uuid(Uuid::new_v4());
        let in_org = Event::new("auth.failure", Some(org), Actor::Anonymous, None);
        assert_eq!(chain_of(&in_org), *org.as_uuid());
    }
    /// The primary key's index stays compact and hot only if each new id sorts after the
    /// ones before it: random (v4) ids made every append touch a random leaf page (issue 10).
    #[test]
    fn linked_events_get_time_ordered_ids_in_chain_order() {
        let org = OrgId::from_uuid(Uuid::new_v4());
        let chain = *org.as_uuid();
        let heads = HashMap::from([(
            chain,
            ChainHead {
                seq: 41,
                mac: GENESIS_MAC.to_vec(),
            },
        )]);
        let events = (0..50)
            .map(|_| Event::new("secret.read", Some(org), Actor::Anonymous, None))
            .collect();
        let first = link(
            events,
            &heads,
            now_micros(),
            &crate::crypto::testing::FirstByteMac,
        )
        .expect("linked");
        let later = link(
            vec![Event::new("secret.read", Some(org), Actor::Anonymous, None)],
            &heads,
            now_micros(),
            &crate::crypto::testing::FirstByteMac,
        )
        .expect("linked");
        let ids: Vec<Uuid> = first
            .rows
            .iter()
            .chain(&later.rows)
            .map(|row| row.id)
            .collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        let seqs: Vec<i64> = first.rows.iter().map(|row| row.seq).collect();
        assert_eq!(seqs, (42..92).collect::<Vec<_>>());
    }

    /// Counts its calls; the MAC is SHA-256 of the message (any deterministic function will do).
    #[derive(Default)]
    struct CountingMac(std::sync::atomic::AtomicUsize);

    impl AuditMac for CountingMac {
        fn mac(&self, message: &[u8]) -> Result<[u8; MAC_LEN], CryptoError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Sha256::digest(message).into())
        }
    }

    /// Issue 10: a batch costs one HSM call however many events and chains it holds. Events
    /// are hash-linked in order, and the seal covers exactly the last event of each chain.
    #[test]
    fn a_batch_is_hash_linked_and_sealed_by_one_mac_over_each_chains_last_event() {
        let orgs: Vec<OrgId> = (0..3).map(|_| OrgId::from_uuid(Uuid::new_v4())).collect();
        let heads: HashMap<Uuid, ChainHead> = orgs
            .iter()
            .map(|org| {
                let head = ChainHead {
                    seq: 7,
                    mac: GENESIS_MAC.to_vec(),
                };
                (*org.as_uuid(), head)
            })
            .collect();
        let events = (0..30)
            .map(|i| Event::new("secret.read", Some(orgs[i % 3]), Actor::Anonymous, None))
            .collect();
        let mac = CountingMac::default();
        let batch = link(events, &heads, now_micros(), &mac).expect("linked");
        assert_eq!(mac.0.load(std::sync::atomic::Ordering::Relaxed), 1);

        for org in &orgs {
            let chain: Vec<&EventRow> = batch
                .rows
                .iter()
                .filter(|row| row.chain_id == *org.as_uuid())
                .collect();
            assert_eq!(chain.len(), 10);
            let mut prev = GENESIS_MAC.to_vec();
            for (i, row) in chain.iter().enumerate() {
                assert_eq!(row.seq, 8 + i as i64);
                assert_eq!(row.prev_mac, prev);
                assert_eq!(row.mac, link_hash(row).to_vec());
                assert_eq!(row.link_scheme, SCHEME_SEALED);
                let last = i == chain.len() - 1;
                assert_eq!(row.seal_id, last.then_some(batch.seal.id), "event {i}");
                prev = row.mac.clone();
            }
        }
        let mut expected: Vec<&EventRow> =
            batch.rows.iter().filter(|r| r.seal_id.is_some()).collect();
        expected.sort_by_key(|row| row.chain_id);
        let entries: Vec<u8> = expected.iter().flat_map(|row| seal_entry(row)).collect();
        assert_eq!(batch.seal.entries, entries);
        let message = seal_message(&entries);
        assert_eq!(batch.seal.mac, Sha256::digest(&message).to_vec());
    }

    use serde_json::json;

    fn row() -> EventRow {
        EventRow {
            id: Uuid::from_u128(1),
            chain_id: Uuid::from_u128(2),
            seq: 7,
            org_id: Some(Uuid::from_u128(2)),
            action: "secret.read".into(),
            actor_type: "user".into(),
            actor_id: Some(Uuid::from_u128(3).to_string()),
            resource_type: "secret".into(),
            resource_id: Some(Uuid::from_u128(4).to_string()),
            details: sqlx::types::Json(json!({"path": "db/password", "version": 2})),
            ip_address: Some("192.0.2.1".into()),
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            prev_mac: vec![9; MAC_LEN],
            mac: vec![],
            link_scheme: SCHEME_SEALED,
            seal_id: None,
        }
    }

    #[test]
    fn every_field_changes_the_encoding() {
        let base = canonical(&row());
        type Mutation = Box<dyn Fn(&mut EventRow)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|r| r.id = Uuid::from_u128(10)),
            Box::new(|r| r.chain_id = Uuid::from_u128(10)),
            Box::new(|r| r.seq = 8),
            Box::new(|r| r.org_id = None),
            Box::new(|r| r.action = "secret.write".into()),
            Box::new(|r| r.actor_type = "agent".into()),
            Box::new(|r| r.actor_id = None),
            Box::new(|r| r.resource_type = "vault".into()),
            Box::new(|r| r.resource_id = Some("x".into())),
            Box::new(|r| r.details = sqlx::types::Json(json!({"path": "db/other"}))),
            Box::new(|r| r.ip_address = None),
            Box::new(|r| r.created_at += chrono::Duration::microseconds(1)),
            Box::new(|r| r.prev_mac = vec![8; MAC_LEN]),
        ];
        for (i, mutate) in mutations.iter().enumerate() {
            let mut changed = row();
            mutate(&mut changed);
            assert_ne!(
                canonical(&changed),
                base,
                "mutation {i} did not change the encoding"
            );
        }
    }

    #[test]
    fn the_mac_itself_is_not_part_of_the_encoding() {
        let mut with_mac = row();
        with_mac.mac = vec![1; MAC_LEN];
        assert_eq!(canonical(&with_mac), canonical(&row()));
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        // Without length prefixes "ab" + "c" and "a" + "bc" would encode alike.
        let mut a = row();
        a.action = "secret.".into();
        a.actor_type = "readuser".into();
        let mut b = row();
        b.action = "secret.read".into();
        b.actor_type = "user".into();
        assert_ne!(canonical(&a), canonical(&b));
    }

    #[test]
    fn details_encode_the_same_whatever_the_key_order() {
        let mut a = row();
        a.details = sqlx::types::Json(json!({"b": 1, "a": {"y": true, "x": [1, "z"]}}));
        let mut b = row();
        let reordered: Value =
            serde_json::from_str(r#"{"a": {"x": [1, "z"], "y": true}, "b": 1}"#).unwrap();
        b.details = sqlx::types::Json(reordered);
        assert_eq!(canonical(&a), canonical(&b));
        let mut out = Vec::new();
        write_canonical_json(&a.details.0, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"x":[1,"z"],"y":true},"b":1}"#
        );
    }

    #[test]
    fn the_time_is_kept_at_microsecond_precision() {
        let now = now_micros();
        assert_eq!(now.timestamp_subsec_nanos() % 1_000, 0);
    }
}
