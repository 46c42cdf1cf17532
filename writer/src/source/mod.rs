//! Sources of raw records. A source hands out records with their position; it knows nothing
//! about JSON or tables.

pub mod kinesis;
pub mod ndjson;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// Where a record came from, precise enough to find it again (lineage columns and
/// commit metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// 1-based line number in an NDJSON input.
    Line(u64),
    /// Kinesis shard and sequence number, with the sub-record index for KPL aggregates.
    Sequence {
        shard: Arc<str>,
        sequence: Arc<str>,
        sub: Option<u32>,
    },
}

impl Position {
    pub fn shard(&self) -> Option<&str> {
        match self {
            Position::Line(_) => None,
            Position::Sequence { shard, .. } => Some(shard),
        }
    }

    /// Write the `source_position` text without allocating (the row builders call this for
    /// every row).
    pub fn write_position<W: std::fmt::Write>(&self, w: &mut W) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(w, "{n}"),
            Position::Sequence {
                sequence,
                sub: None,
                ..
            } => w.write_str(sequence),
            Position::Sequence {
                sequence,
                sub: Some(i),
                ..
            } => write!(w, "{sequence}:{i}"),
        }
    }

    /// Text stored in `source_position`.
    pub fn position_text(&self) -> String {
        let mut s = String::new();
        let _ = self.write_position(&mut s); // writing to a String cannot fail
        s
    }
}

/// One record as read: its bytes (a cheap slice of the read buffer) and where it came from.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub data: Bytes,
    pub position: Position,
    /// The instant (Unix seconds) this record's `created_at` is judged against (the
    /// "too far in the future" bound): the Kinesis `ApproximateArrivalTimestamp`, or the
    /// input file's modification time. It is a property of the record, not of when a batch
    /// happens to be processed, so a replay after a crash decides exactly as the first
    /// attempt did (a record can never end up accepted once and rejected once). `None`
    /// (stdin, tests) falls back to the batch's processing time.
    pub judged_at: Option<i64>,
}

/// What a source yields on each poll.
#[derive(Debug)]
pub enum Poll {
    Records(Vec<RawRecord>),
    /// Nothing arrived before the deadline; ask again.
    Idle,
    /// The input is exhausted (files, stdin); streams never end.
    End,
}

/// A record source. `poll` waits at most until `deadline`, so the batcher can honour its
/// latency bound even when input trickles.
pub trait Source: Send {
    /// Value of the `source` lineage column (e.g. `file:/data/events.ndjson`, `stdin`).
    fn name(&self) -> Arc<str>;

    fn poll(
        &mut self,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<Poll, SourceError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {source_name}: {error}")]
    Io {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}
