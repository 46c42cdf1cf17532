//! A Bloom filter over dedupe keys: how a partition that batches rarely probe stays in the
//! index at ~1.2 bytes a key instead of ~17-34 (issue 14).
//!
//! Why a filter and not eviction: past days' partitions keep receiving a trickle of late
//! events, so they are probed every few minutes and eviction by age never fires; held
//! exactly, the index carries about three days of keys. A filter answers "certainly new"
//! for almost every late key without reading anything; "maybe present" (a real duplicate or
//! a false positive, ~1% of keys) makes the index load the partition's keys exactly again,
//! so dedupe stays exact (see [`super::KeyIndex`]).

use std::hash::{Hash, Hasher};

use super::Key;

/// Filter bits per key it is sized for: with [`HASHES`] probes, ~0.8% false positives.
const BITS_PER_KEY: usize = 10;

/// Bit positions probed per key (optimal for 10 bits a key: 10 × ln 2 ≈ 7).
const HASHES: u64 = 7;

/// The false-positive rate the sizing aims at (for the index's demotion rule).
pub(super) const FALSE_POSITIVE_RATE: f64 = 0.01;

/// A fixed-size Bloom filter of [`Key`]s: no false negatives.
#[derive(Debug)]
pub(super) struct KeyFilter {
    words: Box<[u64]>,
    /// Number of bits (`words.len() * 64`).
    bits: u64,
}

impl KeyFilter {
    /// An empty filter sized for `capacity` keys at ~1% false positives (more keys raise it).
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let words = (capacity.max(64) * BITS_PER_KEY).div_ceil(64);
        KeyFilter {
            words: vec![0; words].into_boxed_slice(),
            bits: words as u64 * 64,
        }
    }

    pub(super) fn insert(&mut self, key: &Key) {
        let (h1, h2) = hashes(key);
        for i in 0..HASHES {
            let bit = self.position(h1.wrapping_add(i.wrapping_mul(h2)));
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// False only if `key` was never inserted.
    pub(super) fn may_contain(&self, key: &Key) -> bool {
        let (h1, h2) = hashes(key);
        (0..HASHES).all(|i| {
            let bit = self.position(h1.wrapping_add(i.wrapping_mul(h2)));
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    /// Bytes held.
    pub(super) fn memory(&self) -> usize {
        self.words.len() * 8
    }

    /// `h` mapped onto `0..bits` (multiply-shift: uniform without a division).
    fn position(&self, h: u64) -> u64 {
        ((u128::from(h) * u128::from(self.bits)) >> 64) as u64
    }
}

/// Two independent 64-bit hashes of a key (double hashing: probe i is `h1 + i·h2`).
fn hashes(key: &Key) -> (u64, u64) {
    let (a, b) = match key {
        // UUIDs are mostly random bits, but v7 starts with a timestamp and every version
        // fixes a few bits: mix both halves rather than trust them.
        Key::Uuid(u) => (*u as u64, (*u >> 64) as u64),
        Key::Text(t) => {
            // SipHash with fixed keys: the same text hashes the same for the filter's life.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            t.hash(&mut h);
            let x = h.finish();
            (x, x ^ 0x5851_f42d_4c95_7f2d)
        }
    };
    let h1 = mix(a ^ mix(b));
    // Odd, so the probes of one key never repeat a position before wrapping the filter.
    let h2 = mix(b.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ a) | 1;
    (h1, h2)
}

/// The SplitMix64 finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uuid_key(i: u64) -> Key {
        // Version-4-shaped values from a counter: the fixed bits a real UUID has.
        let v = (u128::from(mix(i)) << 64) | u128::from(mix(!i));
        let v = (v & !(0xf << 76)) | (0x4 << 76);
        Key::Uuid((v & !(0x3 << 62)) | (0x2 << 62))
    }

    #[test]
    fn the_false_positive_rate_is_about_one_percent_at_capacity() {
        let n = 100_000;
        let mut f = KeyFilter::with_capacity(n);
        (0..n as u64).for_each(|i| f.insert(&uuid_key(i)));
        let probes = 200_000u64;
        let fp = (n as u64..n as u64 + probes)
            .filter(|&i| f.may_contain(&uuid_key(i)))
            .count();
        let rate = fp as f64 / probes as f64;
        assert!(rate < 0.012, "false-positive rate {rate}");
        // Text keys go through the other hash path.
        let mut t = KeyFilter::with_capacity(n);
        (0..n).for_each(|i| t.insert(&Key::of(&format!("order-{i}"))));
        let fp = (n..n + 100_000)
            .filter(|i| t.may_contain(&Key::of(&format!("order-{i}"))))
            .count();
        assert!((fp as f64 / 100_000.0) < 0.012, "text false positives {fp}");
        // ~1.25 bytes a key, against 17+ for the exact set.
        assert!(f.memory() <= n * 13 / 10, "{} bytes", f.memory());
    }

    proptest! {
        /// No false negatives, whatever the keys and however far past its capacity.
        #[test]
        fn every_inserted_key_is_maybe_present(
            uuids in proptest::collection::vec(any::<u128>(), 0..400),
            texts in proptest::collection::vec(".{0,40}", 0..100),
            capacity in 0usize..200,
        ) {
            let keys: Vec<Key> = uuids.into_iter().map(Key::Uuid)
                .chain(texts.iter().map(|t| Key::of(t))).collect();
            let mut f = KeyFilter::with_capacity(capacity);
            keys.iter().for_each(|k| f.insert(k));
            for k in &keys {
                prop_assert!(f.may_contain(k));
            }
        }
    }
}
