//! Dedupe keys and the exact key set of one scope.

use hashbrown::HashSet;

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

/// Every key the table holds in one scope, at the index's version.
#[derive(Debug, Default)]
pub(super) struct ScopeKeys {
    /// Keys that are canonical UUIDs, as numbers (16 bytes each instead of 36 + overhead).
    pub(super) uuids: HashSet<u128>,
    /// All other keys, verbatim.
    texts: HashSet<Box<str>>,
    /// Bytes of text held by `texts` (for the memory budget).
    text_bytes: usize,
    /// The index's tick when a batch last probed this scope (for LRU eviction).
    pub(super) last_used: u64,
    /// When a batch last probed this scope, or it was loaded (for eviction by age).
    pub(super) touched: Option<std::time::Instant>,
}

impl ScopeKeys {
    /// No keys yet, loaded or probed at `at` (the idle clock starts there).
    pub(super) fn touched_at(at: std::time::Instant) -> Self {
        ScopeKeys {
            touched: Some(at),
            ..ScopeKeys::default()
        }
    }

    pub(super) fn insert(&mut self, key: &Key) {
        match key {
            Key::Uuid(u) => {
                self.uuids.insert(*u);
            }
            Key::Text(t) => {
                if !self.texts.contains(t) {
                    self.text_bytes += t.len();
                    self.texts.insert(t.clone());
                }
            }
        }
    }

    pub(super) fn insert_str(&mut self, s: &str) {
        match parse_canonical_uuid(s) {
            Some(u) => {
                self.uuids.insert(u);
            }
            None => {
                if !self.texts.contains(s) {
                    self.text_bytes += s.len();
                    self.texts.insert(s.into());
                }
            }
        }
    }

    pub(super) fn contains(&self, key: &Key) -> bool {
        match key {
            Key::Uuid(u) => self.uuids.contains(u),
            Key::Text(t) => self.texts.contains(t),
        }
    }

    /// Approximate bytes held.
    pub(super) fn memory(&self) -> usize {
        self.uuids.capacity() * 17 + self.texts.capacity() * 17 + self.text_bytes
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
