//! Newline-delimited JSON from a file or stdin.
//!
//! A reader thread fills large buffers and splits them into lines; records are zero-copy
//! slices of those buffers. The bounded channel to the pipeline gives back-pressure, and
//! reading overlaps decoding.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::{Poll, Position, RawRecord, Source, SourceError};

const READ_CHUNK: usize = 4 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

/// NDJSON input. Empty lines (and a trailing newline) are not records; `\r\n` is accepted.
pub struct NdjsonSource {
    name: Arc<str>,
    rx: mpsc::Receiver<Result<Vec<RawRecord>, SourceError>>,
    blank_lines: Arc<std::sync::atomic::AtomicU64>,
}

impl NdjsonSource {
    /// `path` of `-` means stdin.
    ///
    /// A file's records are judged ("`created_at` too far in the future?") against the
    /// file's modification time, so re-ingesting the same file decides every record the
    /// same way, whenever it runs. Stdin has no such time: its records are judged at
    /// processing time (replaying a pipe is not reproducible anyway).
    pub fn open(path: &str) -> Result<Self, SourceError> {
        let (name, reader, judged_at): (Arc<str>, Box<dyn Read + Send>, Option<i64>) =
            if path == "-" {
                (Arc::from("stdin"), Box::new(std::io::stdin()), None)
            } else {
                let file = std::fs::File::open(path).map_err(|error| SourceError::Io {
                    source_name: path.to_string(),
                    error,
                })?;
                let abs = std::fs::canonicalize(path)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| path.to_string());
                let mtime = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64);
                (Arc::from(format!("file:{abs}")), Box::new(file), mtime)
            };
        Ok(Self::from_reader_judged_at(name, reader, judged_at))
    }

    /// Records judged at processing time (see [`RawRecord::judged_at`]).
    pub fn from_reader(name: Arc<str>, reader: Box<dyn Read + Send>) -> Self {
        Self::from_reader_judged_at(name, reader, None)
    }

    /// Records judged against a fixed instant (Unix seconds), see [`RawRecord::judged_at`].
    pub fn from_reader_judged_at(
        name: Arc<str>,
        reader: Box<dyn Read + Send>,
        judged_at: Option<i64>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let blank_lines = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let blanks = blank_lines.clone();
        let thread_name = name.to_string();
        std::thread::spawn(move || read_loop(reader, tx, blanks, thread_name, judged_at));
        NdjsonSource {
            name,
            rx,
            blank_lines,
        }
    }

    /// Empty lines seen so far (reported, never counted as records).
    pub fn blank_lines(&self) -> u64 {
        self.blank_lines.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn read_loop(
    mut reader: Box<dyn Read + Send>,
    tx: mpsc::Sender<Result<Vec<RawRecord>, SourceError>>,
    blanks: Arc<std::sync::atomic::AtomicU64>,
    name: String,
    judged_at: Option<i64>,
) {
    let mut carry = BytesMut::new();
    let mut line_no: u64 = 0;
    loop {
        let mut buf = BytesMut::with_capacity(carry.len() + READ_CHUNK);
        buf.extend_from_slice(&carry);
        let start = buf.len();
        buf.resize(start + READ_CHUNK, 0);
        let n = match read_full(&mut reader, &mut buf[start..]) {
            Ok(n) => n,
            Err(error) => {
                let _ = tx.blocking_send(Err(SourceError::Io {
                    source_name: name,
                    error,
                }));
                return;
            }
        };
        buf.truncate(start + n);
        let eof = n == 0;
        let data = buf.freeze();
        // Complete lines end at the last newline; at EOF the remainder is a line too.
        let end = if eof {
            data.len()
        } else {
            memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1)
        };
        let records = split_lines(&data.slice(..end), &mut line_no, &blanks, judged_at);
        carry = BytesMut::from(&data[end..]);
        if !records.is_empty() && tx.blocking_send(Ok(records)).is_err() {
            return;
        }
        if eof {
            return;
        }
    }
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    let mut has_newline = false;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                has_newline = has_newline || buf[filled..filled + n].contains(&b'\n');
                filled += n;
                // Hand over what we have once a line is complete and the pipe paused, so a
                // slow stdin is not held back waiting for a full chunk.
                if has_newline && n < 64 * 1024 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn split_lines(
    data: &Bytes,
    line_no: &mut u64,
    blanks: &std::sync::atomic::AtomicU64,
    judged_at: Option<i64>,
) -> Vec<RawRecord> {
    let mut out = Vec::with_capacity(data.len() / 256 + 1);
    let mut start = 0;
    let len = data.len();
    while start < len {
        let end = memchr_newline(&data[start..]).map_or(len, |i| start + i);
        *line_no += 1;
        let mut stop = end;
        if stop > start && data[stop - 1] == b'\r' {
            stop -= 1;
        }
        if data[start..stop].iter().all(u8::is_ascii_whitespace) {
            blanks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            out.push(RawRecord {
                data: data.slice(start..stop),
                position: Position::Line(*line_no),
                judged_at,
            });
        }
        start = end + 1;
    }
    out
}

/// The first newline (SIMD search: this pass over every input byte runs on the one reader
/// thread, ahead of the parallel decode).
fn memchr_newline(hay: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', hay)
}

impl Source for NdjsonSource {
    fn name(&self) -> Arc<str> {
        self.name.clone()
    }

    async fn poll(&mut self, deadline: Instant) -> Result<Poll, SourceError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Err(_) => Ok(Poll::Idle),
            Ok(None) => Ok(Poll::End),
            Ok(Some(Ok(records))) => Ok(Poll::Records(records)),
            Ok(Some(Err(e))) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn collect(input: &'static [u8]) -> (Vec<(u64, Vec<u8>)>, u64) {
        let mut src = NdjsonSource::from_reader(Arc::from("t"), Box::new(input));
        let mut out = vec![];
        loop {
            match src
                .poll(Instant::now() + Duration::from_secs(5))
                .await
                .expect("poll")
            {
                Poll::Records(r) => out.extend(r.into_iter().map(|r| match r.position {
                    Position::Line(n) => (n, r.data.to_vec()),
                    Position::Sequence { .. } => unreachable!(),
                })),
                Poll::Idle => {}
                Poll::End => break,
            }
        }
        (out, src.blank_lines())
    }

    #[tokio::test]
    async fn lines_positions_and_blanks() {
        let (lines, blanks) = collect(b"{\"a\":1}\r\n\n  \n{\"b\":2}\nlast").await;
        assert_eq!(
            lines,
            vec![
                (1, b"{\"a\":1}".to_vec()),
                (4, b"{\"b\":2}".to_vec()),
                (5, b"last".to_vec())
            ]
        );
        assert_eq!(blanks, 2);
    }
}
