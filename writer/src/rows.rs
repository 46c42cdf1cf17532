//! Rows to Arrow: the events and rejected rows of a batch, grouped by partition and turned
//! into the record batches a data file holds (partition columns excluded: they live in the
//! folder name and the log).

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use schemas::table::{CREATED_DATE, EVENT_TYPE, EVENTS, REJECTED, REJECTED_DATE};
use storage::files::PartitionValues;

use crate::decode::{EventRow, RejectRow};
use crate::dedupe::Key;
use crate::source::RawRecord;

/// What the commit step needs from a set of rows, whichever table they go to.
pub trait SinkRows: Sync {
    /// Row indices grouped by partition, in row order within each group.
    fn partitions(&self) -> Vec<(PartitionValues, Vec<usize>)>;
    fn key(&self, row: usize) -> &Key;
    /// The data-file batch for these rows of one partition.
    fn to_batch(&self, rows: &[usize]) -> Result<RecordBatch, deltalake::arrow::error::ArrowError>;
}

/// Lineage shared by all rows of a batch.
pub struct Lineage<'a> {
    pub source: &'a str,
    pub records: &'a [RawRecord],
    /// One instant for the whole batch (microseconds since the epoch).
    pub at_micros: i64,
}

pub struct EventRows<'a> {
    pub rows: &'a [EventRow],
    /// Rows kept after in-batch dedupe.
    pub keep: &'a [usize],
    pub lineage: Lineage<'a>,
}

impl SinkRows for EventRows<'_> {
    fn partitions(&self) -> Vec<(PartitionValues, Vec<usize>)> {
        let mut groups: BTreeMap<(&str, i32), Vec<usize>> = BTreeMap::new();
        for &i in self.keep {
            let r = &self.rows[i];
            groups
                .entry((r.event_type(), r.created_days))
                .or_default()
                .push(i);
        }
        groups
            .into_iter()
            .map(|((t, d), idx)| {
                (
                    vec![
                        (EVENT_TYPE.to_string(), Some(t.to_string())),
                        (
                            CREATED_DATE.to_string(),
                            Some(schemas::time::format_date(i64::from(d))),
                        ),
                    ],
                    idx,
                )
            })
            .collect()
    }

    fn key(&self, row: usize) -> &Key {
        &self.rows[row].key
    }

    fn to_batch(&self, idx: &[usize]) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
        let n = idx.len();
        let bytes =
            |f: fn(&EventRow) -> usize| idx.iter().map(|&i| f(&self.rows[i])).sum::<usize>();
        let mut uuid = StringBuilder::with_capacity(n, bytes(|r| r.uuid.len()));
        let mut name = StringBuilder::with_capacity(n, bytes(|r| r.name.len()));
        let mut created_at = Int64Builder::with_capacity(n);
        let mut created_ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut created_dt = StringBuilder::with_capacity(n, n * 24);
        let mut subtype = StringBuilder::with_capacity(n, n * 8);
        let mut payload = StringBuilder::with_capacity(n, bytes(|r| r.payload.len()));
        let mut source = StringBuilder::with_capacity(n, n * self.lineage.source.len());
        let mut shard = StringBuilder::with_capacity(n, 0);
        let mut position = StringBuilder::with_capacity(n, n * 8);
        let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for &i in idx {
            let r = &self.rows[i];
            uuid.append_value(&r.uuid);
            name.append_value(&r.name);
            created_at.append_value(r.created_at);
            created_ts.append_value(r.created_micros);
            created_dt.append_value(&r.created_datetime);
            subtype.append_option(r.event_subtype());
            payload.append_value(&r.payload);
            source.append_value(self.lineage.source);
            let pos = &self.lineage.records[r.record as usize].position;
            shard.append_option(pos.shard());
            // fmt::Write on a string builder extends the current value; `append_value("")`
            // closes it. Writing to an in-memory buffer cannot fail.
            let _ = pos.write_position(&mut position);
            position.append_value("");
            ingested.append_value(self.lineage.at_micros);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(uuid.finish()),
            Arc::new(name.finish()),
            Arc::new(created_at.finish()),
            Arc::new(created_ts.finish()),
            Arc::new(created_dt.finish()),
            Arc::new(subtype.finish()),
            Arc::new(payload.finish()),
            Arc::new(source.finish()),
            Arc::new(shard.finish()),
            Arc::new(position.finish()),
            Arc::new(ingested.finish()),
        ];
        RecordBatch::try_new(EVENTS.file_schema(), columns)
    }
}

/// A rejection with its identity: (source, shard, position, raw bytes) hashed, so the same
/// record read twice is recorded once.
pub struct RejectRows<'a> {
    pub rows: &'a [RejectRow],
    pub keys: Vec<Key>,
    pub lineage: Lineage<'a>,
}

impl<'a> RejectRows<'a> {
    pub fn new(rows: &'a [RejectRow], lineage: Lineage<'a>) -> Self {
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
        let day = self.lineage.at_micros.div_euclid(86_400_000_000);
        vec![(
            vec![(
                REJECTED_DATE.to_string(),
                Some(schemas::time::format_date(day)),
            )],
            (0..self.rows.len()).collect(),
        )]
    }

    fn key(&self, row: usize) -> &Key {
        &self.keys[row]
    }

    fn to_batch(&self, idx: &[usize]) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
        let n = idx.len();
        let mut id = StringBuilder::with_capacity(n, n * 32);
        let mut raw = BinaryBuilder::with_capacity(n, 0);
        let mut reason = StringBuilder::with_capacity(n, n * 16);
        let mut message = StringBuilder::with_capacity(n, n * 48);
        let mut source = StringBuilder::with_capacity(n, 0);
        let mut shard = StringBuilder::with_capacity(n, 0);
        let mut position = StringBuilder::with_capacity(n, 0);
        let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for &i in idx {
            let r = &self.rows[i];
            let rec = &self.lineage.records[r.record as usize];
            match &self.keys[i] {
                Key::Text(t) => id.append_value(t),
                Key::Uuid(u) => id.append_value(format!("{u:032x}")),
            }
            raw.append_value(&rec.data);
            reason.append_value(r.reason.as_str());
            message.append_value(&r.message);
            source.append_value(self.lineage.source);
            shard.append_option(rec.position.shard());
            let _ = rec.position.write_position(&mut position);
            position.append_value("");
            at.append_value(self.lineage.at_micros);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(raw.finish()),
            Arc::new(reason.finish()),
            Arc::new(message.finish()),
            Arc::new(source.finish()),
            Arc::new(shard.finish()),
            Arc::new(position.finish()),
            Arc::new(at.finish()),
        ];
        RecordBatch::try_new(REJECTED.file_schema(), columns)
    }
}
