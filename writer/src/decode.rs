//! Turning a batch of raw records into event rows and rejections, in parallel.
//!
//! The per-record rules live in the `schemas` crate; this module only fans the work out over
//! cores (records are independent) and keeps input order, which "first write wins" relies on.

use std::ops::Deref;

use rayon::prelude::*;
use schemas::{EventRow, PartitionRules, ValidationRules};

use crate::dedupe::Key;
use crate::source::RawRecord;

pub use schemas::RejectRow;

/// An accepted event's row with its dedupe key, computed here (in parallel, once) rather
/// than on every lookup. It reads as its [`EventRow`] (`Deref`): the key is the only thing
/// the writer adds to what the rules produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedEvent {
    pub key: Key,
    pub row: EventRow,
}

impl Deref for KeyedEvent {
    type Target = EventRow;

    fn deref(&self) -> &EventRow {
        &self.row
    }
}

/// A batch's records, each either an accepted event or a rejection, in input order.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<KeyedEvent>,
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
                    Ok(e) => out.events.push(KeyedEvent {
                        key: Key::of(&e.event_uuid),
                        row: EventRow::new(e, record),
                    }),
                    Err(r) => out.rejects.push(RejectRow::new(r, record)),
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
    use schemas::RejectReason;

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
