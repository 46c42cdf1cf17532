//! Kinesis: shard discovery, one polling reader per owned shard, KPL de-aggregation.
//!
//! Readers only read; what is committed and checkpointed is decided by the service
//! ([`crate::service`]), which owns the leases. A reader sends batches of records with the
//! shard's lag, and a final marker when the shard is closed and fully read.

pub mod kpl;
pub mod lease;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::source::{Position, RawRecord};

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

pub async fn client() -> Client {
    Client::new(storage::aws::sdk_config().await)
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
    pub stream: String,
    pub shard: Arc<str>,
    pub from: ReadFrom,
    /// Pause after an empty GetRecords (and the initial back-off).
    pub poll: Duration,
    /// Records per GetRecords call.
    pub limit: i32,
}

/// Read one shard until it ends or `stop` flips. Handles throttling (back-off), expired
/// iterators (re-acquired from the last sequence read) and KPL aggregates.
pub async fn read_shard(
    client: Client,
    spec: ReadSpec,
    tx: mpsc::Sender<ShardEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let ReadSpec {
        stream,
        shard,
        from,
        poll,
        limit,
    } = spec;
    let mut last_seq: Option<String> = match &from {
        ReadFrom::After(s) => Some(s.clone()),
        ReadFrom::Initial(_) => None,
    };
    let mut iterator: Option<String> = None;
    let mut backoff = poll;
    loop {
        if *stop.borrow() {
            return;
        }
        if iterator.is_none() {
            let mut req = client
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(shard.as_ref());
            req = match (&last_seq, &from) {
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
            match req.send().await {
                Ok(r) => iterator = r.shard_iterator().map(String::from),
                Err(e) => {
                    let msg = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                    tracing::warn!(%shard, error = %msg, "get shard iterator failed; retrying");
                    if sleep_or_stop(&mut stop, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            if iterator.is_none() {
                let _ = tx
                    .send(ShardEvent::End {
                        shard: shard.clone(),
                    })
                    .await;
                return;
            }
        }
        let Some(it) = iterator.clone() else { continue };
        match client
            .get_records()
            .shard_iterator(it)
            .limit(limit)
            .send()
            .await
        {
            Ok(out) => {
                backoff = poll;
                let received = std::time::Instant::now();
                let mut records = Vec::with_capacity(out.records().len());
                let oldest_arrival = out
                    .records()
                    .iter()
                    .filter_map(|r| r.approximate_arrival_timestamp())
                    .map(|t| t.as_secs_f64())
                    .reduce(f64::min);
                for r in out.records() {
                    let seq: Arc<str> = Arc::from(r.sequence_number());
                    // The stream's own clock, fixed for the record's lifetime: validation
                    // against it is the same on every replay (see `RawRecord::judged_at`).
                    let judged_at = r.approximate_arrival_timestamp().map(|t| t.secs());
                    let data = r.data().as_ref();
                    match kpl::deaggregate(data) {
                        Some(parts) => {
                            for (i, p) in parts.into_iter().enumerate() {
                                records.push(RawRecord {
                                    data: Bytes::copy_from_slice(p),
                                    position: Position::Sequence {
                                        shard: shard.clone(),
                                        sequence: seq.clone(),
                                        sub: Some(i as u32),
                                    },
                                    judged_at,
                                });
                            }
                        }
                        None => records.push(RawRecord {
                            data: Bytes::copy_from_slice(data),
                            position: Position::Sequence {
                                shard: shard.clone(),
                                sequence: seq.clone(),
                                sub: None,
                            },
                            judged_at,
                        }),
                    }
                    last_seq = Some(seq.to_string());
                }
                let empty = records.is_empty();
                if !empty {
                    let ev = ShardEvent::Records {
                        shard: shard.clone(),
                        records,
                        millis_behind: out.millis_behind_latest(),
                        received,
                        oldest_arrival,
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                iterator = out.next_shard_iterator().map(String::from);
                if iterator.is_none() {
                    let _ = tx
                        .send(ShardEvent::End {
                            shard: shard.clone(),
                        })
                        .await;
                    return;
                }
                if empty && sleep_or_stop(&mut stop, poll).await {
                    return;
                }
            }
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                    iterator = None; // re-acquire after last_seq
                    continue;
                }
                let throttled =
                    service.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception());
                let msg = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                if throttled {
                    tracing::debug!(%shard, "throttled; backing off");
                } else {
                    tracing::warn!(%shard, error = %msg, "get records failed; retrying");
                }
                if sleep_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                if !throttled && backoff >= Duration::from_secs(10) {
                    let _ = tx
                        .send(ShardEvent::Failed {
                            shard: shard.clone(),
                            error: msg,
                        })
                        .await;
                    return;
                }
            }
        }
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
