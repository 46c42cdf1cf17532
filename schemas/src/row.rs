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
use deltalake::arrow::error::ArrowError;

use crate::enrich::{Enriched, NameParts};
use crate::table::{Column, ColumnType};
use crate::time::format_date;
use crate::validate::{RejectReason, Rejection};

/// An accepted event as the events table stores it. It owns its text, so the batch's input
/// buffers can be released as soon as it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub uuid: String,
    pub name: String,
    /// Where the type and subtype sit in `name` (see [`EventRow::new`], which makes them
    /// agree).
    pub name_parts: NameParts,
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
        let name = e.event_name.into_owned();
        EventRow {
            uuid: e.event_uuid.into_owned(),
            name_parts: NameParts::of(&name),
            name,
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
        self.name_parts.event_type(&self.name)
    }

    /// Second part of the name; `None` when absent or empty.
    pub fn event_subtype(&self) -> Option<&str> {
        self.name_parts.event_subtype(&self.name)
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
    Event(Field<EventRow>),
    /// A field of the rejection (rejected-events table).
    Reject(Field<RejectRow>),
    /// Known only to the writer.
    Supplied(Supplied),
}

/// How a column reads its value from a row of type `R`: one accessor kind per column type.
///
/// Typed accessors, not one returning a [`Cell`], so a column is filled by one loop that
/// appends straight to its Arrow builder: no per-value type check and no intermediate
/// values. A batch has millions of values; this loop is the writer's hottest after parsing.
pub enum Field<R: 'static> {
    /// A `String` column.
    Text(for<'r> fn(&'r R) -> &'r str),
    /// A nullable `String` column.
    OptText(for<'r> fn(&'r R) -> Option<&'r str>),
    /// A `Long` column.
    Long(fn(&R) -> i64),
    /// A `Timestamp` column: microseconds since the epoch, UTC.
    Micros(fn(&R) -> i64),
    /// A `Date` column: days since 1970-01-01.
    Days(fn(&R) -> i32),
}

// By hand: derives would ask `R` itself to be `Copy`/`Debug`, and a field is only a pointer.
impl<R> Clone for Field<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Field<R> {}

impl<R> std::fmt::Debug for Field<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Field::{:?}", self.kind())
    }
}

impl<R> Field<R> {
    /// The column type this accessor fills.
    pub fn kind(self) -> ColumnType {
        match self {
            Field::Text(_) | Field::OptText(_) => ColumnType::String,
            Field::Long(_) => ColumnType::Long,
            Field::Micros(_) => ColumnType::Timestamp,
            Field::Days(_) => ColumnType::Date,
        }
    }

    /// Whether the accessor can give null.
    pub fn nullable(self) -> bool {
        matches!(self, Field::OptText(_))
    }

    /// The value of one row (what partition grouping compares).
    pub fn cell(self, row: &R) -> Cell<'_> {
        match self {
            Field::Text(f) => Cell::Text(f(row)),
            Field::OptText(f) => Cell::text_or_null(f(row)),
            Field::Long(f) => Cell::Long(f(row)),
            Field::Micros(f) => Cell::Micros(f(row)),
            Field::Days(f) => Cell::Days(f(row)),
        }
    }
}

/// A kind of row a table's columns read from: picks, out of a column's [`Value`], the
/// accessor for this row type (`None` for a value of the other table's row, or supplied).
pub trait Row: Sized + 'static {
    fn field(value: Value) -> Option<Field<Self>>;
}

impl Row for EventRow {
    fn field(value: Value) -> Option<Field<Self>> {
        match value {
            Value::Event(f) => Some(f),
            _ => None,
        }
    }
}

impl Row for RejectRow {
    fn field(value: Value) -> Option<Field<Self>> {
        match value {
            Value::Reject(f) => Some(f),
            _ => None,
        }
    }
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

/// A column whose values cannot fill it: a table definition whose [`Value`] does not
/// produce its column's [`ColumnType`], or names the other table's row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    #[error("a {found} value in a {expected:?} column")]
    Misfit {
        expected: ColumnType,
        found: &'static str,
    },
    #[error("a value of another table's row")]
    ForeignRow,
}

/// Rows per block when filling columns (see [`ColumnFill`]): a few hundred rows of a few
/// hundred bytes each stay within a core's L2 cache.
pub(crate) const BLOCK_ROWS: usize = 256;

/// One column of a data file being filled, row after row.
///
/// Filled a block of rows at a time ([`BLOCK_ROWS`]), every column in turn over the block:
/// each column is one typed loop, and a block's rows (and the text they point to) stay in
/// cache while all the columns read them. Filling whole columns one after another over
/// rows larger than the cache made every column miss on every row again, and going row by
/// row paid a dispatch per value; either cost more than the rest of building a batch.
pub(crate) struct ColumnFill<R: 'static> {
    name: &'static str,
    source: Source<R>,
    builder: Builder,
}

/// Where a column being filled takes its values.
enum Source<R: 'static> {
    /// The row's own field.
    Own(Field<R>),
    /// The writer's (asked per row).
    Supplied(Supplied),
}

// By hand, as for `Field`: `R` itself need not be `Copy`.
impl<R> Clone for Source<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Source<R> {}

impl<R: Row> ColumnFill<R> {
    /// The fill of column `c` for about `rows` rows, or why rows of type `R` cannot fill it.
    pub(crate) fn new(c: &Column, rows: usize) -> Result<Self, ArrowError> {
        let source = match c.value {
            Value::Supplied(what) => Source::Supplied(what),
            own => match R::field(own) {
                Some(f) if f.kind() == c.kind => Source::Own(f),
                Some(f) => {
                    return Err(column_error(
                        c.name,
                        ColumnError::Misfit {
                            expected: c.kind,
                            found: f.kind().name(),
                        },
                    ));
                }
                None => return Err(column_error(c.name, ColumnError::ForeignRow)),
            },
        };
        Ok(ColumnFill {
            name: c.name,
            source,
            builder: Builder::new(c.kind, rows),
        })
    }

    /// Append the values of `rows`, the rows `first..` of the batch, to the column: one
    /// loop per column and block, with no per-value type check for the row's own fields.
    pub(crate) fn extend<'a>(
        &mut self,
        first: usize,
        rows: &[&'a R],
        supplied: &impl Fn(usize, Supplied) -> Cell<'a>,
    ) -> Result<(), ArrowError> {
        match (self.source, &mut self.builder) {
            (Source::Own(Field::Text(f)), Builder::Text(b)) => {
                rows.iter().for_each(|r| b.append_value(f(r)));
            }
            (Source::Own(Field::OptText(f)), Builder::Text(b)) => {
                rows.iter().for_each(|r| b.append_option(f(r)));
            }
            (Source::Own(Field::Long(f)), Builder::Long(b)) => {
                rows.iter().for_each(|r| b.append_value(f(r)));
            }
            (Source::Own(Field::Micros(f)), Builder::Micros(b)) => {
                rows.iter().for_each(|r| b.append_value(f(r)));
            }
            (Source::Own(Field::Days(f)), Builder::Days(b)) => {
                rows.iter().for_each(|r| b.append_value(f(r)));
            }
            // `new` matched the builder to the field, so only supplied values get here.
            (Source::Own(f), _) => rows.iter().try_for_each(|r| self.push(f.cell(r)))?,
            (Source::Supplied(what), _) => {
                (first..first + rows.len()).try_for_each(|k| self.push(supplied(k, what)))?;
            }
        }
        Ok(())
    }

    /// Append one cell, refusing one of another type.
    fn push(&mut self, cell: Cell<'_>) -> Result<(), ArrowError> {
        self.builder.push(cell).map_err(|found| {
            column_error(
                self.name,
                ColumnError::Misfit {
                    expected: self.builder.kind(),
                    found,
                },
            )
        })
    }

    pub(crate) fn finish(self) -> ArrayRef {
        self.builder.finish()
    }
}

fn column_error(name: &str, e: ColumnError) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("column `{name}`: {e}"))
}

/// An Arrow builder of one [`ColumnType`], typed as [`ColumnType::arrow`] maps it (so the
/// array always matches the schema).
enum Builder {
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Long(Int64Builder),
    Micros(TimestampMicrosecondBuilder),
    Days(Date32Builder),
}

impl Builder {
    fn new(kind: ColumnType, rows: usize) -> Self {
        // Text starts at a guess and grows by doubling: sizing it exactly would take another
        // pass over the rows, which costs more than the few copies.
        match kind {
            ColumnType::String => Builder::Text(StringBuilder::with_capacity(rows, rows * 16)),
            ColumnType::Binary => Builder::Binary(BinaryBuilder::with_capacity(rows, rows * 64)),
            ColumnType::Long => Builder::Long(Int64Builder::with_capacity(rows)),
            ColumnType::Timestamp => Builder::Micros(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            ColumnType::Date => Builder::Days(Date32Builder::with_capacity(rows)),
        }
    }

    fn kind(&self) -> ColumnType {
        match self {
            Builder::Text(_) => ColumnType::String,
            Builder::Binary(_) => ColumnType::Binary,
            Builder::Long(_) => ColumnType::Long,
            Builder::Micros(_) => ColumnType::Timestamp,
            Builder::Days(_) => ColumnType::Date,
        }
    }

    /// Append a cell; a cell of another type is refused (its type's name is returned).
    fn push(&mut self, cell: Cell<'_>) -> Result<(), &'static str> {
        match (self, cell) {
            (Builder::Text(b), Cell::Text(v)) => b.append_value(v),
            (Builder::Binary(b), Cell::Bytes(v)) => b.append_value(v),
            (Builder::Long(b), Cell::Long(v)) => b.append_value(v),
            (Builder::Micros(b), Cell::Micros(v)) => b.append_value(v),
            (Builder::Days(b), Cell::Days(v)) => b.append_value(v),
            (Builder::Text(b), Cell::Null) => b.append_null(),
            (Builder::Binary(b), Cell::Null) => b.append_null(),
            (Builder::Long(b), Cell::Null) => b.append_null(),
            (Builder::Micros(b), Cell::Null) => b.append_null(),
            (Builder::Days(b), Cell::Null) => b.append_null(),
            (_, other) => return Err(other.kind_name()),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Binary(mut b) => Arc::new(b.finish()),
            Builder::Long(mut b) => Arc::new(b.finish()),
            Builder::Micros(mut b) => Arc::new(b.finish()),
            Builder::Days(mut b) => Arc::new(b.finish()),
        }
    }
}
