//! The request-body size limit, checked twice: on the declared `Content-Length` before any
//! byte is read, and on the bytes actually received, because a chunked body declares nothing
//! and a declared length can lie.
//!
//! Bodies are buffered (at most [`MAX_BODY_BYTES`]) rather than streamed to the origin, so that
//! an oversized body is refused with a 413 before the origin sees any of it.

pub use oxvault_core::problem::MAX_BODY_BYTES;

/// Why a request body is refused. Both are the caller's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Declared or actual size above [`MAX_BODY_BYTES`].
    TooLarge,
    /// `Content-Length` is not a plain decimal number.
    MalformedLength,
    /// Fewer or more bytes arrived than `Content-Length` promised (e.g. the client went away
    /// mid-body): forwarding them would hand the origin a truncated request.
    Incomplete,
}

/// Checks a `Content-Length` value (`None`: header absent) against the limit and returns the
/// declared length, if any.
pub fn check_declared_length(value: Option<&str>) -> Result<Option<u64>, BodyError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim();
    // `u64::from_str` accepts a leading `+`; HTTP's 1*DIGIT does not.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BodyError::MalformedLength);
    }
    match value.parse::<u64>() {
        Ok(length) if length <= MAX_BODY_BYTES as u64 => Ok(Some(length)),
        // Too many digits for a u64 is too large as well.
        Ok(_) | Err(_) => Err(BodyError::TooLarge),
    }
}

/// Collects a body chunk by chunk and stops as soon as it grows past the limit, so an endless
/// body costs at most one chunk over [`MAX_BODY_BYTES`] of memory.
#[derive(Debug, Default)]
pub struct BodyCollector {
    bytes: Vec<u8>,
}

impl BodyCollector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk; fails once the total exceeds the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if self.bytes.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body, once it is known to match the declared length (if one was declared).
    pub fn finish(self, declared: Option<u64>) -> Result<Vec<u8>, BodyError> {
        match declared {
            Some(length) if u64::try_from(self.bytes.len()) != Ok(length) => {
                Err(BodyError::Incomplete)
            }
            _ => Ok(self.bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_exactly_one_mebibyte_is_accepted() {
        assert_eq!(check_declared_length(Some("1048576")), Ok(Some(1_048_576)));
        let mut body = BodyCollector::new();
        body.push(&vec![0; MAX_BODY_BYTES - 1]).unwrap();
        body.push(&[1]).unwrap();
        assert_eq!(body.finish(Some(1_048_576)).unwrap().len(), MAX_BODY_BYTES);
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        assert_eq!(
            check_declared_length(Some("1048577")),
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            check_declared_length(Some("99999999999999999999999")),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn a_missing_or_small_declared_length_is_fine() {
        assert_eq!(check_declared_length(None), Ok(None));
        assert_eq!(check_declared_length(Some("0")), Ok(Some(0)));
        assert_eq!(check_declared_length(Some(" 12 ")), Ok(Some(12)));
    }

    #[test]
    fn a_declared_length_that_is_not_a_number_is_malformed() {
        for value in ["", "abc", "-1", "+5", "1.0", "5, 5"] {
            assert_eq!(
                check_declared_length(Some(value)),
                Err(BodyError::MalformedLength),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_body_that_grows_past_the_limit_is_refused_whatever_it_declared() {
        let mut body = BodyCollector::new();
        body.push(&vec![0; MAX_BODY_BYTES]).unwrap();
        assert_eq!(body.push(&[0]), Err(BodyError::TooLarge));
    }

    #[test]
    fn a_body_shorter_than_declared_is_incomplete() {
        let mut body = BodyCollector::new();
        body.push(b"{\"a\":").unwrap();
        assert_eq!(body.finish(Some(12)), Err(BodyError::Incomplete));
    }

    #[test]
    fn a_body_without_a_declared_length_is_taken_as_it_came() {
        let mut body = BodyCollector::new();
        body.push(b"abc").unwrap();
        body.push(b"").unwrap();
        assert_eq!(body.finish(None).unwrap(), b"abc");
    }
}
