//! Spark-compatible `S3DynamoDBLogStore`: commits to S3 serialized through DynamoDB.
//!
//! Follows the Delta project's protocol (Spark/`io.delta.storage.S3DynamoDBLogStore`) so that
//! Spark writers configured with it, and this writer, can commit to one table through one
//! lock table. Items: hash key `tablePath` (table root URI, no trailing slash, scheme as
//! configured — Spark uses `s3a://`), range key `fileName` (`%020d.json`), `tempPath`
//! (relative to `_delta_log`, `.tmp/N.json.<uuid>`), `complete` (`"true"`/`"false"` strings)
//! and `expireTime` (epoch seconds, set on completion; TTL deletes the item a day later).
//!
//! # Writing version N
//! 1. `N.json` exists → lost race (`VersionAlreadyExists`).
//! 2. N > 0: if N-1's entry is incomplete, repair it; if N-1.json is missing and has no
//!    entry, fail (a gap would corrupt the table).
//! 3. Write the temp file `_delta_log/.tmp/N.json.<uuid>`.
//! 4. Put the entry `complete="false"` on condition `attribute_not_exists(fileName)`. A
//!    failed condition means another writer owns N → `VersionAlreadyExists` (unless the
//!    entry is ours: an SDK retry of a put whose response was lost).
//!    **From here the commit has happened**; the rest is publication, done by anyone.
//! 5. Copy temp → `N.json` (only if absent).
//! 6. Put the entry `complete="true"` with `expireTime = now + 1 day`.
//! 7. Delete the temp file (best effort).
//!
//! # Crash cases
//! | crash after | state | repaired by |
//! |---|---|---|
//! | 3 (temp only) | orphan temp, no entry | nothing needed; lifecycle rule deletes `.tmp/` (a writer that *loses* step 4 deletes its temp itself) |
//! | 4 (entry, no `N.json`) | incomplete entry | the next writer (step 2) or reader (`get_latest_version`) copies temp → `N.json`, marks complete |
//! | 5 (copied, not marked) | `N.json` + incomplete entry | same; the copy is skipped since `N.json` exists |
//! | 6 (marked, temp kept) | done; an orphan temp file | the lifecycle rule on `.tmp/` |
//! | 7 | done | — |
//!
//! Readers repair too (like Spark's `listFrom`): `get_latest_version` first repairs the
//! table's latest entry if it is incomplete, so a version whose entry exists is never
//! invisible for longer than one read.
//!
//! Spark keeps every temp file and leaves them to a lifecycle rule; at one commit per 30 s
//! that is ~86k objects (~7 GB at 1x) under `.tmp/` for the rule's 30 days, the largest
//! item of storage nothing protects. Here the writer that publishes an entry (its own or a
//! repaired one) deletes its temp file once the entry is marked complete: from then on no
//! one needs it — a repairer that read the entry as incomplete just before and finds the
//! temp gone sees `N.json` on its next attempt and only marks the entry. The lifecycle rule
//! stays as the backstop for crashes between steps 6 and 7.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::{CommitOrBytes, LogStore, LogStoreConfig, commit_uri_from_version};
use deltalake::{DeltaResult, DeltaTableError, ObjectStore, ObjectStoreError, Path};
use tokio::sync::OnceCell;
use url::Url;
use uuid::Uuid;

/// Seconds a completed entry is kept (Spark's default `ddb.ttl`).
pub const ENTRY_TTL_SECS: u64 = 86_400;
/// Attempts at repairing an incomplete entry (Spark makes 4).
const REPAIR_ATTEMPTS: u32 = 4;

pub const ATTR_TABLE_PATH: &str = "tablePath";
pub const ATTR_FILE_NAME: &str = "fileName";
pub const ATTR_TEMP_PATH: &str = "tempPath";
pub const ATTR_COMPLETE: &str = "complete";
pub const ATTR_EXPIRE_TIME: &str = "expireTime";

/// The `tablePath` key for a table location: no trailing slash, scheme optionally replaced
/// (Spark writes `s3a://`; a table opened as `s3://` can share its lock entries with
/// `lock_path_scheme = "s3a"`).
pub fn table_path_key(location: &Url, scheme: Option<&str>) -> String {
    let text = location.as_str().trim_end_matches('/').to_string();
    match (scheme, text.split_once("://")) {
        (Some(s), Some((_, rest))) => format!("{s}://{rest}"),
        _ => text,
    }
}

fn file_name(version: u64) -> String {
    format!("{version:020}.json")
}

/// One lock-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: u64,
    pub temp_path: String,
    pub complete: bool,
}

pub struct DynamoDbLogStore {
    inner: Arc<dyn LogStore>,
    store: Arc<dyn ObjectStore>,
    table_path: String,
    lock_table: String,
    client: OnceCell<aws_sdk_dynamodb::Client>,
}

impl DynamoDbLogStore {
    pub fn new(
        inner: Arc<dyn LogStore>,
        store: Arc<dyn ObjectStore>,
        table_path: String,
        lock_table: String,
    ) -> Self {
        DynamoDbLogStore {
            inner,
            store,
            table_path,
            lock_table,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_dynamodb::Client {
        self.client.get_or_init(crate::aws::dynamodb).await
    }

    fn fail(&self, version: u64, step: &str, e: impl std::fmt::Display) -> TransactionError {
        let msg = format!(
            "table {} (lock table {}), version {version}: {step}: {e}",
            self.table_path, self.lock_table
        );
        TransactionError::LogStoreError {
            msg: msg.clone(),
            source: msg.into(),
        }
    }

    fn key(&self, version: u64) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                ATTR_TABLE_PATH.to_string(),
                AttributeValue::S(self.table_path.clone()),
            ),
            (
                ATTR_FILE_NAME.to_string(),
                AttributeValue::S(file_name(version)),
            ),
        ])
    }

    fn item(&self, entry: &Entry) -> HashMap<String, AttributeValue> {
        let mut item = self.key(entry.version);
        item.insert(
            ATTR_TEMP_PATH.into(),
            AttributeValue::S(entry.temp_path.clone()),
        );
        item.insert(
            ATTR_COMPLETE.into(),
            AttributeValue::S(if entry.complete { "true" } else { "false" }.into()),
        );
        if entry.complete {
            let expire = chrono::Utc::now().timestamp() as u64 + ENTRY_TTL_SECS;
            item.insert(
                ATTR_EXPIRE_TIME.into(),
                AttributeValue::N(expire.to_string()),
            );
        }
        item
    }

    fn parse(item: &HashMap<String, AttributeValue>) -> Option<Entry> {
        let name = item.get(ATTR_FILE_NAME)?.as_s().ok()?;
        let version = name.strip_suffix(".json")?.parse().ok()?;
        let temp_path = item.get(ATTR_TEMP_PATH)?.as_s().ok()?.clone();
        let complete = item
            .get(ATTR_COMPLETE)
            .and_then(|c| c.as_s().ok())
            .is_some_and(|c| c == "true");
        Some(Entry {
            version,
            temp_path,
            complete,
        })
    }

    /// The entry for `version`, read consistently.
    pub async fn entry(&self, version: u64) -> Result<Option<Entry>, TransactionError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.lock_table)
            .set_key(Some(self.key(version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                self.fail(
                    version,
                    "get lock entry",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        Ok(out.item().and_then(Self::parse))
    }

    /// The table's highest entry, read consistently.
    pub async fn latest_entry(&self) -> Result<Option<Entry>, TransactionError> {
        let out = self
            .client()
            .await
            .query()
            .table_name(&self.lock_table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", ATTR_TABLE_PATH)
            .expression_attribute_values(":p", AttributeValue::S(self.table_path.clone()))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                self.fail(
                    0,
                    "query latest lock entry",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        Ok(out.items().first().and_then(Self::parse))
    }

    async fn exists(&self, path: &Path, version: u64) -> Result<bool, TransactionError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(ObjectStoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(version, "check log file", e)),
        }
    }

    /// Best effort: a staged file left behind costs a few bytes and a longer `_delta_log`
    /// listing, never correctness (no reader looks at `*.json.tmp`).
    async fn delete_staged(&self, path: &Path) {
        if let Err(e) = self.store.delete(path).await {
            tracing::warn!(table = %self.table_path, path = %path, error = %e, "could not delete a staged commit file");
        }
    }

    /// Step 7, best effort: once the entry is marked complete nothing reads its temp file
    /// (a repairer racing us re-checks `N.json` and finds it); a file left behind is only a
    /// cost, expired by the lifecycle rule on `.tmp/`.
    async fn delete_temp(&self, entry: &Entry) {
        let path = Self::temp_location(&entry.temp_path);
        match self.store.delete(&path).await {
            Ok(()) | Err(ObjectStoreError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(table = %self.table_path, version = entry.version, error = %e, "could not delete a temp commit file");
            }
        }
    }

    fn temp_location(temp_path: &str) -> Path {
        Path::from(format!("_delta_log/{temp_path}"))
    }

    /// Publish an incomplete entry left by another (possibly crashed) writer: copy its temp
    /// file to `N.json` (if absent) and mark it complete. Safe to run concurrently from any
    /// number of processes.
    pub async fn repair(&self, entry: &Entry) -> Result<(), TransactionError> {
        self.publish(entry, false).await
    }

    /// Steps 5-6 of a commit. `own`: the entry was just put by this writer, so `N.json` cannot
    /// exist unless a concurrent repairer copied the very same temp file — copying it again
    /// is harmless, which saves the existence check on the hot path.
    async fn publish(&self, entry: &Entry, own: bool) -> Result<(), TransactionError> {
        if entry.complete {
            return Ok(());
        }
        let target = commit_uri_from_version(Some(entry.version));
        let mut last = None;
        for attempt in 0..REPAIR_ATTEMPTS {
            let step = async {
                if (own && attempt == 0) || !self.exists(&target, entry.version).await? {
                    self.store
                        .copy(&Self::temp_location(&entry.temp_path), &target)
                        .await
                        .map_err(|e| self.fail(entry.version, "copy temp file to log", e))?;
                }
                self.mark_complete(entry).await
            };
            match step.await {
                Ok(()) => {
                    if !own {
                        tracing::info!(table = %self.table_path, version = entry.version, "repaired incomplete commit entry");
                    }
                    self.delete_temp(entry).await;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.fail(entry.version, "repair", "no attempt made")))
    }

    async fn mark_complete(&self, entry: &Entry) -> Result<(), TransactionError> {
        let done = Entry {
            complete: true,
            ..entry.clone()
        };
        self.client()
            .await
            .put_item()
            .table_name(&self.lock_table)
            .set_item(Some(self.item(&done)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                self.fail(
                    entry.version,
                    "mark entry complete",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })
    }

    async fn repair_latest(&self) -> Result<(), TransactionError> {
        if let Some(entry) = self.latest_entry().await?
            && !entry.complete
        {
            self.repair(&entry).await?;
        }
        Ok(())
    }

    /// The commit's bytes. delta-rs' CommitBuilder hands stores other than its own a file it
    /// staged in `_delta_log/_commit_<uuid>.json.tmp`; nothing in delta-rs deletes it, so the
    /// caller does once the commit is made (it reuses the same file for a retry after a lost
    /// race): its path is returned with the bytes.
    async fn commit_bytes(
        &self,
        version: u64,
        commit_or_bytes: CommitOrBytes,
    ) -> Result<(Bytes, Option<Path>), TransactionError> {
        match commit_or_bytes {
            CommitOrBytes::LogBytes(b) => Ok((b, None)),
            CommitOrBytes::TmpCommit(p) => {
                let r = self
                    .store
                    .get(&p)
                    .await
                    .map_err(|e| self.fail(version, "read temp commit", e))?;
                let b = r
                    .bytes()
                    .await
                    .map_err(|e| self.fail(version, "read temp commit", e))?;
                Ok((b, Some(p)))
            }
        }
    }

    /// Never leave a gap: the previous version must be published (repaired here if a writer
    /// crashed half-way through publishing it), or exist outright.
    async fn ensure_previous(&self, version: u64) -> Result<(), TransactionError> {
        if version == 0 {
            return Ok(());
        }
        match self.entry(version - 1).await? {
            Some(prev) if !prev.complete => self.repair(&prev).await?,
            Some(_) => {}
            None => {
                if !self
                    .exists(&commit_uri_from_version(Some(version - 1)), version)
                    .await?
                {
                    return Err(self.fail(
                        version,
                        "check previous commit",
                        "previous version is missing",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The commit point: put the lock entry on condition that none exists for the version.
    /// A failed condition is a lost race, unless the entry is ours (an SDK retry of a put
    /// whose first response was lost).
    async fn claim(&self, entry: &Entry) -> Result<(), TransactionError> {
        let version = entry.version;
        let put = self
            .client()
            .await
            .put_item()
            .table_name(&self.lock_table)
            .set_item(Some(self.item(entry)))
            .condition_expression("attribute_not_exists(#f)")
            .expression_attribute_names("#f", ATTR_FILE_NAME)
            .send()
            .await;
        let Err(e) = put else {
            return Ok(());
        };
        let lost = e
            .as_service_error()
            .is_some_and(|s| s.is_conditional_check_failed_exception());
        if !lost {
            return Err(self.fail(
                version,
                "put lock entry",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            ));
        }
        match self.entry(version).await? {
            Some(existing) if existing.temp_path == entry.temp_path => Ok(()),
            _ => Err(TransactionError::VersionAlreadyExists(version)),
        }
    }
}

#[async_trait::async_trait]
impl LogStore for DynamoDbLogStore {
    fn name(&self) -> String {
        "DynamoDbLogStore".into()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.repair_latest().await.map_err(DeltaTableError::from)
    }

    async fn read_commit_entry(&self, version: u64) -> DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: u64,
        commit_or_bytes: CommitOrBytes,
        _operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        let (bytes, staged) = self.commit_bytes(version, commit_or_bytes).await?;
        let target = commit_uri_from_version(Some(version));
        // 1. Already published: we lost.
        if self.exists(&target, version).await? {
            return Err(TransactionError::VersionAlreadyExists(version));
        }
        // 2. Never leave a gap.
        self.ensure_previous(version).await?;
        // 3. Temp file.
        let temp_path = format!(".tmp/{}.{}", file_name(version), Uuid::new_v4());
        self.store
            .put(&Self::temp_location(&temp_path), bytes.into())
            .await
            .map_err(|e| self.fail(version, "write temp commit", e))?;
        // 4. The commit point: the conditional put.
        let entry = Entry {
            version,
            temp_path,
            complete: false,
        };
        if let Err(e) = self.claim(&entry).await {
            // A lost race is certain (another writer's entry holds the version): no entry
            // will ever point at our temp file. Any other failure may hide a put that
            // landed, whose entry repairers would need the temp for, so it stays.
            if matches!(e, TransactionError::VersionAlreadyExists(_)) {
                self.delete_temp(&entry).await;
            }
            return Err(e);
        }
        // 5-6. Publish. Failures here do not undo the commit: any reader or the next
        // writer completes it (see the crash table above).
        if let Err(e) = self.publish(&entry, true).await {
            tracing::warn!(table = %self.table_path, version, error = %e, "commit entry left incomplete; it will be repaired");
        }
        if let Some(p) = staged {
            self.delete_staged(&p).await;
        }
        Ok(())
    }

    async fn abort_commit_entry(
        &self,
        _version: u64,
        commit_or_bytes: CommitOrBytes,
        _operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        // Nothing to undo: an entry, once put, is a commit; a temp file alone is harmless,
        // but delta-rs' staged copy is ours to delete.
        if let CommitOrBytes::TmpCommit(p) = commit_or_bytes {
            self.delete_staged(&p).await;
        }
        Ok(())
    }

    async fn get_latest_version(&self, start_version: u64) -> DeltaResult<u64> {
        self.repair_latest().await?;
        self.inner.get_latest_version(start_version).await
    }

    fn object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn config(&self) -> &LogStoreConfig {
        self.inner.config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_path_has_no_trailing_slash_and_optional_scheme() {
        let u = Url::parse("s3://bucket/path/events/").expect("url");
        assert_eq!(table_path_key(&u, None), "s3://bucket/path/events");
        assert_eq!(table_path_key(&u, Some("s3a")), "s3a://bucket/path/events");
        assert_eq!(file_name(5), "00000000000000000005.json");
    }
}
