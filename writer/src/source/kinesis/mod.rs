//! Kinesis: shard discovery, one polling reader per owned shard, KPL de-aggregation.
//!
//! Readers only read; what is committed and checkpointed is decided by the service
//! ([`crate::service`]), which owns the leases. A reader sends batches of records with the
//! shard's lag, and a final marker when the shard is closed and fully read.

pub mod get_records;
pub mod kpl;
pub mod lease;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::sync::{mpsc, watch};

use crate::source::RawRecord;
use get_records::{Answer, GetRecordsError, RecordsClient};

/// Where to start a shard that has no checkpoint yet.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPosition {
    TrimHorizon,
    Latest,
    /// Unix seconds.
    AtTimestamp(f64),
}

impl StartPosition {
    /// How it is stored as a lease's initial checkpoint.
    pub fn as_checkpoint(&self) -> String {
        match self {
            StartPosition::TrimHorizon => "TRIM_HORIZON".into(),
            StartPosition::Latest => "LATEST".into(),
            StartPosition::AtTimestamp(t) => format!("AT_TIMESTAMP:{t}"),
        }
    }
}

impl std::str::FromStr for StartPosition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TRIM_HORIZON" | "trim_horizon" => Ok(StartPosition::TrimHorizon),
            "LATEST" | "latest" => Ok(StartPosition::Latest),
            other => {
                let ts = other
                    .strip_prefix("AT_TIMESTAMP:")
                    .or_else(|| other.strip_prefix("at_timestamp:"));
                ts.and_then(|t| t.parse::<f64>().ok())
                    .map(StartPosition::AtTimestamp)
                    .ok_or_else(|| format!("invalid start position `{s}` (TRIM_HORIZON, LATEST or AT_TIMESTAMP:<unix seconds>)"))
            }
        }
    }
}

/// A shard as listed.
#[derive(Debug, Clone)]
pub struct ShardInfo {
    pub id: String,
    pub parents: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("stream {stream}: {step}: {message}")]
pub struct KinesisError {
    pub stream: String,
    pub step: &'static str,
    pub message: String,
}

/// The Kinesis clients of a writer: the SDK for everything but GetRecords, which goes
/// through [`RecordsClient`] (the hot call; see [`get_records`]).
#[derive(Debug, Clone)]
pub struct Clients {
    pub sdk: Client,
    pub records: Arc<RecordsClient>,
}

pub async fn clients() -> Result<Clients, KinesisError> {
    let config = storage::aws::sdk_config().await;
    let records = RecordsClient::new(config).map_err(|e| KinesisError {
        stream: String::new(),
        step: "GetRecords client",
        message: e.to_string(),
    })?;
    Ok(Clients {
        sdk: Client::new(config),
        records: Arc::new(records),
    })
}

/// All shards of the stream (open and closed), with their parents.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let page = req.send().await.map_err(|e| KinesisError {
            stream: stream.into(),
            step: "list shards",
            message: aws_sdk_kinesis::error::DisplayErrorContext(e).to_string(),
        })?;
        for s in page.shards() {
            let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(String::from)
                .collect();
            out.push(ShardInfo {
                id: s.shard_id().to_string(),
                parents,
            });
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// What a reader sends.
#[derive(Debug)]
pub enum ShardEvent {
    Records {
        shard: Arc<str>,
        records: Vec<RawRecord>,
        millis_behind: Option<i64>,
        /// When the reader got them: the flush deadline runs from here, not from when the
        /// (possibly busy committing) service loop looked at them.
        received: std::time::Instant,
        /// Earliest `ApproximateArrivalTimestamp` (Unix seconds, the stream's clock), for
        /// the freshness metric.
        oldest_arrival: Option<f64>,
    },
    /// The shard is closed and every record was sent.
    End { shard: Arc<str> },
    /// The reader failed; the service will restart it from the checkpoint.
    Failed { shard: Arc<str>, error: String },
    /// The reader got its first answer at the tip of the shard (everything written before
    /// that call was delivered): `--exit-when-caught-up` waits for it on every shard. Sent
    /// once per reader, after the records of that answer.
    AtTip { shard: Arc<str> },
}

impl ShardEvent {
    /// The shard the event is about.
    pub fn shard(&self) -> &Arc<str> {
        match self {
            ShardEvent::Records { shard, .. }
            | ShardEvent::End { shard }
            | ShardEvent::AtTip { shard }
            | ShardEvent::Failed { shard, .. } => shard,
        }
    }
}

/// Where a reader starts: after a sequence number, or an initial position.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadFrom {
    After(String),
    Initial(StartPosition),
}

impl ReadFrom {
    /// Parse a lease checkpoint.
    pub fn from_checkpoint(c: &str) -> ReadFrom {
        match c.parse::<StartPosition>() {
            Ok(p) => ReadFrom::Initial(p),
            Err(_) => ReadFrom::After(c.to_string()),
        }
    }
}

/// What one reader reads.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    /// The stream name.
    pub stream: String,
    /// The shard id.
    pub shard: Arc<str>,
    /// Where reading starts.
    pub from: ReadFrom,
    /// Pause after a GetRecords at the tip of the shard (empty or partial answer), and the
    /// initial back-off.
    pub poll: Duration,
    /// Records per GetRecords call.
    pub limit: i32,
}

/// Shortest pause between two GetRecords on a shard while catching up: Kinesis allows 5
/// per second per shard, shared by every consumer of the stream.
pub const CATCH_UP_PAUSE: Duration = Duration::from_millis(200);

/// The pause before the next GetRecords after an answer of `got` records (of at most
/// `limit`). A full answer, or one more than a poll interval behind the tip, means a backlog: go on
/// after [`CATCH_UP_PAUSE`]. Otherwise the reader is at the tip: wait the poll interval,
/// so one call brings what arrived meanwhile. Polling again at once after every partial
/// answer made many calls a second per shard, each returning a few records: over the 5
/// calls/s limit on AWS, and a fifth of the service's CPU at 1x (issue 16, measured).
fn pause_after(got: usize, limit: i32, millis_behind: Option<i64>, poll: Duration) -> Duration {
    if at_tip(got, limit, millis_behind, poll) {
        poll
    } else {
        CATCH_UP_PAUSE.min(poll)
    }
}

/// Whether an answer of `got` records (of at most `limit`) shows the reader at the tip of
/// the shard: not full, and not more than a poll interval behind (`MillisBehindLatest`,
/// when the service reports it; an emulator may not).
fn at_tip(got: usize, limit: i32, millis_behind: Option<i64>, poll: Duration) -> bool {
    let full = usize::try_from(limit).is_ok_and(|l| got >= l);
    let behind =
        millis_behind.is_some_and(|m| u128::try_from(m).is_ok_and(|m| m > poll.as_millis()));
    !full && !behind
}

/// Longest pause between retries of a failing call; a reader whose GetRecords keeps failing
/// (not throttled) until its back-off reaches this gives up and reports the failure.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Read one shard until it ends or `stop` flips. Handles throttling (back-off), expired
/// iterators (re-acquired from the last sequence read) and KPL aggregates.
pub async fn read_shard(
    clients: Clients,
    spec: ReadSpec,
    tx: mpsc::Sender<ShardEvent>,
    stop: watch::Receiver<bool>,
) {
    let mut reader = Reader {
        last_seq: match &spec.from {
            ReadFrom::After(s) => Some(s.clone()),
            ReadFrom::Initial(_) => None,
        },
        iterator: None,
        backoff: spec.poll,
        reported_tip: false,
        clients,
        spec,
        tx,
        stop,
    };
    while !*reader.stop.borrow() {
        let step = match reader.iterator.clone() {
            None => reader.acquire().await,
            Some(it) => reader.poll(it).await,
        };
        if step == Step::Stop {
            return;
        }
    }
}

/// Whether a reader goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Continue,
    /// Stop asked, shard ended, failure reported, or nobody listens any more.
    Stop,
}

/// The state of one shard's reader task.
struct Reader {
    /// The Kinesis clients (shared by every reader).
    clients: Clients,
    /// Stream, shard, initial position, poll interval and records per call.
    spec: ReadSpec,
    /// Where events go (the service's generation-tagging forwarder).
    tx: mpsc::Sender<ShardEvent>,
    /// Flips to `true` when the service wants this reader gone.
    stop: watch::Receiver<bool>,
    /// Sequence number of the last record read: a re-acquired iterator starts after it.
    last_seq: Option<String>,
    /// The shard iterator for the next GetRecords (`None`: acquire one first).
    iterator: Option<String>,
    /// Pause before the next retry of a failed call; doubles up to [`MAX_BACKOFF`], back to
    /// the poll interval after a successful GetRecords.
    backoff: Duration,
    /// [`ShardEvent::AtTip`] was sent.
    reported_tip: bool,
}

impl Reader {
    /// GetShardIterator: after the last record read, else at the initial position. A closed
    /// and fully read shard has none: the end is reported.
    async fn acquire(&mut self) -> Step {
        let req = self
            .clients
            .sdk
            .get_shard_iterator()
            .stream_name(&self.spec.stream)
            .shard_id(self.spec.shard.as_ref());
        let req = match (&self.last_seq, &self.spec.from) {
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, ReadFrom::Initial(StartPosition::Latest)) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
            (None, ReadFrom::Initial(StartPosition::AtTimestamp(t))) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs_f64(*t)),
            (None, _) => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        // GetRecords goes to the endpoint the SDK resolves for this call.
        let capture = self.clients.records.endpoint_capture();
        match req.customize().interceptor(capture).send().await {
            Ok(r) => {
                self.iterator = r.shard_iterator().map(String::from);
                if self.iterator.is_none() {
                    return self.end().await;
                }
                Step::Continue
            }
            Err(e) => {
                let msg = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                tracing::warn!(shard = %self.spec.shard, error = %msg, "get shard iterator failed; retrying");
                self.back_off().await
            }
        }
    }

    /// One GetRecords call with `iterator`: deliver what it returned, or handle the error.
    async fn poll(&mut self, iterator: String) -> Step {
        let call = self
            .clients
            .records
            .get_records(&self.spec.shard, &iterator, self.spec.limit)
            .await;
        match call {
            Ok(out) => self.deliver(out).await,
            Err(e) => self.failed(e).await,
        }
    }

    /// Send the records of a GetRecords answer, move to the next iterator (none: the shard
    /// is closed and fully read), and pause after an empty answer.
    async fn deliver(&mut self, out: Answer) -> Step {
        self.backoff = self.spec.poll;
        let received = std::time::Instant::now();
        let shard = &self.spec.shard;
        if let Some(last) = &out.last_sequence {
            self.last_seq = Some(last.to_string());
        }
        let got = out.kinesis_records;
        let behind = out.millis_behind;
        if !out.records.is_empty() {
            let ev = ShardEvent::Records {
                shard: shard.clone(),
                records: out.records,
                millis_behind: behind,
                received,
                oldest_arrival: out.oldest_arrival,
            };
            if self.tx.send(ev).await.is_err() {
                return Step::Stop;
            }
        }
        self.iterator = out.next_iterator;
        if self.iterator.is_none() {
            return self.end().await;
        }
        if !self.reported_tip && at_tip(got, self.spec.limit, behind, self.spec.poll) {
            self.reported_tip = true;
            let shard = shard.clone();
            if self.tx.send(ShardEvent::AtTip { shard }).await.is_err() {
                return Step::Stop;
            }
        }
        let pause = pause_after(got, self.spec.limit, behind, self.spec.poll);
        if sleep_or_stop(&mut self.stop, pause).await {
            return Step::Stop;
        }
        Step::Continue
    }

    /// A failed GetRecords: an expired iterator is re-acquired at once; throttling backs
    /// off for as long as it lasts; any other error backs off and, once the back-off
    /// reaches its maximum, is reported (the service restarts the reader).
    async fn failed(&mut self, e: GetRecordsError) -> Step {
        let throttled = match &e {
            GetRecordsError::ExpiredIterator(_) => {
                self.iterator = None; // re-acquire after last_seq
                return Step::Continue;
            }
            GetRecordsError::Throttled(_) => true,
            GetRecordsError::Other(_) => false,
        };
        let msg = e.to_string();
        if throttled {
            tracing::debug!(shard = %self.spec.shard, "throttled; backing off");
        } else {
            tracing::warn!(shard = %self.spec.shard, error = %msg, "get records failed; retrying");
        }
        if self.back_off().await == Step::Stop {
            return Step::Stop;
        }
        if !throttled && self.backoff >= MAX_BACKOFF {
            let shard = self.spec.shard.clone();
            let _ = self.tx.send(ShardEvent::Failed { shard, error: msg }).await;
            return Step::Stop;
        }
        Step::Continue
    }

    /// Sleep for the current back-off (unless asked to stop), then double it.
    async fn back_off(&mut self) -> Step {
        if sleep_or_stop(&mut self.stop, self.backoff).await {
            return Step::Stop;
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Step::Continue
    }

    /// Report that the shard is closed and every record was sent.
    async fn end(&self) -> Step {
        let shard = self.spec.shard.clone();
        let _ = self.tx.send(ShardEvent::End { shard }).await;
        Step::Stop
    }
}

/// Sleep, returning early (true) when asked to stop.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_the_tip_wait_the_poll_interval_and_a_backlog_is_read_at_5_calls_a_second() {
        let poll = Duration::from_secs(1);
        // A partial answer at the tip: wait, so the next call brings a second's records.
        assert_eq!(pause_after(37, 10_000, Some(0), poll), poll);
        assert_eq!(pause_after(0, 10_000, None, poll), poll);
        // Full, or far behind the tip: catch up, within Kinesis' 5 reads/s per shard.
        assert_eq!(pause_after(10_000, 10_000, Some(0), poll), CATCH_UP_PAUSE);
        assert_eq!(pause_after(5, 10_000, Some(60_000), poll), CATCH_UP_PAUSE);
        // A few ms behind is still the tip.
        assert_eq!(pause_after(5, 10_000, Some(40), poll), poll);
        // A poll interval shorter than the catch-up pause (tests) is never lengthened.
        let fast = Duration::from_millis(50);
        assert_eq!(pause_after(10_000, 10_000, None, fast), fast);
    }

    #[test]
    fn start_positions() {
        assert_eq!(
            "TRIM_HORIZON".parse::<StartPosition>(),
            Ok(StartPosition::TrimHorizon)
        );
        assert_eq!("LATEST".parse::<StartPosition>(), Ok(StartPosition::Latest));
        assert_eq!(
            "AT_TIMESTAMP:1700000000".parse::<StartPosition>(),
            Ok(StartPosition::AtTimestamp(1.7e9))
        );
        assert!("bogus".parse::<StartPosition>().is_err());
        assert_eq!(
            ReadFrom::from_checkpoint("49590338271490256608559692538361571095921575989136588898"),
            ReadFrom::After("49590338271490256608559692538361571095921575989136588898".into())
        );
        assert_eq!(
            ReadFrom::from_checkpoint("LATEST"),
            ReadFrom::Initial(StartPosition::Latest)
        );
    }
}
