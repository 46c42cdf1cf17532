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

/// Parse durations like `500ms`, `5s`, `2m`, `1h`, `7d`, `168h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{text}`"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!(
                "invalid duration unit `{other}` in `{text}` (use ms, s, m, h, d)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration `{text}`"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// serde adapter so TOML files can say `max_latency = "5s"`.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
