//! What of the origin's response the edge relays to the client.
//!
//! Headers are filtered by [`crate::headers::to_client`]; this module decides whether the
//! response can be relayed at all. The runtime's `Response` constructor throws for a status
//! outside 200..=599, and the `worker` crate turns that throw into a panic, so such a status
//! must be caught here and answered as a bad gateway instead. The same constructor throws
//! when a body is given with a status that must not have one, hence [`must_not_have_body`].

/// Whether the origin's status can be passed on as it is.
pub fn relayable_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// Whether the status is a "null body status" of the Fetch standard: a `Response` with such a
/// status and any body, even an empty stream, cannot be constructed.
pub fn must_not_have_body(status: u16) -> bool {
    matches!(status, 101 | 103 | 204 | 205 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_redirect_and_error_statuses_are_relayed() {
        for status in [200, 201, 204, 301, 304, 400, 404, 409, 500, 503, 599] {
            assert!(relayable_status(status), "{status}");
        }
    }

    #[test]
    fn informational_and_out_of_range_statuses_are_not() {
        for status in [0, 100, 101, 199, 600, 999] {
            assert!(!relayable_status(status), "{status}");
        }
    }

    #[test]
    fn no_content_reset_and_not_modified_are_relayed_without_a_body() {
        for status in [204, 205, 304] {
            assert!(
                relayable_status(status) && must_not_have_body(status),
                "{status}"
            );
        }
        for status in [200, 201, 302, 404, 500] {
            assert!(!must_not_have_body(status), "{status}");
        }
    }
}
