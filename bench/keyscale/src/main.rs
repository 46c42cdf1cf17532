//! `keyscale`: the dedupe index's per-batch cost and memory as one partition grows from 1M to
//! 200M keys (issue 15, "measured here").
//!
//! At 1000x one event type's day is ~240M events. The chosen design (shard-aligned key
//! ownership, `writer run --dedupe-keys own-shards`) claims a writer's dedupe memory and
//! per-batch cost depend on the keys of *its* shards, not on the partition's size. This
//! binary puts that claim to the test on a real table, through the writer's own
//! [`Pipeline`] (decode, dedupe, Parquet, Delta commit with the Kinesis `txn`s), in two steps
//! a driver (`bench/keyscale.py`) alternates:
//!
//! - `grow --keys N`: adds shards of `--shard-keys` keys each (shard 0 is the measured
//!   writer's, the others stand for other writers' shards) to one partition until it holds
//!   N keys. Each shard is committed as its writer would: its own `txn`, its rows'
//!   `source_shard`, one file per batch.
//! - `measure`: a fresh process is the writer of shard 0. It commits `--batches` batches into
//!   the same partition, each of new keys plus re-sent copies of keys shard 0 committed
//!   before (what Kinesis redelivers and producers retry), and records per batch its wall
//!   time, what the index read, what it holds, the process's RSS, and whether the counts are
//!   exact (every re-send caught, every new key written). With `--dedupe-keys all` the same
//!   batches run through the default index (every key of the partition), for comparison.
//!
//! Keys are deterministic in (shard, index), so a re-send is the same `event_uuid` and
//! `created_at` as its first copy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use storage::StorageConfig;
use writer::config::{DedupeConfig, FlushPolicy, PipelineConfig, Tables};
use writer::dedupe::OwnedShards;
use writer::pipeline::Pipeline;
use writer::service::progress::{Progress, app_id};
use writer::source::{Position, RawRecord};

/// The stream the commits claim (part of each shard's `txn` app id).
const STREAM: &str = "keyscale";
/// The one partition's event type.
const EVENT_NAME: &str = "scale:key";
const DAY_SECS: i64 = 86_400;

#[derive(Debug, Parser)]
#[command(
    name = "keyscale",
    about = "Dedupe cost and memory as one partition grows"
)]
struct Args {
    /// Events table (local path).
    #[arg(long)]
    table: String,
    /// Rejected-events table (local path).
    #[arg(long)]
    rejected_table: String,
    /// The partition's day (YYYY-MM-DD, UTC; must be in the past).
    #[arg(long)]
    day: chrono::NaiveDate,
    /// Keys per shard.
    #[arg(long, default_value_t = 1_000_000)]
    shard_keys: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add shards until the partition holds at least `--keys` keys.
    Grow {
        #[arg(long)]
        keys: u64,
        /// Events per commit while growing.
        #[arg(long, default_value_t = 250_000)]
        batch: u64,
    },
    /// Be shard 0's writer for `--batches` batches; print one JSON line per batch and a
    /// summary line.
    Measure {
        #[arg(long, value_enum, default_value_t = Keys::OwnShards)]
        dedupe_keys: Keys,
        #[arg(long, default_value_t = 10)]
        batches: u64,
        /// Events per batch (one 1000x writer's ~45 s flush holds ~10k events per type).
        #[arg(long, default_value_t = 10_000)]
        batch_events: u64,
        /// Of each batch, this percentage are re-sent copies of shard 0's earlier keys.
        #[arg(long, default_value_t = 10)]
        resend_percent: u64,
        /// Dedupe memory budget (the writer's `WRITER_DEDUPE_MEMORY_MB`).
        #[arg(long, default_value_t = 1024)]
        dedupe_memory_mb: usize,
        /// Append the JSON lines here as well.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which keys the measured writer's index holds (as `writer run --dedupe-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Keys {
    All,
    OwnShards,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let day_start = args
        .day
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc()
        .timestamp();
    if day_start + DAY_SECS > chrono::Utc::now().timestamp() {
        bail!("--day must be a past UTC day (its events must all be in the past)");
    }
    let ctx = Ctx {
        day_start,
        shard_keys: args.shard_keys,
    };
    match args.command {
        Command::Grow { keys, batch } => {
            grow(&args.table, &args.rejected_table, &ctx, keys, batch).await
        }
        Command::Measure {
            dedupe_keys,
            batches,
            batch_events,
            resend_percent,
            dedupe_memory_mb,
            out,
        } => {
            let m = MeasureArgs {
                keys: dedupe_keys,
                batches,
                batch_events,
                resends: batch_events * resend_percent.min(100) / 100,
                budget: dedupe_memory_mb << 20,
                out,
            };
            measure(&args.table, &args.rejected_table, &ctx, &m).await
        }
    }
}

/// What both steps share.
struct Ctx {
    day_start: i64,
    shard_keys: u64,
}

impl Ctx {
    /// The event with key `index` of shard `shard`: the same bytes every time it is made.
    fn event(&self, shard: u64, index: u64) -> Bytes {
        let uuid = key_uuid(shard, index);
        let created_at =
            self.day_start + (mix(shard ^ index.rotate_left(17)) % DAY_SECS as u64) as i64;
        Bytes::from(
            json!({"event_uuid": uuid.to_string(), "event_name": EVENT_NAME, "created_at": created_at, "amount": index % 1000})
                .to_string(),
        )
    }
}

/// The shard id of shard number `n`, as Kinesis names them.
fn shard_id(n: u64) -> String {
    format!("shardId-{n:012}")
}

/// SplitMix64's finalizer: a bijection on u64 that looks random.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random-looking UUID, deterministic in (shard, index) and distinct for distinct pairs
/// (the high half is a bijection of the pair for shards and indexes below 2^32).
fn key_uuid(shard: u64, index: u64) -> uuid::Uuid {
    let hi = mix((shard << 32) | (index & 0xffff_ffff));
    let lo = mix(hi ^ 0x5eed);
    uuid::Uuid::from_u128((u128::from(hi) << 64) | u128::from(lo))
}

fn pipeline_config(table: &str, rejected: &str, budget: usize) -> PipelineConfig {
    PipelineConfig {
        tables: Tables {
            events_uri: table.to_string(),
            rejected_uri: rejected.to_string(),
            storage: StorageConfig::default(),
        },
        flush: FlushPolicy::default(),
        dedupe: DedupeConfig {
            memory_budget_bytes: budget,
            ..DedupeConfig::default()
        },
        validation: schemas::ValidationRules::default(),
        partition: Default::default(),
        writer_id: "keyscale".into(),
    }
}

/// Records of `shard` as its Kinesis reader hands them over (sequence numbers from `first`).
fn records(shard: &Arc<str>, first: u64, events: Vec<Bytes>) -> Vec<RawRecord> {
    let now = chrono::Utc::now().timestamp();
    events
        .into_iter()
        .enumerate()
        .map(|(i, data)| RawRecord {
            data,
            position: Position::Sequence {
                shard: Arc::clone(shard),
                sequence: Arc::from(format!("{:020}", first + i as u64)),
                sub: None,
            },
            judged_at: Some(now),
        })
        .collect()
}

/// Commit `events` as shard `shard`'s next batch: its `txn` moves on by one, fenced on
/// the version before.
async fn commit_batch(
    pipeline: &mut Pipeline,
    shard: &Arc<str>,
    first_sequence: u64,
    events: Vec<Bytes>,
) -> Result<writer::pipeline::BatchReport> {
    let app = app_id(STREAM, shard);
    let previous = pipeline.events.txn_version(&app).await?;
    let records = records(shard, first_sequence, events);
    let progress = Progress::of(STREAM, &records, |_| Some(previous));
    let (txns, expect, meta) = (progress.txns(), progress.expected(), progress.commit_info());
    Ok(pipeline
        .process(&format!("kinesis:{STREAM}"), records, txns, &expect, &meta)
        .await?)
}

/// Rows and files of the table's live files (one partition: the whole table).
async fn table_rows(table: &str) -> Result<(u64, u64)> {
    let t = storage::open_table(table, &StorageConfig::default()).await?;
    let snapshot = t.snapshot()?;
    let (mut rows, mut files) = (0u64, 0u64);
    for f in snapshot.log_data().iter() {
        rows += f.num_records().unwrap_or(0) as u64;
        files += 1;
    }
    Ok((rows, files))
}

async fn grow(table: &str, rejected: &str, ctx: &Ctx, keys: u64, batch: u64) -> Result<()> {
    let mut pipeline = Pipeline::open(pipeline_config(table, rejected, 1 << 30)).await?;
    let (mut rows, _) = table_rows(table).await?;
    // The next shard never committed (shards are added in order).
    let mut n = 0u64;
    while pipeline
        .events
        .txn_version(&app_id(STREAM, &shard_id(n)))
        .await?
        .is_some()
    {
        n += 1;
    }
    let started = Instant::now();
    while rows < keys {
        let shard: Arc<str> = Arc::from(shard_id(n));
        // Each shard is its own writer: it holds its own keys only (it starts with none).
        pipeline.events.own_shards(None);
        pipeline.events.own_shards(Some(
            OwnedShards::new(STREAM, [shard.to_string()]).with_fresh([shard.to_string()]),
        ));
        let mut index = 0u64;
        while index < ctx.shard_keys {
            let end = (index + batch).min(ctx.shard_keys);
            let events = (index..end).map(|i| ctx.event(n, i)).collect();
            let report = commit_batch(&mut pipeline, &shard, index, events).await?;
            let c = report.counts;
            if c.written != end - index || c.duplicates != 0 || c.rejected != 0 {
                bail!(
                    "shard {n}: batch from {index}: {c:?}, expected {} written",
                    end - index
                );
            }
            rows += c.written;
            index = end;
        }
        eprintln!(
            "{{\"grown_shard\": {n}, \"rows\": {rows}, \"elapsed_s\": {:.1}}}",
            started.elapsed().as_secs_f64()
        );
        n += 1;
    }
    Ok(())
}

struct MeasureArgs {
    keys: Keys,
    batches: u64,
    batch_events: u64,
    resends: u64,
    budget: usize,
    out: Option<PathBuf>,
}

/// One measured batch.
#[derive(Debug, Serialize)]
struct BatchLine {
    dedupe_keys: Keys,
    partition_keys: u64,
    partition_files: u64,
    batch: u64,
    events: u64,
    resends: u64,
    written: u64,
    duplicates: u64,
    /// Every re-send caught and every new key written.
    exact: bool,
    wall_ms: f64,
    /// Index counters for this batch (differences).
    files_read: u64,
    keys_loaded: u64,
    load_files_skipped: u64,
    scopes_streamed: u64,
    /// Gauges after the batch.
    index_bytes: u64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

async fn measure(table: &str, rejected: &str, ctx: &Ctx, m: &MeasureArgs) -> Result<()> {
    let (partition_keys, partition_files) = table_rows(table).await?;
    let mut pipeline = Pipeline::open(pipeline_config(table, rejected, m.budget)).await?;
    let own = shard_id(0);
    if m.keys == Keys::OwnShards {
        pipeline
            .events
            .own_shards(Some(OwnedShards::new(STREAM, [own.clone()])));
    }
    let shard: Arc<str> = Arc::from(own);
    let mut out = match &m.out {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("{}", p.display()))?,
        ),
        None => None,
    };
    let mut rng = rand::rng();
    // New keys come from a shard number no `grow` reaches, unique to this run.
    let fresh_shard = (1u64 << 31) | u64::from(rng.random::<u32>() >> 1);
    let mut fresh_index = 0u64;
    let mut before = pipeline.events.index_stats();
    let mut lines = Vec::new();
    for b in 0..m.batches {
        let new = m.batch_events - m.resends;
        let mut events: Vec<Bytes> = (0..new)
            .map(|_| {
                fresh_index += 1;
                ctx.event(fresh_shard, fresh_index)
            })
            .collect();
        // Distinct earlier keys of shard 0, spread over all it committed.
        let start = rng.random_range(0..ctx.shard_keys);
        let stride = ctx.shard_keys / m.resends.max(1);
        events.extend(
            (0..m.resends).map(|i| ctx.event(0, (start + i * stride.max(1)) % ctx.shard_keys)),
        );
        let started = Instant::now();
        let report = commit_batch(
            &mut pipeline,
            &shard,
            1_000_000_000 + b * m.batch_events,
            events,
        )
        .await?;
        let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        let stats = pipeline.events.index_stats();
        let c = report.counts;
        let (rss_kib, peak_rss_kib) = memory()?;
        let line = BatchLine {
            dedupe_keys: m.keys,
            partition_keys,
            partition_files,
            batch: b,
            events: m.batch_events,
            resends: m.resends,
            written: c.written,
            duplicates: c.duplicates,
            exact: c.written == new && c.duplicates == m.resends && c.rejected == 0,
            wall_ms,
            files_read: stats.files_read - before.files_read,
            keys_loaded: stats.keys_loaded - before.keys_loaded,
            load_files_skipped: stats.load_files_skipped - before.load_files_skipped,
            scopes_streamed: stats.scopes_streamed - before.scopes_streamed,
            index_bytes: stats.bytes_held,
            rss_kib,
            peak_rss_kib,
        };
        before = stats;
        let text = serde_json::to_string(&line)?;
        println!("{text}");
        if let Some(f) = out.as_mut() {
            use std::io::Write as _;
            writeln!(f, "{text}")?;
        }
        lines.push(line);
    }
    if lines.iter().any(|l| !l.exact) {
        bail!("a batch's counts were not exact (see the lines above)");
    }
    Ok(())
}

/// The process's resident set and its peak (KiB), from `/proc/self/status`.
fn memory() -> Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}
