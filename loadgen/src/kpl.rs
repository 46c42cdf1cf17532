//! Aggregation in the Kinesis Producer Library format, so tests and benchmarks can feed the
//! writer what KPL producers send.
//!
//! An aggregate is `0xF3 0x89 0x9A 0xC2` + protobuf `AggregatedRecord` + MD5 of the
//! protobuf. Only the producer side lives here; the writer's reader
//! (`writer::source::kinesis::kpl`) de-aggregates, and its round-trip test builds its
//! aggregates with this function, so the two sides are checked against each other.

use md5::{Digest, Md5};

/// The magic prefix of every KPL aggregate.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// One KPL aggregate of `records`, all under one partition key (index 0 of the key table).
pub fn aggregate(partition_key: &str, records: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    put_len_field(&mut body, 1, partition_key.as_bytes());
    for data in records {
        let mut rec = Vec::new();
        put_varint(&mut rec, 1 << 3); // partition_key_index = 0
        put_varint(&mut rec, 0);
        put_len_field(&mut rec, 3, data);
        put_len_field(&mut body, 3, &rec);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a small aggregate, worked out by hand from the protobuf schema:
    /// a change here would make the writer's reader and real KPL producers disagree.
    #[test]
    fn layout_of_a_small_aggregate() {
        let agg = aggregate("k", &[b"ab"]);
        let body = [
            0x0a, 0x01, b'k', // field 1 (partition_key_table): "k"
            0x1a, 0x06, // field 3 (records), 6 bytes:
            0x08, 0x00, //   partition_key_index = 0
            0x1a, 0x02, b'a', b'b', //   data = "ab"
        ];
        assert_eq!(agg[..4], MAGIC);
        assert_eq!(agg[4..agg.len() - 16], body);
        assert_eq!(agg[agg.len() - 16..], Md5::digest(body)[..]);
    }
}
