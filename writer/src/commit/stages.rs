//! The stages of one append, each taking the previous one's result:
//!
//! 1. [`TableSink::plan`]: follow the log to the latest version, fence on the expected
//!    `txn` versions, and keep the rows whose key the table does not hold → [`Planned`].
//! 2. [`TableSink::stage`]: one Parquet file per surviving partition, uploaded (files of a
//!    conflicted attempt are reused when their rows are unchanged) → [`Staged`].
//! 3. [`TableSink::commit`]: the log entry for exactly `base + 1`, or a conflict.
//! 4. [`TableSink::committed`]: the key index and the `txn` cache take the commit, and a
//!    checkpoint may fall due.
//!
//! Nothing is visible to readers before stage 3 succeeds: staged files are referenced by no
//! log entry, and are deleted when the append gives up (or left to vacuum after a crash).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deltalake::kernel::transaction::{CommitData, PROTOCOL, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::logstore::CommitOrBytes;
use deltalake::protocol::{DeltaOperation, SaveMode};
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use rayon::prelude::*;
use serde_json::Value;
use storage::LakeError;
use storage::files::{
    PartitionValues, add_action, data_file_path, delete_file, encode_parquet, put_file,
};

use super::{AppendError, AppendOutcome, CommitError, TableSink};
use crate::dedupe::{Found, Key, Scope, UnloadedScopes};
use crate::rows::SinkRows;

/// Commit attempts before giving up (each conflict means another writer made progress).
const MAX_ATTEMPTS: u32 = 200;

/// Where the time of the last attempt went, per stage (for the `append phases` debug log:
/// where a slow commit goes).
#[derive(Debug, Default)]
pub(super) struct Phases {
    /// Following the log to the latest version.
    sync: Duration,
    /// Fencing and the key lookup.
    dedupe: Duration,
    /// Encoding and uploading the Parquet files.
    write_files: Duration,
    /// Writing the log entry.
    commit: Duration,
    /// The key index and `txn` cache taking our commit.
    refresh: Duration,
}

impl Phases {
    pub(super) fn log(&self, uri: &str, outcome: &AppendOutcome) {
        let ms = |d: Duration| d.as_millis() as u64;
        tracing::debug!(
            table = %uri,
            total_ms = outcome.commit_ms,
            sync_ms = ms(self.sync),
            dedupe_ms = ms(self.dedupe),
            write_files_ms = ms(self.write_files),
            commit_ms = ms(self.commit),
            refresh_ms = ms(self.refresh),
            files = outcome.files,
            "append phases"
        );
    }
}

/// The rows of one append, grouped by partition once for all attempts.
pub(super) struct Batch<'r> {
    /// The rows to append (the pipeline's decoded batch).
    rows: &'r dyn SinkRows,
    /// Row indices per partition, computed once so a retry does not group again.
    partitions: Vec<(PartitionValues, Vec<usize>)>,
    /// Rows in all partitions.
    total: usize,
}

impl<'r> Batch<'r> {
    pub(super) fn new(rows: &'r dyn SinkRows) -> Self {
        let partitions = rows.partitions();
        let total = partitions.iter().map(|(_, r)| r.len()).sum();
        Batch {
            rows,
            partitions,
            total,
        }
    }
}

/// Stage 1's result: what to commit on top of version `base`.
pub(super) struct Planned {
    /// The version the plan was checked against; the commit must be `base + 1`.
    base: i64,
    /// Per partition, the rows whose key the table did not hold at `base`.
    survivors: Vec<(PartitionValues, Vec<usize>)>,
    /// Rows dropped because the table held their key.
    pub(super) duplicates: u64,
}

impl Planned {
    /// No row survived.
    pub(super) fn is_empty(&self) -> bool {
        self.survivors.is_empty()
    }
}

/// A data file uploaded but not committed yet.
pub(super) struct StagedFile {
    /// The rows it holds (indices into the append's rows).
    rows: Vec<usize>,
    /// Where it was uploaded (relative to the table root), to delete it if never committed.
    path: String,
    /// The `add` action that commits it.
    add: Add,
}

/// Staged files by partition.
pub(super) type StagedFiles = HashMap<PartitionValues, StagedFile>;

/// Stage 2's result: a plan's files, uploaded, ready to commit at `base + 1`.
pub(super) struct Staged {
    /// The version planned on (from [`Planned::base`]): the commit is `base + 1`.
    base: i64,
    /// The uploaded files, by partition.
    pub(super) files: StagedFiles,
}

impl Staged {
    /// Rows in the staged files.
    pub(super) fn rows(&self) -> usize {
        self.files.values().map(|f| f.rows.len()).sum()
    }
}

impl TableSink {
    /// Stage 1: sync with the log, fence, and filter the batch against the key index.
    pub(super) async fn plan(
        &mut self,
        batch: &Batch<'_>,
        expect: &[(String, Option<i64>)],
        phases: &mut Phases,
    ) -> Result<Planned, AppendError> {
        let t = Instant::now();
        self.sync().await?;
        phases.sync = t.elapsed();
        let t = Instant::now();
        self.fence(expect).await?;
        let existing = self.lookup(batch).await?;
        phases.dedupe = t.elapsed();
        let Some(base) = self.log.version() else {
            return Err(LakeError::Invariant {
                table: self.uri.clone(),
                detail: "table has no version".into(),
            }
            .into());
        };
        let mut survivors = Vec::new();
        for (pv, idx) in &batch.partitions {
            let keep: Vec<usize> = match existing.get(&self.index.scope_of(pv)) {
                Some(found) => idx
                    .iter()
                    .copied()
                    .filter(|&i| !found.contains(batch.rows.key(i)))
                    .collect(),
                None => idx.clone(),
            };
            if !keep.is_empty() {
                survivors.push((pv.clone(), keep));
            }
        }
        let kept: usize = survivors.iter().map(|(_, r)| r.len()).sum();
        Ok(Planned {
            base,
            survivors,
            duplicates: (batch.total - kept) as u64,
        })
    }

    /// Each `(app_id, version)` of `expect` must be the table's `txn` version for that app.
    async fn fence(&mut self, expect: &[(String, Option<i64>)]) -> Result<(), AppendError> {
        for (app, want) in expect {
            let have = self.log.txn_version(app).await?;
            if have != *want {
                return Err(AppendError::Fenced {
                    app_id: app.clone(),
                    expected: *want,
                    found: have,
                });
            }
        }
        Ok(())
    }

    /// The batch's keys the table already holds, per scope.
    async fn lookup(&mut self, batch: &Batch<'_>) -> Result<Found, LakeError> {
        let mut candidates: HashMap<Scope, Vec<&Key>> = HashMap::new();
        for (pv, idx) in &batch.partitions {
            candidates
                .entry(self.index.scope_of(pv))
                .or_default()
                .extend(idx.iter().map(|&i| batch.rows.key(i)));
        }
        let missing = self.index.unloaded(&candidates);
        let unloaded = if missing.is_empty() {
            UnloadedScopes::default()
        } else {
            let table = self.log.table_at_version().await?;
            self.index.live_files(table, missing)?
        };
        self.index
            .existing(self.log.store(), &candidates, unloaded)
            .await
    }

    /// Stage 2: reuse the `previous` files whose rows did not change, delete the others,
    /// and write and upload the rest.
    pub(super) async fn stage(
        &self,
        batch: &Batch<'_>,
        plan: Planned,
        mut previous: StagedFiles,
        phases: &mut Phases,
    ) -> Result<Staged, LakeError> {
        let mut to_write = Vec::new();
        let mut stale = Vec::new();
        let mut files = StagedFiles::new();
        for (pv, keep) in plan.survivors {
            match previous.remove(&pv) {
                Some(f) if f.rows == keep => {
                    files.insert(pv, f);
                }
                other => {
                    stale.extend(other);
                    to_write.push((pv, keep));
                }
            }
        }
        stale.extend(previous.into_values());
        let t = Instant::now();
        self.discard(stale).await;
        files.extend(self.upload(batch.rows, to_write).await?);
        phases.write_files = t.elapsed();
        Ok(Staged {
            base: plan.base,
            files,
        })
    }

    /// Encode (in parallel, on the rayon pool) and upload (concurrently) one file per
    /// partition.
    async fn upload(
        &self,
        rows: &dyn SinkRows,
        parts: Vec<(PartitionValues, Vec<usize>)>,
    ) -> Result<Vec<(PartitionValues, StagedFile)>, LakeError> {
        let uri = self.uri.as_str();
        let encoded: Vec<Result<_, LakeError>> = tokio::task::block_in_place(|| {
            parts
                .into_par_iter()
                .map(|(pv, keep)| {
                    let batch = rows.to_batch(&keep).map_err(|e| LakeError::Schema {
                        table: uri.to_string(),
                        detail: format!("building rows: {e}"),
                    })?;
                    let bytes = encode_parquet(&batch, uri)?;
                    let path = data_file_path(&pv, &uuid::Uuid::new_v4().to_string());
                    let add = add_action(&path, bytes.len(), &batch, &pv);
                    Ok((
                        pv,
                        StagedFile {
                            rows: keep,
                            path,
                            add,
                        },
                        bytes,
                    ))
                })
                .collect()
        });
        let encoded: Vec<_> = encoded.into_iter().collect::<Result<_, _>>()?;
        let store = self.log.store();
        let store = store.as_ref();
        futures::stream::iter(encoded)
            .map(|(pv, file, bytes)| async move {
                put_file(store, uri, &file.path, bytes).await?;
                Ok::<_, LakeError>((pv, file))
            })
            .buffer_unordered(16)
            .try_collect()
            .await
    }

    /// Delete staged files no commit will reference.
    pub(super) async fn discard(&self, files: impl IntoIterator<Item = StagedFile>) {
        let store = self.log.store();
        for f in files {
            if let Err(e) = delete_file(store.as_ref(), &self.uri, &f.path).await {
                tracing::warn!(table = %self.uri, error = %e, "could not delete an uncommitted file; vacuum will");
            }
        }
    }

    /// Stage 3: the log entry for exactly `base + 1`: `commitInfo` (operation WRITE/Append
    /// plus `metadata`), the adds and the `txn`s, serialized by delta-rs. Another writer
    /// having taken the version is a [`CommitError::Conflict`].
    pub(super) async fn commit(
        &mut self,
        staged: &Staged,
        metadata: &HashMap<String, Value>,
        txns: &[Transaction],
        phases: &mut Phases,
    ) -> Result<i64, CommitError> {
        let t = Instant::now();
        let version = staged.base + 1;
        let actions: Vec<Action> = staged
            .files
            .values()
            .map(|f| Action::Add(f.add.clone()))
            .collect();
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(
                self.def
                    .partition_columns
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            predicate: None,
        };
        let table = self
            .log
            .table_for_commit()
            .await
            .map_err(CommitError::Lake)?;
        let snapshot = table.snapshot().map_err(CommitError::Failed)?;
        PROTOCOL
            .can_commit(snapshot, &actions, &op)
            .map_err(|e| CommitError::Failed(e.into()))?;
        let data = CommitData::new(actions, op, metadata.clone(), txns.to_vec());
        let bytes = data
            .get_bytes()
            .map_err(|e| CommitError::Failed(e.into()))?;
        let written = table
            .log_store()
            .write_commit_entry(
                version as u64,
                CommitOrBytes::LogBytes(bytes),
                uuid::Uuid::new_v4(),
            )
            .await;
        phases.commit = t.elapsed();
        match written {
            Ok(()) => Ok(version),
            Err(TransactionError::VersionAlreadyExists(_)) => Err(CommitError::Conflict),
            Err(e) => Err(CommitError::Failed(e.into())),
        }
    }

    /// Stage 4: our commit at `version` landed; the follower, the `txn` cache and the key
    /// index take it, and a checkpoint may fall due.
    pub(super) fn committed(
        &mut self,
        version: i64,
        batch: &Batch<'_>,
        staged: &Staged,
        txns: &[Transaction],
        phases: &mut Phases,
    ) {
        let t = Instant::now();
        let scopes: Vec<(Scope, &StagedFile)> = (staged.files.iter())
            .map(|(pv, f)| (self.index.scope_of(pv), f))
            .collect();
        let keys = (scopes.iter())
            .flat_map(|(scope, f)| f.rows.iter().map(move |&i| (scope, batch.rows.key(i))));
        self.index.committed(keys);
        self.log.committed(version, txns);
        phases.refresh = t.elapsed();
        self.checkpoints.commit_landed(&mut self.log, version);
    }

    /// After a conflict: follow the log thoroughly next time, give up after
    /// [`MAX_ATTEMPTS`] (deleting the staged files), else back off and hand the files back
    /// for the next attempt.
    pub(super) async fn after_conflict(
        &mut self,
        conflicts: u32,
        staged: Staged,
    ) -> Result<StagedFiles, AppendError> {
        self.conflicted = true;
        if conflicts >= MAX_ATTEMPTS {
            self.discard(staged.files.into_values()).await;
            return Err(LakeError::Contention {
                table: self.uri.clone(),
                attempts: MAX_ATTEMPTS,
            }
            .into());
        }
        let backoff = rand::rng().random_range(5..50u64) * u64::from(conflicts.min(10));
        tracing::debug!(table = %self.uri, base = staged.base, conflicts, "commit conflict, retrying");
        tokio::time::sleep(Duration::from_millis(backoff)).await;
        Ok(staged.files)
    }
}
