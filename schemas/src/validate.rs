//! Why a record is refused. A rejection is data, not an error: it is written to the
//! rejected-events table with a machine-readable [`RejectReason`] and a human message.
//! Messages never quote field values (they may hold personal data); the raw bytes are kept
//! in the rejected table itself, where access is governed like the events.

use std::fmt;

/// Machine-readable reason kind, stored in the `reason` column as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    NotUtf8,
    NotJson,
    NotObject,
    DuplicateField,
    MissingEventUuid,
    InvalidEventUuid,
    MissingEventName,
    InvalidEventName,
    MissingCreatedAt,
    InvalidCreatedAt,
    CreatedAtOutOfRange,
    CreatedAtInMilliseconds,
    /// `event_type` longer than [`crate::partition::MAX_EVENT_TYPE_BYTES`].
    EventTypeTooLong,
    /// `event_type` holds a control character (NUL, newline, DEL, C1, ...).
    EventTypeControlCharacter,
    /// `event_type` does not match the configured pattern.
    EventTypePatternMismatch,
    /// `event_type` is not on the configured allowlist.
    EventTypeNotAllowed,
    /// `event_name` longer than [`crate::partition::MAX_EVENT_NAME_BYTES`].
    EventNameTooLong,
    /// A control character in `event_name` after the type (subtype or later parts).
    EventNameControlCharacter,
    /// The event's type would be one more new `event_type` partition than a batch may
    /// create (decided by the writer against the table, not per record).
    TooManyNewPartitions,
}

impl RejectReason {
    pub const ALL: [RejectReason; 19] = [
        RejectReason::NotUtf8,
        RejectReason::NotJson,
        RejectReason::NotObject,
        RejectReason::DuplicateField,
        RejectReason::MissingEventUuid,
        RejectReason::InvalidEventUuid,
        RejectReason::MissingEventName,
        RejectReason::InvalidEventName,
        RejectReason::MissingCreatedAt,
        RejectReason::InvalidCreatedAt,
        RejectReason::CreatedAtOutOfRange,
        RejectReason::CreatedAtInMilliseconds,
        RejectReason::EventTypeTooLong,
        RejectReason::EventTypeControlCharacter,
        RejectReason::EventTypePatternMismatch,
        RejectReason::EventTypeNotAllowed,
        RejectReason::EventNameTooLong,
        RejectReason::EventNameControlCharacter,
        RejectReason::TooManyNewPartitions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::NotJson => "not_json",
            RejectReason::NotObject => "not_object",
            RejectReason::DuplicateField => "duplicate_field",
            RejectReason::MissingEventUuid => "missing_event_uuid",
            RejectReason::InvalidEventUuid => "invalid_event_uuid",
            RejectReason::MissingEventName => "missing_event_name",
            RejectReason::InvalidEventName => "invalid_event_name",
            RejectReason::MissingCreatedAt => "missing_created_at",
            RejectReason::InvalidCreatedAt => "invalid_created_at",
            RejectReason::CreatedAtOutOfRange => "created_at_out_of_range",
            RejectReason::CreatedAtInMilliseconds => "created_at_in_milliseconds",
            RejectReason::EventTypeTooLong => "event_type_too_long",
            RejectReason::EventTypeControlCharacter => "event_type_control_character",
            RejectReason::EventTypePatternMismatch => "event_type_pattern_mismatch",
            RejectReason::EventTypeNotAllowed => "event_type_not_allowed",
            RejectReason::EventNameTooLong => "event_name_too_long",
            RejectReason::EventNameControlCharacter => "event_name_control_character",
            RejectReason::TooManyNewPartitions => "too_many_new_partitions",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused record: the reason kind and a human-readable explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// 2000-01-01T00:00:00Z: the default lower bound for `created_at`.
pub const DEFAULT_MIN_CREATED_AT: i64 = 946_684_800;
/// One day: the default allowance for producer clocks running ahead.
pub const DEFAULT_MAX_FUTURE_SECS: i64 = 86_400;

/// The configurable part of validation: the plausible window for `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationRules {
    /// Earliest accepted `created_at`, Unix seconds (inclusive).
    pub min_created_at: i64,
    /// How far past "now" `created_at` may be, in seconds (inclusive).
    pub max_future_secs: i64,
}

impl Default for ValidationRules {
    fn default() -> Self {
        ValidationRules {
            min_created_at: DEFAULT_MIN_CREATED_AT,
            max_future_secs: DEFAULT_MAX_FUTURE_SECS,
        }
    }
}

impl ValidationRules {
    /// Check a whole-seconds `created_at` against the window at `now_secs`.
    pub fn check_window(&self, secs: i64, now_secs: i64) -> Result<(), Rejection> {
        let max = now_secs.saturating_add(self.max_future_secs);
        if secs >= self.min_created_at && secs <= max {
            return Ok(());
        }
        // A value 1000x too large that fits the window once divided is almost surely
        // milliseconds: say so, it is the most common producer bug.
        let as_millis = secs.div_euclid(1000);
        if secs > max && as_millis >= self.min_created_at && as_millis <= max {
            return Err(Rejection::new(
                RejectReason::CreatedAtInMilliseconds,
                format!(
                    "created_at {secs} looks like milliseconds since the epoch; \
                     expected seconds between {} and {max}",
                    self.min_created_at
                ),
            ));
        }
        Err(Rejection::new(
            RejectReason::CreatedAtOutOfRange,
            format!(
                "created_at {secs} is outside the plausible window [{}, {max}] (Unix seconds)",
                self.min_created_at
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reason names are stored in the table and matched on by users: distinct, snake_case,
    /// and every variant is listed in `ALL`.
    #[test]
    fn reason_names_are_distinct_snake_case() {
        let names: std::collections::BTreeSet<&str> =
            RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), RejectReason::ALL.len());
        for n in names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }
}
