//! Shard-scoped dedupe (`--dedupe-keys own-shards`, issue 15): each writer holds only the
//! keys of the shards it holds (and of rows that came through no shard), so another
//! writer's commit costs it no key read, and losing a race to one is a rebase.
//!
//! Every test checks the table itself, not only what the writers report.

mod common;

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use common::{config, event, table_rows, temp_dir};
use deltalake::kernel::Transaction;
use schemas::table::EVENT_UUID;
use writer::dedupe::OwnedShards;
use writer::pipeline::{BatchReport, Pipeline};
use writer::service::progress::app_id;
use writer::source::{Position, RawRecord};

const STREAM: &str = "events";
/// 2024-03-17T10:15:30Z.
const DAY: i64 = 1_710_670_530;

fn type_of(n: u64) -> &'static str {
    ["alpha", "beta", "gamma"][(n % 3) as usize]
}

/// Events `uuids` as records read from `shard`.
fn from_shard(shard: &str, uuids: impl IntoIterator<Item = u64>) -> Vec<RawRecord> {
    uuids
        .into_iter()
        .map(|n| RawRecord {
            data: Bytes::from(event(n, type_of(n), DAY)),
            position: Position::Sequence {
                shard: shard.into(),
                sequence: format!("{n:020}").into(),
                sub: None,
            },
            judged_at: None,
        })
        .collect()
}

/// One batch of `shard`, committed with the shard's next `txn`, fenced on the previous one,
/// as the service commits it.
async fn round(p: &mut Pipeline, shard: &str, round: i64, recs: Vec<RawRecord>) -> BatchReport {
    let app = app_id(STREAM, shard);
    let txns = vec![Transaction::new(&app, round)];
    let expect = [(app, (round > 0).then(|| round - 1))];
    p.process("kinesis", recs, txns, &expect, &HashMap::new())
        .await
        .expect("batch commits")
}

fn events_uri(dir: &Path) -> String {
    dir.join("events").display().to_string()
}

async fn open(dir: &Path, id: &str, shard: &str, own_shards: bool) -> Pipeline {
    let mut p = Pipeline::open(config(dir, id)).await.expect("open");
    if own_shards {
        p.events.own_shards(Some(OwnedShards::new(STREAM, [shard])));
    }
    p
}

/// Two writers, one shard each, racing for every version; each re-sends half of its own
/// previous batch. Returns (files the writers read after warming up, conflicts).
async fn race(own_shards: bool) -> (u64, u32) {
    let dir = temp_dir("shard-keys");
    let mut a = open(&dir, "a", "shard-a", own_shards).await;
    let mut b = open(&dir, "b", "shard-b", own_shards).await;
    // Warm-up, one after the other: each writer loads the three partitions.
    round(&mut a, "shard-a", 0, from_shard("shard-a", 0..30)).await;
    round(&mut b, "shard-b", 0, from_shard("shard-b", 1000..1030)).await;
    round(&mut a, "shard-a", 1, from_shard("shard-a", 30..60)).await;
    let warm = a.events.index_stats().files_read + b.events.index_stats().files_read;
    let (mut conflicts, mut written, mut duplicates) = (0u32, 0u64, 0u64);
    const ROUNDS: u64 = 16;
    for r in 1..ROUNDS {
        let (ra, rb) = tokio::join!(
            round(
                &mut a,
                "shard-a",
                r as i64 + 1,
                from_shard("shard-a", 30 * r + 15..30 * r + 60)
            ),
            round(
                &mut b,
                "shard-b",
                r as i64,
                from_shard("shard-b", 1000 + 30 * r - 15..1000 + 30 * r + 30)
            ),
        );
        for report in [ra, rb] {
            conflicts += report.conflicts;
            written += report.counts.written;
            duplicates += report.counts.duplicates;
        }
    }
    // Every re-sent event (15 per batch) was caught by the writer of its shard.
    assert_eq!(duplicates, 2 * 15 * (ROUNDS - 1), "re-sends dropped");
    assert_eq!(written, 2 * 30 * (ROUNDS - 1));
    let rows = table_rows(&events_uri(&dir), EVENT_UUID).await;
    let distinct: std::collections::HashSet<_> = rows.iter().collect();
    assert_eq!(rows.len(), distinct.len(), "no event stored twice");
    assert_eq!(rows.len() as u64, 60 + 30 + 2 * 30 * (ROUNDS - 1));
    let read = a.events.index_stats().files_read + b.events.index_stats().files_read - warm;
    let _ = std::fs::remove_dir_all(&dir);
    (read, conflicts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_own_shards_another_writers_commits_cost_no_key_reads_even_when_they_win_a_race() {
    let (read_all, _) = race(false).await;
    assert!(
        read_all > 0,
        "holding every key, each writer reads the other's files ({read_all})"
    );
    let (read_own, conflicts) = race(true).await;
    assert!(conflicts > 0, "the writers' commits raced");
    assert_eq!(
        read_own, 0,
        "holding its own shards' keys, a writer reads no file of the other's commits, \
         also after losing a race ({conflicts} conflicts)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_own_shards_a_writer_loads_its_shards_and_shardless_keys_only() {
    let dir = temp_dir("shard-keys-load");
    // A backfill (`writer ingest`: no shard), then writer a on shard-a.
    let mut backfill = Pipeline::open(config(&dir, "backfill"))
        .await
        .expect("open");
    common::try_process(
        &mut backfill,
        common::batch((0..12).map(|n| event(n, type_of(n), DAY)).collect()),
    )
    .await
    .expect("backfill");
    let mut a = open(&dir, "a", "shard-a", true).await;
    round(&mut a, "shard-a", 0, from_shard("shard-a", 100..130)).await;
    // Writer b starts cold on shard-b: its batch re-sends a backfilled event (held: no
    // shard) and one of shard-a's (a copy under another partition key: not held).
    let mut b = open(&dir, "b", "shard-b", true).await;
    let mut batch: Vec<u64> = (200..210).collect();
    batch.extend([3, 101]);
    let report = round(&mut b, "shard-b", 0, from_shard("shard-b", batch)).await;
    let stats = b.events.index_stats();
    assert_eq!(stats.keys_loaded, 12, "only the shardless keys: {stats:?}");
    // a's three files (one per event type) hold only shard-a's rows: not even read.
    assert_eq!(stats.files_read, 3, "only the backfill's files: {stats:?}");
    assert_eq!(stats.load_files_skipped, 3, "{stats:?}");
    assert_eq!(report.counts.duplicates, 1, "the backfilled copy is caught");
    assert_eq!(report.counts.written, 11);
    let rows = table_rows(&events_uri(&dir), EVENT_UUID).await;
    let twice: Vec<_> = rows
        .iter()
        .filter(|(_, u)| u.ends_with("000000000101"))
        .collect();
    assert_eq!(
        twice.len(),
        2,
        "a copy that arrived through another writer's shard is stored again (the stated \
         assumption: copies share a partition key)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaining_a_shard_never_committed_keeps_the_index_and_taking_over_one_reloads_it() {
    let dir = temp_dir("shard-keys-gain");
    let mut a = open(&dir, "a", "shard-a", true).await;
    let mut b = open(&dir, "b", "shard-b", true).await;
    round(&mut a, "shard-a", 0, from_shard("shard-a", 0..30)).await;
    round(&mut b, "shard-b", 0, from_shard("shard-b", 1000..1030)).await;
    let warm = b.events.index_stats().files_read;
    // A new shard (e.g. a reshard's child) has no row in the table: nothing to re-read.
    let with_c = OwnedShards::new(STREAM, ["shard-b", "shard-c"]).with_fresh(["shard-c"]);
    b.events.own_shards(Some(with_c));
    round(&mut b, "shard-c", 0, from_shard("shard-c", 2000..2030)).await;
    assert_eq!(b.events.index_stats().files_read, warm, "index kept");
    // Taking over shard-a (committed by a): its keys are not held, so the index is re-read
    // and a's records delivered again are caught.
    b.events.own_shards(Some(OwnedShards::new(
        STREAM,
        ["shard-a", "shard-b", "shard-c"],
    )));
    let report = round(&mut b, "shard-a", 1, from_shard("shard-a", 20..40)).await;
    assert_eq!(report.counts.duplicates, 10, "a's committed records caught");
    assert_eq!(report.counts.written, 10);
    assert!(
        b.events.index_stats().files_read > warm,
        "re-read after the takeover"
    );
    let rows = table_rows(&events_uri(&dir), EVENT_UUID).await;
    let distinct: std::collections::HashSet<_> = rows.iter().collect();
    assert_eq!(rows.len(), distinct.len(), "no event stored twice");
    assert_eq!(rows.len(), 30 + 30 + 30 + 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 15: taking over a shard re-reads only the files that may hold its rows (their
/// `source_shard` statistics), not every file of the partitions held, and stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_a_shard_reads_only_the_files_that_may_hold_its_rows() {
    let dir = temp_dir("shard-keys-takeover");
    let mut a = open(&dir, "a", "shard-a", true).await;
    let mut b = open(&dir, "b", "shard-b", true).await;
    let mut c = open(&dir, "c", "shard-c", true).await;
    // Three writers, three commits each: every commit adds one file to each of the three
    // partitions (the event types), so each partition holds 9 files, 3 per shard.
    for r in 0..3u64 {
        let n = 30 * r;
        round(
            &mut a,
            "shard-a",
            r as i64,
            from_shard("shard-a", n..n + 30),
        )
        .await;
        round(
            &mut b,
            "shard-b",
            r as i64,
            from_shard("shard-b", 1000 + n..1030 + n),
        )
        .await;
        round(
            &mut c,
            "shard-c",
            r as i64,
            from_shard("shard-c", 2000 + n..2030 + n),
        )
        .await;
    }
    let before = b.events.index_stats();
    // b takes shard-a over (a stopped); a's last records are delivered again, with new ones.
    b.events
        .own_shards(Some(OwnedShards::new(STREAM, ["shard-a", "shard-b"])));
    let report = round(&mut b, "shard-a", 3, from_shard("shard-a", 80..100)).await;
    assert_eq!(report.counts.duplicates, 10, "a's committed records caught");
    assert_eq!(report.counts.written, 10);
    let after = b.events.index_stats();
    assert_eq!(
        after.files_read - before.files_read,
        9,
        "only shard-a's 3 files in each of the 3 partitions are read: {after:?}"
    );
    assert_eq!(
        after.gain_files_skipped - before.gain_files_skipped,
        18,
        "{after:?}"
    );
    assert_eq!(
        after.scopes_completed - before.scopes_completed,
        3,
        "{after:?}"
    );
    // The completed partitions are exact for both shards: b's and a's copies are caught.
    let mut again: Vec<RawRecord> = from_shard("shard-b", 1060..1065);
    again.extend(from_shard("shard-a", 0..5));
    let report = round(&mut b, "shard-b", 3, again).await;
    assert_eq!(report.counts.duplicates, 10, "{report:?}");
    assert_eq!(report.counts.written, 0);
    let rows = table_rows(&events_uri(&dir), EVENT_UUID).await;
    let distinct: std::collections::HashSet<_> = rows.iter().collect();
    assert_eq!(rows.len(), distinct.len(), "no event stored twice");
    assert_eq!(rows.len(), 3 * 90 + 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writer `c` on shard-a, with a dedupe budget of `budget` bytes, after one commit that put
/// shard-a's 600 and shard-b's 6,000 rows of "alpha" in one file (as compaction, or one
/// writer holding both shards, does). Its batch re-sends 100 of shard-a's events with 100
/// new ones. Returns its index stats and the batch's report.
async fn mixed_file_load(budget: usize) -> (writer::dedupe::IndexStats, BatchReport) {
    let dir = temp_dir("shard-keys-mixed");
    let mut cfg = config(&dir, "ab");
    cfg.dedupe.memory_budget_bytes = 1 << 30;
    let mut ab = Pipeline::open(cfg).await.expect("open");
    let alpha = |range: std::ops::Range<u64>| range.map(|n| 3 * n);
    let mut recs = from_shard("shard-a", alpha(0..600));
    recs.extend(from_shard("shard-b", alpha(10_000..16_000)));
    let txns = ["shard-a", "shard-b"].map(|s| Transaction::new(app_id(STREAM, s), 0));
    let expect = ["shard-a", "shard-b"].map(|s| (app_id(STREAM, s), None));
    ab.process("kinesis", recs, txns.into(), &expect, &HashMap::new())
        .await
        .expect("mixed commit");
    let mut cfg = config(&dir, "c");
    cfg.dedupe.memory_budget_bytes = budget;
    let mut c = Pipeline::open(cfg).await.expect("open");
    c.events
        .own_shards(Some(OwnedShards::new(STREAM, ["shard-a"])));
    let mut batch = from_shard("shard-a", alpha(500..700));
    batch.iter_mut().enumerate().for_each(|(i, r)| {
        r.position = Position::Sequence {
            shard: "shard-a".into(),
            sequence: format!("{:020}", 1_000_000 + i).into(),
            sub: None,
        }
    });
    let report = round(&mut c, "shard-a", 1, batch).await;
    let stats = c.events.index_stats();
    let rows = table_rows(&events_uri(&dir), EVENT_UUID).await;
    assert_eq!(rows.len(), 600 + 6_000 + 100, "no event stored twice");
    let _ = std::fs::remove_dir_all(&dir);
    (stats, report)
}

/// Issue 15 (the 1M -> 200M-key measurement): a file that mixes other shards' rows with the
/// writer's own must not be budgeted or sized as if every row were kept. Loading it keeps
/// shard-a's 600 keys only, so the index fits a budget far below what all 6,600 rows need,
/// and its memory follows the writer's own keys, not the partition's; a writer whose own
/// keys do not fit still answers exactly, by streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_file_is_budgeted_by_the_keys_the_writer_keeps_not_by_its_rows() {
    // 64 KiB: ~600 keys fit (16 bytes each, plus the table's slack), 6,600 do not.
    let (stats, report) = mixed_file_load(64 << 10).await;
    assert_eq!(report.counts.duplicates, 100, "shard-a's re-sends caught");
    assert_eq!(report.counts.written, 100);
    assert_eq!(stats.scopes_streamed, 0, "held, not streamed: {stats:?}");
    assert_eq!(stats.keys_loaded, 600, "{stats:?}");
    assert!(stats.bytes_held <= 64 << 10, "{stats:?}");
    // With room to spare, still sized by the keys kept, not by the file's 6,600 rows.
    let (stats, _) = mixed_file_load(1 << 30).await;
    assert!(
        stats.bytes_held < 6_600 * 16,
        "index sized for every row of the file: {stats:?}"
    );
    // Own keys beyond the budget: streamed after the load, still exact, within budget.
    let (stats, report) = mixed_file_load(4 << 10).await;
    assert_eq!(report.counts.duplicates, 100, "{stats:?}");
    assert_eq!(report.counts.written, 100);
    assert!(stats.scopes_streamed >= 1, "{stats:?}");
    assert!(stats.bytes_held <= 4 << 10, "{stats:?}");
}
