//! `loadgen`: command-line entry point of the load generator. `loadgen generate` takes the
//! flags `writer generate` took before the generator left the production binary, and
//! prints the same bytes and the same JSON summary.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use loadgen::{GenConfig, Generator};
use storage::cli::parse_duration;

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Generates realistic JSON events for tests, benchmarks and demos."
)]
struct Cli {
    /// Log format: `text` (default on a terminal) or `json`.
    #[arg(long, global = true, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate realistic NDJSON events (with duplicates, malformed and late records).
    Generate(GenerateArgs),
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

impl GenerateArgs {
    fn config(&self) -> GenConfig {
        GenConfig {
            count: self.count,
            seed: self.seed,
            duplicate_ratio: self.duplicate_ratio,
            malformed_ratio: self.malformed_ratio,
            late_ratio: self.late_ratio,
            max_lateness_secs: self.max_lateness.as_secs() as i64,
            large_ratio: self.large_ratio,
            end_time: self
                .end_time
                .unwrap_or_else(|| chrono::Utc::now().timestamp()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    storage::cli::init_logging(&cli.log_format);
    let Command::Generate(args) = cli.command;
    match generate(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Generate to the Kinesis stream, stdout or the output file. The JSON summary is the last
/// stdout line, except when the events themselves go to stdout: then it goes to stderr.
fn generate(args: &GenerateArgs) -> Result<()> {
    let mut generator = Generator::new(args.config());
    if let Some(stream) = &args.kinesis_stream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let records = runtime
            .block_on(async {
                let client = aws_sdk_kinesis::Client::new(storage::aws::sdk_config().await);
                loadgen::kinesis::put_kinesis(
                    &mut generator,
                    &client,
                    stream,
                    args.rate,
                    args.kpl_aggregate,
                )
                .await
            })
            .with_context(|| format!("sending to Kinesis stream {stream}"))?;
        let mut v = serde_json::to_value(&generator.summary)?;
        v["kinesis_records"] = serde_json::json!(records);
        return emit(&v);
    }
    if args.output == "-" {
        write_to(&mut generator, std::io::stdout().lock()).context("writing to stdout")?;
        eprintln!("{}", serde_json::to_string(&generator.summary)?);
        Ok(())
    } else {
        let file = std::fs::File::create(&args.output)
            .with_context(|| format!("creating {}", args.output))?;
        write_to(&mut generator, file).with_context(|| format!("writing {}", args.output))?;
        emit(&serde_json::to_value(&generator.summary)?)
    }
}

/// All lines as NDJSON through a 1 MiB buffer (lines are small; the syscalls are not).
fn write_to(generator: &mut Generator, out: impl Write) -> std::io::Result<()> {
    generator.write_all(&mut std::io::BufWriter::with_capacity(1 << 20, out))
}

/// The one-line JSON summary, as the last stdout line.
fn emit(value: &serde_json::Value) -> Result<()> {
    Ok(storage::cli::print_last_line(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
