//! Committing rows to one table, exactly once per key.
//!
//! [`TableSink::append`] runs the stages described in [`crate::dedupe`], each a function of
//! the previous one's result (see `stages.rs`): **plan** (follow the log to the latest
//! version, fence on the expected `txn` versions, drop rows whose key is already there) →
//! **stage** (write the survivors' Parquet files) → **commit** at exactly the next version →
//! **committed** (the key index and `txn` cache take the commit; a checkpoint may fall due).
//! A conflict (someone else committed first) is not an error: the append plans again against
//! the new version, rewrites only the partitions whose rows changed, and tries again.
//!
//! The commit is written here, not by delta-rs' `CommitBuilder`: that builder needs a
//! snapshot at the version committed on and, after the commit, rebuilds the snapshot's
//! whole file list (a cost linear in the live files, paid on every commit: 23 ms → 393 ms
//! per commit over a 1M-event run on local disk). The writer already knows the version it
//! commits on (the [`follow::LogFollower`] reads every new log entry), so it serializes the
//! entry with delta-rs' own `CommitData`, checks the table protocol with delta-rs'
//! `PROTOCOL`, and hands the bytes to the log store's `write_commit_entry` for exactly
//! `version + 1`. The delta-rs table state is brought forward only when a file list or
//! metadata is needed (see [`follow::LogFollower::table_at_version`]).
//!
//! Table maintenance stays off the commit path: delta-rs would otherwise, after *every*
//! commit, list the whole `_delta_log` to expire old entries (a cost that grows with the
//! table's age) and, every `checkpointInterval` commits, write the checkpoint inline. Here a
//! checkpoint due at a version is written in the background (`checkpoint.rs`); log expiry is
//! the compactor's job (`compactor checkpoint`).

mod checkpoint;
pub mod follow;
mod stages;

use std::collections::HashMap;
use std::time::Instant;

use deltalake::kernel::Transaction;
use deltalake::{DeltaTable, DeltaTableError};
use schemas::table::TableDef;
use serde_json::Value;
use storage::LakeError;

use crate::dedupe::{IndexStats, KeyIndex};
use crate::rows::SinkRows;
pub use checkpoint::CheckpointWritten;
use checkpoint::Checkpoints;
use follow::{Followed, LogFollower};
use stages::{Batch, Phases, StagedFiles};

/// Result of one append.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendOutcome {
    /// Rows committed (the survivors of dedupe in the attempt that landed; 0 when nothing
    /// was committed).
    pub written: u64,
    /// Rows dropped because the table already held their key.
    pub duplicates: u64,
    /// Version committed, when anything was committed.
    pub version: Option<i64>,
    /// Data files the commit added (one per partition with surviving rows).
    pub files: u64,
    /// Attempts that lost their version to another writer and were planned again.
    pub conflicts: u32,
    /// Wall time of the whole append, retries included (the `commit_ms` the service logs
    /// with `batch committed` and benchmarks chart).
    pub commit_ms: u64,
}

/// One Delta table being appended to: its log, its dedupe index, its checkpoints.
pub struct TableSink {
    /// Table URI as given: named in every error, log line and metric of this table.
    pub uri: String,
    /// The table's log as this writer has seen it (version, `txn`s, delta-rs state).
    log: LogFollower,
    /// The keys the table holds at `log`'s version, for the loaded scopes.
    index: KeyIndex,
    /// Which table this is (partitioning, key column).
    def: &'static TableDef,
    /// Background checkpoints.
    checkpoints: Checkpoints,
    /// The last commit attempt conflicted: the next sync asks the log store for the latest
    /// version (and repairs a half-published commit) instead of probing.
    conflicted: bool,
    /// What the last successful append did (for benchmarks).
    last_append: Option<AppendOutcome>,
}

impl TableSink {
    pub fn new(
        uri: String,
        table: DeltaTable,
        def: &'static TableDef,
        memory_budget: usize,
        idle_evict: Option<std::time::Duration>,
    ) -> Self {
        TableSink {
            index: KeyIndex::new(def, uri.clone(), memory_budget, idle_evict),
            log: LogFollower::new(uri.clone(), table),
            checkpoints: Checkpoints::new(uri.clone()),
            uri,
            def,
            conflicted: false,
            last_append: None,
        }
    }

    /// Shard-scoped dedupe: from now on the index holds only the keys of `owned`'s shards
    /// (`None`: every key). See [`crate::dedupe::OwnedShards`].
    pub fn own_shards(&mut self, owned: Option<crate::dedupe::OwnedShards>) {
        self.index.own_shards(owned);
    }

    /// What the last successful append did (files added, conflicts, time).
    pub fn last_append(&self) -> Option<AppendOutcome> {
        self.last_append
    }

    /// The last finished background checkpoint attempt (version, time to write it).
    pub fn last_checkpoint(&self) -> Option<CheckpointWritten> {
        self.checkpoints.last()
    }

    /// The table version the writer has seen (its own commits and everyone else's up to
    /// the last sync).
    pub fn version(&self) -> Option<i64> {
        self.log.version()
    }

    /// The dedupe counters of this table: the key index's, with the log side's filled in
    /// from the follower.
    pub fn index_stats(&self) -> IndexStats {
        let log = self.log.stats();
        IndexStats {
            log_entries_replayed: log.log_entries_replayed,
            table_refreshes: log.table_refreshes,
            log_reloads: log.log_reloads,
            ..self.index.stats()
        }
    }

    /// Bring the log follower and the key index to the latest version (also done by
    /// `append`).
    pub async fn sync(&mut self) -> Result<(), LakeError> {
        self.checkpoints.adopt_finished(&mut self.log);
        let thorough = std::mem::take(&mut self.conflicted);
        let mut added = Default::default();
        let index = &mut self.index;
        match self
            .log
            .follow(thorough, |e| index.replay(e, &mut added))
            .await?
        {
            Followed::Reloaded => {
                self.index.clear();
                Ok(())
            }
            Followed::Advanced => self.index.read_added(self.log.store(), added).await,
        }
    }

    /// The version of an application transaction (`txn`) recorded in the table, if any.
    pub async fn txn_version(&mut self, app_id: &str) -> Result<Option<i64>, LakeError> {
        self.sync().await?;
        self.log.txn_version(app_id).await
    }

    /// The `commitInfo` of the commit that recorded `txn` (`app_id`, `version`), searching
    /// back from the latest version (bounded by `max_back` versions).
    pub async fn find_txn_commit(
        &mut self,
        app_id: &str,
        version: i64,
        max_back: i64,
    ) -> Result<Option<Value>, LakeError> {
        self.sync().await?;
        self.log.find_txn_commit(app_id, version, max_back).await
    }

    /// Append `rows`, skipping keys the table already holds. `metadata` goes into the
    /// commit's `commitInfo`; `txns` (if any) are committed atomically with the rows, and
    /// force a commit even when every row was a duplicate, so progress is never lost.
    ///
    /// `expect` fences the commit: each `(app_id, version)` must be the table's current
    /// `txn` version for that app at the exact version committed on, or the append fails
    /// with [`AppendError::Fenced`] and writes nothing. A writer that lost a shard can
    /// therefore never commit over its successor's progress, however long it was paused.
    pub async fn append(
        &mut self,
        rows: &dyn SinkRows,
        metadata: HashMap<String, Value>,
        txns: Vec<Transaction>,
        expect: &[(String, Option<i64>)],
    ) -> Result<AppendOutcome, AppendError> {
        self.append_after(rows, metadata, txns, expect, None).await
    }

    /// [`Self::append`], but the commit itself waits for `gate`: everything before it (sync,
    /// dedupe, Parquet, uploads) overlaps with whatever the gate stands for — the batch's
    /// rejected-table commit, which must land first. A gate that reports failure (or is
    /// dropped) aborts the append before anything is committed; staged files are deleted.
    pub async fn append_after(
        &mut self,
        rows: &dyn SinkRows,
        metadata: HashMap<String, Value>,
        txns: Vec<Transaction>,
        expect: &[(String, Option<i64>)],
        mut gate: Option<tokio::sync::oneshot::Receiver<bool>>,
    ) -> Result<AppendOutcome, AppendError> {
        let started = Instant::now();
        let batch = Batch::new(rows);
        let mut phases = Phases::default();
        let mut outcome = AppendOutcome::default();
        // Files staged by an attempt that conflicted: reused where their rows still hold.
        let mut previous = StagedFiles::new();
        loop {
            let plan = match self.plan(&batch, expect, &mut phases).await {
                Ok(plan) => plan,
                Err(e) => {
                    if matches!(e, AppendError::Fenced { .. }) {
                        self.discard(previous.into_values()).await;
                    }
                    return Err(e);
                }
            };
            outcome.duplicates = plan.duplicates;
            if plan.is_empty() && txns.is_empty() {
                self.discard(previous.into_values()).await;
                break;
            }
            let staged = self.stage(&batch, plan, previous, &mut phases).await?;
            if let Some(g) = gate.take()
                && !g.await.unwrap_or(false)
            {
                self.discard(staged.files.into_values()).await;
                return Err(AppendError::Aborted);
            }
            match self.commit(&staged, &metadata, &txns, &mut phases).await {
                Ok(version) => {
                    self.committed(version, &batch, &staged, &txns, &mut phases);
                    outcome.written = staged.rows() as u64;
                    outcome.files = staged.files.len() as u64;
                    outcome.version = Some(version);
                    break;
                }
                Err(CommitError::Conflict) => {
                    outcome.conflicts += 1;
                    previous = self.after_conflict(outcome.conflicts, staged).await?;
                }
                Err(CommitError::Lake(e)) => return Err(e.into()),
                // The commit may or may not have landed (e.g. a timeout after the put): keep
                // the files; a landed commit references them, and vacuum removes them
                // otherwise.
                Err(CommitError::Failed(e)) => {
                    return Err(LakeError::delta(&self.uri, "commit", e).into());
                }
            }
        }
        outcome.commit_ms = started.elapsed().as_millis() as u64;
        phases.log(&self.uri, &outcome);
        self.last_append = Some(outcome);
        Ok(outcome)
    }

    /// Finish background checkpoints, including one still waiting (on shutdown: it saves
    /// the next reader a long log replay).
    pub async fn finish_maintenance(&mut self) {
        self.checkpoints.finish(&mut self.log).await;
    }
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The commit this append was gated on failed; nothing was committed.
    #[error("aborted: an earlier commit of the same batch failed")]
    Aborted,
    /// Another writer advanced the `txn` this append expected (a lost shard lease).
    #[error("fenced: txn {app_id} is at {found:?}, expected {expected:?}")]
    Fenced {
        app_id: String,
        expected: Option<i64>,
        found: Option<i64>,
    },
}

/// Why writing one log entry did not succeed.
enum CommitError {
    /// Another writer took the version first.
    Conflict,
    /// Writing failed; the entry may or may not have landed.
    Failed(DeltaTableError),
    /// Bringing the table state forward or re-checking the protocol failed (nothing written).
    Lake(LakeError),
}
