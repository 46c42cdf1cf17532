//! Checkpoints and log clean-up, so loading the table stays fast as versions accumulate.
//! Log entries are expired only when older than `delta.logRetentionDuration` and covered by
//! a checkpoint, so time travel keeps working inside the retention window.

use anyhow::{Context, Result};
use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use serde::Serialize;

use crate::TableArgs;

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointSummary {
    pub command: &'static str,
    pub checkpoint_version: i64,
    pub log_files_expired: u64,
}

pub async fn checkpoint(t: &TableArgs) -> Result<CheckpointSummary> {
    let table = crate::open_for_maintenance(t).await?;
    create_checkpoint(&table, None)
        .await
        .context("writing checkpoint")?;
    let expired = cleanup_metadata(&table, None)
        .await
        .context("expiring old log entries")?;
    Ok(CheckpointSummary {
        command: "checkpoint",
        checkpoint_version: table.version().map_or(-1, |v| v as i64),
        log_files_expired: expired as u64,
    })
}
