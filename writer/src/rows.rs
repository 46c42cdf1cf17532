//! Rows to Arrow: the events and rejected rows of a batch, grouped by partition and turned
//! into the record batches a data file holds (partition columns excluded: they live in the
//! folder name and the log).
//!
//! The layout — which columns, in which order, of which type, from which field — is the
//! table definition's (`schemas::table`); this module only answers, per row, for the values
//! only the writer knows ([`Supplied`]: lineage, raw bytes, rejection id, batch time).

use std::sync::OnceLock;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::error::ArrowError;
use schemas::row::{Cell, Row, Supplied};
use schemas::table::{EVENTS, REJECTED, TableDef};
use schemas::{EventRow, RejectRow};
use storage::files::PartitionValues;

use crate::decode::KeyedEvent;
use crate::dedupe::Key;
use crate::source::{Position, RawRecord};

/// What the commit step needs from a set of rows, whichever table they go to.
pub trait SinkRows: Sync {
    /// Row indices grouped by partition, in row order within each group.
    fn partitions(&self) -> Vec<(PartitionValues, Vec<usize>)>;
    fn key(&self, row: usize) -> &Key;
    /// The data-file batch for these rows of one partition.
    fn to_batch(&self, rows: &[usize]) -> Result<RecordBatch, ArrowError>;
}

/// Lineage shared by all rows of a batch.
pub struct Lineage<'a> {
    pub source: &'a str,
    pub records: &'a [RawRecord],
    /// One instant for the whole batch (microseconds since the epoch).
    pub at_micros: i64,
    /// The records' `source_position` texts, made on first use.
    positions: OnceLock<Positions>,
}

impl<'a> Lineage<'a> {
    pub fn new(source: &'a str, records: &'a [RawRecord], at_micros: i64) -> Self {
        Lineage {
            source,
            records,
            at_micros,
            positions: OnceLock::new(),
        }
    }

    /// The `source_position` text of record `record` of the batch.
    fn position(&self, record: u32) -> &str {
        // All at once, in record order: a sequential pass over the records, where reading
        // them in a data file's row order would miss the cache on nearly every record.
        self.positions
            .get_or_init(|| Positions::of(self.records.iter().map(|r| &r.position)))
            .get(record as usize)
    }
}

/// A batch's accepted events, bound for the events table.
pub struct EventRows<'a> {
    pub rows: &'a [KeyedEvent],
    /// Rows kept after in-batch dedupe.
    pub keep: &'a [usize],
    pub lineage: &'a Lineage<'a>,
}

impl SinkRows for EventRows<'_> {
    fn partitions(&self) -> Vec<(PartitionValues, Vec<usize>)> {
        partitions(self, self.keep)
    }

    fn key(&self, row: usize) -> &Key {
        &self.rows[row].key
    }

    fn to_batch(&self, rows: &[usize]) -> Result<RecordBatch, ArrowError> {
        Cells::new(self, rows).file_batch()
    }
}

/// A rejection with its identity: (source, shard, position, raw bytes) hashed, so the same
/// record read twice is recorded once.
pub struct RejectRows<'a> {
    pub rows: &'a [RejectRow],
    /// The `rejection_id` of each row, as text keys. Private: only [`RejectRows::new`] makes
    /// them, and it makes every one text, which is what the `rejection_id` column stores.
    keys: Vec<Key>,
    pub lineage: &'a Lineage<'a>,
}

impl<'a> RejectRows<'a> {
    pub fn new(rows: &'a [RejectRow], lineage: &'a Lineage<'a>) -> Self {
        let keys = rows
            .iter()
            .map(|r| {
                Key::Text(rejection_id(lineage.source, &lineage.records[r.record as usize]).into())
            })
            .collect();
        RejectRows {
            rows,
            keys,
            lineage,
        }
    }
}

/// Stable identity of a rejected record (hex xxh3-128 over its origin and bytes).
pub fn rejection_id(source: &str, rec: &RawRecord) -> String {
    let mut buf = Vec::with_capacity(source.len() + rec.data.len() + 64);
    buf.extend_from_slice(source.as_bytes());
    buf.push(0);
    buf.extend_from_slice(rec.position.shard().unwrap_or("").as_bytes());
    buf.push(0);
    buf.extend_from_slice(rec.position.position_text().as_bytes());
    buf.push(0);
    buf.extend_from_slice(&rec.data);
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&buf))
}

impl SinkRows for RejectRows<'_> {
    fn partitions(&self) -> Vec<(PartitionValues, Vec<usize>)> {
        let all: Vec<usize> = (0..self.rows.len()).collect();
        partitions(self, &all)
    }

    fn key(&self, row: usize) -> &Key {
        &self.keys[row]
    }

    fn to_batch(&self, rows: &[usize]) -> Result<RecordBatch, ArrowError> {
        Cells::new(self, rows).file_batch()
    }
}

/// A sink's rows as its table definition reads them.
trait TableRows {
    /// The kind of row, whose fields the table definition reads itself.
    type Row: Row;
    /// The table the rows are written to.
    const TABLE: &'static TableDef;
    fn lineage(&self) -> &Lineage<'_>;
    fn row(&self, row: usize) -> &Self::Row;
    /// Index in the batch of the record `row` was read from.
    fn record(&self, row: usize) -> u32;
    /// A supplied value `row` carries itself (a rejection's id); `None` when it has none.
    fn own(&self, row: usize, what: Supplied) -> Option<Cell<'_>>;
}

impl TableRows for EventRows<'_> {
    type Row = EventRow;
    const TABLE: &'static TableDef = &EVENTS;

    fn lineage(&self) -> &Lineage<'_> {
        self.lineage
    }

    fn row(&self, row: usize) -> &EventRow {
        &self.rows[row].row
    }

    fn record(&self, row: usize) -> u32 {
        self.rows[row].record
    }

    fn own(&self, _row: usize, _what: Supplied) -> Option<Cell<'_>> {
        None
    }
}

impl TableRows for RejectRows<'_> {
    type Row = RejectRow;
    const TABLE: &'static TableDef = &REJECTED;

    fn lineage(&self) -> &Lineage<'_> {
        self.lineage
    }

    fn row(&self, row: usize) -> &RejectRow {
        &self.rows[row]
    }

    fn record(&self, row: usize) -> u32 {
        self.rows[row].record
    }

    fn own(&self, row: usize, what: Supplied) -> Option<Cell<'_>> {
        match (what, &self.keys[row]) {
            // `RejectRows::new` makes every key text: the id is stored as it was hashed.
            (Supplied::RejectionId, Key::Text(id)) => Some(Cell::Text(id)),
            _ => None,
        }
    }
}

/// `rows` of a sink grouped by partition, as row indices of the sink.
fn partitions<S: TableRows>(sink: &S, rows: &[usize]) -> Vec<(PartitionValues, Vec<usize>)> {
    let cells = Cells::new(sink, rows);
    let mut groups = S::TABLE.partition_groups(cells.rows(), |k, what| cells.supplied(k, what));
    for (_, group) in &mut groups {
        for k in group.iter_mut() {
            *k = rows[*k];
        }
    }
    groups
}

/// Some rows of a sink (`rows`, indices into the sink), addressed by their place `k` in
/// `rows`, with the values the writer supplies for them.
struct Cells<'a, S> {
    sink: &'a S,
    rows: &'a [usize],
}

impl<'a, S: TableRows> Cells<'a, S> {
    fn new(sink: &'a S, rows: &'a [usize]) -> Self {
        Cells { sink, rows }
    }

    /// The rows themselves, in order.
    fn rows(&self) -> impl ExactSizeIterator<Item = &'a S::Row> + use<'a, S> {
        let sink = self.sink;
        self.rows.iter().map(move |&i| sink.row(i))
    }

    fn file_batch(&self) -> Result<RecordBatch, ArrowError> {
        S::TABLE.file_batch(self.rows(), |k, what| self.supplied(k, what))
    }

    /// The value the writer supplies for row `k`. A value this kind of row cannot give is
    /// null, which a non-nullable column refuses when its batch is assembled.
    fn supplied(&self, k: usize, what: Supplied) -> Cell<'a> {
        let (sink, row) = (self.sink, self.rows[k]);
        if let Some(own) = sink.own(row, what) {
            return own;
        }
        let lineage = sink.lineage();
        let record = sink.record(row);
        match what {
            Supplied::Source => Cell::Text(lineage.source),
            Supplied::SourceShard => {
                Cell::text_or_null(lineage.records[record as usize].position.shard())
            }
            Supplied::SourcePosition => Cell::Text(lineage.position(record)),
            Supplied::Raw => Cell::Bytes(&lineage.records[record as usize].data),
            Supplied::ProcessedAt => Cell::Micros(lineage.at_micros),
            Supplied::ProcessedDate => i32::try_from(lineage.at_micros.div_euclid(MICROS_PER_DAY))
                .map_or(Cell::Null, Cell::Days),
            // Only a rejection has an id, and it gives it itself (`own`).
            Supplied::RejectionId => Cell::Null,
        }
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `source_position` texts written one after another into one buffer: the column takes
/// borrowed text, and one buffer per batch avoids a `String` per row.
struct Positions {
    text: String,
    /// End of each text in `text` (the start is the previous end).
    ends: Vec<usize>,
}

impl Positions {
    fn of<'p>(positions: impl ExactSizeIterator<Item = &'p Position>) -> Self {
        let mut out = Positions {
            text: String::with_capacity(positions.len() * 12),
            ends: Vec::with_capacity(positions.len()),
        };
        for p in positions {
            // Writing to a String cannot fail.
            let _ = p.write_position(&mut out.text);
            out.ends.push(out.text.len());
        }
        out
    }

    fn get(&self, k: usize) -> &str {
        let start = k.checked_sub(1).map_or(0, |prev| self.ends[prev]);
        self.text.get(start..self.ends[k]).unwrap_or("")
    }
}
