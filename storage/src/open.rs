//! Opening a table, creating it on first use.

use std::collections::HashMap;

use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use schemas::table::{TableDef, default_table_properties};
use url::Url;

use crate::error::LakeError;
use crate::lock::{
    CommitLock, DEFAULT_LOCK_TABLE, OPT_COMMIT_LOCK, OPT_LOCK_PATH_SCHEME, OPT_LOCK_TABLE,
};

/// How to reach storage. Local paths need nothing; `s3://` tables need an explicit commit
/// mode, and take credentials, region and endpoints from the standard AWS environment.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    /// Extra object-store options (rarely needed: the AWS environment is read directly).
    pub options: HashMap<String, String>,
    /// How commits are made safe on object stores (required for `s3://`).
    pub commit_lock: Option<CommitLock>,
    /// DynamoDB lock table (for `CommitLock::DynamoDb`); Spark's default is `delta_log`.
    pub lock_table: String,
    /// Scheme written in the lock table's `tablePath` (e.g. `s3a` to share entries with
    /// Spark); default: the table URI's own scheme.
    pub lock_path_scheme: Option<String>,
}

impl StorageConfig {
    /// The options handed to delta-rs: ours plus the commit-mode keys our log-store factory
    /// reads. The S3 endpoint falls back from `AWS_ENDPOINT_URL_S3` to `AWS_ENDPOINT_URL`.
    pub fn delta_options(&self) -> HashMap<String, String> {
        let mut o = self.options.clone();
        if let Some(lock) = self.commit_lock {
            o.insert(OPT_COMMIT_LOCK.into(), lock.as_str().into());
        }
        let table = if self.lock_table.is_empty() {
            DEFAULT_LOCK_TABLE
        } else {
            &self.lock_table
        };
        o.insert(OPT_LOCK_TABLE.into(), table.into());
        if let Some(s) = &self.lock_path_scheme {
            o.insert(OPT_LOCK_PATH_SCHEME.into(), s.clone());
        }
        if !o.contains_key("aws_endpoint_url")
            && let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_S3")
        {
            o.insert("aws_endpoint_url".into(), endpoint);
        }
        o
    }
}

/// Normalise a user-given location (`./lake`, `/abs/path`, `file:///..`, `s3://..`) to a URL;
/// local folders are created so a first run works on an empty disk.
pub fn table_url(uri: &str) -> Result<Url, LakeError> {
    crate::lock::register();
    deltalake::ensure_table_uri(uri).map_err(|e| LakeError::InvalidLocation {
        uri: uri.to_string(),
        reason: e.to_string(),
    })
}

/// Open an existing table at its latest version.
pub async fn open_table(uri: &str, storage: &StorageConfig) -> Result<DeltaTable, LakeError> {
    let url = table_url(uri)?;
    let mut table = DeltaTableBuilder::from_url(url)
        .and_then(|b| b.with_storage_options(storage.delta_options()).build())
        .map_err(|e| LakeError::delta(uri, "open", e))?;
    table
        .load()
        .await
        .map_err(|e| LakeError::delta(uri, "load", e))?;
    Ok(table)
}

/// Open the table, creating it with `def`'s schema, partitioning and properties when it does
/// not exist. Two processes racing to create it both succeed: the loser sees version 0
/// already written and simply loads it. An existing table whose columns differ from `def`
/// is refused rather than written with a mismatched layout, and so is one using writer
/// features we do not enforce ([`crate::protocol::check_writable`]).
pub async fn open_or_create(
    uri: &str,
    def: &TableDef,
    storage: &StorageConfig,
) -> Result<DeltaTable, LakeError> {
    let url = table_url(uri)?;
    let mut table = DeltaTableBuilder::from_url(url)
        .and_then(|b| b.with_storage_options(storage.delta_options()).build())
        .map_err(|e| LakeError::delta(uri, "open", e))?;
    match table.load().await {
        Ok(()) => {}
        Err(DeltaTableError::NotATable(_)) => {
            let created = CreateBuilder::new()
                .with_log_store(table.log_store())
                .with_table_name(def.name)
                .with_columns(def.delta_fields())
                .with_partition_columns(def.partition_columns.iter().copied())
                .with_configuration(
                    default_table_properties()
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Some(v.to_string()))),
                )
                .with_save_mode(SaveMode::Ignore)
                .await;
            match created {
                Ok(t) => table = t,
                Err(e) => {
                    // Lost a creation race: someone else wrote version 0.
                    table
                        .load()
                        .await
                        .map_err(|_| LakeError::delta(uri, "create", e))?;
                }
            }
            table
                .load()
                .await
                .map_err(|e| LakeError::delta(uri, "load after create", e))?;
        }
        Err(e) => return Err(LakeError::delta(uri, "load", e)),
    }
    check_schema(uri, &table, def)?;
    // Everything that opens a table this way writes to it (the writer): refuse features we
    // would not enforce (CHECK constraints, generated columns, deletion vectors, ...).
    crate::protocol::check_writable(&table, uri)?;
    Ok(table)
}

fn check_schema(uri: &str, table: &DeltaTable, def: &TableDef) -> Result<(), LakeError> {
    let snapshot = table
        .snapshot()
        .map_err(|e| LakeError::delta(uri, "snapshot", e))?;
    let schema = snapshot.schema();
    for c in def.columns {
        match schema.field(c.name) {
            Some(f) if *f.data_type() == c.kind.delta() => {}
            Some(f) => {
                return Err(LakeError::Schema {
                    table: uri.to_string(),
                    detail: format!(
                        "column `{}` is {:?}, expected {:?}",
                        c.name,
                        f.data_type(),
                        c.kind.delta()
                    ),
                });
            }
            None => {
                return Err(LakeError::Schema {
                    table: uri.to_string(),
                    detail: format!("column `{}` is missing", c.name),
                });
            }
        }
    }
    let partitions = snapshot.metadata().partition_columns();
    if partitions
        .iter()
        .map(String::as_str)
        .ne(def.partition_columns.iter().copied())
    {
        return Err(LakeError::Schema {
            table: uri.to_string(),
            detail: format!(
                "partitioned by {partitions:?}, expected {:?}",
                def.partition_columns
            ),
        });
    }
    Ok(())
}
