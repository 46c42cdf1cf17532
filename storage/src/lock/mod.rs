//! Safe commits to object stores: choosing and installing the commit mode.
//!
//! A Delta commit is "create `_delta_log/N.json` if it does not exist". Local file systems
//! and S3 with conditional writes (`If-None-Match: *`) do that atomically; for S3 without
//! them (or to interoperate with Spark's `S3DynamoDBLogStore`) a DynamoDB table serializes
//! commits ([`dynamodb`]). The mode is always explicit for `s3://` tables: opening one with
//! no mode is refused, never silently downgraded to unsafe renames.

pub mod dynamodb;

use std::str::FromStr;
use std::sync::{Arc, Once};

use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig as DeltaStorageConfig,
    default_logstore, logstore_factories,
};
use deltalake::{DeltaResult, DeltaTableError};
use url::Url;

/// Storage-option keys through which the commit mode reaches the log-store factory.
pub const OPT_COMMIT_LOCK: &str = "events_lake_commit_lock";
pub const OPT_LOCK_TABLE: &str = "events_lake_lock_table";
pub const OPT_LOCK_PATH_SCHEME: &str = "events_lake_lock_path_scheme";

/// Spark's default lock-table name.
pub const DEFAULT_LOCK_TABLE: &str = "delta_log";

/// How commits to an object store are made safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitLock {
    /// Spark-compatible S3DynamoDBLogStore protocol through a DynamoDB table.
    DynamoDb,
    /// S3 conditional writes (`If-None-Match: *`) on the log entry.
    S3Conditional,
}

impl CommitLock {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitLock::DynamoDb => "dynamodb",
            CommitLock::S3Conditional => "s3-conditional",
        }
    }
}

impl FromStr for CommitLock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dynamodb" => Ok(CommitLock::DynamoDb),
            "s3-conditional" => Ok(CommitLock::S3Conditional),
            other => Err(format!(
                "unknown commit lock `{other}` (expected `dynamodb` or `s3-conditional`)"
            )),
        }
    }
}

/// Install our log-store factory for `s3://` and `s3a://` (once per process). Called by
/// every table-opening function, so no binary can forget it.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let factory: Arc<dyn LogStoreFactory> = Arc::new(S3CommitLockFactory);
        for scheme in ["s3://", "s3a://"] {
            if let Ok(url) = Url::parse(scheme) {
                logstore_factories().insert(url, factory.clone());
            }
        }
    });
}

struct S3CommitLockFactory;

impl LogStoreFactory for S3CommitLockFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &DeltaStorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        let raw = &options.raw;
        let mode = raw.get(OPT_COMMIT_LOCK).ok_or_else(|| {
            DeltaTableError::Generic(format!(
                "refusing to open {location} without a safe commit mode: \
                 set --commit-lock dynamodb (with --lock-table) or --commit-lock s3-conditional"
            ))
        })?;
        let mode = CommitLock::from_str(mode).map_err(DeltaTableError::Generic)?;
        let inner = default_logstore(prefixed_store.clone(), root_store, location, options);
        match mode {
            // The default log store writes `N.json` with a conditional put.
            CommitLock::S3Conditional => Ok(inner),
            CommitLock::DynamoDb => {
                let lock_table = raw
                    .get(OPT_LOCK_TABLE)
                    .cloned()
                    .unwrap_or_else(|| DEFAULT_LOCK_TABLE.to_string());
                let table_path = dynamodb::table_path_key(
                    location,
                    raw.get(OPT_LOCK_PATH_SCHEME).map(String::as_str),
                );
                Ok(Arc::new(dynamodb::DynamoDbLogStore::new(
                    inner,
                    prefixed_store,
                    table_path,
                    lock_table,
                )))
            }
        }
    }
}
