//! Checkpoints and log clean-up, so loading the table stays fast as versions accumulate.
//! Log entries are expired only when older than `delta.logRetentionDuration` and covered by
//! a checkpoint, so time travel keeps working inside the retention window.

use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use serde::Serialize;

use crate::Compactor;
use crate::error::{Error, ErrorKind, Operation, StepExt as _};

/// What [`Compactor::checkpoint`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointSummary {
    /// Always `"checkpoint"`: every summary names the command that printed it.
    pub command: &'static str,
    /// The version checkpointed (the latest when the operation started).
    pub checkpoint_version: i64,
    /// `_delta_log` entries deleted because a checkpoint covers them and they are old.
    pub log_files_expired: u64,
}

impl Compactor {
    /// Write a checkpoint at the latest version, then expire log entries older than the
    /// table's log retention.
    pub async fn checkpoint(&self) -> Result<CheckpointSummary, Error> {
        self.checkpoint_table()
            .await
            .map_err(self.failed(Operation::Checkpoint))
    }

    async fn checkpoint_table(&self) -> Result<CheckpointSummary, ErrorKind> {
        let table = self.open_for_maintenance().await?;
        create_checkpoint(&table, None)
            .await
            .step("writing checkpoint")?;
        let expired = cleanup_metadata(&table, None)
            .await
            .step("expiring old log entries")?;
        Ok(CheckpointSummary {
            command: "checkpoint",
            checkpoint_version: table.version().map_or(-1, |v| v as i64),
            log_files_expired: expired as u64,
        })
    }
}
