//! The run's output files: `commits.jsonl` (one line per commit), `samples.jsonl` (one line
//! per simulated hour) and `run.json` (parameters and totals). Each line is flushed as it is
//! written, so an interrupted run keeps everything measured so far.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct RecordError {
    path: PathBuf,
    source: std::io::Error,
}

/// One JSON-lines file.
pub struct JsonLines {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonLines {
    /// Create (truncate) `dir/name`.
    pub fn create(dir: &Path, name: &str) -> Result<Self, RecordError> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(|source| RecordError {
            path: path.clone(),
            source,
        })?;
        Ok(JsonLines {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Append one record and flush it.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), RecordError> {
        let err = |source| RecordError {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, record).map_err(|e| err(e.into()))?;
        self.out.write_all(b"\n").map_err(err)?;
        self.out.flush().map_err(err)
    }
}

/// Write `value` as pretty JSON to `dir/name` (replacing it).
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), RecordError> {
    let path = dir.join(name);
    let err = |source| RecordError {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_vec_pretty(value).map_err(|e| err(e.into()))?;
    std::fs::write(&path, text).map_err(err)
}
