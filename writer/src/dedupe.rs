//! Exact dedupe: a key (`event_uuid`) is stored once per scope, first write wins.
//!
//! # Design
//! The [`KeyIndex`] holds, for each partition a batch touched recently, the exact set of
//! keys the table holds there *at one table version* (`KeyIndex::version`). A batch is
//! filtered against it, and the commit is written at exactly `version + 1`, never rebased
//! (see [`crate::commit`]). If anyone else committed in between, the commit
//! fails, the index replays the new log entries (their `add` actions with `dataChange`,
//! reading only the key column of those files) and the batch is filtered again before the
//! next attempt. So every commit is checked against every row committed before it:
//! dedupe is serializable, not best effort, even with several writers.
//!
//! Compaction commits (`dataChange = false`) move rows between files without changing the
//! key set, so they are skipped. A real deletion (`remove` with `dataChange = true`) or a
//! metadata change drops the affected partitions, which are re-read on next use.
//!
//! # Cost and memory
//! Steady state, a batch costs one hash probe per row: independent of table size. Keys are
//! 16 bytes when they are canonical lowercase UUIDs (parsed to `u128`, a bijection with the
//! text), otherwise the text itself. Loaded partitions are kept up to a memory budget and
//! evicted least-recently-used; a partition that alone exceeds the budget is not cached but
//! probed by streaming its key column past the batch's keys (memory bounded by the batch).
//!
//! # Scope
//! For the events table the scope is the partition (`event_type`, `created_date`): a re-sent
//! event carries the same name and `created_at`, so it maps to the partition of its first
//! copy. The rejected table is small and deduplicated across the whole table.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::kernel::{Add, Remove};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::{DeltaTable, ObjectStore};
use futures::{StreamExt, TryStreamExt};
use hashbrown::HashSet;
use schemas::table::TableDef;
use storage::LakeError;

/// A dedupe key: canonical UUIDs compactly, anything else verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Uuid(u128),
    Text(Box<str>),
}

impl Key {
    pub fn of(s: &str) -> Key {
        parse_canonical_uuid(s).map_or_else(|| Key::Text(s.into()), Key::Uuid)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex only, so that text and number map
/// one-to-one (an uppercase or braced form stays a distinct [`Key::Text`]).
fn parse_canonical_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// Partition values (in partition-column order) that bound a key's uniqueness; empty for a
/// table deduplicated as a whole.
pub type Scope = Vec<Option<String>>;

#[derive(Debug, Default)]
struct ScopeKeys {
    uuids: HashSet<u128>,
    texts: HashSet<Box<str>>,
    text_bytes: usize,
    last_used: u64,
}

impl ScopeKeys {
    fn insert(&mut self, key: &Key) {
        match key {
            Key::Uuid(u) => {
                self.uuids.insert(*u);
            }
            Key::Text(t) => {
                if !self.texts.contains(t) {
                    self.text_bytes += t.len();
                    self.texts.insert(t.clone());
                }
            }
        }
    }

    fn insert_str(&mut self, s: &str) {
        match parse_canonical_uuid(s) {
            Some(u) => {
                self.uuids.insert(u);
            }
            None => {
                if !self.texts.contains(s) {
                    self.text_bytes += s.len();
                    self.texts.insert(s.into());
                }
            }
        }
    }

    fn contains(&self, key: &Key) -> bool {
        match key {
            Key::Uuid(u) => self.uuids.contains(u),
            Key::Text(t) => self.texts.contains(t),
        }
    }

    fn memory(&self) -> usize {
        self.uuids.capacity() * 17 + self.texts.capacity() * 17 + self.text_bytes
    }
}

/// Bytes one key is assumed to take before a partition is loaded (for the budget check).
const EST_BYTES_PER_KEY: usize = 40;

/// The exact key set of the recently used scopes of one table, at one version.
pub struct KeyIndex {
    def: &'static TableDef,
    table_name: String,
    version: Option<i64>,
    scopes: HashMap<Scope, ScopeKeys>,
    budget: usize,
    tick: u64,
    stats: IndexStats,
    /// Application transaction versions (`txn` actions) of the apps asked about, kept current
    /// by the same log replay as the keys.
    txns: HashMap<String, Option<i64>>,
    table_meta_changed: bool,
    /// A metadata or protocol change (or a reload) was seen and the table's features have
    /// not been checked since: stays set until a commit has checked them (see
    /// [`Self::protocol_checked`]), whatever else brings the delta-rs state forward.
    protocol_check_due: bool,
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct IndexStats {
    pub files_read: u64,
    pub keys_loaded: u64,
    pub scopes_evicted: u64,
    pub scopes_streamed: u64,
    pub log_entries_replayed: u64,
    /// Times the delta-rs table state was brought forward (new scopes, new apps, metadata).
    pub table_refreshes: u64,
    /// Times the log had moved on past the index (expired entries) and the state was
    /// reloaded from the latest checkpoint.
    pub log_reloads: u64,
}

/// Files (path, size) per scope.
type FilesByScope = HashMap<Scope, Vec<(String, Option<u64>)>>;

impl KeyIndex {
    pub fn new(def: &'static TableDef, table_name: impl Into<String>, budget: usize) -> Self {
        KeyIndex {
            def,
            table_name: table_name.into(),
            version: None,
            scopes: HashMap::new(),
            budget,
            tick: 0,
            stats: IndexStats::default(),
            txns: HashMap::new(),
            table_meta_changed: false,
            protocol_check_due: false,
        }
    }

    pub fn stats(&self) -> IndexStats {
        self.stats
    }

    /// Table version the index reflects (the version a commit must follow).
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    /// Approximate bytes held.
    fn memory(&self) -> usize {
        self.scopes.values().map(ScopeKeys::memory).sum()
    }

    /// The scope of a row with these partition values.
    pub fn scope_of(&self, partition: &[(String, Option<String>)]) -> Scope {
        if self.def.key_scoped_to_partition {
            partition.iter().map(|(_, v)| v.clone()).collect()
        } else {
            Vec::new()
        }
    }

    /// Bring the index to the latest version, replaying new log entries.
    ///
    /// The [`DeltaTable`] is loaded once, on the first sync, and after that only brought
    /// forward when its file list or metadata is needed ([`Self::table_at_version`]):
    /// delta-rs rebuilds its whole file list on every update, a cost that grows with the
    /// table, while the replay here reads only the new log entries.
    ///
    /// `thorough = false` finds the end of the log by reading `version + 1`, `version + 2`,
    /// ... until one is missing: one GET when nothing is new, no LIST (which costs O(objects
    /// in the bucket) on some S3 emulators and grows with the log on real S3). A version
    /// that is committed but not yet published (a DynamoDB-lock commit whose writer stopped
    /// between its lock entry and the copy to `N.json`) is invisible to this probe, so a
    /// commit based on it conflicts; after a conflict callers sync with `thorough = true`,
    /// which asks the log store for the latest version (repairing such a commit) and lists.
    /// Either way the commit itself is made at exactly `version + 1` and fails if that
    /// exists, so the probe can make a commit retry, never a wrong commit.
    pub async fn sync(&mut self, table: &mut DeltaTable, thorough: bool) -> Result<(), LakeError> {
        let Some(from) = self.version else {
            let latest = self.latest_version(table).await?;
            if table.version().map(|v| v as i64) != Some(latest) {
                table
                    .load_version(latest as u64)
                    .await
                    .map_err(|e| LakeError::delta(&self.table_name, "load", e))?;
            }
            self.version = Some(latest);
            return Ok(());
        };
        let latest = if thorough {
            match self.latest_version(table).await {
                Ok(l) => Some(l),
                // `from` itself is gone: the log was cleaned up past us.
                Err(_) if self.log_moved_past(table, from).await? => {
                    return self.reload(table).await;
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let log_store = table.log_store();
        let mut new_files: FilesByScope = HashMap::new();
        let mut v = from + 1;
        loop {
            if latest.is_some_and(|l| v > l) {
                break;
            }
            let bytes = log_store
                .read_commit_entry(v as u64)
                .await
                .map_err(|e| LakeError::delta(&self.table_name, "read log entry", e))?;
            let Some(bytes) = bytes else {
                // Either the end of the log, or entries that were deleted by log clean-up
                // while this writer was idle (see `log_moved_past`).
                if self.log_moved_past(table, v - 1).await? {
                    return self.reload(table).await;
                }
                if latest.is_some() {
                    return Err(LakeError::delta(
                        &self.table_name,
                        "read log entry",
                        deltalake::DeltaTableError::Generic(format!("log entry {v} vanished")),
                    ));
                }
                break;
            };
            self.replay(v, &bytes, &mut new_files)?;
            v += 1;
        }
        let store = log_store.object_store(None);
        for (scope, files) in new_files {
            let loaded = self.read_keys(store.clone(), files).await?;
            if let Some(sk) = self.scopes.get_mut(&scope) {
                for k in loaded {
                    sk.insert_str(&k);
                }
            }
        }
        self.version = Some(v - 1);
        Ok(())
    }

    /// Whether the log has moved on past `version` without this index seeing it: the newest
    /// checkpoint (`_last_checkpoint`) is beyond `version`.
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
    async fn log_moved_past(&self, table: &DeltaTable, version: i64) -> Result<bool, LakeError> {
        let store = table.log_store().object_store(None);
        let path = deltalake::Path::from("_delta_log/_last_checkpoint");
        let bytes = match store.get(&path).await {
            Ok(r) => r.bytes().await,
            Err(deltalake::ObjectStoreError::NotFound { .. }) => return Ok(false),
            Err(e) => Err(e),
        }
        .map_err(|e| LakeError::delta(&self.table_name, "read _last_checkpoint", e.into()))?;
        let checkpoint = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_i64));
        Ok(checkpoint.is_some_and(|c| c > version))
    }

    /// Start over from the latest checkpoint: a fresh delta-rs state at the latest version,
    /// and no cached keys or `txn`s (they are re-read on demand, from the files and the
    /// snapshot, exactly as on a cold start).
    async fn reload(&mut self, table: &mut DeltaTable) -> Result<(), LakeError> {
        let mut fresh = DeltaTable::new(table.log_store());
        fresh
            .load()
            .await
            .map_err(|e| LakeError::delta(&self.table_name, "reload", e))?;
        let latest = fresh.version().map_or(-1, |v| v as i64);
        tracing::warn!(
            table = %self.table_name,
            had = ?self.version,
            latest,
            "the log moved on past this writer (entries expired while it was idle); reloaded from the latest checkpoint"
        );
        *table = fresh;
        self.scopes.clear();
        self.txns.clear();
        self.table_meta_changed = false;
        self.protocol_check_due = true;
        self.version = Some(latest);
        self.stats.log_reloads += 1;
        Ok(())
    }

    async fn latest_version(&self, table: &DeltaTable) -> Result<i64, LakeError> {
        // List from the newest version known (the index's, else the loaded table's).
        let start = self
            .version
            .map(|v| v.max(0) as u64)
            .or(table.version())
            .unwrap_or(0);
        table
            .log_store()
            .get_latest_version(start)
            .await
            .map(|v| v as i64)
            .map_err(|e| LakeError::delta(&self.table_name, "get latest version", e))
    }

    /// Apply one log entry to the index: data-changing adds of loaded scopes are queued in
    /// `new_files` (their keys are read after the replay), data-changing removes and
    /// metadata changes drop scopes, `txn`s of tracked apps move forward.
    fn replay(
        &mut self,
        v: i64,
        bytes: &[u8],
        new_files: &mut FilesByScope,
    ) -> Result<(), LakeError> {
        self.stats.log_entries_replayed += 1;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                LakeError::delta(
                    &self.table_name,
                    "parse log entry",
                    deltalake::DeltaTableError::Generic(format!("version {v}: {e}")),
                )
            })?;
            if let Some(add) = value.get("add") {
                let add: Add = parse_action(&self.table_name, v, add)?;
                if add.data_change {
                    let scope = self.scope_of_map(&add.partition_values);
                    if self.scopes.contains_key(&scope) {
                        new_files
                            .entry(scope)
                            .or_default()
                            .push((add.path, u64::try_from(add.size).ok()));
                    }
                }
            } else if let Some(remove) = value.get("remove") {
                let remove: Remove = parse_action(&self.table_name, v, remove)?;
                if remove.data_change {
                    let scope = self.scope_of_map(&remove.partition_values.unwrap_or_default());
                    self.scopes.remove(&scope);
                    new_files.remove(&scope);
                }
            } else if let Some(txn) = value.get("txn") {
                let app = txn.get("appId").and_then(serde_json::Value::as_str);
                let version = txn.get("version").and_then(serde_json::Value::as_i64);
                if let (Some(app), Some(version)) = (app, version)
                    && let Some(slot) = self.txns.get_mut(app)
                {
                    *slot = Some(version);
                }
            } else if value.get("metaData").is_some() {
                self.scopes.clear();
                new_files.clear();
                self.table_meta_changed = true;
                self.protocol_check_due = true;
            } else if value.get("protocol").is_some() {
                self.table_meta_changed = true;
                self.protocol_check_due = true;
            }
        }
        Ok(())
    }

    /// Whether a replayed entry changed the table's metadata or protocol since the
    /// [`DeltaTable`] was last brought to [`Self::version`] (a commit must then check the
    /// protocol against the new state).
    pub fn table_meta_changed(&self) -> bool {
        self.table_meta_changed
    }

    /// Whether the table's protocol and metadata must be checked before the next commit.
    pub fn protocol_check_due(&self) -> bool {
        self.protocol_check_due
    }

    /// The check asked for by [`Self::protocol_check_due`] passed.
    pub fn protocol_checked(&mut self) {
        self.protocol_check_due = false;
    }

    /// Bring `table` (its file list, metadata, protocol) to exactly [`Self::version`].
    pub async fn table_at_version(&mut self, table: &mut DeltaTable) -> Result<(), LakeError> {
        let Some(v) = self.version else {
            return Ok(());
        };
        if table.version().map(|t| t as i64) != Some(v) {
            table
                .update_incremental(Some(v as u64))
                .await
                .map_err(|e| LakeError::delta(&self.table_name, "update", e))?;
            self.stats.table_refreshes += 1;
        }
        self.table_meta_changed = false;
        Ok(())
    }

    /// The latest `txn` version of `app_id` at [`Self::version`].
    pub async fn txn_version(
        &mut self,
        table: &mut DeltaTable,
        app_id: &str,
    ) -> Result<Option<i64>, LakeError> {
        if let Some(v) = self.txns.get(app_id) {
            return Ok(*v);
        }
        self.table_at_version(table).await?;
        let snapshot = table
            .snapshot()
            .map_err(|e| LakeError::delta(&self.table_name, "snapshot", e))?;
        let v = snapshot
            .transaction_version(&table.log_store(), app_id)
            .await
            .map_err(|e| LakeError::delta(&self.table_name, "read txn", e))?;
        self.txns.insert(app_id.to_string(), v);
        Ok(v)
    }

    /// Record our own committed `txn`s (the commit at `version + 1` carried them).
    pub fn committed_txns(&mut self, txns: &[deltalake::kernel::Transaction]) {
        for t in txns {
            self.txns.insert(t.app_id.clone(), Some(t.version));
        }
    }

    fn scope_of_map(&self, values: &HashMap<String, Option<String>>) -> Scope {
        if !self.def.key_scoped_to_partition {
            return Vec::new();
        }
        self.def
            .partition_columns
            .iter()
            .map(|c| values.get(*c).cloned().flatten())
            .collect()
    }

    /// Among `candidates` (keys of a batch, grouped by scope), return those already in the
    /// table at [`Self::version`]. Loads missing scopes (evicting others within budget) or
    /// streams them when they cannot fit.
    pub async fn existing(
        &mut self,
        table: &mut DeltaTable,
        candidates: &HashMap<Scope, Vec<&Key>>,
    ) -> Result<HashMap<Scope, HashSet<Key>>, LakeError> {
        self.tick += 1;
        let missing: Vec<Scope> = candidates
            .keys()
            .filter(|s| !self.scopes.contains_key(*s))
            .cloned()
            .collect();
        let mut streamed: FilesByScope = HashMap::new();
        if !missing.is_empty() {
            self.table_at_version(table).await?;
            let (files, records) = self.files_of(table, &missing)?;
            let store = table.log_store().object_store(None);
            for scope in missing {
                let scope_files = files.get(&scope).cloned().unwrap_or_default();
                let estimate = records.get(&scope).copied().unwrap_or(0) * EST_BYTES_PER_KEY;
                if !self.make_room(estimate, candidates) {
                    self.stats.scopes_streamed += 1;
                    streamed.insert(scope, scope_files);
                    continue;
                }
                let keys = self.read_keys(store.clone(), scope_files).await?;
                let mut sk = ScopeKeys::default();
                sk.uuids.reserve(keys.len());
                for k in &keys {
                    sk.insert_str(k);
                }
                self.scopes.insert(scope, sk);
            }
        }
        let mut found: HashMap<Scope, HashSet<Key>> = HashMap::new();
        for (scope, keys) in candidates {
            if let Some(sk) = self.scopes.get_mut(scope) {
                sk.last_used = self.tick;
                for &k in keys {
                    if sk.contains(k) {
                        found.entry(scope.clone()).or_default().insert(k.clone());
                    }
                }
            }
        }
        if !streamed.is_empty() {
            let store = table.log_store().object_store(None);
            for (scope, files) in streamed {
                let wanted: HashSet<&Key> = candidates
                    .get(&scope)
                    .map(|v| v.iter().copied().collect())
                    .unwrap_or_default();
                for (path, size) in files {
                    let mut hits = Vec::new();
                    storage::files::for_each_string(
                        store.clone(),
                        &self.table_name,
                        &path,
                        size,
                        self.def.key_column,
                        |s| {
                            let k = Key::of(s);
                            if wanted.contains(&k) {
                                hits.push(k);
                            }
                        },
                    )
                    .await?;
                    self.stats.files_read += 1;
                    found.entry(scope.clone()).or_default().extend(hits);
                }
            }
        }
        Ok(found)
    }

    /// After a commit at exactly `version + 1`: the committed keys join the index.
    pub fn committed<'k>(
        &mut self,
        version: i64,
        keys: impl IntoIterator<Item = (&'k Scope, &'k Key)>,
    ) {
        debug_assert_eq!(self.version.map(|v| v + 1), Some(version));
        for (scope, key) in keys {
            if let Some(sk) = self.scopes.get_mut(scope) {
                sk.insert(key);
            }
        }
        self.version = Some(version);
    }

    /// Evict least-recently-used scopes not needed by this batch until `need` more bytes fit.
    /// Returns false when even that is not enough.
    fn make_room(&mut self, need: usize, keep: &HashMap<Scope, Vec<&Key>>) -> bool {
        loop {
            let used = self.memory();
            if used + need <= self.budget {
                return true;
            }
            let victim = self
                .scopes
                .iter()
                .filter(|(s, _)| !keep.contains_key(*s))
                .min_by_key(|(_, sk)| sk.last_used)
                .map(|(s, _)| s.clone());
            match victim {
                Some(s) => {
                    self.scopes.remove(&s);
                    self.stats.scopes_evicted += 1;
                }
                None => return false,
            }
        }
    }

    /// The live files of `scopes` at the loaded version, and their row counts (from stats).
    fn files_of(
        &self,
        table: &DeltaTable,
        scopes: &[Scope],
    ) -> Result<(FilesByScope, HashMap<Scope, usize>), LakeError> {
        let snapshot = table
            .snapshot()
            .map_err(|e| LakeError::delta(&self.table_name, "snapshot", e))?;
        let wanted: HashSet<&Scope> = scopes.iter().collect();
        let mut out: FilesByScope = HashMap::new();
        let mut records: HashMap<Scope, usize> = HashMap::new();
        for f in snapshot.log_data().iter() {
            let scope = self.scope_of_map(&f.partition_values_map());
            if wanted.contains(&scope) {
                *records.entry(scope.clone()).or_default() += f.num_records().unwrap_or(0);
                out.entry(scope)
                    .or_default()
                    .push((f.path().into_owned(), u64::try_from(f.size()).ok()));
            }
        }
        Ok((out, records))
    }

    async fn read_keys(
        &mut self,
        store: Arc<dyn ObjectStore>,
        files: Vec<(String, Option<u64>)>,
    ) -> Result<Vec<String>, LakeError> {
        let table = self.table_name.clone();
        let column = self.def.key_column;
        let n = files.len();
        let chunks: Vec<Vec<String>> = futures::stream::iter(files)
            .map(|(path, size)| {
                let store = store.clone();
                let table = table.clone();
                async move {
                    let mut keys = Vec::new();
                    storage::files::for_each_string(store, &table, &path, size, column, |s| {
                        keys.push(s.to_string())
                    })
                    .await?;
                    Ok::<_, LakeError>(keys)
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        self.stats.files_read += n as u64;
        let keys: Vec<String> = chunks.into_iter().flatten().collect();
        self.stats.keys_loaded += keys.len() as u64;
        Ok(keys)
    }
}

fn parse_action<T: serde::de::DeserializeOwned>(
    table: &str,
    version: i64,
    v: &serde_json::Value,
) -> Result<T, LakeError> {
    serde_json::from_value(v.clone()).map_err(|e| {
        LakeError::delta(
            table,
            "parse log action",
            deltalake::DeltaTableError::Generic(format!("version {version}: {e}")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_uuid_only() {
        let u = "0190a3f2-7b1c-7cde-8f00-123456789abc";
        assert!(matches!(Key::of(u), Key::Uuid(_)));
        assert!(matches!(Key::of(&u.to_uppercase()), Key::Text(_)));
        assert!(matches!(
            Key::of("0190a3f27b1c7cde8f00123456789abc"),
            Key::Text(_)
        ));
        assert!(matches!(Key::of("not-a-uuid"), Key::Text(_)));
        assert_ne!(Key::of(u), Key::of(&u.to_uppercase()));
    }

    proptest! {
        /// The u128 form is a bijection with the canonical text: equal keys iff equal text.
        #[test]
        fn key_equality_is_text_equality(a in any::<u128>(), b in any::<u128>(), upper in any::<bool>()) {
            let ta = uuid::Uuid::from_u128(a).hyphenated().to_string();
            let tb = uuid::Uuid::from_u128(b).hyphenated().to_string();
            let tb = if upper { tb.to_uppercase() } else { tb };
            prop_assert_eq!(Key::of(&ta) == Key::of(&tb), ta == tb);
            prop_assert_eq!(Key::of(&ta), Key::Uuid(a));
        }

        #[test]
        fn arbitrary_text_keys(a in ".{1,40}", b in ".{1,40}") {
            prop_assert_eq!(Key::of(&a) == Key::of(&b), a == b);
        }
    }
}
