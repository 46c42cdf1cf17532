//! GetRecords as one signed HTTP call whose answer is parsed in one pass (issue 16).
//!
//! Why not the SDK's `get_records()`: at the deployed 1 s poll the SDK path was ~40% of the
//! writer's CPU (profile in BENCHMARKS.md, session 13): per call its orchestrator (config
//! bag, interceptors, endpoint resolution, identity cache, user agent), per record an owned
//! `Record` with a `String` sequence, a `String` partition key and a `Blob` of decoded data,
//! which the reader then copied once more. Here the answer's JSON is parsed borrowing from
//! the body, every record's base64 `Data` is decoded into one buffer, and records (and KPL
//! sub-records) are zero-copy slices of it.
//!
//! Everything that is not per-call work stays with the SDK, so this path cannot drift from
//! it: the endpoint is the one the SDK resolved for the reader's own GetShardIterator call
//! (environment, profile, FIPS and dual-stack settings included; see [`CaptureEndpoint`]),
//! the credentials come from the SDK configuration's provider chain, requests are signed with
//! the SDK's SigV4 signer, and retries follow the SDK's standard mode (same attempts and
//! back-off as [`storage::aws::sdk_config`]): transport errors, 5xx answers and throttling
//! are retried inside the call, so a reader sees them only when they last.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_kinesis::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use super::kpl;
use crate::source::{Position, RawRecord};

/// The JSON protocol's operation header.
const TARGET: &str = "Kinesis_20131202.GetRecords";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Credentials expiring sooner than this are refreshed before signing.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// First retry back-off and its cap (as the SDK's configuration in `storage::aws`).
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Error codes that mean "slow down" (the SDK's throttling list, for the codes Kinesis uses).
const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "RequestLimitExceeded",
    "KMSThrottlingException",
];

/// Why a GetRecords call failed, after its retries.
#[derive(Debug, thiserror::Error)]
pub enum GetRecordsError {
    /// The iterator is older than 5 minutes: get a new one after the last record read.
    #[error("ExpiredIteratorException: {0}")]
    ExpiredIterator(String),
    /// Throttled on every attempt: back off for as long as it lasts.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Anything else (denied, not found, a 5xx or transport error that outlasted the
    /// retries, an answer that does not parse).
    #[error("{0}")]
    Other(String),
}

/// One GetRecords answer, its records already de-aggregated.
#[derive(Debug)]
pub struct Answer {
    /// The user records, in order: slices of one buffer holding the answer's decoded data.
    pub records: Vec<RawRecord>,
    /// Kinesis records in the answer (an aggregate counts once): compared with the call's
    /// limit to tell a full answer.
    pub kinesis_records: usize,
    /// Sequence number of the answer's last Kinesis record.
    pub last_sequence: Option<Arc<str>>,
    /// Earliest `ApproximateArrivalTimestamp` (Unix seconds).
    pub oldest_arrival: Option<f64>,
    /// `None`: the shard is closed and everything in it was read.
    pub next_iterator: Option<String>,
    pub millis_behind: Option<i64>,
}

/// The GetRecords client every reader of a writer shares.
#[derive(Debug)]
pub struct RecordsClient {
    http: reqwest::Client,
    region: String,
    provider: Option<SharedCredentialsProvider>,
    credentials: tokio::sync::Mutex<Option<Credentials>>,
    endpoint: Arc<OnceLock<String>>,
}

impl RecordsClient {
    pub fn new(config: &aws_config::SdkConfig) -> Result<Self, GetRecordsError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(3100))
            // A GetRecords answer is at most 10 MB; a call that takes longer than this is
            // stuck, and is retried like a transport error.
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| GetRecordsError::Other(format!("HTTP client: {e}")))?;
        Ok(RecordsClient {
            http,
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            provider: config.credentials_provider(),
            credentials: tokio::sync::Mutex::new(None),
            endpoint: Arc::new(OnceLock::new()),
        })
    }

    /// The interceptor to put on the SDK's GetShardIterator calls: it records the endpoint
    /// the SDK resolved, which GetRecords then uses.
    pub fn endpoint_capture(&self) -> CaptureEndpoint {
        CaptureEndpoint(self.endpoint.clone())
    }

    /// GetRecords with `iterator`, retried as the SDK would retry it.
    pub async fn get_records(
        &self,
        shard: &Arc<str>,
        iterator: &str,
        limit: i32,
    ) -> Result<Answer, GetRecordsError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "ShardIterator": iterator,
            "Limit": limit,
        }))
        .map_err(|e| GetRecordsError::Other(format!("request body: {e}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&body).await {
                Ok(answer) => return parse_answer(&answer, shard),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable(e)) if attempt >= storage::aws::MAX_ATTEMPTS => {
                    return Err(e);
                }
                Err(Attempt::Retryable(_)) => tokio::time::sleep(backoff(attempt)).await,
            }
        }
    }

    /// One signed POST; the body of a 200 answer.
    async fn attempt(&self, body: &[u8]) -> Result<Bytes, Attempt> {
        let endpoint = self.endpoint.get().ok_or_else(|| {
            Attempt::Final(GetRecordsError::Other(
                "no endpoint yet (GetShardIterator goes first)".into(),
            ))
        })?;
        let credentials = self.credentials().await.map_err(Attempt::Retryable)?;
        let identity = Identity::from(credentials);
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kinesis")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Attempt::Final(GetRecordsError::Other(format!("signing: {e}"))))?
            .into();
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
        let signed = SignableRequest::new(
            "POST",
            endpoint.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .and_then(|r| sign(r, &params))
        .map_err(|e| Attempt::Final(GetRecordsError::Other(format!("signing: {e}"))))?;
        let (instructions, _signature) = signed.into_parts();
        let mut req = self
            .http
            .post(endpoint.as_str())
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", TARGET);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let transport =
            |e: reqwest::Error| Attempt::Retryable(GetRecordsError::Other(e.to_string()));
        let resp = req.body(body.to_vec()).send().await.map_err(transport)?;
        let status = resp.status();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(classify(status.as_u16(), error_type.as_deref(), &bytes))
    }

    /// The provider chain's credentials, cached until shortly before they expire (the SDK
    /// caches the same way; the chain may call the container credentials endpoint).
    async fn credentials(&self) -> Result<Credentials, GetRecordsError> {
        let mut cached = self.credentials.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry().is_none_or(|e| {
                e.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
            })
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let provider = self
            .provider
            .as_ref()
            .ok_or_else(|| GetRecordsError::Other("no AWS credentials provider".into()))?;
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| GetRecordsError::Other(format!("credentials: {e}")))?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

/// An attempt's failure: retried, or final.
enum Attempt {
    Retryable(GetRecordsError),
    Final(GetRecordsError),
}

/// The SDK's standard back-off: full jitter over an exponentially growing, capped window.
fn backoff(attempt: u32) -> Duration {
    let window = INITIAL_BACKOFF
        .saturating_mul(1u32 << attempt.min(16).saturating_sub(1))
        .min(MAX_BACKOFF);
    window.mul_f64(rand::random::<f64>())
}

/// An error answer: its code from the `x-amzn-ErrorType` header or the body's `__type`
/// (either may carry a namespace before `#` and details after `:`), and whether it is
/// retried (5xx, throttling).
fn classify(status: u16, header: Option<&str>, body: &[u8]) -> Attempt {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let raw = header
        .map(String::from)
        .or_else(|| parsed.as_ref().and_then(|b| b.kind.clone()))
        .unwrap_or_default();
    let code = raw.rsplit('#').next().unwrap_or("");
    let code = code.split(':').next().unwrap_or("").to_string();
    let message = parsed.and_then(|b| b.message).unwrap_or_default();
    let text = format!("HTTP {status} {code}: {message}");
    if code == "ExpiredIteratorException" {
        Attempt::Final(GetRecordsError::ExpiredIterator(text))
    } else if THROTTLING.contains(&code.as_str()) {
        Attempt::Retryable(GetRecordsError::Throttled(text))
    } else if status >= 500 {
        Attempt::Retryable(GetRecordsError::Other(text))
    } else {
        Attempt::Final(GetRecordsError::Other(text))
    }
}

#[derive(Deserialize)]
struct WireAnswer<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<WireRecord<'a>>,
    #[serde(rename = "NextShardIterator")]
    next_iterator: Option<String>,
    #[serde(rename = "MillisBehindLatest")]
    millis_behind: Option<i64>,
}

#[derive(Deserialize)]
struct WireRecord<'a> {
    /// Base64; borrowed from the body (it has nothing to unescape).
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "SequenceNumber", borrow)]
    sequence: Cow<'a, str>,
    /// Epoch seconds with a fraction.
    #[serde(rename = "ApproximateArrivalTimestamp")]
    arrival: Option<f64>,
}

/// Parse a 200 answer: decode every record's data into one buffer, then cut the records
/// (and the user records of KPL aggregates) out of it without copying.
fn parse_answer(body: &[u8], shard: &Arc<str>) -> Result<Answer, GetRecordsError> {
    let wire: WireAnswer<'_> = serde_json::from_slice(body)
        .map_err(|e| GetRecordsError::Other(format!("GetRecords answer: {e}")))?;
    let capacity = wire.records.iter().map(|r| r.data.len() / 4 * 3).sum();
    let mut buf = Vec::with_capacity(capacity);
    let mut spans = Vec::with_capacity(wire.records.len());
    for r in &wire.records {
        let start = buf.len();
        buf.resize(start + r.data.len().div_ceil(4) * 3, 0);
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(r.data.as_bytes(), &mut buf[start..])
            .map_err(|e| GetRecordsError::Other(format!("record {}: data: {e}", r.sequence)))?;
        buf.truncate(start + n);
        spans.push(start..start + n);
    }
    let buf = Bytes::from(buf);
    let mut records = Vec::with_capacity(wire.records.len());
    let mut last_sequence = None;
    for (r, span) in wire.records.iter().zip(spans) {
        let sequence: Arc<str> = Arc::from(r.sequence.as_ref());
        // The stream's own clock, fixed for the record's lifetime: validation against it is
        // the same on every replay (see `RawRecord::judged_at`). Whole seconds, as the
        // SDK's `DateTime::secs` gave.
        let judged_at = r.arrival.map(|t| t.floor() as i64);
        let data = buf.slice(span);
        let raw = |part: Bytes, sub: Option<u32>| RawRecord {
            data: part,
            position: Position::Sequence {
                shard: shard.clone(),
                sequence: sequence.clone(),
                sub,
            },
            judged_at,
        };
        match kpl::deaggregate(&data) {
            Some(parts) => records.extend(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| raw(data.slice_ref(p), Some(i as u32))),
            ),
            None => records.push(raw(data.clone(), None)),
        }
        last_sequence = Some(sequence);
    }
    Ok(Answer {
        records,
        kinesis_records: wire.records.len(),
        last_sequence,
        oldest_arrival: wire
            .records
            .iter()
            .filter_map(|r| r.arrival)
            .reduce(f64::min),
        next_iterator: wire.next_iterator,
        millis_behind: wire.millis_behind,
    })
}

/// Records the request URI of the SDK call it is attached to (the first one wins: the
/// endpoint of a client's configuration does not change).
#[derive(Debug)]
pub struct CaptureEndpoint(Arc<OnceLock<String>>);

impl Intercept for CaptureEndpoint {
    fn name(&self) -> &'static str {
        "CaptureEndpoint"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let _ = self.0.set(context.request().uri().to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn answer(records: &[(&[u8], &str, f64)], next: Option<&str>) -> Vec<u8> {
        let records: Vec<_> = records
            .iter()
            .map(|(data, seq, at)| {
                serde_json::json!({
                    "Data": STANDARD.encode(data),
                    "SequenceNumber": seq,
                    "PartitionKey": "pk",
                    "ApproximateArrivalTimestamp": at,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "Records": records,
            "NextShardIterator": next,
            "MillisBehindLatest": 1500,
        }))
        .unwrap()
    }

    fn data(r: &RawRecord) -> &[u8] {
        &r.data
    }

    fn position(r: &RawRecord) -> (String, Option<u32>) {
        match &r.position {
            Position::Sequence { sequence, sub, .. } => (sequence.to_string(), *sub),
            Position::Line(_) => panic!("a Kinesis record has a sequence position"),
        }
    }

    #[test]
    fn records_and_kpl_user_records_are_slices_of_one_buffer_in_order() {
        let shard: Arc<str> = Arc::from("shardId-000000000001");
        let agg = loadgen::kpl::aggregate("pk", &[b"{\"a\":1}", b"{\"b\":2}"]);
        let body = answer(
            &[
                (b"{\"x\":1}", "101", 1_700_000_000.75),
                (&agg, "102", 1_699_999_999.25),
                (b"", "103", 1_700_000_001.0),
            ],
            Some("next-it"),
        );
        let a = parse_answer(&body, &shard).unwrap();
        let got: Vec<_> = a
            .records
            .iter()
            .map(|r| (data(r).to_vec(), position(r)))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"{\"x\":1}".to_vec(), ("101".into(), None)),
                (b"{\"a\":1}".to_vec(), ("102".into(), Some(0))),
                (b"{\"b\":2}".to_vec(), ("102".into(), Some(1))),
                (b"".to_vec(), ("103".into(), None)),
            ]
        );
        // Whole seconds of the stream's clock, per Kinesis record (sub-records share it).
        let judged: Vec<_> = a.records.iter().map(|r| r.judged_at).collect();
        assert_eq!(
            judged,
            vec![
                Some(1_700_000_000),
                Some(1_699_999_999),
                Some(1_699_999_999),
                Some(1_700_000_001)
            ]
        );
        assert_eq!(a.kinesis_records, 3);
        assert_eq!(a.last_sequence.as_deref(), Some("103"));
        assert_eq!(a.oldest_arrival, Some(1_699_999_999.25));
        assert_eq!(a.next_iterator.as_deref(), Some("next-it"));
        assert_eq!(a.millis_behind, Some(1500));
        assert!(
            a.records
                .iter()
                .all(|r| r.position.shard() == Some("shardId-000000000001"))
        );
        // One buffer: the first record's slice and the KPL parts point into the same allocation.
        let base = a.records[0].data.as_ptr() as usize;
        assert!(
            a.records
                .iter()
                .skip(1)
                .all(|r| r.data.is_empty() || (r.data.as_ptr() as usize) > base)
        );
    }

    #[test]
    fn an_empty_or_closed_answer_and_escaped_json_parse() {
        let shard: Arc<str> = Arc::from("s");
        let a = parse_answer(br#"{"Records":[],"MillisBehindLatest":0}"#, &shard).unwrap();
        assert!(a.records.is_empty() && a.next_iterator.is_none() && a.last_sequence.is_none());
        // JSON may escape `/` in base64; the parse must not depend on borrowing.
        let body = br#"{"Records":[{"Data":"Pz8\/","SequenceNumber":"9","ApproximateArrivalTimestamp":1.7E9}],"NextShardIterator":"i"}"#;
        let a = parse_answer(body, &shard).unwrap();
        assert_eq!(data(&a.records[0]), b"???");
        assert_eq!(a.records[0].judged_at, Some(1_700_000_000));
        assert!(a.millis_behind.is_none());
        // Not base64, or not the answer's shape: an error, never a panic.
        assert!(
            parse_answer(
                br#"{"Records":[{"Data":"%%%","SequenceNumber":"1"}]}"#,
                &shard
            )
            .is_err()
        );
        assert!(parse_answer(b"<html>", &shard).is_err());
    }

    #[test]
    fn error_answers_are_classified_like_the_sdk_does() {
        let final_ = |a: Attempt| match a {
            Attempt::Final(e) => e,
            Attempt::Retryable(e) => panic!("expected final, got retryable {e}"),
        };
        let retry = |a: Attempt| match a {
            Attempt::Retryable(e) => e,
            Attempt::Final(e) => panic!("expected retryable, got final {e}"),
        };
        let body = br#"{"__type":"com.amazonaws.kinesis.v20131202#ExpiredIteratorException","message":"old"}"#;
        assert!(
            matches!(final_(classify(400, None, body)), GetRecordsError::ExpiredIterator(m) if m.contains("old"))
        );
        let t = br#"{"__type":"ProvisionedThroughputExceededException","message":"slow"}"#;
        assert!(matches!(
            retry(classify(400, None, t)),
            GetRecordsError::Throttled(_)
        ));
        // The header wins over the body, and loses its `:details` suffix.
        assert!(matches!(
            retry(classify(
                400,
                Some("ProvisionedThroughputExceededException:http://x"),
                b""
            )),
            GetRecordsError::Throttled(_)
        ));
        assert!(matches!(
            retry(classify(500, None, br#"{"__type":"InternalFailure"}"#)),
            GetRecordsError::Other(_)
        ));
        assert!(matches!(
            retry(classify(503, None, b"not json")),
            GetRecordsError::Other(_)
        ));
        assert!(matches!(
            final_(classify(
                400,
                None,
                br#"{"__type":"AccessDeniedException"}"#
            )),
            GetRecordsError::Other(_)
        ));
        assert!(matches!(
            final_(classify(
                400,
                None,
                br#"{"__type":"ResourceNotFoundException"}"#
            )),
            GetRecordsError::Other(_)
        ));
    }

    #[test]
    fn backoff_is_jittered_within_a_doubling_capped_window() {
        for attempt in 1..=12 {
            let window = (INITIAL_BACKOFF * (1 << (attempt - 1))).min(MAX_BACKOFF);
            for _ in 0..50 {
                assert!(backoff(attempt) <= window);
            }
        }
    }
}
