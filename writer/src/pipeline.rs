//! One batch at a time: decode → reject → dedupe → commit, with the accounting that proves
//! nothing was lost: `read = written + duplicates + rejected`, per batch and in total.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use hashbrown::HashSet;
use schemas::table::{EVENT_TYPE, EVENTS, REJECTED};
use schemas::{PartitionRules, RejectReason, ValidationRules};
use serde::Serialize;
use serde_json::{Value, json};
use storage::LakeError;

use crate::batch::Batcher;
use crate::commit::{AppendError, AppendOutcome, TableSink};
use crate::config::PipelineConfig;
use crate::decode::{Decoded, RejectRow, decode_batch};
use crate::rows::{EventRows, Lineage, RejectRows};
use crate::source::{RawRecord, Source, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("batch aborted: an earlier commit of the same batch failed")]
    Aborted,
    #[error("decoding worker failed: {0}")]
    Worker(String),
    #[error("fenced: txn {app_id} is at {found:?}, expected {expected:?}")]
    Fenced {
        app_id: String,
        expected: Option<i64>,
        found: Option<i64>,
    },
}

impl From<AppendError> for PipelineError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Lake(l) => PipelineError::Lake(l),
            AppendError::Aborted => PipelineError::Aborted,
            AppendError::Fenced {
                app_id,
                expected,
                found,
            } => PipelineError::Fenced {
                app_id,
                expected,
                found,
            },
        }
    }
}

/// Counts for one batch or a whole run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Records read (every one ends up written, a duplicate or rejected).
    pub read: u64,
    /// Events newly written to the events table.
    pub written: u64,
    /// Duplicates within a batch plus duplicates of rows already in the table.
    pub duplicates: u64,
    /// Records rejected (malformed, invalid, or refused partition), whether or not the
    /// rejected table already held them.
    pub rejected: u64,
    /// Rejections newly recorded (a re-read rejection is counted in `rejected` only).
    pub rejected_written: u64,
}

impl Counts {
    /// Add another batch's counts (run totals are sums of batch counts).
    pub fn add(&mut self, o: &Counts) {
        self.read += o.read;
        self.written += o.written;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        self.rejected_written += o.rejected_written;
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// What became of the batch's records.
    pub counts: Counts,
    /// Events table version committed, when anything was.
    pub events_version: Option<i64>,
    /// Rejected table version committed, when anything was.
    pub rejected_version: Option<i64>,
    /// Preparing plus committing both tables, in ms (the `commit_ms` of the batch log).
    pub commit_ms: u64,
    /// Commit conflicts of both tables' appends together.
    pub conflicts: u32,
}

/// A batch decoded, validated, enriched and deduplicated within itself: the CPU-bound half
/// of processing, which needs no table. `writer ingest` prepares the next batch while the
/// previous one commits.
pub struct Prepared {
    /// The batch as read: positions, and the raw bytes of the records rejected (those of
    /// events are dropped once decoded, see [`Prepared::new`]).
    records: Vec<RawRecord>,
    /// Each record decoded (events and per-record rejections).
    decoded: Decoded,
    /// Indices of the events kept after in-batch dedupe.
    keep: Vec<usize>,
    /// Events dropped because an earlier event of the batch had the same key and scope.
    in_batch_dups: u64,
    /// The instant the batch is judged against (validation) and stamped with (lineage).
    now: chrono::DateTime<chrono::Utc>,
    /// Time spent preparing (reported as part of the batch's processing time).
    prepare_time: std::time::Duration,
}

impl Prepared {
    /// Decode in parallel (rayon), then drop in-batch duplicates. Call off the async
    /// runtime's worker threads (it is CPU-bound).
    ///
    /// `keep_event_raw`: keep every record's raw bytes, not only the rejected ones' (the
    /// new-partition cap may still turn events into rejections, which store their bytes).
    pub fn new(
        mut records: Vec<RawRecord>,
        rules: &ValidationRules,
        partitions: &PartitionRules,
        keep_event_raw: bool,
    ) -> Self {
        let started = Instant::now();
        let now = chrono::Utc::now();
        let decoded = decode_batch(&records, rules, partitions, now.timestamp());
        if !keep_event_raw {
            drop_event_raw(&mut records, &decoded);
        }
        // In-batch dedupe: first occurrence wins (decode preserves input order). Scoped to
        // the partition like the table check, so the result never depends on where batch
        // boundaries fall.
        let mut seen: HashSet<(&str, i32, &crate::dedupe::Key)> =
            HashSet::with_capacity(decoded.events.len());
        let keep: Vec<usize> = (0..decoded.events.len())
            .filter(|&i| {
                let e = &decoded.events[i];
                seen.insert((e.event_type(), e.created_days, &e.key))
            })
            .collect();
        drop(seen);
        let in_batch_dups = (decoded.events.len() - keep.len()) as u64;
        Prepared {
            records,
            decoded,
            keep,
            in_batch_dups,
            now,
            prepare_time: started.elapsed(),
        }
    }
}

/// Release the input bytes of the records that became events: every field they need is
/// owned by the decoded event, and only a rejection stores its raw bytes. A record is a slice
/// of one of the reader's multi-megabyte chunks, and a single record still referenced keeps
/// its whole chunk alive, so rejected records get their own copy. Without this the input of
/// a batch (~60 MB per 200k events) stayed resident until its commit finished, for two
/// batches at once (issue 16, peak RSS).
fn drop_event_raw(records: &mut [RawRecord], decoded: &Decoded) {
    let mut rejected = vec![false; records.len()];
    for r in &decoded.rejects {
        if let Some(flag) = rejected.get_mut(r.record as usize) {
            *flag = true;
        }
    }
    for (rec, rejected) in records.iter_mut().zip(rejected) {
        rec.data = if rejected {
            bytes::Bytes::copy_from_slice(&rec.data)
        } else {
            bytes::Bytes::new()
        };
    }
}

// ---- Partition-value policy (issue 11, defect 7) -----------------------------------------

/// What may become an `event_type` partition: the per-record rules
/// ([`schemas::PartitionRules`]: pattern, allowlist; applied while decoding) and a bound on
/// how many `event_type` partitions not yet in the table one batch may create.
///
/// The cap limits the blast radius of garbage that happens to match the pattern (random
/// lowercase words would otherwise make one folder, one file and one Glue partition per
/// record). The first N new types of a batch, in input order, are admitted; every event of
/// a type beyond them is rejected with `too_many_new_partitions`, so the batch still
/// commits. Unlike the per-record rules this depends on the table and on batch boundaries,
/// so the same record may be admitted in a later batch — even in a replay after a crash
/// between the two tables' commits, leaving it in both. That is why the cap is off by
/// default (README, "Partition values"); its rejections are meant to be replayed once the
/// types are reviewed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionPolicy {
    /// The per-record rules (pattern, allowlist) an `event_type` must pass.
    pub rules: PartitionRules,
    /// `None`: no cap. `Some(0)`: no new event types at all (only existing partitions).
    pub max_new_partitions_per_batch: Option<usize>,
}

/// The new-partition cap applied to one batch.
struct CapOutcome {
    /// Event types new to the table that the batch may create (input order).
    admitted: Vec<String>,
    /// When some types were refused: the batch's rejections with the capped events added
    /// (in record order), the kept events without them, and the in-batch duplicates left
    /// (a duplicate of a refused event is refused too, not counted as a duplicate).
    refused: Option<(Vec<RejectRow>, Vec<usize>, u64)>,
}

impl CapOutcome {
    /// The batch's rejections, kept events and in-batch duplicates once the cap applied.
    fn applied_to<'p>(&'p self, prepared: &'p Prepared) -> (&'p [RejectRow], &'p [usize], u64) {
        match &self.refused {
            Some((rejects, keep, dups)) => (rejects, keep, *dups),
            None => (
                &prepared.decoded.rejects,
                &prepared.keep,
                prepared.in_batch_dups,
            ),
        }
    }
}

impl PartitionPolicy {
    /// Whether decoded records must keep their input bytes past decoding: only the
    /// new-partition cap can turn an accepted event into a rejected one (which stores its
    /// raw input), so without a cap the bytes are released as soon as a batch is decoded.
    fn keeps_raw(&self) -> bool {
        self.max_new_partitions_per_batch.is_some()
    }

    fn cap(
        &self,
        known: &HashSet<String>,
        decoded: &Decoded,
        keep: &[usize],
        in_batch_dups: u64,
    ) -> CapOutcome {
        let Some(cap) = self.max_new_partitions_per_batch else {
            return CapOutcome {
                admitted: Vec::new(),
                refused: None,
            };
        };
        let mut admitted: Vec<&str> = Vec::new();
        let mut admitted_set: HashSet<&str> = HashSet::new();
        let mut refused: HashSet<&str> = HashSet::new();
        for e in &decoded.events {
            let t = e.event_type();
            if known.contains(t) || admitted_set.contains(t) || refused.contains(t) {
                continue;
            }
            if admitted.len() < cap {
                admitted.push(t);
                admitted_set.insert(t);
            } else {
                refused.insert(t);
            }
        }
        let admitted_owned = admitted.iter().map(|t| (*t).to_string()).collect();
        if refused.is_empty() {
            return CapOutcome {
                admitted: admitted_owned,
                refused: None,
            };
        }
        let message = format!(
            "event_type would be one of more than {cap} event types new to the table in \
             one batch (max_new_partitions_per_batch); replay the record once the type is \
             expected, or raise the cap"
        );
        let mut rejects = decoded.rejects.clone();
        let mut refused_events = 0u64;
        for e in &decoded.events {
            if refused.contains(e.event_type()) {
                refused_events += 1;
                rejects.push(RejectRow {
                    reason: RejectReason::TooManyNewPartitions,
                    message: message.clone(),
                    record: e.record,
                });
            }
        }
        rejects.sort_by_key(|r| r.record);
        let kept: Vec<usize> = keep
            .iter()
            .copied()
            .filter(|&i| !refused.contains(decoded.events[i].event_type()))
            .collect();
        let refused_kept = (keep.len() - kept.len()) as u64;
        let dups = in_batch_dups.saturating_sub(refused_events - refused_kept);
        CapOutcome {
            admitted: admitted_owned,
            refused: Some((rejects, kept, dups)),
        }
    }
}

/// The `event_type` values of the table's live files at the loaded version: the partitions
/// that already exist, for the new-partition cap. Read once at open from the file list
/// delta-rs loads anyway, then kept current with this writer's own commits. A partition
/// another writer creates meanwhile counts as new here until this writer writes to it,
/// which can only make the cap stricter.
fn existing_event_types(table: &DeltaTable, uri: &str) -> Result<HashSet<String>, LakeError> {
    let snapshot = table
        .snapshot()
        .map_err(|e| LakeError::delta(uri, "snapshot", e))?;
    Ok(snapshot
        .log_data()
        .iter()
        .filter_map(|f| f.partition_values_map().remove(EVENT_TYPE).flatten())
        .collect())
}

// ---- end of partition-value policy ------------------------------------------------------

/// The two tables and the rules, ready to take batches from any source.
pub struct Pipeline {
    /// Validation and partition rules, writer id (commit metadata) and table locations,
    /// kept for every batch and for the summary.
    config: PipelineConfig,
    /// `event_type` partitions known to exist (see [`existing_event_types`]).
    known_event_types: HashSet<String>,
    /// The events table: valid, deduplicated events.
    pub events: TableSink,
    /// The rejected-events table: every refused record with its reason; committed before
    /// the events of the same batch.
    pub rejected: TableSink,
}

impl Pipeline {
    /// Open (creating on first use) both tables.
    pub async fn open(config: PipelineConfig) -> Result<Self, PipelineError> {
        let t = &config.tables;
        let events = storage::open_or_create(&t.events_uri, &EVENTS, &t.storage).await?;
        let known_event_types = existing_event_types(&events, &t.events_uri)?;
        let rejected = storage::open_or_create(&t.rejected_uri, &REJECTED, &t.storage).await?;
        let budget = config.dedupe.memory_budget_bytes;
        let idle = config.dedupe.idle_evict;
        let events = TableSink::new(t.events_uri.clone(), events, &EVENTS, budget, idle);
        // The rejected table is small; a fixed slice of the budget is plenty.
        let rejected = TableSink::new(
            t.rejected_uri.clone(),
            rejected,
            &REJECTED,
            (budget / 8).max(16 << 20),
            idle,
        );
        Ok(Pipeline {
            config,
            known_event_types,
            events,
            rejected,
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    pub fn policy(&self) -> &PartitionPolicy {
        &self.config.partition
    }

    /// Process one batch. `txns` are committed atomically with the events (the Kinesis
    /// checkpoint); `extra_meta` is added to both commits' `commitInfo`.
    pub async fn process(
        &mut self,
        source: &str,
        records: Vec<RawRecord>,
        txns: Vec<Transaction>,
        expect: &[(String, Option<i64>)],
        extra_meta: &HashMap<String, Value>,
    ) -> Result<BatchReport, PipelineError> {
        let rules = self.config.validation;
        let partitions = &self.config.partition.rules;
        let keep_raw = self.config.partition.keeps_raw();
        let prepared =
            tokio::task::block_in_place(|| Prepared::new(records, &rules, partitions, keep_raw));
        self.commit(source, &prepared, txns, expect, extra_meta)
            .await
    }

    /// Commit a [`Prepared`] batch: rejections, then events with `txns`, deduplicated
    /// against the table.
    pub async fn commit(
        &mut self,
        source: &str,
        prepared: &Prepared,
        txns: Vec<Transaction>,
        expect: &[(String, Option<i64>)],
        extra_meta: &HashMap<String, Value>,
    ) -> Result<BatchReport, PipelineError> {
        let started = Instant::now();
        let Prepared {
            records, decoded, ..
        } = prepared;
        // The new-partition cap: events of types beyond it become rejections before
        // anything is written (see `PartitionPolicy`).
        let capped = self.config.partition.cap(
            &self.known_event_types,
            decoded,
            &prepared.keep,
            prepared.in_batch_dups,
        );
        let (rejects, keep, in_batch_dups) = capped.applied_to(prepared);
        let lineage = Lineage::new(source, records, prepared.now.timestamp_micros());
        let mut counts = Counts {
            read: records.len() as u64,
            rejected: rejects.len() as u64,
            ..Counts::default()
        };
        let valid = decoded.events.len() - rejects.len().saturating_sub(decoded.rejects.len());
        let meta = self.commit_meta(source, records, extra_meta);
        let reject_rows = RejectRows::new(rejects, &lineage);
        let reject_meta = with_counts(&meta, json!({"rejected": rejects.len()}));
        let event_rows = EventRows {
            rows: &decoded.events,
            keep,
            lineage: &lineage,
        };
        let event_meta = with_counts(
            &meta,
            json!({"read": counts.read, "valid": valid, "rejected": counts.rejected, "duplicates_in_batch": in_batch_dups}),
        );
        let rejected = (!rejects.is_empty()).then_some((&reject_rows, reject_meta));
        let events = (&event_rows, event_meta);
        let (rejected, events) = self.append_both(rejected, events, txns, expect).await;
        let mut report = BatchReport::default();
        if let Some(out) = rejected? {
            counts.rejected_written = out.written;
            report.rejected_version = out.version;
            report.conflicts += out.conflicts;
        }
        let out = events?;
        self.known_event_types.extend(capped.admitted);
        counts.written = out.written;
        counts.duplicates = in_batch_dups + out.duplicates;
        report.events_version = out.version;
        report.conflicts += out.conflicts;
        report.counts = counts;
        report.commit_ms = (prepared.prepare_time + started.elapsed()).as_millis() as u64;
        debug_assert_eq!(
            counts.read,
            counts.written + counts.duplicates + counts.rejected
        );
        Ok(report)
    }

    /// Append the rejections (when there are any) and the events, with their metadata.
    ///
    /// Rejections commit first: they are idempotent (keyed by origin), so if we crash
    /// before the events commit, replaying the batch cannot record them twice; the events
    /// commit (which carries the source positions) must never land without them. The two
    /// appends still overlap: only the events *commit* waits for the rejected one.
    async fn append_both(
        &mut self,
        rejected: Option<(&RejectRows<'_>, HashMap<String, Value>)>,
        (events, event_meta): (&EventRows<'_>, HashMap<String, Value>),
        txns: Vec<Transaction>,
        expect: &[(String, Option<i64>)],
    ) -> (
        Result<Option<AppendOutcome>, AppendError>,
        Result<AppendOutcome, AppendError>,
    ) {
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel();
        let rejected_sink = &mut self.rejected;
        let rejected = async {
            let out = match rejected {
                None => Ok(None),
                Some((rows, meta)) => rejected_sink
                    .append(rows, meta, Vec::new(), &[])
                    .await
                    .map(Some),
            };
            let _ = gate_tx.send(out.is_ok());
            out
        };
        let events = self
            .events
            .append_after(events, event_meta, txns, expect, Some(gate_rx));
        tokio::join!(rejected, events)
    }

    /// The `commitInfo` fields both tables' commits share: who wrote it, from where, plus
    /// the caller's.
    fn commit_meta(
        &self,
        source: &str,
        records: &[RawRecord],
        extra_meta: &HashMap<String, Value>,
    ) -> HashMap<String, Value> {
        let mut meta = extra_meta.clone();
        meta.insert(
            "writer".into(),
            json!({"id": self.config.writer_id, "version": env!("CARGO_PKG_VERSION")}),
        );
        meta.insert(
            "source".into(),
            json!({"name": source, "positions": position_ranges(records)}),
        );
        meta
    }
}

/// `meta` with the commit's `counts`.
fn with_counts(meta: &HashMap<String, Value>, counts: Value) -> HashMap<String, Value> {
    let mut meta = meta.clone();
    meta.insert("counts".into(), counts);
    meta
}

/// First and last position per shard (or of the file), for the commit's audit trail.
fn position_ranges(records: &[RawRecord]) -> Value {
    let mut ranges: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in records {
        let shard = r.position.shard().unwrap_or("").to_string();
        let pos = r.position.position_text();
        ranges
            .entry(shard)
            .and_modify(|e| e.1 = pos.clone())
            .or_insert_with(|| (pos.clone(), pos));
    }
    Value::Array(
        ranges
            .into_iter()
            .map(|(shard, (first, last))| {
                if shard.is_empty() {
                    json!({"first": first, "last": last})
                } else {
                    json!({"shard": shard, "first": first, "last": last})
                }
            })
            .collect(),
    )
}

/// The result of `writer ingest`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    /// The run's totals, flattened into the summary's top level.
    #[serde(flatten)]
    pub counts: Counts,
    /// Events table version at the end (`None`: no version yet).
    pub table_version: Option<i64>,
    /// Rejected table version at the end.
    pub rejected_table_version: Option<i64>,
    /// Batches committed.
    pub batches: u64,
    /// Commit conflicts over all batches (other writers committing at the same time).
    pub commit_conflicts: u64,
    /// Empty input lines, skipped without being counted as read.
    pub blank_lines: u64,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// `read` per second of wall time, rounded.
    pub events_per_sec: f64,
    /// The events table's dedupe counters (cost of keeping the key index).
    pub dedupe_index: crate::dedupe::IndexStats,
}

impl IngestSummary {
    fn new(pipeline: &Pipeline, run: RunTotals, blank_lines: u64, took: Duration) -> Self {
        let secs = took.as_secs_f64();
        IngestSummary {
            counts: run.counts,
            table_version: pipeline.events.version(),
            rejected_table_version: pipeline.rejected.version(),
            batches: run.batches,
            commit_conflicts: run.conflicts,
            blank_lines,
            duration_ms: (secs * 1000.0) as u64,
            events_per_sec: if secs > 0.0 {
                (run.counts.read as f64 / secs).round()
            } else {
                0.0
            },
            dedupe_index: pipeline.events.index_stats(),
        }
    }
}

/// What a run has committed so far.
#[derive(Debug, Default)]
struct RunTotals {
    /// Sum of the committed batches' counts.
    counts: Counts,
    /// Batches committed.
    batches: u64,
    /// Commit conflicts over those batches.
    conflicts: u64,
}

impl RunTotals {
    /// Count (and log) one committed batch.
    fn add(&mut self, report: &BatchReport) {
        self.batches += 1;
        self.conflicts += u64::from(report.conflicts);
        self.counts.add(&report.counts);
        tracing::info!(
            batch = self.batches,
            read = report.counts.read,
            written = report.counts.written,
            duplicates = report.counts.duplicates,
            rejected = report.counts.rejected,
            version = report.events_version,
            commit_ms = report.commit_ms,
            "batch committed"
        );
    }
}

/// Ingest a finite source to its end.
pub async fn ingest<S: Source>(
    config: PipelineConfig,
    mut source: S,
    blank_lines: impl Fn(&S) -> u64,
) -> Result<IngestSummary, PipelineError> {
    let started = Instant::now();
    let mut pipeline = Pipeline::open(config).await?;
    let partitions = Arc::new(pipeline.policy().rules.clone());
    let keep_raw = pipeline.policy().keeps_raw();
    let rules = pipeline.config().validation;
    let mut batcher = Batcher::new(pipeline.config().flush);
    let name: Arc<str> = source.name();
    let mut run = RunTotals::default();
    // Two stages in flight: batch N commits while batch N+1 is decoded on the blocking pool.
    // Commits stay strictly in input order, so "first write wins" holds across batches.
    let mut ready: Option<Prepared> = None;
    let mut source_done = false;
    loop {
        let mut decoding = None;
        if !source_done {
            let batch = batcher.next(&mut source).await?;
            source_done = batch.end;
            if !batch.records.is_empty() {
                let records = batch.records;
                let partitions = Arc::clone(&partitions);
                decoding = Some(tokio::task::spawn_blocking(move || {
                    Prepared::new(records, &rules, &partitions, keep_raw)
                }));
            }
        }
        if let Some(prepared) = ready.take() {
            let report = pipeline
                .commit(&name, &prepared, Vec::new(), &[], &HashMap::new())
                .await?;
            run.add(&report);
        }
        if let Some(d) = decoding {
            ready = Some(d.await.map_err(|e| PipelineError::Worker(e.to_string()))?);
        }
        if source_done && ready.is_none() {
            break;
        }
    }
    pipeline.events.finish_maintenance().await;
    pipeline.rejected.finish_maintenance().await;
    let blank = blank_lines(&source);
    Ok(IngestSummary::new(&pipeline, run, blank, started.elapsed()))
}
