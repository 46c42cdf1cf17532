//! The shard supervisor: which shards this instance reads, and the readers that read them.
//!
//! Each lease round (a third of a lease duration) discovers new shards, notices leases taken
//! from us, renews the rest, takes a fair share of the readable ones (orphans of ours at
//! once, see [`lease::plan`]) and counts what nobody reads. A taken shard resumes right after
//! its last committed record (Delta is the truth, the lease checkpoint a cache, see
//! [`Shards::resolve`]). Readers are tagged with a generation, so events of a replaced
//! reader are ignored; whenever a reader is replaced or a shard dropped, the shard's
//! uncommitted records leave the [`Buffer`] with it, to be read again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::buffer::Buffer;
use super::metrics::Metrics;
use super::progress::{Progress, app_id, committed_sequence};
use super::slot::Slot;
use super::{ServiceConfig, ServiceError, unix_now};
use crate::dedupe::OwnedShards;
use crate::pipeline::{Pipeline, PipelineError};
use crate::source::kinesis::lease::{self, CHECKPOINT_SHARD_END, Lease, LeaseError, LeaseTable};
use crate::source::kinesis::{
    Clients, ReadFrom, ReadSpec, ShardEvent, StartPosition, list_shards, read_shard,
};

/// How far back (in table versions) the commit carrying a shard's `txn` is looked for.
const TXN_SEARCH_VERSIONS: i64 = 100_000;

/// A reader's event, tagged with the reader's generation.
pub type Tagged = (u64, ShardEvent);

/// A shard this instance holds the lease of and reads.
struct Shard {
    /// The lease counter as last written by us (renewals are conditional on it).
    counter: i64,
    /// Delta `txn` version of this shard (None: never committed).
    txn: Option<i64>,
    /// Where a restarted reader resumes: right after the last record of this shard that
    /// this instance committed, else the position resolved when the lease was taken (a
    /// concrete one: `LATEST` is pinned to a timestamp, see [`Shards::pin_latest`]).
    committed: ReadFrom,
    /// Which reader task the shard's events must come from: events of a replaced reader
    /// (an older generation) are ignored.
    generation: u64,
    /// Tells the current reader task to stop.
    stop: watch::Sender<bool>,
    /// The reader reached the end of a closed shard (after a split or merge).
    ended: bool,
    /// Last time the reader delivered anything (records, end or failure; an empty poll
    /// sends nothing): the `--exit-when-idle` clock.
    last_activity: Instant,
    /// This reader has read up to the tip of the shard once (`--exit-when-caught-up`).
    at_tip: bool,
}

/// What the "lease state" log line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeaseState {
    /// Shards this instance holds and reads.
    owned: usize,
    /// Readable shards nobody reads (unowned, expired, or orphans).
    unread: usize,
    /// Of those, leases naming this instance that it does not read.
    orphans: usize,
}

/// The held shards, their leases and their readers.
pub struct Shards {
    /// Stream, start position, lease duration, polling and discovery settings.
    cfg: Arc<ServiceConfig>,
    /// The lease table, acting as this writer (`--writer-id`).
    leases: LeaseTable,
    /// Kinesis clients: the SDK for shard discovery (ListShards); both cloned into every
    /// reader task.
    kinesis: Clients,
    /// The shards this instance holds the lease of and reads.
    held: HashMap<Arc<str>, Shard>,
    /// Where every reader sends its events (the service loop receives them).
    events: mpsc::Sender<Tagged>,
    /// The generation the next reader spawned gets; never reused.
    next_generation: u64,
    /// When the shard list was last read (`None`: read it at the next round, e.g. after a
    /// shard finished and its children became readable).
    last_discovery: Option<Instant>,
    /// Readable shards nobody reads, as of the last lease round (`None`: not known yet, i.e.
    /// no round yet, not running for a lease duration so a dead peer looks alive, or a shard
    /// was dropped or finished since).
    unread: Option<usize>,
    /// When the lease state was last logged, and what it was.
    last_lease_log: Option<(Instant, LeaseState)>,
    /// Lease gauges and counters, per-shard lag.
    metrics: Arc<Metrics>,
    /// Each shard's parents, as of the last lease round (for [`Self::owned`]).
    parents: HashMap<String, Vec<String>>,
}

impl Shards {
    /// No shard held yet; readers will send to the returned receiver.
    pub fn new(
        cfg: Arc<ServiceConfig>,
        leases: LeaseTable,
        kinesis: Clients,
        metrics: Arc<Metrics>,
    ) -> (Shards, mpsc::Receiver<Tagged>) {
        let (events, rx) = mpsc::channel(64);
        let shards = Shards {
            cfg,
            leases,
            kinesis,
            held: HashMap::new(),
            events,
            next_generation: 1,
            last_discovery: None,
            unread: None,
            last_lease_log: None,
            metrics,
            parents: HashMap::new(),
        };
        (shards, rx)
    }

    /// Apply one reader event: records go to `buffer`; a closed shard's end is noted; a
    /// failed reader is restarted after the last committed record.
    pub fn on_event(&mut self, generation: u64, ev: ShardEvent, buffer: &mut Buffer) {
        let shard = ev.shard().clone();
        let Some(state) = self.held.get_mut(&shard) else {
            return;
        };
        if state.generation != generation {
            return; // from a reader we already replaced
        }
        if let ShardEvent::AtTip { .. } = ev {
            // Not activity: the idle clock runs on records, ends and failures only.
            state.at_tip = true;
            return;
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
                    self.metrics.set_lag(&shard, lag);
                }
                self.metrics
                    .records_read
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                buffer.push(records, received, oldest_arrival);
            }
            ShardEvent::End { .. } => state.ended = true,
            ShardEvent::AtTip { .. } => {}
            ShardEvent::Failed { error, .. } => {
                let (txn, from) = (state.txn, state.committed.clone());
                tracing::warn!(%shard, %error, ?from, "shard reader failed; restarting after the last committed record");
                self.restart(&shard, txn, from, buffer);
            }
        }
    }

    /// `--exit-when-idle`, the shard side: the latest lease scan shows no readable shard
    /// unread (none unowned, none held by an expired lease, none ours but not read), and
    /// every shard read has delivered nothing for `idle`.
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.unread == Some(0)
            && self
                .held
                .values()
                .all(|s| s.last_activity.elapsed() >= idle)
    }

    /// `--exit-when-caught-up`, the shard side: the latest lease scan shows no readable shard
    /// unread, and every shard read has been read to its tip (or its end) by its current
    /// reader: all records written to the stream before that moment have been delivered.
    pub fn caught_up(&self) -> bool {
        self.unread == Some(0) && self.held.values().all(|s| s.at_tip || s.ended)
    }

    /// The held shards and all their ancestors (a producer's retry may land on a child of
    /// the shard its first copy went to): whose keys shard-scoped dedupe holds.
    pub fn owned(&self) -> OwnedShards {
        let mut owned: HashSet<&str> = HashSet::new();
        let mut todo: Vec<&str> = self.held.keys().map(|k| k.as_ref()).collect();
        while let Some(shard) = todo.pop() {
            if owned.insert(shard) {
                let parents = self.parents.get(shard).map_or(&[][..], Vec::as_slice);
                todo.extend(parents.iter().map(String::as_str));
            }
        }
        // A held shard never committed has no row in the table (its records enter it only
        // through its own fenced `txn`): gaining it costs the index nothing.
        let fresh = (self.held.iter())
            .filter(|(_, s)| s.txn.is_none())
            .map(|(k, _)| k.to_string());
        OwnedShards::new(&self.cfg.stream, owned).with_fresh(fresh)
    }

    /// The `txn` version of a held shard (`None`: not held).
    pub fn txn_of(&self, shard: &str) -> Option<Option<i64>> {
        self.held.get(shard).map(|s| s.txn)
    }

    // ---- lease rounds ------------------------------------------------------------------

    /// Discover shards, renew held leases, take a fair share of the rest.
    pub async fn lease_round(
        &mut self,
        pipeline: &mut Pipeline,
        buffer: &mut Buffer,
    ) -> Result<(), ServiceError> {
        if self
            .last_discovery
            .is_none_or(|t| t.elapsed() >= self.cfg.discovery_interval)
        {
            self.discover().await?;
        }
        let all = self.leases.list().await?;
        self.parents = (all.iter())
            .map(|l| (l.shard.clone(), l.parents.clone()))
            .collect();
        let held_before = self.held.len();
        self.notice_lost(&all, buffer);
        for (shard, e) in self.renew_held(&BTreeMap::new()).await {
            self.on_lease_error(&shard, e, buffer);
        }
        let held: HashSet<&str> = self.held.keys().map(|k| k.as_ref()).collect();
        let plan = lease::plan(&all, self.leases.worker(), &held, |l| {
            self.leases.expired(l)
        });
        drop(held);
        // Whether the table may now differ from `all` in what `count_unread` judges: a
        // lease dropped or taken this round.
        let mut moved = self.held.len() != held_before;
        for (shard, counter) in plan.take {
            if !self.held.contains_key(shard.as_str()) {
                moved = true;
                self.take(&shard, counter, pipeline).await?;
            }
        }
        let slot = if self.cfg.commit_slots {
            Slot::among(&all, self.leases.worker(), !self.held.is_empty(), |l| {
                self.leases.expired(l)
            })
        } else {
            None
        };
        if buffer.set_slot(slot) {
            let writers = slot.map_or(0, |s| s.of as i64);
            self.metrics
                .commit_slot_writers
                .store(writers, Ordering::Relaxed);
            match slot {
                Some(s) => tracing::info!(rank = s.rank, writers = s.of, "commit slot"),
                None => tracing::info!("no commit slot: flushing on this writer's own cadence"),
            }
        }
        self.owned_gauge();
        // Nothing moved here since the scan: reuse it (a second Scan every round was a sixth
        // of an idle writer's lease requests; what a peer did meanwhile, the next round sees).
        let all = if moved {
            self.leases.list().await?
        } else {
            all
        };
        self.count_unread(&all);
        Ok(())
    }

    /// Create a lease for every shard of the stream that has none yet.
    async fn discover(&mut self) -> Result<(), ServiceError> {
        let shards = list_shards(&self.kinesis.sdk, &self.cfg.stream).await?;
        let existing: HashSet<String> = self
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
        Ok(())
    }

    /// Drop the held shards whose lease now names another owner or moved past our counter.
    fn notice_lost(&mut self, all: &[Lease], buffer: &mut Buffer) {
        let me = self.leases.worker();
        let lost: Vec<Arc<str>> = self
            .held
            .iter()
            .filter(|&(shard, s)| {
                let current = all.iter().find(|l| l.shard == **shard);
                current.is_none_or(|l| l.owner.as_deref() != Some(me) || l.counter != s.counter)
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in lost {
            let e = LeaseError::Lost {
                shard: shard.to_string(),
            };
            self.on_lease_error(&shard, e, buffer);
        }
    }

    /// Renew every held lease not in `skip` (conditional on owner and counter); the failures.
    async fn renew_held(
        &mut self,
        skip: &BTreeMap<Arc<str>, LeaseError>,
    ) -> Vec<(Arc<str>, LeaseError)> {
        let mut failed = Vec::new();
        for (shard, state) in self.held.iter_mut().filter(|(k, _)| !skip.contains_key(*k)) {
            match self.leases.renew(shard, state.counter).await {
                Ok(c) => state.counter = c,
                Err(e) => failed.push((shard.clone(), e)),
            }
        }
        failed
    }

    /// Take the lease of `shard` (seen with `counter`) and start reading it where its
    /// committed data ends. Losing the race for it, or failing to resolve its position, is
    /// not an error: a later round tries again (an owned but unread lease is an orphan).
    async fn take(
        &mut self,
        shard: &str,
        counter: i64,
        pipeline: &mut Pipeline,
    ) -> Result<(), ServiceError> {
        let counter = match self.leases.take(shard, counter).await {
            Ok(c) => c,
            Err(LeaseError::Lost { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.metrics.leases_taken.fetch_add(1, Ordering::Relaxed);
        let Some(lease) = self.find_lease(shard).await? else {
            return Ok(());
        };
        let (from, txn) = match self.resolve(&lease, pipeline).await {
            Ok(r) => r,
            Err(e) => {
                // Still owned by us: the next round takes it back as an orphan.
                tracing::warn!(%shard, error = %e, "cannot resolve the shard's position; will retry");
                return Ok(());
            }
        };
        tracing::info!(%shard, ?from, ?txn, "took lease");
        self.read(Arc::from(shard), counter, txn, from);
        Ok(())
    }

    /// Count, in the lease table as scanned in `all` (after this round's takes), the readable
    /// shards that nobody reads, and those owned by us but not read: the `--exit-when-idle`
    /// condition and two gauges operators alarm on.
    fn count_unread(&mut self, all: &[Lease]) {
        let me = self.leases.worker();
        let held: HashSet<&str> = self.held.keys().map(|k| k.as_ref()).collect();
        let unread = lease::unread(all, me, &held, |l| self.leases.expired(l));
        let orphans = unread
            .iter()
            .filter(|l| l.owner.as_deref() == Some(me))
            .count();
        // A peer's lease is known to be dead only after this instance watched its counter
        // stand still for a lease duration: until every peer's lease was watched that long,
        // "no unread shard" proves nothing.
        let settled = lease::ready(all)
            .iter()
            .all(|l| l.owner.is_none() || l.owner.as_deref() == Some(me) || self.leases.watched(l));
        let state = LeaseState {
            owned: self.held.len(),
            unread: unread.len(),
            orphans,
        };
        self.unread = settled.then_some(state.unread);
        self.log_lease_state(state);
    }

    /// Publish the lease gauges; one log line when the picture changes and at least once a
    /// minute: CloudWatch turns `shards_unread` into the metric the "shards unread" alarm
    /// watches (a shard nobody reads has no iterator age, so the Kinesis lag alarm cannot
    /// see it).
    fn log_lease_state(&mut self, state: LeaseState) {
        let m = &self.metrics;
        m.shards_unread
            .store(state.unread as i64, Ordering::Relaxed);
        m.leases_owned_not_read
            .store(state.orphans as i64, Ordering::Relaxed);
        if self
            .last_lease_log
            .is_none_or(|(at, last)| last != state || at.elapsed() >= Duration::from_secs(60))
        {
            tracing::info!(
                shards_owned = state.owned,
                shards_unread = state.unread,
                leases_owned_not_read = state.orphans,
                "lease state"
            );
            self.last_lease_log = Some((Instant::now(), state));
        }
    }

    // ---- around a commit ---------------------------------------------------------------

    /// Run `commit` to completion while renewing the held leases every third of a lease
    /// duration: a commit slowed down by conflicts with other writers must not let our
    /// leases expire and bounce between workers (fencing would keep the data right, but
    /// balance would thrash). Leases found lost meanwhile are dropped once it is done.
    pub async fn renewing<T>(&mut self, commit: impl Future<Output = T>, buffer: &mut Buffer) -> T {
        let every = self.cfg.lease_duration / 3;
        // Leases found lost during this commit: not renewed (nor reported) again.
        let mut lost: BTreeMap<Arc<str>, LeaseError> = BTreeMap::new();
        let result = {
            tokio::pin!(commit);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    r = &mut commit => break r,
                    _ = tick.tick() => {
                        for (shard, e) in self.renew_held(&lost).await {
                            match e {
                                LeaseError::Lost { .. } => {
                                    lost.insert(shard, e);
                                }
                                // Transient: the next tick renews again.
                                other => tracing::warn!(%shard, error = %other, "lease renewal failed; retrying"),
                            }
                        }
                    }
                }
            }
        };
        for (shard, e) in lost {
            self.on_lease_error(&shard, e, buffer);
        }
        result
    }

    /// After a commit: readers restart after what it carried, and the lease checkpoints
    /// (a cache of the commit) move.
    pub async fn committed(&mut self, progress: &Progress, buffer: &mut Buffer) {
        for (shard, p) in progress.shards() {
            let Some(state) = self.held.get_mut(shard) else {
                continue;
            };
            state.txn = Some(p.txn());
            state.committed = ReadFrom::After(p.last_sequence.to_string());
            if let Err(e) = self
                .leases
                .checkpoint(shard, &p.last_sequence, p.txn())
                .await
            {
                // The Delta commit is the truth; a stale lease checkpoint is repaired by
                // whoever takes the shard next. Losing the lease means stopping.
                self.on_lease_error(shard, e, buffer);
            }
        }
    }

    /// After a failed commit: re-read every held shard from its committed position.
    pub async fn rewind_all(&mut self, pipeline: &mut Pipeline, buffer: &mut Buffer) {
        let held: Vec<Arc<str>> = self.held.keys().cloned().collect();
        for shard in held {
            self.rewind(&shard, pipeline, buffer).await;
        }
    }

    /// Re-read a shard from its committed position as the table says now (a commit that
    /// failed after it became visible did move it), if the lease is still ours.
    async fn rewind(&mut self, shard: &Arc<str>, pipeline: &mut Pipeline, buffer: &mut Buffer) {
        buffer.forget(shard);
        let lease = match self.find_lease(shard).await {
            Ok(Some(l)) => l,
            Ok(None) => return self.drop_shard(shard, buffer),
            Err(e) => {
                tracing::warn!(error = %e, "lease scan failed during rewind; dropping shard");
                return self.drop_shard(shard, buffer);
            }
        };
        if lease.owner.as_deref() != Some(self.leases.worker()) {
            self.metrics.leases_lost.fetch_add(1, Ordering::Relaxed);
            return self.drop_shard(shard, buffer);
        }
        match self.resolve(&lease, pipeline).await {
            Ok((from, txn)) => self.restart(shard, txn, from, buffer),
            Err(e) => {
                tracing::warn!(%shard, error = %e, "cannot resolve position; dropping shard");
                self.drop_shard(shard, buffer);
            }
        }
    }

    // ---- ending ------------------------------------------------------------------------

    /// Shards that are closed and fully committed: mark them finished (children may start).
    pub async fn finish_ended(&mut self, buffer: &mut Buffer) {
        let ended: Vec<(Arc<str>, i64, Option<i64>)> = self
            .held
            .iter()
            .filter(|(id, s)| s.ended && !buffer.holds(id))
            .map(|(id, s)| (id.clone(), s.counter, s.txn))
            .collect();
        for (shard, counter, txn) in ended {
            let txn = txn.unwrap_or(-1);
            match self
                .leases
                .checkpoint(&shard, CHECKPOINT_SHARD_END, txn)
                .await
            {
                Ok(()) => {
                    tracing::info!(%shard, "shard finished");
                    let _ = self.leases.release(&shard, counter).await;
                    self.drop_shard(&shard, buffer);
                    self.last_discovery = None; // children may now be ready
                }
                Err(e) => self.on_lease_error(&shard, e, buffer),
            }
        }
    }

    /// Tell every reader to stop (what they already sent is still delivered).
    pub fn stop_readers(&self) {
        for s in self.held.values() {
            let _ = s.stop.send(true);
        }
    }

    /// Give every lease back (graceful shutdown): peers may take them at once.
    pub async fn release_all(&mut self) {
        for (shard, s) in std::mem::take(&mut self.held) {
            let _ = s.stop.send(true);
            if let Err(e) = self.leases.release(&shard, s.counter).await {
                tracing::warn!(%shard, error = %e, "could not release lease; it will expire");
            }
        }
        self.owned_gauge();
    }

    // ---- readers and held shards -------------------------------------------------------

    /// Read `shard` from `from` with a new reader (of a new generation), replacing any
    /// reader it had.
    fn read(&mut self, shard: Arc<str>, counter: i64, txn: Option<i64>, from: ReadFrom) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let (stop, stop_rx) = watch::channel(false);
        let spec = ReadSpec {
            stream: self.cfg.stream.clone(),
            shard: shard.clone(),
            from: from.clone(),
            poll: self.cfg.poll_interval,
            limit: self.cfg.records_per_call,
        };
        let (tx, mut rx) = mpsc::channel::<ShardEvent>(4);
        tokio::spawn(read_shard(self.kinesis.clone(), spec, tx, stop_rx));
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if events.send((generation, ev)).await.is_err() {
                    return;
                }
            }
        });
        let state = Shard {
            counter,
            txn,
            committed: from,
            generation,
            stop,
            ended: false,
            last_activity: Instant::now(),
            at_tip: false,
        };
        if let Some(old) = self.held.insert(shard, state) {
            let _ = old.stop.send(true);
        }
    }

    /// Replace a held shard's reader with one that starts at `from`, dropping the shard's
    /// buffered records (they will be read again).
    fn restart(&mut self, shard: &Arc<str>, txn: Option<i64>, from: ReadFrom, buffer: &mut Buffer) {
        let Some(counter) = self.held.get(shard).map(|s| s.counter) else {
            return;
        };
        buffer.forget(shard);
        self.read(shard.clone(), counter, txn, from);
    }

    fn on_lease_error(&mut self, shard: &Arc<str>, e: LeaseError, buffer: &mut Buffer) {
        match e {
            LeaseError::Lost { .. } => {
                tracing::warn!(%shard, "lease lost; stopping the shard");
                self.metrics.leases_lost.fetch_add(1, Ordering::Relaxed);
                self.drop_shard(shard, buffer);
            }
            other => {
                tracing::warn!(%shard, error = %other, "checkpoint write failed; the next owner will repair it")
            }
        }
    }

    /// Stop reading a shard and drop its buffered records. The lease may still name us as
    /// owner (a transient error prevented giving it back): the next lease round then takes
    /// it back as an orphan (see [`lease::plan`]), so it is never left owned but unread.
    fn drop_shard(&mut self, shard: &Arc<str>, buffer: &mut Buffer) {
        if let Some(s) = self.held.remove(shard) {
            let _ = s.stop.send(true);
        }
        buffer.forget(shard);
        // What is readable changed (a finished parent frees its children; a dropped shard is
        // an orphan): `--exit-when-idle` must wait for a lease round that sees it.
        self.unread = None;
        self.metrics.forget_shard(shard);
        self.owned_gauge();
    }

    fn owned_gauge(&self) {
        self.metrics
            .leases_owned
            .store(self.held.len() as i64, Ordering::Relaxed);
    }

    // ---- where a shard resumes ---------------------------------------------------------

    /// The lease of `shard` as stored now.
    async fn find_lease(&mut self, shard: &str) -> Result<Option<Lease>, LeaseError> {
        Ok(self
            .leases
            .list()
            .await?
            .into_iter()
            .find(|l| l.shard == shard))
    }

    /// Resolve where a shard's committed data ends (Delta is the truth, the lease a cache):
    /// the lease checkpoint if it matches the table's `txn` version, else the last sequence
    /// number recorded in the commit that carries that version (a crash between commit and
    /// checkpoint), repairing the lease on the way.
    async fn resolve(
        &mut self,
        lease: &Lease,
        pipeline: &mut Pipeline,
    ) -> Result<(ReadFrom, Option<i64>), ServiceError> {
        let shard = lease.shard.as_str();
        let app = app_id(&self.cfg.stream, shard);
        let events = &mut pipeline.events;
        let txn = events
            .txn_version(&app)
            .await
            .map_err(PipelineError::from)?;
        let checkpoint = lease
            .checkpoint
            .clone()
            .unwrap_or_else(|| self.cfg.start.as_checkpoint());
        let from_lease = ReadFrom::from_checkpoint(&checkpoint);
        let lease_txn = lease.checkpoint_txn.filter(|t| *t >= 0);
        let v = match txn {
            Some(v) if txn != lease_txn => v,
            // The lease checkpoint is current (or the shard was never committed).
            _ => return Ok((self.pin_latest(shard, from_lease, txn).await?, txn)),
        };
        let info = events
            .find_txn_commit(&app, v, TXN_SEARCH_VERSIONS)
            .await
            .map_err(PipelineError::from)?;
        match info.and_then(|i| committed_sequence(&i, shard)) {
            Some(seq) => {
                tracing::info!(%shard, txn = v, "lease checkpoint was behind the table; using the committed position");
                if let Err(e) = self.leases.checkpoint(shard, &seq, v).await {
                    tracing::warn!(%shard, error = %e, "could not repair lease checkpoint");
                }
                Ok((ReadFrom::After(seq), txn))
            }
            None => {
                tracing::error!(%shard, txn = v, "commit for the table's txn not found; resuming from the lease checkpoint (dedupe guards)");
                Ok((from_lease, txn))
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
}
