//! The main loop: pace, generate, commit through the writer's pipeline, run the compactor on
//! schedule, sample the table every simulated hour.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use storage::StorageConfig;
use tokio::task::JoinHandle;
use writer::commit::CheckpointWritten;
use writer::config::{DedupeConfig, FlushPolicy, PipelineConfig, Tables};
use writer::pipeline::{BatchReport, Pipeline, PipelineError};
use writer::service::progress::Progress;

use crate::clock::{SimClock, day_of, iso};
use crate::compact::{CompactorCmd, CompactorRun};
use crate::generate::{GenSettings, GenerateError, GeneratedBatch, Generator};
use crate::measure::{self, MeasureError, memory};
use crate::records::{JsonLines, RecordError, write_json};
use crate::setup::{self, SetupError};
use crate::{Args, CompactMode, probe};

/// The Kinesis stream name the commits claim (part of the `txn` app id).
const STREAM: &str = "soak";
/// Simulated seconds between samples.
const SAMPLE_EVERY: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Measure(#[from] MeasureError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("commit {commit}: {source}")]
    Commit { commit: u64, source: PipelineError },
}

/// Sums over the run.
#[derive(Debug, Default, Clone, Serialize)]
struct Totals {
    commits: u64,
    generated: u64,
    current: u64,
    late: u64,
    resends: u64,
    written: u64,
    duplicates: u64,
    rejected: u64,
    conflicts: u64,
    files_added: u64,
    compactor_runs: u64,
    compactor_failures: u64,
    probes: u64,
    probe_failures: u64,
}

/// One line of `commits.jsonl`.
#[derive(Debug, Serialize)]
struct CommitRecord {
    commit: u64,
    sim_time: i64,
    sim_iso: String,
    version: Option<i64>,
    latency_ms: f64,
    commit_ms: u64,
    events: u64,
    current: u64,
    late: u64,
    resends: u64,
    written: u64,
    duplicates: u64,
    rejected: u64,
    files: Option<u64>,
    partitions: u64,
    conflicts: u32,
    rss_kib: Option<u64>,
    lag_ms: f64,
    compactor_running: bool,
    /// A background checkpoint that finished since the previous commit.
    checkpoint: Option<Value>,
}

/// The run's state.
struct Soak {
    args: Args,
    storage: StorageConfig,
    clock: SimClock,
    generator: Generator,
    pipeline: Pipeline,
    compactor: Option<CompactorCmd>,
    running: Option<JoinHandle<CompactorRun>>,
    finished: Vec<CompactorRun>,
    commits: JsonLines,
    samples: JsonLines,
    totals: Totals,
    latencies: Vec<f64>,
    max_lag_ms: f64,
    last_checkpoint: Option<CheckpointWritten>,
    next_compact: i64,
    next_sample: i64,
    next_probe: i64,
    sample_due: bool,
    /// The commit the last sample was taken after.
    last_sample: Option<u64>,
}

/// Run the soak to its end; the summary is also written to `run.json`.
pub async fn run(args: Args) -> Result<Value, SoakError> {
    let started = Instant::now();
    let mut soak = Soak::open(args).await?;
    let params = soak.params();
    let n = soak.clock.commits_in(soak.args.sim_days);
    tracing::info!(commits = n, start = %iso(soak.clock.start()), "soak starting");
    let outcome = soak.commits(n).await;
    soak.finish().await;
    let summary = soak.summary(params, started.elapsed(), outcome.as_ref().err());
    write_json(&soak.args.out, "run.json", &summary)?;
    outcome?;
    Ok(summary)
}

impl Soak {
    async fn open(args: Args) -> Result<Self, SoakError> {
        let storage = StorageConfig {
            commit_lock: args.commit_lock,
            lock_table: args.lock_table.clone(),
            ..StorageConfig::default()
        };
        let (properties, retention) = setup::properties(args.compression);
        setup::create_events_table(&args.table, &storage, &properties).await?;
        let pipeline = Pipeline::open(pipeline_config(&args, &storage)).await?;
        let clock = SimClock::new(
            chrono::Utc::now(),
            args.sim_days,
            args.commit_interval,
            args.compression,
        );
        let generator = Generator::new(GenSettings {
            events_per_commit: args.events_per_commit,
            event_types: args.event_types,
            late_fraction: args.late_fraction,
            interval_secs: clock.interval(),
            seed: args.seed,
        })?;
        let compactor = args.compactor_bin.clone().map(|bin| CompactorCmd {
            bin,
            table: args.table.clone(),
            storage: storage.clone(),
            retention,
            target_size: args.compactor_target_size.clone(),
            log: args.out.join("compactor.log"),
        });
        let start = clock.start();
        Ok(Soak {
            commits: JsonLines::create(&args.out, "commits.jsonl")?,
            samples: JsonLines::create(&args.out, "samples.jsonl")?,
            next_compact: start + args.compact_every.as_secs().max(1) as i64,
            next_sample: start + SAMPLE_EVERY,
            next_probe: start + args.probe_every.as_secs().max(1) as i64,
            args,
            storage,
            clock,
            generator,
            pipeline,
            compactor,
            running: None,
            finished: Vec::new(),
            totals: Totals::default(),
            latencies: Vec::new(),
            max_lag_ms: 0.0,
            last_checkpoint: None,
            sample_due: false,
            last_sample: None,
        })
    }

    /// Commits `0..n`, with the compactor and the samples on schedule.
    async fn commits(&mut self, n: u64) -> Result<(), SoakError> {
        for i in 0..n {
            let lag = self.clock.pace(i).await;
            let sim_now = self.clock.sim_time(i);
            self.commit(i, sim_now, lag).await?;
            self.collect_compactor().await;
            let compact_due = self.compactor.is_some() && sim_now >= self.next_compact;
            // The sample of the previous hour waits for that hour's compactor run, but is
            // taken before the next run starts (else a compactor slower than its interval
            // would starve the samples).
            if self.sample_due && (self.running.is_none() || compact_due) {
                self.wait_compactor().await;
                self.sample_or_error(i, sim_now).await?;
            }
            if sim_now >= self.next_compact {
                self.next_compact += self.args.compact_every.as_secs().max(1) as i64;
                self.start_compactor(sim_now).await;
            }
            if sim_now >= self.next_sample {
                self.next_sample += SAMPLE_EVERY;
                self.sample_due = true;
            }
            if self.sample_due && self.running.is_none() {
                self.sample_or_error(i, sim_now).await?;
            }
        }
        Ok(())
    }

    /// Wait for the running compactor, if any.
    async fn wait_compactor(&mut self) {
        if let Some(h) = self.running.take() {
            tracing::warn!("the previous compactor run is still going; waiting for it");
            self.take_run(h.await);
        }
    }

    /// Generate and commit one batch, and record it.
    async fn commit(&mut self, i: u64, sim_now: i64, lag: Duration) -> Result<(), SoakError> {
        let batch = self.generator.batch(sim_now);
        let progress = Progress::of(STREAM, &batch.records, |_| {
            Some(i.checked_sub(1).map(|v| v as i64))
        });
        let (txns, expect, meta) = (progress.txns(), progress.expected(), progress.commit_info());
        let records = batch.records.clone();
        let started = Instant::now();
        let report = self
            .pipeline
            .process(&format!("kinesis:{STREAM}"), records, txns, &expect, &meta)
            .await
            .map_err(|source| SoakError::Commit { commit: i, source })?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let record = self.commit_record(i, sim_now, lag, latency_ms, &batch, &report);
        self.count(&batch, &report, &record);
        self.commits.write(&record)?;
        Ok(())
    }

    fn commit_record(
        &mut self,
        i: u64,
        sim_now: i64,
        lag: Duration,
        latency_ms: f64,
        batch: &GeneratedBatch,
        report: &BatchReport,
    ) -> CommitRecord {
        let append = self.pipeline.events.last_append();
        let checkpoint = self.pipeline.events.last_checkpoint();
        let new_checkpoint = checkpoint.filter(|c| Some(*c) != self.last_checkpoint);
        self.last_checkpoint = checkpoint;
        let c = report.counts;
        CommitRecord {
            commit: i,
            sim_time: sim_now,
            sim_iso: iso(sim_now),
            version: report.events_version,
            latency_ms,
            commit_ms: report.commit_ms,
            events: batch.records.len() as u64,
            current: batch.current,
            late: batch.late,
            resends: batch.resends,
            written: c.written,
            duplicates: c.duplicates,
            rejected: c.rejected,
            files: append.filter(|a| a.version.is_some()).map(|a| a.files),
            partitions: batch.partitions,
            conflicts: report.conflicts,
            rss_kib: memory("self").map(|m| m.rss_kib),
            lag_ms: lag.as_secs_f64() * 1000.0,
            compactor_running: self.running.is_some(),
            checkpoint: new_checkpoint.map(checkpoint_json),
        }
    }

    fn count(&mut self, batch: &GeneratedBatch, report: &BatchReport, record: &CommitRecord) {
        let t = &mut self.totals;
        let c = report.counts;
        t.commits += 1;
        t.generated += batch.records.len() as u64;
        t.current += batch.current;
        t.late += batch.late;
        t.resends += batch.resends;
        t.written += c.written;
        t.duplicates += c.duplicates;
        t.rejected += c.rejected;
        t.conflicts += u64::from(report.conflicts);
        t.files_added += record.files.unwrap_or(0);
        if c.rejected > 0 {
            tracing::warn!(
                commit = record.commit,
                rejected = c.rejected,
                "unexpected rejections"
            );
        }
        self.latencies.push(record.latency_ms);
        self.max_lag_ms = self.max_lag_ms.max(record.lag_ms);
        if record.commit.is_multiple_of(1000) {
            tracing::info!(commit = record.commit, sim = %record.sim_iso, version = record.version, latency_ms = record.latency_ms, lag_ms = record.lag_ms, "progress");
        }
    }
}

/// The writer's pipeline settings: defaults, with a `created_at` window that accepts every
/// generated event (the simulated week is in the past; records are judged against their
/// simulated arrival time).
fn pipeline_config(args: &Args, storage: &StorageConfig) -> PipelineConfig {
    PipelineConfig {
        tables: Tables {
            events_uri: args.table.clone(),
            rejected_uri: args.rejected_table.clone(),
            storage: storage.clone(),
        },
        flush: FlushPolicy::default(),
        dedupe: DedupeConfig {
            memory_budget_bytes: args.dedupe_memory_mb << 20,
            // The index ages by wall time, the week runs `compression` times faster.
            idle_evict: Some(args.dedupe_idle_evict.div_f64(args.compression))
                .filter(|d| !d.is_zero()),
        },
        validation: schemas::ValidationRules::default(),
        partition: Default::default(),
        writer_id: "soak".into(),
    }
}

fn checkpoint_json(c: CheckpointWritten) -> Value {
    let at = c
        .finished_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    json!({"version": c.version, "ms": c.ms, "ok": c.ok, "finished_at": at})
}

/// Nearest-rank percentile of unsorted values.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[k])
}

impl Soak {
    /// Start the scheduled compactor run (after the previous one finished).
    async fn start_compactor(&mut self, sim_now: i64) {
        let Some(cmd) = self.compactor.clone() else {
            return;
        };
        self.wait_compactor().await;
        let handle = tokio::spawn(async move { cmd.run(sim_now).await });
        if self.args.compact_mode == CompactMode::Sequential {
            self.take_run(handle.await);
        } else {
            self.running = Some(handle);
        }
    }

    /// Pick up a finished concurrent compactor run.
    async fn collect_compactor(&mut self) {
        if self.running.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(h) = self.running.take()
        {
            self.take_run(h.await);
        }
    }

    fn take_run(&mut self, run: Result<CompactorRun, tokio::task::JoinError>) {
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "compactor task failed");
                return;
            }
        };
        self.totals.compactor_runs += 1;
        if let Some(e) = &run.error {
            self.totals.compactor_failures += 1;
            tracing::warn!(error = %e, "compactor run failed");
        }
        tracing::info!(sim = %iso(run.sim_time), wall_ms = run.wall_ms, peak_rss_kib = run.peak_rss_kib, "compactor run finished");
        self.finished.push(run);
    }

    /// A sample; a failed measurement is recorded as `{"error": ..}` (the run goes on),
    /// only a failure to write the record is fatal.
    async fn sample_or_error(&mut self, i: u64, sim_now: i64) -> Result<(), SoakError> {
        match self.sample(i, sim_now).await {
            Err(SoakError::Measure(e)) => {
                tracing::warn!(error = %e, "sample failed");
                let line = json!({"commit": i, "sim_time": sim_now, "error": e.to_string()});
                Ok(self.samples.write(&line)?)
            }
            other => other,
        }
    }

    /// One line of `samples.jsonl`.
    async fn sample(&mut self, i: u64, sim_now: i64) -> Result<(), SoakError> {
        self.sample_due = false;
        self.last_sample = Some(i);
        let started = Instant::now();
        let (uri, storage) = (self.args.table.clone(), self.storage.clone());
        let opened = measure::open_fresh(&uri, &storage).await?;
        let listing = measure::list_table(&uri, &storage).await?;
        let probe = self.probe(sim_now).await;
        let mem = memory("self").unwrap_or_default();
        let record = json!({
            "commit": i,
            "sim_time": sim_now,
            "sim_iso": iso(sim_now),
            "writer_version": self.pipeline.events.version(),
            "opened": opened,
            "listing": listing,
            "writer_checkpoint": self.pipeline.events.last_checkpoint().map(checkpoint_json),
            "compactor": std::mem::take(&mut self.finished),
            "writer_rss_kib": mem.rss_kib,
            "writer_hwm_kib": mem.hwm_kib,
            "dedupe_index": self.pipeline.events.index_stats(),
            "probe": probe,
            "sample_ms": started.elapsed().as_secs_f64() * 1000.0,
        });
        self.samples.write(&record)?;
        Ok(())
    }

    /// Run the reader probe when one is configured and due.
    async fn probe(&mut self, sim_now: i64) -> Option<Value> {
        let cmd = self.args.probe_cmd.clone()?;
        if sim_now < self.next_probe {
            return None;
        }
        self.next_probe += self.args.probe_every.as_secs().max(1) as i64;
        let sampled = self.generator.sampled()?.clone();
        let day = day_of(sampled.day_start);
        let q = probe::ProbeQuery {
            table: &self.args.table,
            day: &day,
            event_type: &sampled.event_type,
            uuid: &sampled.uuid,
            hour_end: sim_now,
        };
        let v = probe::run(&cmd, &q).await;
        self.totals.probes += 1;
        if v.get("error").is_some() {
            self.totals.probe_failures += 1;
        }
        Some(v)
    }

    /// Wait for a running compactor, take the last sample, finish background checkpoints.
    async fn finish(&mut self) {
        self.wait_compactor().await;
        self.pipeline.events.finish_maintenance().await;
        self.pipeline.rejected.finish_maintenance().await;
        let last = self.totals.commits;
        let pending = self.sample_due || !self.finished.is_empty();
        if last > 0 && (pending || self.last_sample != Some(last - 1)) {
            let sim_now = self.clock.sim_time(last - 1);
            if let Err(e) = self.sample_or_error(last - 1, sim_now).await {
                tracing::warn!(error = %e, "final sample failed");
            }
        }
    }

    fn params(&self) -> Value {
        let (properties, retention) = setup::properties(self.args.compression);
        let properties: HashMap<_, _> = properties.into_iter().collect();
        json!({
            "args": self.args,
            "sim_start": iso(self.clock.start()),
            "commits_planned": self.clock.commits_in(self.args.sim_days),
            "table_properties": properties,
            "compactor_retention_secs": retention.as_secs(),
            "compactor_every_real_secs": self.clock.to_real(self.args.compact_every).as_secs_f64(),
        })
    }

    fn summary(&self, params: Value, took: Duration, error: Option<&SoakError>) -> Value {
        let t = &self.totals;
        let l = &self.latencies;
        json!({
            "params": params,
            "totals": t,
            "accounting_ok": t.generated == t.written + t.duplicates + t.rejected,
            "duplicates_minus_resends": t.duplicates as i64 - t.resends as i64,
            "latency_ms": {"p50": percentile(l, 50.0), "p90": percentile(l, 90.0),
                "p99": percentile(l, 99.0), "max": percentile(l, 100.0)},
            "max_lag_ms": self.max_lag_ms,
            "final_version": self.pipeline.events.version(),
            "wall_secs": took.as_secs_f64(),
            "error": error.map(|e| e.to_string()),
        })
    }
}
