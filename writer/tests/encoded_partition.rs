//! A partition whose folder name needs percent-encoding (`event_type=caf%C3%A9 bar`), shared
//! by two writers: each must read the keys of the other's files there. The log stores such a
//! file's path encoded once more (`caf%25C3%25A9`); reading it verbatim names a file that does
//! not exist, and the writer could then neither deduplicate nor commit.

mod common;

use common::{config, temp_dir};
use schemas::{EventTypePattern, PartitionRules};
use writer::pipeline::Pipeline;

const AT: i64 = 1_710_670_530;

fn line(n: u64) -> Vec<u8> {
    format!(
        r#"{{"event_uuid":"00000000-0000-4000-8000-{n:012}","event_name":"café bar:x","created_at":{AT}}}"#
    )
    .into_bytes()
}

async fn open(dir: &std::path::Path, id: &str) -> Pipeline {
    let mut cfg = config(dir, id);
    cfg.partition.rules = PartitionRules {
        event_type_pattern: EventTypePattern::new("(?s).*").expect("pattern"),
        event_type_allowlist: None,
    };
    Pipeline::open(cfg).await.expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_dedupe_each_others_files_in_an_encoded_partition() {
    let dir = temp_dir("encoded-partition");
    let mut a = open(&dir, "a").await;
    let mut b = open(&dir, "b").await;
    // A loads the partition (its own commit), then B adds a key there.
    let first = common::try_process(&mut a, common::batch(vec![line(1)]))
        .await
        .expect("a commits");
    assert_eq!(first.counts.written, 1);
    let second = common::try_process(&mut b, common::batch(vec![line(2)]))
        .await
        .expect("b commits");
    assert_eq!(second.counts.written, 1);
    // A must see B's key by reading B's file from the log entry it replays.
    let again = common::try_process(&mut a, common::batch(vec![line(2), line(3)]))
        .await
        .expect("a commits after replaying b's commit");
    assert_eq!(again.counts.written, 1, "{:?}", again.counts);
    assert_eq!(again.counts.duplicates, 1, "{:?}", again.counts);
    let rows = common::table_rows(&dir.join("events").display().to_string(), "event_uuid").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
}
