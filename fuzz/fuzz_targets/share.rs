//! Fuzzes what a share link brings in (`oxvault_core::share`, and the UUID ids of
//! `oxvault_core::ids` that share its form): ids parse back from the one text they print as;
//! `loggable_path` never lets a segment after a share prefix through unless it is a route's own
//! word, and redacting twice changes nothing; a share request read from any JSON checks without
//! panicking, and what passes keeps every rule.
#![no_main]

use std::borrow::Cow;

use chrono::{DateTime, Duration};
use libfuzzer_sys::fuzz_target;
use oxvault_core::email::Email;
use oxvault_core::ids::{SecretId, VaultId};
use oxvault_core::policy::Cidr;
use oxvault_core::share::{
    CreateShareRequest, MAX_SHARE_ALLOWLIST, MAX_SHARE_DAYS, Recipient, RecipientType, ShareId,
    ShareSpec, is_usable_passphrase, loggable_path,
};

const PREFIXES: [&str; 3] = ["/v1/share/", "/v1/shares/", "/s/"];
const WORDS: [&str; 3] = ["status", "accept", "decline"];

fn check_ids(text: &str) {
    if let Some(id) = ShareId::parse(text) {
        let printed = id.to_string();
        assert_eq!(printed.len(), 36);
        assert_eq!(ShareId::parse(&printed), Some(id));
        // Any spelling `uuid` reads names the id whose hex digits it holds.
        let digits = |text: &str| {
            text.to_ascii_lowercase()
                .trim_start_matches("urn:uuid:")
                .replace(['-', '{', '}'], "")
        };
        assert_eq!(digits(&printed), digits(text), "{text:?}");
    }
    assert_eq!(
        VaultId::parse(text).ok().map(|id| *id.as_uuid()),
        ShareId::parse(text).map(|id| *id.as_uuid())
    );
    if let Ok(id) = SecretId::parse(text) {
        assert_eq!(SecretId::parse(&id.to_string()), Ok(id));
    }
}

fn check_path(path: &str) {
    let shown = loggable_path(path);
    let prefix = PREFIXES.into_iter().find(|prefix| path.starts_with(prefix));
    match (&shown, prefix) {
        (Cow::Borrowed(kept), _) => {
            assert_eq!(*kept, path);
            // Kept as it is: no share prefix, or one of the two list routes.
            assert!(
                prefix.is_none() || path == "/v1/shares/inbound" || path == "/v1/shares/outbound",
                "{path:?} kept"
            );
        }
        (Cow::Owned(redacted), Some(prefix)) => {
            let rest = redacted
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{redacted:?}"));
            for segment in rest.split('/') {
                assert!(
                    segment.is_empty()
                        || segment == "{share_id}"
                        || segment == "{redacted}"
                        || WORDS.contains(&segment),
                    "{path:?} logged as {redacted:?}"
                );
            }
        }
        (Cow::Owned(redacted), None) => {
            panic!("{path:?} redacted to {redacted:?} without a prefix")
        }
    }
    assert_eq!(loggable_path(&shown), shown);
}

fn check_request(json: &[u8]) {
    let Ok(request) = serde_json::from_slice::<CreateShareRequest>(json) else {
        return;
    };
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let kind = request.recipient_type;
    let (had_id, had_email) = (request.recipient_id.is_some(), request.email.is_some());
    let Ok(spec) = ShareSpec::parse(request, now) else {
        return;
    };
    assert_eq!(spec.recipient.kind(), kind);
    assert_eq!(
        had_id,
        matches!(kind, RecipientType::User | RecipientType::Agent)
    );
    assert_eq!(had_email, kind == RecipientType::ExternalEmail);
    assert!(spec.expires_at > now && spec.expires_at <= now + Duration::days(MAX_SHARE_DAYS));
    assert!(spec.max_access_count.is_none_or(|count| count >= 1));
    if let Some(passphrase) = spec.passphrase.clone() {
        assert!(is_usable_passphrase(&passphrase.into_inner()));
    }
    if let Some(blocks) = &spec.ip_allowlist {
        assert!((1..=MAX_SHARE_ALLOWLIST).contains(&blocks.len()));
        for block in blocks {
            assert_eq!(Cidr::parse(&block.to_string()), Ok(*block));
        }
    }
    if let Recipient::ExternalEmail(address) = &spec.recipient {
        assert_eq!(Email::parse(address.as_str()).as_ref(), Ok(address));
    }
}

fuzz_target!(|data: &[u8]| {
    check_request(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_ids(text);
    check_path(text);
    // The same text behind each prefix, so that the fuzzer need not find them first.
    for prefix in PREFIXES {
        check_path(&format!("{prefix}{text}"));
    }
});
