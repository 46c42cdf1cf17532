//! Column names, types and partitioning of the two tables. These names are a contract with
//! users' queries (Athena, Spark, DuckDB): rename nothing without a migration.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::{DataType, StructField};

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
}

const fn col(name: &'static str, kind: ColumnType, nullable: bool) -> Column {
    Column {
        name,
        kind,
        nullable,
    }
}

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
    columns: &[
        col(EVENT_UUID, ColumnType::String, false),
        col(EVENT_NAME, ColumnType::String, false),
        col(CREATED_AT, ColumnType::Long, false),
        col(CREATED_TIMESTAMP, ColumnType::Timestamp, false),
        col(CREATED_DATETIME, ColumnType::String, false),
        col(EVENT_TYPE, ColumnType::String, false),
        col(EVENT_SUBTYPE, ColumnType::String, true),
        col(CREATED_DATE, ColumnType::Date, false),
        col(PAYLOAD, ColumnType::String, false),
        col(SOURCE, ColumnType::String, false),
        col(SOURCE_SHARD, ColumnType::String, true),
        col(SOURCE_POSITION, ColumnType::String, false),
        col(INGESTED_AT, ColumnType::Timestamp, false),
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
    columns: &[
        col(REJECTION_ID, ColumnType::String, false),
        col(RAW, ColumnType::Binary, false),
        col(REASON, ColumnType::String, false),
        col(MESSAGE, ColumnType::String, false),
        col(SOURCE, ColumnType::String, false),
        col(SOURCE_SHARD, ColumnType::String, true),
        col(SOURCE_POSITION, ColumnType::String, false),
        col(REJECTED_AT, ColumnType::Timestamp, false),
        col(REJECTED_DATE, ColumnType::Date, false),
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
                .map(|c| Field::new(c.name, c.kind.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// Arrow schema of what a data file holds: Delta keeps partition values in the log and
    /// the folder name, not in the Parquet file.
    pub fn file_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter(|c| !self.partition_columns.contains(&c.name))
                .map(|c| Field::new(c.name, c.kind.arrow(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn is_partition_column(&self, name: &str) -> bool {
        self.partition_columns.contains(&name)
    }
}

/// Table properties set at creation. Reader v1 / writer v2 with no table features, so Athena
/// engine v3, Spark and DuckDB all read it; 7 days of time travel by default.
pub fn default_table_properties() -> Vec<(&'static str, &'static str)> {
    vec![
        ("delta.logRetentionDuration", "interval 7 days"),
        ("delta.deletedFileRetentionDuration", "interval 7 days"),
        ("delta.checkpointInterval", "20"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

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
            for p in def.partition_columns {
                assert!(def.columns.iter().any(|c| c.name == *p));
            }
            assert!(def.columns.iter().any(|c| c.name == def.key_column));
        }
    }
}
