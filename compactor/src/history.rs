//! The table's history for audits: one entry per version, newest first, with the commit's
//! metadata (the writer, the source positions and counts it recorded; compaction and vacuum
//! commits marked).

use serde::Serialize;
use serde_json::Value;
use storage::log::{LogEntry, read_entry};

use crate::Compactor;
use crate::error::{Error, ErrorKind, Operation};

/// One commit, as `compactor history` prints it (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The commit's table version.
    pub version: i64,
    /// `commitInfo.timestamp` as recorded (null when absent).
    pub timestamp: Value,
    /// `commitInfo.operation` (`WRITE`, `OPTIMIZE`, …), empty when absent.
    pub operation: String,
    /// A maintenance commit (optimize or vacuum): it changed no rows.
    pub compaction: bool,
    /// `add` actions in the commit.
    pub files_added: u64,
    /// `remove` actions in the commit.
    pub files_removed: u64,
    /// The whole `commitInfo` (null when absent).
    pub commit_info: Value,
}

impl HistoryEntry {
    fn of(entry: &LogEntry) -> HistoryEntry {
        let operation = entry.operation().to_string();
        HistoryEntry {
            version: entry.version,
            timestamp: entry
                .commit_info
                .get("timestamp")
                .cloned()
                .unwrap_or(Value::Null),
            compaction: matches!(
                operation.as_str(),
                "OPTIMIZE" | "VACUUM START" | "VACUUM END"
            ),
            operation,
            files_added: entry.adds.len() as u64,
            files_removed: entry.removes.len() as u64,
            commit_info: entry.commit_info.clone(),
        }
    }
}

impl Compactor {
    /// The `limit` most recent commits, newest first. Stops early at the first version whose
    /// log entry has been expired (older versions live only in checkpoints).
    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        self.read_history(limit)
            .await
            .map_err(self.failed(Operation::History))
    }

    async fn read_history(&self, limit: usize) -> Result<Vec<HistoryEntry>, ErrorKind> {
        let table = self.open().await?;
        let latest = table.version().map_or(-1, |v| v as i64);
        let log_store = table.log_store();
        let mut out = Vec::new();
        for version in (0..=latest).rev().take(limit) {
            let Some(entry) = read_entry(log_store.as_ref(), version).await? else {
                break; // expired by log retention
            };
            out.push(HistoryEntry::of(&entry));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_marks_maintenance_commits_and_counts_files() {
        let body =
            br#"{"commitInfo":{"timestamp":1000,"operation":"OPTIMIZE","inCommitTimestamp":2000}}
{"add":{"path":"a=1/new.parquet","partitionValues":{"a":"1"},"size":1,"dataChange":false}}
{"remove":{"path":"a=1/old-1.parquet","dataChange":false}}
{"remove":{"path":"a=1/old-2.parquet","dataChange":false}}
"#;
        let e = HistoryEntry::of(&LogEntry::parse(5, body).expect("parses"));
        assert_eq!(
            (e.version, e.operation.as_str(), e.compaction),
            (5, "OPTIMIZE", true)
        );
        assert_eq!((e.files_added, e.files_removed), (1, 2));
        // The recorded `timestamp`, not the later in-commit one.
        assert_eq!(e.timestamp, serde_json::json!(1000));

        let e = HistoryEntry::of(&LogEntry::parse(0, br#"{"metaData":{"id":"x"}}"#).unwrap());
        assert_eq!(
            (e.timestamp.clone(), e.commit_info.clone()),
            (Value::Null, Value::Null)
        );
        assert!(!e.compaction && e.operation.is_empty());
    }
}
