//! Secret paths (`db/credentials`) and the prefixes that filter secret listings (`?prefix=db/`).
//!
//! A path names one secret inside a vault. It is the key of the secret's row, a part of the
//! AAD its ciphertext is bound to, and what access policies match against, so it has exactly
//! one spelling: parsing checks it and never rewrites it. Nothing is decoded (`%` is refused
//! outright, so `a%2Fb` can never turn into `a/b`), nothing is resolved (`.` and `..` segments
//! are refused, so `a/../b` can never reach `b`), and case is kept: `DB/x` and `db/x` are two
//! different secrets, and a policy on one says nothing about the other. Since no two texts
//! parse to the same path, no spelling trick can alias a secret someone else may read.
//!
//! The HTTP layer hands over the raw, undecoded wildcard tail of the URL; this module is the
//! only place that decides whether it is a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// Longest path, prefix or path pattern accepted, in characters (all of them are ASCII).
pub const MAX_SECRET_PATH_LEN: usize = 512;

/// Why a text is not a secret path (or path prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecretPath {
    #[error("secret path must not be empty")]
    Empty,
    #[error("secret path must be at most 512 characters")]
    TooLong,
    #[error("secret path must not contain `%`: paths are never percent-decoded")]
    PercentSign,
    #[error("secret path segments may only contain letters, digits, `.`, `_` and `-`")]
    BadCharacter,
    #[error("secret path must not start with `/`")]
    LeadingSlash,
    #[error("secret path must not end with `/`")]
    TrailingSlash,
    #[error("secret path must not contain an empty segment (`//`)")]
    EmptySegment,
    #[error("secret path must not contain a `.` or `..` segment")]
    DotSegment,
}

/// The path of a secret in a vault: 1 to 512 characters, segments of `[A-Za-z0-9._-]` joined
/// by single `/`, none of them `.` or `..`. Case-sensitive: `DB/x` and `db/x` are different
/// secrets. On the wire, a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "db/credentials")]
pub struct SecretPath(String);

impl SecretPath {
    /// Checks a path; the text is kept exactly as given.
    pub fn parse(text: &str) -> Result<Self, InvalidSecretPath> {
        check(text, Grammar::Path)?;
        Ok(Self(text.to_owned()))
    }

    /// The path's text, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments between the `/`s, first to last; never empty, never `.` or `..`.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.0.split('/')
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SecretPath {
    type Err = InvalidSecretPath;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for SecretPath {
    type Error = InvalidSecretPath;

    /// Checks a path and keeps the string itself: no second allocation when deserialising.
    fn try_from(text: String) -> Result<Self, Self::Error> {
        check(&text, Grammar::Path)?;
        Ok(Self(text))
    }
}

impl Serialize for SecretPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl From<SecretPath> for String {
    fn from(path: SecretPath) -> String {
        path.0
    }
}

/// A filter on secret listings (`GET .../secrets?prefix=`): the listed paths are those that
/// start with this text. Empty (list everything) or up to 512 characters of the path charset;
/// it may end with `/` to select a folder (`db/` lists `db/x` but not `dbx`, while `db` lists
/// both). It must not start with `/` nor hold an empty, `.` or `..` segment, even as its last,
/// unfinished segment: `db/.` is refused although `db/.env` is a valid path.
///
/// A prefix only narrows a listing; what each listed secret reveals is still decided by
/// policies. Compare it as text (`starts_with`, or SQL `starts_with(path, $1)`), never as a
/// SQL `LIKE` pattern: `_` is a valid path character and a `LIKE` wildcard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "db/")]
pub struct SecretPathPrefix(String);

impl SecretPathPrefix {
    /// Checks a prefix; the text is kept exactly as given.
    pub fn parse(text: &str) -> Result<Self, InvalidSecretPath> {
        check(text, Grammar::Prefix)?;
        Ok(Self(text.to_owned()))
    }

    /// The prefix's text, exactly as it was parsed; empty when it selects everything.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this prefix selects every path.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a path falls under this prefix (case-sensitively, as text).
    pub fn matches(&self, path: &SecretPath) -> bool {
        path.as_str().starts_with(self.as_str())
    }
}

/// Parses the `prefix` filter of a secret listing; see [`SecretPathPrefix`].
pub fn parse_prefix(text: &str) -> Result<SecretPathPrefix, InvalidSecretPath> {
    SecretPathPrefix::parse(text)
}

impl fmt::Display for SecretPathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SecretPathPrefix {
    type Err = InvalidSecretPath;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for SecretPathPrefix {
    type Error = InvalidSecretPath;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        check(&text, Grammar::Prefix)?;
        Ok(Self(text))
    }
}

impl Serialize for SecretPathPrefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// The three languages built on the path segment charset. Paths, prefixes and policy patterns
/// share one checker so that they can never disagree on what a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grammar {
    /// A secret path.
    Path,
    /// A listing prefix: may be empty and may end with `/`.
    Prefix,
    /// A policy pattern: as a path, plus segments that are exactly `*` or `**`.
    Pattern,
}

/// What the shared checker found wrong. Each public error names these in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    Empty,
    TooLong,
    PercentSign,
    BadCharacter,
    LeadingSlash,
    TrailingSlash,
    EmptySegment,
    DotSegment,
    /// `*` inside a segment with other characters (`a*`, `***`): patterns only.
    PartialWildcard,
}

impl From<Flaw> for InvalidSecretPath {
    fn from(flaw: Flaw) -> Self {
        match flaw {
            Flaw::Empty => Self::Empty,
            Flaw::TooLong => Self::TooLong,
            Flaw::PercentSign => Self::PercentSign,
            // `*` is not in a path's charset, so a partial wildcard is a bad character there.
            Flaw::BadCharacter | Flaw::PartialWildcard => Self::BadCharacter,
            Flaw::LeadingSlash => Self::LeadingSlash,
            Flaw::TrailingSlash => Self::TrailingSlash,
            Flaw::EmptySegment => Self::EmptySegment,
            Flaw::DotSegment => Self::DotSegment,
        }
    }
}

/// Checks `text` against a grammar. Byte-wise: every accepted character is ASCII, so any
/// other byte is refused and no check can land inside a multi-byte character.
pub(crate) fn check(text: &str, grammar: Grammar) -> Result<(), Flaw> {
    if text.is_empty() {
        return if grammar == Grammar::Prefix {
            Ok(())
        } else {
            Err(Flaw::Empty)
        };
    }
    // Length first: a megabyte of junk is refused without being scanned.
    if text.len() > MAX_SECRET_PATH_LEN {
        return Err(Flaw::TooLong);
    }
    // Its own error, so a client that percent-encoded a path learns why it was refused.
    if text.contains('%') {
        return Err(Flaw::PercentSign);
    }
    let wildcards = grammar == Grammar::Pattern;
    if !text
        .bytes()
        .all(|b| is_segment_byte(b) || b == b'/' || (wildcards && b == b'*'))
    {
        return Err(Flaw::BadCharacter);
    }
    if text.starts_with('/') {
        return Err(Flaw::LeadingSlash);
    }
    let body = match grammar {
        // One trailing `/` makes a folder prefix; a second one is an empty segment below.
        Grammar::Prefix => text.strip_suffix('/').unwrap_or(text),
        Grammar::Path | Grammar::Pattern if text.ends_with('/') => {
            return Err(Flaw::TrailingSlash);
        }
        Grammar::Path | Grammar::Pattern => text,
    };
    for segment in body.split('/') {
        match segment {
            "" => return Err(Flaw::EmptySegment),
            "." | ".." => return Err(Flaw::DotSegment),
            "*" | "**" if wildcards => {}
            _ if segment.contains('*') => return Err(Flaw::PartialWildcard),
            _ => {}
        }
    }
    Ok(())
}

/// The characters of a segment: `[A-Za-z0-9._-]`.
fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_kept_exactly_as_given() {
        let path = SecretPath::parse("prod/DB.main/api_key-2").unwrap();
        assert_eq!(path.as_str(), "prod/DB.main/api_key-2");
        assert_eq!(path.to_string(), "prod/DB.main/api_key-2");
        assert_eq!(
            path.segments().collect::<Vec<_>>(),
            ["prod", "DB.main", "api_key-2"]
        );
    }

    #[test]
    fn a_single_segment_is_a_path() {
        assert_eq!(SecretPath::parse("x").unwrap().segments().count(), 1);
    }

    #[test]
    fn dots_are_fine_inside_a_segment_but_not_as_the_whole_segment() {
        assert!(SecretPath::parse(".env").is_ok());
        assert!(SecretPath::parse("a/..b/c...").is_ok());
        assert_eq!(
            SecretPath::parse("a/./b"),
            Err(InvalidSecretPath::DotSegment)
        );
        assert_eq!(
            SecretPath::parse("a/../b"),
            Err(InvalidSecretPath::DotSegment)
        );
        assert_eq!(SecretPath::parse(".."), Err(InvalidSecretPath::DotSegment));
        assert_eq!(SecretPath::parse("a/."), Err(InvalidSecretPath::DotSegment));
    }

    #[test]
    fn slashes_at_either_end_or_doubled_are_refused() {
        assert_eq!(
            SecretPath::parse("/a"),
            Err(InvalidSecretPath::LeadingSlash)
        );
        assert_eq!(
            SecretPath::parse("a/"),
            Err(InvalidSecretPath::TrailingSlash)
        );
        assert_eq!(
            SecretPath::parse("a//b"),
            Err(InvalidSecretPath::EmptySegment)
        );
        assert_eq!(SecretPath::parse("/"), Err(InvalidSecretPath::LeadingSlash));
    }

    #[test]
    fn percent_signs_are_refused_so_nothing_is_ever_decoded() {
        assert_eq!(
            SecretPath::parse("a%2Fb"),
            Err(InvalidSecretPath::PercentSign)
        );
        assert_eq!(
            SecretPath::parse("a%2fb"),
            Err(InvalidSecretPath::PercentSign)
        );
        assert_eq!(
            SecretPath::parse("%2E%2E"),
            Err(InvalidSecretPath::PercentSign)
        );
        assert_eq!(
            SecretPath::parse("100%"),
            Err(InvalidSecretPath::PercentSign)
        );
    }

    #[test]
    fn characters_outside_the_segment_charset_are_refused() {
        for bad in [
            "a b", "a\\b", "a*b", "*", "ä", "a?b", "a#b", "a\0b", "a\nb", "a:b",
        ] {
            assert_eq!(
                SecretPath::parse(bad),
                Err(InvalidSecretPath::BadCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_empty_path_and_paths_over_512_characters_are_refused() {
        assert_eq!(SecretPath::parse(""), Err(InvalidSecretPath::Empty));
        let longest = "a".repeat(MAX_SECRET_PATH_LEN);
        assert!(SecretPath::parse(&longest).is_ok());
        assert_eq!(
            SecretPath::parse(&format!("{longest}b")),
            Err(InvalidSecretPath::TooLong)
        );
    }

    #[test]
    fn paths_are_case_sensitive() {
        let lower = SecretPath::parse("db/x").unwrap();
        let upper = SecretPath::parse("DB/x").unwrap();
        assert_ne!(lower, upper);
    }

    #[test]
    fn a_path_is_a_plain_string_on_the_wire_and_is_checked_when_read() {
        let path = SecretPath::parse("db/credentials").unwrap();
        assert_eq!(serde_json::to_string(&path).unwrap(), "\"db/credentials\"");
        let back: SecretPath = serde_json::from_str("\"db/credentials\"").unwrap();
        assert_eq!(back, path);
        assert!(serde_json::from_str::<SecretPath>("\"db/../x\"").is_err());
        assert!(serde_json::from_str::<SecretPath>("\"db%2Fx\"").is_err());
        assert!(serde_json::from_str::<SecretPath>("\"\"").is_err());
    }

    #[test]
    fn an_empty_prefix_selects_every_path() {
        let prefix = parse_prefix("").unwrap();
        assert!(prefix.is_empty());
        assert!(prefix.matches(&SecretPath::parse("anything/at/all").unwrap()));
        assert_eq!(SecretPathPrefix::default(), prefix);
    }

    #[test]
    fn a_folder_prefix_selects_only_what_is_inside_the_folder() {
        let folder = parse_prefix("db/").unwrap();
        let bare = parse_prefix("db").unwrap();
        let inside = SecretPath::parse("db/x").unwrap();
        let sibling = SecretPath::parse("dbx/y").unwrap();
        assert!(folder.matches(&inside));
        assert!(!folder.matches(&sibling));
        assert!(bare.matches(&inside));
        assert!(bare.matches(&sibling));
        assert!(!folder.matches(&SecretPath::parse("DB/x").unwrap()));
    }

    #[test]
    fn prefixes_refuse_the_same_tricks_as_paths() {
        assert_eq!(parse_prefix("/"), Err(InvalidSecretPath::LeadingSlash));
        assert_eq!(parse_prefix("/db"), Err(InvalidSecretPath::LeadingSlash));
        assert_eq!(parse_prefix("db//"), Err(InvalidSecretPath::EmptySegment));
        assert_eq!(parse_prefix("a//b"), Err(InvalidSecretPath::EmptySegment));
        assert_eq!(parse_prefix("../"), Err(InvalidSecretPath::DotSegment));
        assert_eq!(parse_prefix("db/."), Err(InvalidSecretPath::DotSegment));
        assert_eq!(parse_prefix("db/.."), Err(InvalidSecretPath::DotSegment));
        assert_eq!(parse_prefix("db%2F"), Err(InvalidSecretPath::PercentSign));
        assert_eq!(parse_prefix("d*"), Err(InvalidSecretPath::BadCharacter));
        let too_long = "a".repeat(MAX_SECRET_PATH_LEN + 1);
        assert_eq!(parse_prefix(&too_long), Err(InvalidSecretPath::TooLong));
    }

    #[test]
    fn a_prefix_is_read_from_the_wire_through_its_parser() {
        let prefix: SecretPathPrefix = serde_json::from_str("\"db/\"").unwrap();
        assert_eq!(prefix.as_str(), "db/");
        assert_eq!(serde_json::to_string(&prefix).unwrap(), "\"db/\"");
        assert!(serde_json::from_str::<SecretPathPrefix>("\"/db\"").is_err());
    }
}

/// Property tests of SECURITY.md case 8: a path has one spelling, so no trick can alias one.
#[cfg(test)]
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    /// Segments that are fine, some of them case twins or dotted.
    const GOOD: &[&str] = &[
        "a", "A", "db", "DB", ".env", "..x", "x..", "k_1", "a-b", "v1.2",
    ];
    /// What path tricks are made of; every one of them must be refused.
    const TRICKS: &[&str] = &["..", ".", "", "%2F", "%2f", "%2E%2E", "%00", "%"];

    fn flip_case(text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    fn assert_well_formed(path: &SecretPath) -> Result<(), TestCaseError> {
        let text = path.as_str();
        prop_assert!(!text.is_empty() && text.len() <= MAX_SECRET_PATH_LEN);
        prop_assert!(!text.contains('%'));
        prop_assert!(!text.starts_with('/') && !text.ends_with('/'));
        for segment in path.segments() {
            prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
            prop_assert!(segment.bytes().all(is_segment_byte));
        }
        Ok(())
    }

    proptest! {
        // (1) Whatever parses is well formed and round-trips, as text and on the wire.
        #[test]
        fn any_accepted_path_is_well_formed_and_round_trips(
            text in prop_oneof![
                "[a-zA-Z0-9._%/*-]{0,24}",
                "([a-zA-Z0-9._-]{1,4}/){0,5}[a-zA-Z0-9._-]{1,4}",
                "[./%a2F]{0,12}",
                any::<String>(),
            ]
        ) {
            if let Ok(path) = SecretPath::parse(&text) {
                assert_well_formed(&path)?;
                prop_assert_eq!(path.as_str(), text.as_str());
                prop_assert_eq!(SecretPath::parse(path.as_str()), Ok(path.clone()));
                prop_assert_eq!(path.segments().collect::<Vec<_>>().join("/"), text.clone());
                let json = serde_json::to_string(&path).unwrap();
                prop_assert_eq!(serde_json::from_str::<SecretPath>(&json).unwrap(), path);
            }
        }

        // (2) A path built with tricks is refused; one without is kept exactly as typed, so two
        // spellings can never name one secret (case included).
        #[test]
        fn paths_with_tricks_are_refused_and_others_are_kept_verbatim(
            tokens in vec(
                prop_oneof![3 => select(GOOD), 1 => select(TRICKS)].prop_map(str::to_owned),
                1..8,
            ),
            leading_slash in any::<bool>(),
            trailing_slash in any::<bool>(),
            flip in any::<bool>(),
        ) {
            let mut text = tokens.join("/");
            if leading_slash {
                text.insert(0, '/');
            }
            if trailing_slash {
                text.push('/');
            }
            if flip {
                text = flip_case(&text);
            }
            let tricked = leading_slash
                || trailing_slash
                || tokens.iter().any(|token| TRICKS.contains(&token.as_str()));
            match SecretPath::parse(&text) {
                Ok(path) => {
                    prop_assert!(!tricked, "{:?} was accepted", text);
                    prop_assert_eq!(path.as_str(), text.as_str());
                    let twin = flip_case(&text);
                    if twin != text {
                        prop_assert_ne!(SecretPath::parse(&twin).unwrap(), path);
                    }
                }
                Err(_) => prop_assert!(tricked, "{:?} was refused", text),
            }
        }

        // Any text at all, huge or full of control characters: no panic, and the three
        // grammars agree with each other, with `TryFrom`, and with the wire.
        #[test]
        fn paths_prefixes_and_patterns_agree_on_any_text(
            text in prop_oneof![
                crate::any_text(),
                "[a-zA-Z0-9._/*-]{505,520}",
                "[a-z]{510,513}/",
                "([a-z.*]{1,3}/){0,4}[a-z.*%]{0,3}/?",
            ]
        ) {
            let path = SecretPath::parse(&text);
            let prefix = parse_prefix(&text);
            let pattern = check(&text, Grammar::Pattern);
            prop_assert_eq!(SecretPath::try_from(text.clone()), path.clone());
            prop_assert_eq!(text.parse::<SecretPath>(), path.clone());
            prop_assert_eq!(SecretPathPrefix::try_from(text.clone()), prefix.clone());
            let json = serde_json::to_string(&text).unwrap();
            prop_assert_eq!(serde_json::from_str::<SecretPath>(&json).ok(), path.clone().ok());
            if text.len() > MAX_SECRET_PATH_LEN {
                prop_assert_eq!(path.clone(), Err(InvalidSecretPath::TooLong));
                prop_assert_eq!(prefix.clone(), Err(InvalidSecretPath::TooLong));
                prop_assert_eq!(pattern, Err(Flaw::TooLong));
            }
            // Without a wildcard, a pattern is a path; without a trailing `/`, a non-empty
            // prefix is one too, and with it, what precedes it is (512 characters in all: a
            // path of 512 has nothing inside it to list).
            if !text.contains('*') {
                prop_assert_eq!(pattern.is_ok(), path.is_ok());
            }
            if let Some(folder) = text.strip_suffix('/') {
                let fits = text.len() <= MAX_SECRET_PATH_LEN;
                prop_assert_eq!(prefix.is_ok(), fits && SecretPath::parse(folder).is_ok());
            } else if !text.is_empty() {
                prop_assert_eq!(prefix.is_ok(), path.is_ok());
            }
            if let Ok(path) = &path {
                assert_well_formed(path)?;
                prop_assert!(prefix.as_ref().is_ok_and(|prefix| prefix.matches(path)));
                // A folder prefix selects what is inside the path, not the path itself.
                if let Ok(folder) = parse_prefix(&format!("{text}/")) {
                    prop_assert!(!folder.matches(path));
                }
            }
        }

        // Prefixes: the same charset, no dot or empty segments, at most one trailing `/`.
        #[test]
        fn any_accepted_prefix_is_well_formed(text in "[a-zA-Z0-9._%/*-]{0,16}") {
            if let Ok(prefix) = parse_prefix(&text) {
                prop_assert_eq!(prefix.as_str(), text.as_str());
                let body = text.strip_suffix('/').unwrap_or(&text);
                if !body.is_empty() {
                    prop_assert!(!body.starts_with('/'));
                    for segment in body.split('/') {
                        prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                        prop_assert!(segment.bytes().all(is_segment_byte));
                    }
                } else {
                    prop_assert!(text.is_empty());
                }
            }
        }
    }
}
