//! `writer run`: the long-running Kinesis → Delta service.
//!
//! # Exactly once
//! Each shard has a Delta application transaction id `kinesis/<stream>/<shard>` whose
//! version counts that shard's committed batches. Every events commit carries, atomically:
//! the rows, a `txn` per shard in the batch (version + 1), and in `commitInfo` the last
//! sequence number read from each of those shards. The commit is fenced on the previous
//! `txn` versions (see [`crate::commit::TableSink::append`]), so only the current holder of a
//! shard's progress can extend it.
//!
//! The lease table's `checkpoint` is a cache of that truth, written after the commit. On
//! taking a shard, a writer compares the Delta `txn` version with the lease's
//! `checkpointTxn`: equal → resume after the lease checkpoint; Delta ahead (a crash between
//! commit and checkpoint) → resume after the sequence number recorded in the commit that
//! carries the Delta `txn`. Hence a kill -9 at any instant either leaves the batch
//! uncommitted (it is re-read) or committed with its position (it is not re-read): nothing
//! lost, nothing twice. The event_uuid dedupe remains the last guard against producers
//! sending the same event twice. Rejected records are committed first and are idempotent
//! (keyed by origin), so a crash between the two commits cannot duplicate them either.
//!
//! Because an insert that writes no rows still has to move progress, a batch whose rows
//! were all duplicates still commits (files-free) when it carries `txn`s.
//!
//! # Parts
//! - this module: the run loop (reader events, lease timer, flush deadline, signals), the
//!   commit of one batch, and the summary;
//! - [`shards`]: the shard supervisor (leases, readers and their restarts, resume positions);
//! - [`buffer`]: the records of the next commit and when they are due (the batching rule of
//!   [`crate::batch`]);
//! - [`progress`]: what a commit records per shard (`txn`s, fence, `commitInfo` positions);
//! - [`metrics`]: the `/metrics` and `/healthz` endpoint; [`signal`]: the orderly stop.

pub mod buffer;
pub mod config;
pub mod metrics;
pub mod progress;
pub mod shards;
pub mod signal;
pub mod slot;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::pipeline::{BatchReport, Counts, Pipeline, PipelineError};
use crate::source::kinesis::lease::{LeaseError, LeaseTable};
use buffer::Buffer;
use config::DedupeKeys;
pub use config::ServiceConfig;
use metrics::Metrics;
use progress::Progress;
pub use progress::app_id;
use shards::{Shards, Tagged};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Kinesis(#[from] crate::source::kinesis::KinesisError),
    #[error("metrics endpoint: {0}")]
    Metrics(std::io::Error),
    #[error("shutdown did not finish within {0:?}")]
    ShutdownDeadline(Duration),
}

/// Totals reported when the service exits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// The run's totals, flattened into the summary's top level.
    #[serde(flatten)]
    pub counts: Counts,
    /// Events table version at exit.
    pub table_version: Option<i64>,
    /// Batches committed by this instance.
    pub commits: u64,
    /// Leases this instance took.
    pub leases_taken: u64,
    /// Leases this instance lost to another writer.
    pub leases_lost: u64,
    /// Why the service stopped: `signal`, `idle for …` (`--exit-when-idle`) or `max run time
    /// …` (`--max-run-time`).
    pub exit_reason: String,
}

/// `writer run`, from start to summary.
pub struct Service {
    /// The resolved settings (shared with the supervisor).
    cfg: Arc<ServiceConfig>,
    /// The two tables every batch is committed to.
    pipeline: Pipeline,
    /// The held shards: leases, readers, resume positions.
    shards: Shards,
    /// Reader events, tagged with the generation of the reader that sent them.
    events: mpsc::Receiver<Tagged>,
    /// Records waiting for the next commit.
    buffer: Buffer,
    /// Shared with the metrics endpoint.
    metrics: Arc<Metrics>,
    /// Sum of the counts of every committed batch.
    totals: Counts,
    /// Batches committed.
    commits: u64,
    /// `kinesis:<stream>`, the `source` column.
    source_name: Arc<str>,
    /// When the service started: `--exit-when-idle` never stops it earlier than `idle` after.
    started: Instant,
}

impl Service {
    pub async fn start(cfg: ServiceConfig) -> Result<Self, ServiceError> {
        let cfg = Arc::new(cfg);
        let pipeline = Pipeline::open(cfg.pipeline.clone()).await?;
        let leases = LeaseTable::new(
            storage::aws::dynamodb().await,
            cfg.lease_table.clone(),
            cfg.pipeline.writer_id.clone(),
            cfg.lease_duration,
        );
        leases.ensure().await?;
        let kinesis = crate::source::kinesis::clients().await?;
        let metrics = Arc::new(Metrics::default());
        if let Some(port) = cfg.metrics_port {
            let listener = tokio::net::TcpListener::bind((cfg.metrics_host.as_str(), port))
                .await
                .map_err(ServiceError::Metrics)?;
            tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                cfg.lease_duration * 3 + cfg.pipeline.flush.max_latency * 4,
            ));
        }
        metrics.heartbeat();
        let (shards, events) = Shards::new(cfg.clone(), leases, kinesis, metrics.clone());
        Ok(Service {
            source_name: Arc::from(format!("kinesis:{}", cfg.stream)),
            buffer: Buffer::new(cfg.pipeline.flush),
            cfg,
            pipeline,
            shards,
            events,
            metrics,
            totals: Counts::default(),
            commits: 0,
            started: Instant::now(),
        })
    }

    /// Run until a signal, `exit_when_idle`, `exit_when_caught_up` or `max_run_time`; then
    /// flush, checkpoint, release leases.
    pub async fn run(mut self) -> Result<RunSummary, ServiceError> {
        let mut shutdown = signal::shutdown_signal();
        // Resolves with the cap once it has passed; never without one.
        let cap = self.cfg.max_run_time;
        let run_out = async move {
            match cap {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    d
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(run_out);
        let mut lease_tick = tokio::time::interval(self.cfg.lease_duration / 3);
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            self.metrics.heartbeat();
            tokio::select! {
                _ = &mut shutdown => break "signal".to_string(),
                d = &mut run_out => break format!("max run time {d:?}"),
                _ = lease_tick.tick() => {
                    let round = self.shards.lease_round(&mut self.pipeline, &mut self.buffer);
                    if let Err(e) = round.await {
                        tracing::warn!(error = %e, "lease round failed; will retry");
                    }
                }
                ev = self.events.recv() => {
                    if let Some((generation, ev)) = ev {
                        self.shards.on_event(generation, ev, &mut self.buffer);
                        // Take everything the readers delivered meanwhile (e.g. during a
                        // commit) before deciding to flush: deciding on the first shard's
                        // records alone would commit one shard per batch and fall behind.
                        self.take_delivered();
                    }
                }
                _ = sleep_until(self.buffer.deadline()) => {}
            }
            if self.buffer.due() {
                self.flush().await;
            }
            self.shards.finish_ended(&mut self.buffer).await;
            // What the readers delivered while a commit ran still waits in the channel: take
            // it before judging idleness, or a commit slower than the idle period looks like
            // idle shards (the 8-writer benchmark's writers stopped mid-stream).
            self.take_delivered();
            if let Some(idle) = self.cfg.exit_when_idle
                && self.idle_for(idle)
            {
                break format!("idle for {idle:?}");
            }
            if self.cfg.exit_when_caught_up && self.shards.caught_up() {
                // Commit what was read now rather than at the flush deadline: a scheduled
                // run's work is done. A failed commit rewinds the readers (no longer at the
                // tip), so the run goes on and tries again.
                self.flush().await;
                if self.buffer.is_empty() && self.shards.caught_up() {
                    break "caught up".to_string();
                }
            }
        };
        tracing::info!(reason = %reason, "stopping: flushing, checkpointing, releasing leases");
        let deadline = self.cfg.shutdown_deadline;
        tokio::time::timeout(deadline, self.shutdown())
            .await
            .map_err(|_| ServiceError::ShutdownDeadline(deadline))?;
        Ok(RunSummary {
            counts: self.totals,
            table_version: self.pipeline.events.version(),
            commits: self.commits,
            leases_taken: self.metrics.leases_taken.load(Ordering::Relaxed),
            leases_lost: self.metrics.leases_lost.load(Ordering::Relaxed),
            exit_reason: reason,
        })
    }

    /// `--exit-when-idle`: stop only when no shard of the stream holds records this instance
    /// could read. Every shard it reads has delivered nothing for `idle`, nothing is
    /// buffered, and the latest lease scan shows no readable shard unread (none unowned,
    /// none held by an expired lease, none owned by us but not read). An instance that
    /// holds no shard is therefore *not* idle while a dead peer's leases wait to expire:
    /// it waits, takes them, and reads them first.
    fn idle_for(&self, idle: Duration) -> bool {
        self.started.elapsed() >= idle && self.buffer.is_empty() && self.shards.idle_for(idle)
    }

    /// Handle every event already waiting in the channel, without waiting for more.
    fn take_delivered(&mut self) {
        while let Ok((generation, ev)) = self.events.try_recv() {
            self.shards.on_event(generation, ev, &mut self.buffer);
        }
    }

    /// Commit the buffer: rows + per-shard txns + positions, fenced; then move checkpoints.
    /// A failed commit re-reads every held shard from what the table says is committed.
    async fn flush(&mut self) {
        let taken = self.buffer.take();
        if taken.records.is_empty() {
            return;
        }
        let progress = Progress::of(&self.cfg.stream, &taken.records, |shard| {
            self.shards.txn_of(shard)
        });
        let (txns, expect, meta) = (progress.txns(), progress.expected(), progress.commit_info());
        if self.cfg.dedupe_keys == DedupeKeys::OwnShards {
            self.pipeline.events.own_shards(Some(self.shards.owned()));
        }
        let started = Instant::now();
        let commit = self
            .pipeline
            .process(&self.source_name, taken.records, txns, &expect, &meta);
        match self.shards.renewing(commit, &mut self.buffer).await {
            Ok(report) => {
                self.count(&report, &progress, started, taken.oldest_arrival);
                self.shards.committed(&progress, &mut self.buffer).await;
            }
            Err(e) => {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "commit failed; re-reading owned shards from their committed position");
                let rewind = self.shards.rewind_all(&mut self.pipeline, &mut self.buffer);
                rewind.await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// Account for a committed batch: totals, metrics, the flush's commit estimate, and the
    /// "batch committed" line (CloudWatch metric filters read its fields).
    fn count(
        &mut self,
        report: &BatchReport,
        progress: &Progress,
        started: Instant,
        oldest_arrival: Option<f64>,
    ) {
        let c = report.counts;
        let took = started.elapsed();
        self.totals.add(&c);
        self.commits += 1;
        self.buffer.committed_in(took);
        let m = &self.metrics;
        m.events_written.fetch_add(c.written, Ordering::Relaxed);
        m.duplicates.fetch_add(c.duplicates, Ordering::Relaxed);
        m.rejected.fetch_add(c.rejected, Ordering::Relaxed);
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.commit_conflicts
            .fetch_add(u64::from(report.conflicts), Ordering::Relaxed);
        m.observe_commit(took.as_secs_f64(), c.read);
        let index = self.pipeline.events.index_stats();
        m.dedupe_index_bytes.store(
            i64::try_from(index.bytes_held).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        // The index counts since the process started, as the counter does.
        m.dedupe_key_files_read
            .store(index.files_read, Ordering::Relaxed);
        let freshness = oldest_arrival.map(|arrived| (unix_now() - arrived).max(0.0));
        if let Some(f) = freshness {
            m.observe_freshness(f);
        }
        tracing::info!(
            read = c.read,
            written = c.written,
            duplicates = c.duplicates,
            rejected = c.rejected,
            version = report.events_version,
            commit_ms = took.as_millis() as u64,
            freshness_ms = freshness.map(|f| (f * 1000.0) as u64),
            shards = progress.shard_count(),
            conflicts = report.conflicts,
            // Cumulative: key-column files read, and other writers' commits skipped unread
            // (`--dedupe-keys own-shards`).
            key_files_read = index.files_read,
            foreign_commits_skipped = index.foreign_commits_skipped,
            // Cumulative: partitions completed with the keys of shards taken over, and the
            // files that needed no read for it or for a partition load (their shard range
            // rules the shards out).
            scopes_completed = index.scopes_completed,
            gain_files_skipped = index.gain_files_skipped,
            load_files_skipped = index.load_files_skipped,
            "batch committed"
        );
    }
}

/// Now as Unix seconds (the stream's timestamps are in the same unit).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sleep until `at`; forever when there is no deadline.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
