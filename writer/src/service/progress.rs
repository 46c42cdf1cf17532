//! Per-shard progress carried by one commit (kafka-delta-ingest's `offsets.rs` idea): which
//! sequence numbers of which shards a batch holds, the Delta `txn` each shard moves to, the
//! versions the commit is fenced on, and the `commitInfo` "kinesis" metadata a new owner
//! reads its resume position from. Pure: the service decides when, this decides what.
//!
//! The metadata written per commit (the integration tests and auditors read it):
//! `{"kinesis": {"stream": s, "shards": {<shard>: {"first_sequence", "last_sequence",
//! "records", "txn"}}}}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::kernel::Transaction;
use serde_json::{Value, json};

use crate::source::{Position, RawRecord};

/// The Delta application transaction id of a shard: its version counts the shard's
/// committed batches.
pub fn app_id(stream: &str, shard: &str) -> String {
    format!("kinesis/{stream}/{shard}")
}

/// What one batch holds of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardProgress {
    /// Sequence number of the shard's first record in the batch.
    pub first_sequence: Arc<str>,
    /// Sequence number of its last record: where the shard resumes once committed.
    pub last_sequence: Arc<str>,
    /// Records of the shard in the batch (KPL sub-records counted one by one).
    pub records: usize,
    /// The shard's `txn` version before this commit (`None`: never committed), which the
    /// commit is fenced on.
    pub previous_txn: Option<i64>,
}

impl ShardProgress {
    /// The `txn` version this commit records for the shard.
    pub fn txn(&self) -> i64 {
        self.previous_txn.map_or(0, |v| v + 1)
    }
}

/// The progress of one batch, per shard, in shard order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The Kinesis stream name: part of every shard's `txn` app id and of the metadata.
    stream: String,
    /// Per shard with records in the batch (and held by this instance), what it commits.
    shards: BTreeMap<Arc<str>, ShardProgress>,
}

impl Progress {
    /// Scan a batch. `txn_of(shard)` is the shard's current `txn` version, or `None` for a
    /// shard this instance does not hold (its records are committed without progress).
    pub fn of(
        stream: &str,
        records: &[RawRecord],
        txn_of: impl Fn(&str) -> Option<Option<i64>>,
    ) -> Progress {
        let mut shards: BTreeMap<Arc<str>, ShardProgress> = BTreeMap::new();
        for r in records {
            let Position::Sequence {
                shard, sequence, ..
            } = &r.position
            else {
                continue;
            };
            if let Some(p) = shards.get_mut(shard) {
                p.last_sequence = sequence.clone();
                p.records += 1;
            } else if let Some(previous_txn) = txn_of(shard) {
                let first = ShardProgress {
                    first_sequence: sequence.clone(),
                    last_sequence: sequence.clone(),
                    records: 1,
                    previous_txn,
                };
                shards.insert(shard.clone(), first);
            }
        }
        Progress {
            stream: stream.to_string(),
            shards,
        }
    }

    pub fn shards(&self) -> impl Iterator<Item = (&Arc<str>, &ShardProgress)> {
        self.shards.iter()
    }

    /// Shards the batch carries progress for (the `shards` field of `batch committed`).
    /// Named apart from `len` so no unused `is_empty` is needed beside it.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The `txn` actions committed with the batch: each shard moves one version on.
    pub fn txns(&self) -> Vec<Transaction> {
        self.shards
            .iter()
            .map(|(shard, p)| Transaction::new(app_id(&self.stream, shard), p.txn()))
            .collect()
    }

    /// The fence: each shard's `txn` must still be at the version read when the shard was
    /// taken (or last committed by us), else another writer owns its progress now.
    pub fn expected(&self) -> Vec<(String, Option<i64>)> {
        self.shards
            .iter()
            .map(|(shard, p)| (app_id(&self.stream, shard), p.previous_txn))
            .collect()
    }

    /// The `commitInfo` entries: `kinesis` → stream and per-shard positions.
    pub fn commit_info(&self) -> HashMap<String, Value> {
        let shards: serde_json::Map<String, Value> = self
            .shards
            .iter()
            .map(|(shard, p)| {
                let entry = json!({
                    "first_sequence": p.first_sequence.as_ref(),
                    "last_sequence": p.last_sequence.as_ref(),
                    "records": p.records,
                    "txn": p.txn(),
                });
                (shard.to_string(), entry)
            })
            .collect();
        HashMap::from([(
            "kinesis".to_string(),
            json!({"stream": self.stream, "shards": Value::Object(shards)}),
        )])
    }
}

/// The last sequence number of `shard` recorded in a commit's `commitInfo` (as written by
/// [`Progress::commit_info`]): where the shard resumes when the lease checkpoint is behind.
pub fn committed_sequence(commit_info: &Value, shard: &str) -> Option<String> {
    commit_info
        .get("kinesis")?
        .get("shards")?
        .get(shard)?
        .get("last_sequence")?
        .as_str()
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(shard: &str, seq: &str, sub: Option<u32>) -> RawRecord {
        RawRecord {
            data: Bytes::from_static(b"{}"),
            position: Position::Sequence {
                shard: Arc::from(shard),
                sequence: Arc::from(seq),
                sub,
            },
            judged_at: None,
        }
    }

    fn batch() -> Vec<RawRecord> {
        vec![
            rec("s1", "10", None),
            rec("s0", "5", Some(0)),
            rec("s0", "5", Some(1)),
            rec("s1", "11", None),
            rec("gone", "1", None),
            rec("s0", "7", None),
        ]
    }

    fn held(shard: &str) -> Option<Option<i64>> {
        match shard {
            "s0" => Some(None),
            "s1" => Some(Some(3)),
            _ => None,
        }
    }

    #[test]
    fn counts_first_and_last_sequence_per_held_shard() {
        let p = Progress::of("st", &batch(), held);
        let got: Vec<(&str, &str, &str, usize, i64)> = p
            .shards()
            .map(|(s, p)| {
                let (first, last) = (p.first_sequence.as_ref(), p.last_sequence.as_ref());
                (s.as_ref(), first, last, p.records, p.txn())
            })
            .collect();
        assert_eq!(got, vec![("s0", "5", "7", 3, 0), ("s1", "10", "11", 2, 4)]);
    }

    #[test]
    fn txns_move_one_version_on_and_are_fenced_on_the_previous_one() {
        let p = Progress::of("st", &batch(), held);
        let txns: Vec<(String, i64)> = p
            .txns()
            .into_iter()
            .map(|t| (t.app_id, t.version))
            .collect();
        assert_eq!(
            txns,
            vec![
                ("kinesis/st/s0".to_string(), 0),
                ("kinesis/st/s1".to_string(), 4)
            ]
        );
        assert_eq!(
            p.expected(),
            vec![
                ("kinesis/st/s0".to_string(), None),
                ("kinesis/st/s1".to_string(), Some(3))
            ]
        );
    }

    #[test]
    fn commit_info_records_positions_and_is_read_back() {
        let p = Progress::of("st", &batch(), held);
        let info = Value::Object(p.commit_info().into_iter().collect());
        assert_eq!(
            info["kinesis"]["shards"]["s1"],
            json!({"first_sequence": "10", "last_sequence": "11", "records": 2, "txn": 4})
        );
        assert_eq!(info["kinesis"]["stream"], "st");
        assert_eq!(committed_sequence(&info, "s0").as_deref(), Some("7"));
        assert_eq!(committed_sequence(&info, "gone"), None);
        assert_eq!(committed_sequence(&json!({}), "s0"), None);
    }

    #[test]
    fn a_batch_of_lines_has_no_progress() {
        let lines = vec![RawRecord {
            data: Bytes::from_static(b"{}"),
            position: Position::Line(1),
            judged_at: None,
        }];
        assert_eq!(Progress::of("st", &lines, held).shard_count(), 0);
    }
}
