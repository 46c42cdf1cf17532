//! The one reader of `_delta_log` commit entries that the writer and the compactor share.
//!
//! delta-rs replays the log into a snapshot, which is what readers need; the writer's key
//! index, its progress recovery, the compactor's history and its vacuum need something else:
//! *what one commit did* (files added and removed, `txn`s, `commitInfo`, whether it changed
//! the metadata or protocol), cheaply and without building a snapshot. Parsing that in one
//! place keeps the rules — which actions count, what a malformed line means, where a commit's
//! time comes from — the same for every caller.
//!
//! A malformed line is an error, never skipped: every caller decides about data on what the
//! entry says, and an entry it cannot read must stop it rather than be taken as empty.
//! (Blank lines carry no action and are skipped.)

use std::collections::HashMap;

use deltalake::logstore::LogStore;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use serde::Deserialize;
use serde_json::Value;

/// Why a log entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("commit {version}: malformed log entry: {cause}")]
    Malformed {
        version: i64,
        cause: serde_json::Error,
    },
    #[error("commit {version}: reading the log entry: {cause}")]
    Read {
        version: i64,
        cause: Box<deltalake::DeltaTableError>,
    },
    #[error("reading _last_checkpoint: {0}")]
    LastCheckpoint(deltalake::ObjectStoreError),
}

/// A data file named by an `add`, `remove` or `cdc` action. The fields the protocol requires
/// of the action are required here (`add`/`cdc`: path, partition values, size, data change;
/// `remove`: path, data change); an action missing one is malformed.
#[derive(Debug, Clone, PartialEq)]
pub struct FileAction {
    /// As written in the log: a URI-encoded path relative to the table root, or an absolute
    /// URI. Use [`FileAction::object_path`] to name the object.
    pub path: String,
    /// Partition column → value (`None`: the null partition). Empty for a `remove` that
    /// does not record them (they are optional there).
    pub partition_values: HashMap<String, Option<String>>,
    /// Bytes (always recorded for `add` and `cdc`, optional for `remove`).
    pub size: Option<i64>,
    /// False for rearrangements (compaction): the rows did not change.
    pub data_change: bool,
    /// `remove` only: when the file left the table (Unix ms).
    pub deletion_timestamp: Option<i64>,
}

impl FileAction {
    /// The object's path relative to the table root, decoded: the log stores paths
    /// URI-encoded, so a folder named `event_type=caf%C3%A9` appears as `caf%25C3%25A9`.
    /// Reading the verbatim `path` would name an object that does not exist.
    pub fn object_path(&self) -> String {
        percent_encoding::percent_decode_str(&self.path)
            .decode_utf8_lossy()
            .into_owned()
    }
}

/// `add` and `cdc` as the protocol writes them (every field required).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddLike {
    path: String,
    partition_values: HashMap<String, Option<String>>,
    size: i64,
    data_change: bool,
}

impl From<AddLike> for FileAction {
    fn from(a: AddLike) -> Self {
        FileAction {
            path: a.path,
            partition_values: a.partition_values,
            size: Some(a.size),
            data_change: a.data_change,
            deletion_timestamp: None,
        }
    }
}

/// `remove`: partition values, size and deletion time are optional in the protocol.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoveAction {
    path: String,
    data_change: bool,
    #[serde(default)]
    partition_values: Option<HashMap<String, Option<String>>>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    deletion_timestamp: Option<i64>,
}

impl From<RemoveAction> for FileAction {
    fn from(r: RemoveAction) -> Self {
        FileAction {
            path: r.path,
            partition_values: r.partition_values.unwrap_or_default(),
            size: r.size,
            data_change: r.data_change,
            deletion_timestamp: r.deletion_timestamp,
        }
    }
}

/// A `txn` action: an application's progress, committed atomically with the data (the
/// writer's exactly-once record of what it consumed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnAction {
    /// The application (the writer uses `kinesis/<stream>/<shard>`).
    pub app_id: String,
    /// Its progress counter, increasing by one per commit that carries it.
    pub version: i64,
}

/// What one commit (`_delta_log/<version>.json`) did.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    /// The commit's version (the entry's file name).
    pub version: i64,
    /// Files the commit added to the table.
    pub adds: Vec<FileAction>,
    /// Files the commit took out of the table (they stay in storage until vacuumed).
    pub removes: Vec<FileAction>,
    /// Change-data files: storage the commit wrote that no snapshot lists as live.
    pub cdc: Vec<FileAction>,
    /// Application progress the commit recorded (see [`TxnAction`]).
    pub txns: Vec<TxnAction>,
    /// The commit's `commitInfo` object (`Value::Null` when it has none).
    pub commit_info: Value,
    /// The latest `timestamp`/`inCommitTimestamp` of any `commitInfo` in the entry.
    timestamp_ms: Option<i64>,
    /// The commit replaced the table's metadata (schema, partitioning, properties).
    pub metadata_changed: bool,
    /// The commit changed the protocol (reader/writer versions or features).
    pub protocol_changed: bool,
}

impl LogEntry {
    /// Parse the newline-delimited actions of commit `version`.
    pub fn parse(version: i64, bytes: &[u8]) -> Result<LogEntry, LogError> {
        let mut entry = LogEntry {
            version,
            ..LogEntry::default()
        };
        let malformed = |cause| LogError::Malformed { version, cause };
        for line in bytes.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line: Line = serde_json::from_slice(line).map_err(malformed)?;
            entry.adds.extend(line.add.map(FileAction::from));
            entry.removes.extend(line.remove.map(FileAction::from));
            entry.cdc.extend(line.cdc.map(FileAction::from));
            entry.txns.extend(line.txn);
            if let Some(ci) = line.commit_info {
                let stamps = ["timestamp", "inCommitTimestamp"]
                    .iter()
                    .filter_map(|k| ci.get(*k).and_then(Value::as_i64));
                entry.timestamp_ms = entry.timestamp_ms.into_iter().chain(stamps).max();
                entry.commit_info = Value::Object(ci);
            }
            entry.metadata_changed |= line.meta_data.is_some();
            entry.protocol_changed |= line.protocol.is_some();
        }
        Ok(entry)
    }

    /// The commit's own time (Unix ms): the latest `commitInfo.timestamp` or
    /// `commitInfo.inCommitTimestamp` it recorded, if any.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp_ms
    }

    /// `commitInfo.operation` (e.g. `WRITE`, `OPTIMIZE`), empty when absent.
    pub fn operation(&self) -> &str {
        self.commit_info
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Whether the commit carries the `txn` (`app_id`, `version`).
    pub fn has_txn(&self, app_id: &str, version: i64) -> bool {
        self.txns
            .iter()
            .any(|t| t.app_id == app_id && t.version == version)
    }
}

/// One line of a commit entry: exactly one of these is set. Unknown action kinds
/// (`domainMetadata`, `checkpointMetadata`, future ones) set none and are ignored: they never
/// name data files. A known action that does not parse — including an explicit `null` — is
/// an error, never taken as absent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    #[serde(default, deserialize_with = "present")]
    add: Option<AddLike>,
    #[serde(default, deserialize_with = "present")]
    remove: Option<RemoveAction>,
    #[serde(default, deserialize_with = "present")]
    cdc: Option<AddLike>,
    #[serde(default, deserialize_with = "present")]
    txn: Option<TxnAction>,
    #[serde(default, deserialize_with = "present")]
    commit_info: Option<serde_json::Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    meta_data: Option<serde_json::Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    protocol: Option<serde_json::Map<String, Value>>,
}

/// A key that is present must hold the action (`Option`'s own impl would read `null` as
/// absent).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Read and parse commit `version`; `None` when the entry does not exist (not written yet,
/// or expired by log retention).
pub async fn read_entry(
    log_store: &dyn LogStore,
    version: i64,
) -> Result<Option<LogEntry>, LogError> {
    let Ok(v) = u64::try_from(version) else {
        return Ok(None);
    };
    let bytes = log_store
        .read_commit_entry(v)
        .await
        .map_err(|e| LogError::Read {
            version,
            cause: Box::new(e),
        })?;
    bytes.map(|b| LogEntry::parse(version, &b)).transpose()
}

/// The version `_delta_log/_last_checkpoint` points at (`None`: no checkpoint yet, or a hint
/// file this reader cannot understand — it is only a hint, so that is not an error).
pub async fn last_checkpoint_version(log_store: &dyn LogStore) -> Result<Option<i64>, LogError> {
    let store = log_store.object_store(None);
    let path = deltalake::Path::from("_delta_log/_last_checkpoint");
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await,
        Err(deltalake::ObjectStoreError::NotFound { .. }) => return Ok(None),
        Err(e) => Err(e),
    }
    .map_err(LogError::LastCheckpoint)?;
    Ok(serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("version").and_then(Value::as_i64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = concat!(
        r#"{"commitInfo":{"timestamp":1700000000000,"operation":"WRITE","inCommitTimestamp":1700000000500}}"#,
        "\n",
        r#"{"txn":{"appId":"kinesis/s/shard-0","version":4,"lastUpdated":1}}"#,
        "\n",
        r#"{"add":{"path":"event_type=a/created_date=2024-01-01/part-1.parquet","partitionValues":{"event_type":"a","created_date":"2024-01-01"},"size":120,"modificationTime":1,"dataChange":true}}"#,
        "\n",
        r#"{"remove":{"path":"event_type=a/created_date=2024-01-01/part-0.parquet","partitionValues":{"event_type":"a","created_date":null},"dataChange":false,"deletionTimestamp":1700000000000}}"#,
        "\n",
        r#"{"domainMetadata":{"domain":"x","configuration":"{}","removed":false}}"#,
        "\n",
        r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#,
        "\n\n"
    );

    #[test]
    fn every_action_kind_is_read() {
        let e = LogEntry::parse(7, ENTRY.as_bytes()).expect("parses");
        assert_eq!(e.version, 7);
        assert_eq!(e.adds.len(), 1);
        assert_eq!(e.adds[0].size, Some(120));
        assert!(e.adds[0].data_change);
        assert_eq!(
            e.adds[0].partition_values.get("event_type"),
            Some(&Some("a".to_string()))
        );
        assert_eq!(e.removes.len(), 1);
        assert!(!e.removes[0].data_change);
        assert_eq!(e.removes[0].deletion_timestamp, Some(1_700_000_000_000));
        assert_eq!(
            e.removes[0].partition_values.get("created_date"),
            Some(&None)
        );
        assert!(e.has_txn("kinesis/s/shard-0", 4));
        assert!(!e.has_txn("kinesis/s/shard-0", 3));
        assert_eq!(e.operation(), "WRITE");
        assert_eq!(e.timestamp_ms(), Some(1_700_000_000_500));
        assert!(e.protocol_changed && !e.metadata_changed);
    }

    #[test]
    fn a_malformed_line_is_an_error_not_an_empty_commit() {
        let bad = format!("{ENTRY}{{\"add\": {{\"path\": 3}}}}\n");
        assert!(matches!(
            LogEntry::parse(3, bad.as_bytes()),
            Err(LogError::Malformed { version: 3, .. })
        ));
        assert!(LogEntry::parse(3, b"not json\n").is_err());
    }

    #[test]
    fn required_fields_and_explicit_nulls_are_malformed() {
        for bad in [
            r#"{"add":null}"#,
            r#"{"txn":null}"#,
            r#"{"commitInfo":null}"#,
            r#"{"add":{"path":"a.parquet","partitionValues":{},"dataChange":true}}"#,
            r#"{"add":{"path":"a.parquet","size":1,"dataChange":true}}"#,
            r#"{"remove":{"path":"a.parquet"}}"#,
        ] {
            assert!(LogEntry::parse(1, bad.as_bytes()).is_err(), "{bad}");
        }
        let minimal_remove = r#"{"remove":{"path":"a.parquet","dataChange":true}}"#;
        let e = LogEntry::parse(1, minimal_remove.as_bytes()).expect("optional fields");
        assert!(e.removes[0].partition_values.is_empty() && e.removes[0].size.is_none());
    }

    #[test]
    fn the_latest_time_of_every_commit_info_counts() {
        let two = concat!(
            r#"{"commitInfo":{"timestamp":5}}"#,
            "\n",
            r#"{"commitInfo":{"timestamp":3,"operation":"WRITE"}}"#
        );
        let e = LogEntry::parse(1, two.as_bytes()).expect("parses");
        assert_eq!(e.timestamp_ms(), Some(5));
    }

    #[test]
    fn object_paths_are_decoded_once() {
        let line = r#"{"add":{"path":"event_type=caf%25C3%25A9%2520bar/p.parquet","partitionValues":{"event_type":"café bar"},"size":1,"dataChange":true}}"#;
        let e = LogEntry::parse(1, line.as_bytes()).expect("parses");
        assert_eq!(
            e.adds[0].object_path(),
            "event_type=caf%C3%A9%20bar/p.parquet"
        );
    }

    #[test]
    fn a_commit_without_commit_info_has_no_time() {
        let e = LogEntry::parse(0, br#"{"metaData":{"id":"x"}}"#).expect("parses");
        assert!(e.metadata_changed);
        assert_eq!(e.timestamp_ms(), None);
        assert_eq!(e.operation(), "");
    }
}
