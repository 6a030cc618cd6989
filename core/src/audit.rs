//! The audit trail as clients see it: the wire types of `GET /v1/audit/events` and
//! `GET /v1/audit/verify`, the rules their query parameters follow, and the walk that decides
//! whether a stretch of a hash chain is intact.
//!
//! The origin records the events and seals them in the HSM; what is pure lives here so it is
//! tested without a database: parsing a query (bad input is a 400, never a 500) and
//! [`check_chain`], which is given each event's links, whether its MAC matched and whether
//! the HSM vouches for it, and names the first event where the chain breaks.
//!
//! Time windows are half-open, `[from, to)`: consecutive windows never count an event twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Events per page when the query names no `limit`.
pub const DEFAULT_EVENTS_LIMIT: i64 = 100;
/// Most events per page.
pub const MAX_EVENTS_LIMIT: i64 = 1000;
/// Events one verification walks when the query names no `limit`.
pub const DEFAULT_VERIFY_LIMIT: i64 = 1000;
/// Most events one verification walks.
pub const MAX_VERIFY_LIMIT: i64 = 10_000;
/// Longest `action`, `actor_id` or `resource_id` filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 256;

/// One recorded act. `details` hold ids, names, paths and flags, never secret material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    /// What was done, e.g. `secret.read`, `auth.failure`.
    pub action: String,
    /// The user or agent id; `null` when nobody was authenticated.
    pub actor_id: Option<String>,
    /// `user`, `agent` or `anonymous`.
    pub actor_type: String,
    /// `secret`, `vault`, `user`, `agent`, ...
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub org_id: Option<Uuid>,
    pub details: serde_json::Map<String, serde_json::Value>,
    /// The client's address as the edge reported it.
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/audit/events`: one page, newest first, and how many events match in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEventsResponse {
    pub events: Vec<AuditEvent>,
    /// Every event matching the filters, not just this page.
    pub count: i64,
}

/// How the chain is built, so a reader can tell what was checked.
///
/// Each org has one chain, ordered by a gapless sequence number. Every event stores
/// `prev_mac`, the `mac` of the event before it (32 zero bytes for the first), and `mac`,
/// SHA-256 over a length-prefixed encoding of every field of the event and `prev_mac`. Each
/// batch of appends is sealed by one HMAC-SHA256, under a key that never leaves the HSM, over
/// the sequence number and `mac` of the last event of every chain in the batch, so a chain's
/// newest event is always sealed. Events recorded before seals existed carry an HMAC-SHA256
/// `mac` of their own. An edited row fails its own hash, and mending the hashes after it fails
/// the next seal; a removed row leaves a gap in the sequence and an unlinked successor, a
/// reordered row fails both; a truncated tail no longer matches the chain's stored head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditChainScheme {
    /// `SHA-256 links, HMAC-SHA256 seals`.
    pub algorithm: String,
    pub chain_structure: String,
    /// The field holding each event's own MAC: `mac`.
    pub hash_field: String,
    /// The field linking an event to its predecessor: `prev_mac`.
    pub link_field: String,
    /// Where the scheme is described (this API's OpenAPI document, relative to its base URL).
    pub documentation: String,
}

impl AuditChainScheme {
    /// The scheme oxvault's chains follow.
    pub fn current() -> Self {
        Self {
            algorithm: "SHA-256 links, HMAC-SHA256 seals".to_owned(),
            chain_structure: "one chain per organization, ordered by a gapless sequence \
                              number; each event's prev_mac is the mac of the event before \
                              it (32 zero bytes for the first); mac is SHA-256 over every \
                              field of the event and prev_mac; each batch of appends is \
                              sealed by one HMAC-SHA256, keyed inside the HSM, over the seq \
                              and mac of each chain's last event in it, so every chain's \
                              newest event is sealed (events recorded before seals carry an \
                              HMAC-SHA256 mac each)"
                .to_owned(),
            hash_field: "mac".to_owned(),
            link_field: "prev_mac".to_owned(),
            documentation: "/v1/openapi.json#/components/schemas/AuditChainScheme".to_owned(),
        }
    }
}

/// `GET /v1/audit/verify`: the verdict on a stretch of the caller's org's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyResponse {
    /// Whether every examined event is intact and linked to the one before it (and, when the
    /// stretch reaches the end of the chain, whether the chain ends where its head says).
    pub chain_valid: bool,
    /// Events that passed every check.
    pub events_verified: i64,
    /// Events examined.
    pub events_checked: i64,
    /// The first event that failed a check: `null` if none did. For a removed event, the one
    /// after the gap; for a truncated tail, the last event still present.
    pub broken_at_event_id: Option<Uuid>,
    pub scheme: AuditChainScheme,
}

/// The query of `GET /v1/audit/events`, as sent. Every field is text so that a malformed
/// value gets a 400 naming it; [`AuditEventsParams::parse`] checks them.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditEventsParams {
    /// Only events of this action, e.g. `secret.read`.
    pub action: Option<String>,
    /// Only events by this user or agent id.
    pub actor_id: Option<String>,
    /// Only events on this resource id.
    pub resource_id: Option<String>,
    /// Only events at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Only events before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Events to skip, newest first (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

/// The query of `GET /v1/audit/verify`, as sent.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditVerifyParams {
    /// Start at the first event at or after this RFC 3339 time (default: the chain's start).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Stop before the first event at or after this RFC 3339 time (default: the chain's end,
    /// whose head is then checked too).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Most events to walk, 1 to 10000 (default 1000).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
}

/// A half-open time window `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A checked `GET /v1/audit/events` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub resource_id: Option<String>,
    pub window: TimeWindow,
    pub limit: i64,
    pub offset: i64,
}

/// A checked `GET /v1/audit/verify` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyRange {
    pub window: TimeWindow,
    pub limit: i64,
}

impl AuditEventsParams {
    /// The filter this query asks for, or words for a 400.
    pub fn parse(self) -> Result<EventFilter, String> {
        Ok(EventFilter {
            action: filter_text("action", self.action)?,
            actor_id: filter_text("actor_id", self.actor_id)?,
            resource_id: filter_text("resource_id", self.resource_id)?,
            window: window(self.from.as_deref(), self.to.as_deref())?,
            limit: bounded(
                "limit",
                self.limit.as_deref(),
                DEFAULT_EVENTS_LIMIT,
                1,
                MAX_EVENTS_LIMIT,
            )?,
            offset: bounded("offset", self.offset.as_deref(), 0, 0, i64::MAX)?,
        })
    }
}

impl AuditVerifyParams {
    /// The range this query asks for, or words for a 400.
    pub fn parse(self) -> Result<VerifyRange, String> {
        Ok(VerifyRange {
            window: window(self.from.as_deref(), self.to.as_deref())?,
            limit: bounded(
                "limit",
                self.limit.as_deref(),
                DEFAULT_VERIFY_LIMIT,
                1,
                MAX_VERIFY_LIMIT,
            )?,
        })
    }
}

/// An exact-match filter: absent or empty means none. NUL is refused because PostgreSQL
/// text cannot hold it (it would fail the query rather than match nothing).
fn filter_text(name: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) if text.len() > MAX_FILTER_LEN || text.contains('\0') => Err(format!(
            "{name} must be at most {MAX_FILTER_LEN} bytes of text"
        )),
        Some(text) => Ok(Some(text)),
    }
}

/// A whole number in `min..=max`, `default` when absent.
fn bounded(
    name: &str,
    text: Option<&str>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            if max == i64::MAX {
                format!("{name} must be a whole number of at least {min}")
            } else {
                format!("{name} must be a whole number from {min} to {max}")
            }
        })
}

fn window(from: Option<&str>, to: Option<&str>) -> Result<TimeWindow, String> {
    let from = from.map(|text| parse_time("from", text)).transpose()?;
    let to = to.map(|text| parse_time("to", text)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err("from must be before to".to_owned());
    }
    Ok(TimeWindow { from, to })
}

/// An RFC 3339 date-time. A `+` in a query string decodes to a space, so an offset written
/// ` 02:00` at the end is read as `+02:00` (a minus sign survives decoding unchanged).
pub fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(text).or_else(|err| match text.rsplit_once(' ') {
        Some((time, offset)) if is_offset(offset) => {
            DateTime::parse_from_rfc3339(&format!("{time}+{offset}"))
        }
        _ => Err(err),
    });
    parsed
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| format!("{name} must be an RFC 3339 date-time, e.g. 2026-01-31T09:30:00Z"))
}

/// `HH:MM`.
fn is_offset(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 5 && bytes[2] == b':' && [0, 1, 3, 4].iter().all(|&i| bytes[i].is_ascii_digit())
}

/// One event as the chain walk sees it.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub seq: i64,
    pub prev_mac: &'a [u8],
    pub mac: &'a [u8],
    /// Whether `mac` is right for the event as stored now (its hash, or its own HMAC for an
    /// event from before seals), and any seal it names holds it.
    pub mac_valid: bool,
    /// Whether the HSM vouches for the event: a seal whose HMAC matches lists it, or its own
    /// HMAC matches. The events before it, back to the previous such event, are vouched for
    /// through their hash links.
    pub anchored: bool,
}

/// The end of a chain: the sequence number and MAC of its last event, as its head row says.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub seq: i64,
    pub mac: &'a [u8],
}

/// What [`check_chain`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainCheck {
    /// Links that passed every check.
    pub verified: usize,
    /// Index of the first link that failed a check.
    pub first_broken: Option<usize>,
    /// Whether the stretch's end disagrees with the chain's head (events removed from the
    /// end, or an event beyond the head).
    pub tail_broken: bool,
}

impl ChainCheck {
    /// Whether nothing failed.
    pub fn valid(&self) -> bool {
        self.first_broken.is_none() && !self.tail_broken
    }
}

/// Walks `links`, a stretch of one chain in sequence order, then as far into `ahead` (the
/// events after the stretch, up to the next anchored one) as it takes to reach an anchored
/// event. `before` is the link the first must follow: `(seq, mac)` of the event before it,
/// `(0, genesis MAC)` when the stretch starts the chain, `None` when that event is missing
/// (so the first is unlinked). `head` is given when the stretch reaches the chain's end,
/// which must then be the head's event.
///
/// Each link must carry the next sequence number, name its predecessor's stored MAC as
/// `prev_mac`, and have a valid MAC of its own; it is verified once an anchored link follows
/// with nothing broken in between. The walk continues from each link as stored, so one
/// removed or edited event fails one or two links, not every later one. Links that no anchor
/// vouches for (the chain's newest event unsealed, or nothing sealed after the stretch) break
/// the chain at the first of them.
pub fn check_chain(
    before: Option<(i64, &[u8])>,
    links: &[Link<'_>],
    ahead: &[Link<'_>],
    head: Option<Head<'_>>,
) -> ChainCheck {
    let mut check = ChainCheck::default();
    let mut expected = before;
    // Intact links of the stretch waiting for an anchor to vouch for them.
    let mut pending: Vec<usize> = Vec::new();
    for (index, link) in links.iter().chain(ahead).enumerate() {
        let in_stretch = index < links.len();
        if !in_stretch && pending.is_empty() {
            break;
        }
        let linked = expected.is_some_and(|(seq, mac)| link.seq == seq + 1 && link.prev_mac == mac);
        if linked && link.mac_valid {
            if in_stretch {
                pending.push(index);
            }
            if link.anchored {
                check.verified += pending.len();
                pending.clear();
            }
        } else if in_stretch {
            check.first_broken.get_or_insert(index);
            pending.clear();
        } else {
            // Broken after the stretch, before any anchor: nothing vouches for the pending.
            break;
        }
        expected = Some((link.seq, link.mac));
    }
    if let Some(&first) = pending.first() {
        // Pending links only ever follow the last break, so an earlier break stays first.
        check.first_broken.get_or_insert(first);
        if head.is_some() {
            check.tail_broken = true;
        }
    }
    if let Some(head) = head {
        let end_matches = match links.last() {
            Some(last) => last.seq == head.seq && last.mac == head.mac,
            None => head.seq == 0,
        };
        if !end_matches {
            check.tail_broken = true;
            if check.first_broken.is_none() && !links.is_empty() {
                // An event beyond the head if there is one, else the last one left.
                let beyond = links.iter().position(|link| link.seq > head.seq);
                check.first_broken = Some(beyond.unwrap_or(links.len() - 1));
            }
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: [u8; 4] = [0; 4];

    /// A well-formed chain of `n` events: MAC of event `i` is `[i; 4]`.
    fn macs(n: u8) -> Vec<[u8; 4]> {
        (1..=n).map(|i| [i; 4]).collect()
    }

    fn chain(macs: &[[u8; 4]]) -> Vec<Link<'_>> {
        macs.iter()
            .enumerate()
            .map(|(i, mac)| Link {
                seq: i as i64 + 1,
                prev_mac: if i == 0 { &GENESIS } else { &macs[i - 1] },
                mac,
                mac_valid: true,
                anchored: true,
            })
            .collect()
    }

    fn head(mac: &[u8], seq: i64) -> Option<Head<'_>> {
        Some(Head { seq, mac })
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let macs = macs(20);
        let links = chain(&macs);
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert!(check.valid());
        assert_eq!(check.verified, 20);
    }

    /// `chain(macs)` with only the events at `anchors` vouched for by the HSM (sealed).
    fn sealed_at<'a>(macs: &'a [[u8; 4]], anchors: &[usize]) -> Vec<Link<'a>> {
        let mut links = chain(macs);
        for (i, link) in links.iter_mut().enumerate() {
            link.anchored = anchors.contains(&i);
        }
        links
    }

    #[test]
    fn unsealed_events_are_verified_by_the_seal_after_them() {
        let macs = macs(20);
        let links = sealed_at(&macs, &[4, 9, 14, 19]);
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert!(check.valid(), "{check:?}");
        assert_eq!(check.verified, 20);
    }

    #[test]
    fn an_unsealed_newest_event_breaks_the_chain_at_the_first_unvouched_one() {
        let macs = macs(20);
        let links = sealed_at(&macs, &[4, 9, 14]);
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert!(!check.valid());
        assert!(check.tail_broken);
        assert_eq!(check.first_broken, Some(15));
        assert_eq!(check.verified, 15);
    }

    #[test]
    fn a_stretch_ending_between_seals_is_vouched_for_by_the_seal_ahead() {
        let macs = macs(20);
        let links = sealed_at(&macs, &[4, 9, 14, 19]);
        let check = check_chain(Some((0, &GENESIS)), &links[..12], &links[12..15], None);
        assert!(check.valid(), "{check:?}");
        assert_eq!(check.verified, 12, "the events ahead only vouch");

        let mut broken_ahead = links.clone();
        broken_ahead[13].mac_valid = false;
        let check = check_chain(
            Some((0, &GENESIS)),
            &broken_ahead[..12],
            &broken_ahead[12..15],
            None,
        );
        assert_eq!(
            check.first_broken,
            Some(10),
            "the first event after the last seal"
        );
        assert_eq!(check.verified, 10);

        let check = check_chain(Some((0, &GENESIS)), &links[..12], &links[12..14], None);
        assert_eq!(check.first_broken, Some(10), "no seal reached");
    }

    /// Hashes mended after an edit (they can be recomputed without the HSM) all look right,
    /// but the seal that covered the old hash no longer holds the event.
    #[test]
    fn mended_hashes_are_caught_by_the_next_seal() {
        let macs = macs(20);
        let mut links = sealed_at(&macs, &[4, 9, 14, 19]);
        links[9].mac_valid = false;
        links[9].anchored = false;
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert_eq!(check.first_broken, Some(9));
        assert_eq!(check.verified, 15, "5 to 9 are not vouched for");
    }

    #[test]
    fn an_edited_event_breaks_at_that_event_only() {
        let macs = macs(20);
        let mut links = chain(&macs);
        links[9].mac_valid = false;
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert_eq!(check.first_broken, Some(9));
        assert_eq!(check.verified, 19);
        assert!(!check.valid());
    }

    #[test]
    fn a_removed_event_breaks_at_the_one_after_the_gap() {
        let macs = macs(20);
        let mut links = chain(&macs);
        links.remove(9);
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        // Index 9 now holds seq 11: it follows seq 9 and names seq 10's MAC.
        assert_eq!(check.first_broken, Some(9));
        assert_eq!(links[9].seq, 11);
        assert_eq!(check.verified, 18);
    }

    #[test]
    fn swapped_events_break_at_the_first_out_of_place() {
        let macs = macs(20);
        let mut links = chain(&macs);
        // Rows 10 and 11 trade sequence numbers; their MACs (over the old numbers) fail.
        links.swap(9, 10);
        links[9].seq = 10;
        links[10].seq = 11;
        links[9].mac_valid = false;
        links[10].mac_valid = false;
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert_eq!(check.first_broken, Some(9));
        assert_eq!(
            check.verified, 17,
            "the two swapped and the one after them fail"
        );
    }

    #[test]
    fn relinking_around_an_event_is_caught_by_the_links_even_with_valid_macs() {
        let macs = macs(5);
        let mut links = chain(&macs);
        links[2].prev_mac = &GENESIS;
        let check = check_chain(Some((0, &GENESIS)), &links, &[], None);
        assert_eq!(check.first_broken, Some(2));
    }

    #[test]
    fn a_truncated_tail_disagrees_with_the_head() {
        let macs = macs(20);
        let links = chain(&macs[..18]);
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[19], 20));
        assert!(check.tail_broken);
        assert_eq!(check.first_broken, Some(17), "the last event left");
        assert_eq!(check.verified, 18);
    }

    #[test]
    fn an_event_beyond_the_head_is_named() {
        let macs = macs(20);
        let links = chain(&macs);
        let check = check_chain(Some((0, &GENESIS)), &links, &[], head(&macs[17], 18));
        assert!(check.tail_broken);
        assert_eq!(check.first_broken, Some(18));
    }

    #[test]
    fn an_emptied_chain_with_a_head_is_broken_and_an_empty_one_is_not() {
        let gone = check_chain(Some((0, &GENESIS)), &[], &[], head(&[7; 4], 3));
        assert!(!gone.valid());
        assert_eq!(gone.first_broken, None);
        assert!(check_chain(Some((0, &GENESIS)), &[], &[], head(&GENESIS, 0)).valid());
        assert!(check_chain(Some((0, &GENESIS)), &[], &[], None).valid());
    }

    #[test]
    fn a_stretch_in_the_middle_follows_its_predecessor() {
        let macs = macs(20);
        let links = chain(&macs);
        let middle = &links[5..10];
        assert!(check_chain(Some((5, &macs[4])), middle, &[], None).valid());
        let unlinked = check_chain(None, middle, &[], None);
        assert_eq!(unlinked.first_broken, Some(0), "its predecessor is missing");
        assert_eq!(unlinked.verified, 4);
        let wrong = check_chain(Some((4, &macs[3])), middle, &[], None);
        assert_eq!(wrong.first_broken, Some(0));
    }

    #[test]
    fn queries_default_and_bound_their_numbers() {
        let filter = AuditEventsParams::default().parse().unwrap();
        assert_eq!((filter.limit, filter.offset), (DEFAULT_EVENTS_LIMIT, 0));
        let range = AuditVerifyParams::default().parse().unwrap();
        assert_eq!(range.limit, DEFAULT_VERIFY_LIMIT);
        for (limit, ok) in [
            ("1", true),
            ("1000", true),
            ("0", false),
            ("1001", false),
            ("-1", false),
            ("x", false),
            ("", false),
        ] {
            let params = AuditEventsParams {
                limit: Some(limit.into()),
                ..Default::default()
            };
            assert_eq!(params.parse().is_ok(), ok, "limit {limit:?}");
        }
        for (limit, ok) in [("10000", true), ("10001", false)] {
            let params = AuditVerifyParams {
                limit: Some(limit.into()),
                ..Default::default()
            };
            assert_eq!(params.parse().is_ok(), ok, "verify limit {limit:?}");
        }
        let negative = AuditEventsParams {
            offset: Some("-1".into()),
            ..Default::default()
        };
        assert!(negative.parse().is_err());
    }

    #[test]
    fn times_are_rfc_3339_even_when_a_plus_was_decoded_to_a_space() {
        let utc = parse_time("from", "2026-01-31T09:30:00Z").unwrap();
        assert_eq!(
            parse_time("from", "2026-01-31T11:30:00+02:00").unwrap(),
            utc
        );
        assert_eq!(
            parse_time("from", "2026-01-31T11:30:00 02:00").unwrap(),
            utc
        );
        assert_eq!(
            parse_time("from", "2026-01-31T07:30:00-02:00").unwrap(),
            utc
        );
        for bad in [
            "yesterday",
            "2026-01-31",
            "2026-13-01T00:00:00Z",
            "1700000000",
            "",
        ] {
            let err = parse_time("from", bad).unwrap_err();
            assert!(err.starts_with("from must be"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_window_must_not_end_before_it_starts() {
        let params = AuditEventsParams {
            from: Some("2026-02-01T00:00:00Z".into()),
            to: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        assert_eq!(params.parse().unwrap_err(), "from must be before to");
    }

    #[test]
    fn filters_refuse_nul_and_huge_values_and_ignore_empty_ones() {
        let with = |action: &str| AuditEventsParams {
            action: Some(action.into()),
            ..Default::default()
        };
        assert_eq!(with("").parse().unwrap().action, None);
        assert_eq!(
            with("secret.read").parse().unwrap().action.as_deref(),
            Some("secret.read")
        );
        assert!(with("a\0b").parse().is_err());
        assert!(with(&"a".repeat(MAX_FILTER_LEN + 1)).parse().is_err());
    }

    #[test]
    fn events_serialize_with_the_1claw_field_names() {
        let event = AuditEvent {
            id: Uuid::nil(),
            action: "secret.read".into(),
            actor_id: Some("u".into()),
            actor_type: "user".into(),
            resource_type: "secret".into(),
            resource_id: Some("s".into()),
            org_id: Some(Uuid::nil()),
            details: serde_json::Map::new(),
            ip_address: None,
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        let json = serde_json::to_value(&event).unwrap();
        for field in [
            "id",
            "action",
            "actor_id",
            "actor_type",
            "resource_type",
            "resource_id",
            "org_id",
            "details",
            "ip_address",
            "created_at",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
    }
}
