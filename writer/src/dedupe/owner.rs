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
//! - loading a partition keeps only the keys whose `source_shard` is held (or null), and
//!   reads only the files that may hold such a key ([`OwnedShards::may_hold_file`]: the
//!   `source_shard` range and null count the writer puts in `add.stats`), so another
//!   writer's files cost no read until compaction mixes the shards in one file.
//!
//! **The assumption, stated:** two copies of an event share a partition key. A copy that
//! arrives through another writer's shard (a producer re-sending under a different
//! partition key) is not seen by this writer and is stored again; a commit carrying no
//! `txn`, or a `txn` of another application, is always read (its rows' origin is unknown).
//! Gaining a shard (a lease taken over) leaves every held partition without that shard's
//! keys: each is completed on next use by reading only the files whose statistics may hold
//! the gained shard's rows ([`may_hold`]: the `source_shard` range the writer puts in
//! `add.stats`; files of other writers' shards are skipped, compacted files are read), and
//! partitions held as filters are dropped (re-read in full on next use). A shard never
//! committed (no `txn` in the table: a new stream's shards, the children of a reshard) has
//! no key anywhere, so gaining it costs nothing.

use std::collections::BTreeSet;
use std::ops::Bound;

use schemas::table::SOURCE_SHARD;
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

    /// What an index built for `before` lacks when `self` is held: the keys of the shards
    /// with rows that `before` did not hold, or everything (another stream).
    pub fn gain_over(&self, before: &OwnedShards) -> Gain {
        if self.prefix != before.prefix {
            return Gain::Everything;
        }
        let gained: BTreeSet<String> = (self.shards.iter())
            .filter(|s| !before.shards.contains(*s) && !self.fresh.contains(*s))
            .cloned()
            .collect();
        if gained.is_empty() {
            Gain::Nothing
        } else {
            Gain::Shards(gained)
        }
    }
}

/// What a change of held shards leaves an index without ([`OwnedShards::gain_over`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gain {
    /// Nothing: the same shards, fewer, or only shards never committed.
    Nothing,
    /// The keys of these shards (taken over from another writer, with their ancestors).
    Shards(BTreeSet<String>),
    /// Every key (another stream).
    Everything,
}

/// Whether a data file with these `add.stats` may hold a row that came through one of
/// `shards`: false only when its statistics prove it cannot (every row came through no
/// shard, or the `source_shard` range misses them all). No, unreadable or inconsistent
/// statistics (an older file, another engine's) mean it may. A writer taking over a shard
/// re-reads only such files, not every file of its partitions.
pub fn may_hold(stats: Option<&str>, shards: &BTreeSet<String>) -> bool {
    parse_stats(stats).is_none_or(|v| ShardStats::of(&v).may_hold(shards))
}

/// Which rows of a data file a shard-scoped load keeps, as its `add.stats` tell
/// ([`OwnedShards::kept`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// None: every row came through another writer's shard (the file is not read).
    None,
    /// Every row: one held shard's, or rows of no shard (the file's row count is what the
    /// load keeps).
    All,
    /// Some, or no telling: the file may mix held shards' rows with others' (compacted, or
    /// written by a writer holding several shards), or has no usable statistics.
    Some,
}

impl OwnedShards {
    /// Which rows of a data file with these `add.stats` this writer's load keeps. Loading a
    /// partition reads only files that may hold a kept row, so other writers' files cost no
    /// read (until compaction mixes the shards in one file). And only files kept whole are
    /// counted to size the index: sizing it by every row of mixed files made a writer budget
    /// a compacted partition by every shard's rows, and stream it (re-read it every batch)
    /// once those exceeded the budget (issue 15, `bench/keyscale`). One parse per file for
    /// both answers: a cold start judges every file of the partitions it loads.
    pub fn kept(&self, stats: Option<&str>) -> Kept {
        let Some(v) = parse_stats(stats) else {
            return Kept::Some;
        };
        let s = ShardStats::of(&v);
        if !s.may_have_shardless() && !s.may_hold(&self.shards) {
            Kept::None
        } else if (s.rows.is_some() && s.rows == s.nulls)
            || s.range
                .is_some_and(|(lo, hi)| lo == hi && self.shards.contains(lo))
        {
            Kept::All
        } else {
            Kept::Some
        }
    }

    /// Whether a data file may hold a row whose key this writer holds: one of its shards',
    /// or one that came through no shard ([`Self::kept`] is not [`Kept::None`]).
    pub fn may_hold_file(&self, stats: Option<&str>) -> bool {
        self.kept(stats) != Kept::None
    }

    /// Whether a load keeps every row of a data file ([`Self::kept`] is [`Kept::All`]).
    pub fn keeps_every_row(&self, stats: Option<&str>) -> bool {
        self.kept(stats) == Kept::All
    }
}

/// What a data file's `add.stats` say about the shards its rows came through.
struct ShardStats<'a> {
    rows: Option<i64>,
    /// Rows with a null `source_shard` (came through no shard).
    nulls: Option<i64>,
    /// The `source_shard` min and max.
    range: Option<(&'a str, &'a str)>,
}

/// `add.stats` as JSON; `None` when there are none or they are not JSON.
fn parse_stats(stats: Option<&str>) -> Option<serde_json::Value> {
    stats.and_then(|s| serde_json::from_str(s).ok())
}

impl<'a> ShardStats<'a> {
    fn of(v: &'a serde_json::Value) -> Self {
        let lo = v["minValues"][SOURCE_SHARD].as_str();
        let hi = v["maxValues"][SOURCE_SHARD].as_str();
        ShardStats {
            rows: v["numRecords"].as_i64(),
            nulls: v["nullCount"][SOURCE_SHARD].as_i64(),
            range: lo.zip(hi),
        }
    }

    /// Whether some row may have come through no shard.
    fn may_have_shardless(&self) -> bool {
        self.nulls.is_none_or(|n| n > 0)
    }

    /// Whether a row may have come through one of `shards`.
    fn may_hold(&self, shards: &BTreeSet<String>) -> bool {
        if self.rows.is_some() && self.rows == self.nulls {
            return false; // every row came through no shard (or there is none)
        }
        match self.range {
            // Byte order, as Parquet and Delta compare strings (and `String`'s `Ord`).
            Some((lo, hi)) if lo <= hi => shards
                .range::<str, _>((Bound::Included(lo), Bound::Included(hi)))
                .next()
                .is_some(),
            _ => true,
        }
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
        let b = || Gain::Shards(["b".to_string()].into());
        assert_eq!(two.gain_over(&one), b());
        assert_eq!(
            one.gain_over(&two),
            Gain::Nothing,
            "losing a shard keeps a superset of the keys"
        );
        assert_eq!(one.gain_over(&one.clone()), Gain::Nothing);
        assert_eq!(
            OwnedShards::new("t", ["a"]).gain_over(&one),
            Gain::Everything
        );
        let fresh_b = OwnedShards::new("s", ["a", "b"]).with_fresh(["b"]);
        assert_eq!(
            fresh_b.gain_over(&one),
            Gain::Nothing,
            "a shard never committed has no keys to miss"
        );
        let fresh_a = OwnedShards::new("s", ["a", "b"]).with_fresh(["a"]);
        assert_eq!(fresh_a.gain_over(&one), b(), "b has rows");
    }

    fn stats(rows: i64, nulls: i64, range: Option<(&str, &str)>) -> String {
        let (mins, maxs) = match range {
            Some((lo, hi)) => (
                serde_json::json!({ SOURCE_SHARD: lo, "created_at": 1 }),
                serde_json::json!({ SOURCE_SHARD: hi, "created_at": 2 }),
            ),
            None => (serde_json::json!({}), serde_json::json!({})),
        };
        serde_json::json!({
            "numRecords": rows, "minValues": mins, "maxValues": maxs,
            "nullCount": { SOURCE_SHARD: nulls },
        })
        .to_string()
    }

    #[test]
    fn a_file_may_hold_a_shard_unless_its_statistics_rule_it_out() {
        let shards: BTreeSet<String> = ["shardId-000000000003".to_string()].into();
        let may = |s: Option<&str>| may_hold(s, &shards);
        let range = |lo, hi| stats(10, 0, Some((lo, hi)));
        assert!(may(Some(&range(
            "shardId-000000000003",
            "shardId-000000000003"
        ))));
        assert!(may(Some(&range(
            "shardId-000000000001",
            "shardId-000000000007"
        ))));
        assert!(!may(Some(&range(
            "shardId-000000000004",
            "shardId-000000000007"
        ))));
        assert!(!may(Some(&range(
            "shardId-000000000000",
            "shardId-000000000002"
        ))));
        assert!(
            !may(Some(&stats(10, 10, None))),
            "every row came through no shard"
        );
        assert!(!may(Some(&stats(0, 0, None))), "no rows");
        // What proves nothing: no statistics, none for the column, unparsable, inverted.
        assert!(may(None));
        assert!(may(Some(&stats(10, 3, None))));
        assert!(may(Some("{\"numRecords\": 10}")));
        assert!(may(Some("not json")));
        assert!(may(Some(&range(
            "shardId-000000000009",
            "shardId-000000000001"
        ))));
    }

    proptest::proptest! {
        /// Never rules out a file that holds one of the shards: for any rows (shard or
        /// none), the statistics the writer computes for them never exclude a shard of a row.
        #[test]
        fn never_rules_out_a_file_holding_the_shard(
            rows in proptest::collection::vec(proptest::option::of("[a-z0-9-]{0,8}"), 1..20),
            pick in 0usize..20,
        ) {
            let held: Vec<&String> = rows.iter().flatten().collect();
            let lo = held.iter().min().map(|s| s.as_str());
            let hi = held.iter().max().map(|s| s.as_str());
            let nulls = (rows.len() - held.len()) as i64;
            let st = stats(rows.len() as i64, nulls, lo.zip(hi));
            if let Some(shard) = held.get(pick % held.len().max(1)) {
                let shards: BTreeSet<String> = [shard.to_string()].into();
                proptest::prop_assert!(may_hold(Some(&st), &shards));
                let owned = OwnedShards::new("s", [shard.as_str(), "zz-other"]);
                proptest::prop_assert!(owned.may_hold_file(Some(&st)));
            }
            // A file with a shardless row is always loaded (those keys are always held).
            if nulls > 0 {
                proptest::prop_assert!(OwnedShards::new("s", ["~"]).may_hold_file(Some(&st)));
            }
        }
    }

    #[test]
    fn a_partition_load_skips_files_of_other_shards_only() {
        let owned = OwnedShards::new("s", ["shard-3", "shard-5"]);
        let may = |s: &str| owned.may_hold_file(Some(s));
        assert!(may(&stats(10, 0, Some(("shard-3", "shard-3")))));
        assert!(may(&stats(10, 0, Some(("shard-1", "shard-4")))));
        assert!(
            !may(&stats(10, 0, Some(("shard-6", "shard-9")))),
            "another writer's"
        );
        assert!(!may(&stats(10, 0, Some(("shard-4", "shard-4")))));
        assert!(
            may(&stats(10, 2, Some(("shard-6", "shard-9")))),
            "shardless rows are held"
        );
        assert!(may(&stats(10, 10, None)), "a backfill's file");
        assert!(!may(&stats(0, 0, None)), "no rows");
        assert!(owned.may_hold_file(None), "no statistics");
        assert!(
            may("{\"numRecords\": 10}"),
            "no null count: may be shardless"
        );
    }

    #[test]
    fn only_a_file_of_one_held_shard_or_none_is_kept_whole() {
        let owned = OwnedShards::new("s", ["shard-3", "shard-5"]);
        let keeps = |s: &str| owned.keeps_every_row(Some(s));
        assert!(keeps(&stats(10, 0, Some(("shard-3", "shard-3")))));
        assert!(
            keeps(&stats(10, 4, Some(("shard-5", "shard-5")))),
            "+ shardless"
        );
        assert!(keeps(&stats(10, 10, None)), "a backfill's file");
        assert!(
            !keeps(&stats(10, 0, Some(("shard-3", "shard-5")))),
            "shard-4 may be in between"
        );
        assert!(
            !keeps(&stats(10, 0, Some(("shard-1", "shard-9")))),
            "compacted"
        );
        assert!(!keeps(&stats(10, 0, Some(("shard-4", "shard-4")))));
        assert!(!owned.keeps_every_row(None), "no statistics");
        assert!(!keeps("{\"numRecords\": 10}"));
    }
}
