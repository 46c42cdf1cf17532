//! The compactor through its library API on a local table: optimize compacts without changing
//! a row, history shows the rewrite, and vacuum (zero retention, forced) deletes exactly the
//! files the rewrite replaced.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compactor::{Compactor, ErrorKind, Operation, OptimizeOptions, VacuumError, VacuumOptions};
use deltalake::DeltaTable;
use deltalake::arrow::array::{Int64Array, StringArray};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{DataType, StructField};
use deltalake::protocol::SaveMode;
use storage::StorageConfig;

const APPENDS: i64 = 6;
const ROWS_PER_APPEND: i64 = 5;

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("compactor-library-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A table partitioned by `part`, written by `APPENDS` small appends alternating between
/// partitions `a` and `b` (one file each).
async fn small_files_table(dir: &Path) -> DeltaTable {
    small_files_table_with(dir, Vec::new()).await
}

/// [`small_files_table`] with table properties set at creation.
async fn small_files_table_with(dir: &Path, properties: Vec<(&str, &str)>) -> DeltaTable {
    let url = storage::table_url(dir.to_str().expect("utf-8 path")).expect("table url");
    let mut table = DeltaTable::try_from_url(url)
        .await
        .expect("table handle")
        .create()
        .with_columns([
            StructField::new("id", DataType::LONG, false),
            StructField::new("part", DataType::STRING, true),
        ])
        .with_partition_columns(["part"])
        .with_configuration(
            properties
                .into_iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string()))),
        )
        .await
        .expect("create table");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", ArrowType::Int64, false),
        Field::new("part", ArrowType::Utf8, true),
    ]));
    for append in 0..APPENDS {
        let part = if append % 2 == 0 { "a" } else { "b" };
        let ids: Vec<i64> = (0..ROWS_PER_APPEND)
            .map(|i| append * ROWS_PER_APPEND + i)
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(vec![part; ROWS_PER_APPEND as usize])),
            ],
        )
        .expect("batch");
        table = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .await
            .expect("append");
    }
    table
}

/// Live files (table-relative paths) and the rows they hold, from the latest snapshot.
async fn live_files(dir: &Path) -> (Vec<String>, i64) {
    let table = storage::open_table(dir.to_str().expect("utf-8"), &StorageConfig::default())
        .await
        .expect("open");
    let snapshot = table.snapshot().expect("snapshot");
    let mut paths = Vec::new();
    let mut rows = 0;
    for f in snapshot.log_data().iter() {
        paths.push(f.path().to_string());
        rows += f.num_records().expect("numRecords in stats") as i64;
    }
    paths.sort();
    (paths, rows)
}

/// Data files on disk (table-relative), outside `_delta_log`.
fn parquet_on_disk(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if !path.ends_with("_delta_log") {
                    walk(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let rel = path.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn optimize_history_then_vacuum() {
    let dir = TempDir::new();
    small_files_table(&dir.0).await;
    let (small_files, rows) = live_files(&dir.0).await;
    assert_eq!(small_files.len() as i64, APPENDS);
    assert_eq!(rows, APPENDS * ROWS_PER_APPEND);

    let compactor = Compactor::new(dir.0.to_str().expect("utf-8"), StorageConfig::default());
    let compacted = optimize(&compactor, &dir.0, rows).await;
    vacuum(&compactor, &dir.0, &small_files, &compacted).await;
    let (_, rows_after) = live_files(&dir.0).await;
    assert_eq!(rows_after, rows, "vacuum never touches a live row");
}

/// Optimize compacts each partition into one file, keeping every row, in one OPTIMIZE
/// commit that history shows; returns the live files after.
async fn optimize(compactor: &Compactor, dir: &Path, rows: i64) -> Vec<String> {
    let optimized = compactor
        .optimize(&OptimizeOptions::default())
        .await
        .expect("optimize");
    assert_eq!(optimized.files_before, APPENDS as u64);
    assert_eq!(optimized.files_after, 2, "one file per partition");
    assert_eq!(optimized.partitions_touched, 2);
    assert_eq!(
        optimized.versions_committed, 1,
        "one commit for the whole run"
    );
    assert_eq!(optimized.files_removed, APPENDS as u64);

    let (files, rows_after) = live_files(dir).await;
    assert_eq!(files.len(), 2);
    assert_eq!(rows_after, rows, "compaction keeps every row");

    let history = compactor.history(20).await.expect("history");
    assert_eq!(
        history.len() as i64,
        1 + APPENDS + 1,
        "create, appends, the rewrite"
    );
    assert!(history.windows(2).all(|w| w[0].version == w[1].version + 1));
    let newest = &history[0];
    assert_eq!(newest.version, optimized.table_version);
    assert_eq!(newest.operation, "OPTIMIZE");
    assert!(newest.compaction);
    assert_eq!(history[1].operation, "WRITE");
    files
}

/// Zero retention is refused unless forced; forced, a dry run only lists the replaced small
/// files, and the real vacuum deletes exactly those between VACUUM START and END.
async fn vacuum(compactor: &Compactor, dir: &Path, small_files: &[String], live: &[String]) {
    let zero = VacuumOptions {
        retention: Some(Duration::ZERO),
        ..VacuumOptions::default()
    };
    let refused = compactor.vacuum(&zero).await.expect_err("refused");
    assert_eq!(refused.operation, Operation::Vacuum);
    assert!(matches!(
        refused.kind,
        ErrorKind::Vacuum(VacuumError::RetentionTooShort { .. })
    ));

    // Every file and commit must be older than the cutoff (now - 0).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let forced = VacuumOptions {
        force: true,
        ..zero
    };
    let dry_run = VacuumOptions {
        dry_run: true,
        ..forced.clone()
    };
    let dry = compactor.vacuum(&dry_run).await.expect("dry run");
    assert_eq!(dry.files_deleted, APPENDS as u64);
    assert_eq!(dry.would_delete, small_files);
    assert_eq!(
        parquet_on_disk(dir).len() as i64,
        APPENDS + 2,
        "dry run deletes nothing"
    );

    let vacuumed = compactor.vacuum(&forced).await.expect("vacuum");
    assert_eq!(vacuumed.files_deleted, APPENDS as u64);
    assert_eq!(vacuumed.unreferenced_deleted, APPENDS as u64);
    assert_eq!(vacuumed.versions_committed, 2, "VACUUM START and END");
    assert!(vacuumed.would_delete.is_empty());
    assert_eq!(parquet_on_disk(dir), live, "only the live files remain");

    let history = compactor.history(2).await.expect("history");
    let ops: Vec<_> = history.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["VACUUM END", "VACUUM START"]);
}

/// The log's entries are expired by the compactor's `checkpoint` step only, never as a side
/// effect of an optimize commit: delta-rs, left alone, lists the whole `_delta_log` and
/// expires old entries after every commit it makes (its post-commit hook), which made every
/// partition's optimize commit pay a full listing of the log. The project's tables turn that
/// off (`delta.enableExpiredLogCleanup = false`) and expire once per run.
#[tokio::test]
async fn optimize_leaves_log_expiry_to_the_checkpoint_step() {
    let dir = TempDir::new();
    let table = small_files_table_with(&dir.0, schemas::table::default_table_properties()).await;
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .expect("checkpoint");
    // Every entry so far is older than any retention.
    let log = dir.0.join("_delta_log");
    let month_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    let entries = |log: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(log)
            .expect("read log")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('_'))
            .collect();
        names.sort();
        names
    };
    for name in entries(&log) {
        let file = std::fs::File::options()
            .write(true)
            .open(log.join(&name))
            .expect("open entry");
        file.set_modified(month_ago).expect("backdate entry");
    }
    let before = entries(&log);
    assert_eq!(before.len() as i64, APPENDS + 1);

    let compactor = Compactor::new(dir.0.to_str().expect("utf-8"), StorageConfig::default());
    let optimized = compactor
        .optimize(&OptimizeOptions::default())
        .await
        .expect("optimize");
    assert!(optimized.versions_committed > 0);
    let after_optimize = entries(&log);
    assert_eq!(
        after_optimize.len(),
        before.len() + optimized.versions_committed as usize,
        "optimize expired log entries"
    );

    let checkpoint = compactor.checkpoint().await.expect("checkpoint step");
    assert_eq!(
        checkpoint.log_files_expired as i64, APPENDS,
        "the checkpoint step expires the old entries below the old checkpoint (versions 0..{APPENDS})"
    );
}

/// With `since` (which delta-rs cannot filter on) the selected partitions are rewritten one
/// commit each, and only those with a recent file.
#[tokio::test]
async fn optimize_since_commits_per_partition() {
    let dir = TempDir::new();
    small_files_table(&dir.0).await;
    let compactor = Compactor::new(dir.0.to_str().expect("utf-8"), StorageConfig::default());
    let optimized = compactor
        .optimize(&OptimizeOptions {
            since: Some(Duration::from_secs(86_400)),
            ..OptimizeOptions::default()
        })
        .await
        .expect("optimize");
    assert_eq!(optimized.partitions_touched, 2);
    assert_eq!(optimized.versions_committed, 2, "one commit per partition");
    assert_eq!(optimized.files_after, 2);
    let history = compactor.history(2).await.expect("history");
    assert!(history.iter().all(|h| h.operation == "OPTIMIZE"));
}

/// A file delta-rs cannot read fails the one-commit run; the compactor then goes one
/// partition at a time, so the partitions before the broken one are still compacted (and
/// the run reports the failure).
#[tokio::test]
async fn an_unreadable_file_holds_back_only_its_partition() {
    let dir = TempDir::new();
    small_files_table(&dir.0).await;
    let (files, _) = live_files(&dir.0).await;
    let broken = files
        .iter()
        .find(|f| f.starts_with("part=b/"))
        .expect("a file in partition b");
    std::fs::write(dir.0.join(broken), b"not parquet").expect("break a file");

    let compactor = Compactor::new(dir.0.to_str().expect("utf-8"), StorageConfig::default());
    compactor
        .optimize(&OptimizeOptions::default())
        .await
        .expect_err("partition b cannot be read");
    let (after, _) = live_files(&dir.0).await;
    let in_part = |p: &str| after.iter().filter(|f| f.starts_with(p)).count();
    assert_eq!(in_part("part=a/"), 1, "partition a compacted: {after:?}");
    assert_eq!(in_part("part=b/"), 3, "partition b untouched: {after:?}");
}

/// The project's tables keep tombstones in checkpoints for an hour only
/// (`delta.deletedFileRetentionDuration`), yet vacuum keeps a week of time travel by default:
/// its retention is the compactor's own, and the table's property is only the floor below
/// which a retention needs `force`.
#[tokio::test]
async fn vacuum_keeps_a_week_though_tombstones_expire_in_hours() {
    let dir = TempDir::new();
    small_files_table_with(&dir.0, schemas::table::default_table_properties()).await;
    let compactor = Compactor::new(dir.0.to_str().expect("utf-8"), StorageConfig::default());
    compactor
        .optimize(&OptimizeOptions::default())
        .await
        .expect("optimize");

    let default = VacuumOptions {
        dry_run: true,
        ..VacuumOptions::default()
    };
    let planned = compactor.vacuum(&default).await.expect("default vacuum");
    assert_eq!(planned.retention_hours, Some(168.0));
    assert_eq!(planned.files_deleted, 0, "nothing is a week old");

    let half_hour = VacuumOptions {
        retention: Some(Duration::from_secs(1800)),
        ..default.clone()
    };
    let refused = compactor
        .vacuum(&half_hour)
        .await
        .expect_err("below the floor");
    match refused.kind {
        ErrorKind::Vacuum(VacuumError::RetentionTooShort { table_hours, .. }) => {
            assert_eq!(table_hours, 1.0);
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let two_hours = VacuumOptions {
        retention: Some(Duration::from_secs(2 * 3600)),
        ..default
    };
    let allowed = compactor.vacuum(&two_hours).await.expect("above the floor");
    assert_eq!(allowed.retention_hours, Some(2.0));
}
