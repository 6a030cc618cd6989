//! Fuzzes the `N/S` limit syntax and the client block (`oxvault_core::rate_limit`): any text,
//! no panic; what parses is within bounds and its canonical `N/S` parses to the same limit; two
//! numbers parse exactly when in bounds; a client's block is its own block.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use oxvault_core::rate_limit::{Limit, MAX_COUNT, MAX_PERIOD_SECS, client_block};

fn check_text(text: &str) {
    let Ok(limit) = Limit::parse(text) else {
        return;
    };
    assert!((1..=MAX_COUNT).contains(&limit.count()), "{text:?}");
    assert!(
        (1..=MAX_PERIOD_SECS).contains(&limit.period_secs()),
        "{text:?}"
    );
    let canonical = format!("{}/{}", limit.count(), limit.period_secs());
    assert_eq!(Limit::parse(&canonical), Ok(limit));
    // Digits, one `/` and spaces: signs, decimals and units are refused.
    assert!(
        text.chars()
            .all(|c| c.is_ascii_digit() || c == '/' || c.is_whitespace()),
        "{text:?}"
    );
    assert_eq!(text.matches('/').count(), 1, "{text:?}");
}

fn check_numbers(count: u32, period: u32) {
    let expected = Limit::new(count, period);
    assert_eq!(Limit::parse(&format!("{count}/{period}")), expected);
    assert_eq!(Limit::parse(&format!(" {count} / {period} ")), expected);
    assert_eq!(Limit::parse(&format!("00{count}/0{period}")), expected);
}

fn check_block(ip: IpAddr) {
    let block = client_block(ip);
    assert_eq!(client_block(block), block);
    match (ip.to_canonical(), block) {
        (IpAddr::V4(v4), IpAddr::V4(held)) => assert_eq!(v4, held),
        (IpAddr::V6(v6), IpAddr::V6(held)) => {
            assert_eq!(v6.to_bits() >> 64, held.to_bits() >> 64);
            assert_eq!(held.to_bits() & u128::from(u64::MAX), 0);
        }
        (canonical, held) => panic!("{canonical} counted as {held}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    if let Some((numbers, _)) = data.split_first_chunk::<8>() {
        let (count, period) = numbers.split_at(4);
        let word = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().unwrap_or_default());
        check_numbers(word(count), word(period));
    }
    if let Some(bytes) = data.first_chunk::<16>() {
        check_block(IpAddr::V6(Ipv6Addr::from(*bytes)));
    }
    if let Some(bytes) = data.first_chunk::<4>() {
        check_block(IpAddr::V4(Ipv4Addr::from(*bytes)));
    }
});
