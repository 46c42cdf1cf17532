//! Records read from the held shards and waiting for the next commit, in the order they
//! arrived. When they are due is the batching rule of [`crate::batch::Fill`] (count, bytes,
//! the oldest record's wait), with two service-specific twists: the wait is a promise about
//! *visibility*, so the flush starts early by the time commits take (see [`flush_wait`]);
//! and with other writers on the table the wait ends at this writer's commit slot
//! ([`super::slot`]) rather than a fixed time after the oldest record.

use std::time::{Duration, Instant};

use super::slot::{Slot, unix_nanos};
use crate::batch::Fill;
use crate::config::FlushPolicy;
use crate::source::RawRecord;

/// The records of the next commit.
pub struct Buffer {
    /// The flush limits (`--flush-*`).
    policy: FlushPolicy,
    /// Buffered records, in arrival order across shards (in-batch dedupe keeps the first).
    records: Vec<RawRecord>,
    /// How full the buffer is; its latency clock runs from when the oldest record was read.
    fill: Fill,
    /// Earliest stream arrival time in the buffer (Unix seconds), for the freshness metric.
    oldest_arrival: Option<f64>,
    /// Smoothed duration of recent commits (decode → commit visible), spent out of the wait.
    commit_estimate: Duration,
    /// This batch's share of the wait given up at random (`0..MAX_JITTER`, drawn per batch).
    jitter: f64,
    /// This writer's turn among the writers of the table (`None`: alone, or holding nothing):
    /// flushes start at it instead of after the jittered wait.
    slot: Option<Slot>,
}

/// The largest share of the wait a batch gives up at random. Writers started together (or
/// fed by producers that send in bursts) otherwise flush in lockstep, every commit racing the
/// others' for the same version: the multi-writer benchmark (`bench/multiwriter.py`)
/// measured 0.3-1.9 conflicts per commit with 2-8 writers, and in the simulation at 1000x
/// (`bench/sim`) lockstep flushes conflicted on 31% of commits, jittered ones on ~5%.
/// Only ever earlier: the flush interval stays a promise about freshness.
const MAX_JITTER: f64 = 0.1;

/// With commit slots, the share of the flush interval left for the commit itself: slots
/// recur every `(1 - SLOT_COMMIT_SHARE) x interval` (27 s of 30), the same period for every
/// writer so their slots stay apart. A flush starts at the first slot after its oldest record
/// was read, so that record waits at most the period and is visible within the interval
/// whenever the commit takes less than this share of it. Measured with 4 writers on moto
/// (30 s, slots recurring every interval): batches were visible after the interval *plus*
/// the commit (p50 32.0 s).
const SLOT_COMMIT_SHARE: f64 = 0.1;

/// What a flush takes out of the buffer.
pub struct Taken {
    /// The records of the commit, in arrival order.
    pub records: Vec<RawRecord>,
    /// Earliest stream arrival time of `records` (Unix seconds).
    pub oldest_arrival: Option<f64>,
}

impl Buffer {
    pub fn new(policy: FlushPolicy) -> Buffer {
        Buffer {
            policy,
            records: Vec::new(),
            fill: Fill::default(),
            oldest_arrival: None,
            commit_estimate: Duration::ZERO,
            jitter: draw_jitter(),
            slot: None,
        }
    }

    /// Take turns with other writers (see [`super::slot`]); `None`: flush on this writer's
    /// own cadence. Returns whether the slot changed.
    pub fn set_slot(&mut self, slot: Option<Slot>) -> bool {
        std::mem::replace(&mut self.slot, slot) != slot
    }

    /// Add records a reader got at `received`, the earliest of them having reached the
    /// stream at `oldest_arrival`.
    pub fn push(
        &mut self,
        records: Vec<RawRecord>,
        received: Instant,
        oldest_arrival: Option<f64>,
    ) {
        self.fill.add(&records, received);
        self.records.extend(records);
        if let Some(t) = oldest_arrival {
            self.oldest_arrival = Some(self.oldest_arrival.map_or(t, |o| o.min(t)));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether records of `shard` are waiting (a closed shard is finished only without).
    pub fn holds(&self, shard: &str) -> bool {
        self.records
            .iter()
            .any(|r| r.position.shard() == Some(shard))
    }

    /// Drop the records of `shard` (its reader is restarted from the last committed record,
    /// or the shard is no longer ours): they will be read again, by us or the next owner.
    pub fn forget(&mut self, shard: &str) {
        self.records.retain(|r| r.position.shard() != Some(shard));
        let since = self.fill.since;
        self.fill = Fill::default();
        match since {
            _ if self.records.is_empty() => self.oldest_arrival = None,
            Some(since) => self.fill.add(&self.records, since),
            None => {}
        }
    }

    /// When the flush must start (`None`: nothing buffered): the oldest record's wait, or,
    /// with a slot, the slot's first start after the oldest record was read (within one slot
    /// period of it, [`SLOT_COMMIT_SHARE`]; early by this writer's commit time, so that its
    /// commit lands at its slot).
    pub fn deadline(&self) -> Option<Instant> {
        let Some(slot) = self.slot else {
            return self.fill.deadline(self.wait());
        };
        let since = self.fill.since?;
        let (now, now_ns) = (Instant::now(), unix_nanos());
        let since_ns = now_ns - now.saturating_duration_since(since).as_nanos() as i128;
        let lead = self.commit_estimate.min(self.policy.max_latency / 2);
        let period = self.policy.max_latency.mul_f64(1.0 - SLOT_COMMIT_SHARE);
        let start_ns = slot.next_start(since_ns, period, lead);
        let ahead = Duration::from_nanos(u64::try_from(start_ns - now_ns).unwrap_or(0));
        Some(now + ahead)
    }

    /// Whether the buffer is due for a commit.
    pub fn due(&self) -> bool {
        self.fill.full(&self.policy) || self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Empty the buffer for a commit.
    pub fn take(&mut self) -> Taken {
        self.fill = Fill::default();
        self.jitter = draw_jitter();
        Taken {
            records: std::mem::take(&mut self.records),
            oldest_arrival: self.oldest_arrival.take(),
        }
    }

    /// A commit took `took`: flushes start that much earlier (smoothed).
    pub fn committed_in(&mut self, took: Duration) {
        self.commit_estimate = smooth(self.commit_estimate, took);
    }

    fn wait(&self) -> Duration {
        flush_wait(self.policy.max_latency, self.commit_estimate).mul_f64(1.0 - self.jitter)
    }
}

fn draw_jitter() -> f64 {
    use rand::Rng as _;
    rand::rng().random_range(0.0..MAX_JITTER)
}

/// How long the oldest buffered record may wait before the flush starts. The flush interval
/// is a promise about *visibility* (record read → commit visible), so the time a commit
/// takes is spent out of it: flushing starts early by the smoothed commit duration, capped
/// at half the interval so batches never degenerate under a slow store.
fn flush_wait(interval: Duration, commit_estimate: Duration) -> Duration {
    interval.saturating_sub(commit_estimate.min(interval / 2))
}

/// Exponentially weighted moving average (weight 1/4 on the newest sample): follows a store
/// that slows down within a few batches without jumping on one outlier.
fn smooth(previous: Duration, sample: Duration) -> Duration {
    if previous.is_zero() {
        sample
    } else {
        (previous * 3 + sample) / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Position;
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn flush_starts_early_by_the_commit_time_but_never_before_half_the_interval() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(flush_wait(s(2), Duration::ZERO), s(2));
        assert_eq!(flush_wait(s(2), ms(600)), ms(1400));
        assert_eq!(flush_wait(s(2), s(5)), s(1));
        assert_eq!(flush_wait(Duration::ZERO, s(1)), Duration::ZERO);
    }

    #[test]
    fn smoothing_starts_at_the_first_sample_and_damps_outliers() {
        let ms = Duration::from_millis;
        let first = smooth(Duration::ZERO, ms(800));
        assert_eq!(first, ms(800));
        let after_spike = smooth(first, ms(4800));
        assert_eq!(after_spike, ms(1800));
        let mut d = after_spike;
        for _ in 0..20 {
            d = smooth(d, ms(800));
        }
        assert!(d < ms(810), "{d:?}");
    }

    fn recs(shard: &str, n: usize) -> Vec<RawRecord> {
        (0..n)
            .map(|i| RawRecord {
                data: Bytes::from_static(b"0123456789"),
                position: Position::Sequence {
                    shard: Arc::from(shard),
                    sequence: Arc::from(i.to_string()),
                    sub: None,
                },
                judged_at: None,
            })
            .collect()
    }

    #[test]
    fn each_batch_flushes_up_to_a_tenth_early_never_late() {
        let policy = FlushPolicy {
            max_events: 1_000,
            max_bytes: 1 << 20,
            max_latency: Duration::from_secs(30),
        };
        let mut b = Buffer::new(policy);
        let mut waits = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let now = Instant::now();
            b.push(recs("s", 1), now, None);
            let wait = b.deadline().map(|d| d - now).unwrap_or_default();
            assert!(wait <= Duration::from_secs(30), "{wait:?}");
            assert!(wait > Duration::from_secs(27), "{wait:?}");
            waits.insert(wait);
            b.take();
        }
        assert!(waits.len() > 40, "drawn per batch: {}", waits.len());
    }

    #[test]
    fn with_a_slot_the_flush_starts_at_it_within_a_slot_period_of_the_oldest_record() {
        let policy = FlushPolicy {
            max_events: 1_000,
            max_bytes: 1 << 20,
            max_latency: Duration::from_secs(30),
        };
        // Slots recur every 27 s (a tenth of the interval is left for the commit).
        let period_ns: i128 = 27_000_000_000;
        let commit = Duration::from_millis(400);
        // Two writers of four, both with commits taking 400 ms.
        let mut at = Vec::new();
        for rank in [1, 3] {
            let mut b = Buffer::new(policy);
            b.committed_in(commit);
            assert!(b.set_slot(Some(Slot { rank, of: 4 })));
            assert!(!b.set_slot(Some(Slot { rank, of: 4 })), "unchanged");
            let (now, now_ns) = (Instant::now(), unix_nanos());
            b.push(recs("s", 1), now, None);
            let d = b.deadline().expect("records buffered");
            let wait = d.saturating_duration_since(now);
            assert!(wait <= Duration::from_secs(27), "{wait:?}");
            assert!(
                wait + commit <= policy.max_latency,
                "visible within the interval"
            );
            // Where in the period the commit lands: the slot's quarter, to the clock's
            // resolution (the two clocks are read microseconds apart).
            let lands = (now_ns + (wait + commit).as_nanos() as i128).rem_euclid(period_ns);
            let target = period_ns * rank as i128 / 4;
            let off = (lands - target).rem_euclid(period_ns);
            assert!(
                off < 5_000_000 || off > period_ns - 5_000_000,
                "rank {rank}: {off} ns off"
            );
            at.push(lands);
        }
        let apart = (at[1] - at[0]).rem_euclid(period_ns);
        assert!(
            (apart - period_ns / 2).abs() < 10_000_000,
            "half a period apart: {apart} ns"
        );
    }

    #[test]
    fn due_by_count_and_forgetting_a_shard_recounts() {
        let mut b = Buffer::new(FlushPolicy {
            max_events: 5,
            max_bytes: 1 << 20,
            max_latency: Duration::from_secs(60),
        });
        assert!(!b.due() && b.deadline().is_none());
        let now = Instant::now();
        b.push(recs("a", 3), now, Some(20.0));
        b.push(recs("b", 2), now, Some(10.0));
        assert!(b.due() && b.holds("a") && b.holds("b"));
        b.forget("b");
        assert!(!b.due() && !b.holds("b"));
        // The oldest record's clock, less this batch's jitter (up to 6 s of 60).
        let d = b.deadline().map(|d| d - now).unwrap_or_default();
        assert!(
            d > Duration::from_secs(54) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        b.forget("a");
        assert!(b.is_empty() && b.deadline().is_none());
        b.push(recs("c", 1), now, None);
        let taken = b.take();
        assert_eq!((taken.records.len(), taken.oldest_arrival), (1, None));
        assert!(b.is_empty() && b.deadline().is_none());
    }
}
