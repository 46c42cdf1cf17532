//! Bin-packing (and optional Z-ordering) of small files.
//!
//! Plans from the table's file list which partitions need work (enough small files,
//! optionally written recently or matching a partition filter). When delta-rs would pick
//! exactly those partitions by itself (no `since`, the default `min_small_files`, no
//! Z-order), the whole run is **one delta-rs call and one commit**; otherwise the partitions
//! are optimized one at a time, one commit each, so a conflict costs one partition's work.
//! One commit per run matters on a streaming table: every commit delta-rs makes re-plans over
//! the whole file list and, every `delta.checkpointInterval` versions, writes a checkpoint
//! of every live file and tombstone — a run over ~170 partitions made ~170 commits and ~8
//! checkpoints (measured by the soak benchmark, BENCHMARKS.md "Steady state").
//! Rewrites are committed with `dataChange=false`, so readers' results never change; a live
//! writer's appends never conflict with them (delta-rs checks, and our writer re-syncs and
//! retries on any version change).

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::optimize::{Metrics, OptimizeType};
use deltalake::{DeltaTable, DeltaTableError, FilterOp, FilterValue};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::Compactor;
use crate::error::{Error, ErrorKind, Operation, StepExt as _};

/// Default target file size: 256 MiB.
pub const DEFAULT_TARGET_SIZE: NonZeroU64 = NonZeroU64::new(256 << 20).expect("non-zero");
/// Default for [`OptimizeOptions::min_small_files`].
pub const DEFAULT_MIN_SMALL_FILES: usize = 2;

/// Attempts per commit when another compactor's rewrite conflicts with ours.
const ATTEMPTS: u32 = 3;

/// Which partitions [`Compactor::optimize`] rewrites, and into what.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizeOptions {
    /// Files are bin-packed into files near this size; files at or above it are left alone.
    pub target_size: NonZeroU64,
    /// Compact a partition only when it has at least this many files below the target size.
    pub min_small_files: usize,
    /// Only partitions with a file written within this window (`None`: any age).
    pub since: Option<Duration>,
    /// Only the partition matching every `(column, value)` (empty: all partitions).
    pub partitions: Vec<(String, String)>,
    /// Z-order the rewritten files by these columns (empty: plain bin-packing).
    pub zorder: Vec<String>,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            target_size: DEFAULT_TARGET_SIZE,
            min_small_files: DEFAULT_MIN_SMALL_FILES,
            since: None,
            partitions: Vec::new(),
            zorder: Vec::new(),
        }
    }
}

/// What [`Compactor::optimize`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OptimizeSummary {
    /// Always `"optimize"`: every summary names the command that printed it.
    pub command: &'static str,
    /// Live files before the run.
    pub files_before: u64,
    /// Bytes of those files.
    pub bytes_before: u64,
    /// Live files after the run.
    pub files_after: u64,
    /// Bytes of those files.
    pub bytes_after: u64,
    /// Partitions rewritten.
    pub partitions_touched: u64,
    /// Partitions left for the next run because other rewrites kept conflicting.
    pub partitions_skipped_on_conflict: u64,
    /// Commits made (one for the run, or one per partition rewritten; see the module doc).
    pub versions_committed: u64,
    /// Files written by those commits.
    pub files_added: u64,
    /// Files those commits replaced (still readable by time travel until vacuum).
    pub files_removed: u64,
    /// The table version after the run (-1 for a table without versions).
    pub table_version: i64,
}

/// Partition values as a sorted list (a map key).
type PartitionKey = Vec<(String, Option<String>)>;

/// A partition's live files, as the planner sees them.
#[derive(Default)]
struct PartitionStats {
    /// Files below the target size (candidates for bin-packing).
    small: usize,
    /// Modification time of its newest file (Unix ms).
    newest_ms: i64,
}

/// The live files of a table, in total and per partition.
struct TableFiles {
    /// Live files in total.
    files: u64,
    /// Their bytes.
    bytes: u64,
    /// Per partition, what the planner needs to decide whether to rewrite it.
    partitions: BTreeMap<PartitionKey, PartitionStats>,
}

/// How optimizing one partition ended.
enum PartitionOutcome {
    /// Rewritten in one commit.
    Committed(Metrics),
    /// Nothing to bin-pack after all (delta-rs made no commit).
    Unchanged,
    /// Every attempt conflicted with another rewrite; left for the next run.
    SkippedOnConflict,
}

impl Compactor {
    /// Bin-pack (or Z-order) each selected partition in its own commit.
    pub async fn optimize(&self, options: &OptimizeOptions) -> Result<OptimizeSummary, Error> {
        self.optimize_table(options)
            .await
            .map_err(self.failed(Operation::Optimize))
    }

    async fn optimize_table(
        &self,
        options: &OptimizeOptions,
    ) -> Result<OptimizeSummary, ErrorKind> {
        let mut table = self.open_for_maintenance().await?;
        let before = table_files(&table, options.target_size)?;
        let selected = select(
            before.partitions,
            options,
            chrono::Utc::now().timestamp_millis(),
        );
        let mut summary = OptimizeSummary {
            command: "optimize",
            files_before: before.files,
            bytes_before: before.bytes,
            ..Default::default()
        };
        let mut whole_run = !selected.is_empty() && one_commit(options);
        if whole_run {
            match optimize_partition(&mut table, &filter_key(options), options).await {
                Ok(outcome) => summary.tally(outcome, selected.len() as u64),
                // One unreadable file must not hold back every partition's compaction: one
                // commit per partition, where a failure stops the run at its own partition
                // with the others before it committed.
                Err(e) => {
                    tracing::warn!(error = %e, "optimizing in one commit failed; going one partition at a time");
                    whole_run = false;
                }
            }
        }
        if !whole_run {
            let bar = progress(selected.len() as u64, "optimizing partitions");
            for key in &selected {
                bar.set_message(describe(key));
                let outcome = optimize_partition(&mut table, key, options).await?;
                summary.tally(outcome, 1);
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
        table.update_state().await.step("reloading table")?;
        let after = table_files(&table, options.target_size)?;
        summary.files_after = after.files;
        summary.bytes_after = after.bytes;
        summary.table_version = table.version().map_or(-1, |v| v as i64);
        Ok(summary)
    }
}

impl OptimizeSummary {
    /// Count one optimize call over `partitions` selected partitions.
    fn tally(&mut self, outcome: PartitionOutcome, partitions: u64) {
        match outcome {
            PartitionOutcome::Committed(metrics) => self.record(&metrics),
            PartitionOutcome::Unchanged => {}
            PartitionOutcome::SkippedOnConflict => {
                self.partitions_skipped_on_conflict += partitions;
            }
        }
    }

    fn record(&mut self, metrics: &Metrics) {
        self.partitions_touched += metrics.partitions_optimized;
        self.versions_committed += 1;
        self.files_added += metrics.num_files_added;
        self.files_removed += metrics.num_files_removed;
    }
}

/// Whether one delta-rs call rewrites exactly the partitions [`select`] picks: delta-rs
/// bin-packs every partition with two or more files below the target (a single small file
/// is left alone either way) and takes the `--partition` values as filters, but knows no
/// `since`; Z-ordering is kept per partition (it rewrites every file of a partition).
fn one_commit(options: &OptimizeOptions) -> bool {
    options.since.is_none()
        && options.min_small_files <= DEFAULT_MIN_SMALL_FILES
        && options.zorder.is_empty()
}

/// The `--partition` values as the filter of a whole-run optimize.
fn filter_key(options: &OptimizeOptions) -> PartitionKey {
    let mut key: PartitionKey = options
        .partitions
        .iter()
        .map(|(c, v)| (c.clone(), Some(v.clone())))
        .collect();
    key.sort();
    key
}

/// The partitions worth rewriting: enough small files, recent enough, matching the filter.
fn select(
    partitions: BTreeMap<PartitionKey, PartitionStats>,
    options: &OptimizeOptions,
    now_ms: i64,
) -> Vec<PartitionKey> {
    let since_ms = options.since.map(|d| now_ms - d.as_millis() as i64);
    partitions
        .into_iter()
        .filter(|(key, s)| {
            s.small >= options.min_small_files
                && since_ms.is_none_or(|cut| s.newest_ms >= cut)
                && options.partitions.iter().all(|(c, v)| {
                    key.iter()
                        .any(|(kc, kv)| kc == c && kv.as_deref() == Some(v))
                })
        })
        .map(|(k, _)| k)
        .collect()
}

/// Optimize the partitions `key` filters (one partition, or every one matching a
/// `--partition` filter), reloading and retrying when another rewrite conflicts; `table` is
/// left at the version after the attempt.
async fn optimize_partition(
    table: &mut DeltaTable,
    key: &PartitionKey,
    options: &OptimizeOptions,
) -> Result<PartitionOutcome, ErrorKind> {
    for attempt in 1..=ATTEMPTS {
        let conflict = match optimize_once(table, key, options).await {
            Ok((rewritten, metrics)) => {
                *table = rewritten;
                let changed = metrics.num_files_added > 0 || metrics.num_files_removed > 0;
                return Ok(if changed {
                    PartitionOutcome::Committed(metrics)
                } else {
                    PartitionOutcome::Unchanged
                });
            }
            Err(e) if is_conflict(&e) => e,
            Err(e) => return Err(e).step(format!("optimizing partition {}", describe(key))),
        };
        if attempt < ATTEMPTS {
            tracing::warn!(partition = %describe(key), attempt, error = %conflict, "optimize conflicted; reloading and retrying");
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        } else {
            tracing::warn!(partition = %describe(key), error = %conflict, "optimize kept conflicting; partition skipped this run");
        }
        table
            .update_state()
            .await
            .step("reloading table after a conflict")?;
    }
    Ok(PartitionOutcome::SkippedOnConflict)
}

/// One delta-rs optimize of one partition, with our commit metadata.
async fn optimize_once(
    table: &DeltaTable,
    key: &PartitionKey,
    options: &OptimizeOptions,
) -> Result<(DeltaTable, Metrics), DeltaTableError> {
    let filters: Vec<_> = key
        .iter()
        .filter_map(|(c, v)| {
            v.as_deref()
                .map(|v| (c.as_str(), FilterOp::Eq, FilterValue::Scalar(v)))
        })
        .collect();
    let kind = if options.zorder.is_empty() {
        OptimizeType::Compact
    } else {
        OptimizeType::ZOrder(options.zorder.clone())
    };
    let props = CommitProperties::default().with_metadata([(
        "compactor".to_string(),
        json!({"version": env!("CARGO_PKG_VERSION"), "partition": describe(key)}),
    )]);
    table
        .clone()
        .optimize()
        .with_filters(&filters)
        .with_target_size(options.target_size)
        .with_type(kind)
        .with_commit_properties(props)
        .await
}

fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_) | DeltaTableError::Transaction { .. }
    )
}

/// Count the live files, in total and per partition.
fn table_files(table: &DeltaTable, target: NonZeroU64) -> Result<TableFiles, ErrorKind> {
    let snapshot = table.snapshot().step("reading the table snapshot")?;
    let mut out = TableFiles {
        files: 0,
        bytes: 0,
        partitions: BTreeMap::new(),
    };
    for f in snapshot.log_data().iter() {
        let size = f.size().max(0) as u64;
        out.files += 1;
        out.bytes += size;
        let mut key: PartitionKey = f.partition_values_map().into_iter().collect();
        key.sort();
        let s = out.partitions.entry(key).or_default();
        // Files below the target are candidates for bin-packing (delta-rs leaves the rest).
        if size < target.get() {
            s.small += 1;
        }
        s.newest_ms = s.newest_ms.max(f.modification_time());
    }
    Ok(out)
}

fn describe(key: &PartitionKey) -> String {
    if key.is_empty() {
        return "all partitions".to_string();
    }
    key.iter()
        .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("null")))
        .collect::<Vec<_>>()
        .join("/")
}

/// A progress bar on a terminal; nothing when stderr is a pipe or a file (CI, ECS).
fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}
