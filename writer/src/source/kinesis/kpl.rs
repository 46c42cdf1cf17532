//! De-aggregation of Kinesis Producer Library records.
//!
//! A KPL aggregate is `0xF3 0x89 0x9A 0xC2` + protobuf `AggregatedRecord` + MD5 of the
//! protobuf. Anything that does not match exactly (magic, parse, checksum) is an ordinary
//! record and passes through untouched — a payload that merely starts with the magic bytes
//! is never mangled. Only the user-record `data` fields are needed; keys and tags are
//! skipped.

use md5::{Digest, Md5};

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// The user records of a KPL aggregate, or `None` if `data` is not one.
pub fn deaggregate(data: &[u8]) -> Option<Vec<&[u8]>> {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..4] != MAGIC {
        return None;
    }
    let body = &data[4..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let mut records = Vec::new();
    let mut r = Reader { buf: body, pos: 0 };
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 3 && wire == 2 {
            let msg = r.bytes()?;
            records.push(record_data(msg)?);
        } else {
            r.skip(wire)?;
        }
    }
    Some(records)
}

fn record_data(msg: &[u8]) -> Option<&[u8]> {
    let mut r = Reader { buf: msg, pos: 0 };
    let mut data = None;
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 3 && wire == 2 {
            data = Some(r.bytes()?);
        } else {
            r.skip(wire)?;
        }
    }
    data
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(len)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => None,
        }
    }

    fn advance(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.buf.len()).then(|| self.pos = end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The producer side (test tooling, not shipped): checks the two sides agree.
    use loadgen::kpl::aggregate;
    use proptest::prelude::*;

    #[test]
    fn plain_records_pass_through() {
        assert!(deaggregate(b"{\"a\":1}").is_none());
        let mut fake = MAGIC.to_vec();
        fake.extend_from_slice(&[0u8; 40]);
        assert!(
            deaggregate(&fake).is_none(),
            "bad checksum is not an aggregate"
        );
    }

    proptest! {
        #[test]
        fn round_trip(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20)) {
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let agg = aggregate("pk", &refs);
            prop_assert_eq!(deaggregate(&agg), Some(refs));
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&data);
            let _ = deaggregate(&v);
        }
    }
}
