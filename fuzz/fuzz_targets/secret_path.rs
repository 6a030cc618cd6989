//! Fuzzes secret paths and listing prefixes (`oxvault_core::secret_path`): any text, no panic;
//! what parses is well formed, kept exactly as given, and the same through `TryFrom`, `FromStr`
//! and JSON; a path is also a prefix that selects it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvault_core::secret_path::{
    InvalidSecretPath, MAX_SECRET_PATH_LEN, SecretPath, SecretPathPrefix, parse_prefix,
};

fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_path(text: &str) {
    let parsed = SecretPath::parse(text);
    assert_eq!(SecretPath::try_from(text.to_owned()), parsed);
    assert_eq!(text.parse::<SecretPath>(), parsed);
    if let Ok(json) = serde_json::to_string(text) {
        assert_eq!(
            serde_json::from_str::<SecretPath>(&json).ok(),
            parsed.clone().ok()
        );
    }
    if text.len() > MAX_SECRET_PATH_LEN {
        assert_eq!(parsed, Err(InvalidSecretPath::TooLong));
    }
    let Ok(path) = parsed else { return };
    assert_eq!(path.as_str(), text);
    assert!(!text.is_empty() && text.len() <= MAX_SECRET_PATH_LEN);
    assert!(path.segments().all(is_segment), "{text:?}");
    assert_eq!(path.segments().collect::<Vec<_>>().join("/"), text);
    assert_eq!(SecretPath::parse(path.as_str()).as_ref(), Ok(&path));
    // The path as a listing prefix selects it; as a folder (`path/`), only what is inside.
    let prefix = parse_prefix(text).unwrap_or_else(|err| panic!("{text:?} as a prefix: {err}"));
    assert!(prefix.matches(&path));
    if let Ok(folder) = parse_prefix(&format!("{text}/")) {
        assert!(!folder.matches(&path));
    }
}

fn check_prefix(text: &str) {
    let parsed = parse_prefix(text);
    assert_eq!(SecretPathPrefix::try_from(text.to_owned()), parsed);
    // A prefix is empty, or a path, or a path and one `/`, 512 characters at most with it
    // (a path of 512 has nothing inside it to list).
    let body = text.strip_suffix('/').unwrap_or(text);
    let expected =
        text.is_empty() || (text.len() <= MAX_SECRET_PATH_LEN && SecretPath::parse(body).is_ok());
    assert_eq!(parsed.is_ok(), expected, "{text:?}");
    if let Ok(prefix) = parsed {
        assert_eq!(prefix.as_str(), text);
        assert_eq!(prefix.is_empty(), text.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    // Paths arrive as URL text: only UTF-8 gets this far.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_path(text);
    check_prefix(text);
});
