//! Fuzzes email normalisation (`oxvault_core::email`): any text, no panic; what parses is
//! bounded, NFKC, lower case, one `@` with something plain on each side, and parses back to
//! itself, so one person is one account and one rate-limit counter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvault_core::email::{Email, MAX_EMAIL_LEN};
use unicode_normalization::is_nfkc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = Email::parse(text) else {
        return;
    };
    let normal = email.as_str();
    assert!(
        !normal.is_empty() && normal.len() <= MAX_EMAIL_LEN,
        "{text:?}"
    );
    assert!(is_nfkc(normal), "{text:?} gave {normal:?}, not NFKC");
    assert_eq!(normal.to_lowercase(), normal, "{text:?}");
    let (local, domain) = normal
        .split_once('@')
        .unwrap_or_else(|| panic!("{normal:?}"));
    assert!(!local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    assert!(!domain.starts_with('.') && !domain.ends_with('.'));
    assert!(!normal.chars().any(|c| c.is_whitespace() || c.is_control()));
    assert_eq!(email.local_part(), local);
    assert_eq!(
        Email::parse(normal).as_ref(),
        Ok(&email),
        "{text:?} gave {normal:?}"
    );
});
