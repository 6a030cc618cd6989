//! Email addresses, normalised once: the same person must map to one account and one
//! rate-limit counter however they type their address (`User@X.com `, `user@x.com`, or a
//! compatibility form such as full-width letters).

use unicode_normalization::UnicodeNormalization;

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("email must not be empty")]
    Empty,
    #[error("email is too long")]
    TooLong,
    #[error("email must look like name@domain")]
    Shape,
}

/// A normalised email address: trimmed, NFKC, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises and checks an address. The check is deliberately loose (one `@`, something
    /// on each side, no spaces or control characters): deliverability is proven by mail, not
    /// by a regular expression.
    pub fn parse(text: &str) -> Result<Self, InvalidEmail> {
        let normalised: String = text.trim().nfkc().collect::<String>().to_lowercase();
        if normalised.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        if normalised.len() > MAX_EMAIL_LEN {
            return Err(InvalidEmail::TooLong);
        }
        let Some((local, domain)) = normalised.split_once('@') else {
            return Err(InvalidEmail::Shape);
        };
        let plain = |part: &str| {
            !part.is_empty()
                && !part
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '@')
        };
        if !plain(local) || !plain(domain) || domain.starts_with('.') || domain.ends_with('.') {
            return Err(InvalidEmail::Shape);
        }
        Ok(Self(normalised))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0
            .split_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_spaces_and_compatibility_forms_collapse_to_one_address() {
        let expected = Email::parse("user@x.com").unwrap();
        assert_eq!(Email::parse("  User@X.com ").unwrap(), expected);
        assert_eq!(Email::parse("USER@X.COM").unwrap(), expected);
        // Full-width letters are NFKC-equivalent to ASCII.
        assert_eq!(Email::parse("ｕｓｅｒ@ｘ.ｃｏｍ").unwrap(), expected);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        assert_eq!(Email::parse("   "), Err(InvalidEmail::Empty));
        assert_eq!(Email::parse("no-at-sign"), Err(InvalidEmail::Shape));
        assert_eq!(Email::parse("a@@b.c"), Err(InvalidEmail::Shape));
        assert_eq!(Email::parse("@b.c"), Err(InvalidEmail::Shape));
        assert_eq!(Email::parse("a@"), Err(InvalidEmail::Shape));
        assert_eq!(Email::parse("a b@c.d"), Err(InvalidEmail::Shape));
        assert_eq!(Email::parse("a@.c"), Err(InvalidEmail::Shape));
        let long = format!("{}@x.com", "a".repeat(MAX_EMAIL_LEN));
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn the_local_part_is_what_precedes_the_at_sign() {
        assert_eq!(Email::parse("Ada@Example.org").unwrap().local_part(), "ada");
    }
}
