//! Which alert keys this node has seen held by an unresolved incident. An alert storm is
//! mostly new keys, and reading "who holds this key?" before every one of them costs a
//! read per alert that the store's keyed create answers anyway (it refuses the create
//! with the holder). So an alert whose key is not known here to be held is opened at
//! once, and only keys known held are read first.
//!
//! The set is a hint, never the truth: a wrong "not held" costs one refused create, a
//! wrong "held" one read. Either way the store decides, so a stale hint (another node
//! opened or resolved the incident, the set started over) cannot open a twin.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;

use uuid::Uuid;

/// Past this the set starts over: nothing unbounded grows in memory. Eight bytes an entry.
const MAX_KEYS: usize = 200_000;

#[derive(Default)]
pub struct HeldKeys {
    hasher: std::collections::hash_map::RandomState,
    /// Hashes of (source, key): a collision only makes an alert read before it opens.
    held: Mutex<HashSet<u64>>,
}

impl HeldKeys {
    fn hash(&self, source_id: Uuid, key: &str) -> u64 {
        self.hasher.hash_one((source_id, key))
    }

    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_held(&self, source_id: Uuid, key: &str) -> bool {
        let hash = self.hash(source_id, key);
        self.set().contains(&hash)
    }

    pub fn held(&self, source_id: Uuid, key: &str) {
        let hash = self.hash(source_id, key);
        let mut set = self.set();
        if set.len() >= MAX_KEYS {
            set.clear();
        }
        set.insert(hash);
    }

    pub fn released(&self, source_id: Uuid, key: &str) {
        let hash = self.hash(source_id, key);
        self.set().remove(&hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_held_from_held_until_released_and_per_source() {
        let keys = HeldKeys::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(!keys.is_held(a, "disk"));
        keys.held(a, "disk");
        assert!(keys.is_held(a, "disk"));
        assert!(!keys.is_held(b, "disk"));
        assert!(!keys.is_held(a, "cpu"));
        keys.released(a, "disk");
        assert!(!keys.is_held(a, "disk"));
    }

    #[test]
    fn the_set_starts_over_instead_of_growing_past_its_bound() {
        let keys = HeldKeys::default();
        for n in 0..MAX_KEYS {
            keys.held(Uuid::nil(), &n.to_string());
        }
        assert_eq!(keys.set().len(), MAX_KEYS);
        keys.held(Uuid::nil(), "one more");
        assert_eq!(keys.set().len(), 1);
        assert!(keys.is_held(Uuid::nil(), "one more"));
    }
}
