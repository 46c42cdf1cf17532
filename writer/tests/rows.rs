//! The Arrow batches the writer builds for a data file have exactly the table definition's
//! layout (names, types, nullability, order) and carry every value unchanged: the columns
//! come from `schemas::table`, not from code in the writer.

use std::sync::Arc;

use bytes::Bytes;
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{
    DataType, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use schemas::table::{EVENTS, REJECTED, TableDef};
use schemas::{PartitionRules, RejectReason, ValidationRules};
use writer::decode::{Decoded, decode_batch};
use writer::rows::{EventRows, Lineage, RejectRows, SinkRows, rejection_id};
use writer::source::{Position, RawRecord};

/// 2024-03-17T10:15:30.125Z, in microseconds.
const AT: i64 = 1_710_670_530_125_000;
const NOW: i64 = 1_800_000_000;

fn kinesis(seq: &str, sub: Option<u32>, line: &str) -> RawRecord {
    RawRecord {
        data: Bytes::from(line.to_string()),
        position: Position::Sequence {
            shard: Arc::from("shardId-000000000007"),
            sequence: Arc::from(seq),
            sub,
        },
        judged_at: None,
    }
}

fn file_line(n: u64, line: &str) -> RawRecord {
    RawRecord {
        data: Bytes::from(line.to_string()),
        position: Position::Line(n),
        judged_at: None,
    }
}

/// Three events (a null subtype, a unicode payload, a fractional `created_at`) and two
/// rejections, from a file and from a Kinesis shard.
fn records() -> Vec<RawRecord> {
    vec![
        file_line(
            1,
            r#"{"event_uuid":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","event_name":"login","created_at":1710670530}"#,
        ),
        kinesis(
            "4959",
            Some(3),
            r#"{"note":"héllo 👋 \u00e9","event_uuid":"ü-1","event_name":"payment:order:completed","created_at":1710670530.125,"n":[1, 2]}"#,
        ),
        file_line(3, "not json"),
        kinesis(
            "4960",
            None,
            r#"{"event_uuid":"u3","event_name":"a:","created_at":1710720000}"#,
        ),
        file_line(5, r#"{"event_uuid":"u4","created_at":1710670530}"#),
    ]
}

fn decode(records: &[RawRecord]) -> Decoded {
    decode_batch(
        records,
        &ValidationRules::default(),
        &PartitionRules::default(),
        NOW,
    )
}

fn lineage(records: &[RawRecord]) -> Lineage<'_> {
    Lineage::new("file:/in/events.ndjson", records, AT)
}

/// The batch's schema is the definition's file schema, column for column.
fn assert_layout(def: &TableDef, schema: &SchemaRef) {
    let expected: Vec<_> = def
        .columns
        .iter()
        .filter(|c| !def.is_partition_column(c.name))
        .map(|c| (c.name, c.kind.arrow(), c.nullable))
        .collect();
    let got: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(schema, &def.file_schema());
}

fn text(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch
        .column_by_name(column)
        .expect(column)
        .as_string::<i32>();
    (0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
        .collect()
}

fn texts(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

fn micros(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let array = batch.column_by_name(column).expect(column);
    assert_eq!(
        array.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    array
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec()
}

#[test]
fn event_batch_has_the_definitions_layout() {
    let records = records();
    let decoded = decode(&records);
    let rows = EventRows {
        rows: &decoded.events,
        keep: &[0, 1, 2],
        lineage: &lineage(&records),
    };
    let batch = rows.to_batch(&[0, 1, 2]).expect("batch");
    assert_layout(&EVENTS, &batch.schema());
    // The contract with users' queries, spelled out once more.
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "event_uuid",
            "event_name",
            "created_at",
            "created_timestamp",
            "created_datetime",
            "event_subtype",
            "payload",
            "source",
            "source_shard",
            "source_position",
            "ingested_at",
        ]
    );
}

#[test]
fn event_values_round_trip() {
    let records = records();
    let decoded = decode(&records);
    assert_eq!(decoded.events.len(), 3);
    let rows = EventRows {
        rows: &decoded.events,
        keep: &[0, 1, 2],
        lineage: &lineage(&records),
    };
    // Rows in the order asked for, not the order of the batch.
    let batch = rows.to_batch(&[1, 0, 2]).expect("batch");
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(
        text(&batch, "event_uuid"),
        texts(&["ü-1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "u3"])
    );
    assert_eq!(
        text(&batch, "event_name"),
        texts(&["payment:order:completed", "login", "a:"])
    );
    let created_at = batch.column_by_name("created_at").expect("created_at");
    assert_eq!(
        created_at.as_primitive::<Int64Type>().values().to_vec(),
        [1_710_670_530, 1_710_670_530, 1_710_720_000]
    );
    assert_eq!(
        micros(&batch, "created_timestamp"),
        [
            1_710_670_530_125_000,
            1_710_670_530_000_000,
            1_710_720_000_000_000
        ]
    );
    assert_eq!(
        text(&batch, "created_datetime"),
        texts(&[
            "2024-03-17T10:15:30.125Z",
            "2024-03-17T10:15:30Z",
            "2024-03-18T00:00:00Z"
        ])
    );
    // Absent and empty subtypes are null, not "".
    assert_eq!(
        text(&batch, "event_subtype"),
        [Some("order".to_string()), None, None]
    );
    assert_eq!(
        text(&batch, "payload"),
        texts(&[r#"{"note":"héllo 👋 \u00e9","n":[1, 2]}"#, "{}", "{}"])
    );
    assert_eq!(
        text(&batch, "source"),
        texts(&["file:/in/events.ndjson"; 3])
    );
    assert_eq!(
        text(&batch, "source_shard"),
        [
            Some("shardId-000000000007".to_string()),
            None,
            Some("shardId-000000000007".to_string())
        ]
    );
    assert_eq!(
        text(&batch, "source_position"),
        texts(&["4959:3", "1", "4960"])
    );
    assert_eq!(micros(&batch, "ingested_at"), [AT; 3]);
}

#[test]
fn events_group_by_their_partition_values() {
    let records = records();
    let decoded = decode(&records);
    let rows = EventRows {
        rows: &decoded.events,
        keep: &[2, 0, 1],
        lineage: &lineage(&records),
    };
    let folder = |t: &str, d: &str| {
        vec![
            ("event_type".to_string(), Some(t.to_string())),
            ("created_date".to_string(), Some(d.to_string())),
        ]
    };
    assert_eq!(
        rows.partitions(),
        [
            (folder("a", "2024-03-18"), vec![2]),
            (folder("login", "2024-03-17"), vec![0]),
            (folder("payment", "2024-03-17"), vec![1]),
        ]
    );
}

#[test]
fn reject_batch_has_the_definitions_layout_and_values() {
    let records = records();
    let decoded = decode(&records);
    let reasons: Vec<RejectReason> = decoded.rejects.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [RejectReason::NotJson, RejectReason::MissingEventName]
    );
    let lineage = lineage(&records);
    let rows = RejectRows::new(&decoded.rejects, &lineage);
    let batch = rows.to_batch(&[0, 1]).expect("batch");
    assert_layout(&REJECTED, &batch.schema());
    let ids: Vec<String> = [2, 4]
        .iter()
        .map(|&i| rejection_id("file:/in/events.ndjson", &records[i]))
        .collect();
    assert_eq!(
        text(&batch, "rejection_id"),
        texts(&[ids[0].as_str(), ids[1].as_str()])
    );
    let raw = batch.column_by_name("raw").expect("raw").as_binary::<i32>();
    assert_eq!(raw.value(0), b"not json");
    assert_eq!(raw.value(1), &records[4].data[..]);
    assert_eq!(
        text(&batch, "reason"),
        texts(&["not_json", "missing_event_name"])
    );
    assert_eq!(
        text(&batch, "message"),
        decoded
            .rejects
            .iter()
            .map(|r| Some(r.message.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        text(&batch, "source"),
        texts(&["file:/in/events.ndjson"; 2])
    );
    assert_eq!(text(&batch, "source_shard"), [None, None]);
    assert_eq!(text(&batch, "source_position"), texts(&["3", "5"]));
    assert_eq!(micros(&batch, "rejected_at"), [AT; 2]);
    assert_eq!(
        rows.partitions(),
        [(
            vec![("rejected_date".to_string(), Some("2024-03-17".to_string()))],
            vec![0, 1]
        )]
    );
}

/// A batch of no rows is still a batch of the definition's layout.
#[test]
fn empty_batches_keep_the_layout() {
    let records = records();
    let decoded = decode(&records);
    let events = EventRows {
        rows: &decoded.events,
        keep: &[],
        lineage: &lineage(&records),
    };
    let batch = events.to_batch(&[]).expect("batch");
    assert_eq!(batch.num_rows(), 0);
    assert_layout(&EVENTS, &batch.schema());
    assert!(events.partitions().is_empty());
}
