//! Bin-packing (and optional Z-ordering) per partition.
//!
//! Plans from the table's file list which partitions need work (enough small files,
//! optionally written recently or matching `--partition`), then optimizes them one at a
//! time, so each commit touches one partition: a conflict costs one partition's work, not
//! the whole run. Rewrites are committed with `dataChange=false`, so readers' results never
//! change; a live writer's appends never conflict with them (delta-rs checks, and our writer
//! re-syncs and retries on any version change).

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use anyhow::{Context, Result};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::optimize::OptimizeType;
use deltalake::{FilterOp, FilterValue};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::{OptimizeArgs, TableArgs};

#[derive(Debug, Clone, Default, Serialize)]
pub struct OptimizeSummary {
    pub command: &'static str,
    pub files_before: u64,
    pub bytes_before: u64,
    pub files_after: u64,
    pub bytes_after: u64,
    pub partitions_touched: u64,
    pub partitions_skipped_on_conflict: u64,
    pub versions_committed: u64,
    pub files_added: u64,
    pub files_removed: u64,
    pub table_version: i64,
}

/// Partition values as a sorted list (a map key).
type PartitionKey = Vec<(String, Option<String>)>;

#[derive(Default)]
struct PartitionStats {
    files: u64,
    small: usize,
    newest_ms: i64,
}

/// Attempts per partition when another compactor's rewrite conflicts with ours.
const ATTEMPTS: u32 = 3;

pub async fn optimize(t: &TableArgs, args: &OptimizeArgs) -> Result<OptimizeSummary> {
    let mut table = crate::open_for_maintenance(t).await?;
    let (files_before, bytes_before, partitions) = plan_input(&table, args.target_size)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let since_ms = args.since.map(|d| now_ms - d.as_millis() as i64);
    let selected: Vec<PartitionKey> = partitions
        .into_iter()
        .filter(|(key, s)| {
            s.small >= args.min_small_files
                && since_ms.is_none_or(|cut| s.newest_ms >= cut)
                && args.partitions.iter().all(|(c, v)| {
                    key.iter()
                        .any(|(kc, kv)| kc == c && kv.as_deref() == Some(v))
                })
        })
        .map(|(k, _)| k)
        .collect();
    let mut summary = OptimizeSummary {
        command: "optimize",
        files_before,
        bytes_before,
        ..Default::default()
    };
    let bar = progress(selected.len() as u64, "optimizing partitions");
    let target = NonZeroU64::new(args.target_size).context("target size must be positive")?;
    for key in &selected {
        bar.set_message(describe(key));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let filters: Vec<_> = key
                .iter()
                .filter_map(|(c, v)| {
                    v.as_deref()
                        .map(|v| (c.as_str(), FilterOp::Eq, FilterValue::Scalar(v)))
                })
                .collect();
            let kind = if args.zorder.is_empty() {
                OptimizeType::Compact
            } else {
                OptimizeType::ZOrder(args.zorder.clone())
            };
            let props = CommitProperties::default().with_metadata([(
                "compactor".to_string(),
                json!({"version": env!("CARGO_PKG_VERSION"), "partition": describe(key)}),
            )]);
            let result = table
                .clone()
                .optimize()
                .with_filters(&filters)
                .with_target_size(target)
                .with_type(kind)
                .with_commit_properties(props)
                .await;
            match result {
                Ok((t2, metrics)) => {
                    if metrics.num_files_added > 0 || metrics.num_files_removed > 0 {
                        summary.partitions_touched += 1;
                        summary.versions_committed += 1;
                        summary.files_added += metrics.num_files_added;
                        summary.files_removed += metrics.num_files_removed;
                    }
                    table = t2;
                    break;
                }
                Err(e) if attempt < ATTEMPTS && is_conflict(&e) => {
                    tracing::warn!(partition = %describe(key), attempt, error = %e, "optimize conflicted; reloading and retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    table
                        .update_state()
                        .await
                        .context("reloading table after a conflict")?;
                }
                Err(e) if is_conflict(&e) => {
                    tracing::warn!(partition = %describe(key), error = %e, "optimize kept conflicting; partition skipped this run");
                    summary.partitions_skipped_on_conflict += 1;
                    table
                        .update_state()
                        .await
                        .context("reloading table after a conflict")?;
                    break;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("optimizing partition {}", describe(key)));
                }
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    table.update_state().await.context("reloading table")?;
    let (files_after, bytes_after, _) = plan_input(&table, args.target_size)?;
    summary.files_after = files_after;
    summary.bytes_after = bytes_after;
    summary.table_version = table.version().map_or(-1, |v| v as i64);
    Ok(summary)
}

fn is_conflict(e: &deltalake::DeltaTableError) -> bool {
    matches!(
        e,
        deltalake::DeltaTableError::VersionAlreadyExists(_)
            | deltalake::DeltaTableError::Transaction { .. }
    )
}

fn plan_input(
    table: &deltalake::DeltaTable,
    target: u64,
) -> Result<(u64, u64, BTreeMap<PartitionKey, PartitionStats>)> {
    let snapshot = table.snapshot().context("reading the table snapshot")?;
    let mut files = 0;
    let mut bytes = 0;
    let mut partitions: BTreeMap<PartitionKey, PartitionStats> = BTreeMap::new();
    for f in snapshot.log_data().iter() {
        files += 1;
        let size = f.size().max(0) as u64;
        bytes += size;
        let mut key: PartitionKey = f.partition_values_map().into_iter().collect();
        key.sort();
        let s = partitions.entry(key).or_default();
        s.files += 1;
        // Files below the target are candidates for bin-packing (delta-rs leaves the rest).
        if size < target {
            s.small += 1;
        }
        s.newest_ms = s.newest_ms.max(f.modification_time());
    }
    Ok((files, bytes, partitions))
}

fn describe(key: &PartitionKey) -> String {
    key.iter()
        .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("null")))
        .collect::<Vec<_>>()
        .join("/")
}

/// A progress bar on a terminal; nothing when stderr is a pipe or a file (CI, ECS).
pub fn progress(len: u64, what: &str) -> ProgressBar {
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
