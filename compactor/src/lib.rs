//! The compactor as a library: keeps the events table fast — bin-packing (optionally
//! Z-ordering) small files, writing checkpoints and expiring old log entries, vacuuming
//! unreferenced files — without ever changing what a reader sees.
//!
//! Every operation is a method of [`Compactor`] (a table location plus how to reach it),
//! taking a plain options struct and returning the summary the `compactor` binary prints
//! as JSON:
//!
//! | method | module | summary |
//! |---|---|---|
//! | [`Compactor::optimize`] | [`optimize`]: bin-pack each partition with enough small files | [`OptimizeSummary`] |
//! | [`Compactor::checkpoint`] | [`checkpoint`]: checkpoint, expire old log entries | [`CheckpointSummary`] |
//! | [`Compactor::vacuum`] | [`vacuum`]: delete files no version in the window reads | [`VacuumSummary`] |
//! | [`Compactor::run`] | here: optimize, checkpoint, then vacuum (the scheduled job) | [`RunSummary`] |
//! | [`Compactor::history`] | [`history`]: one entry per commit, newest first | [`HistoryEntry`] |
//!
//! Commits in `_delta_log` are read with the parser the writer uses too
//! (`storage::log`), so both sides agree on what a commit did.

pub mod checkpoint;
pub mod error;
pub mod history;
pub mod optimize;
pub mod vacuum;

use serde::Serialize;
use storage::StorageConfig;

pub use checkpoint::CheckpointSummary;
pub use error::{Error, ErrorKind, Operation};
pub use history::HistoryEntry;
pub use optimize::{OptimizeOptions, OptimizeSummary};
pub use vacuum::{VacuumError, VacuumOptions, VacuumSummary};

/// The table the operations work on. Cheap to build: nothing is opened until an operation
/// runs, and each operation opens the table afresh (at its latest version).
#[derive(Debug, Clone)]
pub struct Compactor {
    /// Table location as given: a local path or `s3://` URI (also named in errors).
    uri: String,
    /// How to reach the table's storage (commit mode for `s3://`).
    storage: StorageConfig,
}

/// Options of [`Compactor::run`]: those of the two operations it runs that take any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    /// Options of the optimize step.
    pub optimize: OptimizeOptions,
    /// Options of the vacuum step.
    pub vacuum: VacuumOptions,
}

/// What [`Compactor::run`] did: the optimize totals at the top (what dashboards chart),
/// then each step's own summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Always `"run"`: every summary names the command that printed it.
    pub command: &'static str,
    /// Optimize's [`OptimizeSummary::files_before`], repeated at the top for dashboards.
    pub files_before: u64,
    /// Optimize's [`OptimizeSummary::bytes_before`].
    pub bytes_before: u64,
    /// Optimize's [`OptimizeSummary::files_after`].
    pub files_after: u64,
    /// Optimize's [`OptimizeSummary::bytes_after`].
    pub bytes_after: u64,
    /// Optimize's [`OptimizeSummary::partitions_touched`].
    pub partitions_touched: u64,
    /// Commits made by optimize and vacuum together.
    pub versions_committed: u64,
    /// The optimize step's own summary.
    pub optimize: OptimizeSummary,
    /// The checkpoint step's own summary.
    pub checkpoint: CheckpointSummary,
    /// The vacuum step's own summary.
    pub vacuum: VacuumSummary,
}

impl Compactor {
    pub fn new(uri: impl Into<String>, storage: StorageConfig) -> Self {
        Compactor {
            uri: uri.into(),
            storage,
        }
    }

    /// Optimize, checkpoint, then vacuum: the scheduled job. Stops at the first step that
    /// fails (the error names it).
    pub async fn run(&self, options: &RunOptions) -> Result<RunSummary, Error> {
        let optimize = self.optimize(&options.optimize).await?;
        let checkpoint = self.checkpoint().await?;
        let vacuum = self.vacuum(&options.vacuum).await?;
        Ok(RunSummary {
            command: "run",
            files_before: optimize.files_before,
            bytes_before: optimize.bytes_before,
            files_after: optimize.files_after,
            bytes_after: optimize.bytes_after,
            partitions_touched: optimize.partitions_touched,
            versions_committed: optimize.versions_committed + vacuum.versions_committed,
            optimize,
            checkpoint,
            vacuum,
        })
    }

    /// Open the table at its latest version (for reading only).
    async fn open(&self) -> Result<deltalake::DeltaTable, ErrorKind> {
        Ok(storage::open_table(&self.uri, &self.storage).await?)
    }

    /// Open a table the compactor is about to write to (optimize, checkpoint, vacuum),
    /// refusing one whose protocol asks for features we do not enforce (see
    /// `storage::protocol`): rewriting files of a table with CHECK constraints or deletion
    /// vectors, say, could commit something its own rules forbid.
    async fn open_for_maintenance(&self) -> Result<deltalake::DeltaTable, ErrorKind> {
        let table = self.open().await?;
        storage::check_writable(&table, &self.uri)?;
        Ok(table)
    }

    /// Turns a step's failure into the operation's error (for `map_err`).
    fn failed(&self, operation: Operation) -> impl FnOnce(ErrorKind) -> Error + '_ {
        move |kind| Error {
            operation,
            table: self.uri.clone(),
            kind,
        }
    }
}
