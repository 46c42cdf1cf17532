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

pub mod config;
pub mod metrics;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deltalake::kernel::Transaction;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::pipeline::{Counts, Pipeline, PipelineError};
use crate::source::kinesis::lease::{self, CHECKPOINT_SHARD_END, Lease, LeaseError, LeaseTable};
use crate::source::kinesis::{
    ReadFrom, ReadSpec, ShardEvent, StartPosition, list_shards, read_shard,
};
use crate::source::{Position, RawRecord};
pub use config::ServiceConfig;
use metrics::Metrics;

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
    #[serde(flatten)]
    pub counts: Counts,
    pub table_version: Option<i64>,
    pub commits: u64,
    pub leases_taken: u64,
    pub leases_lost: u64,
    pub exit_reason: String,
}

/// A shard this instance holds the lease of and reads.
struct Shard {
    /// The lease counter as last written by us (renewals are conditional on it).
    counter: i64,
    /// Delta `txn` version of this shard (None: never committed).
    txn: Option<i64>,
    /// Where a restarted reader resumes: right after the last record of this shard that
    /// this instance committed, else the position resolved when the lease was taken (a
    /// concrete one: `LATEST` is pinned to a timestamp, see [`Service::resolve`]). Buffered,
    /// uncommitted records of the shard are dropped on restart, so none is lost or doubled.
    committed: ReadFrom,
    /// Which reader task the shard's events must come from: events of a replaced reader
    /// (an older generation) are ignored.
    generation: u64,
    /// Tells the current reader task to stop.
    stop: watch::Sender<bool>,
    /// The reader reached the end of a closed shard (after a split or merge).
    ended: bool,
    /// Last time the reader delivered anything (records or an empty poll is not counted):
    /// the `--exit-when-idle` clock.
    last_activity: Instant,
}

/// Records buffered for the next commit, with the shard and reader generation they came from.
#[derive(Default)]
struct Buffer {
    records: Vec<RawRecord>,
    bytes: usize,
    /// When the oldest buffered record was read (the flush deadline runs from here).
    since: Option<Instant>,
    /// Earliest stream arrival time in the buffer (Unix seconds), for the freshness metric.
    oldest_arrival: Option<f64>,
}

pub fn app_id(stream: &str, shard: &str) -> String {
    format!("kinesis/{stream}/{shard}")
}

pub struct Service {
    cfg: ServiceConfig,
    pipeline: Pipeline,
    leases: LeaseTable,
    kinesis: aws_sdk_kinesis::Client,
    shards: HashMap<Arc<str>, Shard>,
    tx: mpsc::Sender<(u64, ShardEvent)>,
    rx: mpsc::Receiver<(u64, ShardEvent)>,
    buffer: Buffer,
    metrics: Arc<Metrics>,
    totals: Counts,
    commits: u64,
    next_generation: u64,
    source_name: Arc<str>,
    started: Instant,
    last_discovery: Option<Instant>,
    /// Smoothed duration of recent flushes (decode → commit visible).
    commit_estimate: Duration,
    /// Readable shards nobody reads, as of the last lease round (`None`: not known yet, i.e.
    /// no round yet, or not running for a lease duration, so a dead peer looks alive).
    unread_shards: Option<usize>,
    /// When the lease state was last logged, and what it was (owned, unread, orphans).
    last_lease_log: Option<(Instant, (usize, usize, usize))>,
}

impl Service {
    pub async fn start(cfg: ServiceConfig) -> Result<Self, ServiceError> {
        let pipeline = Pipeline::open(cfg.pipeline.clone()).await?;
        let ddb = storage::aws::dynamodb().await;
        let leases = LeaseTable::new(
            ddb,
            cfg.lease_table.clone(),
            cfg.pipeline.writer_id.clone(),
            cfg.lease_duration,
        );
        leases.ensure().await?;
        let kinesis = crate::source::kinesis::client().await;
        let (tx, rx) = mpsc::channel(64);
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
        let source_name: Arc<str> = Arc::from(format!("kinesis:{}", cfg.stream));
        Ok(Service {
            cfg,
            pipeline,
            leases,
            kinesis,
            shards: HashMap::new(),
            tx,
            rx,
            buffer: Buffer::default(),
            metrics,
            totals: Counts::default(),
            commits: 0,
            next_generation: 1,
            source_name,
            started: Instant::now(),
            last_discovery: None,
            commit_estimate: Duration::ZERO,
            unread_shards: None,
            last_lease_log: None,
        })
    }

    /// Run until a signal or `exit_when_idle`; then flush, checkpoint, release leases.
    pub async fn run(mut self) -> Result<RunSummary, ServiceError> {
        let mut shutdown = shutdown_signal();
        let mut lease_tick = tokio::time::interval(self.cfg.lease_duration / 3);
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            self.metrics.heartbeat();
            let flush_at = self.buffer.since.map(|s| s + self.flush_wait());
            tokio::select! {
                _ = &mut shutdown => break "signal".to_string(),
                _ = lease_tick.tick() => {
                    if let Err(e) = self.lease_round().await {
                        tracing::warn!(error = %e, "lease round failed; will retry");
                    }
                }
                ev = self.rx.recv() => {
                    if let Some((generation, ev)) = ev {
                        self.on_event(generation, ev);
                        // Take everything the readers delivered meanwhile (e.g. during a
                        // commit) before deciding to flush: deciding on the first shard's
                        // records alone would commit one shard per batch and fall behind.
                        self.take_delivered();
                    }
                }
                _ = sleep_until(flush_at) => {}
            }
            let flush = &self.cfg.pipeline.flush;
            let due = self
                .buffer
                .since
                .is_some_and(|s| s.elapsed() >= self.flush_wait())
                || self.buffer.records.len() >= flush.max_events
                || self.buffer.bytes >= flush.max_bytes;
            if due {
                self.flush().await;
            }
            self.finish_ended_shards().await;
            if let Some(idle) = self.cfg.exit_when_idle
                && self.idle_for(idle)
            {
                break format!("idle for {idle:?}");
            }
        };
        tracing::info!(reason = %reason, "stopping: flushing, checkpointing, releasing leases");
        let deadline = self.cfg.shutdown_deadline;
        match tokio::time::timeout(deadline, self.shutdown()).await {
            Ok(()) => {}
            Err(_) => return Err(ServiceError::ShutdownDeadline(deadline)),
        }
        Ok(RunSummary {
            counts: self.totals,
            table_version: self.pipeline.events.version(),
            commits: self.commits,
            leases_taken: self.metrics.leases_taken.load(Ordering::Relaxed),
            leases_lost: self.metrics.leases_lost.load(Ordering::Relaxed),
            exit_reason: reason,
        })
    }

    /// How long the oldest buffered record may wait before the flush starts. The flush
    /// interval is a promise about *visibility* (record read → commit visible), so the time a
    /// commit takes is spent out of it: flushing starts early by the smoothed commit duration,
    /// capped at half the interval so batches never degenerate under a slow store.
    fn flush_wait(&self) -> Duration {
        flush_wait(self.cfg.pipeline.flush.max_latency, self.commit_estimate)
    }

    /// `--exit-when-idle`: stop only when no shard of the stream holds records this instance
    /// could read. Every shard it reads has delivered nothing for `idle`, nothing is
    /// buffered, and the latest lease scan shows no readable shard unread (none unowned,
    /// none held by an expired lease, none owned by us but not read). An instance that
    /// holds no shard is therefore *not* idle while a dead peer's leases wait to expire:
    /// it waits, takes them, and reads them first.
    fn idle_for(&self, idle: Duration) -> bool {
        self.started.elapsed() >= idle
            && self.buffer.records.is_empty()
            && self.unread_shards == Some(0)
            && self
                .shards
                .values()
                .all(|s| s.last_activity.elapsed() >= idle)
    }

    /// Handle every event already waiting in the channel, without waiting for more.
    fn take_delivered(&mut self) {
        while let Ok((generation, ev)) = self.rx.try_recv() {
            self.on_event(generation, ev);
        }
    }

    fn on_event(&mut self, generation: u64, ev: ShardEvent) {
        let shard_id = match &ev {
            ShardEvent::Records { shard, .. }
            | ShardEvent::End { shard }
            | ShardEvent::Failed { shard, .. } => shard.clone(),
        };
        let Some(state) = self.shards.get_mut(&shard_id) else {
            return;
        };
        if state.generation != generation {
            return; // from a reader we already replaced
        }
        state.last_activity = Instant::now();
        match ev {
            ShardEvent::Records {
                records,
                millis_behind,
                received,
                oldest_arrival,
                ..
            } => {
                if let Some(lag) = millis_behind {
                    self.metrics.set_lag(&shard_id, lag);
                }
                self.metrics
                    .records_read
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                self.buffer.bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
                self.buffer.records.extend(records);
                let since = self.buffer.since.get_or_insert(received);
                *since = (*since).min(received);
                if let Some(t) = oldest_arrival {
                    let o = self.buffer.oldest_arrival.get_or_insert(t);
                    *o = o.min(t);
                }
            }
            ShardEvent::End { .. } => state.ended = true,
            ShardEvent::Failed { error, .. } => {
                let from = state.committed.clone();
                tracing::warn!(shard = %shard_id, %error, ?from, "shard reader failed; restarting after the last committed record");
                self.restart_reader(&shard_id, from);
            }
        }
    }

    /// Commit the buffer: rows + per-shard txns + positions, fenced; then move checkpoints.
    async fn flush(&mut self) {
        let records = std::mem::take(&mut self.buffer.records);
        let oldest_arrival = self.buffer.oldest_arrival;
        self.buffer = Buffer::default();
        if records.is_empty() {
            return;
        }
        let mut last: BTreeMap<Arc<str>, (Arc<str>, usize)> = BTreeMap::new();
        let mut first: BTreeMap<Arc<str>, Arc<str>> = BTreeMap::new();
        for r in &records {
            if let Position::Sequence {
                shard, sequence, ..
            } = &r.position
            {
                first
                    .entry(shard.clone())
                    .or_insert_with(|| sequence.clone());
                let e = last
                    .entry(shard.clone())
                    .or_insert_with(|| (sequence.clone(), 0));
                e.0 = sequence.clone();
                e.1 += 1;
            }
        }
        let mut txns = Vec::new();
        let mut expect = Vec::new();
        let mut shard_meta = serde_json::Map::new();
        for (shard, (seq, count)) in &last {
            let Some(state) = self.shards.get(shard) else {
                continue;
            };
            let app = app_id(&self.cfg.stream, shard);
            let next = state.txn.map_or(0, |v| v + 1);
            txns.push(Transaction::new(&app, next));
            expect.push((app, state.txn));
            shard_meta.insert(
                shard.to_string(),
                json!({"first_sequence": first.get(shard).map(|s| s.to_string()), "last_sequence": seq.to_string(), "records": count, "txn": next}),
            );
        }
        let meta = HashMap::from([(
            "kinesis".to_string(),
            json!({"stream": self.cfg.stream, "shards": Value::Object(shard_meta)}),
        )]);
        let started = Instant::now();
        // Keep renewing the held leases while the batch commits: a commit slowed down by
        // conflicts with other writers must not let our leases expire and bounce between
        // workers (fencing would keep the data right, but balance would thrash).
        let renew_every = self.cfg.lease_duration / 3;
        // Leases found lost during this flush: not renewed (nor reported) again.
        let mut lease_errors: BTreeMap<Arc<str>, LeaseError> = BTreeMap::new();
        let result = {
            let commit = self
                .pipeline
                .process(&self.source_name, records, txns, &expect, &meta);
            tokio::pin!(commit);
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
            loop {
                tokio::select! {
                    r = &mut commit => break r,
                    _ = tick.tick() => {
                        for (shard, e) in renew_held(&mut self.leases, &mut self.shards, &lease_errors).await {
                            match e {
                                LeaseError::Lost { .. } => {
                                    lease_errors.insert(shard, e);
                                }
                                // Transient: the next tick renews again.
                                other => tracing::warn!(%shard, error = %other, "lease renewal failed; retrying"),
                            }
                        }
                    }
                }
            }
        };
        for (shard, e) in lease_errors {
            self.on_lease_error(&shard, e);
        }
        match result {
            Ok(report) => {
                let c = report.counts;
                self.totals.read += c.read;
                self.totals.written += c.written;
                self.totals.duplicates += c.duplicates;
                self.totals.rejected += c.rejected;
                self.totals.rejected_written += c.rejected_written;
                self.commits += 1;
                let m = &self.metrics;
                m.events_written.fetch_add(c.written, Ordering::Relaxed);
                m.duplicates.fetch_add(c.duplicates, Ordering::Relaxed);
                m.rejected.fetch_add(c.rejected, Ordering::Relaxed);
                m.commits.fetch_add(1, Ordering::Relaxed);
                m.commit_conflicts
                    .fetch_add(u64::from(report.conflicts), Ordering::Relaxed);
                m.observe_commit(started.elapsed().as_secs_f64(), c.read);
                self.commit_estimate = smooth(self.commit_estimate, started.elapsed());
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
                    commit_ms = started.elapsed().as_millis() as u64,
                    freshness_ms = freshness.map(|f| (f * 1000.0) as u64),
                    shards = last.len(),
                    "batch committed"
                );
                for (shard, (seq, _)) in last {
                    let Some(state) = self.shards.get_mut(&shard) else {
                        continue;
                    };
                    let next = state.txn.map_or(0, |v| v + 1);
                    state.txn = Some(next);
                    state.committed = ReadFrom::After(seq.to_string());
                    if let Err(e) = self.leases.checkpoint(&shard, &seq, next).await {
                        // The Delta commit is the truth; a stale lease checkpoint is repaired
                        // by whoever takes the shard next. Losing the lease means stopping.
                        self.on_lease_error(&shard, e);
                    }
                }
            }
            Err(e) => {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "commit failed; re-reading owned shards from their committed position");
                let owned: Vec<Arc<str>> = self.shards.keys().cloned().collect();
                for shard in owned {
                    self.rewind(&shard).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    fn on_lease_error(&mut self, shard: &Arc<str>, e: LeaseError) {
        match e {
            LeaseError::Lost { .. } => {
                tracing::warn!(%shard, "lease lost; stopping the shard");
                self.metrics.leases_lost.fetch_add(1, Ordering::Relaxed);
                self.drop_shard(shard);
            }
            other => {
                tracing::warn!(%shard, error = %other, "checkpoint write failed; the next owner will repair it")
            }
        }
    }

    /// Stop reading a shard and drop its buffered records. The lease may still name us as
    /// owner (a transient error prevented giving it back): the next lease round then takes
    /// it back as an orphan (see [`lease::plan`]), so it is never left owned but unread.
    fn drop_shard(&mut self, shard: &Arc<str>) {
        if let Some(s) = self.shards.remove(shard) {
            let _ = s.stop.send(true);
        }
        self.forget_buffered(shard);
        // What is readable changed (a finished parent frees its children; a dropped shard is
        // an orphan): `--exit-when-idle` must wait for a lease round that sees it.
        self.unread_shards = None;
        self.metrics.forget_shard(shard);
        self.metrics
            .leases_owned
            .store(self.shards.len() as i64, Ordering::Relaxed);
    }

    /// Resolve where a shard's committed data ends (Delta is the truth, the lease a cache).
    async fn resolve(&mut self, lease: &Lease) -> Result<(ReadFrom, Option<i64>), ServiceError> {
        let app = app_id(&self.cfg.stream, &lease.shard);
        let txn = self
            .pipeline
            .events
            .txn_version(&app)
            .await
            .map_err(PipelineError::from)?;
        let lease_txn = lease.checkpoint_txn.filter(|v| *v >= 0);
        let checkpoint = lease
            .checkpoint
            .clone()
            .unwrap_or_else(|| self.cfg.start.as_checkpoint());
        if txn == lease_txn || txn.is_none() {
            let from = ReadFrom::from_checkpoint(&checkpoint);
            return Ok((self.pin_latest(&lease.shard, from, txn).await?, txn));
        }
        let v = txn.unwrap_or(0);
        let info = self
            .pipeline
            .events
            .find_txn_commit(&app, v, 100_000)
            .await
            .map_err(PipelineError::from)?;
        let seq = info
            .as_ref()
            .and_then(|i| i.pointer(&format!("/kinesis/shards/{}/last_sequence", lease.shard)))
            .and_then(Value::as_str)
            .map(String::from);
        match seq {
            Some(seq) => {
                tracing::info!(shard = %lease.shard, txn = v, "lease checkpoint was behind the table; using the committed position");
                if let Err(e) = self.leases.checkpoint(&lease.shard, &seq, v).await {
                    tracing::warn!(shard = %lease.shard, error = %e, "could not repair lease checkpoint");
                }
                Ok((ReadFrom::After(seq), txn))
            }
            None => {
                tracing::error!(shard = %lease.shard, txn = v, "commit for the table's txn not found; resuming from the lease checkpoint (dedupe guards)");
                Ok((ReadFrom::from_checkpoint(&checkpoint), txn))
            }
        }
    }

    /// Make `LATEST` durable before anything is read: a reader that starts at `LATEST` and
    /// dies before its first commit would otherwise restart at a newer tip and skip what it
    /// had read. The lease is given a concrete `AT_TIMESTAMP` of now instead, so every
    /// restart (this process's or the next owner's) starts at or before the first record
    /// the first reader saw. (Leases created by this version already hold a timestamp; this
    /// covers the configured default and leases written by older versions.)
    async fn pin_latest(
        &mut self,
        shard: &str,
        from: ReadFrom,
        txn: Option<i64>,
    ) -> Result<ReadFrom, ServiceError> {
        if from != ReadFrom::Initial(StartPosition::Latest) {
            return Ok(from);
        }
        let pinned = StartPosition::AtTimestamp(unix_now());
        self.leases
            .checkpoint(shard, &pinned.as_checkpoint(), txn.unwrap_or(-1))
            .await?;
        Ok(ReadFrom::Initial(pinned))
    }

    fn spawn_reader(&mut self, shard: Arc<str>, from: ReadFrom) -> (u64, watch::Sender<bool>) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tx, client, stream) = (
            self.tx.clone(),
            self.kinesis.clone(),
            self.cfg.stream.clone(),
        );
        let (poll, limit) = (self.cfg.poll_interval, self.cfg.records_per_call);
        let (inner_tx, mut inner_rx) = mpsc::channel::<ShardEvent>(4);
        let spec = ReadSpec {
            stream,
            shard,
            from,
            poll,
            limit,
        };
        tokio::spawn(read_shard(client, spec, inner_tx, stop_rx));
        tokio::spawn(async move {
            while let Some(ev) = inner_rx.recv().await {
                if tx.send((generation, ev)).await.is_err() {
                    return;
                }
            }
        });
        (generation, stop_tx)
    }

    /// Re-read a shard from its committed position (after a failed commit).
    async fn rewind(&mut self, shard: &Arc<str>) {
        self.forget_buffered(shard);
        let leases = match self.leases.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "lease scan failed during rewind; dropping shard");
                self.drop_shard(shard);
                return;
            }
        };
        let Some(lease) = leases
            .into_iter()
            .find(|l| l.shard.as_str() == shard.as_ref())
        else {
            self.drop_shard(shard);
            return;
        };
        if lease.owner.as_deref() != Some(self.leases.worker()) {
            self.metrics.leases_lost.fetch_add(1, Ordering::Relaxed);
            self.drop_shard(shard);
            return;
        }
        match self.resolve(&lease).await {
            Ok((from, txn)) => {
                if let Some(s) = self.shards.get_mut(shard) {
                    s.txn = txn;
                }
                self.restart_reader(shard, from);
            }
            Err(e) => {
                tracing::warn!(%shard, error = %e, "cannot resolve position; dropping shard");
                self.drop_shard(shard);
            }
        }
    }

    /// Replace a shard's reader with one that starts at `from`, dropping the shard's
    /// buffered records (they will be read again).
    fn restart_reader(&mut self, shard: &Arc<str>, from: ReadFrom) {
        let Some(old) = self.shards.remove(shard) else {
            return;
        };
        let _ = old.stop.send(true);
        self.forget_buffered(shard);
        let (generation, stop) = self.spawn_reader(shard.clone(), from.clone());
        self.shards.insert(
            shard.clone(),
            Shard {
                generation,
                stop,
                ended: false,
                last_activity: Instant::now(),
                committed: from,
                ..old
            },
        );
    }

    /// Drop the buffered (uncommitted) records of one shard.
    fn forget_buffered(&mut self, shard: &str) {
        self.buffer
            .records
            .retain(|r| r.position.shard() != Some(shard));
    }

    /// Shards that are closed and fully committed: mark them finished (children may start).
    async fn finish_ended_shards(&mut self) {
        let ended: Vec<Arc<str>> = self
            .shards
            .iter()
            .filter(|(id, s)| {
                s.ended
                    && !self
                        .buffer
                        .records
                        .iter()
                        .any(|r| r.position.shard() == Some(id.as_ref()))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for shard in ended {
            let Some(state) = self.shards.get(&shard) else {
                continue;
            };
            let txn = state.txn.unwrap_or(-1);
            let counter = state.counter;
            match self
                .leases
                .checkpoint(&shard, CHECKPOINT_SHARD_END, txn)
                .await
            {
                Ok(()) => {
                    tracing::info!(%shard, "shard finished");
                    let _ = self.leases.release(&shard, counter).await;
                    self.drop_shard(&shard);
                    self.last_discovery = None; // children may now be ready
                }
                Err(e) => self.on_lease_error(&shard, e),
            }
        }
    }

    /// Discover shards, renew held leases, take a fair share of the rest.
    async fn lease_round(&mut self) -> Result<(), ServiceError> {
        let discover = self
            .last_discovery
            .is_none_or(|t| t.elapsed() >= self.cfg.discovery_interval);
        if discover {
            let shards = list_shards(&self.kinesis, &self.cfg.stream).await?;
            let existing: std::collections::HashSet<String> = self
                .leases
                .list()
                .await?
                .into_iter()
                .map(|l| l.shard)
                .collect();
            for s in shards.iter().filter(|s| !existing.contains(&s.id)) {
                // Children start at the beginning: their parents' records end where they begin.
                // A new shard's `LATEST` is pinned to the lease's creation time at once (see
                // `pin_latest`).
                let initial = match (&self.cfg.start, s.parents.is_empty()) {
                    (_, false) => StartPosition::TrimHorizon,
                    (StartPosition::Latest, true) => StartPosition::AtTimestamp(unix_now()),
                    (start, true) => start.clone(),
                };
                let initial = initial.as_checkpoint();
                self.leases.create(&s.id, &s.parents, &initial).await?;
            }
            self.last_discovery = Some(Instant::now());
        }
        let all = self.leases.list().await?;
        let me = self.leases.worker().to_string();
        // Renew what we hold; notice what was taken from us.
        let held: Vec<(Arc<str>, i64)> = self
            .shards
            .iter()
            .map(|(k, s)| (k.clone(), s.counter))
            .collect();
        for (shard, counter) in held {
            let current = all.iter().find(|l| l.shard.as_str() == shard.as_ref());
            if current
                .is_none_or(|l| l.owner.as_deref() != Some(me.as_str()) || l.counter != counter)
            {
                self.on_lease_error(
                    &shard,
                    LeaseError::Lost {
                        shard: shard.to_string(),
                    },
                );
            }
        }
        for (shard, e) in renew_held(&mut self.leases, &mut self.shards, &BTreeMap::new()).await {
            self.on_lease_error(&shard, e);
        }
        let held: HashSet<&str> = self.shards.keys().map(|k| k.as_ref()).collect();
        let plan = lease::plan(&all, &me, &held, |l| self.leases.expired(l));
        drop(held);
        for (shard, counter) in plan.take {
            if self.shards.contains_key(shard.as_str()) {
                continue;
            }
            let counter = match self.leases.take(&shard, counter).await {
                Ok(c) => c,
                Err(LeaseError::Lost { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            self.metrics.leases_taken.fetch_add(1, Ordering::Relaxed);
            let Some(lease) = self
                .leases
                .list()
                .await?
                .into_iter()
                .find(|l| l.shard == shard)
            else {
                continue;
            };
            let (from, txn) = match self.resolve(&lease).await {
                Ok(r) => r,
                Err(e) => {
                    // Still owned by us: the next round takes it back as an orphan.
                    tracing::warn!(%shard, error = %e, "cannot resolve the shard's position; will retry");
                    continue;
                }
            };
            tracing::info!(%shard, ?from, ?txn, "took lease");
            let id: Arc<str> = Arc::from(shard.as_str());
            let (generation, stop) = self.spawn_reader(id.clone(), from.clone());
            self.shards.insert(
                id,
                Shard {
                    counter,
                    txn,
                    committed: from,
                    generation,
                    stop,
                    ended: false,
                    last_activity: Instant::now(),
                },
            );
        }
        self.metrics
            .leases_owned
            .store(self.shards.len() as i64, Ordering::Relaxed);
        self.count_unread().await?;
        Ok(())
    }

    /// Scan the leases once more (after this round's takes) and count the readable shards
    /// that nobody reads, and those owned by us but not read: the `--exit-when-idle`
    /// condition and two gauges operators alarm on.
    async fn count_unread(&mut self) -> Result<(), ServiceError> {
        let all = self.leases.list().await?;
        let me = self.leases.worker().to_string();
        let held: HashSet<&str> = self.shards.keys().map(|k| k.as_ref()).collect();
        let unread = lease::unread(&all, &me, &held, |l| self.leases.expired(l));
        let orphans = unread
            .iter()
            .filter(|l| l.owner.as_deref() == Some(me.as_str()))
            .count();
        self.metrics
            .shards_unread
            .store(unread.len() as i64, Ordering::Relaxed);
        self.metrics
            .leases_owned_not_read
            .store(orphans as i64, Ordering::Relaxed);
        // One log line when the picture changes and at least once a minute: CloudWatch
        // turns `shards_unread` into the metric the "shards unread" alarm watches (a shard
        // nobody reads has no iterator age, so the Kinesis lag alarm cannot see it).
        let state = (self.shards.len(), unread.len(), orphans);
        if self
            .last_lease_log
            .is_none_or(|(at, last)| last != state || at.elapsed() >= Duration::from_secs(60))
        {
            tracing::info!(
                shards_owned = state.0,
                shards_unread = state.1,
                leases_owned_not_read = state.2,
                "lease state"
            );
            self.last_lease_log = Some((Instant::now(), state));
        }
        // A peer's lease is known to be dead only after this instance watched its counter
        // stand still for a lease duration: until every peer's lease was watched that long,
        // "no unread shard" proves nothing.
        let settled = lease::ready(&all).iter().all(|l| {
            l.owner.is_none() || l.owner.as_deref() == Some(me.as_str()) || self.leases.watched(l)
        });
        self.unread_shards = settled.then_some(unread.len());
        Ok(())
    }

    async fn shutdown(&mut self) {
        for s in self.shards.values() {
            let _ = s.stop.send(true);
        }
        // Take what the readers already delivered, then commit it.
        self.take_delivered();
        self.flush().await;
        self.finish_ended_shards().await;
        let held: Vec<(Arc<str>, i64)> = self
            .shards
            .iter()
            .map(|(k, s)| (k.clone(), s.counter))
            .collect();
        for (shard, counter) in held {
            if let Err(e) = self.leases.release(&shard, counter).await {
                tracing::warn!(%shard, error = %e, "could not release lease; it will expire");
            }
        }
        self.shards.clear();
        self.metrics.leases_owned.store(0, Ordering::Relaxed);
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn flush_wait(interval: Duration, commit_estimate: Duration) -> Duration {
    interval.saturating_sub(commit_estimate.min(interval / 2))
}

/// Exponentially weighted moving average (weight 1/4 on the newest sample): follows a store
/// that slows down within a few batches without jumping on one outlier.
fn smooth(previous: Duration, sample: Duration) -> Duration {
    if previous.is_zero() {
        sample
    } else {
        (previous * 3 + sample) / 4
    }
}

/// Renew every held lease (conditional on owner and counter); the failures, for
/// [`Service::on_lease_error`].
async fn renew_held(
    leases: &mut LeaseTable,
    shards: &mut HashMap<Arc<str>, Shard>,
    skip: &BTreeMap<Arc<str>, LeaseError>,
) -> Vec<(Arc<str>, LeaseError)> {
    let mut failed = Vec::new();
    for (shard, state) in shards.iter_mut().filter(|(k, _)| !skip.contains_key(*k)) {
        match leases.renew(shard, state.counter).await {
            Ok(c) => state.counter = c,
            Err(e) => failed.push((shard.clone(), e)),
        }
    }
    failed
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_starts_early_by_the_commit_time_but_never_before_half_the_interval() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(flush_wait(s(2), Duration::ZERO), s(2));
        assert_eq!(flush_wait(s(2), ms(600)), ms(1400));
        assert_eq!(flush_wait(s(2), s(5)), s(1));
        assert_eq!(flush_wait(Duration::ZERO, s(1)), Duration::ZERO);
    }

    #[test]
    fn smoothing_starts_at_the_first_sample_and_damps_outliers() {
        let ms = Duration::from_millis;
        let first = smooth(Duration::ZERO, ms(800));
        assert_eq!(first, ms(800));
        let after_spike = smooth(first, ms(4800));
        assert_eq!(after_spike, ms(1800));
        let mut d = after_spike;
        for _ in 0..20 {
            d = smooth(d, ms(800));
        }
        assert!(d < ms(810), "{d:?}");
    }
}
