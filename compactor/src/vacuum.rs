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
//! every 20 commits and `compactor run` checkpoints right before vacuuming, so by the time a
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

use anyhow::{Context, Result};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::{DeltaTable, ObjectStore, ObjectStoreError, Path};
use futures::{StreamExt, TryStreamExt};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{TableArgs, VacuumArgs};

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
    #[error("commit {version}: malformed JSON action: {source}")]
    MalformedCommit {
        version: u64,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumSummary {
    pub command: &'static str,
    pub dry_run: bool,
    /// Always `retention-window` (the `--full` flag is accepted as an alias).
    pub mode: &'static str,
    /// The retention applied (the table's when `--retention` is not given).
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
    /// The oldest version time travel can still read after this vacuum.
    pub oldest_version_kept: i64,
    pub versions_committed: u64,
    pub table_version: i64,
}

/// One object in the table's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub location: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// The `add`/`remove`/`cdc` actions of one commit JSON that matter to vacuum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitFiles {
    /// Commit time: the latest of `commitInfo.timestamp`, `inCommitTimestamp` and the JSON
    /// object's `last_modified` (`None` when none is known: treated as inside the window).
    pub timestamp_ms: Option<i64>,
    /// Paths added (and CDC files written), raw as in the log.
    pub added: Vec<String>,
    /// Paths removed, raw as in the log, with their `deletionTimestamp`.
    pub removed: Vec<(String, Option<i64>)>,
}

/// Percent-decode until nothing changes. Log paths are URL-encoded, partition folder names
/// are percent-encoded as well, and stores differ in how they present names; comparing
/// fully decoded forms makes every representation of one file agree. Two different files
/// can only collide into keeping more, never deleting more.
pub fn canonical(path: &str) -> String {
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
pub fn relative_key(log_path: &str, root_canonical: &str) -> Option<String> {
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
pub fn is_data_file(location: &str, partition_columns: &[String]) -> bool {
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
pub fn log_entry(location: &str) -> Option<(u64, bool)> {
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

/// Parse one commit JSON.
pub fn parse_commit(
    version: u64,
    bytes: &[u8],
    json_mtime_ms: Option<i64>,
) -> Result<CommitFiles, VacuumError> {
    let mut out = CommitFiles {
        timestamp_ms: json_mtime_ms,
        ..Default::default()
    };
    let mut bump = |t: Option<i64>| {
        if let Some(t) = t {
            out.timestamp_ms = Some(out.timestamp_ms.map_or(t, |cur| cur.max(t)));
        }
    };
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let action: Value = serde_json::from_slice(line)
            .map_err(|source| VacuumError::MalformedCommit { version, source })?;
        let path_of = |a: &Value| a.get("path").and_then(Value::as_str).map(str::to_string);
        if let Some(ci) = action.get("commitInfo") {
            bump(ci.get("timestamp").and_then(Value::as_i64));
            bump(ci.get("inCommitTimestamp").and_then(Value::as_i64));
        } else if let Some(p) = action.get("add").and_then(path_of) {
            added.push(p);
        } else if let Some(p) = action.get("cdc").and_then(path_of) {
            added.push(p);
        } else if let Some(r) = action.get("remove")
            && let Some(p) = path_of(r)
        {
            removed.push((p, r.get("deletionTimestamp").and_then(Value::as_i64)));
        }
    }
    out.added = added;
    out.removed = removed;
    Ok(out)
}

/// What the log says must stay, built from the scan described in the module docs.
#[derive(Debug, Default)]
pub struct Protected {
    /// Canonical relative keys of the latest snapshot's live files.
    pub live: HashSet<String>,
    /// Canonical relative keys that a version inside the window can read.
    pub window: HashSet<String>,
}

/// The decision, given the listing of data files.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub delete: Vec<Listed>,
    pub unreferenced: u64,
    pub kept_for_time_travel: u64,
    pub kept_recent: u64,
}

/// Rules 1-3 of the module docs over `data` (already filtered by [`is_data_file`]).
/// `listed` holds the canonical keys of every object listed outside `_delta_log/` (data
/// file or not): a live file missing from it means path matching cannot be trusted, and
/// nothing is deleted (see "Safety rails").
pub fn plan(
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
            continue;
        }
        let referenced = protected.window.contains(&key);
        if referenced {
            out.kept_for_time_travel += 1;
        } else if f.last_modified_ms >= cutoff_ms {
            out.kept_recent += 1;
        } else {
            out.unreferenced += 1;
            out.delete.push(f.clone());
        }
    }
    out.delete.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

pub async fn vacuum(t: &TableArgs, args: &VacuumArgs) -> Result<VacuumSummary> {
    let table = crate::open_for_maintenance(t).await?;
    let snapshot = table.snapshot().context("reading the table snapshot")?;
    let latest = snapshot.version();
    let table_retention = snapshot.table_config().deleted_file_retention_duration();
    let retention = args.retention.unwrap_or(table_retention);
    if retention < table_retention && !args.force {
        return Err(VacuumError::RetentionTooShort {
            given_hours: hours(retention),
            table_hours: hours(table_retention),
        }
        .into());
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let cutoff_ms = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let root = root_canonical(table.table_url().as_str());
    let partition_columns = snapshot.metadata().partition_columns().to_vec();

    let mut protected = Protected::default();
    for f in snapshot.log_data().iter() {
        if let Some(k) = relative_key(&f.path(), &root) {
            protected.live.insert(k);
        }
    }

    // One listing of the whole table: log entries for the scan, data files for the plan.
    // Listed after the snapshot was loaded, so every JSON up to `latest` is in it.
    let store = table.log_store().object_store(None);
    let (data, listed, json_mtime, checkpoints) =
        list_table(store.as_ref(), &partition_columns).await?;

    let oldest = scan_window(
        &table,
        latest,
        cutoff_ms,
        &json_mtime,
        &checkpoints,
        &root,
        &mut protected,
    )
    .await?;

    // Belt and braces: tombstones the snapshot still carries that are inside the window.
    // (A tombstone without a timestamp is left to the commit scan: it would pin its file
    // forever otherwise.)
    let log_store = table.log_store();
    let mut tombstones = snapshot.all_tombstones(log_store.as_ref());
    while let Some(t) = tombstones.try_next().await.context("reading tombstones")? {
        if t.deletion_timestamp().is_some_and(|ts| ts >= cutoff_ms)
            && let Some(k) = relative_key(&t.path(), &root)
        {
            protected.window.insert(k);
        }
    }
    drop(tombstones);

    let plan = plan(&data, &listed, &protected, cutoff_ms)?;
    let mut summary = VacuumSummary {
        command: "vacuum",
        dry_run: args.dry_run,
        mode: "retention-window",
        retention_hours: Some(hours(retention)),
        files_scanned: data.len() as u64,
        files_kept_for_time_travel: plan.kept_for_time_travel,
        files_kept_recent: plan.kept_recent,
        unreferenced_deleted: plan.unreferenced,
        oldest_version_kept: oldest,
        table_version: latest as i64,
        ..Default::default()
    };
    if args.dry_run {
        for f in &plan.delete {
            println!("{}", f.location);
        }
        summary.files_deleted = plan.delete.len() as u64;
        summary.bytes_deleted = plan.delete.iter().map(|f| f.size).sum();
        return Ok(summary);
    }
    if plan.delete.is_empty() {
        return Ok(summary);
    }
    let (deleted, bytes, version) =
        delete_and_record(&table, &plan, retention, table_retention, args.force).await?;
    summary.files_deleted = deleted;
    summary.bytes_deleted = bytes;
    summary.versions_committed = version.saturating_sub(latest);
    summary.table_version = version as i64;
    Ok(summary)
}

fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / 3600.0
}

/// Data files, canonical keys of everything outside `_delta_log/`, commit JSON mtimes by
/// version, checkpoint versions.
type ListedTable = (
    Vec<Listed>,
    HashSet<String>,
    HashMap<u64, i64>,
    BTreeSet<u64>,
);

/// List the table folder once: data files, commit JSON mtimes, checkpoint versions.
async fn list_table(store: &dyn ObjectStore, partition_columns: &[String]) -> Result<ListedTable> {
    let mut data = Vec::new();
    let mut keys = HashSet::new();
    let mut json_mtime = HashMap::new();
    let mut checkpoints = BTreeSet::new();
    let mut listing = store.list(None);
    while let Some(meta) = listing.try_next().await.context("listing the table")? {
        let location = meta.location.as_ref();
        let modified = meta.last_modified.timestamp_millis();
        if location.starts_with("_delta_log/") {
            match log_entry(location) {
                Some((v, false)) => {
                    json_mtime.insert(v, modified);
                }
                Some((v, true)) => {
                    checkpoints.insert(v);
                }
                None => {}
            }
        } else {
            keys.insert(canonical(location));
            if is_data_file(location, partition_columns) {
                data.push(Listed {
                    location: location.to_string(),
                    size: meta.size,
                    last_modified_ms: modified,
                });
            }
        }
    }
    Ok((data, keys, json_mtime, checkpoints))
}

/// Read commit JSONs newest first into `protected.window` until the boundary commit (see
/// the module docs); returns the oldest version time travel can read afterwards.
async fn scan_window(
    table: &DeltaTable,
    latest: u64,
    cutoff_ms: i64,
    json_mtime: &HashMap<u64, i64>,
    checkpoints: &BTreeSet<u64>,
    root: &str,
    protected: &mut Protected,
) -> Result<i64> {
    let log_store = table.log_store();
    let mut reads = futures::stream::iter((0..=latest).rev())
        .map(|v| {
            let log_store = log_store.clone();
            async move { (v, log_store.read_commit_entry(v).await) }
        })
        .buffered(LOG_READ_CONCURRENCY);
    let mut gap = None;
    let mut oldest = 0i64;
    // (`oldest` is informational: it is reported, never used to decide a deletion.)
    while let Some((v, read)) = reads.next().await {
        let Some(bytes) = read.with_context(|| format!("reading commit {v}"))? else {
            gap = Some(v);
            break;
        };
        let commit = parse_commit(v, &bytes, json_mtime.get(&v).copied())?;
        let inside = commit.timestamp_ms.is_none_or(|ts| ts >= cutoff_ms);
        if inside {
            let paths = commit
                .added
                .iter()
                .chain(commit.removed.iter().map(|(p, _)| p));
            protected
                .window
                .extend(paths.filter_map(|p| relative_key(p, root)));
        } else {
            // The boundary: version `v` is the oldest readable inside the window. Its own
            // removes matter only to older versions, unless stamped inside the window.
            protected.window.extend(
                commit
                    .removed
                    .iter()
                    .filter(|(_, ts)| ts.is_some_and(|ts| ts >= cutoff_ms))
                    .filter_map(|(p, _)| relative_key(p, root)),
            );
            oldest = v as i64;
            break;
        }
    }
    drop(reads);
    if let Some(k) = gap {
        // From `k` on, versions are readable from the first checkpoint at or after `k`.
        oldest = checkpoints
            .range(k..)
            .next()
            .map_or(latest as i64, |&c| c as i64);
        // JSON `k` is gone: below it only checkpoint-only versions are readable; keep theirs.
        for &c in checkpoints.range(..k) {
            let mut at = table.clone();
            at.load_version(c).await.with_context(|| {
                format!("reading checkpoint {c} (a version time travel can still read)")
            })?;
            let snap = at.snapshot().context("reading a checkpoint's snapshot")?;
            protected.window.extend(
                snap.log_data()
                    .iter()
                    .filter_map(|f| relative_key(&f.path(), root)),
            );
            oldest = oldest.min(c as i64);
        }
    }
    Ok(oldest)
}

/// Delete the planned files between a `VACUUM START` and a `VACUUM END` commit (as Spark and
/// delta-rs do, so `compactor history` shows every vacuum). Returns files and bytes actually
/// deleted (a file already gone is not counted) and the table version after.
async fn delete_and_record(
    table: &DeltaTable,
    plan: &Plan,
    retention: Duration,
    table_retention: Duration,
    force: bool,
) -> Result<(u64, u64, u64)> {
    let log_store = table.log_store();
    let meta = |metrics: Value| {
        CommitProperties::default().with_metadata([
            (
                "compactor".to_string(),
                json!({"version": env!("CARGO_PKG_VERSION")}),
            ),
            ("operationMetrics".to_string(), metrics),
        ])
    };
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let planned_bytes: u64 = plan.delete.iter().map(|f| f.size).sum();
    let snapshot: &dyn TableReference = table.snapshot().context("reading the table snapshot")?;
    let start = CommitBuilder::from(meta(json!({
        "numFilesToDelete": plan.delete.len(),
        "sizeOfDataToDelete": planned_bytes,
    })))
    .build(
        Some(snapshot),
        log_store.clone(),
        DeltaOperation::VacuumStart {
            retention_check_enabled: !force,
            specified_retention_millis: Some(millis(retention)),
            default_retention_millis: millis(table_retention),
        },
    )
    .await
    .context("committing VACUUM START")?;

    let sizes: HashMap<&str, u64> = plan
        .delete
        .iter()
        .map(|f| (f.location.as_str(), f.size))
        .collect();
    let store = log_store.object_store(None);
    let locations = futures::stream::iter(
        plan.delete
            .iter()
            .map(|f| Path::parse(&f.location).map_err(ObjectStoreError::from))
            .collect::<Vec<_>>(),
    )
    .boxed();
    let mut results = store.delete_stream(locations);
    let (mut files, mut bytes) = (0u64, 0u64);
    while let Some(r) = results.next().await {
        match r {
            Ok(p) => {
                files += 1;
                bytes += sizes.get(p.as_ref()).copied().unwrap_or(0);
            }
            Err(ObjectStoreError::NotFound { path, .. }) => {
                tracing::warn!(%path, "already deleted by someone else");
            }
            Err(e) => return Err(e).context("deleting a data file"),
        }
    }
    drop(results);

    let end = CommitBuilder::from(meta(json!({
        "numDeletedFiles": files,
        "sizeOfDeletedData": bytes,
        "numVacuumedDirectories": 0,
    })))
    .build(
        Some(&start.snapshot as &dyn TableReference),
        log_store.clone(),
        DeltaOperation::VacuumEnd {
            status: "COMPLETED".to_string(),
        },
    )
    .await
    .context("committing VACUUM END")?;
    Ok((files, bytes, end.version))
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
    fn commit_parsing_takes_latest_timestamp() {
        let body = br#"{"commitInfo":{"timestamp":1000,"operation":"OPTIMIZE"}}
{"add":{"path":"a=1/new.parquet","size":1,"dataChange":false}}
{"remove":{"path":"a=1/old.parquet","deletionTimestamp":990,"dataChange":false}}
"#;
        let c = parse_commit(3, body, Some(1500)).unwrap();
        assert_eq!(c.timestamp_ms, Some(1500));
        assert_eq!(c.added, vec!["a=1/new.parquet".to_string()]);
        assert_eq!(c.removed, vec![("a=1/old.parquet".to_string(), Some(990))]);
        let c = parse_commit(3, body, None).unwrap();
        assert_eq!(c.timestamp_ms, Some(1000));
        assert!(matches!(
            parse_commit(4, b"{not json\n", None),
            Err(VacuumError::MalformedCommit { version: 4, .. })
        ));
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
