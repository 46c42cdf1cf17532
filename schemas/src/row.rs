//! One row of each table, and how a column's value is taken from it.
//!
//! Every column of a [`TableDef`](crate::table::TableDef) names where its value comes from
//! ([`Value`]): a field of the accepted event ([`EventRow`]), of the rejection
//! ([`RejectRow`]), or something only the writer knows ([`Supplied`]: where and when the
//! record was read). The writer fills a table by walking its definition
//! ([`TableDef::file_batch`](crate::table::TableDef::file_batch)) with no code per column,
//! so adding a column derived from the event is a change to this crate alone.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};

use crate::enrich::{Enriched, split_name};
use crate::table::ColumnType;
use crate::time::format_date;
use crate::validate::{RejectReason, Rejection};

/// An accepted event as the events table stores it. It owns its text, so the batch's input
/// buffers can be released as soon as it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub uuid: String,
    pub name: String,
    /// Whole Unix seconds (floor), as received.
    pub created_at: i64,
    /// Microseconds since the epoch, for the `timestamp` column.
    pub created_micros: i64,
    /// ISO 8601 UTC, with the input's fraction when it had one.
    pub created_datetime: String,
    /// Days since 1970-01-01 (the `created_date` partition).
    pub created_days: i32,
    /// JSON object of every member but the three common fields, in input order.
    pub payload: String,
    /// Index of the record in its batch: the writer's key to the row's [`Supplied`] values.
    pub record: u32,
}

impl EventRow {
    /// The row of an enriched event read as record `record` of its batch.
    pub fn new(e: Enriched<'_>, record: u32) -> Self {
        EventRow {
            uuid: e.event_uuid.into_owned(),
            name: e.event_name.into_owned(),
            created_at: e.created_at,
            created_micros: e.created_micros,
            created_datetime: e.created_datetime,
            created_days: e.created_days,
            payload: e.payload,
            record,
        }
    }

    /// First `:`-separated part of the name (never empty for a valid event).
    pub fn event_type(&self) -> &str {
        split_name(&self.name).0
    }

    /// Second part of the name; `None` when absent or empty.
    pub fn event_subtype(&self) -> Option<&str> {
        split_name(&self.name).1
    }
}

/// A refused record, as the rejected-events table stores it (its bytes and lineage are
/// [`Supplied`] by the writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    pub reason: RejectReason,
    /// Human text; never quotes field values.
    pub message: String,
    /// Index of the record in its batch: the writer's key to the row's [`Supplied`] values.
    pub record: u32,
}

impl RejectRow {
    /// The row of a rejection of record `record` of its batch.
    pub fn new(r: Rejection, record: u32) -> Self {
        RejectRow {
            reason: r.reason,
            message: r.message,
            record,
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// A field of the accepted event (events table).
    Event(for<'r> fn(&'r EventRow) -> Cell<'r>),
    /// A field of the rejection (rejected-events table).
    Reject(for<'r> fn(&'r RejectRow) -> Cell<'r>),
    /// Known only to the writer.
    Supplied(Supplied),
}

/// A value the writer supplies: what it knows about a row that the rules never see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supplied {
    /// The input (`file:/abs/path`, `stdin`, `kinesis:<stream>`).
    Source,
    /// The Kinesis shard id; null for files.
    SourceShard,
    /// Line number, or sequence number (`seq:sub` for KPL aggregates).
    SourcePosition,
    /// The record's bytes exactly as read.
    Raw,
    /// A rejection's identity: a hash of its origin and bytes.
    RejectionId,
    /// The instant the batch was processed (one for the whole batch).
    ProcessedAt,
    /// The UTC day of [`Supplied::ProcessedAt`].
    ProcessedDate,
}

/// One value of one row, borrowed from the row, ready for a column of the matching
/// [`ColumnType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell<'a> {
    Null,
    /// A `String` column.
    Text(&'a str),
    /// A `Long` column.
    Long(i64),
    /// A `Timestamp` column: microseconds since the epoch, UTC.
    Micros(i64),
    /// A `Date` column: days since 1970-01-01.
    Days(i32),
    /// A `Binary` column.
    Bytes(&'a [u8]),
}

impl<'a> Cell<'a> {
    /// Text, or null when absent.
    pub fn text_or_null(text: Option<&'a str>) -> Self {
        text.map_or(Cell::Null, Cell::Text)
    }

    /// The value as Delta writes it in the log and the folder name (`None` for null).
    /// Only `String`, `Long` and `Date` columns partition a table (see
    /// [`ColumnType::can_partition`]); other values have no partition form here.
    pub fn partition_value(self) -> Option<String> {
        match self {
            Cell::Text(s) => Some(s.to_string()),
            Cell::Long(n) => Some(n.to_string()),
            Cell::Days(d) => Some(format_date(i64::from(d))),
            Cell::Null | Cell::Micros(_) | Cell::Bytes(_) => None,
        }
    }

    /// Bytes of text or binary data (what a variable-width column's buffer holds).
    fn byte_len(self) -> usize {
        match self {
            Cell::Text(s) => s.len(),
            Cell::Bytes(b) => b.len(),
            _ => 0,
        }
    }

    fn kind_name(self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Text(_) => "text",
            Cell::Long(_) => "long",
            Cell::Micros(_) => "timestamp",
            Cell::Days(_) => "date",
            Cell::Bytes(_) => "binary",
        }
    }
}

/// A value of one type in a column of another: a table definition whose [`Value`] does
/// not produce its column's [`ColumnType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {found} value in a {expected:?} column")]
pub struct CellTypeError {
    pub expected: ColumnType,
    pub found: &'static str,
}

/// The Arrow array of one column: `cells` in order, typed as `kind` maps to Arrow (the
/// same mapping as [`ColumnType::arrow`], so the array always matches the schema).
pub(crate) fn build_array(kind: ColumnType, cells: &[Cell<'_>]) -> Result<ArrayRef, CellTypeError> {
    let n = cells.len();
    // Text and binary buffers sized exactly, so no column is copied while it grows.
    let bytes: usize = cells.iter().map(|c| c.byte_len()).sum();
    // Fill `$builder` with the cells of variant `$cell`, nulls as nulls, or fail on the
    // first cell of another type.
    macro_rules! column {
        ($builder:expr, $cell:ident) => {{
            let mut b = $builder;
            for &c in cells {
                match c {
                    Cell::Null => b.append_null(),
                    Cell::$cell(v) => b.append_value(v),
                    other => {
                        return Err(CellTypeError {
                            expected: kind,
                            found: other.kind_name(),
                        });
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match kind {
        ColumnType::String => column!(StringBuilder::with_capacity(n, bytes), Text),
        ColumnType::Binary => column!(BinaryBuilder::with_capacity(n, bytes), Bytes),
        ColumnType::Long => column!(Int64Builder::with_capacity(n), Long),
        ColumnType::Timestamp => column!(
            TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            Micros
        ),
        ColumnType::Date => column!(Date32Builder::with_capacity(n), Days),
    })
}
