//! What may become a partition value.
//!
//! `event_type` names a folder (`event_type=payment/`) in every object key of the events
//! table, in Glue/Athena partitions and in every S3 listing. A value that is fine as a column
//! can be fatal there: 5,000 characters exceed the 255-byte limit of a path component on
//! local filesystems (the batch failed with `File name too long`), and with the table prefix
//! the 1,024-byte limit of an S3 key. A record is therefore refused *per record* (with its
//! own [`RejectReason`]) whenever its partition value breaks the policy below, so one bad
//! record can never fail, or wedge, a batch.
//!
//! Two layers:
//!
//! - **Hard limits** ([`check_event_name`], applied by [`crate::enrich`], not configurable):
//!   `event_type` at most [`MAX_EVENT_TYPE_BYTES`] bytes and free of control characters;
//!   the whole `event_name` at most [`MAX_EVENT_NAME_BYTES`] bytes and free of control
//!   characters. These alone keep every object key valid, whatever pattern is configured:
//!   64 bytes percent-encode to at most 192, so the folder `event_type=…` is at most 203
//!   bytes (under 255) and a data file's path below the table root at most
//!   [`MAX_DATA_FILE_RELATIVE_PATH_BYTES`] bytes (leaving over 700 bytes of S3's 1,024 for
//!   the table's own prefix).
//! - **Policy** ([`PartitionRules`], configurable): `event_type` must match a pattern
//!   (default [`DEFAULT_EVENT_TYPE_PATTERN`]) and, when an allowlist is given, be on it. The
//!   policy can narrow what the hard limits allow, never widen it.
//!
//! The default pattern is lowercase ASCII letters, digits, `_` and `-`, starting with a
//! letter or digit, at most 64 characters. Uppercase is refused rather than folded:
//! Glue/Athena treat partition values case-insensitively in practice (and case-insensitive
//! filesystems such as APFS or NTFS would put `Payment` and `payment` in one folder), so two
//! types differing only in case would be two partitions to the writer but one to readers;
//! folding instead would make `event_type` disagree with the stored `event_name`. Non-ASCII
//! is refused for the same reason (NFC and NFD spellings of `café` are different bytes that
//! look identical), and so are `/`, `=`, `%`, spaces, dots and everything else that needs
//! percent-encoding or means something to a shell, a URL or Hive.
//!
//! `event_subtype` is an ordinary column, not a partition, so it is bounded only by the hard
//! limits on the whole name (size, control characters): no pattern.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::enrich::split_name;
use crate::validate::{RejectReason, Rejection};

/// Longest `event_type`, in UTF-8 bytes. Percent-encoded it is at most 3x this (192 bytes),
/// so the `event_type=…` folder stays under the 255-byte path component limit.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// Longest `event_name` (type, subtype and the rest), in UTF-8 bytes. Not a path concern:
/// a name is an identifier, and a megabyte of it is a producer bug, not an event; the column
/// also carries dictionary pages and min/max statistics that would hold it whole.
pub const MAX_EVENT_NAME_BYTES: usize = 1024;

/// The longest data-file path below the table root that an accepted record can produce:
/// `event_type=` + 3 × [`MAX_EVENT_TYPE_BYTES`] + `/created_date=YYYY-MM-DD/` +
/// `part-00000-<uuid>-c000.snappy.parquet`.
pub const MAX_DATA_FILE_RELATIVE_PATH_BYTES: usize =
    "event_type=".len() + 3 * MAX_EVENT_TYPE_BYTES + "/created_date=2024-03-17/".len() + 80;

// The arithmetic of the module docs, checked at compile time: the worst-case folder fits a
// path component, and the worst-case path leaves most of an S3 key to the table prefix.
const _: () = assert!("event_type=".len() + 3 * MAX_EVENT_TYPE_BYTES <= 255);
const _: () = assert!(MAX_DATA_FILE_RELATIVE_PATH_BYTES <= 320);

/// The default allowed pattern for `event_type` (matched against the whole value).
pub const DEFAULT_EVENT_TYPE_PATTERN: &str = "[a-z0-9][a-z0-9_-]{0,63}";

/// Hard limits on a name (see the module docs). Checked before any configurable rule so
/// that no configuration can let an unsafe partition value through.
pub fn check_event_name(name: &str) -> Result<(), Rejection> {
    let (event_type, _) = split_name(name);
    if event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(Rejection::new(
            RejectReason::EventTypeTooLong,
            format!(
                "event_type is {} bytes long; at most {MAX_EVENT_TYPE_BYTES} are allowed \
                 (it names a partition folder)",
                event_type.len()
            ),
        ));
    }
    if let Some(at) = event_type.chars().position(char::is_control) {
        return Err(Rejection::new(
            RejectReason::EventTypeControlCharacter,
            format!("event_type has a control character at character {at}"),
        ));
    }
    if name.len() > MAX_EVENT_NAME_BYTES {
        return Err(Rejection::new(
            RejectReason::EventNameTooLong,
            format!(
                "event_name is {} bytes long; at most {MAX_EVENT_NAME_BYTES} are allowed",
                name.len()
            ),
        ));
    }
    if let Some(at) = name.chars().position(char::is_control) {
        return Err(Rejection::new(
            RejectReason::EventNameControlCharacter,
            format!("event_name has a control character at character {at}"),
        ));
    }
    Ok(())
}

/// A pattern `event_type` must match as a whole (it is anchored: `payment` does not match
/// `pay`). Compares and prints as its source text, so configurations can be compared.
#[derive(Clone)]
pub struct EventTypePattern {
    source: String,
    regex: regex::Regex,
}

/// A pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event_type pattern `{pattern}`: {detail}")]
pub struct PatternError {
    pub pattern: String,
    pub detail: String,
}

impl EventTypePattern {
    /// Compile `pattern` (regex crate syntax), anchored at both ends.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            // A configured pattern is trusted input, but a typo like `.{1000000}` should be
            // an error at startup, not a gigabyte of automaton.
            .size_limit(1 << 20)
            .build()
            .map_err(|e| PatternError {
                pattern: pattern.to_string(),
                detail: e.to_string(),
            })?;
        Ok(EventTypePattern {
            source: pattern.to_string(),
            regex,
        })
    }

    /// The pattern as configured (without the anchors added here).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, event_type: &str) -> bool {
        self.regex.is_match(event_type)
    }
}

impl Default for EventTypePattern {
    fn default() -> Self {
        DEFAULT_RULES.event_type_pattern.clone()
    }
}

impl FromStr for EventTypePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventTypePattern::new(s)
    }
}

impl fmt::Debug for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventTypePattern")
            .field(&self.source)
            .finish()
    }
}

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for EventTypePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for EventTypePattern {}

/// The configurable partition-value policy for `event_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRules {
    /// `event_type` must match this (whole value). Default [`DEFAULT_EVENT_TYPE_PATTERN`].
    pub event_type_pattern: EventTypePattern,
    /// When set, only these event types are accepted (`event_type_not_allowed` otherwise):
    /// the one way to make sure garbage can never create a partition. An allowlisted type
    /// must still match the pattern and the hard limits.
    pub event_type_allowlist: Option<BTreeSet<String>>,
}

static DEFAULT_RULES: LazyLock<PartitionRules> = LazyLock::new(|| PartitionRules {
    event_type_pattern: EventTypePattern {
        source: DEFAULT_EVENT_TYPE_PATTERN.to_string(),
        // A constant, checked by `default_pattern_compiles_and_accepts_plain_names`.
        regex: regex::Regex::new(&format!("^(?:{DEFAULT_EVENT_TYPE_PATTERN})$"))
            .expect("the default pattern is a valid regex (tested)"),
    },
    event_type_allowlist: None,
});

impl Default for PartitionRules {
    fn default() -> Self {
        DEFAULT_RULES.clone()
    }
}

impl PartitionRules {
    /// The default rules, shared (compiled once per process).
    pub fn default_ref() -> &'static PartitionRules {
        &DEFAULT_RULES
    }

    /// Parse a comma-separated allowlist (`payment, user,order`); blanks are ignored, and a
    /// list with no names means "no allowlist".
    pub fn parse_allowlist(text: &str) -> Option<BTreeSet<String>> {
        let set: BTreeSet<String> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        (!set.is_empty()).then_some(set)
    }

    /// Check an `event_type` (already within the hard limits) against the policy.
    pub fn check_event_type(&self, event_type: &str) -> Result<(), Rejection> {
        if !self.event_type_pattern.is_match(event_type) {
            return Err(Rejection::new(
                RejectReason::EventTypePatternMismatch,
                format!(
                    "event_type does not match the allowed pattern `{}`",
                    self.event_type_pattern
                ),
            ));
        }
        if let Some(allowed) = &self.event_type_allowlist
            && !allowed.contains(event_type)
        {
            return Err(Rejection::new(
                RejectReason::EventTypeNotAllowed,
                format!(
                    "event_type is not one of the {} allowed event types",
                    allowed.len()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(name: &str) -> Option<RejectReason> {
        check_event_name(name)
            .and_then(|()| PartitionRules::default().check_event_type(split_name(name).0))
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn default_pattern_compiles_and_accepts_plain_names() {
        assert_eq!(
            EventTypePattern::new(DEFAULT_EVENT_TYPE_PATTERN).map(|p| p.as_str().to_string()),
            Ok(DEFAULT_EVENT_TYPE_PATTERN.to_string())
        );
        for name in [
            "payment:order:completed",
            "payment",
            "a",
            "0",
            "user_profile-v2:x",
            &"a".repeat(64),
        ] {
            assert_eq!(reason(name), None, "{name}");
        }
    }

    #[test]
    fn hostile_types_each_have_their_reason() {
        use RejectReason::*;
        let long = "a".repeat(65);
        let cases: &[(&str, RejectReason)] = &[
            (&long, EventTypeTooLong),
            ("a\u{0}b", EventTypeControlCharacter),
            ("a\nb:x", EventTypeControlCharacter),
            ("a\u{9f}", EventTypeControlCharacter),
            ("a/b", EventTypePatternMismatch),
            ("a=b", EventTypePatternMismatch),
            ("a%2F", EventTypePatternMismatch),
            (" a", EventTypePatternMismatch),
            ("a ", EventTypePatternMismatch),
            ("..", EventTypePatternMismatch),
            (".", EventTypePatternMismatch),
            ("-a", EventTypePatternMismatch),
            ("_a", EventTypePatternMismatch),
            ("Payment", EventTypePatternMismatch),
            ("caf\u{e9}", EventTypePatternMismatch),
            ("a\u{200b}", EventTypePatternMismatch),
            ("a:b\u{7}", EventNameControlCharacter),
            ("a:b:c\r", EventNameControlCharacter),
        ];
        for (name, want) in cases {
            assert_eq!(reason(name), Some(*want), "{name:?}");
        }
        let name = format!("a:{}", "b".repeat(MAX_EVENT_NAME_BYTES));
        assert_eq!(reason(&name), Some(EventNameTooLong));
    }

    #[test]
    fn allowlist_narrows_and_never_widens() {
        let rules = PartitionRules {
            event_type_allowlist: PartitionRules::parse_allowlist(" payment, user ,, Upper"),
            ..PartitionRules::default()
        };
        assert_eq!(
            rules.event_type_allowlist.as_ref().map(|s| s.len()),
            Some(3)
        );
        assert!(rules.check_event_type("payment").is_ok());
        assert_eq!(
            rules.check_event_type("order").err().map(|r| r.reason),
            Some(RejectReason::EventTypeNotAllowed)
        );
        // On the list, but not within the pattern: still refused.
        assert_eq!(
            rules.check_event_type("Upper").err().map(|r| r.reason),
            Some(RejectReason::EventTypePatternMismatch)
        );
        assert_eq!(PartitionRules::parse_allowlist(" , "), None);
    }

    #[test]
    fn patterns_are_anchored_and_bad_ones_are_errors() {
        let p = EventTypePattern::new("pay|user").expect("valid");
        assert!(p.is_match("pay") && p.is_match("user"));
        assert!(!p.is_match("payment") && !p.is_match("xuser"));
        assert!(EventTypePattern::new("(").is_err());
        assert!(EventTypePattern::new("a{100000}{100000}").is_err());
        assert_eq!(
            format!("{:?}", PartitionRules::default().event_type_pattern),
            format!("EventTypePattern({DEFAULT_EVENT_TYPE_PATTERN:?})")
        );
    }

    proptest! {
        /// Whatever the name, a type that passes both layers matches the pattern, is short
        /// and has no control characters; a name that passes the hard limits is short and
        /// has no control characters.
        #[test]
        fn accepted_types_satisfy_the_policy(name in ".{0,80}|[a-zA-Z0-9_:./ %=-]{0,80}") {
            let rules = PartitionRules::default();
            match check_event_name(&name) {
                Err(r) => prop_assert!(RejectReason::ALL.contains(&r.reason)),
                Ok(()) => {
                    prop_assert!(name.len() <= MAX_EVENT_NAME_BYTES);
                    prop_assert!(!name.chars().any(char::is_control));
                    let t = split_name(&name).0;
                    prop_assert!(t.len() <= MAX_EVENT_TYPE_BYTES);
                    if rules.check_event_type(t).is_ok() {
                        prop_assert!(!t.is_empty() && t.len() <= 64);
                        prop_assert!(t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
                        prop_assert!(t.as_bytes()[0].is_ascii_alphanumeric());
                    }
                }
            }
        }

        /// The default pattern and its hand-written reading agree on every short string.
        #[test]
        fn default_pattern_is_what_the_docs_say(t in "[a-z0-9_\\-A-Z. ]{0,70}") {
            let by_hand = !t.is_empty()
                && t.len() <= 64
                && (t.as_bytes()[0].is_ascii_lowercase() || t.as_bytes()[0].is_ascii_digit())
                && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            prop_assert_eq!(PartitionRules::default().event_type_pattern.is_match(&t), by_hand);
        }
    }
}
