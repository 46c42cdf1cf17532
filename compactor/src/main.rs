//! `compactor`: keeps the events table fast — bin-packing (optionally Z-ordering) small files,
//! writing checkpoints and expiring old log entries, vacuuming unreferenced files — without
//! ever changing what a reader sees. Every command prints a one-line JSON summary last.

mod checkpoint;
mod history;
mod optimize;
mod vacuum;

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use storage::{CommitLock, StorageConfig};

#[derive(Parser)]
#[command(
    name = "compactor",
    version,
    about = "Optimizes, checkpoints and vacuums the events Delta table."
)]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, global = true, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bin-pack small files into files near the target size (rewrites, `dataChange=false`).
    Optimize(OptimizeCmd),
    /// Delete files no longer referenced by the table and older than the retention.
    Vacuum(VacuumCmd),
    /// Write a checkpoint and expire log entries older than the log retention.
    Checkpoint(TableArgs),
    /// Optimize, checkpoint, then vacuum: the scheduled job.
    Run(RunCmd),
    /// Show the table's commits with their metadata (who wrote what, from where).
    History(HistoryCmd),
}

#[derive(Args, Clone)]
pub struct TableArgs {
    /// Table location: a local path or `s3://` URI.
    #[arg(long, env = "COMPACTOR_TABLE")]
    pub table: String,
    /// Commit mode for `s3://` tables: `dynamodb` or `s3-conditional`.
    #[arg(long, env = "COMPACTOR_COMMIT_LOCK", value_parser = parse_commit_lock)]
    pub commit_lock: Option<CommitLock>,
    /// DynamoDB lock table (with `--commit-lock dynamodb`).
    #[arg(long, env = "COMPACTOR_LOCK_TABLE", default_value = storage::lock::DEFAULT_LOCK_TABLE)]
    pub lock_table: String,
    /// Scheme recorded in the lock table's `tablePath` (e.g. `s3a`).
    #[arg(long, env = "COMPACTOR_LOCK_PATH_SCHEME")]
    pub lock_path_scheme: Option<String>,
}

impl TableArgs {
    pub fn storage(&self) -> StorageConfig {
        StorageConfig {
            commit_lock: self.commit_lock,
            lock_table: self.lock_table.clone(),
            lock_path_scheme: self.lock_path_scheme.clone(),
            ..StorageConfig::default()
        }
    }
}

/// Open a table the compactor is about to write to (optimize, checkpoint, vacuum), refusing
/// one whose protocol asks for features we do not enforce (see `storage::protocol`):
/// rewriting files of a table with CHECK constraints or deletion vectors, say, could commit
/// something its own rules forbid.
pub async fn open_for_maintenance(t: &TableArgs) -> Result<deltalake::DeltaTable> {
    let table = storage::open_table(&t.table, &t.storage()).await?;
    storage::check_writable(&table, &t.table)?;
    Ok(table)
}

fn parse_commit_lock(s: &str) -> Result<CommitLock, String> {
    s.parse()
}

#[derive(Args, Clone)]
pub struct OptimizeArgs {
    /// Target file size (e.g. `256MiB`, `128MB`, `1048576`).
    #[arg(long, env = "COMPACTOR_TARGET_SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub target_size: u64,
    /// Compact a partition only when it has at least this many files below the target size.
    #[arg(long, env = "COMPACTOR_MIN_SMALL_FILES", default_value_t = 2)]
    pub min_small_files: usize,
    /// Only partitions with a file written within this window (e.g. `2d`).
    #[arg(long, env = "COMPACTOR_SINCE", value_parser = storage::cli::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only this partition (`column=value`; repeat for several columns).
    #[arg(long = "partition", value_parser = parse_partition)]
    pub partitions: Vec<(String, String)>,
    /// Z-order the rewritten files by these columns (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub zorder: Vec<String>,
}

#[derive(Args, Clone)]
pub struct VacuumArgs {
    /// Keep every file a version committed within this window can read, and every
    /// unreferenced file modified within it (default: the table's
    /// `delta.deletedFileRetentionDuration`, 7 days for tables this project creates).
    #[arg(long, env = "COMPACTOR_RETENTION", value_parser = storage::cli::parse_duration)]
    pub retention: Option<std::time::Duration>,
    /// Allow a retention shorter than the table's time-travel window.
    #[arg(long)]
    pub force: bool,
    /// List what would be deleted without deleting.
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted for compatibility; has no effect. Vacuum always deletes every data file no
    /// version inside the retention window can read, including files never committed
    /// (crashed writers' uploads) once older than the retention.
    #[arg(long)]
    pub full: bool,
}

#[derive(Args)]
struct OptimizeCmd {
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    optimize: OptimizeArgs,
}

#[derive(Args)]
struct VacuumCmd {
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    vacuum: VacuumArgs,
}

#[derive(Args)]
struct RunCmd {
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    optimize: OptimizeArgs,
    #[command(flatten)]
    vacuum: VacuumArgs,
}

#[derive(Args)]
struct HistoryCmd {
    #[command(flatten)]
    table: TableArgs,
    /// Number of most recent versions to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: u64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    v.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("invalid size `{s}`"))
}

fn parse_partition(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected column=value, got `{s}`"))
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
    let is_run = matches!(cli.command, Command::Run(_));
    match runtime.block_on(run(cli.command)) {
        Ok(summary) => {
            if is_run {
                tracing::info!(summary = %summary, "compactor run finished");
            }
            match storage::cli::print_last_line(&summary) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the summary: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if is_run {
                tracing::error!(error = %msg, "compactor run failed");
            } else {
                tracing::error!(error = %msg, "failed");
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<Value> {
    let started = Instant::now();
    let mut summary = match command {
        Command::Optimize(c) => {
            let out = optimize::optimize(&c.table, &c.optimize)
                .await
                .with_context(|| format!("optimizing {}", c.table.table))?;
            serde_json::to_value(out)?
        }
        Command::Vacuum(c) => {
            let out = vacuum::vacuum(&c.table, &c.vacuum)
                .await
                .with_context(|| format!("vacuuming {}", c.table.table))?;
            serde_json::to_value(out)?
        }
        Command::Checkpoint(t) => {
            let out = checkpoint::checkpoint(&t)
                .await
                .with_context(|| format!("checkpointing {}", t.table))?;
            serde_json::to_value(out)?
        }
        Command::History(h) => {
            let entries = history::history(&h.table, h.limit)
                .await
                .with_context(|| format!("reading history of {}", h.table.table))?;
            let mut out = std::io::stdout().lock();
            for e in &entries {
                writeln!(out, "{e}")?;
            }
            json!({"command": "history", "versions": entries.len()})
        }
        Command::Run(c) => {
            let o = optimize::optimize(&c.table, &c.optimize)
                .await
                .with_context(|| format!("optimizing {}", c.table.table))?;
            let k = checkpoint::checkpoint(&c.table)
                .await
                .with_context(|| format!("checkpointing {}", c.table.table))?;
            let v = vacuum::vacuum(&c.table, &c.vacuum)
                .await
                .with_context(|| format!("vacuuming {}", c.table.table))?;
            json!({
                "command": "run",
                "files_before": o.files_before, "bytes_before": o.bytes_before,
                "files_after": o.files_after, "bytes_after": o.bytes_after,
                "partitions_touched": o.partitions_touched,
                "versions_committed": o.versions_committed + v.versions_committed,
                "optimize": o, "checkpoint": k, "vacuum": v,
            })
        }
    };
    if let Value::Object(m) = &mut summary {
        m.insert(
            "duration_ms".into(),
            json!(started.elapsed().as_millis() as u64),
        );
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(
            parse_partition("event_type=payment"),
            Ok(("event_type".into(), "payment".into()))
        );
        assert!(parse_partition("nope").is_err());
    }
}
