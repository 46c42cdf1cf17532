//! Vacuum: reclaim the storage of data files that no version inside the retention window can
//! read, and of files that crashed writers uploaded but never committed.
//!
//! # What may be deleted
//!
//! With retention `R` and `cutoff = now - R`, a data file is deleted iff all of:
//!
//! 1. it is not live in the latest snapshot;
//! 2. no commit at or after `cutoff` adds or removes it — a file removed by such a commit is
//!    still part of the version just before that commit, which time travel can read;
//! 3. its storage `last_modified` is before `cutoff` — a live writer uploads a file a few
//!    seconds before committing it, so an uploaded-but-uncommitted file is never mistaken for
//!    a crash orphan (writers must commit within `R` of uploading; `R` is days).
//!
//! # Why not the snapshot's tombstones
//!
//! delta-rs (like Spark) drops `remove` tombstones older than
//! `delta.deletedFileRetentionDuration` when it writes a checkpoint. The writer checkpoints
//! every 100 commits and `compactor run` checkpoints right before vacuuming, so by the time a
//! replaced file is old enough to delete nothing in the snapshot points at it any more, and a
//! tombstone-driven ("lite") vacuum never deletes it. So this module decides from what
//! storage *has* (a listing of the table) against what the log *needs*:
//!
//! * the latest snapshot's live files (rule 1);
//! * the `add`/`remove`/`cdc` paths of every commit JSON from the latest version back to the
//!   newest commit older than `cutoff` (rule 2). Versions are read newest first and the scan
//!   stops at that boundary commit `b`: version `b` is the version "as of" the cutoff, the
//!   oldest one time travel inside the window can ask for, and every file it contains is
//!   either live or removed by a commit after `b` — all of which were read. Its own removes
//!   (and everything before) only matter to versions older than the window;
//! * belt and braces: snapshot tombstones whose `deletionTimestamp` is inside the window.
//!
//! # Versions whose log JSON has been expired
//!
//! A version `v` is readable iff some checkpoint `c <= v` exists and every JSON `c+1..=v`
//! does. Log clean-up deletes a prefix of the log, so if the scan meets a missing JSON `k`
//! before reaching the boundary, versions `>= k` stay covered by the commits already read,
//! and the only readable versions below `k` are those with a checkpoint of their own. Their
//! files are read from those checkpoints and kept too (conservatively: whatever their age).
//!
//! # Safety rails
//!
//! * Only data files are candidates: names ending in `.parquet`, not under `_delta_log/` and
//!   not in any hidden (`_`/`.`-prefixed) folder other than a `partition=value` folder.
//!   Nothing else in the table folder is ever touched.
//! * Paths are compared after percent-decoding to a fixed point on both sides (log paths are
//!   URL-encoded, partition folders are percent-encoded once more, and object stores encode
//!   names differently), so an encoding mismatch can only make vacuum keep more.
//! * Every live file must be found in the listing; if one is not, path matching cannot be
//!   trusted and nothing is deleted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use deltalake::kernel::transaction::{
    CommitBuilder, CommitProperties, FinalizedCommit, TableReference,
};
use deltalake::logstore::LogStoreRef;
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError, ObjectStore, ObjectStoreError, Path};
use futures::{StreamExt, TryStreamExt};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{Value, json};
use storage::log::{LogEntry, read_entry};

use crate::Compactor;
use crate::error::{Error, ErrorKind, Operation, StepExt as _};

/// Retention when none is given: a week of time travel for audits. It is the compactor's,
/// not the table's `delta.deletedFileRetentionDuration` (1 hour on tables this project
/// creates): that property only bounds how long checkpoints carry tombstones — which this
/// vacuum never reads — and is the floor below which a retention needs `force`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Commit JSONs fetched concurrently while scanning the log backwards.
const LOG_READ_CONCURRENCY: usize = 32;

/// Refusals that are the point of vacuum's safety rails, not I/O failures.
#[derive(Debug, thiserror::Error)]
pub enum VacuumError {
    #[error(
        "retention {given_hours:.3}h is shorter than the table's delta.deletedFileRetentionDuration \
         ({table_hours:.3}h): versions inside that window would lose files; pass --force to override"
    )]
    RetentionTooShort { given_hours: f64, table_hours: f64 },
    #[error(
        "live file `{path}` (and {more} more) is not in the storage listing: path matching \
         cannot be trusted, nothing deleted"
    )]
    LiveFileNotListed { path: String, more: usize },
}

/// How [`Compactor::vacuum`] decides and what it does with the decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VacuumOptions {
    /// Keep every file a version committed within this window can read, and every
    /// unreferenced file modified within it (`None`: [`DEFAULT_RETENTION`], 7 days, or the
    /// table's `delta.deletedFileRetentionDuration` if that is longer).
    pub retention: Option<Duration>,
    /// Allow a retention shorter than the table's time-travel window.
    pub force: bool,
    /// Decide, but delete nothing and commit nothing.
    pub dry_run: bool,
}

/// What [`Compactor::vacuum`] did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumSummary {
    /// Always `"vacuum"`: every summary names the command that printed it.
    pub command: &'static str,
    /// Nothing was deleted or committed; the counts say what would have been.
    pub dry_run: bool,
    /// Always `retention-window` (the `--full` flag is accepted as an alias).
    pub mode: &'static str,
    /// The retention applied (7 days, or the table's if longer, when `--retention` is not
    /// given).
    pub retention_hours: Option<f64>,
    /// Files deleted (or, with `--dry-run`, that would be).
    pub files_deleted: u64,
    /// Bytes those files occupied.
    pub bytes_deleted: u64,
    /// Of those, files no commit inside the window ever referenced (crashed writers' orphans,
    /// files replaced long ago).
    pub unreferenced_deleted: u64,
    /// Data files found in storage.
    pub files_scanned: u64,
    /// Not live, but kept because a version inside the window can read them.
    pub files_kept_for_time_travel: u64,
    /// Unreferenced, but modified within the retention (perhaps a live writer's upload).
    pub files_kept_recent: u64,
    /// Bytes of the data files the latest version reads, of those kept for time travel and
    /// of those kept as recent: with `bytes_deleted`, every data byte listed. What the
    /// retention window protects is the sum of the three (issue 14's storage goal).
    pub bytes_live: u64,
    pub bytes_kept_for_time_travel: u64,
    pub bytes_kept_recent: u64,
    /// The oldest version time travel can still read after this vacuum.
    pub oldest_version_kept: i64,
    /// Commits made (the `VACUUM START`/`VACUUM END` pair; none on a dry run or when
    /// nothing was deleted).
    pub versions_committed: u64,
    /// The table version after the vacuum.
    pub table_version: i64,
    /// With `dry_run`: the storage locations that would be deleted, sorted. Not part of the
    /// JSON summary (the CLI prints them one per line before it).
    #[serde(skip)]
    pub would_delete: Vec<String>,
}

/// One object in the table's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    /// Object-store location, relative to the table root, as the store spells it.
    location: String,
    /// Bytes.
    size: u64,
    /// Storage `last_modified` (Unix ms): when it was uploaded.
    last_modified_ms: i64,
}

/// Percent-decode until nothing changes. Log paths are URL-encoded, partition folder names
/// are percent-encoded as well, and stores differ in how they present names; comparing
/// fully decoded forms makes every representation of one file agree. Two different files
/// can only collide into keeping more, never deleting more.
fn canonical(path: &str) -> String {
    let mut cur = path.to_string();
    for _ in 0..8 {
        let next = percent_decode_str(&cur).decode_utf8_lossy().into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur.trim_start_matches('/').to_string()
}

/// The canonical table-relative key of a path from the log, or `None` for an absolute URI
/// outside the table (which vacuum can never list, so never delete).
fn relative_key(log_path: &str, root_canonical: &str) -> Option<String> {
    let c = canonical(log_path);
    match c.split_once("://") {
        None => Some(c),
        Some((_, rest)) => rest
            .trim_start_matches('/')
            .strip_prefix(root_canonical)
            .map(|r| r.trim_start_matches('/').to_string()),
    }
}

/// The table root without scheme, canonical, with a trailing `/` (for [`relative_key`]).
fn root_canonical(url: &str) -> String {
    let s = url;
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let mut c = canonical(rest);
    if !c.ends_with('/') {
        c.push('/');
    }
    c
}

/// Is this listed object a data file vacuum may consider? Parquet files only, outside
/// `_delta_log/` and hidden folders; `col=value` folders are data even if `col` starts
/// with `_`.
fn is_data_file(location: &str, partition_columns: &[String]) -> bool {
    let mut parts: Vec<&str> = location.split('/').filter(|p| !p.is_empty()).collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    if name.starts_with('_') || name.starts_with('.') || !name.ends_with(".parquet") {
        return false;
    }
    parts.iter().all(|dir| {
        let hidden = dir.starts_with('_') || dir.starts_with('.');
        !hidden
            || partition_columns.iter().any(|c| {
                dir.strip_prefix(c.as_str())
                    .is_some_and(|rest| rest.starts_with('='))
            })
    })
}

/// Kind of a `_delta_log/` entry: `(version, is_checkpoint)` for commit JSONs and
/// checkpoint parts; `None` for everything else (`_last_checkpoint`, staged commits, CRCs).
fn log_entry(location: &str) -> Option<(u64, bool)> {
    let name = location.strip_prefix("_delta_log/")?;
    if name.contains('/') || name.len() < 21 || !name.is_char_boundary(20) {
        return None;
    }
    let (digits, rest) = name.split_at(20);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version = digits.parse().ok()?;
    if rest == ".json" {
        Some((version, false))
    } else if rest.starts_with(".checkpoint.")
        && (rest.ends_with(".parquet") || rest.ends_with(".json"))
    {
        Some((version, true))
    } else {
        None
    }
}

/// What the log says must stay, built from the scan described in the module docs.
#[derive(Debug, Default)]
struct Protected {
    /// Canonical relative keys of the latest snapshot's live files.
    live: HashSet<String>,
    /// Canonical relative keys that a version inside the window can read.
    window: HashSet<String>,
}

/// The decision, given the listing of data files.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// The files to delete, sorted by location.
    delete: Vec<Listed>,
    /// Files in `delete`, none of which a version inside the window references (rule 2).
    unreferenced: u64,
    /// Not live, kept because a version inside the window can read them.
    kept_for_time_travel: u64,
    /// Unreferenced, kept because modified within the retention.
    kept_recent: u64,
    /// Bytes of the live files, and of the two kinds kept above.
    live_bytes: u64,
    kept_for_time_travel_bytes: u64,
    kept_recent_bytes: u64,
}

/// Rules 1-3 of the module docs over `data` (already filtered by [`is_data_file`]).
/// `listed` holds the canonical keys of every object listed outside `_delta_log/` (data
/// file or not): a live file missing from it means path matching cannot be trusted, and
/// nothing is deleted (see "Safety rails").
fn plan(
    data: &[Listed],
    listed: &HashSet<String>,
    protected: &Protected,
    cutoff_ms: i64,
) -> Result<Plan, VacuumError> {
    let mut missing: BTreeSet<&String> = protected
        .live
        .iter()
        .filter(|k| !listed.contains(*k))
        .collect();
    if let Some(first) = missing.pop_first() {
        return Err(VacuumError::LiveFileNotListed {
            path: first.clone(),
            more: missing.len(),
        });
    }
    let mut out = Plan::default();
    for f in data {
        let key = canonical(&f.location);
        if protected.live.contains(&key) {
            out.live_bytes += f.size;
            continue;
        }
        let referenced = protected.window.contains(&key);
        if referenced {
            out.kept_for_time_travel += 1;
            out.kept_for_time_travel_bytes += f.size;
        } else if f.last_modified_ms >= cutoff_ms {
            out.kept_recent += 1;
            out.kept_recent_bytes += f.size;
        } else {
            out.unreferenced += 1;
            out.delete.push(f.clone());
        }
    }
    out.delete.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// The retention applied and the table's own (both are recorded in the `VACUUM START`
/// commit).
struct Retention {
    /// The retention this vacuum used (`--retention`, else the default).
    applied: Duration,
    /// The table's own `deletedFileRetentionDuration`.
    table: Duration,
}

impl Retention {
    /// The requested retention (default: [`DEFAULT_RETENTION`], or the table's if longer),
    /// refused when shorter than the table's unless forced.
    fn resolve(snapshot: &DeltaTableState, options: &VacuumOptions) -> Result<Self, VacuumError> {
        let table = snapshot.table_config().deleted_file_retention_duration();
        let applied = options.retention.unwrap_or(DEFAULT_RETENTION.max(table));
        if applied < table && !options.force {
            return Err(VacuumError::RetentionTooShort {
                given_hours: hours(applied),
                table_hours: hours(table),
            });
        }
        Ok(Retention { applied, table })
    }

    /// Start of the window: commits and files from this instant on are protected.
    fn cutoff_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(millis(self.applied))
    }
}

fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / 3600.0
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Compactor {
    /// Delete the data files no version inside the retention window can read (see the
    /// module docs for the rules), between a `VACUUM START` and a `VACUUM END` commit.
    pub async fn vacuum(&self, options: &VacuumOptions) -> Result<VacuumSummary, Error> {
        self.vacuum_table(options)
            .await
            .map_err(self.failed(Operation::Vacuum))
    }

    async fn vacuum_table(&self, options: &VacuumOptions) -> Result<VacuumSummary, ErrorKind> {
        let table = self.open_for_maintenance().await?;
        let snapshot = table.snapshot().step("reading the table snapshot")?;
        let latest = snapshot.version();
        let retention = Retention::resolve(snapshot, options)?;
        let cutoff_ms = retention.cutoff_ms(chrono::Utc::now().timestamp_millis());
        let root = root_canonical(table.table_url().as_str());
        // One listing of the whole table: log entries for the scan, data files for the plan.
        // Listed after the snapshot was loaded, so every JSON up to `latest` is in it.
        let store = table.log_store().object_store(None);
        let listing = list_table(store.as_ref(), snapshot.metadata().partition_columns()).await?;
        let (protected, oldest) = protect(&table, &listing, &root, cutoff_ms).await?;
        let plan = plan(&listing.data, &listing.keys, &protected, cutoff_ms)?;
        let mut summary = VacuumSummary {
            command: "vacuum",
            dry_run: options.dry_run,
            mode: "retention-window",
            retention_hours: Some(hours(retention.applied)),
            files_scanned: listing.data.len() as u64,
            files_kept_for_time_travel: plan.kept_for_time_travel,
            files_kept_recent: plan.kept_recent,
            bytes_live: plan.live_bytes,
            bytes_kept_for_time_travel: plan.kept_for_time_travel_bytes,
            bytes_kept_recent: plan.kept_recent_bytes,
            unreferenced_deleted: plan.unreferenced,
            oldest_version_kept: oldest,
            table_version: latest as i64,
            ..Default::default()
        };
        if options.dry_run {
            summary.files_deleted = plan.delete.len() as u64;
            summary.bytes_deleted = plan.delete.iter().map(|f| f.size).sum();
            summary.would_delete = plan.delete.into_iter().map(|f| f.location).collect();
            return Ok(summary);
        }
        if plan.delete.is_empty() {
            return Ok(summary);
        }
        let (deleted, bytes, version) =
            delete_and_record(&table, &plan, &retention, options.force).await?;
        summary.files_deleted = deleted;
        summary.bytes_deleted = bytes;
        summary.versions_committed = version.saturating_sub(latest);
        summary.table_version = version as i64;
        Ok(summary)
    }
}

/// The table folder, listed once.
struct TableListing {
    /// Data files (see [`is_data_file`]): vacuum's candidates.
    data: Vec<Listed>,
    /// Canonical keys of every object outside `_delta_log/` (data file or not).
    keys: HashSet<String>,
    /// Commit JSON `last_modified` (Unix ms) by version.
    json_mtime: HashMap<u64, i64>,
    /// Versions that have a checkpoint.
    checkpoints: BTreeSet<u64>,
}

/// List the table folder once: data files, commit JSON mtimes, checkpoint versions.
async fn list_table(
    store: &dyn ObjectStore,
    partition_columns: &[String],
) -> Result<TableListing, ErrorKind> {
    let mut out = TableListing {
        data: Vec::new(),
        keys: HashSet::new(),
        json_mtime: HashMap::new(),
        checkpoints: BTreeSet::new(),
    };
    let mut listing = store.list(None);
    while let Some(meta) = listing.try_next().await.step("listing the table")? {
        let location = meta.location.as_ref();
        let modified = meta.last_modified.timestamp_millis();
        if location.starts_with("_delta_log/") {
            match log_entry(location) {
                Some((v, false)) => {
                    out.json_mtime.insert(v, modified);
                }
                Some((v, true)) => {
                    out.checkpoints.insert(v);
                }
                None => {}
            }
        } else {
            out.keys.insert(canonical(location));
            if is_data_file(location, partition_columns) {
                out.data.push(Listed {
                    location: location.to_string(),
                    size: meta.size,
                    last_modified_ms: modified,
                });
            }
        }
    }
    Ok(out)
}

/// What the log says must stay (rules 1 and 2 of the module docs, plus the snapshot's
/// tombstones inside the window), and the oldest version time travel can read afterwards
/// (informational: it is reported, never used to decide a deletion).
async fn protect(
    table: &DeltaTable,
    listing: &TableListing,
    root: &str,
    cutoff_ms: i64,
) -> Result<(Protected, i64), ErrorKind> {
    let snapshot = table.snapshot().step("reading the table snapshot")?;
    let latest = snapshot.version();
    let mut protected = Protected {
        live: snapshot
            .log_data()
            .iter()
            .filter_map(|f| relative_key(&f.path(), root))
            .collect(),
        window: HashSet::new(),
    };
    let window = &mut protected.window;
    let oldest = match scan_window(table, latest, cutoff_ms, &listing.json_mtime, root, window)
        .await?
    {
        ScanEnd::Start => 0,
        ScanEnd::Boundary(v) => v as i64,
        ScanEnd::Gap(k) => {
            keep_checkpoint_versions(table, k, latest, &listing.checkpoints, root, window).await?
        }
    };
    window_tombstones(table, snapshot, cutoff_ms, root, window).await?;
    Ok((protected, oldest))
}

/// Where the newest-first scan of commit JSONs stopped.
enum ScanEnd {
    /// At version 0: every commit is inside the window.
    Start,
    /// At the boundary commit: the version "as of" the cutoff, the oldest one time travel
    /// inside the window can ask for.
    Boundary(u64),
    /// At the first version (newest first) whose JSON has been expired.
    Gap(u64),
}

/// Read commit JSONs newest first into `window` (the files versions inside the window can
/// read) until the boundary commit (see the module docs) or a gap.
async fn scan_window(
    table: &DeltaTable,
    latest: u64,
    cutoff_ms: i64,
    json_mtime: &HashMap<u64, i64>,
    root: &str,
    window: &mut HashSet<String>,
) -> Result<ScanEnd, ErrorKind> {
    let log_store = table.log_store();
    let mut reads = futures::stream::iter((0..=latest).rev())
        .map(|v| {
            let log_store = log_store.clone();
            async move { (v, read_entry(log_store.as_ref(), v as i64).await) }
        })
        .buffered(LOG_READ_CONCURRENCY);
    while let Some((v, read)) = reads.next().await {
        let Some(entry) = read? else {
            return Ok(ScanEnd::Gap(v));
        };
        let time = commit_time_ms(&entry, json_mtime.get(&v).copied());
        let inside = time.is_none_or(|ts| ts >= cutoff_ms);
        window
            .extend(window_paths(&entry, inside, cutoff_ms).filter_map(|p| relative_key(p, root)));
        if !inside {
            return Ok(ScanEnd::Boundary(v));
        }
    }
    Ok(ScanEnd::Start)
}

/// A commit's time for the window test: the latest of what it recorded (`commitInfo`
/// `timestamp` / `inCommitTimestamp`) and its JSON's `last_modified`. The latest, because
/// a later time can only place the commit inside the window and so keep more; `None`
/// (nothing known) counts as inside for the same reason.
fn commit_time_ms(entry: &LogEntry, json_mtime_ms: Option<i64>) -> Option<i64> {
    entry.timestamp_ms().max(json_mtime_ms)
}

/// The paths (raw, as in the log) of one commit that versions inside the window can read.
/// A commit inside the window: everything it added (data and CDC files) or removed — a
/// removed file is still in the version just before. The boundary commit: only removes
/// stamped inside the window; its other removes matter only to versions older than it.
fn window_paths(entry: &LogEntry, inside: bool, cutoff_ms: i64) -> impl Iterator<Item = &str> {
    let added = entry.adds.iter().chain(&entry.cdc).filter(move |_| inside);
    let removed = entry
        .removes
        .iter()
        .filter(move |r| inside || r.deletion_timestamp.is_some_and(|ts| ts >= cutoff_ms));
    added.chain(removed).map(|f| f.path.as_str())
}

/// JSON `gap` is gone: versions from it on are readable from the first checkpoint at or
/// after it, and below it only versions with a checkpoint of their own are; keep their files
/// (whatever their age). Returns the oldest readable version.
async fn keep_checkpoint_versions(
    table: &DeltaTable,
    gap: u64,
    latest: u64,
    checkpoints: &BTreeSet<u64>,
    root: &str,
    window: &mut HashSet<String>,
) -> Result<i64, ErrorKind> {
    let mut oldest = checkpoints
        .range(gap..)
        .next()
        .map_or(latest as i64, |&c| c as i64);
    for &c in checkpoints.range(..gap) {
        let mut at = table.clone();
        at.load_version(c).await.step(format!(
            "reading checkpoint {c} (a version time travel can still read)"
        ))?;
        let snap = at.snapshot().step("reading a checkpoint's snapshot")?;
        window.extend(
            snap.log_data()
                .iter()
                .filter_map(|f| relative_key(&f.path(), root)),
        );
        oldest = oldest.min(c as i64);
    }
    Ok(oldest)
}

/// Belt and braces: tombstones the snapshot still carries that are inside the window. (A
/// tombstone without a timestamp is left to the commit scan: it would pin its file forever
/// otherwise.)
async fn window_tombstones(
    table: &DeltaTable,
    snapshot: &DeltaTableState,
    cutoff_ms: i64,
    root: &str,
    window: &mut HashSet<String>,
) -> Result<(), ErrorKind> {
    let log_store = table.log_store();
    let mut tombstones = snapshot.all_tombstones(log_store.as_ref());
    while let Some(t) = tombstones.try_next().await.step("reading tombstones")? {
        if t.deletion_timestamp().is_some_and(|ts| ts >= cutoff_ms)
            && let Some(k) = relative_key(&t.path(), root)
        {
            window.insert(k);
        }
    }
    Ok(())
}

/// Delete the planned files between a `VACUUM START` and a `VACUUM END` commit (as Spark and
/// delta-rs do, so `compactor history` shows every vacuum). Returns files and bytes actually
/// deleted (a file already gone is not counted) and the table version after.
async fn delete_and_record(
    table: &DeltaTable,
    plan: &Plan,
    retention: &Retention,
    force: bool,
) -> Result<(u64, u64, u64), ErrorKind> {
    let log_store = table.log_store();
    let snapshot = table.snapshot().step("reading the table snapshot")?;
    let start = commit_vacuum(
        snapshot,
        log_store.clone(),
        DeltaOperation::VacuumStart {
            retention_check_enabled: !force,
            specified_retention_millis: Some(millis(retention.applied)),
            default_retention_millis: millis(retention.table),
        },
        json!({
            "numFilesToDelete": plan.delete.len(),
            "sizeOfDataToDelete": plan.delete.iter().map(|f| f.size).sum::<u64>(),
        }),
    )
    .await
    .step("committing VACUUM START")?;
    let (files, bytes) = delete_files(log_store.object_store(None).as_ref(), &plan.delete).await?;
    let end = commit_vacuum(
        &start.snapshot,
        log_store,
        DeltaOperation::VacuumEnd {
            status: "COMPLETED".to_string(),
        },
        json!({
            "numDeletedFiles": files,
            "sizeOfDeletedData": bytes,
            "numVacuumedDirectories": 0,
        }),
    )
    .await
    .step("committing VACUUM END")?;
    Ok((files, bytes, end.version))
}

/// Commit a `VACUUM START`/`END` with our version and the operation's metrics.
async fn commit_vacuum(
    snapshot: &dyn TableReference,
    log_store: LogStoreRef,
    operation: DeltaOperation,
    metrics: Value,
) -> Result<FinalizedCommit, DeltaTableError> {
    let properties = CommitProperties::default().with_metadata([
        (
            "compactor".to_string(),
            json!({"version": env!("CARGO_PKG_VERSION")}),
        ),
        ("operationMetrics".to_string(), metrics),
    ]);
    CommitBuilder::from(properties)
        .build(Some(snapshot), log_store, operation)
        .await
}

/// Delete `files`; returns files and bytes actually deleted (one already gone is logged and
/// not counted: another vacuum got there first).
async fn delete_files(store: &dyn ObjectStore, files: &[Listed]) -> Result<(u64, u64), ErrorKind> {
    let sizes: HashMap<&str, u64> = files
        .iter()
        .map(|f| (f.location.as_str(), f.size))
        .collect();
    let locations = futures::stream::iter(
        files
            .iter()
            .map(|f| Path::parse(&f.location).map_err(ObjectStoreError::from))
            .collect::<Vec<_>>(),
    )
    .boxed();
    let mut results = store.delete_stream(locations);
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(r) = results.next().await {
        match r {
            Ok(p) => {
                count += 1;
                bytes += sizes.get(p.as_ref()).copied().unwrap_or(0);
            }
            Err(ObjectStoreError::NotFound { path, .. }) => {
                tracing::warn!(%path, "already deleted by someone else");
            }
            Err(e) => return Err(e).step("deleting a data file"),
        }
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(location: &str, size: u64, last_modified_ms: i64) -> Listed {
        Listed {
            location: location.into(),
            size,
            last_modified_ms,
        }
    }

    #[test]
    fn canonical_forms_agree() {
        // Log path (URL-encoded), S3 key (percent-encoded partition folder), and a local
        // listing (object_store encodes `%` once more) of the same file.
        let log = "event_type=caf%25C3%25A9%2520bar/part-1.parquet";
        let s3 = "event_type=caf%C3%A9%20bar/part-1.parquet";
        let local = "event_type=caf%25C3%25A9%2520bar/part-1.parquet";
        assert_eq!(canonical(log), "event_type=café bar/part-1.parquet");
        assert_eq!(canonical(s3), canonical(log));
        assert_eq!(canonical(local), canonical(log));
        assert_eq!(
            relative_key("s3://bucket/events/a=1/x.parquet", "bucket/events/").as_deref(),
            Some("a=1/x.parquet")
        );
        assert_eq!(relative_key("s3://other/x.parquet", "bucket/events/"), None);
    }

    #[test]
    fn only_data_files_are_candidates() {
        let parts = vec!["event_type".to_string(), "created_date".to_string()];
        assert!(is_data_file(
            "event_type=a/created_date=2024-01-01/part-1.parquet",
            &parts
        ));
        assert!(is_data_file("part-1.parquet", &parts));
        assert!(!is_data_file(
            "_delta_log/00000000000000000001.checkpoint.parquet",
            &parts
        ));
        assert!(!is_data_file("_change_data/x.parquet", &parts));
        assert!(!is_data_file(".hidden/x.parquet", &parts));
        assert!(!is_data_file("event_type=a/_tmp/x.parquet", &parts));
        assert!(!is_data_file("event_type=a/.x.parquet.crc", &parts));
        assert!(!is_data_file("event_type=a/notes.txt", &parts));
        let underscore = vec!["_p".to_string()];
        assert!(is_data_file("_p=1/x.parquet", &underscore));
    }

    #[test]
    fn log_entries() {
        assert_eq!(
            log_entry("_delta_log/00000000000000000007.json"),
            Some((7, false))
        );
        assert_eq!(
            log_entry("_delta_log/00000000000000000020.checkpoint.parquet"),
            Some((20, true))
        );
        assert_eq!(
            log_entry("_delta_log/00000000000000000020.checkpoint.0000000001.0000000002.parquet"),
            Some((20, true))
        );
        assert_eq!(log_entry("_delta_log/_last_checkpoint"), None);
        assert_eq!(log_entry("_delta_log/00000000000000000007.crc"), None);
        assert_eq!(log_entry("_delta_log/_commit_abc.json.tmp"), None);
        assert_eq!(log_entry("x/00000000000000000007.json"), None);
    }

    #[test]
    fn commit_time_and_window_paths() {
        let body = br#"{"commitInfo":{"timestamp":1000,"operation":"OPTIMIZE"}}
{"add":{"path":"a=1/new.parquet","partitionValues":{"a":"1"},"size":1,"dataChange":false}}
{"cdc":{"path":"_change_data/c.parquet","partitionValues":{},"size":1,"dataChange":false}}
{"remove":{"path":"a=1/old.parquet","deletionTimestamp":990,"dataChange":false}}
{"remove":{"path":"a=1/recent.parquet","deletionTimestamp":1200,"dataChange":false}}
"#;
        let e = LogEntry::parse(3, body).expect("parses");
        // The later of the recorded time and the JSON's mtime.
        assert_eq!(commit_time_ms(&e, Some(1500)), Some(1500));
        assert_eq!(commit_time_ms(&e, Some(500)), Some(1000));
        assert_eq!(commit_time_ms(&e, None), Some(1000));
        let bare = LogEntry::parse(
            4,
            br#"{"add":{"path":"x.parquet","partitionValues":{},"size":1,"dataChange":true}}"#,
        )
        .expect("parses");
        assert_eq!(commit_time_ms(&bare, Some(7)), Some(7));
        assert_eq!(commit_time_ms(&bare, None), None);

        let inside: Vec<_> = window_paths(&e, true, 1100).collect();
        assert_eq!(
            inside,
            [
                "a=1/new.parquet",
                "_change_data/c.parquet",
                "a=1/old.parquet",
                "a=1/recent.parquet"
            ]
        );
        let boundary: Vec<_> = window_paths(&e, false, 1100).collect();
        assert_eq!(boundary, ["a=1/recent.parquet"]);
    }

    #[test]
    fn plan_applies_the_three_rules() {
        let cutoff = 10_000;
        let data = vec![
            listed("a=1/live.parquet", 10, 1),
            listed("a=1/removed-in-window.parquet", 20, 1),
            listed("a=1/removed-long-ago.parquet", 30, 1),
            listed("a=1/orphan-old.parquet", 40, 2),
            listed("a=1/orphan-young.parquet", 50, cutoff),
        ];
        let protected = Protected {
            live: ["a=1/live.parquet".to_string()].into(),
            window: ["a=1/removed-in-window.parquet".to_string()].into(),
        };
        let listed: HashSet<String> = data.iter().map(|f| canonical(&f.location)).collect();
        let p = plan(&data, &listed, &protected, cutoff).unwrap();
        let deleted: Vec<_> = p.delete.iter().map(|f| f.location.as_str()).collect();
        assert_eq!(
            deleted,
            vec!["a=1/orphan-old.parquet", "a=1/removed-long-ago.parquet"]
        );
        assert_eq!(
            (p.kept_for_time_travel, p.kept_recent, p.unreferenced),
            (1, 1, 2)
        );
        // Every listed byte is live, kept or deleted.
        assert_eq!(
            (
                p.live_bytes,
                p.kept_for_time_travel_bytes,
                p.kept_recent_bytes
            ),
            (10, 20, 50)
        );
    }

    #[test]
    fn plan_refuses_when_a_live_file_is_not_listed() {
        let data = vec![listed("a=1/x.parquet", 1, 0)];
        let keys: HashSet<String> =
            ["a=1/x.parquet".to_string(), "a=1/live.c000".to_string()].into();
        let protected = Protected {
            live: ["a=1/missing.parquet".to_string()].into(),
            window: HashSet::new(),
        };
        assert!(matches!(
            plan(&data, &keys, &protected, 100),
            Err(VacuumError::LiveFileNotListed { .. })
        ));
        // A live file that is not a vacuum candidate (no `.parquet`) only has to exist.
        let protected = Protected {
            live: ["a=1/live.c000".to_string()].into(),
            window: HashSet::new(),
        };
        let p = plan(&data, &keys, &protected, 100).unwrap();
        assert_eq!(p.delete, vec![listed("a=1/x.parquet", 1, 0)]);
    }
}
