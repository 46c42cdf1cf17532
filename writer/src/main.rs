//! `writer`: command-line entry point. Parses flags, sets up logging, and hands over to the
//! library; errors get their context here and become a clear message and a non-zero exit.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use writer::pipeline::ingest;
use writer::settings::{Layered, PipelineSettings, RunArgs, RunSettings, document_defaults};
use writer::source::ndjson::NdjsonSource;

#[derive(Parser)]
#[command(
    name = "writer",
    version,
    about = "Writes JSON events into a deduplicated, partitioned Delta Lake table.",
    long_about = "Writes JSON events into a deduplicated, partitioned Delta Lake table.\n\n\
Dedupe guarantee: two records with the same `event_uuid`, the same `event_type` (first `:` \
part of `event_name`) and the same UTC day of `created_at` are stored once (first commit \
wins), whatever Kinesis redelivers, producers retry or crashes replay. The key is scoped to \
the partition (`event_type`, `created_date`): the same `event_uuid` with another first name \
part or on another UTC day is a different row and is kept. Keys compare as exact text."
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
struct IngestArgs {
    /// NDJSON input file, or `-` for stdin.
    #[arg(long)]
    input: String,
    #[command(flatten)]
    settings: Layered<PipelineSettings>,
}

/// The derived command line, with each setting's default appended to its help: the
/// defaults live in `Settings::defaults`, not in clap, so that the config file can still
/// set what no flag or environment variable did.
fn cli_command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| match sub.get_name() {
        "run" => document_defaults::<RunSettings>(sub),
        "ingest" => document_defaults::<PipelineSettings>(sub),
        _ => sub,
    })
}

fn main() -> ExitCode {
    // Before any thread starts: glibc's per-thread arenas otherwise keep freed batches
    // resident (measured: BENCHMARKS.md, issue 16). `MALLOC_ARENA_MAX` set by the caller wins.
    storage::memory::limit_malloc_arenas(2);
    let cli = match Cli::from_arg_matches(&cli_command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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
            let config = args.settings.resolve()?;
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
    }
}

/// The one-line JSON summary, as the last stdout line.
fn emit(value: &serde_json::Value) -> Result<()> {
    Ok(storage::cli::print_last_line(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `writer run --help` and `writer ingest --help` show the defaults next to the flags.
    #[test]
    fn settings_help_lists_defaults() {
        let mut cmd = cli_command();
        for (sub, expected) in [
            (
                "run",
                &[
                    "--flush-interval",
                    "[default: 5s]",
                    "[default: events_lake_leases]",
                ][..],
            ),
            (
                "ingest",
                &["--input", "--config", "[default: 5s]", "[default: 1d]"][..],
            ),
        ] {
            let help = cmd
                .find_subcommand_mut(sub)
                .map(|c| c.render_long_help().to_string())
                .unwrap_or_default();
            // Whitespace normalized: clap may wrap long lines.
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            for text in expected {
                assert!(
                    help.contains(text),
                    "`{text}` missing from {sub} --help:\n{help}"
                );
            }
        }
        cmd.debug_assert();
    }
}
