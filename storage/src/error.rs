//! Typed errors of the storage layer. Every variant names the table and the step, so a
//! failure in a log line is actionable without a debugger.

use deltalake::DeltaTableError;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("invalid table location `{uri}`: {reason}")]
    InvalidLocation { uri: String, reason: String },

    #[error("table {table}: {step}: {source}")]
    Delta {
        table: String,
        step: &'static str,
        #[source]
        source: Box<DeltaTableError>,
    },

    #[error("table {table}: {step}: {source}")]
    Store {
        table: String,
        step: &'static str,
        #[source]
        source: deltalake::ObjectStoreError,
    },

    #[error("table {table}: {step}: {source}")]
    Parquet {
        table: String,
        step: &'static str,
        #[source]
        source: deltalake::parquet::errors::ParquetError,
    },

    #[error("table {table}: schema mismatch: {detail}")]
    Schema { table: String, detail: String },

    #[error("table {table}: gave up after {attempts} commit attempts lost to other writers")]
    Contention { table: String, attempts: u32 },

    #[error("table {table}: {detail}")]
    Invariant { table: String, detail: String },
}

impl LakeError {
    pub fn delta(table: impl Into<String>, step: &'static str, source: DeltaTableError) -> Self {
        LakeError::Delta {
            table: table.into(),
            step,
            source: Box::new(source),
        }
    }
}
