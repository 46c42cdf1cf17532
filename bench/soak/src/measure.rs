//! What one sample measures about the table: a fresh delta-rs open of the latest version
//! (its time, live files and bytes, tombstones), a listing of everything under the table
//! (data files, `_delta_log` entries, checkpoints), and the process's memory.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use storage::{LakeError, StorageConfig};

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{uri}: {step}: {message}")]
    Store {
        uri: String,
        step: &'static str,
        message: String,
    },
}

/// What a fresh open of the latest version sees.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Opened {
    pub version: Option<i64>,
    /// Wall time of `storage::open_table` (a new handle, nothing cached).
    pub open_ms: f64,
    pub live_files: u64,
    /// Bytes referenced by the latest version (sum of the live files' sizes).
    pub live_bytes: u64,
    /// Remove actions still in the state (not yet expired by the retention).
    pub tombstones: u64,
    pub tombstones_ms: f64,
}

/// Everything under the table's location.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub objects: u64,
    pub bytes: u64,
    pub data_files: u64,
    pub data_bytes: u64,
    pub log_entries: u64,
    pub log_bytes: u64,
    pub commit_files: u64,
    pub checkpoint_files: u64,
    pub checkpoint_bytes_total: u64,
    /// The newest checkpoint's version and size (all its parts).
    pub latest_checkpoint_version: Option<i64>,
    pub latest_checkpoint_bytes: Option<u64>,
    /// Last-modified of the newest checkpoint (Unix seconds, real time).
    pub latest_checkpoint_modified: Option<i64>,
    pub list_ms: f64,
}

/// Open the table afresh and read its state.
pub async fn open_fresh(uri: &str, storage: &StorageConfig) -> Result<Opened, MeasureError> {
    let started = Instant::now();
    let table = storage::open_table(uri, storage).await?;
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let err = |step| {
        move |e: deltalake::DeltaTableError| MeasureError::Store {
            uri: uri.to_string(),
            step,
            message: e.to_string(),
        }
    };
    let state = table.snapshot().map_err(err("snapshot"))?;
    let (mut live_files, mut live_bytes) = (0u64, 0u64);
    for f in state.log_data().iter() {
        live_files += 1;
        live_bytes += f.size().max(0) as u64;
    }
    let started = Instant::now();
    let log_store = table.log_store();
    let tombstones = state
        .all_tombstones(log_store.as_ref())
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await
        .map_err(err("tombstones"))?;
    Ok(Opened {
        version: table.version().map(|v| v as i64),
        open_ms,
        live_files,
        live_bytes,
        tombstones,
        tombstones_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// List every object under the table (local directory or bucket prefix).
pub async fn list_table(uri: &str, storage: &StorageConfig) -> Result<Listing, MeasureError> {
    let started = Instant::now();
    let url = storage::table_url(uri)?;
    let table = deltalake::DeltaTableBuilder::from_url(url)
        .and_then(|b| b.with_storage_options(storage.delta_options()).build())
        .map_err(|e| MeasureError::Store {
            uri: uri.to_string(),
            step: "open store",
            message: e.to_string(),
        })?;
    let store = table.object_store();
    let mut listing = store.list(None);
    let mut out = Listing::default();
    let mut checkpoints: Vec<(i64, u64, i64)> = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| MeasureError::Store {
            uri: uri.to_string(),
            step: "list",
            message: e.to_string(),
        })?;
        let path = meta.location.as_ref();
        out.objects += 1;
        out.bytes += meta.size;
        if let Some(name) = path.strip_prefix("_delta_log/") {
            out.log_entries += 1;
            out.log_bytes += meta.size;
            if name.ends_with(".json") && !name.contains('/') && !name.starts_with('_') {
                out.commit_files += 1;
            }
            if let Some(v) = checkpoint_version(name) {
                out.checkpoint_files += 1;
                out.checkpoint_bytes_total += meta.size;
                checkpoints.push((v, meta.size, meta.last_modified.timestamp()));
            }
        } else if path.ends_with(".parquet") {
            out.data_files += 1;
            out.data_bytes += meta.size;
        }
    }
    if let Some(latest) = checkpoints.iter().map(|c| c.0).max() {
        let parts = checkpoints.iter().filter(|c| c.0 == latest);
        out.latest_checkpoint_version = Some(latest);
        out.latest_checkpoint_bytes = Some(parts.clone().map(|c| c.1).sum());
        out.latest_checkpoint_modified = parts.map(|c| c.2).max();
    }
    out.list_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(out)
}

/// The version of a checkpoint file name (`00000000000000000020.checkpoint.parquet`, or a
/// part of a multi-part one).
fn checkpoint_version(name: &str) -> Option<i64> {
    let (version, rest) = name.split_once('.')?;
    if !rest.starts_with("checkpoint") || !rest.ends_with(".parquet") {
        return None;
    }
    version.parse().ok()
}

/// Resident and peak memory of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` of `pid` (`"self"` for this process); `None` once it is gone.
pub fn memory(pid: &str) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names() {
        assert_eq!(
            checkpoint_version("00000000000000000020.checkpoint.parquet"),
            Some(20)
        );
        assert_eq!(
            checkpoint_version("00000000000000000040.checkpoint.0000000001.0000000002.parquet"),
            Some(40)
        );
        assert_eq!(checkpoint_version("00000000000000000020.json"), None);
        assert_eq!(checkpoint_version("_last_checkpoint"), None);
    }

    #[test]
    fn reads_own_memory() {
        assert!(memory("self").is_some_and(|m| m.rss_kib > 0));
    }
}
