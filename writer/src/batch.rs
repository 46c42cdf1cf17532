//! Cutting the record stream into batches: whichever of event count, bytes or the oldest
//! record's age reaches its limit first. One batch becomes one commit per table, so these
//! limits trade commit rate (and small files) against freshness.

use std::time::Instant;

use crate::config::FlushPolicy;
use crate::source::{Poll, RawRecord, Source, SourceError};

/// Accumulates records from a source into batches.
pub struct Batcher {
    policy: FlushPolicy,
    carry: Vec<RawRecord>,
    ended: bool,
}

/// A batch, and whether the source has ended (no more batches after this one).
pub struct Batch {
    pub records: Vec<RawRecord>,
    pub end: bool,
}

impl Batcher {
    pub fn new(policy: FlushPolicy) -> Self {
        Batcher {
            policy,
            carry: Vec::new(),
            ended: false,
        }
    }

    /// Wait for the next batch. Returns an empty batch when the latency bound passes with
    /// nothing read (lets a service loop do housekeeping).
    pub async fn next<S: Source>(&mut self, source: &mut S) -> Result<Batch, SourceError> {
        let mut records = std::mem::take(&mut self.carry);
        let mut bytes: usize = records.iter().map(|r| r.data.len()).sum();
        let started = Instant::now();
        let deadline = started + self.policy.max_latency;
        while !self.ended && records.len() < self.policy.max_events && bytes < self.policy.max_bytes
        {
            match source.poll(deadline).await? {
                Poll::Records(mut more) => {
                    bytes += more.iter().map(|r| r.data.len()).sum::<usize>();
                    records.append(&mut more);
                }
                Poll::Idle => break,
                Poll::End => self.ended = true,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Respect the count and byte limits exactly by carrying the excess to the next batch.
        let mut cut = records.len().min(self.policy.max_events);
        let mut acc = 0usize;
        for (i, r) in records.iter().enumerate().take(cut) {
            acc += r.data.len();
            if acc > self.policy.max_bytes && i > 0 {
                cut = i;
                break;
            }
        }
        self.carry = records.split_off(cut);
        Ok(Batch {
            records,
            end: self.ended && self.carry.is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ndjson::NdjsonSource;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn respects_count_limit_and_ends() {
        let input: String = (0..25).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let mut src = NdjsonSource::from_reader(
            Arc::from("t"),
            Box::new(std::io::Cursor::new(input.into_bytes())),
        );
        let mut b = Batcher::new(FlushPolicy {
            max_events: 10,
            max_bytes: 1 << 20,
            max_latency: Duration::from_secs(5),
        });
        let mut sizes = vec![];
        loop {
            let batch = b.next(&mut src).await.expect("batch");
            sizes.push(batch.records.len());
            if batch.end {
                break;
            }
        }
        assert_eq!(sizes.iter().sum::<usize>(), 25);
        assert!(sizes.iter().all(|&s| s <= 10));
    }

    #[tokio::test]
    async fn respects_byte_limit() {
        let input: String = (0..20).map(|_| format!("{}\n", "x".repeat(99))).collect();
        let mut src = NdjsonSource::from_reader(
            Arc::from("t"),
            Box::new(std::io::Cursor::new(input.into_bytes())),
        );
        let mut b = Batcher::new(FlushPolicy {
            max_events: 1000,
            max_bytes: 500,
            max_latency: Duration::from_secs(5),
        });
        let first = b.next(&mut src).await.expect("batch");
        assert_eq!(first.records.len(), 5);
    }
}
