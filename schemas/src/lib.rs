//! The events table, defined once.
//!
//! Everything that decides what a row *is* lives here: the column names and types of the
//! events and rejected-events tables ([`table`]), how a raw record is decoded ([`decode`]),
//! which records are refused and why ([`validate`]), and how a valid record is enriched
//! ([`enrich`], [`time`]). The writer and the compactor only move rows around; they never
//! decide their shape, so a schema change is a change to this crate alone.

pub mod decode;
pub mod enrich;
pub mod partition;
pub mod table;
pub mod time;
pub mod validate;

pub use decode::{RawEvent, decode_event};
pub use enrich::{Enriched, enrich};
pub use partition::{EventTypePattern, PartitionRules};
pub use validate::{RejectReason, Rejection, ValidationRules};

/// Decode, validate and enrich one record under the default partition-value policy.
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

/// Decode, validate and enrich one record: the whole per-record rule set in one call.
///
/// A record gets the reason of the first check it fails, in this order: decoding,
/// `event_uuid`, `event_name` (shape, then the hard limits on partition values),
/// `created_at`, then the configurable `event_type` policy (pattern, allowlist). Every
/// accepted record's `event_type` is therefore a safe partition value.
pub fn process_with<'a>(
    bytes: &'a [u8],
    rules: &ValidationRules,
    partitions: &PartitionRules,
    now_secs: i64,
) -> Result<Enriched<'a>, Rejection> {
    let raw = decode_event(bytes)?;
    let event = enrich(raw, rules, now_secs)?;
    partitions.check_event_type(event.event_type())?;
    Ok(event)
}
