//! Request ids: the edge assigns one to every request (or keeps a well-formed one the client
//! sent), forwards it as `X-Request-Id`, and the origin logs it on every line of that request.
//!
//! An id the client sent is attacker-controlled text that ends up in logs, so only a short,
//! plain token is accepted; anything else is replaced.

/// The header that carries the request id between client, edge and origin.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id kept from a client.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client-supplied request id is safe to keep and log as it is.
pub fn is_acceptable_request_id(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= MAX_REQUEST_ID_LEN
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_are_kept() {
        assert!(is_acceptable_request_id(
            "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
        ));
        assert!(is_acceptable_request_id("req_01.abc"));
    }

    #[test]
    fn empty_long_or_log_forging_ids_are_refused() {
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id(
            &"a".repeat(MAX_REQUEST_ID_LEN + 1)
        ));
        assert!(!is_acceptable_request_id("abc\ninjected=1"));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id("ü"));
    }
}
