//! Checkpoints written in the background, off the commit path.
//!
//! delta-rs would write a checkpoint inline every `checkpointInterval` commits; here one due
//! at a version is written by a background task while the next batch is read and committed.
//! A checkpoint is an optimisation for readers, never needed for correctness, so a failure
//! is logged and the next due version tries again; a crash mid-way leaves at most an
//! unreferenced file (the checkpoint is one PUT, `_last_checkpoint` another).

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use deltalake::{DeltaTable, DeltaTableError};
use futures::FutureExt;
use tokio::task::JoinHandle;

use super::follow::LogFollower;

/// The last background checkpoint attempt of a table (benchmarks chart its cost over a
/// table's age; see [`super::TableSink::last_checkpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointWritten {
    /// The version the checkpoint was written at.
    pub version: i64,
    /// Wall time of loading that version and writing the checkpoint, in ms.
    pub ms: u64,
    /// Whether the checkpoint was written (a failure is retried at a later due version).
    pub ok: bool,
    /// When the attempt finished.
    pub finished_at: SystemTime,
}

/// The background checkpoints of one table: at most one runs at a time; a checkpoint that
/// falls due meanwhile waits for it, and of several waiting only the newest is written
/// (readers start from the latest checkpoint anyway).
#[derive(Default)]
pub(super) struct Checkpoints {
    /// Table URI, for logs.
    uri: String,
    /// The checkpoint in flight, if any. It returns the table state it brought forward,
    /// which the follower adopts (so its next refresh replays from there).
    running: Option<JoinHandle<Option<DeltaTable>>>,
    /// A checkpoint that fell due while another was being written.
    due: Option<i64>,
    /// The last finished attempt, set by the background task itself.
    last: Arc<Mutex<Option<CheckpointWritten>>>,
}

impl Checkpoints {
    pub(super) fn new(uri: String) -> Self {
        Checkpoints {
            uri,
            ..Checkpoints::default()
        }
    }

    /// After our commit at `version`: checkpoint when the table's `delta.checkpointInterval`
    /// says one is due there (the rule delta-rs applies inline).
    pub(super) fn commit_landed(&mut self, log: &mut LogFollower, version: i64) {
        self.adopt_finished(log);
        let Ok(snapshot) = log.table().snapshot() else {
            return;
        };
        // Unset means the protocol default of 100.
        let interval = snapshot
            .table_config()
            .checkpoint_interval
            .map_or(100, |n| n.get());
        if (version as u64 + 1).is_multiple_of(interval)
            && let Some(skipped) = self.due.replace(version)
        {
            tracing::debug!(table = %self.uri, skipped, version, "checkpoints fall due faster than they are written; writing the newer one");
        }
        self.start_due(log);
    }

    /// The last finished background checkpoint attempt, if any.
    pub(super) fn last(&self) -> Option<CheckpointWritten> {
        self.last.lock().ok().and_then(|l| *l)
    }

    fn start_due(&mut self, log: &LogFollower) {
        if self.running.is_some() {
            return;
        }
        let Some(version) = self.due.take() else {
            return;
        };
        let mut table = log.table().clone();
        // A checkpoint that waited for another may find the follower's table already past
        // it: delta-rs cannot load a table backwards, and a newer checkpoint serves readers
        // as well (they start from the latest one).
        let version = table.version().map_or(version, |v| version.max(v as i64));
        let uri = self.uri.clone();
        let last = Arc::clone(&self.last);
        self.running = Some(tokio::spawn(async move {
            let started = Instant::now();
            let written = write_at(&mut table, version).await;
            let ms = started.elapsed().as_millis() as u64;
            match &written {
                Ok(()) => tracing::info!(table = %uri, version, ms, "checkpoint written"),
                Err(e) => {
                    tracing::warn!(table = %uri, version, error = %e, "checkpoint failed; a later one will cover it")
                }
            }
            if let Ok(mut l) = last.lock() {
                *l = Some(CheckpointWritten {
                    version,
                    ms,
                    ok: written.is_ok(),
                    finished_at: SystemTime::now(),
                });
            }
            written.is_ok().then_some(table)
        }));
    }

    /// If the background checkpoint finished, hand the table state it loaded to `log`.
    pub(super) fn adopt_finished(&mut self, log: &mut LogFollower) {
        let Some(handle) = self.running.as_mut() else {
            return;
        };
        let Some(done) = handle.now_or_never() else {
            return;
        };
        self.running = None;
        if let Some(table) = done.ok().flatten() {
            log.adopt(table);
        }
    }

    /// Finish background checkpoints, including one still waiting (on shutdown: it saves
    /// the next reader a long log replay).
    pub(super) async fn finish(&mut self, log: &mut LogFollower) {
        loop {
            if let Some(h) = self.running.take()
                && let Some(table) = h.await.ok().flatten()
            {
                log.adopt(table);
            }
            if self.due.is_none() {
                break;
            }
            self.start_due(log);
        }
    }
}

/// Bring `table` to `version` (never backwards) and write its checkpoint.
async fn write_at(table: &mut DeltaTable, version: i64) -> Result<(), DeltaTableError> {
    if table.version().is_none_or(|v| (v as i64) < version) {
        table.update_incremental(Some(version as u64)).await?;
    }
    deltalake::checkpoints::create_checkpoint(table, None).await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::*;
    use crate::config::PipelineConfig;
    use crate::pipeline::Pipeline;
    use crate::source::{Position, RawRecord};

    /// An events table under a fresh folder, at version `versions` (one event a commit).
    async fn table_at(versions: u64) -> String {
        let dir = std::env::temp_dir().join(format!("events-lake-ckpt-{}", uuid::Uuid::new_v4()));
        let config = PipelineConfig::local(&dir, "test");
        let uri = config.tables.events_uri.clone();
        let mut pipeline = Pipeline::open(config).await.expect("open");
        for i in 0..versions {
            let line =
                format!(r#"{{"event_uuid":"u{i}","event_name":"a:b","created_at":1710670530}}"#);
            let record = RawRecord {
                data: Bytes::from(line),
                position: Position::Line(i + 1),
                judged_at: None,
            };
            pipeline
                .process("test", vec![record], vec![], &[], &HashMap::new())
                .await
                .expect("commit");
        }
        uri
    }

    /// A checkpoint that fell due while another was written starts later, when the
    /// follower's table may already be past the due version: it is written (at the newer
    /// version), not dropped because delta-rs cannot load a table backwards.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_due_checkpoint_the_table_moved_past_is_still_written() {
        let uri = table_at(5).await;
        let table = storage::open_table(&uri, &storage::StorageConfig::default())
            .await
            .expect("open");
        assert_eq!(table.version(), Some(5));
        let log = LogFollower::new(uri.clone(), table);
        let mut checkpoints = Checkpoints::new(uri.clone());
        checkpoints.due = Some(2);
        checkpoints.start_due(&log);
        let handle = checkpoints.running.take().expect("started");
        handle.await.expect("task");
        let last = checkpoints.last().expect("attempt recorded");
        assert!(last.ok, "the checkpoint was dropped: {last:?}");
        assert_eq!(last.version, 5);
        let pointer = std::fs::read_to_string(format!("{uri}/_delta_log/_last_checkpoint"))
            .expect("_last_checkpoint");
        assert!(pointer.contains(r#""version":5"#), "{pointer}");
    }
}
