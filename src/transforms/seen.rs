//! Values seen earlier in a run, for `dedupe` and `validate`'s `unique`: kept as 128-bit hashes
//! (the first half of a SHA-256 of the values' text), 16 bytes a value whatever its length,
//! so the memory a run needs is bounded by a count the user sets. Two different values share
//! a hash with odds of about n²/2¹²⁹: for 10,000,000 values, 1 in 10²⁵; SHA-256 (not a fast
//! non-cryptographic hash) means nobody can make up two keys that collide.

use sha2::{Digest, Sha256};

use crate::record::Value;

/// The 128-bit hash of values taken together: each by its text (so `7` and `"7"` are the same
/// value, as in a CSV file), null apart from any text, one value's end never mistaken for the
/// next one's start.
pub fn hash_values<'v>(values: impl IntoIterator<Item = &'v Value>) -> u128 {
    let mut hasher = Sha256::new();
    for value in values {
        match value.to_text() {
            None => hasher.update([0u8]),
            Some(text) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
        }
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// Whether the hashes are full: `insert` found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A set of value hashes that holds at most `max` of them.
pub struct Seen {
    hashes: foldhash::HashSet<u128>,
    max: u64,
}

impl Seen {
    pub fn new(max: u64) -> Self {
        Seen {
            hashes: foldhash::HashSet::default(),
            max,
        }
    }

    /// Whether `hash` was seen before (`Ok(false)`: it is new, and now seen).
    pub fn insert(&mut self, hash: u128) -> Result<bool, Full> {
        if self.hashes.contains(&hash) {
            return Ok(true);
        }
        if self.hashes.len() as u64 >= self.max {
            return Err(Full);
        }
        self.hashes.insert(hash);
        Ok(false)
    }

    pub fn contains(&self, hash: u128) -> bool {
        self.hashes.contains(&hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_hash_by_their_text_and_keep_apart() {
        let text = |s: &str| Value::String(s.into());
        assert_eq!(hash_values([&Value::Integer(7)]), hash_values([&text("7")]));
        assert_ne!(hash_values([&Value::Null]), hash_values([&text("")]));
        assert_ne!(
            hash_values([&text("ab"), &text("c")]),
            hash_values([&text("a"), &text("bc")])
        );
    }

    #[test]
    fn holds_at_most_its_bound() {
        let mut seen = Seen::new(2);
        assert_eq!(seen.insert(1), Ok(false));
        assert_eq!(seen.insert(2), Ok(false));
        assert_eq!(seen.insert(1), Ok(true));
        assert_eq!(seen.insert(3), Err(Full));
        assert!(seen.contains(2) && !seen.contains(3));
    }
}
