//! Turning a batch of raw records into event rows and rejections, in parallel.
//!
//! The per-record rules live in the `schemas` crate; this module only fans the work out over
//! cores (records are independent) and keeps input order, which "first write wins" relies on.

use rayon::prelude::*;
use schemas::{PartitionRules, RejectReason, ValidationRules};

use crate::dedupe::Key;
use crate::source::RawRecord;

/// A valid, enriched event, owning its strings (the input buffers are released early).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub key: Key,
    pub uuid: String,
    pub name: String,
    pub created_at: i64,
    pub created_micros: i64,
    pub created_datetime: String,
    pub created_days: i32,
    pub payload: String,
    /// Index of the source record in the batch (for lineage).
    pub record: u32,
}

impl EventRow {
    pub fn event_type(&self) -> &str {
        schemas::enrich::split_name(&self.name).0
    }

    pub fn event_subtype(&self) -> Option<&str> {
        schemas::enrich::split_name(&self.name).1
    }
}

/// A refused record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    pub reason: RejectReason,
    pub message: String,
    pub record: u32,
}

#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<EventRow>,
    pub rejects: Vec<RejectRow>,
}

const CHUNK: usize = 4096;

/// Decode, validate and enrich every record of a batch. Output is in input order. Every
/// record ends up in exactly one of `events` (with a partition value that satisfies
/// `partitions` and the hard limits of `schemas::partition`) or `rejects`.
pub fn decode_batch(
    records: &[RawRecord],
    rules: &ValidationRules,
    partitions: &PartitionRules,
    now_secs: i64,
) -> Decoded {
    let parts: Vec<Decoded> = records
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(chunk_no, chunk)| {
            let mut out = Decoded {
                events: Vec::with_capacity(chunk.len()),
                rejects: Vec::new(),
            };
            for (i, rec) in chunk.iter().enumerate() {
                let record = (chunk_no * CHUNK + i) as u32;
                match schemas::process_with(
                    &rec.data,
                    rules,
                    partitions,
                    rec.judged_at.unwrap_or(now_secs),
                ) {
                    Ok(e) => out.events.push(EventRow {
                        key: Key::of(&e.event_uuid),
                        uuid: e.event_uuid.into_owned(),
                        name: e.event_name.into_owned(),
                        created_at: e.created_at,
                        created_micros: e.created_micros,
                        created_datetime: e.created_datetime,
                        created_days: e.created_days,
                        payload: e.payload,
                        record,
                    }),
                    Err(r) => out.rejects.push(RejectRow {
                        reason: r.reason,
                        message: r.message,
                        record,
                    }),
                }
            }
            out
        })
        .collect();
    let mut all = Decoded {
        events: Vec::with_capacity(parts.iter().map(|p| p.events.len()).sum()),
        rejects: Vec::new(),
    };
    for p in parts {
        all.events.extend(p.events);
        all.rejects.extend(p.rejects);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Position;
    use bytes::Bytes;

    #[test]
    fn keeps_order_across_chunks() {
        let records: Vec<RawRecord> = (0..10_000u64)
            .map(|i| {
                let line = if i % 7 == 0 {
                    "garbage".to_string()
                } else {
                    format!(r#"{{"event_uuid":"u{i}","event_name":"a:b","created_at":1710670530}}"#)
                };
                RawRecord {
                    data: Bytes::from(line),
                    position: Position::Line(i + 1),
                    judged_at: None,
                }
            })
            .collect();
        let d = decode_batch(
            &records,
            &ValidationRules::default(),
            &PartitionRules::default(),
            1_800_000_000,
        );
        assert_eq!(d.events.len() + d.rejects.len(), records.len());
        assert!(d.events.windows(2).all(|w| w[0].record < w[1].record));
        assert!(
            d.rejects
                .iter()
                .all(|r| r.record % 7 == 0 && r.reason == RejectReason::NotJson)
        );
        assert_eq!(d.events[0].uuid, "u1");
    }
}
