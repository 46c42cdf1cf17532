//! Cutting the record stream into batches: whichever of event count, bytes or the oldest
//! record's age reaches its limit first. One batch becomes one commit per table, so these
//! limits trade commit rate (and small files) against freshness.

use std::time::{Duration, Instant};

use crate::config::FlushPolicy;
use crate::source::{Poll, RawRecord, Source, SourceError};

/// How full a batch being gathered is, and the one rule for when it is due: whichever of
/// event count, bytes or the oldest record's wait reaches its limit first. [`Batcher`]
/// (`writer ingest`) and the service's buffer (`writer run`) both cut batches with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fill {
    /// Records gathered.
    pub events: usize,
    /// Raw bytes gathered.
    pub bytes: usize,
    /// When the latency clock started: when the oldest record was read (or, for the
    /// batcher, when it started waiting). `None`: nothing gathered yet.
    pub since: Option<Instant>,
}

impl Fill {
    /// An empty batch whose latency clock already runs (the batcher promises a batch, even an
    /// empty one, within the latency bound of being asked).
    pub fn opened_at(at: Instant) -> Fill {
        Fill {
            since: Some(at),
            ..Fill::default()
        }
    }

    /// Count `records`, read at `read_at`.
    pub fn add(&mut self, records: &[RawRecord], read_at: Instant) {
        self.events += records.len();
        self.bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
        self.since = Some(self.since.map_or(read_at, |s| s.min(read_at)));
    }

    /// The count or the byte limit is reached.
    pub fn full(&self, policy: &FlushPolicy) -> bool {
        self.events >= policy.max_events || self.bytes >= policy.max_bytes
    }

    /// When the oldest record will have waited `wait`.
    pub fn deadline(&self, wait: Duration) -> Option<Instant> {
        self.since.map(|s| s + wait)
    }

    /// Full, or the oldest record has waited `wait` (the policy's `max_latency`, or less
    /// when the caller spends part of it committing).
    pub fn due(&self, policy: &FlushPolicy, wait: Duration) -> bool {
        self.full(policy) || self.deadline(wait).is_some_and(|d| Instant::now() >= d)
    }
}

/// Accumulates records from a source into batches.
pub struct Batcher {
    /// The count, byte and latency limits that close a batch (`[flush]` settings).
    policy: FlushPolicy,
    /// Records read beyond the last batch's count or byte limit: the start of the next one.
    carry: Vec<RawRecord>,
    /// The source reported its end: no more polling.
    ended: bool,
}

/// A batch, and whether the source has ended (no more batches after this one).
pub struct Batch {
    /// The batch's records, in source order (possibly none when the latency bound passed).
    pub records: Vec<RawRecord>,
    /// The source has ended: this is the last batch.
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
        let started = Instant::now();
        let mut fill = Fill::opened_at(started);
        fill.add(&records, started);
        let (policy, wait) = (self.policy, self.policy.max_latency);
        let deadline = started + wait;
        while !self.ended && !fill.full(&policy) {
            match source.poll(deadline).await? {
                Poll::Records(mut more) => {
                    fill.add(&more, Instant::now());
                    records.append(&mut more);
                }
                Poll::Idle => break,
                Poll::End => self.ended = true,
            }
            if fill.due(&policy, wait) {
                break;
            }
        }
        // Respect the count and byte limits exactly by carrying the excess to the next batch.
        let mut cut = records.len().min(policy.max_events);
        let mut acc = 0usize;
        for (i, r) in records.iter().enumerate().take(cut) {
            acc += r.data.len();
            if acc > policy.max_bytes && i > 0 {
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

    #[test]
    fn fill_is_due_at_whichever_limit_comes_first() {
        let policy = FlushPolicy {
            max_events: 3,
            max_bytes: 25,
            max_latency: Duration::from_secs(60),
        };
        let rec = |n: usize| RawRecord {
            data: bytes::Bytes::from(vec![b'x'; n]),
            position: crate::source::Position::Line(1),
            judged_at: None,
        };
        let now = Instant::now();
        let mut fill = Fill::default();
        assert!(!fill.due(&policy, Duration::ZERO) && fill.deadline(policy.max_latency).is_none());
        fill.add(&[rec(10), rec(10)], now);
        assert!(!fill.due(&policy, policy.max_latency));
        assert!(
            fill.due(&policy, Duration::ZERO),
            "the oldest record waited long enough"
        );
        fill.add(&[rec(10)], now + Duration::from_secs(1));
        assert!(fill.full(&policy), "bytes");
        assert_eq!(
            fill.deadline(policy.max_latency),
            Some(now + policy.max_latency)
        );
        let mut fill = Fill::opened_at(now);
        fill.add(&[rec(1), rec(1), rec(1)], now);
        assert!(fill.full(&policy), "count");
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
