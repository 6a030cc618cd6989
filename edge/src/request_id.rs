//! Choosing the request id the edge forwards and returns.
//!
//! A client's id is kept when it is a plain token (so a caller can correlate its own logs with
//! ours); anything else is replaced, because it would be written verbatim into the origin's
//! logs. The rule itself lives in `oxvault_core::request_id` so both tiers agree on it.

use oxvault_core::request_id::is_acceptable_request_id;
use uuid::Uuid;

/// The client's id when acceptable, else one from `fresh`.
///
/// `fresh` is a parameter so tests can see which branch was taken; the Worker passes
/// [`fresh_request_id`].
pub fn choose_request_id(client: Option<&str>, fresh: impl FnOnce() -> String) -> String {
    match client {
        Some(id) if is_acceptable_request_id(id) => id.to_owned(),
        _ => fresh(),
    }
}

/// A new random id: a UUID v4 in its hyphenated lower-case form.
pub fn fresh_request_id() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acceptable_client_id_is_kept() {
        let id = choose_request_id(Some("client-req_01.a"), || unreachable!());
        assert_eq!(id, "client-req_01.a");
    }

    #[test]
    fn a_missing_or_unacceptable_client_id_is_replaced() {
        assert_eq!(choose_request_id(None, || "fresh".into()), "fresh");
        assert_eq!(choose_request_id(Some(""), || "fresh".into()), "fresh");
        assert_eq!(
            choose_request_id(Some("abc\r\nx-admin: 1"), || "fresh".into()),
            "fresh"
        );
        assert_eq!(
            choose_request_id(Some(&"a".repeat(65)), || "fresh".into()),
            "fresh"
        );
    }

    #[test]
    fn fresh_ids_are_distinct_v4_uuids_that_are_themselves_acceptable() {
        let a = fresh_request_id();
        let b = fresh_request_id();
        assert_ne!(a, b);
        let parsed = Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert!(is_acceptable_request_id(&a));
    }
}
