//! Following a table's `_delta_log`: the version this writer has seen, and what the entries
//! after it say.
//!
//! The writer commits at exactly `version + 1` of the version it has seen, so it must know
//! that version cheaply and exactly: [`LogFollower::follow`] reads only the entries after it
//! (one GET when nothing is new), hands each to the caller (the key index takes the files
//! added and the partitions invalidated), and keeps for itself what the commit path needs:
//! the `txn` versions of the apps asked about, and whether the metadata or protocol changed.
//!
//! The [`DeltaTable`] is loaded once, on the first sync, and after that only brought forward
//! when its file list or metadata is needed ([`LogFollower::table_at_version`]): delta-rs
//! rebuilds its whole file list on every update, a cost that grows with the table, while the
//! follower reads only the new log entries.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::{DeltaTable, DeltaTableError, ObjectStore};
use storage::LakeError;
use storage::log::{LogEntry, LogError, last_checkpoint_version, read_entry};

/// What [`LogFollower::follow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// Every new entry (possibly none) was handed over, in order.
    Advanced,
    /// The log had moved on past this writer (entries expired while it was idle): the state
    /// was reloaded from the latest checkpoint, the entries in between are unknown, and
    /// whatever the caller derived from earlier entries must be dropped.
    Reloaded,
}

/// Counters of the log side (reported in [`crate::dedupe::IndexStats`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct FollowerStats {
    /// Log entries read after the version already seen (other writers' commits, and the
    /// compactor's): the incremental work that replaces re-reading the table state.
    pub log_entries_replayed: u64,
    /// Times the delta-rs table state was brought forward (new scopes, new apps, metadata).
    pub table_refreshes: u64,
    /// Times the log had moved on past the writer and the state was reloaded.
    pub log_reloads: u64,
}

/// One table's log, followed from the version this writer has seen.
pub struct LogFollower {
    /// Table URI, for errors and logs.
    uri: String,
    /// delta-rs' state of the table: at most `version`, brought forward on demand.
    table: DeltaTable,
    /// The latest version seen (every entry up to it was handed over); `None` before the
    /// first [`Self::follow`].
    version: Option<i64>,
    /// `txn` versions of the apps asked about, at `version`, kept current by the replay.
    txns: HashMap<String, Option<i64>>,
    /// An entry since `table` was last brought to `version` changed the metadata or protocol.
    table_meta_changed: bool,
    /// A metadata or protocol change (or a reload) was seen and the table's features have
    /// not been checked since: stays set until a commit has checked them (see
    /// [`Self::table_for_commit`]), whatever else brings the delta-rs state forward.
    protocol_check_due: bool,
    /// Counters for metrics and benchmarks.
    stats: FollowerStats,
}

impl LogFollower {
    pub fn new(uri: String, table: DeltaTable) -> Self {
        LogFollower {
            uri,
            table,
            version: None,
            txns: HashMap::new(),
            table_meta_changed: false,
            protocol_check_due: false,
            stats: FollowerStats::default(),
        }
    }

    /// The table version this writer has seen (a commit must follow it).
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    pub fn stats(&self) -> FollowerStats {
        self.stats
    }

    /// The delta-rs state as it is (possibly behind [`Self::version`]).
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The table's object store (data files).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.table.log_store().object_store(None)
    }

    /// Read the entries after [`Self::version`] up to the end of the log, handing each to
    /// `each` in order.
    ///
    /// `thorough = false` finds the end of the log by reading `version + 1`, `version + 2`,
    /// ... until one is missing: one GET when nothing is new, no LIST (which costs O(objects
    /// in the bucket) on some S3 emulators and grows with the log on real S3). A version
    /// that is committed but not yet published (a DynamoDB-lock commit whose writer stopped
    /// between its lock entry and the copy to `N.json`) is invisible to this probe, so a
    /// commit based on it conflicts; after a conflict callers follow with `thorough = true`,
    /// which asks the log store for the latest version (repairing such a commit) and lists.
    /// Either way the commit itself is made at exactly `version + 1` and fails if that
    /// exists, so the probe can make a commit retry, never a wrong commit.
    pub async fn follow(
        &mut self,
        thorough: bool,
        mut each: impl FnMut(&LogEntry),
    ) -> Result<Followed, LakeError> {
        let Some(from) = self.version else {
            self.load_latest().await?;
            return Ok(Followed::Advanced);
        };
        let latest = if thorough {
            match self.latest_version().await {
                Ok(l) => Some(l),
                // `from` itself is gone: the log was cleaned up past us.
                Err(_) if self.log_moved_past(from).await? => return self.reload().await,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let log_store = self.table.log_store();
        let mut v = from + 1;
        while latest.is_none_or(|l| v <= l) {
            let read = read_entry(log_store.as_ref(), v).await;
            let Some(entry) = read.map_err(|e| log_error(&self.uri, e))? else {
                // Either the end of the log, or entries that were deleted by log clean-up
                // while this writer was idle (see `log_moved_past`).
                if self.log_moved_past(v - 1).await? {
                    return self.reload().await;
                }
                if latest.is_some() {
                    let gone = DeltaTableError::Generic(format!("log entry {v} vanished"));
                    return Err(LakeError::delta(&self.uri, "read log entry", gone));
                }
                break;
            };
            self.take(&entry);
            each(&entry);
            v += 1;
        }
        self.version = Some(v - 1);
        Ok(Followed::Advanced)
    }

    /// What one entry means for the follower's own state: `txn`s of tracked apps move
    /// forward, a metadata or protocol change makes the table state stale.
    fn take(&mut self, entry: &LogEntry) {
        self.stats.log_entries_replayed += 1;
        for txn in &entry.txns {
            if let Some(slot) = self.txns.get_mut(&txn.app_id) {
                *slot = Some(txn.version);
            }
        }
        if entry.metadata_changed || entry.protocol_changed {
            self.table_meta_changed = true;
            self.protocol_check_due = true;
        }
    }

    /// The first sync: the latest version, with the delta-rs state loaded at it.
    async fn load_latest(&mut self) -> Result<(), LakeError> {
        let latest = self.latest_version().await?;
        if self.table.version().map(|v| v as i64) != Some(latest) {
            self.table
                .load_version(latest as u64)
                .await
                .map_err(|e| LakeError::delta(&self.uri, "load", e))?;
        }
        self.version = Some(latest);
        Ok(())
    }

    /// Whether the log has moved on past `version` without this writer seeing it: the
    /// newest checkpoint (`_last_checkpoint`) is beyond `version`.
    ///
    /// Why this is the right test: a missing `version + 1` normally means "nothing new". But
    /// a writer that stayed idle longer than `delta.logRetentionDuration` can find its next
    /// entries deleted — the compactor committed after it, checkpointed, and expired the old
    /// entries. Log clean-up only deletes entries *below a checkpoint*, and the checkpoint
    /// (with `_last_checkpoint`) is written before the clean-up runs; so entries past
    /// `version` can only have vanished if `_last_checkpoint` points past `version`.
    /// Entries written after the probe are younger than any retention and cannot be
    /// expired, so there is no race. Without this check the writer would commit at
    /// `version + 1` again — *under* the newest checkpoint, invisible to every reader
    /// (silent loss) on S3 conditional puts and local disk, or wedged forever on the
    /// DynamoDB lock's "previous entry must exist" check. One small GET per sync.
    async fn log_moved_past(&self, version: i64) -> Result<bool, LakeError> {
        let checkpoint = last_checkpoint_version(self.table.log_store().as_ref())
            .await
            .map_err(|e| log_error(&self.uri, e))?;
        Ok(checkpoint.is_some_and(|c| c > version))
    }

    /// Start over from the latest checkpoint: a fresh delta-rs state at the latest version,
    /// and no cached `txn`s (they are re-read on demand from the snapshot, exactly as on a
    /// cold start).
    async fn reload(&mut self) -> Result<Followed, LakeError> {
        let mut fresh = DeltaTable::new(self.table.log_store());
        fresh
            .load()
            .await
            .map_err(|e| LakeError::delta(&self.uri, "reload", e))?;
        let latest = fresh.version().map_or(-1, |v| v as i64);
        tracing::warn!(
            table = %self.uri,
            had = ?self.version,
            latest,
            "the log moved on past this writer (entries expired while it was idle); reloaded from the latest checkpoint"
        );
        self.table = fresh;
        self.txns.clear();
        self.table_meta_changed = false;
        self.protocol_check_due = true;
        self.version = Some(latest);
        self.stats.log_reloads += 1;
        Ok(Followed::Reloaded)
    }

    async fn latest_version(&self) -> Result<i64, LakeError> {
        // List from the newest version known (ours, else the loaded table's).
        let start = self
            .version
            .map(|v| v.max(0) as u64)
            .or(self.table.version())
            .unwrap_or(0);
        self.table
            .log_store()
            .get_latest_version(start)
            .await
            .map(|v| v as i64)
            .map_err(|e| LakeError::delta(&self.uri, "get latest version", e))
    }

    /// Bring the delta-rs state (file list, metadata, protocol) to exactly [`Self::version`].
    pub async fn table_at_version(&mut self) -> Result<&DeltaTable, LakeError> {
        let Some(v) = self.version else {
            return Ok(&self.table);
        };
        if self.table.version().map(|t| t as i64) != Some(v) {
            self.table
                .update_incremental(Some(v as u64))
                .await
                .map_err(|e| LakeError::delta(&self.uri, "update", e))?;
            self.stats.table_refreshes += 1;
        }
        self.table_meta_changed = false;
        Ok(&self.table)
    }

    /// The state a commit on [`Self::version`] is checked against. After a metadata or
    /// protocol change it is brought forward, and after a protocol change (or a reload) the
    /// checks made when the table was opened are made again: someone may have added a
    /// feature (e.g. a CHECK constraint) that the writer's commit path would not enforce.
    pub async fn table_for_commit(&mut self) -> Result<&DeltaTable, LakeError> {
        if self.table_meta_changed || self.protocol_check_due {
            self.table_at_version().await?;
        }
        if self.protocol_check_due {
            storage::check_writable(&self.table, &self.uri)?;
            self.protocol_check_due = false;
        }
        Ok(&self.table)
    }

    /// The `txn` version of `app_id` at [`Self::version`].
    pub async fn txn_version(&mut self, app_id: &str) -> Result<Option<i64>, LakeError> {
        if let Some(v) = self.txns.get(app_id) {
            return Ok(*v);
        }
        self.table_at_version().await?;
        let snapshot = self
            .table
            .snapshot()
            .map_err(|e| LakeError::delta(&self.uri, "snapshot", e))?;
        let v = snapshot
            .transaction_version(&self.table.log_store(), app_id)
            .await
            .map_err(|e| LakeError::delta(&self.uri, "read txn", e))?;
        self.txns.insert(app_id.to_string(), v);
        Ok(v)
    }

    /// Our own commit at `version` (exactly the next one) landed, carrying `txns`.
    pub fn committed(&mut self, version: i64, txns: &[deltalake::kernel::Transaction]) {
        debug_assert_eq!(self.version.map(|v| v + 1), Some(version));
        for t in txns {
            self.txns.insert(t.app_id.clone(), Some(t.version));
        }
        self.version = Some(version);
    }

    /// Take over a delta-rs state loaded elsewhere (a background checkpoint's) when it is
    /// newer than ours; it was loaded at a version we had seen, so never beyond ours.
    pub fn adopt(&mut self, table: DeltaTable) {
        if table.version() > self.table.version() {
            self.table = table;
        }
    }

    /// The `commitInfo` of the commit that recorded `txn` (`app_id`, `version`), searching
    /// back from [`Self::version`] (bounded by `max_back` versions).
    pub async fn find_txn_commit(
        &self,
        app_id: &str,
        version: i64,
        max_back: i64,
    ) -> Result<Option<serde_json::Value>, LakeError> {
        let Some(latest) = self.version else {
            return Ok(None);
        };
        let log_store = self.table.log_store();
        let mut v = latest;
        while v >= 0 && latest - v < max_back {
            let read = read_entry(log_store.as_ref(), v).await;
            let Some(entry) = read.map_err(|e| log_error(&self.uri, e))? else {
                break;
            };
            if entry.has_txn(app_id, version) {
                return Ok(Some(entry.commit_info).filter(|ci| !ci.is_null()));
            }
            v -= 1;
        }
        Ok(None)
    }
}

/// A log-reading error as the writer reports storage errors (table and step named).
fn log_error(uri: &str, e: LogError) -> LakeError {
    match e {
        LogError::Read { cause: source, .. } => LakeError::Delta {
            table: uri.to_string(),
            step: "read log entry",
            source,
        },
        LogError::LastCheckpoint(source) => LakeError::Store {
            table: uri.to_string(),
            step: "read _last_checkpoint",
            source,
        },
        malformed @ LogError::Malformed { .. } => LakeError::delta(
            uri,
            "parse log entry",
            DeltaTableError::Generic(malformed.to_string()),
        ),
    }
}
