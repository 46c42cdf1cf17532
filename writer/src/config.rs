//! Configuration types shared by every mode (`ingest` from a file, `run` from Kinesis).
//!
//! The CLI, a TOML file and the environment all fill these same structs, so a setting means
//! the same thing whichever way it was given.

use std::time::Duration;

use schemas::ValidationRules;
use serde::Deserialize;
use storage::StorageConfig;

/// Where the two tables live and how to reach them.
#[derive(Debug, Clone)]
pub struct Tables {
    pub events_uri: String,
    pub rejected_uri: String,
    pub storage: StorageConfig,
}

/// When a batch is cut: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct FlushPolicy {
    /// Maximum events in one batch (one commit).
    pub max_events: usize,
    /// Maximum raw bytes in one batch.
    pub max_bytes: usize,
    /// Maximum time the oldest record of a batch waits before it is committed.
    #[serde(with = "humantime_serde_compat")]
    pub max_latency: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_events: 200_000,
            max_bytes: 128 << 20,
            max_latency: Duration::from_secs(5),
        }
    }
}

/// Dedupe memory: keys of recently touched partitions are kept in memory up to this budget;
/// beyond it the least recently used partitions are dropped and re-read on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeConfig {
    pub memory_budget_bytes: usize,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            memory_budget_bytes: 1 << 30,
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
    /// Recorded in every commit so an auditor can tell which process wrote a version.
    pub writer_id: String,
}

pub use storage::cli::parse_duration;

/// serde adapter so TOML files can say `max_latency = "5s"`.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}
