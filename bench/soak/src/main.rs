//! `soak`: a compressed week of 1x traffic through the real writer, with the compactor run
//! as Terraform schedules it, measuring what grows (issue 14).
//!
//! One process is the writer: [`writer::pipeline::Pipeline::process`] takes each commit's
//! records exactly as the Kinesis service hands them over (one shard, one Delta `txn` per
//! commit for the app id `kinesis/soak/shardId-000000000000`, fenced on the previous one, the
//! same `commitInfo` — built by the service's own `Progress`), so `txn` actions, checkpoints
//! (the writer's background ones, every `delta.checkpointInterval` = 100 commits) and the
//! dedupe index accumulate as in production.
//!
//! # The compressed clock
//! Simulated time starts at the UTC midnight `--sim-days` before now and moves on by
//! `--commit-interval` (30 s) per commit: 2,880 commits per simulated day whatever the scale.
//! A fixed compression factor C (`--compression`, default 168: a week in one hour) paces
//! them: commit i is due at `start + i * interval / C` in real time; the driver sleeps when
//! ahead and never skips a commit when behind (the lag is recorded per commit).
//! `events-per-commit` may be scaled down from the ~8,300 of 1x (1M events/h); the number of
//! commits and the partitions touched per commit (every event type's current-day partition,
//! plus late days) are not.
//!
//! Everything in the table that is judged by *real* time is scaled by C:
//!
//! | at 1x | in the soak |
//! |---|---|
//! | `delta.logRetentionDuration` = 7 days | 7 days / C, `interval N seconds` (C = 168: 3600 s) |
//! | `delta.deletedFileRetentionDuration` = 1 hour | 1 hour / C (C = 168: 21 s) |
//! | `compactor run --retention` (default 7 days) | `--retention` 7 days / C `--force` |
//! | the compactor schedule (every `--compact-every` = 1 h) | every simulated hour, = 1 h / C real |
//! | `delta.checkpointInterval` = 100 commits | unchanged (counted in commits, not time) |
//!
//! Commit timestamps, file modification times and log-entry ages are real time, so vacuum and
//! log expiry see exactly "a week of versions" shrunk by C. Event `created_at` values are
//! simulated time (the partitions are a week of days); each record is judged against its
//! simulated arrival time, as the service judges a record by its Kinesis arrival.
//!
//! # Output (`--out`)
//! `commits.jsonl` (per commit: latency, counts, files, RSS, lag, checkpoints written),
//! `samples.jsonl` (per simulated hour, after that hour's compactor run: the table's live
//! files and bytes, tombstones, objects and bytes in storage, `_delta_log` entries and
//! bytes, checkpoint size and write time, a fresh delta-rs open, the compactor's run, and
//! every `--probe-every` the reader probe's JSON), `compactor.log` and `run.json`.

mod clock;
mod compact;
mod generate;
mod measure;
mod probe;
mod records;
mod setup;
mod soak;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use storage::CommitLock;

/// When the compactor runs relative to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactMode {
    /// Beside the writer, which keeps committing (as in production: separate tasks).
    Concurrent,
    /// The writer waits for it (clean writer latencies; no compactor/writer conflicts).
    Sequential,
}

#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(
    name = "soak",
    about = "Replays a compressed week of 1x traffic through the writer, with the scheduled compactor, and records what grows."
)]
pub struct Args {
    /// Events table: a local path or `s3://` URI (must not exist yet).
    #[arg(long)]
    pub table: String,
    /// Rejected-events table.
    #[arg(long)]
    pub rejected_table: String,
    /// Directory for commits.jsonl, samples.jsonl, run.json, compactor.log.
    #[arg(long)]
    pub out: PathBuf,
    /// Simulated days.
    #[arg(long, default_value_t = 7)]
    pub sim_days: u32,
    /// Simulated time between commits (the deployed `WRITER_FLUSH_INTERVAL`).
    #[arg(long, default_value = "30s", value_parser = storage::cli::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub commit_interval: Duration,
    /// Records per commit (1x is ~8,300 at 1M events/h and 30 s).
    #[arg(long, default_value_t = 300)]
    pub events_per_commit: usize,
    /// Event types (`event_type` partitions per day).
    #[arg(long, default_value_t = 100)]
    pub event_types: usize,
    /// Share of events created on the previous one or two days.
    #[arg(long, default_value_t = 0.02)]
    pub late_fraction: f64,
    /// Simulated time between compactor runs.
    #[arg(long, default_value = "1h", value_parser = storage::cli::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub compact_every: Duration,
    /// Simulated time between reader probes.
    #[arg(long, default_value = "6h", value_parser = storage::cli::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub probe_every: Duration,
    /// Simulated seconds per real second (168: a week in an hour).
    #[arg(long, default_value_t = 168.0, value_parser = positive_factor)]
    pub compression: f64,
    /// The `compactor` binary; without it no compactor runs.
    #[arg(long)]
    pub compactor_bin: Option<PathBuf>,
    /// `compactor run --target-size` (e.g. `1MiB`); without it the compactor's default. Scale
    /// it like the events: files here are `events-per-commit` / ~8,300 of their 1x size.
    #[arg(long)]
    pub compactor_target_size: Option<String>,
    /// Reader probe command (run through `sh -c` with `--table --day --event-type --uuid
    /// --hour-end` appended); without it no probes run.
    #[arg(long)]
    pub probe_cmd: Option<String>,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Commit mode for `s3://` tables: `dynamodb` or `s3-conditional` (writer and compactor).
    #[arg(long, value_parser = parse_commit_lock)]
    #[serde(serialize_with = "lock_name")]
    pub commit_lock: Option<CommitLock>,
    /// DynamoDB lock table (with `--commit-lock dynamodb`).
    #[arg(long, default_value = storage::lock::DEFAULT_LOCK_TABLE)]
    pub lock_table: String,
    /// Whether the writer keeps committing while the compactor runs.
    #[arg(long, value_enum, default_value_t = CompactMode::Concurrent)]
    pub compact_mode: CompactMode,
    /// The writer's dedupe memory budget (`--dedupe-memory-mb`).
    #[arg(long, default_value_t = 1024)]
    pub dedupe_memory_mb: usize,
    /// The writer's `--dedupe-idle-evict`, in *simulated* time (divided by the compression
    /// like the table's retention properties); `0`: eviction by budget only.
    #[arg(long, default_value = "1h", value_parser = storage::cli::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub dedupe_idle_evict: Duration,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    pub log_format: String,
}

fn parse_commit_lock(s: &str) -> Result<CommitLock, String> {
    s.parse()
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn lock_name<S: serde::Serializer>(l: &Option<CommitLock>, s: S) -> Result<S::Ok, S::Error> {
    match l {
        Some(l) => s.serialize_str(l.as_str()),
        None => s.serialize_none(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    storage::cli::init_logging(&args.log_format);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let summary = soak::run(args).await?;
    storage::cli::print_last_line(&summary).context("printing the summary")?;
    Ok(())
}

/// A compression factor: finite and above zero (it divides every real-time interval).
fn positive_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(c),
        Ok(_) => Err("must be a finite number above 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::positive_factor;

    #[test]
    fn compression_is_finite_and_positive() {
        assert_eq!(positive_factor("168"), Ok(168.0));
        assert_eq!(positive_factor("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(positive_factor(bad).is_err(), "{bad}");
        }
    }
}
