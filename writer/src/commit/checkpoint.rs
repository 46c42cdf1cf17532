//! Checkpoints written in the background, off the commit path.
//!
//! delta-rs would write a checkpoint inline every `checkpointInterval` commits; here one due
//! at a version is written by a background task while the next batch is read and committed.
//! A checkpoint is an optimisation for readers, never needed for correctness, so a failure
//! is logged and the next due version tries again; a crash mid-way leaves at most an
//! unreferenced file (the checkpoint is one PUT, `_last_checkpoint` another).

use std::time::Instant;

use deltalake::DeltaTable;
use futures::FutureExt;
use tokio::task::JoinHandle;

use super::follow::LogFollower;

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

    fn start_due(&mut self, log: &LogFollower) {
        if self.running.is_some() {
            return;
        }
        let Some(version) = self.due.take() else {
            return;
        };
        let mut table = log.table().clone();
        let uri = self.uri.clone();
        self.running = Some(tokio::spawn(async move {
            let started = Instant::now();
            if let Err(e) = table.update_incremental(Some(version as u64)).await {
                tracing::warn!(table = %uri, version, error = %e, "checkpoint: could not load the version; a later one will cover it");
                return None;
            }
            match deltalake::checkpoints::create_checkpoint(&table, None).await {
                Ok(()) => {
                    tracing::info!(table = %uri, version, ms = started.elapsed().as_millis() as u64, "checkpoint written")
                }
                Err(e) => {
                    tracing::warn!(table = %uri, version, error = %e, "checkpoint failed; a later one will cover it")
                }
            }
            Some(table)
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
