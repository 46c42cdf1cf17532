//! `writer`: command-line entry point. Parses flags, sets up logging, and hands over to the
//! library; errors get their context here and become a clear message and a non-zero exit.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use schemas::ValidationRules;
use storage::{CommitLock, StorageConfig};
use writer::config::{DedupeConfig, FlushPolicy, PipelineConfig, Tables, parse_duration};
use writer::generate::{GenConfig, Generator};
use writer::pipeline::ingest;
use writer::source::ndjson::NdjsonSource;

#[derive(Parser)]
#[command(
    name = "writer",
    version,
    about = "Writes JSON events into a deduplicated, partitioned Delta Lake table."
)]
struct Cli {
    /// Log format: `text` (default on a terminal) or `json` (for production log shipping).
    #[arg(long, global = true, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Ingest an NDJSON file (or stdin) into the events table; prints a JSON summary last.
    Ingest(IngestArgs),
    /// Generate realistic NDJSON events (with duplicates, malformed and late records).
    Generate(GenerateArgs),
    /// Run the service: read a Kinesis stream, commit to the tables, until SIGTERM/SIGINT
    /// (or `--exit-when-idle`); prints a JSON summary last.
    Run(RunArgs),
    /// Manage the DynamoDB commit-lock table.
    #[command(subcommand)]
    LockTable(LockTableCommand),
}

#[derive(Subcommand)]
enum LockTableCommand {
    /// Create the lock table (Spark's S3DynamoDBLogStore schema: `tablePath` hash key,
    /// `fileName` range key, on-demand billing, TTL on `expireTime`). Idempotent.
    Create {
        /// Table name.
        #[arg(long, env = "WRITER_LOCK_TABLE", default_value = storage::lock::DEFAULT_LOCK_TABLE)]
        lock_table: String,
    },
}

#[derive(Args)]
struct TableArgs {
    /// Events table location: a local path, `file://` or `s3://` URI.
    #[arg(long, env = "WRITER_TABLE")]
    table: String,
    /// Rejected-events table location.
    #[arg(long, env = "WRITER_REJECTED_TABLE")]
    rejected_table: String,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Args, Clone)]
struct LockArgs {
    /// How commits to `s3://` tables are made safe: `dynamodb` (Spark-compatible lock
    /// table) or `s3-conditional` (S3 `If-None-Match` writes). Required for `s3://`.
    #[arg(long, env = "WRITER_COMMIT_LOCK", value_parser = parse_commit_lock)]
    commit_lock: Option<CommitLock>,
    /// DynamoDB lock table (with `--commit-lock dynamodb`).
    #[arg(long, env = "WRITER_LOCK_TABLE", default_value = storage::lock::DEFAULT_LOCK_TABLE)]
    lock_table: String,
    /// Scheme recorded in the lock table's `tablePath` (e.g. `s3a` to share a table with
    /// Spark writers); default: the table URI's scheme.
    #[arg(long, env = "WRITER_LOCK_PATH_SCHEME")]
    lock_path_scheme: Option<String>,
}

impl LockArgs {
    fn storage(&self) -> StorageConfig {
        StorageConfig {
            commit_lock: self.commit_lock,
            lock_table: self.lock_table.clone(),
            lock_path_scheme: self.lock_path_scheme.clone(),
            ..StorageConfig::default()
        }
    }
}

fn parse_commit_lock(s: &str) -> Result<CommitLock, String> {
    s.parse()
}

#[derive(Args)]
struct PipelineArgs {
    #[command(flatten)]
    tables: TableArgs,
    /// Maximum events per batch (one commit per table per batch).
    #[arg(long, env = "WRITER_MAX_BATCH_EVENTS", default_value_t = FlushPolicy::default().max_events)]
    max_batch_events: usize,
    /// Maximum raw bytes per batch.
    #[arg(long, env = "WRITER_MAX_BATCH_BYTES", default_value_t = FlushPolicy::default().max_bytes)]
    max_batch_bytes: usize,
    /// Maximum time a record waits before its batch is committed (e.g. `5s`, `500ms`).
    #[arg(long, env = "WRITER_FLUSH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    flush_interval: std::time::Duration,
    /// Memory budget for the dedupe key index, in MiB (least recently used partitions are
    /// evicted beyond it; a partition too large to cache is streamed instead).
    #[arg(long, env = "WRITER_DEDUPE_MEMORY_MB", default_value_t = 1024)]
    dedupe_memory_mb: usize,
    /// Earliest plausible `created_at`, Unix seconds (default 2000-01-01).
    #[arg(long, env = "WRITER_MIN_CREATED_AT", default_value_t = schemas::validate::DEFAULT_MIN_CREATED_AT)]
    min_created_at: i64,
    /// How far in the future `created_at` may be (default `1d`).
    #[arg(long, env = "WRITER_MAX_FUTURE", default_value = "1d", value_parser = parse_duration)]
    max_future: std::time::Duration,
    /// Identifier recorded in each commit (default: host name and process id).
    #[arg(long, env = "WRITER_ID")]
    writer_id: Option<String>,
}

#[derive(Args)]
struct IngestArgs {
    /// NDJSON input file, or `-` for stdin.
    #[arg(long)]
    input: String,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// Every setting of `writer run`; each also from the environment, then the `--config` file.
#[derive(Args)]
struct RunArgs {
    /// TOML config file (keys as the long flags, with `_`; flush settings under `[flush]`).
    #[arg(long, env = "WRITER_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Kinesis stream name.
    #[arg(long, env = "WRITER_STREAM")]
    stream: Option<String>,
    /// Events table location.
    #[arg(long, env = "WRITER_TABLE")]
    table: Option<String>,
    /// Rejected-events table location.
    #[arg(long, env = "WRITER_REJECTED_TABLE")]
    rejected_table: Option<String>,
    /// DynamoDB table of shard leases (created when missing).
    #[arg(long, env = "WRITER_LEASE_TABLE")]
    lease_table: Option<String>,
    /// DynamoDB commit-lock table (with `--commit-lock dynamodb`; default `delta_log`).
    #[arg(long, env = "WRITER_LOCK_TABLE")]
    lock_table: Option<String>,
    /// `dynamodb` or `s3-conditional` (required for `s3://` tables).
    #[arg(long, env = "WRITER_COMMIT_LOCK", value_parser = parse_commit_lock)]
    commit_lock: Option<CommitLock>,
    /// Scheme recorded in the lock table's `tablePath` (e.g. `s3a`).
    #[arg(long, env = "WRITER_LOCK_PATH_SCHEME")]
    lock_path_scheme: Option<String>,
    /// Where shards never seen start: `TRIM_HORIZON` (default), `LATEST`, `AT_TIMESTAMP:<unix s>`.
    #[arg(long, env = "WRITER_START_POSITION")]
    start_position: Option<String>,
    /// Maximum events per batch.
    #[arg(long, env = "WRITER_MAX_BATCH_EVENTS")]
    max_batch_events: Option<usize>,
    /// Maximum raw bytes per batch.
    #[arg(long, env = "WRITER_MAX_BATCH_BYTES")]
    max_batch_bytes: Option<usize>,
    /// Target time from a record being read to its commit being visible (default `5s`): the
    /// flush starts early by the recent commit duration (at most half of this).
    #[arg(long, env = "WRITER_FLUSH_INTERVAL", value_parser = parse_duration)]
    flush_interval: Option<std::time::Duration>,
    /// Lease duration: a lease not renewed for this long may be taken (default `10s`).
    #[arg(long, env = "WRITER_LEASE_DURATION", value_parser = parse_duration)]
    lease_duration: Option<std::time::Duration>,
    /// Port of `/healthz` and `/metrics` (default 9898; 0 disables).
    #[arg(long, env = "WRITER_METRICS_PORT")]
    metrics_port: Option<u16>,
    /// Address the metrics endpoint binds (default 0.0.0.0, for the load balancer's checks).
    #[arg(long, env = "WRITER_METRICS_HOST")]
    metrics_host: Option<String>,
    /// Time allowed for a graceful stop after SIGTERM (default `25s`, inside ECS' 30 s).
    #[arg(long, env = "WRITER_SHUTDOWN_DEADLINE", value_parser = parse_duration)]
    shutdown_deadline: Option<std::time::Duration>,
    /// Stop cleanly once every owned shard has been idle this long (tests, backfills).
    #[arg(long, env = "WRITER_EXIT_WHEN_IDLE", value_parser = parse_duration)]
    exit_when_idle: Option<std::time::Duration>,
    /// Pause between GetRecords calls on an idle shard (default `1s`).
    #[arg(long, env = "WRITER_POLL_INTERVAL", value_parser = parse_duration)]
    poll_interval: Option<std::time::Duration>,
    /// Dedupe index memory budget in MiB (default 1024).
    #[arg(long, env = "WRITER_DEDUPE_MEMORY_MB")]
    dedupe_memory_mb: Option<usize>,
    /// Earliest plausible `created_at`, Unix seconds (default 2000-01-01).
    #[arg(long, env = "WRITER_MIN_CREATED_AT")]
    min_created_at: Option<i64>,
    /// How far in the future `created_at` may be (default `1d`).
    #[arg(long, env = "WRITER_MAX_FUTURE", value_parser = parse_duration)]
    max_future: Option<std::time::Duration>,
    /// Worker identity in leases and commits (default: host, pid and a random suffix).
    #[arg(long, env = "WRITER_ID")]
    writer_id: Option<String>,
}

#[derive(Args)]
struct GenerateArgs {
    /// Number of lines to generate.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Output file, or `-` for stdout.
    #[arg(long, default_value = "-")]
    output: String,
    /// Random seed (same seed, same output).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of lines that re-send an earlier event verbatim.
    #[arg(long, default_value_t = 0.05)]
    duplicate_ratio: f64,
    /// Share of malformed lines.
    #[arg(long, default_value_t = 0.01)]
    malformed_ratio: f64,
    /// Share of late events (created up to --max-lateness ago).
    #[arg(long, default_value_t = 0.05)]
    late_ratio: f64,
    /// How late a late event can be (e.g. `3d`).
    #[arg(long, default_value = "3d", value_parser = parse_duration)]
    max_lateness: std::time::Duration,
    /// Share of events carrying a large (8-64 KiB) value.
    #[arg(long, default_value_t = 0.002)]
    large_ratio: f64,
    /// Events are created in the hour before this Unix time (default: now).
    #[arg(long)]
    end_time: Option<i64>,
    /// Send to this Kinesis stream (PutRecords, partition key = event_uuid) instead of a file.
    #[arg(long)]
    kinesis_stream: Option<String>,
    /// Target events per second for the Kinesis target (0 = unthrottled).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Pack this many events per Kinesis record in the KPL aggregated format (0 = plain).
    #[arg(long, default_value_t = 0)]
    kpl_aggregate: usize,
}

impl PipelineArgs {
    fn into_config(self) -> PipelineConfig {
        PipelineConfig {
            tables: Tables {
                events_uri: self.tables.table,
                rejected_uri: self.tables.rejected_table,
                storage: self.tables.lock.storage(),
            },
            flush: FlushPolicy {
                max_events: self.max_batch_events.max(1),
                max_bytes: self.max_batch_bytes.max(1),
                max_latency: self.flush_interval,
            },
            dedupe: DedupeConfig {
                memory_budget_bytes: self.dedupe_memory_mb.max(1) << 20,
            },
            validation: ValidationRules {
                min_created_at: self.min_created_at,
                max_future_secs: self.max_future.as_secs() as i64,
            },
            writer_id: self.writer_id.unwrap_or_else(default_writer_id),
        }
    }
}

impl RunArgs {
    fn resolve(self) -> Result<writer::service::ServiceConfig> {
        use writer::service::config::FileConfig;
        let file = match &self.config {
            Some(p) => FileConfig::load(p).map_err(anyhow::Error::msg)?,
            None => FileConfig::default(),
        };
        let dur = |flag: Option<std::time::Duration>,
                   file: &Option<String>,
                   default: &str|
         -> Result<std::time::Duration> {
            match (flag, file) {
                (Some(d), _) => Ok(d),
                (None, Some(s)) => parse_duration(s).map_err(anyhow::Error::msg),
                (None, None) => parse_duration(default).map_err(anyhow::Error::msg),
            }
        };
        let need = |v: Option<String>, name: &str| {
            v.with_context(|| {
                format!(
                    "--{name} (or WRITER_{}, or `{}` in the config file) is required",
                    name.to_uppercase().replace('-', "_"),
                    name.replace('-', "_")
                )
            })
        };
        let commit_lock = match (self.commit_lock, &file.commit_lock) {
            (Some(c), _) => Some(c),
            (None, Some(s)) => Some(s.parse::<CommitLock>().map_err(anyhow::Error::msg)?),
            (None, None) => None,
        };
        let mut flush = FlushPolicy::default();
        if let Some(f) = &file.flush {
            flush = f.apply(flush).map_err(anyhow::Error::msg)?;
        }
        if let Some(v) = self.max_batch_events {
            flush.max_events = v.max(1);
        }
        if let Some(v) = self.max_batch_bytes {
            flush.max_bytes = v.max(1);
        }
        if let Some(v) = self.flush_interval {
            flush.max_latency = v;
        }
        let start = self
            .start_position
            .or(file.start_position)
            .unwrap_or_else(|| "TRIM_HORIZON".into());
        let writer_id = self.writer_id.or(file.writer_id).unwrap_or_else(|| {
            format!(
                "{}-{}",
                default_writer_id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        });
        let port = self.metrics_port.or(file.metrics_port).unwrap_or(9898);
        Ok(writer::service::ServiceConfig {
            stream: need(self.stream.or(file.stream), "stream")?,
            pipeline: PipelineConfig {
                tables: Tables {
                    events_uri: need(self.table.or(file.table), "table")?,
                    rejected_uri: need(
                        self.rejected_table.or(file.rejected_table),
                        "rejected-table",
                    )?,
                    storage: StorageConfig {
                        commit_lock,
                        lock_table: self
                            .lock_table
                            .or(file.lock_table)
                            .unwrap_or_else(|| storage::lock::DEFAULT_LOCK_TABLE.into()),
                        lock_path_scheme: self.lock_path_scheme.or(file.lock_path_scheme),
                        ..StorageConfig::default()
                    },
                },
                flush,
                dedupe: DedupeConfig {
                    memory_budget_bytes: self
                        .dedupe_memory_mb
                        .or(file.dedupe_memory_mb)
                        .unwrap_or(1024)
                        .max(1)
                        << 20,
                },
                validation: ValidationRules {
                    min_created_at: self
                        .min_created_at
                        .unwrap_or(schemas::validate::DEFAULT_MIN_CREATED_AT),
                    max_future_secs: self
                        .max_future
                        .map_or(schemas::validate::DEFAULT_MAX_FUTURE_SECS, |d| {
                            d.as_secs() as i64
                        }),
                },
                writer_id,
            },
            lease_table: self
                .lease_table
                .or(file.lease_table)
                .unwrap_or_else(|| "events_lake_leases".into()),
            lease_duration: dur(self.lease_duration, &file.lease_duration, "10s")?,
            start: start.parse().map_err(anyhow::Error::msg)?,
            metrics_host: self
                .metrics_host
                .or(file.metrics_host)
                .unwrap_or_else(|| "0.0.0.0".into()),
            metrics_port: (port != 0).then_some(port),
            shutdown_deadline: dur(self.shutdown_deadline, &file.shutdown_deadline, "25s")?,
            exit_when_idle: match (self.exit_when_idle, &file.exit_when_idle) {
                (Some(d), _) => Some(d),
                (None, Some(s)) => Some(parse_duration(s).map_err(anyhow::Error::msg)?),
                (None, None) => None,
            },
            poll_interval: dur(self.poll_interval, &file.poll_interval, "1s")?,
            records_per_call: 10_000,
            discovery_interval: std::time::Duration::from_secs(10),
        })
    }
}

fn default_writer_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{host}-{}", std::process::id())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    storage::cli::init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Ingest(args) => {
            let input = args.input.clone();
            let config = args.pipeline.into_config();
            let table = config.tables.events_uri.clone();
            let source =
                NdjsonSource::open(&input).with_context(|| format!("opening input {input}"))?;
            let summary = ingest(config, source, NdjsonSource::blank_lines)
                .await
                .with_context(|| format!("ingesting {input} into {table}"))?;
            emit(&serde_json::to_value(&summary)?)
        }
        Command::Run(args) => {
            let config = args.resolve()?;
            let service = writer::service::Service::start(config)
                .await
                .context("starting the service")?;
            let summary = service.run().await.context("running the service")?;
            emit(&serde_json::to_value(&summary)?)
        }
        Command::LockTable(LockTableCommand::Create { lock_table }) => {
            let client = storage::aws::dynamodb().await;
            let outcome = storage::aws::ensure_table(
                &client,
                &lock_table,
                storage::lock::dynamodb::ATTR_TABLE_PATH,
                Some(storage::lock::dynamodb::ATTR_FILE_NAME),
                Some(storage::lock::dynamodb::ATTR_EXPIRE_TIME),
            )
            .await
            .with_context(|| format!("creating lock table {lock_table}"))?;
            emit(&serde_json::json!({"lock_table": lock_table, "result": outcome}))
        }
        Command::Generate(args) => {
            let cfg = GenConfig {
                count: args.count,
                seed: args.seed,
                duplicate_ratio: args.duplicate_ratio,
                malformed_ratio: args.malformed_ratio,
                late_ratio: args.late_ratio,
                max_lateness_secs: args.max_lateness.as_secs() as i64,
                large_ratio: args.large_ratio,
                end_time: args
                    .end_time
                    .unwrap_or_else(|| chrono::Utc::now().timestamp()),
            };
            let mut generator = Generator::new(cfg);
            if let Some(stream) = &args.kinesis_stream {
                let client = writer::source::kinesis::client().await;
                let records = writer::generate::put_kinesis(
                    &mut generator,
                    &client,
                    stream,
                    args.rate,
                    args.kpl_aggregate,
                )
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("sending to Kinesis stream {stream}"))?;
                let mut v = serde_json::to_value(&generator.summary)?;
                v["kinesis_records"] = serde_json::json!(records);
                return emit(&v);
            }
            if args.output == "-" {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                generator.write_all(&mut out).context("writing to stdout")?;
                eprintln!("{}", serde_json::to_string(&generator.summary)?);
            } else {
                let file = std::fs::File::create(&args.output)
                    .with_context(|| format!("creating {}", args.output))?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                generator
                    .write_all(&mut out)
                    .with_context(|| format!("writing {}", args.output))?;
                emit(&serde_json::to_value(&generator.summary)?)?;
            }
            Ok(())
        }
    }
}

/// The one-line JSON summary, as the last stdout line.
fn emit(value: &serde_json::Value) -> Result<()> {
    Ok(storage::cli::print_last_line(value)?)
}
