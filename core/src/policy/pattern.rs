//! Path patterns, the globs that say which secrets a policy covers. Tenants write them, so
//! they are checked with the grammar of secret paths and matched in polynomial time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use crate::secret_path::{self, Flaw, Grammar, SecretPath};

/// Why a text is not a path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPathPattern {
    #[error("secret_path_pattern must not be empty")]
    Empty,
    #[error("secret_path_pattern must be at most 512 characters")]
    TooLong,
    #[error("secret_path_pattern must not contain `%`: patterns are never percent-decoded")]
    PercentSign,
    #[error(
        "secret_path_pattern segments may only contain letters, digits, `.`, `_` and `-`, or be `*` or `**`"
    )]
    BadCharacter,
    #[error("secret_path_pattern must not start with `/`")]
    LeadingSlash,
    #[error("secret_path_pattern must not end with `/`")]
    TrailingSlash,
    #[error("secret_path_pattern must not contain an empty segment (`//`)")]
    EmptySegment,
    #[error("secret_path_pattern must not contain a `.` or `..` segment")]
    DotSegment,
    #[error("`*` and `**` must be whole segments of secret_path_pattern (`db/*`, not `db/a*`)")]
    PartialWildcard,
}

impl From<Flaw> for InvalidPathPattern {
    fn from(flaw: Flaw) -> Self {
        match flaw {
            Flaw::Empty => Self::Empty,
            Flaw::TooLong => Self::TooLong,
            Flaw::PercentSign => Self::PercentSign,
            Flaw::BadCharacter => Self::BadCharacter,
            Flaw::LeadingSlash => Self::LeadingSlash,
            Flaw::TrailingSlash => Self::TrailingSlash,
            Flaw::EmptySegment => Self::EmptySegment,
            Flaw::DotSegment => Self::DotSegment,
            Flaw::PartialWildcard => Self::PartialWildcard,
        }
    }
}

/// A glob over secret paths: segments as in a [`SecretPath`], plus whole segments `*` (exactly
/// one path segment) and `**` (zero or more path segments). `db/*` matches `db/x` but not
/// `db/x/y`; `db/**` matches `db`, `db/x` and `db/x/y`; `**` matches every path. Literal
/// segments compare case-sensitively, like paths. At most 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, example = "prod/db/**")]
pub struct PathPattern(String);

impl PathPattern {
    /// Checks a pattern; the text is kept exactly as given.
    pub fn parse(text: &str) -> Result<Self, InvalidPathPattern> {
        secret_path::check(text, Grammar::Pattern)?;
        Ok(Self(text.to_owned()))
    }

    /// The pattern's text, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern has a `*` or `**` segment; without one it matches only itself.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains('*')
    }

    /// Whether `path` matches this pattern.
    ///
    /// A dynamic programme over (pattern segment, path segment) rather than backtracking:
    /// `**/**/**/...` against a long path would take exponential time to backtrack, and
    /// patterns are written by tenants. This is O(pattern segments x path segments), at most
    /// 256 x 256 steps.
    pub fn matches(&self, path: &SecretPath) -> bool {
        let path: Vec<&str> = path.segments().collect();
        // `reachable[j]`: the pattern segments seen so far match the first `j` path segments.
        let mut reachable = vec![false; path.len() + 1];
        if let Some(start) = reachable.first_mut() {
            *start = true;
        }
        for segment in self.0.split('/') {
            if segment == "**" {
                // Zero or more segments: anything reachable stays so, and so does all after it.
                let mut seen = false;
                for state in &mut reachable {
                    seen |= *state;
                    *state = seen;
                }
            } else {
                // Exactly one segment: shift by one, keeping the steps this segment allows.
                reachable = std::iter::once(false)
                    .chain(
                        reachable
                            .iter()
                            .zip(&path)
                            .map(|(&state, &part)| state && (segment == "*" || segment == part)),
                    )
                    .collect();
            }
            if !reachable.contains(&true) {
                return false;
            }
        }
        reachable.last().copied().unwrap_or(false)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PathPattern {
    type Err = InvalidPathPattern;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for PathPattern {
    type Error = InvalidPathPattern;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        secret_path::check(&text, Grammar::Pattern)?;
        Ok(Self(text))
    }
}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;
    use crate::policy::fixtures::{path, pattern};

    #[test]
    fn a_single_star_matches_exactly_one_segment() {
        let glob = pattern("db/*");
        assert!(glob.matches(&path("db/x")));
        assert!(!glob.matches(&path("db")));
        assert!(!glob.matches(&path("db/x/y")));
        assert!(!glob.matches(&path("other/x")));
        assert!(pattern("*/password").matches(&path("prod/password")));
        assert!(!pattern("*/password").matches(&path("a/prod/password")));
    }

    #[test]
    fn a_double_star_matches_zero_or_more_segments() {
        let glob = pattern("db/**");
        assert!(glob.matches(&path("db")));
        assert!(glob.matches(&path("db/x")));
        assert!(glob.matches(&path("db/x/y/z")));
        assert!(!glob.matches(&path("dbx/y")));
        assert!(!glob.matches(&path("other/db/x")));
        assert!(pattern("**").matches(&path("any/thing")));
        assert!(pattern("**/key").matches(&path("key")));
        assert!(pattern("**/key").matches(&path("a/b/key")));
        assert!(!pattern("**/key").matches(&path("a/b/key/x")));
        assert!(pattern("a/**/z").matches(&path("a/z")));
        assert!(pattern("a/**/z").matches(&path("a/b/c/z")));
        assert!(!pattern("a/**/z").matches(&path("a/b/c/y")));
    }

    #[test]
    fn literal_segments_match_case_sensitively_and_whole() {
        assert!(pattern("db/password").matches(&path("db/password")));
        assert!(!pattern("db/password").matches(&path("DB/password")));
        assert!(!pattern("db/password").matches(&path("db/password2")));
        assert!(!pattern("db/pass").matches(&path("db/password")));
    }

    #[test]
    fn wildcards_must_be_whole_segments() {
        for bad in ["a*", "*a", "a*b", "***", "db/x*", "db/**x"] {
            assert_eq!(
                PathPattern::parse(bad),
                Err(InvalidPathPattern::PartialWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn patterns_refuse_the_same_tricks_as_paths() {
        use InvalidPathPattern as E;
        assert_eq!(PathPattern::parse(""), Err(E::Empty));
        assert_eq!(PathPattern::parse("/db/*"), Err(E::LeadingSlash));
        assert_eq!(PathPattern::parse("db/"), Err(E::TrailingSlash));
        assert_eq!(PathPattern::parse("db//x"), Err(E::EmptySegment));
        assert_eq!(PathPattern::parse("db/../*"), Err(E::DotSegment));
        assert_eq!(PathPattern::parse("./*"), Err(E::DotSegment));
        assert_eq!(PathPattern::parse("db%2F*"), Err(E::PercentSign));
        assert_eq!(PathPattern::parse("db/?"), Err(E::BadCharacter));
        assert_eq!(PathPattern::parse(&"a".repeat(513)), Err(E::TooLong));
        assert!(PathPattern::parse(&"a".repeat(512)).is_ok());
    }

    #[test]
    fn many_double_stars_on_a_long_path_finish_at_once() {
        // 170 `**` segments and a 256-segment path: a backtracking matcher tries a number of
        // splits exponential in that, a dynamic programme about 44,000 steps.
        let glob = pattern(&format!("{}z", "**/".repeat(170)));
        let miss = path(&format!("{}b", "a/".repeat(255)));
        let hit = path(&format!("{}z", "a/".repeat(255)));
        let started = Instant::now();
        assert!(!glob.matches(&miss));
        assert!(glob.matches(&hit));
        let alternating = pattern(&format!("{}z", "**/a/".repeat(100)));
        assert!(!alternating.matches(&miss));
        // Generous: this is microseconds, even unoptimised on a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_pattern_is_a_plain_string_on_the_wire_and_is_checked_when_read() {
        let glob: PathPattern = serde_json::from_str("\"db/**\"").unwrap();
        assert_eq!(glob.as_str(), "db/**");
        assert_eq!(serde_json::to_string(&glob).unwrap(), "\"db/**\"");
        assert!(glob.has_wildcards());
        assert!(!pattern("db/x").has_wildcards());
        assert!(serde_json::from_str::<PathPattern>("\"db/a*\"").is_err());
    }

    fn is_path_segment(segment: &str) -> bool {
        SecretPath::parse(segment).is_ok_and(|path| path.segments().count() == 1)
    }

    // Property tests of what a policy is read from, over any text a tenant can send.
    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        // Whatever parses is `*`, `**` and path segments, kept as given; without wildcards it
        // is the one path it matches. Matching any path never panics.
        #[test]
        fn an_accepted_pattern_is_well_formed_and_round_trips(
            text in prop_oneof![
                crate::any_text(),
                "([a-zA-Z.*%]{1,3}/){0,5}[a-zA-Z.*]{1,3}",
            ],
            other in "([a-zA-Z.]{1,2}/){0,4}[a-zA-Z]{1,2}",
        ) {
            let Ok(glob) = PathPattern::parse(&text) else {
                return Ok(());
            };
            prop_assert_eq!(glob.as_str(), text.as_str());
            prop_assert!(!text.is_empty() && text.len() <= secret_path::MAX_SECRET_PATH_LEN);
            let mut wildcards = false;
            for segment in text.split('/') {
                let star = segment == "*" || segment == "**";
                wildcards |= star;
                prop_assert!(star || is_path_segment(segment), "{:?} in {:?}", segment, text);
            }
            prop_assert_eq!(glob.has_wildcards(), wildcards);
            prop_assert_eq!(PathPattern::parse(glob.as_str()), Ok(glob.clone()));
            let json = serde_json::to_string(&glob).unwrap();
            prop_assert_eq!(serde_json::from_str::<PathPattern>(&json).unwrap(), glob.clone());
            if let Ok(other) = SecretPath::parse(&other) {
                let matched = glob.matches(&other);
                if !wildcards {
                    prop_assert_eq!(matched, other.as_str() == text);
                }
            }
            if !wildcards {
                prop_assert!(glob.matches(&SecretPath::parse(&text).unwrap()));
            }
        }
    }

    /// Property tests of SECURITY.md case 8 (no path trick widens access) on the matcher
    /// alone. Their strategies are named like the helpers above, hence a module of their own;
    /// the evaluation's share of the suite builds on them.
    pub(in crate::policy) mod properties {
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        use super::*;

        /// A small alphabet, so that random paths and patterns often meet; it has case twins
        /// (`a`/`A`) and dotted names, which must stay distinct from each other.
        const SEGMENTS: &[&str] = &["a", "A", "b", "B1", ".env", "x-y", "..z", "c_d"];

        pub(in crate::policy) fn segment() -> impl Strategy<Value = String> {
            select(SEGMENTS).prop_map(str::to_owned)
        }

        pub(in crate::policy) fn path() -> impl Strategy<Value = SecretPath> {
            vec(segment(), 1..7).prop_map(|parts| SecretPath::parse(&parts.join("/")).unwrap())
        }

        pub(in crate::policy) fn pattern_token() -> impl Strategy<Value = String> {
            prop_oneof![3 => segment(), 1 => Just("*".to_owned()), 1 => Just("**".to_owned())]
        }

        pub(in crate::policy) fn pattern() -> impl Strategy<Value = PathPattern> {
            vec(pattern_token(), 1..6)
                .prop_map(|parts| PathPattern::parse(&parts.join("/")).unwrap())
        }

        /// The obvious recursive matcher, exponential but fine on small inputs: the reference the
        /// dynamic programme is checked against.
        fn reference_match(glob: &[&str], path: &[&str]) -> bool {
            match glob.split_first() {
                None => path.is_empty(),
                Some((&"**", rest)) => {
                    (0..=path.len()).any(|skip| reference_match(rest, &path[skip..]))
                }
                Some((&token, rest)) => match path.split_first() {
                    Some((&part, tail)) => {
                        (token == "*" || token == part) && reference_match(rest, tail)
                    }
                    None => false,
                },
            }
        }

        proptest! {
            // (4) `*` stands for exactly one segment, never for a run containing `/`.
            #[test]
            fn a_single_star_never_matches_across_a_slash(
                tokens in vec(prop_oneof![segment(), Just("*".to_owned())], 1..6),
                fills in vec(segment(), 6),
                extra in segment(),
                other in path(),
            ) {
                let glob = PathPattern::parse(&tokens.join("/")).unwrap();
                let fill = |i: usize| fills[i].clone();
                let exact: Vec<String> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, token)| if token == "*" { fill(i) } else { token.clone() })
                    .collect();
                prop_assert!(glob.matches(&SecretPath::parse(&exact.join("/")).unwrap()));
                for (i, token) in tokens.iter().enumerate() {
                    if token == "*" {
                        // The star's segment widened to two segments.
                        let mut widened = exact.clone();
                        widened[i] = format!("{}/{}", fill(i), extra);
                        let widened = SecretPath::parse(&widened.join("/")).unwrap();
                        prop_assert!(!glob.matches(&widened), "{} matched {}", glob, widened);
                    }
                }
                if other.segments().count() != tokens.len() {
                    prop_assert!(!glob.matches(&other));
                }
            }

            // The dynamic programme agrees with the obvious recursive matcher.
            #[test]
            fn the_matcher_agrees_with_a_naive_reference(glob in pattern(), target in path()) {
                let glob_parts: Vec<&str> = glob.as_str().split('/').collect();
                let path_parts: Vec<&str> = target.segments().collect();
                prop_assert_eq!(glob.matches(&target), reference_match(&glob_parts, &path_parts));
            }
        }
    }
}
