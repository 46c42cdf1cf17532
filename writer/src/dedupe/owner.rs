//! Shard-scoped dedupe (`--dedupe-keys own-shards`): whose keys a writer holds.
//!
//! With several writers on one table, each holding every key of the partitions it writes
//! costs every writer a key-column read of every file every other writer adds (a read per
//! partition per foreign commit: O(writers²) GETs, and the key re-check that makes a lost
//! race expensive). Producers' retries and Kinesis redeliveries reuse a record's partition
//! key, so both copies land on the same shard, or, across a reshard, on a child of the
//! first copy's shard. A writer then needs only the keys that arrived through the shards it
//! holds and their ancestors, plus rows that came through no shard (`writer ingest`
//! backfills: `source_shard` is null), and:
//! - a foreign commit (every `txn` in it names a shard of this stream that this writer does
//!   not hold) adds no key it needs: it is skipped without reading a file, so losing a race
//!   to it costs only reading its log entry again — a rebase, with the staged files reused;
//! - loading a partition keeps only the keys whose `source_shard` is held (or null).
//!
//! **The assumption, stated:** two copies of an event share a partition key. A copy that
//! arrives through another writer's shard (a producer re-sending under a different
//! partition key) is not seen by this writer and is stored again; a commit carrying no
//! `txn`, or a `txn` of another application, is always read (its rows' origin is unknown).
//! Gaining a shard (a lease taken over) forgets every held partition, because the index
//! does not hold that shard's keys: they are re-read, filtered, on next use. A shard never
//! committed (no `txn` in the table: a new stream's shards, the children of a reshard) has
//! no key anywhere, so gaining it forgets nothing.

use std::collections::BTreeSet;

use storage::log::LogEntry;

use crate::service::progress::app_id;

/// The shards (held and their ancestors) whose keys a writer holds, of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedShards {
    /// `txn` app id prefix of this stream's shards (`kinesis/<stream>/`).
    prefix: String,
    /// Shard ids, as `source_shard` holds them.
    shards: BTreeSet<String>,
    /// Of those, shards with no row in the table (never committed).
    fresh: BTreeSet<String>,
}

impl OwnedShards {
    pub fn new(stream: &str, shards: impl IntoIterator<Item = impl Into<String>>) -> Self {
        OwnedShards {
            prefix: app_id(stream, ""),
            shards: shards.into_iter().map(Into::into).collect(),
            fresh: BTreeSet::new(),
        }
    }

    /// The same, knowing that `fresh` shards were never committed (no `txn` in the table),
    /// so no row of theirs exists.
    pub fn with_fresh(mut self, fresh: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.fresh = fresh.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a row that came through `shard` is one whose key this writer holds (a row
    /// that came through no shard always is).
    pub fn holds(&self, shard: Option<&str>) -> bool {
        shard.is_none_or(|s| self.shards.contains(s))
    }

    /// Whether every `txn` of `entry` names a shard of this stream not held here: its rows
    /// came through other writers' shards only. An entry without `txn`s, or with any other
    /// application's, is not foreign.
    pub fn is_foreign(&self, entry: &LogEntry) -> bool {
        !entry.txns.is_empty()
            && entry.txns.iter().all(|t| {
                t.app_id
                    .strip_prefix(&self.prefix)
                    .is_some_and(|shard| !self.shards.contains(shard))
            })
    }

    /// Whether `self` holds a shard with rows that `before` did not (or is of another
    /// stream): an index built for `before` lacks that shard's keys.
    pub fn gains_over(&self, before: &OwnedShards) -> bool {
        self.prefix != before.prefix
            || (self.shards.iter()).any(|s| !before.shards.contains(s) && !self.fresh.contains(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(app_ids: &[&str]) -> LogEntry {
        let mut bytes = String::new();
        for a in app_ids {
            bytes.push_str(&format!(r#"{{"txn":{{"appId":"{a}","version":3}}}}"#));
            bytes.push('\n');
        }
        LogEntry::parse(7, bytes.as_bytes()).expect("entry")
    }

    #[test]
    fn a_commit_is_foreign_only_when_every_txn_is_another_shard_of_the_stream() {
        let owned = OwnedShards::new("s", ["shard-1"]);
        assert!(owned.is_foreign(&entry(&["kinesis/s/shard-2"])));
        assert!(owned.is_foreign(&entry(&["kinesis/s/shard-2", "kinesis/s/shard-3"])));
        assert!(!owned.is_foreign(&entry(&["kinesis/s/shard-2", "kinesis/s/shard-1"])));
        assert!(!owned.is_foreign(&entry(&[])), "no txn: origin unknown");
        assert!(
            !owned.is_foreign(&entry(&["ingest/backfill"])),
            "another app"
        );
        assert!(
            !owned.is_foreign(&entry(&["kinesis/other/shard-2"])),
            "another stream"
        );
        assert!(!owned.is_foreign(&entry(&["kinesis/s/shard-2", "x"])));
    }

    #[test]
    fn rows_without_a_shard_are_always_held() {
        let owned = OwnedShards::new("s", ["shard-1"]);
        assert!(owned.holds(None));
        assert!(owned.holds(Some("shard-1")));
        assert!(!owned.holds(Some("shard-2")));
    }

    #[test]
    fn only_a_new_shard_or_stream_is_a_gain() {
        let one = OwnedShards::new("s", ["a"]);
        let two = OwnedShards::new("s", ["a", "b"]);
        assert!(two.gains_over(&one));
        assert!(
            !one.gains_over(&two),
            "losing a shard keeps a superset of the keys"
        );
        assert!(!one.gains_over(&one.clone()));
        assert!(OwnedShards::new("t", ["a"]).gains_over(&one));
        let fresh_b = OwnedShards::new("s", ["a", "b"]).with_fresh(["b"]);
        assert!(
            !fresh_b.gains_over(&one),
            "a shard never committed has no keys to miss"
        );
        let fresh_a = OwnedShards::new("s", ["a", "b"]).with_fresh(["a"]);
        assert!(fresh_a.gains_over(&one), "b has rows");
    }
}
