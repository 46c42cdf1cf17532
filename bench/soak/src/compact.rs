//! The scheduled compactor, as Terraform runs it: `compactor run` in its own process, with the
//! task's environment (`COMPACTOR_TABLE`, `COMPACTOR_COMMIT_LOCK`, `COMPACTOR_LOCK_TABLE`,
//! `LOG_FORMAT=json`, `RUST_LOG`, the AWS environment inherited), plus the scaled
//! `--retention` (its 7-day default divided by the compression; still longer than the table's
//! scaled `deletedFileRetentionDuration`, so no `--force`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use storage::StorageConfig;
use tokio::io::AsyncWriteExt;

use crate::measure::memory;

/// How often the child's peak RSS (`VmHWM`) is read while it runs.
const RSS_POLL: Duration = Duration::from_millis(50);

/// How to start the compactor.
#[derive(Debug, Clone)]
pub struct CompactorCmd {
    pub bin: PathBuf,
    pub table: String,
    pub storage: StorageConfig,
    pub retention: Duration,
    /// `--target-size`, when not the compactor's default.
    pub target_size: Option<String>,
    /// The compactor's stderr (its logs) is appended here.
    pub log: PathBuf,
}

/// One `compactor run`.
#[derive(Debug, Clone, Serialize)]
pub struct CompactorRun {
    /// Simulated time it was scheduled at (Unix seconds).
    pub sim_time: i64,
    pub wall_ms: f64,
    /// Peak RSS of the child (its last `VmHWM` read before exit), KiB.
    pub peak_rss_kib: u64,
    pub exit_code: Option<i32>,
    /// The JSON summary it printed last (null when it printed none).
    pub summary: Value,
    /// The error, when it failed or could not be started.
    pub error: Option<String>,
}

impl CompactorCmd {
    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("run")
            .arg("--table")
            .arg(&self.table)
            .arg("--retention")
            .arg(format!("{}s", self.retention.as_secs()))
            // The scheduled task's settings (Terraform sets none of these): nothing from the
            // caller's environment may change what is measured.
            .env_remove("COMPACTOR_SINCE")
            .env_remove("COMPACTOR_MIN_SMALL_FILES")
            .env_remove("COMPACTOR_TARGET_SIZE")
            .env_remove("COMPACTOR_RETENTION")
            .env("COMPACTOR_TABLE", &self.table)
            .env("LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("SOAK_COMPACTOR_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(size) = &self.target_size {
            c.arg("--target-size").arg(size);
        }
        if let Some(lock) = self.storage.commit_lock {
            c.env("COMPACTOR_COMMIT_LOCK", lock.as_str());
        }
        if !self.storage.lock_table.is_empty() {
            c.env("COMPACTOR_LOCK_TABLE", &self.storage.lock_table);
        }
        c
    }

    /// Run it to completion; never fails (a failure is recorded in the result).
    pub async fn run(&self, sim_time: i64) -> CompactorRun {
        let started = Instant::now();
        let mut run = CompactorRun {
            sim_time,
            wall_ms: 0.0,
            peak_rss_kib: 0,
            exit_code: None,
            summary: Value::Null,
            error: None,
        };
        let child = match self.command().spawn() {
            Ok(c) => c,
            Err(e) => {
                run.error = Some(format!("starting {}: {e}", self.bin.display()));
                return run;
            }
        };
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        let output = child.wait_with_output();
        tokio::pin!(output);
        let mut tick = tokio::time::interval(RSS_POLL);
        let output = loop {
            tokio::select! {
                out = &mut output => break out,
                _ = tick.tick() => {
                    if let Some(m) = memory(&pid) {
                        run.peak_rss_kib = run.peak_rss_kib.max(m.hwm_kib);
                    }
                }
            }
        };
        run.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        match output {
            Ok(out) => {
                run.exit_code = out.status.code();
                run.summary = last_json_line(&out.stdout);
                self.append_log(&out.stderr).await;
                if !out.status.success() {
                    run.error = Some(tail(&out.stderr, 2000));
                }
            }
            Err(e) => run.error = Some(format!("waiting for the compactor: {e}")),
        }
        run
    }

    /// Append the compactor's logs to the run's log file (best effort).
    async fn append_log(&self, stderr: &[u8]) {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .await;
        match file {
            Ok(mut f) => {
                if let Err(e) = f.write_all(stderr).await {
                    tracing::warn!(error = %e, "could not append the compactor log");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not open the compactor log"),
        }
    }
}

/// The last line of `out` that parses as JSON (the summary), else null.
pub fn last_json_line(out: &[u8]) -> Value {
    String::from_utf8_lossy(out)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .unwrap_or(Value::Null)
}

/// The last `max` bytes of `text`, lossily decoded.
pub fn tail(text: &[u8], max: usize) -> String {
    let from = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[from..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_summary_line() {
        let out = b"progress\n{\"command\":\"run\",\"files_after\":3}\n\n";
        assert_eq!(last_json_line(out)["files_after"], 3);
        assert_eq!(last_json_line(b"nothing"), Value::Null);
    }
}
