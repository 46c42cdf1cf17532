//! Scaffolding shared by the writer's integration tests: a local two-table pipeline in a
//! fresh temporary folder, and batches of raw records.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use writer::config::{DedupeConfig, FlushPolicy, PipelineConfig, Tables};
use writer::pipeline::{BatchReport, Pipeline, PipelineError};
use writer::source::{Position, RawRecord};

/// A new, empty folder under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("events-lake-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Default settings for `events` and `events_rejected` tables under `dir`.
pub fn config(dir: &Path, writer_id: &str) -> PipelineConfig {
    PipelineConfig {
        tables: Tables {
            events_uri: dir.join("events").display().to_string(),
            rejected_uri: dir.join("events_rejected").display().to_string(),
            storage: storage::StorageConfig::default(),
        },
        flush: FlushPolicy::default(),
        dedupe: DedupeConfig::default(),
        validation: schemas::ValidationRules::default(),
        partition: writer::pipeline::PartitionPolicy::default(),
        writer_id: writer_id.to_string(),
    }
}

/// Lines as records of one NDJSON input (line numbers from 1), judged at processing time.
pub fn batch(lines: Vec<Vec<u8>>) -> Vec<RawRecord> {
    lines
        .into_iter()
        .enumerate()
        .map(|(i, data)| RawRecord {
            data: Bytes::from(data),
            position: Position::Line(i as u64 + 1),
            judged_at: None,
        })
        .collect()
}

/// Process one batch without Kinesis progress.
pub async fn try_process(
    p: &mut Pipeline,
    recs: Vec<RawRecord>,
) -> Result<BatchReport, PipelineError> {
    p.process("test", recs, Vec::new(), &[], &HashMap::new())
        .await
}
