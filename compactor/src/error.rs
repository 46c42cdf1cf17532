//! Typed errors of the compactor library.
//!
//! Every failure says which operation on which table failed ([`Error`]), then what step of it
//! ([`ErrorKind`]), then the underlying cause as its `source`, so the CLI's one-line message
//! (`anyhow`'s `{:#}`) reads "optimizing s3://…: optimizing partition event_type=a: …" — the
//! same for a single command and for the step of `compactor run` that failed.

use std::fmt;

use deltalake::{DeltaTableError, ObjectStoreError};
use storage::LakeError;
use storage::log::LogError;

use crate::vacuum::VacuumError;

/// A maintenance operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {table}")]
pub struct Error {
    /// Which operation failed (for `run`: the step that did).
    pub operation: Operation,
    /// The table location as given.
    pub table: String,
    /// What went wrong inside the operation.
    #[source]
    pub kind: ErrorKind,
}

/// The compactor's operations, as they are named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Optimize,
    Checkpoint,
    Vacuum,
    History,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Optimize => "optimizing",
            Operation::Checkpoint => "checkpointing",
            Operation::Vacuum => "vacuuming",
            Operation::History => "reading history of",
        })
    }
}

/// The step of an operation that failed, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// Opening or loading the table, or a protocol it is not safe to rewrite.
    #[error(transparent)]
    Storage(#[from] LakeError),
    /// A commit in `_delta_log` could not be read or parsed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// One of vacuum's safety rails refused to delete.
    #[error(transparent)]
    Vacuum(#[from] VacuumError),
    /// A delta-rs call failed during `step`.
    #[error("{step}")]
    Delta {
        step: String,
        #[source]
        source: Box<DeltaTableError>,
    },
    /// An object-store call (listing, deleting) failed during `step`.
    #[error("{step}")]
    Store {
        step: String,
        #[source]
        source: ObjectStoreError,
    },
}

/// Attach the step to a delta-rs or object-store failure (the library's `Context`).
pub(crate) trait StepExt<T> {
    fn step(self, step: impl Into<String>) -> Result<T, ErrorKind>;
}

impl<T> StepExt<T> for Result<T, DeltaTableError> {
    fn step(self, step: impl Into<String>) -> Result<T, ErrorKind> {
        self.map_err(|source| ErrorKind::Delta {
            step: step.into(),
            source: Box::new(source),
        })
    }
}

impl<T> StepExt<T> for Result<T, ObjectStoreError> {
    fn step(self, step: impl Into<String>) -> Result<T, ErrorKind> {
        self.map_err(|source| ErrorKind::Store {
            step: step.into(),
            source,
        })
    }
}
