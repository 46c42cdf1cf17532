//! `compactor`: keeps the events table fast — bin-packing (optionally Z-ordering) small files,
//! writing checkpoints and expiring old log entries, vacuuming unreferenced files — without
//! ever changing what a reader sees. Every command prints a one-line JSON summary last.
//!
//! This is the command-line edge of the `compactor` library: it parses flags and environment
//! variables, maps them to the library's options, calls it, and prints the JSON; the
//! operations themselves live in the library (`src/lib.rs`).

use std::io::Write;
use std::num::NonZeroU64;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use compactor::optimize::DEFAULT_MIN_SMALL_FILES;
use compactor::{Compactor, OptimizeOptions, RunOptions, VacuumOptions, VacuumSummary};
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
struct TableArgs {
    /// Table location: a local path or `s3://` URI.
    #[arg(long, env = "COMPACTOR_TABLE")]
    table: String,
    /// Commit mode for `s3://` tables: `dynamodb` or `s3-conditional`.
    #[arg(long, env = "COMPACTOR_COMMIT_LOCK", value_parser = parse_commit_lock)]
    commit_lock: Option<CommitLock>,
    /// DynamoDB lock table (with `--commit-lock dynamodb`).
    #[arg(long, env = "COMPACTOR_LOCK_TABLE", default_value = storage::lock::DEFAULT_LOCK_TABLE)]
    lock_table: String,
    /// Scheme recorded in the lock table's `tablePath` (e.g. `s3a`).
    #[arg(long, env = "COMPACTOR_LOCK_PATH_SCHEME")]
    lock_path_scheme: Option<String>,
}

impl TableArgs {
    fn compactor(&self) -> Compactor {
        let storage = StorageConfig {
            commit_lock: self.commit_lock,
            lock_table: self.lock_table.clone(),
            lock_path_scheme: self.lock_path_scheme.clone(),
            ..StorageConfig::default()
        };
        Compactor::new(self.table.clone(), storage)
    }
}

fn parse_commit_lock(s: &str) -> Result<CommitLock, String> {
    s.parse()
}

#[derive(Args, Clone)]
struct OptimizeArgs {
    /// Target file size (e.g. `256MiB`, `128MB`, `1048576`).
    #[arg(long, env = "COMPACTOR_TARGET_SIZE", default_value = "256MiB", value_parser = parse_size)]
    target_size: NonZeroU64,
    /// Compact a partition only when it has at least this many files below the target size.
    #[arg(long, env = "COMPACTOR_MIN_SMALL_FILES", default_value_t = DEFAULT_MIN_SMALL_FILES)]
    min_small_files: usize,
    /// Only partitions with a file written within this window (e.g. `2d`).
    #[arg(long, env = "COMPACTOR_SINCE", value_parser = storage::cli::parse_duration)]
    since: Option<std::time::Duration>,
    /// Only this partition (`column=value`; repeat for several columns).
    #[arg(long = "partition", value_parser = parse_partition)]
    partitions: Vec<(String, String)>,
    /// Z-order the rewritten files by these columns (comma separated).
    #[arg(long, value_delimiter = ',')]
    zorder: Vec<String>,
}

#[derive(Args, Clone)]
struct VacuumArgs {
    /// Keep every file a version committed within this window can read, and every
    /// unreferenced file modified within it: the time-travel window (default 7 days, or the
    /// table's `delta.deletedFileRetentionDuration` if longer; never shorter than that
    /// without --force).
    #[arg(long, env = "COMPACTOR_RETENTION", value_parser = storage::cli::parse_duration)]
    retention: Option<std::time::Duration>,
    /// Allow a retention shorter than the table's time-travel window.
    #[arg(long)]
    force: bool,
    /// List what would be deleted without deleting.
    #[arg(long)]
    dry_run: bool,
    /// Accepted for compatibility; has no effect. Vacuum always deletes every data file no
    /// version inside the retention window can read, including files never committed
    /// (crashed writers' uploads) once older than the retention.
    #[arg(long)]
    full: bool,
}

impl OptimizeArgs {
    fn options(&self) -> OptimizeOptions {
        OptimizeOptions {
            target_size: self.target_size,
            min_small_files: self.min_small_files,
            since: self.since,
            partitions: self.partitions.clone(),
            zorder: self.zorder.clone(),
        }
    }
}

impl VacuumArgs {
    fn options(&self) -> VacuumOptions {
        VacuumOptions {
            retention: self.retention,
            force: self.force,
            dry_run: self.dry_run,
        }
    }
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

fn parse_size(s: &str) -> Result<NonZeroU64, String> {
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
        .and_then(NonZeroU64::new)
        .ok_or_else(|| format!("invalid size `{s}`"))
}

fn parse_partition(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected column=value, got `{s}`"))
}

fn main() -> ExitCode {
    // Before any thread starts: glibc's per-thread arenas otherwise keep freed batches
    // resident (measured: BENCHMARKS.md, issue 16). `MALLOC_ARENA_MAX` set by the caller wins.
    storage::memory::limit_malloc_arenas(2);
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

/// Run one command; returns its summary. Summaries are printed through `serde_json::Value`
/// (keys sorted), as they always were, with `duration_ms` added.
async fn run(command: Command) -> Result<Value> {
    let started = Instant::now();
    let mut summary = match command {
        Command::Optimize(c) => {
            let out = c.table.compactor().optimize(&c.optimize.options()).await?;
            serde_json::to_value(out)?
        }
        Command::Vacuum(c) => {
            let out = c.table.compactor().vacuum(&c.vacuum.options()).await?;
            print_would_delete(&out)?;
            serde_json::to_value(out)?
        }
        Command::Checkpoint(t) => serde_json::to_value(t.compactor().checkpoint().await?)?,
        Command::History(h) => {
            let entries = h.table.compactor().history(h.limit).await?;
            let mut out = std::io::stdout().lock();
            for e in &entries {
                writeln!(out, "{}", serde_json::to_value(e)?)?;
            }
            json!({"command": "history", "versions": entries.len()})
        }
        Command::Run(c) => {
            let options = RunOptions {
                optimize: c.optimize.options(),
                vacuum: c.vacuum.options(),
            };
            let out = c.table.compactor().run(&options).await?;
            print_would_delete(&out.vacuum)?;
            serde_json::to_value(out)?
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

/// `--dry-run`: what vacuum would delete, one location per line, before the summary.
fn print_would_delete(summary: &VacuumSummary) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for location in &summary.would_delete {
        writeln!(out, "{location}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        let size = |s| parse_size(s).map(NonZeroU64::get);
        assert_eq!(size("256MiB"), Ok(256 << 20));
        assert_eq!(size("1MB"), Ok(1_000_000));
        assert_eq!(size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(
            parse_partition("event_type=payment"),
            Ok(("event_type".into(), "payment".into()))
        );
        assert!(parse_partition("nope").is_err());
    }

    #[test]
    fn cli_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["compactor", "run", "--table", "t"]).expect("parses");
        let Command::Run(c) = cli.command else {
            panic!("not `run`");
        };
        assert_eq!(c.optimize.options(), OptimizeOptions::default());
        assert_eq!(c.vacuum.options(), VacuumOptions::default());
    }
}
