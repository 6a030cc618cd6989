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
    ///
    /// NFKC again after lower-casing: lower case can make a letter that composes with the
    /// mark after it where its capital did not (`J` + caron stays two characters, `j` + caron
    /// becomes `ǰ`), so without it the normalised text would not be normal, and `J̌@x` and `ǰ@x`
    /// would be two accounts.
    pub fn parse(text: &str) -> Result<Self, InvalidEmail> {
        let normalised: String = text
            .trim()
            .nfkc()
            .collect::<String>()
            .to_lowercase()
            .nfkc()
            .collect();
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
    fn a_capital_and_a_mark_that_compose_only_in_lower_case_give_the_composed_address() {
        // `J` + caron has no precomposed capital, `j` + caron is `ǰ` (U+01F0): found by the
        // property below, when NFKC ran only before lower-casing.
        let composed = Email::parse("\u{1f0}@x.com").unwrap();
        assert_eq!(composed.as_str(), "\u{1f0}@x.com");
        assert_eq!(Email::parse("J\u{30c}@x.com").unwrap(), composed);
        assert_eq!(Email::parse("j\u{30c}@x.com").unwrap(), composed);
        assert_eq!(
            Email::parse("T\u{308}@x.com").unwrap().as_str(),
            "\u{1e97}@x.com"
        );
    }

    #[test]
    fn the_local_part_is_what_precedes_the_at_sign() {
        assert_eq!(Email::parse("Ada@Example.org").unwrap().local_part(), "ada");
    }
}

/// Property tests: the normalised form is a fixed point, so one person is one address.
#[cfg(test)]
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;
    use unicode_normalization::is_nfkc;

    use super::*;

    /// Pieces whose case or compatibility forms interact: letters whose lower case composes
    /// with a following mark where the capital does not (`J`, `T`, `H`, `W`, `Y`), those
    /// marks, dotted capital I (lower case adds a mark), sigma (final form in context), sharp
    /// s, a titlecase digraph, the Kelvin sign, full-width letters, spaces and `@`.
    const PIECES: &[&str] = &[
        "a", "A", "J", "j", "T", "H", "W", "Y", "w", ".", "+", "1", "\u{30c}", "\u{308}",
        "\u{30a}", "\u{331}", "\u{301}", "\u{323}", "\u{345}", "\u{130}", "\u{3a3}", "\u{3c3}",
        "\u{3c2}", "\u{391}", "\u{df}", "\u{1e9e}", "\u{1c5}", "\u{212a}", "\u{ff55}", "\u{ff21}",
        "\u{2160}", " ", "\u{3000}", "\t", "@",
    ];

    fn address_like() -> impl Strategy<Value = String> {
        let side = || vec(select(PIECES), 1..10).prop_map(|pieces| pieces.concat());
        (side(), side()).prop_map(|(local, domain)| format!("{local}@{domain}"))
    }

    proptest! {
        #![proptest_config(crate::proptest_config(512))]

        // Whatever is accepted is bounded, normal, lower case, of the documented shape, and
        // parses back to itself: normalising twice changes nothing.
        #[test]
        fn an_accepted_address_is_normal_and_parses_back_to_itself(
            text in prop_oneof![crate::any_text(), address_like()],
        ) {
            if let Ok(email) = Email::parse(&text) {
                let normal = email.as_str();
                prop_assert!(!normal.is_empty() && normal.len() <= MAX_EMAIL_LEN);
                prop_assert!(is_nfkc(normal), "{:?} is not NFKC", normal);
                prop_assert_eq!(normal.to_lowercase(), normal);
                prop_assert_eq!(normal.matches('@').count(), 1);
                prop_assert!(!normal.chars().any(|c| c.is_whitespace() || c.is_control()));
                let (local, domain) = normal.split_once('@').unwrap_or_default();
                prop_assert!(!local.is_empty() && !domain.is_empty());
                prop_assert!(!domain.starts_with('.') && !domain.ends_with('.'));
                prop_assert_eq!(email.local_part(), local);
                prop_assert_eq!(Email::parse(normal), Ok(email.clone()));
            }
        }

        // ASCII case and surrounding spaces never make a second address.
        #[test]
        fn case_and_surrounding_spaces_never_change_an_ascii_address(
            text in "[a-zA-Z0-9._+-]{1,16}@[a-zA-Z0-9.-]{1,16}",
            pad in "[ \t\n]{0,3}",
        ) {
            let shouted = format!("{pad}{}{pad}", text.to_ascii_uppercase());
            prop_assert_eq!(Email::parse(&shouted), Email::parse(&text.to_ascii_lowercase()));
        }
    }
}
