//! The events of one commit, as a Kinesis shard would deliver them.
//!
//! Every commit carries one current event of each of the `event_types` types (so every type,
//! i.e. every `event_type` partition of the day, is touched by every commit, as at 1x where a
//! 30 s batch holds ~8,000 events), the rest drawn from a Zipf-like distribution over the
//! types (type 0 the most common). `created_at` is the simulated commit time minus
//! U(0, interval); a `late_fraction` of events is from the previous one or two simulated
//! days instead; 0.5% of the records are exact re-sends of a record of an earlier commit
//! (same bytes), which the writer must count as duplicates.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use writer::source::{Position, RawRecord};

use crate::clock::DAY_SECS;

/// Share of records that are exact re-sends of earlier ones.
const RESEND_FRACTION: f64 = 0.005;
/// Records kept for re-sending (the most recent ones).
const RESEND_POOL: usize = 20_000;
/// Zipf exponent of the type distribution.
const ZIPF_S: f64 = 1.0;
const SUBTYPES: [&str; 4] = ["web", "ios", "android", "api"];
const ACTIONS: [&str; 5] = ["created", "updated", "viewed", "completed", "failed"];
const COUNTRIES: [&str; 6] = ["de", "us", "fr", "br", "jp", "in"];

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid generator settings: {0}")]
    Settings(String),
}

/// Settings of the generator.
#[derive(Debug, Clone, Copy)]
pub struct GenSettings {
    pub events_per_commit: usize,
    pub event_types: usize,
    pub late_fraction: f64,
    pub interval_secs: i64,
    pub seed: u64,
}

/// One commit's records and what they are made of.
pub struct GeneratedBatch {
    pub records: Vec<RawRecord>,
    /// Records that are new events on the commit's simulated day (or the interval before).
    pub current: u64,
    /// New events from the previous one or two days.
    pub late: u64,
    /// Exact re-sends of records of earlier commits.
    pub resends: u64,
    /// Distinct (`event_type`, `created_date`) among the records: partitions touched.
    pub partitions: u64,
}

/// An event written on a simulated day, for the probe's "one event by uuid" query.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub day_start: i64,
    pub event_type: String,
    pub uuid: String,
}

/// The generator: deterministic for a seed.
pub struct Generator {
    settings: GenSettings,
    rng: StdRng,
    types: WeightedIndex<f64>,
    pool: VecDeque<Bytes>,
    shard: Arc<str>,
    sequence: u64,
    /// The latest new current event of type 0, per the simulated day it was made.
    sampled: Option<Sampled>,
}

impl Generator {
    pub fn new(settings: GenSettings) -> Result<Self, GenerateError> {
        if settings.event_types == 0 || settings.event_types > 1000 {
            return Err(GenerateError::Settings(
                "event-types must be 1..=1000".into(),
            ));
        }
        if !(0.0..=1.0).contains(&settings.late_fraction) {
            return Err(GenerateError::Settings(
                "late-fraction must be in 0..=1".into(),
            ));
        }
        let weights = (0..settings.event_types).map(|k| 1.0 / ((k + 1) as f64).powf(ZIPF_S));
        let types =
            WeightedIndex::new(weights).map_err(|e| GenerateError::Settings(e.to_string()))?;
        Ok(Generator {
            settings,
            rng: StdRng::seed_from_u64(settings.seed),
            types,
            pool: VecDeque::with_capacity(RESEND_POOL),
            shard: Arc::from("shardId-000000000000"),
            sequence: 0,
            sampled: None,
        })
    }

    /// The name of type `k` (the `event_type` partition value).
    pub fn type_name(k: usize) -> String {
        format!("type{k:02}")
    }

    /// The most recent event of the most common type made on a simulated day.
    pub fn sampled(&self) -> Option<&Sampled> {
        self.sampled.as_ref()
    }

    /// The records of the commit at simulated time `now` (Unix seconds).
    pub fn batch(&mut self, now: i64) -> GeneratedBatch {
        let n = self.settings.events_per_commit;
        let mut out = GeneratedBatch {
            records: Vec::with_capacity(n),
            current: 0,
            late: 0,
            resends: 0,
            partitions: 0,
        };
        let mut partitions: HashSet<(usize, i64)> = HashSet::new();
        let mut fresh = Vec::with_capacity(n);
        for slot in 0..n {
            if slot >= self.settings.event_types
                && !self.pool.is_empty()
                && self.rng.random_bool(RESEND_FRACTION)
            {
                let i = self.rng.random_range(0..self.pool.len());
                let data = self.pool[i].clone();
                out.records.push(self.record(data, now));
                out.resends += 1;
                continue;
            }
            let covering = slot < self.settings.event_types;
            let late = !covering && self.rng.random_bool(self.settings.late_fraction);
            let (data, k, at) = self.event(slot, late, now);
            partitions.insert((k, at.div_euclid(DAY_SECS)));
            if late {
                out.late += 1;
            } else {
                out.current += 1;
            }
            fresh.push(data.clone());
            out.records.push(self.record(data, now));
        }
        out.partitions = partitions.len() as u64;
        self.remember(fresh);
        out
    }

    /// One new event: its bytes, its type index and its `created_at`.
    fn event(&mut self, slot: usize, late: bool, now: i64) -> (Bytes, usize, i64) {
        let s = self.settings;
        let k = if slot < s.event_types {
            slot
        } else {
            self.types.sample(&mut self.rng)
        };
        let created_at = if late {
            let day = now.div_euclid(DAY_SECS) - self.rng.random_range(1..=2);
            day * DAY_SECS + self.rng.random_range(0..DAY_SECS)
        } else {
            now - self.rng.random_range(0..s.interval_secs.max(1))
        };
        let uuid = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let name = format!(
            "{}:{}:{}",
            Self::type_name(k),
            SUBTYPES[self.rng.random_range(0..SUBTYPES.len())],
            ACTIONS[self.rng.random_range(0..ACTIONS.len())]
        );
        let event = json!({
            "event_uuid": uuid.to_string(),
            "event_name": name,
            "created_at": created_at,
            "user_id": self.rng.random_range(1..5_000_000u64),
            "session": format!("{:016x}", self.rng.random::<u64>()),
            "amount": (self.rng.random_range(0..100_000u32) as f64) / 100.0,
            "country": COUNTRIES[self.rng.random_range(0..COUNTRIES.len())],
            "attempt": self.rng.random_range(1..4u8),
        });
        if k == 0 && !late {
            self.sampled = Some(Sampled {
                day_start: created_at.div_euclid(DAY_SECS) * DAY_SECS,
                event_type: Self::type_name(0),
                uuid: uuid.to_string(),
            });
        }
        (Bytes::from(event.to_string()), k, created_at)
    }

    /// A record as the Kinesis reader hands it over: the next sequence number of the shard,
    /// judged against its (simulated) arrival time.
    fn record(&mut self, data: Bytes, now: i64) -> RawRecord {
        self.sequence += 1;
        RawRecord {
            data,
            position: Position::Sequence {
                shard: Arc::clone(&self.shard),
                sequence: Arc::from(format!("{:056}", self.sequence)),
                sub: None,
            },
            judged_at: Some(now),
        }
    }

    /// Keep the newest records for later re-sends.
    fn remember(&mut self, fresh: Vec<Bytes>) {
        for b in fresh {
            if self.pool.len() == RESEND_POOL {
                self.pool.pop_front();
            }
            self.pool.push_back(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GenSettings {
        GenSettings {
            events_per_commit: 300,
            event_types: 100,
            late_fraction: 0.02,
            interval_secs: 30,
            seed: 1,
        }
    }

    #[test]
    fn covers_every_type_and_adds_up() {
        let Ok(mut g) = Generator::new(settings()) else {
            panic!("settings are valid");
        };
        let mut resends = 0;
        for i in 0..200 {
            let b = g.batch(1_700_000_000 + i * 30);
            assert_eq!(b.records.len(), 300);
            assert_eq!(b.current + b.late + b.resends, 300);
            assert!(b.partitions >= 100);
            resends += b.resends;
        }
        assert!(resends > 0);
        assert!(g.sampled().is_some());
    }
}
