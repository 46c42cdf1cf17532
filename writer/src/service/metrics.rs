//! Operator metrics in the Prometheus text format, and the `/healthz` + `/metrics` endpoint.
//! Hand-rolled on purpose: a dozen counters do not need a metrics framework, and the HTTP
//! side is two fixed routes on a loopback-or-task port.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const SIZE_BUCKETS: [f64; 7] = [
    10.0,
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bound (cumulative, as Prometheus exposes them);
    /// allocated on the first observation.
    buckets: Vec<u64>,
    /// Sum of all observations (`_sum`).
    sum: f64,
    /// Number of observations (`_count`).
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.buckets[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, bounds: &[f64]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.buckets.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            self.count, self.sum, self.count
        );
    }
}

/// Everything an operator graphs. Shared by the service loop (writes) and the endpoint
/// (reads); the help texts in [`Metrics::render`] say what each one counts.
#[derive(Default)]
pub struct Metrics {
    /// Records the readers delivered (a KPL aggregate counts its parts).
    pub records_read: AtomicU64,
    /// Events committed to the events table.
    pub events_written: AtomicU64,
    /// Events dropped as duplicates (in the batch or already in the table).
    pub duplicates: AtomicU64,
    /// Records sent to the rejected-events table.
    pub rejected: AtomicU64,
    /// Batches committed.
    pub commits: AtomicU64,
    /// Commit attempts that lost a race to another writer and were retried.
    pub commit_conflicts: AtomicU64,
    /// Batches whose commit failed (their shards are re-read).
    pub commit_failures: AtomicU64,
    /// Shard leases held (and read) now.
    pub leases_owned: AtomicI64,
    /// Readable shards nobody reads (unowned, expired lease, or ours but not read), as seen
    /// by this writer's last lease round. Above zero for longer than a lease duration means
    /// records are waiting that no writer will pick up: an alarm, not a graph.
    pub shards_unread: AtomicI64,
    /// Leases naming this writer as owner that it does not read (taken back next round).
    pub leases_owned_not_read: AtomicI64,
    /// Leases found taken by another worker.
    pub leases_lost: AtomicU64,
    /// Leases taken (new, expired, orphaned or stolen).
    pub leases_taken: AtomicU64,
    /// Data files whose key column the events table's dedupe index read (loads, other
    /// writers' commits, takeovers): each is an object-store GET, so a jump after a lease
    /// takeover or a compaction is what this counter shows (issue 15).
    pub dedupe_key_files_read: AtomicU64,
    /// Bytes the events table's dedupe key index holds (exact sets and filters), after the
    /// last commit: flat day after day when past days are demoted to filters (issue 14).
    pub dedupe_index_bytes: AtomicI64,
    /// Writers this writer takes commit turns with (0: no slot, flushing on its own cadence).
    pub commit_slot_writers: AtomicI64,
    /// Seconds per commit (both tables).
    commit_latency: Mutex<Histogram>,
    /// Records per committed batch.
    batch_size: Mutex<Histogram>,
    /// Age of a batch's oldest record when its commit became visible.
    freshness: Mutex<Histogram>,
    /// `MillisBehindLatest` per held shard (forgotten when the shard is dropped).
    lag: Mutex<BTreeMap<String, i64>>,
    /// When the service loop last turned: `/healthz`.
    last_loop: Mutex<Option<Instant>>,
}

impl Metrics {
    pub fn observe_commit(&self, seconds: f64, events: u64) {
        if let Ok(mut h) = self.commit_latency.lock() {
            h.observe(&LATENCY_BUCKETS, seconds);
        }
        if let Ok(mut h) = self.batch_size.lock() {
            h.observe(&SIZE_BUCKETS, events as f64);
        }
    }

    /// Age of a batch's oldest record when its commit became visible (stream arrival time →
    /// now): the number a freshness SLO is written against.
    pub fn observe_freshness(&self, seconds: f64) {
        if let Ok(mut h) = self.freshness.lock() {
            h.observe(&LATENCY_BUCKETS, seconds.max(0.0));
        }
    }

    pub fn set_lag(&self, shard: &str, millis: i64) {
        if let Ok(mut m) = self.lag.lock() {
            m.insert(shard.to_string(), millis);
        }
    }

    pub fn forget_shard(&self, shard: &str) {
        if let Ok(mut m) = self.lag.lock() {
            m.remove(shard);
        }
    }

    /// Called by the main loop each turn; `/healthz` fails when it stops turning.
    pub fn heartbeat(&self) {
        if let Ok(mut t) = self.last_loop.lock() {
            *t = Some(Instant::now());
        }
    }

    pub fn healthy(&self, max_silence: Duration) -> bool {
        self.last_loop
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() <= max_silence)
    }

    /// The Prometheus text exposition of every metric. (The names are a contract: the
    /// dashboards and alarms in `terraform/` use them.)
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters = self
            .counters()
            .map(|(n, h, v)| (n, h, "counter", v.to_string()));
        let gauges = self
            .gauges()
            .map(|(n, h, v)| (n, h, "gauge", v.to_string()));
        for (name, help, kind, value) in counters.into_iter().chain(gauges) {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let histograms = [
            (
                &self.commit_latency,
                "events_lake_commit_latency_seconds",
                "Time to commit a batch (both tables).",
                &LATENCY_BUCKETS[..],
            ),
            (
                &self.freshness,
                "events_lake_commit_freshness_seconds",
                "Age of each batch's oldest record (stream arrival time) when its commit became visible.",
                &LATENCY_BUCKETS[..],
            ),
            (
                &self.batch_size,
                "events_lake_batch_records",
                "Records per committed batch.",
                &SIZE_BUCKETS[..],
            ),
        ];
        for (histogram, name, help, bounds) in histograms {
            if let Ok(h) = histogram.lock() {
                h.render(&mut out, name, help, bounds);
            }
        }
        let _ = writeln!(
            out,
            "# HELP events_lake_shard_millis_behind_latest Lag reported by GetRecords.\n# TYPE events_lake_shard_millis_behind_latest gauge"
        );
        if let Ok(m) = self.lag.lock() {
            for (shard, v) in m.iter() {
                let _ = writeln!(
                    out,
                    "events_lake_shard_millis_behind_latest{{shard=\"{shard}\"}} {v}"
                );
            }
        }
        out
    }

    /// Counters: name, help, value.
    fn counters(&self) -> [(&'static str, &'static str, u64); 10] {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "events_lake_records_read_total",
                "Records read from the source.",
                v(&self.records_read),
            ),
            (
                "events_lake_events_written_total",
                "Events committed to the events table.",
                v(&self.events_written),
            ),
            (
                "events_lake_duplicates_total",
                "Events dropped as duplicates (in batch or already in the table).",
                v(&self.duplicates),
            ),
            (
                "events_lake_rejected_total",
                "Records rejected (sent to the rejected-events table).",
                v(&self.rejected),
            ),
            (
                "events_lake_commits_total",
                "Batches committed.",
                v(&self.commits),
            ),
            (
                "events_lake_commit_conflicts_total",
                "Commit attempts that lost a race and were retried.",
                v(&self.commit_conflicts),
            ),
            (
                "events_lake_commit_failures_total",
                "Batches whose commit failed and were re-read.",
                v(&self.commit_failures),
            ),
            (
                "events_lake_leases_lost_total",
                "Shard leases lost to other workers.",
                v(&self.leases_lost),
            ),
            (
                "events_lake_leases_taken_total",
                "Shard leases taken.",
                v(&self.leases_taken),
            ),
            (
                "events_lake_dedupe_key_files_read_total",
                "Data files whose key column the events table's dedupe index read.",
                v(&self.dedupe_key_files_read),
            ),
        ]
    }

    /// Gauges: name, help, value.
    fn gauges(&self) -> [(&'static str, &'static str, i64); 5] {
        let v = |a: &AtomicI64| a.load(Ordering::Relaxed);
        [
            (
                "events_lake_leases_owned",
                "Shard leases held by this writer.",
                v(&self.leases_owned),
            ),
            (
                "events_lake_shards_unread",
                "Readable shards no writer reads (unowned, expired, or owned but not read).",
                v(&self.shards_unread),
            ),
            (
                "events_lake_leases_owned_not_read",
                "Leases naming this writer as owner that it does not read.",
                v(&self.leases_owned_not_read),
            ),
            (
                "events_lake_dedupe_index_bytes",
                "Bytes held by the events table's dedupe key index (exact sets and filters).",
                v(&self.dedupe_index_bytes),
            ),
            (
                "events_lake_commit_slot_writers",
                "Writers this writer takes commit turns with (0: none, its own cadence).",
                v(&self.commit_slot_writers),
            ),
        ]
    }
}

/// Serve `/healthz` and `/metrics` until the process exits.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>, max_silence: Duration) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, ctype) = match path {
                "/healthz" if metrics.healthy(max_silence) => {
                    ("200 OK", "ok\n".to_string(), "text/plain")
                }
                "/healthz" => (
                    "503 Service Unavailable",
                    "stalled\n".to_string(),
                    "text/plain",
                ),
                "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                _ => ("404 Not Found", "not found\n".to_string(), "text/plain"),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.records_read.fetch_add(5, Ordering::Relaxed);
        m.observe_commit(0.3, 1000);
        m.set_lag("shardId-000000000000", 42);
        m.observe_freshness(3.0);
        m.dedupe_index_bytes.store(1 << 20, Ordering::Relaxed);
        m.dedupe_key_files_read.store(7, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("events_lake_dedupe_key_files_read_total 7"));
        assert!(text.contains("events_lake_dedupe_index_bytes 1048576"));
        assert!(text.contains("events_lake_commit_slot_writers 0"));
        assert!(text.contains("events_lake_commit_freshness_seconds_bucket{le=\"2.5\"} 0"));
        assert!(text.contains("events_lake_commit_freshness_seconds_bucket{le=\"5\"} 1"));
        assert!(text.contains("events_lake_records_read_total 5"));
        assert!(text.contains("events_lake_commit_latency_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("events_lake_commit_latency_seconds_bucket{le=\"0.25\"} 0"));
        assert!(
            text.contains(
                "events_lake_shard_millis_behind_latest{shard=\"shardId-000000000000\"} 42"
            )
        );
    }
}
