//! The resolved settings of `writer run`. Where they come from (flags, environment, the
//! `--config` file, defaults) is [`crate::settings`]; this is what the service consumes.

use std::time::Duration;

use crate::config::PipelineConfig;
use crate::source::kinesis::StartPosition;

/// GetRecords' own maximum: fewer calls per record on a busy shard.
pub const RECORDS_PER_CALL: i32 = 10_000;
/// How often the stream's shard list is re-read to notice splits and merges.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Resolved service settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The Kinesis stream read (`--stream`).
    pub stream: String,
    /// Tables, flush limits, dedupe memory, validation and partition rules.
    pub pipeline: PipelineConfig,
    /// The DynamoDB lease table (created on start if missing).
    pub lease_table: String,
    /// A lease not renewed for this long is expired; held leases are renewed every third.
    pub lease_duration: Duration,
    /// Where a shard without a checkpoint starts.
    pub start: StartPosition,
    /// Address the `/metrics` and `/healthz` endpoint binds to.
    pub metrics_host: String,
    /// `None` disables the endpoint.
    pub metrics_port: Option<u16>,
    /// The orderly stop (flush, checkpoint, release) must finish within this.
    pub shutdown_deadline: Duration,
    /// `--exit-when-idle`: stop once nothing was readable for this long (batch jobs, tests).
    pub exit_when_idle: Option<Duration>,
    /// `--exit-when-caught-up`: commit and stop once every shard was read to its tip
    /// (scheduled runs on a stream that never goes idle).
    pub exit_when_caught_up: bool,
    /// `--commit-slots`: take turns with the table's other writers (see [`super::slot`]).
    pub commit_slots: bool,
    /// `--dedupe-keys`: which keys the events table's dedupe index holds.
    pub dedupe_keys: DedupeKeys,
    /// `--max-run-time`: stop this long after starting (scheduled runs).
    pub max_run_time: Option<Duration>,
    /// Pause after an empty GetRecords.
    pub poll_interval: Duration,
    /// Records asked for per GetRecords call.
    pub records_per_call: i32,
    /// How often the shard list is re-read.
    pub discovery_interval: Duration,
}

/// Which keys a writer's dedupe index holds for the events table (`--dedupe-keys`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DedupeKeys {
    /// Every key of the partitions it writes: exact for any copy of an event, whatever its
    /// partition key; each writer reads the key column of every file the others add.
    #[default]
    All,
    /// The keys that came through the shards it holds (and their ancestors) or through
    /// none: exact for copies that share a partition key; other writers' commits are never
    /// read, so a lost race is a rebase (see `crate::dedupe::OwnedShards`).
    OwnShards,
}
