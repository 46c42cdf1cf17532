//! Kinesis target: the generated lines sent with PutRecords, plain or as KPL aggregates,
//! at a target rate, retrying until the stream has accepted every record.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::{BuildError, DisplayErrorContext};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::Generator;

/// Most records one PutRecords call takes (a Kinesis limit).
const MAX_RECORDS_PER_PUT: usize = 500;
/// Retry rounds after which a PutRecords call that fails as a whole gives up. Every round
/// that leaves records unsent counts, partly failed calls included; a partly failed call
/// itself is always retried (Kinesis throttles by rejecting single records).
const MAX_PUT_RETRIES: u32 = 10;

/// Why sending to the stream failed.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// A record could not be built (e.g. a missing partition key).
    #[error(transparent)]
    Entry(#[from] BuildError),
    /// PutRecords kept failing as a whole; the message is the SDK's full error context.
    #[error("{0}")]
    Put(String),
}

/// Send all of `generator`'s lines to `stream` with PutRecords (partition key = the event's
/// `event_uuid`, so a producer retry lands on the same shard), `aggregate` lines per KPL
/// aggregate when `aggregate > 1`, at `rate` events per second (0 = as fast as the stream
/// accepts). Returns the number of Kinesis records sent (an aggregate counts once).
pub async fn put_kinesis(
    generator: &mut Generator,
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    rate: f64,
    aggregate: usize,
) -> Result<u64, PutError> {
    let started = Instant::now();
    let total = generator.cfg.count;
    let mut sent: u64 = 0;
    let mut pending: Vec<PutRecordsRequestEntry> = Vec::new();
    let mut agg: Vec<Vec<u8>> = Vec::new();
    for i in 1..=total {
        let line = generator.next_line();
        if aggregate > 1 {
            agg.push(line);
            if agg.len() >= aggregate || i == total {
                let refs: Vec<&[u8]> = agg.iter().map(Vec::as_slice).collect();
                let key = partition_key(refs[0]);
                pending.push(entry(crate::kpl::aggregate(&key, &refs), key)?);
                agg.clear();
            }
        } else {
            let key = partition_key(&line);
            pending.push(entry(line, key)?);
        }
        if pending.len() >= MAX_RECORDS_PER_PUT || (i == total && !pending.is_empty()) {
            sent += put_all(client, stream, std::mem::take(&mut pending)).await?;
            if rate > 0.0 {
                let due = Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    Ok(sent)
}

/// The event's `event_uuid` when it has a usable one (non-empty, at most 256 bytes, the
/// Kinesis limit), otherwise a hash of the line, so malformed lines spread over the shards.
fn partition_key(line: &[u8]) -> String {
    schemas::parse_event(line)
        .ok()
        .and_then(|e| {
            e.event_uuid
                .and_then(|u| schemas::parse::raw_as_str(u).map(|s| s.into_owned()))
        })
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .unwrap_or_else(|| format!("{:x}", xxhash_rust::xxh3::xxh3_64(line)))
}

fn entry(data: Vec<u8>, key: String) -> Result<PutRecordsRequestEntry, PutError> {
    Ok(PutRecordsRequestEntry::builder()
        .data(Blob::new(data))
        .partition_key(key)
        .build()?)
}

/// PutRecords until every record of `batch` is accepted. Each round that leaves records
/// unsent — the stream rejected some (throttling), or the call failed as a whole — counts
/// as one retry and is followed by a pause growing with the count (100 ms per retry, at
/// most 2 s). Records the stream rejected are always re-sent; a call that fails as a whole
/// is retried only while fewer than [`MAX_PUT_RETRIES`] retries (of either kind) were made
/// for this batch, else its error is returned. Returns how many records were sent.
async fn put_all(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    mut batch: Vec<PutRecordsRequestEntry>,
) -> Result<u64, PutError> {
    let mut sent: u64 = 0;
    let mut attempt = 0u32;
    while !batch.is_empty() {
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(batch.clone()))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string());
        match out {
            Ok(out) => {
                let failed: Vec<PutRecordsRequestEntry> = out
                    .records()
                    .iter()
                    .zip(batch.iter())
                    .filter(|(r, _)| r.error_code().is_some())
                    .map(|(_, e)| e.clone())
                    .collect();
                sent += (batch.len() - failed.len()) as u64;
                batch = failed;
            }
            Err(e) if attempt < MAX_PUT_RETRIES => {
                tracing::warn!(error = %e, "put records failed; retrying")
            }
            Err(e) => return Err(PutError::Put(e)),
        }
        if !batch.is_empty() {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(20)))).await;
        }
    }
    Ok(sent)
}
