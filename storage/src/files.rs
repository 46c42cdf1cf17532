//! Data files: where a partition's rows go, how they are encoded, the `add` action that
//! publishes them, and reading a key column back for dedupe.
//!
//! Encoding is synchronous (CPU, run on a thread pool by the caller) and uploading is async
//! (I/O), so the two overlap across partitions.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::{max, max_string, min, min_string};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::kernel::Add;
use deltalake::logstore::object_store::ObjectStoreExt;
// `ParquetObjectReader` is deprecated upstream in favour of a hand-written `AsyncFileReader`;
// it is still the simplest correct ranged reader over object_store, so we keep it for now.
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use deltalake::parquet::arrow::{ArrowWriter, ProjectionMask};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{ObjectStore, Path};
use futures::TryStreamExt;
use serde_json::{Map, Value, json};

use crate::error::LakeError;

/// Partition values of one file, in the table's partition-column order.
pub type PartitionValues = Vec<(String, Option<String>)>;

/// Parquet settings for data files: Snappy (cheap to write, read by every engine), one row
/// group per file for the sizes the writer produces; statistics on so engines can skip.
///
/// Columns whose values are (nearly) all distinct — ids, payloads, positions, rendered
/// timestamps — skip dictionary encoding: building a dictionary for them is pure hashing
/// work that the writer then throws away when the dictionary page overflows. The big
/// free-form columns (`payload`, `raw`, `message`) also carry no min/max statistics: no
/// query filters on them by range, and computing them compares every value.
pub fn writer_properties() -> WriterProperties {
    use deltalake::parquet::file::properties::EnabledStatistics;
    use deltalake::parquet::schema::types::ColumnPath;
    use schemas::table as t;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20));
    for c in [
        t::EVENT_UUID,
        t::CREATED_DATETIME,
        t::PAYLOAD,
        t::SOURCE_POSITION,
        t::REJECTION_ID,
        t::RAW,
        t::MESSAGE,
    ] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for c in [t::PAYLOAD, t::RAW, t::MESSAGE] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    b.build()
}

/// Encode one batch (file schema: no partition columns) as a Parquet file in memory.
pub fn encode_parquet(batch: &RecordBatch, table: &str) -> Result<Bytes, LakeError> {
    let perr = |source| LakeError::Parquet {
        table: table.to_string(),
        step: "encode data file",
        source,
    };
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 3 + 4096);
    let mut w =
        ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties())).map_err(perr)?;
    w.write(batch).map_err(perr)?;
    w.close().map_err(perr)?;
    Ok(Bytes::from(buf))
}

/// Characters escaped in partition folder names: the Delta protocol's set (the same as
/// Spark's and delta-rs'), plus everything outside ASCII.
const PARTITION_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'!')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Relative path of a new data file: Hive-style folders (`event_type=payment/created_date=
/// 2024-03-17/`), values percent-encoded the way the Delta protocol and Spark do, and a
/// unique file name so concurrent writers never collide.
pub fn data_file_path(partition: &PartitionValues, file_id: &str) -> String {
    let mut path = String::new();
    for (col, value) in partition {
        let enc = match value {
            Some(v) => percent_encoding::utf8_percent_encode(v, PARTITION_VALUE).to_string(),
            None => "__HIVE_DEFAULT_PARTITION__".to_string(),
        };
        path.push_str(col);
        path.push('=');
        path.push_str(&enc);
        path.push('/');
    }
    path.push_str("part-00000-");
    path.push_str(file_id);
    path.push_str("-c000.snappy.parquet");
    path
}

/// Longest path component local filesystems accept (ext4, XFS, APFS, NTFS: 255 bytes).
pub const MAX_PATH_COMPONENT_BYTES: usize = 255;

/// Longest data-file path below the table root the writer will upload. S3 keys are at most
/// 1,024 bytes; this leaves 512 of them for the table's own prefix. Partition values that
/// pass the per-record policy (`schemas::partition`) produce paths of at most
/// `schemas::partition::MAX_DATA_FILE_RELATIVE_PATH_BYTES` (about 300 bytes).
pub const MAX_DATA_FILE_PATH_BYTES: usize = 512;

/// Refuse a data-file path no store can hold, naming the partition, before any upload.
///
/// Defence in depth: per-record validation already rejects every partition value that
/// could get here, so this only fires if that policy is ever loosened by mistake. It turns
/// what would be an opaque OS error (`File name too long`) or an S3 `KeyTooLongError`
/// after a retry loop into a typed error that says which partition and why.
pub fn check_data_file_path(table: &str, path: &str) -> Result<(), LakeError> {
    let too_long = |what: &str, part: &str, limit: usize| LakeError::Invariant {
        table: table.to_string(),
        detail: format!(
            "data file {what} `{}` is {} bytes, over the {limit}-byte limit; the partition \
             value should have been rejected per record",
            truncate_at_char(part, 80),
            part.len()
        ),
    };
    for component in path.split('/') {
        if component.len() > MAX_PATH_COMPONENT_BYTES {
            return Err(too_long("folder", component, MAX_PATH_COMPONENT_BYTES));
        }
    }
    if path.len() > MAX_DATA_FILE_PATH_BYTES {
        return Err(too_long("path", path, MAX_DATA_FILE_PATH_BYTES));
    }
    Ok(())
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn truncate_at_char(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Upload an encoded file. A unique name means a plain put is safe: nothing can be there.
/// The path is checked first ([`check_data_file_path`]).
pub async fn put_file(
    store: &dyn ObjectStore,
    table: &str,
    path: &str,
    bytes: Bytes,
) -> Result<(), LakeError> {
    check_data_file_path(table, path)?;
    let location = object_path(path);
    store
        .put(&location, bytes.into())
        .await
        .map(|_| ())
        .map_err(|source| LakeError::Store {
            table: table.to_string(),
            step: "upload data file",
            source,
        })
}

/// Delete a file this process wrote but never committed (a batch rebuilt after a conflict).
pub async fn delete_file(
    store: &dyn ObjectStore,
    table: &str,
    path: &str,
) -> Result<(), LakeError> {
    match store.delete(&object_path(path)).await {
        Ok(()) | Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(()),
        Err(source) => Err(LakeError::Store {
            table: table.to_string(),
            step: "delete orphan data file",
            source,
        }),
    }
}

fn object_path(path: &str) -> Path {
    Path::parse(path).unwrap_or_else(|_| Path::from(path))
}

/// The `add` action that publishes a written file, with per-file statistics (row count,
/// null counts, min/max of integer columns and of `source_shard`) so engines can prune files.
pub fn add_action(
    path: &str,
    size: usize,
    batch: &RecordBatch,
    partition: &PartitionValues,
) -> Add {
    Add {
        path: path.to_string(),
        partition_values: partition.iter().cloned().collect::<HashMap<_, _>>(),
        size: size as i64,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(stats_json(batch).to_string()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

/// String columns whose min/max go into `add.stats` besides the integer ones. Only short,
/// low-cardinality values: `source_shard` (a Kinesis shard id), so a writer that takes over
/// a shard re-reads only the files whose range may hold that shard's rows (issue 15) and
/// engines can prune by shard. Payloads and ids would only bloat the log: their ranges span
/// nearly everything.
const STRING_STATS_COLUMNS: &[&str] = &[schemas::table::SOURCE_SHARD];

fn stats_json(batch: &RecordBatch) -> Value {
    let mut mins = Map::new();
    let mut maxs = Map::new();
    let mut nulls = Map::new();
    let schema = batch.schema();
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        nulls.insert(field.name().clone(), json!(col.null_count()));
        match field.data_type() {
            DataType::Int64 => {
                let a = col.as_primitive::<Int64Type>();
                if let (Some(lo), Some(hi)) = (min(a), max(a)) {
                    mins.insert(field.name().clone(), json!(lo));
                    maxs.insert(field.name().clone(), json!(hi));
                }
            }
            DataType::Utf8 if STRING_STATS_COLUMNS.contains(&field.name().as_str()) => {
                let a = col.as_string::<i32>();
                if let (Some(lo), Some(hi)) = (min_string(a), max_string(a)) {
                    mins.insert(field.name().clone(), json!(lo));
                    maxs.insert(field.name().clone(), json!(hi));
                }
            }
            _ => {}
        }
    }
    json!({"numRecords": batch.num_rows(), "minValues": mins, "maxValues": maxs, "nullCount": nulls})
}

/// Data files up to this size are fetched whole (one GET) to read a column. The ranged
/// reader makes three GETs (footer length, metadata, the column's pages): three round trips
/// for a file one round trip transfers whole. A writer's files are tens of KiB, and a cold
/// start on an uncompacted table reads thousands of them (10,000 files took 30,000 GETs).
pub const WHOLE_FILE_READ_MAX: u64 = 2 << 20;

/// Bytes read from the end of a larger file in its first GET: the footer and, for the
/// files this project writes, all of the metadata, so the column's pages are the second GET.
const FOOTER_SIZE_HINT: usize = 64 << 10;

/// Stream the values of one string column of a data file to `each`: a small file (up to
/// [`WHOLE_FILE_READ_MAX`], size known) in one GET, a larger one reading only that
/// column's pages (a few percent of the file). Used to load dedupe keys.
pub async fn for_each_string(
    store: Arc<dyn ObjectStore>,
    table: &str,
    path: &str,
    size: Option<u64>,
    column: &str,
    mut each: impl FnMut(&str),
) -> Result<(), LakeError> {
    for_each_key(store, table, path, size, column, None, |k, _| each(k)).await
}

/// [`for_each_string`] of `column`, each value handed over with the same row's value of
/// `beside` (`None` when that is null, not asked for, or not in the file: an older file or
/// another engine's). Shard-scoped dedupe reads `event_uuid` beside `source_shard` to keep
/// only its own shards' keys; the second column costs a few more pages of the same GET.
#[allow(deprecated)]
pub async fn for_each_key(
    store: Arc<dyn ObjectStore>,
    table: &str,
    path: &str,
    size: Option<u64>,
    column: &str,
    beside: Option<&str>,
    mut each: impl FnMut(&str, Option<&str>),
) -> Result<(), LakeError> {
    let perr = |source| LakeError::Parquet {
        table: table.to_string(),
        step: "read key column",
        source,
    };
    let columns: Vec<&str> = std::iter::once(column).chain(beside).collect();
    if size.is_some_and(|s| s <= WHOLE_FILE_READ_MAX) {
        let serr = |source| LakeError::Store {
            table: table.to_string(),
            step: "read key column",
            source,
        };
        let got = store.get(&object_path(path)).await.map_err(serr)?;
        let bytes = got.bytes().await.map_err(serr)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(perr)?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(perr)?;
        for batch in reader {
            let batch = batch.map_err(|e| perr(e.into()))?;
            visit_keys(table, path, column, beside, &batch, &mut each)?;
        }
        return Ok(());
    }
    let mut reader =
        ParquetObjectReader::new(store, object_path(path)).with_footer_size_hint(FOOTER_SIZE_HINT);
    if let Some(size) = size {
        reader = reader.with_file_size(size);
    }
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(perr)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    let mut stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(perr)?;
    while let Some(batch) = stream.try_next().await.map_err(perr)? {
        visit_keys(table, path, column, beside, &batch, &mut each)?;
    }
    Ok(())
}

/// Each valid value of `column` in `batch`, with the row's value of `beside`.
fn visit_keys(
    table: &str,
    path: &str,
    column: &str,
    beside: Option<&str>,
    batch: &RecordBatch,
    each: &mut impl FnMut(&str, Option<&str>),
) -> Result<(), LakeError> {
    let strings = |name: &str| -> Result<Option<Strings<'_>>, LakeError> {
        match batch.column_by_name(name) {
            Some(col) => Strings::of(table, path, name, col.as_ref()).map(Some),
            None => Ok(None),
        }
    };
    // A file without the key column has no keys (nothing to dedupe against).
    let Some(keys) = strings(column)? else {
        return Ok(());
    };
    let beside = match beside {
        Some(name) => strings(name)?,
        None => None,
    };
    for i in 0..keys.len() {
        if let Some(k) = keys.get(i) {
            each(k, beside.as_ref().and_then(|b| b.get(i)));
        }
    }
    Ok(())
}

/// A string column in any of Arrow's three layouts. Files written by other engines (or by
/// delta-rs' optimize) may carry a column as a large or view string; all are the same
/// Parquet UTF8 bytes.
enum Strings<'a> {
    Utf8(&'a deltalake::arrow::array::StringArray),
    Large(&'a deltalake::arrow::array::LargeStringArray),
    View(&'a deltalake::arrow::array::StringViewArray),
}

impl<'a> Strings<'a> {
    fn of(table: &str, path: &str, column: &str, col: &'a dyn Array) -> Result<Self, LakeError> {
        match col.data_type() {
            DataType::Utf8 => Ok(Strings::Utf8(col.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Strings::Large(col.as_string::<i64>())),
            DataType::Utf8View => Ok(Strings::View(col.as_string_view())),
            other => Err(LakeError::Schema {
                table: table.to_string(),
                detail: format!("key column `{column}` in {path} is {other}, expected a string"),
            }),
        }
    }

    fn len(&self) -> usize {
        match self {
            Strings::Utf8(a) => a.len(),
            Strings::Large(a) => a.len(),
            Strings::View(a) => a.len(),
        }
    }

    /// The value of row `i`, `None` when null.
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strings::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_columns_skip_dictionaries_and_free_form_ones_skip_statistics() {
        use deltalake::parquet::file::properties::EnabledStatistics;
        use deltalake::parquet::schema::types::ColumnPath;
        let p = writer_properties();
        let col = |c: &str| ColumnPath::from(c);
        for c in [
            "event_uuid",
            "payload",
            "source_position",
            "created_datetime",
            "raw",
        ] {
            assert!(!p.dictionary_enabled(&col(c)), "{c}");
        }
        for c in ["event_type", "event_name", "source", "reason"] {
            assert!(p.dictionary_enabled(&col(c)), "{c}");
        }
        assert_eq!(
            p.statistics_enabled(&col("payload")),
            EnabledStatistics::None
        );
        assert_ne!(
            p.statistics_enabled(&col("created_at")),
            EnabledStatistics::None
        );
    }

    #[test]
    fn overlong_partition_folders_are_a_typed_error_naming_the_partition() {
        let part = |v: String| {
            vec![
                ("event_type".to_string(), Some(v)),
                ("created_date".to_string(), Some("2024-03-17".to_string())),
            ]
        };
        let ok = data_file_path(&part("a".repeat(64)), &"0".repeat(36));
        assert!(check_data_file_path("t", &ok).is_ok());
        // Worst case of the per-record policy: 64 bytes that all need percent-encoding.
        let worst = data_file_path(&part("é".repeat(32)), &"0".repeat(36));
        assert!(check_data_file_path("t", &worst).is_ok(), "{}", worst.len());

        let long = data_file_path(&part("a".repeat(5000)), "abc");
        let err = check_data_file_path("events", &long)
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.starts_with("table events: data file folder `event_type=aaa"),
            "{err}"
        );
        assert!(err.contains("5011 bytes") && err.len() < 400, "{err}");
        // Percent-encoding can push a value over the limit although its raw bytes are not.
        let encoded = data_file_path(&part("/".repeat(100)), "abc");
        assert!(check_data_file_path("t", &encoded).is_err());
        let deep = (0..10)
            .map(|_| "x".repeat(100))
            .collect::<Vec<_>>()
            .join("/");
        assert!(check_data_file_path("t", &deep).is_err());
    }

    #[tokio::test]
    async fn put_file_refuses_before_uploading() {
        use futures::StreamExt;
        let store = deltalake::logstore::object_store::memory::InMemory::new();
        let path = data_file_path(
            &vec![("event_type".to_string(), Some("a".repeat(300)))],
            "abc",
        );
        let put = put_file(&store, "t", &path, Bytes::from_static(b"x")).await;
        assert!(matches!(put, Err(LakeError::Invariant { .. })));
        let listed = store.list(None).count().await;
        assert_eq!(listed, 0, "nothing was uploaded");
    }

    #[test]
    fn stats_carry_integer_ranges_and_the_shard_range_but_no_other_string() {
        use deltalake::arrow::array::{Int64Array, StringArray};
        use deltalake::arrow::datatypes::{Field, Schema};
        let schema = Schema::new(vec![
            Field::new("created_at", DataType::Int64, false),
            Field::new("source_shard", DataType::Utf8, true),
            Field::new("payload", DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![5, 3, 9])),
                Arc::new(StringArray::from(vec![
                    Some("shard-2"),
                    None,
                    Some("shard-10"),
                ])),
                Arc::new(StringArray::from(vec!["{}", "{\"a\":1}", "{}"])),
            ],
        )
        .expect("batch");
        let stats = stats_json(&batch);
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["created_at"], 3);
        assert_eq!(stats["maxValues"]["created_at"], 9);
        // Byte order, as Parquet and every Delta reader compare strings.
        assert_eq!(stats["minValues"]["source_shard"], "shard-10");
        assert_eq!(stats["maxValues"]["source_shard"], "shard-2");
        assert_eq!(stats["nullCount"]["source_shard"], 1);
        assert!(stats["minValues"].get("payload").is_none());
        assert!(stats["maxValues"].get("payload").is_none());
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_at_char("ééé", 3), "é…");
        assert_eq!(truncate_at_char("abc", 3), "abc");
    }

    #[test]
    fn hive_paths_are_encoded() {
        let p = data_file_path(
            &vec![
                ("event_type".into(), Some("pay ment/x".into())),
                ("created_date".into(), Some("2024-03-17".into())),
            ],
            "abc",
        );
        assert_eq!(
            p,
            "event_type=pay%20ment%2Fx/created_date=2024-03-17/part-00000-abc-c000.snappy.parquet"
        );
    }
}
