//! One batch at a time: decode → reject → dedupe → commit, with the accounting that proves
//! nothing was lost: `read = written + duplicates + rejected`, per batch and in total.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use deltalake::kernel::Transaction;
use hashbrown::HashSet;
use schemas::ValidationRules;
use schemas::table::{EVENTS, REJECTED};
use serde::Serialize;
use serde_json::{Value, json};
use storage::LakeError;

use crate::batch::Batcher;
use crate::commit::{AppendError, TableSink};
use crate::config::PipelineConfig;
use crate::decode::{Decoded, decode_batch};
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
    pub read: u64,
    pub written: u64,
    /// Duplicates within a batch plus duplicates of rows already in the table.
    pub duplicates: u64,
    pub rejected: u64,
    /// Rejections newly recorded (a re-read rejection is counted in `rejected` only).
    pub rejected_written: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
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
    pub counts: Counts,
    pub events_version: Option<i64>,
    pub rejected_version: Option<i64>,
    pub commit_ms: u64,
    pub conflicts: u32,
}

/// A batch decoded, validated, enriched and deduplicated within itself: the CPU-bound half
/// of processing, which needs no table. `writer ingest` prepares the next batch while the
/// previous one commits.
pub struct Prepared {
    records: Vec<RawRecord>,
    decoded: Decoded,
    /// Indices of the events kept after in-batch dedupe.
    keep: Vec<usize>,
    in_batch_dups: u64,
    /// The instant the batch is judged against (validation) and stamped with (lineage).
    now: chrono::DateTime<chrono::Utc>,
    /// Time spent preparing (reported as part of the batch's processing time).
    prepare_time: std::time::Duration,
}

impl Prepared {
    /// Decode in parallel (rayon), then drop in-batch duplicates. Call off the async
    /// runtime's worker threads (it is CPU-bound).
    pub fn new(records: Vec<RawRecord>, rules: &ValidationRules) -> Self {
        let started = Instant::now();
        let now = chrono::Utc::now();
        let decoded = decode_batch(&records, rules, now.timestamp());
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

/// The two tables and the rules, ready to take batches from any source.
pub struct Pipeline {
    config: PipelineConfig,
    pub events: TableSink,
    pub rejected: TableSink,
}

impl Pipeline {
    /// Open (creating on first use) both tables.
    pub async fn open(config: PipelineConfig) -> Result<Self, PipelineError> {
        let t = &config.tables;
        let events = storage::open_or_create(&t.events_uri, &EVENTS, &t.storage).await?;
        let rejected = storage::open_or_create(&t.rejected_uri, &REJECTED, &t.storage).await?;
        let budget = config.dedupe.memory_budget_bytes;
        let events = TableSink::new(t.events_uri.clone(), events, &EVENTS, budget);
        // The rejected table is small; a fixed slice of the budget is plenty.
        let rejected = TableSink::new(
            t.rejected_uri.clone(),
            rejected,
            &REJECTED,
            (budget / 8).max(16 << 20),
        );
        Ok(Pipeline {
            config,
            events,
            rejected,
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
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
        let prepared = tokio::task::block_in_place(|| Prepared::new(records, &rules));
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
            records,
            decoded,
            keep,
            in_batch_dups,
            now,
            ..
        } = prepared;
        let (records, keep, in_batch_dups) = (records.as_slice(), keep.as_slice(), *in_batch_dups);
        let at_micros = now.timestamp_micros();
        let lineage = || Lineage {
            source,
            records,
            at_micros,
        };

        let mut counts = Counts {
            read: records.len() as u64,
            rejected: decoded.rejects.len() as u64,
            ..Counts::default()
        };
        let mut meta = extra_meta.clone();
        meta.insert(
            "writer".into(),
            json!({"id": self.config.writer_id, "version": env!("CARGO_PKG_VERSION")}),
        );
        meta.insert(
            "source".into(),
            json!({"name": source, "positions": position_ranges(records)}),
        );

        // Rejections commit first: they are idempotent (keyed by origin), so if we crash
        // before the events commit, replaying the batch cannot record them twice; the events
        // commit (which carries the source positions) must never land without them. The two
        // appends still overlap: only the events *commit* waits for the rejected one.
        let mut report = BatchReport::default();
        let reject_rows = RejectRows::new(&decoded.rejects, lineage());
        let mut reject_meta = meta.clone();
        reject_meta.insert("counts".into(), json!({"rejected": decoded.rejects.len()}));
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel();
        let rejected_sink = &mut self.rejected;
        let rejected = async {
            let out = if decoded.rejects.is_empty() {
                Ok(None)
            } else {
                rejected_sink
                    .append(&reject_rows, reject_meta, Vec::new(), &[])
                    .await
                    .map(Some)
            };
            let _ = gate_tx.send(out.is_ok());
            out
        };
        let rows = EventRows {
            rows: &decoded.events,
            keep,
            lineage: lineage(),
        };
        let mut m = meta;
        m.insert(
            "counts".into(),
            json!({"read": counts.read, "valid": decoded.events.len(), "rejected": counts.rejected, "duplicates_in_batch": in_batch_dups}),
        );
        let events = self
            .events
            .append_after(&rows, m, txns, expect, Some(gate_rx));
        let (rejected, events) = tokio::join!(rejected, events);
        if let Some(out) = rejected? {
            counts.rejected_written = out.written;
            report.rejected_version = out.version;
            report.conflicts += out.conflicts;
        }
        let out = events?;
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
    #[serde(flatten)]
    pub counts: Counts,
    pub table_version: Option<i64>,
    pub rejected_table_version: Option<i64>,
    pub batches: u64,
    pub commit_conflicts: u64,
    pub blank_lines: u64,
    pub duration_ms: u64,
    pub events_per_sec: f64,
    pub dedupe_index: crate::dedupe::IndexStats,
}

/// Ingest a finite source to its end.
pub async fn ingest<S: Source>(
    config: PipelineConfig,
    mut source: S,
    blank_lines: impl Fn(&S) -> u64,
) -> Result<IngestSummary, PipelineError> {
    let started = Instant::now();
    let mut pipeline = Pipeline::open(config).await?;
    let mut batcher = Batcher::new(pipeline.config().flush);
    let name: Arc<str> = source.name();
    let mut total = Counts::default();
    let mut batches = 0;
    let mut conflicts = 0u64;
    let rules = pipeline.config().validation;
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
                decoding = Some(tokio::task::spawn_blocking(move || {
                    Prepared::new(records, &rules)
                }));
            }
        }
        if let Some(prepared) = ready.take() {
            batches += 1;
            let report = pipeline
                .commit(&name, &prepared, Vec::new(), &[], &HashMap::new())
                .await?;
            conflicts += u64::from(report.conflicts);
            total.add(&report.counts);
            tracing::info!(
                batch = batches,
                read = report.counts.read,
                written = report.counts.written,
                duplicates = report.counts.duplicates,
                rejected = report.counts.rejected,
                version = report.events_version,
                commit_ms = report.commit_ms,
                "batch committed"
            );
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
    let secs = started.elapsed().as_secs_f64();
    Ok(IngestSummary {
        counts: total,
        table_version: pipeline.events.version(),
        rejected_table_version: pipeline.rejected.version(),
        batches,
        commit_conflicts: conflicts,
        blank_lines: blank_lines(&source),
        duration_ms: (secs * 1000.0) as u64,
        events_per_sec: if secs > 0.0 {
            (total.read as f64 / secs).round()
        } else {
            0.0
        },
        dedupe_index: pipeline.events.index_stats(),
    })
}
