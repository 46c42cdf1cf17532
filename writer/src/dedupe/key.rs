//! Dedupe keys and the exact key set of one scope.

use std::collections::BTreeSet;
use std::time::Instant;

use hashbrown::HashSet;

use super::filter::KeyFilter;

/// A dedupe key: canonical UUIDs compactly, anything else verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A canonical lowercase UUID as its 128-bit value (16 bytes instead of 36 + overhead).
    Uuid(u128),
    /// Any other key, verbatim.
    Text(Box<str>),
}

impl Key {
    /// The key of the text `s`: equal keys exactly when the texts are equal.
    pub fn of(s: &str) -> Key {
        parse_canonical_uuid(s).map_or_else(|| Key::Text(s.into()), Key::Uuid)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex only, so that text and number map
/// one-to-one (an uppercase or braced form stays a distinct [`Key::Text`]).
fn parse_canonical_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    // Table lookup per digit, one check at the end: this runs once per event and once per
    // key loaded (millions per batch on a cold start).
    let mut v: u128 = 0;
    let mut bad = 0u8;
    for range in [0..8, 9..13, 14..18, 19..23, 24..36] {
        for &c in &b[range] {
            let d = HEX_DIGIT[usize::from(c)];
            bad |= d;
            v = (v << 4) | u128::from(d & 0x0f);
        }
    }
    (bad & 0xf0 == 0).then_some(v)
}

/// Value of each lowercase hex digit; 0xff for every other byte.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Every key the table holds in one scope at the index's version: exactly, or, for a scope
/// batches rarely probe, as a filter that answers "certainly absent" or "maybe present".
#[derive(Debug)]
pub(super) struct ScopeKeys {
    held: Held,
    /// When a batch last probed this scope, or it was loaded: the least recently probed
    /// scopes are evicted first when the memory budget is reached.
    pub(super) last_probe: Instant,
    /// Start of the current judging period (see `KeyIndex::age_out`).
    pub(super) period_start: Instant,
    /// Keys probed in this scope since `period_start`.
    pub(super) probed: u64,
    /// Shards taken over since these keys were loaded, whose keys they lack (shard-scoped
    /// dedupe): until they are read the scope is incomplete, so it is completed before a
    /// lookup trusts it (see `KeyIndex::own_shards`). Empty: complete.
    pub(super) missing: BTreeSet<String>,
}

#[derive(Debug)]
enum Held {
    Exact(ExactKeys),
    Filter(KeyFilter),
}

#[derive(Debug, Default)]
struct ExactKeys {
    /// Keys that are canonical UUIDs, as numbers (16 bytes each instead of 36 + overhead).
    uuids: HashSet<u128>,
    /// All other keys, verbatim.
    texts: HashSet<Box<str>>,
    /// Bytes of text held by `texts` (for the memory budget).
    text_bytes: usize,
}

impl ScopeKeys {
    /// An exact, empty key set with room for `capacity` keys, loaded (or probed) at `at`: the
    /// idle clock and the judging period start there.
    pub(super) fn exact_at(at: Instant, capacity: usize) -> Self {
        let mut exact = ExactKeys::default();
        exact.uuids.reserve(capacity);
        ScopeKeys {
            held: Held::Exact(exact),
            last_probe: at,
            period_start: at,
            probed: 0,
            missing: BTreeSet::new(),
        }
    }

    /// Whether the keys are held exactly (not as a filter).
    pub(super) fn is_exact(&self) -> bool {
        matches!(self.held, Held::Exact(_))
    }

    /// Keys held (exact) or the filter's bits (demoted), for the budget.
    pub(super) fn memory(&self) -> usize {
        match &self.held {
            Held::Exact(e) => e.uuids.capacity() * 17 + e.texts.capacity() * 17 + e.text_bytes,
            Held::Filter(f) => f.memory(),
        }
    }

    pub(super) fn insert(&mut self, key: &Key) {
        match &mut self.held {
            Held::Exact(e) => match key {
                Key::Uuid(u) => {
                    e.uuids.insert(*u);
                }
                Key::Text(t) => {
                    if !e.texts.contains(t) {
                        e.text_bytes += t.len();
                        e.texts.insert(t.clone());
                    }
                }
            },
            Held::Filter(f) => f.insert(key),
        }
    }

    pub(super) fn insert_str(&mut self, s: &str) {
        match (&mut self.held, parse_canonical_uuid(s)) {
            (Held::Exact(e), Some(u)) => {
                e.uuids.insert(u);
            }
            (Held::Exact(e), None) => {
                if !e.texts.contains(s) {
                    e.text_bytes += s.len();
                    e.texts.insert(s.into());
                }
            }
            (Held::Filter(f), Some(u)) => f.insert(&Key::Uuid(u)),
            (Held::Filter(f), None) => f.insert(&Key::Text(s.into())),
        }
    }

    /// Exact: whether the scope holds `key`. Demoted: false only if it certainly does not
    /// (true means "maybe": load the scope exactly to know).
    pub(super) fn contains(&self, key: &Key) -> bool {
        match &self.held {
            Held::Exact(e) => match key {
                Key::Uuid(u) => e.uuids.contains(u),
                Key::Text(t) => e.texts.contains(t),
            },
            Held::Filter(f) => f.may_contain(key),
        }
    }

    /// Replace the exact keys by a filter of them (no-op when already a filter). Sized with a
    /// quarter of headroom for the keys late events still add.
    pub(super) fn demote(&mut self) {
        let Held::Exact(e) = &self.held else { return };
        let n = e.uuids.len() + e.texts.len();
        let mut f = KeyFilter::with_capacity(n + n / 4);
        e.uuids.iter().for_each(|u| f.insert(&Key::Uuid(*u)));
        e.texts.iter().for_each(|t| f.insert(&Key::Text(t.clone())));
        self.held = Held::Filter(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_uuid_only() {
        let u = "0190a3f2-7b1c-7cde-8f00-123456789abc";
        assert!(matches!(Key::of(u), Key::Uuid(_)));
        assert!(matches!(Key::of(&u.to_uppercase()), Key::Text(_)));
        assert!(matches!(
            Key::of("0190a3f27b1c7cde8f00123456789abc"),
            Key::Text(_)
        ));
        assert!(matches!(Key::of("not-a-uuid"), Key::Text(_)));
        assert_ne!(Key::of(u), Key::of(&u.to_uppercase()));
    }

    proptest! {
        /// The u128 form is a bijection with the canonical text: equal keys iff equal text.
        #[test]
        fn key_equality_is_text_equality(a in any::<u128>(), b in any::<u128>(), upper in any::<bool>()) {
            let ta = uuid::Uuid::from_u128(a).hyphenated().to_string();
            let tb = uuid::Uuid::from_u128(b).hyphenated().to_string();
            let tb = if upper { tb.to_uppercase() } else { tb };
            prop_assert_eq!(Key::of(&ta) == Key::of(&tb), ta == tb);
            prop_assert_eq!(Key::of(&ta), Key::Uuid(a));
        }

        #[test]
        fn arbitrary_text_keys(a in ".{1,40}", b in ".{1,40}") {
            prop_assert_eq!(Key::of(&a) == Key::of(&b), a == b);
        }
    }
}
