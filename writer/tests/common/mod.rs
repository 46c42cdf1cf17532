//! Scaffolding shared by the writer's integration tests: a local two-table pipeline in a
//! fresh temporary folder, and batches of raw records.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use writer::config::PipelineConfig;
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
    PipelineConfig::local(dir, writer_id)
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

/// An event line: uuid number `n` (its canonical UUID), in `event_type`, at `created_at`.
pub fn event(n: u64, event_type: &str, created_at: i64) -> Vec<u8> {
    format!(
        r#"{{"event_uuid":"00000000-0000-4000-8000-{n:012}","event_name":"{event_type}:x","created_at":{created_at}}}"#
    )
    .into_bytes()
}

/// Every row of the table at `uri` (latest version) as (partition path, `column` value),
/// read from its live files.
pub async fn table_rows(uri: &str, column: &str) -> Vec<(String, String)> {
    let table = storage::open_table(uri, &storage::StorageConfig::default())
        .await
        .expect("open table");
    let snapshot = table.snapshot().expect("snapshot");
    let files: Vec<(String, Option<u64>)> = snapshot
        .log_data()
        .iter()
        .map(|f| (f.path().into_owned(), u64::try_from(f.size()).ok()))
        .collect();
    let store = table.log_store().object_store(None);
    let mut rows = Vec::new();
    for (path, size) in files {
        let partition = path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        storage::files::for_each_string(store.clone(), uri, &path, size, column, |s| {
            rows.push((partition.clone(), s.to_string()))
        })
        .await
        .expect("read column");
    }
    rows
}

/// The Parquet files under `dir` (live or not).
pub fn parquet_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                parquet_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}
