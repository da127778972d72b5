//! The in-memory store: encoded entries under a byte bound, the least recently used
//! evicted first. Every entry is charged its encoded size plus its key and a fixed
//! overhead, so the bound holds for memory, not only for payloads.

use std::collections::{BTreeMap, HashMap};

/// What one entry costs beyond its bytes and key: the map slots, the recency index and
/// the allocation headers (measured order of magnitude; it keeps a flood of tiny
/// entries from outgrowing the bound).
const ENTRY_OVERHEAD: u64 = 160;

/// A byte-bounded least-recently-used map from key to encoded entry.
#[derive(Debug)]
pub struct Lru {
    max_bytes: u64,
    bytes: u64,
    tick: u64,
    entries: HashMap<String, Slot>,
    recency: BTreeMap<u64, String>,
    evictions: u64,
}

#[derive(Debug)]
struct Slot {
    value: Vec<u8>,
    expires_at: f64,
    used: u64,
}

fn charge(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD
}

impl Lru {
    /// An empty store holding at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Lru {
        Lru {
            max_bytes,
            bytes: 0,
            tick: 0,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            evictions: 0,
        }
    }

    /// The entry under `key` if it has not expired at `now`; it becomes the most
    /// recently used. An expired one is removed.
    pub fn get(&mut self, key: &str, now: f64) -> Option<Vec<u8>> {
        let slot = self.entries.get(key)?;
        if slot.expires_at <= now {
            self.remove(key);
            return None;
        }
        self.tick += 1;
        let slot = self.entries.get_mut(key).expect("present");
        self.recency.remove(&slot.used);
        slot.used = self.tick;
        self.recency.insert(self.tick, key.to_owned());
        Some(slot.value.clone())
    }

    /// Keeps `value` under `key` until `expires_at`, evicting the least recently used
    /// entries to make room. A value that alone exceeds the bound is not kept.
    pub fn put(&mut self, key: &str, value: Vec<u8>, expires_at: f64) {
        let cost = charge(key, &value);
        if cost > self.max_bytes {
            return;
        }
        self.remove(key);
        while self.bytes + cost > self.max_bytes {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            if let Some(slot) = self.entries.remove(&oldest) {
                self.bytes -= charge(&oldest, &slot.value);
                self.evictions += 1;
            }
        }
        self.tick += 1;
        self.recency.insert(self.tick, key.to_owned());
        self.entries.insert(
            key.to_owned(),
            Slot {
                value,
                expires_at,
                used: self.tick,
            },
        );
        self.bytes += cost;
    }

    fn remove(&mut self, key: &str) {
        if let Some(slot) = self.entries.remove(key) {
            self.recency.remove(&slot.used);
            self.bytes -= charge(key, &slot.value);
        }
    }

    /// Drops every entry; returns how many there were.
    pub fn clear(&mut self) -> u64 {
        let n = self.entries.len() as u64;
        self.entries.clear();
        self.recency.clear();
        self.bytes = 0;
        n
    }

    /// Entries held (expired ones included until they are met or evicted).
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes charged against the bound.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Entries evicted to make room, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first_and_the_bound_holds() {
        let size = charge("k0", &[0; 100]);
        let mut lru = Lru::new(size * 3);
        for k in ["k0", "k1", "k2"] {
            lru.put(k, vec![0; 100], 100.0);
        }
        assert!(lru.get("k0", 1.0).is_some(), "k0 is now the most recent");
        lru.put("k3", vec![0; 100], 100.0);
        assert!(
            lru.get("k1", 1.0).is_none(),
            "k1 was the least recently used"
        );
        assert!(lru.get("k0", 1.0).is_some());
        assert_eq!((lru.len(), lru.bytes(), lru.evictions()), (3, size * 3, 1));
    }

    #[test]
    fn an_expired_entry_is_a_miss_and_its_bytes_are_given_back() {
        let mut lru = Lru::new(10_000);
        lru.put("k", vec![1, 2, 3], 50.0);
        assert_eq!(lru.get("k", 49.9), Some(vec![1, 2, 3]));
        assert_eq!(lru.get("k", 50.0), None);
        assert_eq!((lru.len(), lru.bytes()), (0, 0));
    }

    #[test]
    fn a_value_larger_than_the_bound_is_not_kept_and_evicts_nothing() {
        let mut lru = Lru::new(1_000);
        lru.put("small", vec![0; 10], 10.0);
        lru.put("big", vec![0; 2_000], 10.0);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.evictions(), 0);
    }
}
