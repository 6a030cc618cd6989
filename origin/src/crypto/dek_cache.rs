//! A bounded, short-lived cache of opened data keys, in front of the HSM's unwrap.
//!
//! A hot secret is read thousands of times a second; without a cache every read would cross
//! to the blocking pool and the HSM to unwrap the same data key. Entries are keyed by a
//! SHA-256 over the KEK id, the wrapped key *and* the place it is bound to (the unwrap's
//! AAD), so a wrapped key copied to another vault, path or version misses the cache and
//! fails in the HSM exactly as before. Keys stay at most `ttl` (one minute by default) and
//! at most `capacity` of them are held; a [`DataKey`] wipes itself when it is evicted.
//!
//! Only keys the HSM opened or sealed for this process are cached: a cached key proves
//! nothing the HSM did not. Taking a KEK away (retirement, a removed token) stops new keys
//! from opening at once and the cached ones within `ttl`. A std mutex, not a tokio one:
//! the critical sections are a hash lookup, never held across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{DataKey, WrappedKey};

/// How long and how many keys the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DekCacheSettings {
    /// Most keys held; 0 turns the cache off.
    pub capacity: usize,
    /// Longest a key is held after it was opened or sealed.
    pub ttl: Duration,
}

impl Default for DekCacheSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: Duration::from_secs(60),
        }
    }
}

type Fingerprint = [u8; 32];

#[derive(Default)]
struct Entries {
    keys: HashMap<Fingerprint, (DataKey, Instant)>,
    /// Insertion order with each entry's expiry: the oldest is evicted first. An entry
    /// replaced meanwhile leaves a stale line here, skipped when its expiry does not match.
    order: VecDeque<(Fingerprint, Instant)>,
}

/// The cache; share it behind an `Arc`.
pub struct DekCache {
    settings: DekCacheSettings,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for DekCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DekCache")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn fingerprint(wrapped: &WrappedKey, aad: &[u8]) -> Fingerprint {
    let mut hash = Sha256::new();
    // Length-prefixed, so no two (kek id, key, aad) triples hash the same input.
    for part in [wrapped.kek_id.as_slice(), wrapped.bytes.as_slice(), aad] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

impl DekCache {
    pub fn new(settings: DekCacheSettings) -> Self {
        Self {
            settings,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave a half-written map behind (each
        // operation is one insert or remove), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key `wrapped` opens to under `aad`, if it was opened or sealed within the TTL.
    pub fn get(&self, wrapped: &WrappedKey, aad: &[u8]) -> Option<DataKey> {
        if self.settings.capacity == 0 {
            return None;
        }
        let id = fingerprint(wrapped, aad);
        let now = Instant::now();
        let mut entries = self.entries();
        match entries.keys.get(&id) {
            Some((key, expires)) if *expires > now => Some(key.clone()),
            Some(_) => {
                entries.keys.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Remembers that `wrapped` opens to `key` under `aad`.
    pub fn insert(&self, wrapped: &WrappedKey, aad: &[u8], key: &DataKey) {
        if self.settings.capacity == 0 {
            return;
        }
        let id = fingerprint(wrapped, aad);
        let now = Instant::now();
        let expires = now + self.settings.ttl;
        let mut entries = self.entries();
        // Evict the expired, then the oldest while full.
        while let Some(&(oldest, at)) = entries.order.front() {
            // Re-inserted keys leave stale lines: bound those too.
            let full = entries.keys.len() >= self.settings.capacity
                || entries.order.len() >= 2 * self.settings.capacity;
            if at > now && !full {
                break;
            }
            entries.order.pop_front();
            if entries
                .keys
                .get(&oldest)
                .is_some_and(|(_, live)| *live == at)
            {
                entries.keys.remove(&oldest);
            }
        }
        entries.keys.insert(id, (key.clone(), expires));
        entries.order.push_back((id, expires));
    }

    /// How many keys are held (expired ones not yet evicted included).
    pub fn len(&self) -> usize {
        self.entries().keys.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(n: u8) -> WrappedKey {
        WrappedKey {
            kek_id: vec![1; 16],
            bytes: vec![n; 40],
        }
    }

    fn cache(capacity: usize, ttl: Duration) -> DekCache {
        DekCache::new(DekCacheSettings { capacity, ttl })
    }

    #[test]
    fn a_key_is_found_only_under_the_place_it_was_bound_to() {
        let cache = cache(10, Duration::from_secs(60));
        let key = DataKey::from_bytes([7; 32]);
        cache.insert(&wrapped(1), b"org/vault/path/1", &key);
        assert_eq!(cache.get(&wrapped(1), b"org/vault/path/1"), Some(key));
        assert_eq!(cache.get(&wrapped(1), b"org/vault/path/2"), None);
        assert_eq!(cache.get(&wrapped(2), b"org/vault/path/1"), None);
        let other_kek = WrappedKey {
            kek_id: vec![2; 16],
            ..wrapped(1)
        };
        assert_eq!(cache.get(&other_kek, b"org/vault/path/1"), None);
    }

    #[test]
    fn the_parts_cannot_be_shifted_into_each_other() {
        let a = WrappedKey {
            kek_id: vec![1],
            bytes: vec![2, 3],
        };
        let b = WrappedKey {
            kek_id: vec![1, 2],
            bytes: vec![3],
        };
        assert_ne!(fingerprint(&a, b"x"), fingerprint(&b, b"x"));
        assert_ne!(fingerprint(&a, b"x"), fingerprint(&a, b"xy"));
    }

    #[test]
    fn keys_expire_after_the_ttl() {
        let cache = cache(10, Duration::from_millis(30));
        cache.insert(&wrapped(1), b"p", &DataKey::from_bytes([1; 32]));
        assert!(cache.get(&wrapped(1), b"p").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&wrapped(1), b"p"), None);
        assert!(cache.is_empty(), "an expired key is dropped when looked up");
    }

    #[test]
    fn the_oldest_keys_are_evicted_beyond_the_capacity() {
        let cache = cache(3, Duration::from_secs(60));
        for n in 0..5 {
            cache.insert(&wrapped(n), b"p", &DataKey::from_bytes([n; 32]));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&wrapped(0), b"p"), None);
        assert_eq!(cache.get(&wrapped(1), b"p"), None);
        for n in 2..5 {
            assert_eq!(
                cache.get(&wrapped(n), b"p"),
                Some(DataKey::from_bytes([n; 32]))
            );
        }
    }

    #[test]
    fn a_zero_capacity_turns_the_cache_off() {
        let cache = cache(0, Duration::from_secs(60));
        cache.insert(&wrapped(1), b"p", &DataKey::from_bytes([1; 32]));
        assert_eq!(cache.get(&wrapped(1), b"p"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn reinserting_a_key_does_not_let_its_stale_line_evict_it() {
        let cache = cache(2, Duration::from_secs(60));
        cache.insert(&wrapped(1), b"p", &DataKey::from_bytes([1; 32]));
        cache.insert(&wrapped(1), b"p", &DataKey::from_bytes([1; 32]));
        cache.insert(&wrapped(2), b"p", &DataKey::from_bytes([2; 32]));
        assert!(cache.get(&wrapped(1), b"p").is_some());
        assert!(cache.get(&wrapped(2), b"p").is_some());
    }
}
