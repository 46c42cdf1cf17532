//! Configuration types shared by every mode (`ingest` from a file, `run` from Kinesis).
//!
//! These are the resolved values the pipeline consumes; flags, environment variables and the
//! TOML file are read (once, with their defaults) by [`crate::settings`].

use std::time::Duration;

use schemas::ValidationRules;
use storage::StorageConfig;

/// Where the two tables live and how to reach them.
#[derive(Debug, Clone)]
pub struct Tables {
    pub events_uri: String,
    pub rejected_uri: String,
    pub storage: StorageConfig,
}

/// When a batch is cut: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Maximum events in one batch (one commit).
    pub max_events: usize,
    /// Maximum raw bytes in one batch.
    pub max_bytes: usize,
    /// Maximum time the oldest record of a batch waits before it is committed.
    pub max_latency: Duration,
}

/// `writer ingest`'s default batch cap, half the service's: with two batches in flight, each
/// holding its decoded rows and payloads, 200k-event batches peaked at ~530 MiB RSS and 100k at
/// ~350 MiB, at the same wall time (BENCHMARKS.md, session 10). The service keeps 200k: there
/// the cap bounds commits per second at high volume, not a file's backlog.
pub const INGEST_MAX_BATCH_EVENTS: usize = 100_000;

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_events: 200_000,
            max_bytes: 128 << 20,
            max_latency: Duration::from_secs(5),
        }
    }
}

/// Dedupe memory: keys of recently touched partitions are kept in memory up to a budget;
/// beyond it the least recently used partitions are dropped and re-read on demand. Every
/// `idle_evict` period each partition is judged: none of its keys probed, dropped; fewer
/// than [`crate::dedupe::DEMOTE_BELOW_PROBES`] probed, its keys become a Bloom filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeConfig {
    pub memory_budget_bytes: usize,
    /// Why: the budget alone lets every past day's partitions stay until the budget is full,
    /// so the writer's memory grew for days after a restart and then sat at the budget
    /// (issue 14). Past days are probed only by late events: held as filters they cost ~1.2
    /// bytes a key, and a key a filter may hold reloads the partition's (by then compacted)
    /// files, so the answer stays exact. `None`: neither, only the budget evicts.
    pub idle_evict: Option<Duration>,
}

/// Default of [`DedupeConfig::idle_evict`]: an hour covers the usual late arrivals (a
/// partition touched once an hour stays held) and is the compactor's cadence, so a
/// partition re-read after it is read from compacted files.
pub const DEFAULT_DEDUPE_IDLE_EVICT: Duration = Duration::from_secs(3600);

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            memory_budget_bytes: 1 << 30,
            idle_evict: Some(DEFAULT_DEDUPE_IDLE_EVICT),
        }
    }
}

/// Everything the pipeline needs besides its source.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub tables: Tables,
    pub flush: FlushPolicy,
    pub dedupe: DedupeConfig,
    pub validation: ValidationRules,
    /// Which `event_type` values may become partitions (pattern, allowlist, new-partition
    /// cap): hostile names are rejected per record instead of failing a batch.
    pub partition: crate::pipeline::PartitionPolicy,
    /// Recorded in every commit so an auditor can tell which process wrote a version.
    pub writer_id: String,
}

impl PipelineConfig {
    /// Default settings for an `events` and an `events_rejected` table in the local folder
    /// `dir` (tests, benchmarks, demos).
    pub fn local(dir: &std::path::Path, writer_id: &str) -> Self {
        PipelineConfig {
            tables: Tables {
                events_uri: dir.join("events").display().to_string(),
                rejected_uri: dir.join("events_rejected").display().to_string(),
                storage: storage::StorageConfig::default(),
            },
            flush: FlushPolicy::default(),
            dedupe: DedupeConfig::default(),
            validation: ValidationRules::default(),
            partition: crate::pipeline::PartitionPolicy::default(),
            writer_id: writer_id.to_string(),
        }
    }
}

pub use storage::cli::parse_duration;
