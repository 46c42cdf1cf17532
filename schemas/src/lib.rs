//! The events table, defined once.
//!
//! Everything that decides what a row *is* lives here: the columns of the events and
//! rejected-events tables and where each column's value comes from ([`table`], [`row`]),
//! how a raw record's JSON is parsed ([`parse`]), which records are refused and why
//! ([`validate`]), and how a valid record is enriched ([`enrich`], [`time`]). The writer and
//! the compactor only move rows around; they never decide their shape (the writer builds
//! its Arrow columns by walking a [`table::TableDef`]), so a schema change is a change to
//! this crate alone.

pub mod enrich;
pub mod parse;
pub mod partition;
pub mod row;
pub mod table;
pub mod time;
pub mod validate;

pub use enrich::{Enriched, enrich};
pub use parse::{RawEvent, parse_event};
pub use partition::{EventTypePattern, PartitionRules};
pub use row::{EventRow, RejectRow};
pub use validate::{RejectReason, Rejection, ValidationRules};

/// Parse, validate and enrich one record under the default partition-value policy.
///
/// `now_secs` is passed in (not read from the clock) so that a batch is judged against one
/// instant and tests are deterministic.
pub fn process<'a>(
    bytes: &'a [u8],
    rules: &ValidationRules,
    now_secs: i64,
) -> Result<Enriched<'a>, Rejection> {
    process_with(bytes, rules, PartitionRules::default_ref(), now_secs)
}

/// Parse, validate and enrich one record: the whole per-record rule set in one call.
///
/// A record gets the reason of the first check it fails, in this order: parsing,
/// `event_uuid`, `event_name` (shape, then the hard limits on partition values),
/// `created_at`, then the configurable `event_type` policy (pattern, allowlist). Every
/// accepted record's `event_type` is therefore a safe partition value.
pub fn process_with<'a>(
    bytes: &'a [u8],
    rules: &ValidationRules,
    partitions: &PartitionRules,
    now_secs: i64,
) -> Result<Enriched<'a>, Rejection> {
    let raw = parse_event(bytes)?;
    let event = enrich(raw, rules, now_secs)?;
    partitions.check_event_type(event.event_type())?;
    Ok(event)
}
