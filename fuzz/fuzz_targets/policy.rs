//! Fuzzes what an access policy is read from (`oxvault_core::policy`): path patterns (well
//! formed, kept as given, and matching exactly as a plain top-down matcher says), CIDR blocks
//! (printed back to themselves, holding their network), times of day and zones (printed back as
//! given), and whole create requests from any JSON (no panic; what is read serialises back to
//! itself and evaluates without panicking).
#![no_main]

use std::collections::HashMap;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use oxvault_core::ids::PolicyId;
use oxvault_core::policy::{
    Cidr, ClockTime, Conditions, CreatePolicyRequest, Effect, PathPattern, Permission, Policy,
    RequestContext, Timezone, evaluate,
};
use oxvault_core::secret_path::SecretPath;
use uuid::Uuid;

/// The glob read top-down, memoised: the definition, against the core's bottom-up table.
fn reference_match(glob: &[&str], path: &[&str]) -> bool {
    fn go<'a>(
        glob: &[&'a str],
        path: &[&'a str],
        memo: &mut HashMap<(usize, usize), bool>,
    ) -> bool {
        let key = (glob.len(), path.len());
        if let Some(&known) = memo.get(&key) {
            return known;
        }
        let result = match glob.split_first() {
            None => path.is_empty(),
            Some((&"**", rest)) => (0..=path.len()).any(|skip| go(rest, &path[skip..], memo)),
            Some((&token, rest)) => match path.split_first() {
                Some((&part, tail)) => (token == "*" || token == part) && go(rest, tail, memo),
                None => false,
            },
        };
        memo.insert(key, result);
        result
    }
    go(glob, path, &mut HashMap::new())
}

fn check_pattern(text: &str, against: &str) {
    let Ok(glob) = PathPattern::parse(text) else {
        return;
    };
    assert_eq!(glob.as_str(), text);
    assert_eq!(PathPattern::parse(glob.as_str()).as_ref(), Ok(&glob));
    let mut wildcards = false;
    for segment in text.split('/') {
        let star = segment == "*" || segment == "**";
        wildcards |= star;
        assert!(
            star || SecretPath::parse(segment).is_ok_and(|path| path.segments().count() == 1),
            "{segment:?} in {text:?}"
        );
    }
    assert_eq!(glob.has_wildcards(), wildcards);
    if !wildcards {
        let itself = SecretPath::parse(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        assert!(glob.matches(&itself));
    }
    if let Ok(path) = SecretPath::parse(against) {
        let glob_parts: Vec<&str> = text.split('/').collect();
        let path_parts: Vec<&str> = path.segments().collect();
        assert_eq!(
            glob.matches(&path),
            reference_match(&glob_parts, &path_parts),
            "{text:?} against {against:?}"
        );
    }
}

fn check_cidr(text: &str) {
    let Ok(block) = Cidr::parse(text) else { return };
    let width = if block.network().is_ipv4() { 32 } else { 128 };
    assert!(block.prefix_len() <= width);
    assert!(block.contains(block.network()));
    assert_eq!(Cidr::parse(&block.to_string()), Ok(block), "{text:?}");
    // Only an address that parses on its own is in a block parsed from it.
    if let Some((address, _)) = text.split_once('/') {
        assert!(address.parse::<IpAddr>().is_ok());
    }
}

fn check_times(text: &str) {
    if let Ok(time) = ClockTime::parse(text) {
        assert!(time.minutes() < 1440);
        assert_eq!(time.to_string(), text);
    }
    if let Ok(zone) = Timezone::parse(text) {
        assert_eq!(zone.as_str(), text);
        assert!((-1439..=1439).contains(&zone.offset_minutes()));
    }
}

fn check_request(json: &[u8]) {
    let Ok(request) = serde_json::from_slice::<CreatePolicyRequest>(json) else {
        return;
    };
    let pattern = &request.secret_path_pattern;
    assert_eq!(PathPattern::parse(pattern.as_str()).as_ref(), Ok(pattern));
    let written = serde_json::to_value(&request.conditions).unwrap_or_default();
    assert_eq!(
        serde_json::from_value::<Conditions>(written).ok().as_ref(),
        Some(&request.conditions)
    );
    let policy = Policy {
        id: PolicyId::from_uuid(Uuid::nil()),
        pattern: request.secret_path_pattern.clone(),
        permissions: request.permissions.clone(),
        effect: request.effect,
        priority: request.priority,
        conditions: request.conditions.clone(),
        expires_at: request.expires_at.map(|at| at.timestamp()),
    };
    let Ok(path) = SecretPath::parse("db/x") else {
        return;
    };
    for now_unix in [i64::MIN, 0, 1_800_000_000, i64::MAX] {
        let ctx = RequestContext {
            now_unix,
            client_ip: "10.0.0.1".parse().ok(),
        };
        for permission in Permission::ALL {
            let decision = evaluate(std::slice::from_ref(&policy), &path, permission, &ctx);
            if decision.is_allowed() {
                assert_eq!(policy.effect, Effect::Allow);
                assert!(policy.permissions.contains(&permission));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_request(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the pattern, the second a path to match it against.
    let mut lines = text.splitn(2, '\n');
    let (first, second) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    check_pattern(first, second);
    check_pattern(text, "a/b");
    check_cidr(text);
    check_times(text);
});
