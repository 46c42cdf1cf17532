//! Column names, types, values and partitioning of the two tables. These names are a
//! contract with users' queries (Athena, Spark, DuckDB): rename nothing without a migration.
//!
//! A column is one line: its name, type, nullability and where its value comes from
//! ([`Value`]). The order of the lines is the order of the columns in every data file.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{
    DataType as ArrowType, Field as ArrowField, Schema, SchemaRef, TimeUnit,
};
use deltalake::arrow::error::ArrowError;
use deltalake::kernel::{DataType, StructField};

use crate::row::{BLOCK_ROWS, Cell, ColumnFill, Row, Supplied, Value};

pub const EVENT_UUID: &str = "event_uuid";
pub const EVENT_NAME: &str = "event_name";
pub const CREATED_AT: &str = "created_at";
pub const CREATED_TIMESTAMP: &str = "created_timestamp";
pub const CREATED_DATETIME: &str = "created_datetime";
pub const EVENT_TYPE: &str = "event_type";
pub const EVENT_SUBTYPE: &str = "event_subtype";
pub const CREATED_DATE: &str = "created_date";
pub const PAYLOAD: &str = "payload";
pub const SOURCE: &str = "source";
pub const SOURCE_SHARD: &str = "source_shard";
pub const SOURCE_POSITION: &str = "source_position";
pub const INGESTED_AT: &str = "ingested_at";

pub const REJECTION_ID: &str = "rejection_id";
pub const RAW: &str = "raw";
pub const REASON: &str = "reason";
pub const MESSAGE: &str = "message";
pub const REJECTED_AT: &str = "rejected_at";
pub const REJECTED_DATE: &str = "rejected_date";

/// Logical column type, mapped once to both Arrow (what we write) and Delta (what the log
/// declares), so the two can never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Long,
    /// Microseconds since the epoch, UTC (Delta `timestamp`, readable by Athena v3).
    Timestamp,
    /// Days since the epoch (Delta `date`).
    Date,
    Binary,
}

/// One column of a table definition.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    pub nullable: bool,
    /// Where each row's value comes from.
    pub value: Value,
}

const fn col(name: &'static str, kind: ColumnType, nullable: bool, value: Value) -> Column {
    Column {
        name,
        kind,
        nullable,
        value,
    }
}

/// Partition values of one data file: (column, value) in partition-column order, `None` for
/// null (the shape Delta's add actions and folder names take).
pub type PartitionValues = Vec<(String, Option<String>)>;

// Short names for the two tables below, which read as tables: one column a line.
use crate::row::Field as F;
use ColumnType as T;
use Supplied::*;
use Value::{Event, Reject, Supplied as Writer};

/// A table's definition: columns in order, the partition columns, the column that carries
/// the dedupe key, and whether dedupe is scoped to a partition or to the whole table.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub partition_columns: &'static [&'static str],
    pub key_column: &'static str,
    /// When true, a key is unique within its partition (the batch's partitions are the only
    /// ones consulted); when false it is unique across the whole table.
    pub key_scoped_to_partition: bool,
}

/// The events table. Partitioned by `event_type`, `created_date`; `event_uuid` is unique
/// within a partition (an event's partition derives from its own fields, so a re-sent event
/// always lands in the partition where its first copy is).
pub static EVENTS: TableDef = TableDef {
    name: "events",
    #[rustfmt::skip]
    columns: &[
        col(EVENT_UUID,        T::String,    false, Event(F::Text(|e| &e.uuid))),
        col(EVENT_NAME,        T::String,    false, Event(F::Text(|e| &e.name))),
        col(CREATED_AT,        T::Long,      false, Event(F::Long(|e| e.created_at))),
        col(CREATED_TIMESTAMP, T::Timestamp, false, Event(F::Micros(|e| e.created_micros))),
        col(CREATED_DATETIME,  T::String,    false, Event(F::Text(|e| &e.created_datetime))),
        col(EVENT_TYPE,        T::String,    false, Event(F::Text(|e| e.event_type()))),
        col(EVENT_SUBTYPE,     T::String,    true,  Event(F::OptText(|e| e.event_subtype()))),
        col(CREATED_DATE,      T::Date,      false, Event(F::Days(|e| e.created_days))),
        col(PAYLOAD,           T::String,    false, Event(F::Text(|e| &e.payload))),
        col(SOURCE,            T::String,    false, Writer(Source)),
        col(SOURCE_SHARD,      T::String,    true,  Writer(SourceShard)),
        col(SOURCE_POSITION,   T::String,    false, Writer(SourcePosition)),
        col(INGESTED_AT,       T::Timestamp, false, Writer(ProcessedAt)),
    ],
    partition_columns: &[EVENT_TYPE, CREATED_DATE],
    key_column: EVENT_UUID,
    key_scoped_to_partition: true,
};

/// The rejected-events table: every record that could not become an event, with why.
/// `rejection_id` identifies (source, shard, position, raw bytes), so re-reading the same
/// input never records the same rejection twice.
pub static REJECTED: TableDef = TableDef {
    name: "events_rejected",
    #[rustfmt::skip]
    columns: &[
        col(REJECTION_ID,    T::String,    false, Writer(RejectionId)),
        col(RAW,             T::Binary,    false, Writer(Raw)),
        col(REASON,          T::String,    false, Reject(F::Text(|r| r.reason.as_str()))),
        col(MESSAGE,         T::String,    false, Reject(F::Text(|r| &r.message))),
        col(SOURCE,          T::String,    false, Writer(Source)),
        col(SOURCE_SHARD,    T::String,    true,  Writer(SourceShard)),
        col(SOURCE_POSITION, T::String,    false, Writer(SourcePosition)),
        col(REJECTED_AT,     T::Timestamp, false, Writer(ProcessedAt)),
        col(REJECTED_DATE,   T::Date,      false, Writer(ProcessedDate)),
    ],
    partition_columns: &[REJECTED_DATE],
    key_column: REJECTION_ID,
    key_scoped_to_partition: false,
};

impl ColumnType {
    pub fn arrow(self) -> ArrowType {
        match self {
            ColumnType::String => ArrowType::Utf8,
            ColumnType::Long => ArrowType::Int64,
            ColumnType::Timestamp => {
                ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ColumnType::Date => ArrowType::Date32,
            ColumnType::Binary => ArrowType::Binary,
        }
    }

    pub fn delta(self) -> DataType {
        match self {
            ColumnType::String => DataType::STRING,
            ColumnType::Long => DataType::LONG,
            ColumnType::Timestamp => DataType::TIMESTAMP,
            ColumnType::Date => DataType::DATE,
            ColumnType::Binary => DataType::BINARY,
        }
    }

    /// The type's name in errors.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "text",
            ColumnType::Long => "long",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Binary => "binary",
        }
    }

    /// Whether a column of this type may partition a table: its values must have a text
    /// form for folder names and the log ([`Cell::partition_value`]).
    pub fn can_partition(self) -> bool {
        matches!(
            self,
            ColumnType::String | ColumnType::Long | ColumnType::Date
        )
    }
}

impl TableDef {
    /// Delta schema of the table (all columns, partition columns included).
    pub fn delta_fields(&self) -> Vec<StructField> {
        self.columns
            .iter()
            .map(|c| StructField::new(c.name, c.kind.delta(), c.nullable))
            .collect()
    }

    /// Arrow schema of the full logical row (partition columns included).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| ArrowField::new(c.name, c.kind.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// Arrow schema of what a data file holds: Delta keeps partition values in the log and
    /// the folder name, not in the Parquet file.
    pub fn file_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.file_columns()
                .map(|c| ArrowField::new(c.name, c.kind.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn is_partition_column(&self, name: &str) -> bool {
        self.partition_columns.contains(&name)
    }

    /// The columns a data file holds, in order (all but the partition columns).
    pub fn file_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| !self.is_partition_column(c.name))
    }

    /// The partition columns, in partition order.
    pub fn partition_defs(&self) -> impl Iterator<Item = &Column> {
        self.partition_columns
            .iter()
            .filter_map(|p| self.columns.iter().find(|c| c.name == *p))
    }

    /// The data-file batch of `rows`: every column of [`Self::file_schema`], in order, a
    /// row's own fields read by the column's [`Field`](crate::row::Field), the values only
    /// the writer knows given by `supplied(k, what)` for the `k`-th row. This is the whole
    /// row layout: the caller only answers for supplied values, never for columns.
    pub fn file_batch<'a, R: Row>(
        &self,
        rows: impl ExactSizeIterator<Item = &'a R>,
        supplied: impl Fn(usize, Supplied) -> Cell<'a>,
    ) -> Result<RecordBatch, ArrowError> {
        let mut fills = self
            .file_columns()
            .map(|c| ColumnFill::new(c, rows.len()))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: Vec<&R> = rows.collect();
        for (b, block) in rows.chunks(BLOCK_ROWS).enumerate() {
            for fill in &mut fills {
                fill.extend(b * BLOCK_ROWS, block, &supplied)?;
            }
        }
        let arrays = fills.into_iter().map(ColumnFill::finish).collect();
        RecordBatch::try_new(self.file_schema(), arrays)
    }

    /// `rows` grouped by their partition values (`supplied` as for [`Self::file_batch`]):
    /// one group per data-file folder, groups in value order, each group the places `k` of
    /// its rows in `rows`, in input order.
    pub fn partition_groups<'a, R: Row>(
        &self,
        rows: impl Iterator<Item = &'a R>,
        supplied: impl Fn(usize, Supplied) -> Cell<'a>,
    ) -> Vec<(PartitionValues, Vec<usize>)> {
        let parts: Vec<&Column> = self.partition_defs().collect();
        // Resolved once, not per row: the row's own accessor, or what the writer supplies.
        let values: Vec<Result<F<R>, Value>> = parts
            .iter()
            .map(|c| R::field(c.value).ok_or(c.value))
            .collect();
        let mut groups: BTreeMap<Vec<Cell<'a>>, Vec<usize>> = BTreeMap::new();
        // Looked up by slice, so a key is allocated once per group, not once per row.
        let mut key = Vec::with_capacity(parts.len());
        for (k, row) in rows.enumerate() {
            key.clear();
            key.extend(values.iter().map(|v| match v {
                Ok(f) => f.cell(row),
                Err(Value::Supplied(what)) => supplied(k, *what),
                // Another table's value: a definition error the tests rule out.
                Err(_) => Cell::Null,
            }));
            match groups.get_mut(key.as_slice()) {
                Some(group) => group.push(k),
                None => {
                    groups.insert(key.clone(), vec![k]);
                }
            }
        }
        groups
            .into_iter()
            .map(|(key, rows)| {
                let values = parts
                    .iter()
                    .zip(key)
                    .map(|(c, v)| (c.name.to_string(), v.partition_value()))
                    .collect();
                (values, rows)
            })
            .collect()
    }
}

/// Table properties set at creation. Reader v1 / writer v2 with no table features, so Athena
/// engine v3, Spark and DuckDB all read it.
///
/// Chosen on the steady-state soak (BENCHMARKS.md "Steady state"), where the week-long cost is
/// the checkpoint: every checkpoint carries every live file plus every `remove` tombstone
/// younger than `delta.deletedFileRetentionDuration`, and compaction turns each of the
/// writer's ~300k small files a day (at 1x, 30 s flush) into a tombstone.
///
/// * `delta.deletedFileRetentionDuration = 1 hour`: how long a tombstone stays in the
///   checkpoints, and the shortest retention any vacuum may use. Nothing of ours reads
///   tombstones (`compactor vacuum` decides from the commits inside its own window, see
///   `compactor::vacuum`); with 7 days the checkpoint grew for a week to ~2M tombstones
///   (~300 MB, written every few minutes), and with 6 hours every fresh reader still read
///   ~6 compactor runs' worth of them (soak: queries 1.8–3.7× a compacted table). One hour
///   is the compactor's cadence: a checkpoint carries about the last run's removals. Time travel is *not* shortened: it lasts as long
///   as both the log (`logRetentionDuration`) and the data files (`compactor vacuum
///   --retention`, 7 days by default) are kept. Spark's `VACUUM` defaults to this property:
///   run it with `RETAIN 168 HOURS` to keep a week (README, "Steady state").
/// * `delta.logRetentionDuration = 7 days`: the time-travel window of the log.
/// * `delta.checkpointInterval = 100`: a fresh reader replays at most 99 commit JSONs (~100
///   `add`s each at 1x) after the checkpoint; 20 wrote five times the checkpoint bytes for a
///   saving in replay of tens of milliseconds.
/// * `delta.enableExpiredLogCleanup = false`: log entries are expired once per scheduled
///   `compactor run` (its checkpoint step), not by every commit a delta-rs operation makes —
///   delta-rs lists the whole `_delta_log` after each of them. The writer never expires
///   entries either way. A table nobody compacts keeps its whole log (the flag is the only
///   difference for other engines).
pub fn default_table_properties() -> Vec<(&'static str, &'static str)> {
    vec![
        ("delta.logRetentionDuration", "interval 7 days"),
        ("delta.deletedFileRetentionDuration", "interval 1 hour"),
        ("delta.checkpointInterval", "100"),
        ("delta.enableExpiredLogCleanup", "false"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::EventRow;

    #[test]
    fn file_schema_excludes_partitions() {
        let s = EVENTS.file_schema();
        assert!(s.field_with_name(EVENT_TYPE).is_err());
        assert!(s.field_with_name(CREATED_DATE).is_err());
        assert!(s.field_with_name(EVENT_UUID).is_ok());
        assert_eq!(s.fields().len(), EVENTS.columns.len() - 2);
    }

    #[test]
    fn delta_and_arrow_agree() {
        for def in [&EVENTS, &REJECTED] {
            assert_eq!(def.delta_fields().len(), def.arrow_schema().fields().len());
            assert!(def.columns.iter().any(|c| c.name == def.key_column));
        }
    }

    /// Every partition column is a column of the definition, exactly once, of a type with
    /// a partition form, and not in the data files.
    #[test]
    fn partition_columns_are_in_the_definition() {
        for def in [&EVENTS, &REJECTED] {
            let parts: Vec<&Column> = def.partition_defs().collect();
            assert_eq!(parts.len(), def.partition_columns.len(), "{}", def.name);
            for (c, p) in parts.iter().zip(def.partition_columns) {
                assert_eq!(c.name, *p);
                assert_eq!(def.columns.iter().filter(|c| c.name == *p).count(), 1);
                assert!(c.kind.can_partition(), "{}.{p}", def.name);
                assert!(def.file_schema().field_with_name(p).is_err());
            }
        }
        assert_eq!(EVENTS.partition_columns, [EVENT_TYPE, CREATED_DATE]);
        assert_eq!(REJECTED.partition_columns, [REJECTED_DATE]);
    }

    /// A table's columns take values from its own row kind (or from the writer), never
    /// from the other table's: the writer would have nothing to give them.
    #[test]
    fn values_come_from_the_tables_own_row() {
        let names = |def: &TableDef, keep: fn(&Value) -> bool| -> Vec<&str> {
            def.columns
                .iter()
                .filter(|c| keep(&c.value))
                .map(|c| c.name)
                .collect()
        };
        assert!(names(&EVENTS, |v| matches!(v, Value::Reject(_))).is_empty());
        assert!(names(&REJECTED, |v| matches!(v, Value::Event(_))).is_empty());
        assert_eq!(
            names(&REJECTED, |v| matches!(
                v,
                Value::Supplied(Supplied::RejectionId)
            )),
            [REJECTION_ID]
        );
    }

    /// Each column's accessor fills the column's declared type, and only a nullable
    /// column has one that can give null.
    #[test]
    fn fields_match_their_columns() {
        for def in [&EVENTS, &REJECTED] {
            for c in def.columns {
                let field = match c.value {
                    Value::Event(f) => Some((f.kind(), f.nullable())),
                    Value::Reject(f) => Some((f.kind(), f.nullable())),
                    Value::Supplied(_) => None,
                };
                if let Some((kind, nullable)) = field {
                    assert_eq!(kind, c.kind, "{}.{}", def.name, c.name);
                    assert!(c.nullable || !nullable, "{}.{}", def.name, c.name);
                }
            }
        }
    }

    fn reject_row() -> crate::row::RejectRow {
        crate::row::RejectRow {
            reason: crate::validate::RejectReason::NotJson,
            message: "not JSON".into(),
            record: 0,
        }
    }

    /// Across block boundaries every row keeps its own values, own and supplied, in order.
    #[test]
    fn batches_span_blocks_in_order() {
        use deltalake::arrow::array::{Array, AsArray};
        let n = crate::row::BLOCK_ROWS * 2 + 7;
        let rows: Vec<EventRow> = (0..n)
            .map(|i| {
                let name = if i % 3 == 0 {
                    format!("t{i}")
                } else {
                    format!("t{i}:s{i}")
                };
                EventRow {
                    uuid: format!("u{i}"),
                    name_parts: crate::enrich::NameParts::of(&name),
                    name,
                    created_at: i as i64,
                    created_micros: i as i64 * 1_000_000,
                    created_datetime: format!("d{i}"),
                    created_days: 19_799,
                    payload: format!("{{\"i\":{i}}}"),
                    record: i as u32,
                }
            })
            .collect();
        let positions: Vec<String> = (0..n).map(|k| format!("p{k}")).collect();
        let batch = EVENTS
            .file_batch(rows.iter(), |k, what| match what {
                Supplied::Source => Cell::Text("src"),
                Supplied::SourcePosition => Cell::Text(&positions[k]),
                Supplied::ProcessedAt => Cell::Micros(5),
                _ => Cell::Null,
            })
            .expect("batch");
        assert_eq!(batch.num_rows(), n);
        let text = |c: &str| batch.column_by_name(c).expect(c).as_string::<i32>().clone();
        let (uuid, subtype, position) =
            (text(EVENT_UUID), text(EVENT_SUBTYPE), text(SOURCE_POSITION));
        for i in 0..n {
            assert_eq!(uuid.value(i), format!("u{i}"));
            assert_eq!(position.value(i), format!("p{i}"));
            assert_eq!(subtype.is_null(i), i % 3 == 0, "row {i}");
            if i % 3 != 0 {
                assert_eq!(subtype.value(i), format!("s{i}"));
            }
        }
        assert_eq!(text(SOURCE_SHARD).null_count(), n);
    }

    /// A supplied value of the wrong type is an error naming the column, not a panic or a
    /// cast.
    #[test]
    fn misfit_value_is_an_error() {
        let rows = [reject_row()];
        let err = REJECTED
            .file_batch(rows.iter(), |_, what| match what {
                Supplied::Raw => Cell::Text("not bytes"),
                _ => Cell::Null,
            })
            .expect_err("text in a binary column");
        assert!(
            err.to_string().contains("column `raw`: a text value"),
            "{err}"
        );
    }

    /// Rows of the other table cannot fill a table: an error, not a batch of nulls.
    #[test]
    fn foreign_rows_are_an_error() {
        let rows = [reject_row()];
        let err = EVENTS
            .file_batch(rows.iter(), |_, _| Cell::Null)
            .expect_err("rejections cannot fill the events table");
        assert!(
            err.to_string()
                .contains("column `event_uuid`: a value of another table's row"),
            "{err}"
        );
    }

    #[test]
    fn partition_groups_keep_row_order_and_sort_groups() {
        let rows: Vec<EventRow> = ["b:x", "a", "b", "a:y", "c"]
            .iter()
            .enumerate()
            .map(|(i, name)| EventRow {
                uuid: format!("u{i}"),
                name: (*name).into(),
                created_at: 1_710_670_530,
                created_micros: 1_710_670_530_000_000,
                name_parts: crate::enrich::NameParts::of(name),
                created_datetime: "2024-03-17T10:15:30Z".into(),
                created_days: 19_799,
                payload: "{}".into(),
                record: i as u32,
            })
            .collect();
        let groups = EVENTS.partition_groups(rows.iter(), |_, _| Cell::Null);
        let day = || (CREATED_DATE.to_string(), Some("2024-03-17".to_string()));
        let folder = |t: &str| vec![(EVENT_TYPE.to_string(), Some(t.to_string())), day()];
        assert_eq!(
            groups,
            [
                (folder("a"), vec![1, 3]),
                (folder("b"), vec![0, 2]),
                (folder("c"), vec![4]),
            ]
        );
    }
}
