//! A writer that stayed idle while the log was checkpointed and cleaned up must notice that
//! the log moved on without it (issue 11, defect 3).
//!
//! Before the fix the writer probed `N+1.json`, found nothing (it had been expired), and
//! committed at `N+1` again: below the newest checkpoint, so no reader ever saw the rows,
//! and the rows it should have deduplicated against were not checked either.

mod common;

use common::{config, temp_dir};
use deltalake::DeltaTable;
use writer::pipeline::Pipeline;
use writer::source::RawRecord;

fn records(event_type: &str, uuids: impl IntoIterator<Item = u32>) -> Vec<RawRecord> {
    common::batch(
        uuids
            .into_iter()
            .map(|n| {
            format!(
                r#"{{"event_uuid":"00000000-0000-4000-8000-{n:012}","event_name":"{event_type}:x","created_at":1710670530}}"#
            )
            .into_bytes()
        })
        .collect(),
    )
}

async fn process(p: &mut Pipeline, recs: Vec<RawRecord>) -> writer::pipeline::BatchReport {
    common::try_process(p, recs).await.expect("batch commits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_writer_notices_expired_log_entries_and_commits_visibly() {
    let dir = temp_dir("log-moved-on");
    let mut idle = Pipeline::open(config(&dir, "idle")).await.expect("open");
    let first = process(&mut idle, records("alpha", 0..10)).await;
    let v_idle = first.events_version.expect("committed");

    // Another writer moves the table on by three commits, one of them into the partition
    // the idle writer will write to next.
    let mut busy = Pipeline::open(config(&dir, "busy")).await.expect("open");
    process(&mut busy, records("beta", 100..110)).await;
    process(&mut busy, records("beta", 110..120)).await;
    let last = process(&mut busy, records("gamma", 200..210)).await;
    let v_busy = last.events_version.expect("committed");
    assert_eq!(v_busy, v_idle + 3);

    // The compactor's `checkpoint`: a checkpoint at the latest version, then every older
    // entry expired (retention shortened to "everything before now").
    let events_uri = dir.join("events").display().to_string();
    let table = storage::open_table(&events_uri, &storage::StorageConfig::default())
        .await
        .expect("open");
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .expect("checkpoint");
    let expired = deltalake::checkpoints::cleanup_expired_logs_for(
        v_busy as u64,
        table.log_store().as_ref(),
        chrono::Utc::now().timestamp_millis() + 60_000,
        None,
    )
    .await
    .expect("cleanup");
    assert!(
        expired >= 3,
        "the idle writer's next entries are gone ({expired})"
    );

    // The idle writer wakes up: 10 new events in `gamma`, 5 of which the busy writer
    // already stored there.
    let again = process(&mut idle, records("gamma", 205..215)).await;
    assert_eq!(
        again.events_version,
        Some(v_busy + 1),
        "committed after the latest version, not into the expired range"
    );
    assert_eq!(again.counts.written, 5);
    assert_eq!(again.counts.duplicates, 5);

    // A fresh reader sees the idle writer's new file.
    let mut fresh = DeltaTable::new(table.log_store());
    fresh.load().await.expect("load");
    assert_eq!(fresh.version().map(|v| v as i64), Some(v_busy + 1));
    let gamma_files = fresh
        .get_file_uris()
        .expect("files")
        .filter(|u| u.contains("event_type=gamma"))
        .count();
    assert_eq!(
        gamma_files, 2,
        "the busy writer's file and the idle writer's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
