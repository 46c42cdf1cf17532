//! Commit slots: writers sharing one table take turns by the wall clock.
//!
//! Every commit is written at exactly the next version; two writers whose commits overlap in
//! time race for it and one must plan again (re-reading the other's keys). With flush
//! deadlines counted from each writer's own last flush, phases drift at random, and the
//! share of commits that conflict is about `2 (N-1) d / T` for N writers, a commit taking
//! `d` from plan to put and a flush interval `T`: the multi-writer benchmark measured 1.43
//! conflicts per commit with 4 writers at a 5 s flush on moto, and at the deployed 30 s
//! flush 8 writers would still conflict on ~half their commits there (~12% on S3).
//!
//! Instead, each writer holding leases takes its rank among all writers holding leases
//! (sorted by worker id: every writer reads the same lease table, so they agree) and
//! flushes when the wall clock reaches its slot: `rank / N` of the way through each slot
//! period, minus its own commit time, so its commit lands as the slot begins. The period is
//! 90% of the flush interval for every writer (the buffer's `SLOT_COMMIT_SHARE`): a record
//! waits at most a period for the next slot, and the rest of the interval is the commit's,
//! so the flush interval stays a bound on freshness. Commits are then `0.9 T / N` apart
//! (3.4 s for 8 writers at 30 s), more than one takes on S3. Clocks need only agree to well within `T / N` (AWS time sync: under a
//! millisecond). While membership changes, writers may briefly disagree on ranks: the
//! result is a conflict or two, never a wrong commit (the version check still decides).
//! A lone writer keeps its own cadence (no slot).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::source::kinesis::lease::Lease;

/// This writer's turn among `of` writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Position among the writers holding leases, sorted by worker id.
    pub rank: usize,
    /// Writers holding leases.
    pub of: usize,
}

impl Slot {
    /// The slot of `me` among the owners of live, unfinished leases (`expired` tells which
    /// have lapsed). `None` when `me` holds none (it commits nothing) or is the only one.
    pub fn among(
        leases: &[Lease],
        me: &str,
        holds_any: bool,
        expired: impl Fn(&Lease) -> bool,
    ) -> Option<Slot> {
        if !holds_any {
            return None;
        }
        let mut owners: BTreeSet<&str> = leases
            .iter()
            .filter(|l| !l.finished() && !expired(l))
            .filter_map(|l| l.owner.as_deref())
            .collect();
        owners.insert(me);
        let rank = owners.iter().position(|o| *o == me)?;
        (owners.len() > 1).then_some(Slot {
            rank,
            of: owners.len(),
        })
    }

    /// The first wall-clock time at or after `since` (nanoseconds since the Unix epoch) when
    /// this slot's flush starts, for slots recurring every `period`, `lead` before the slot
    /// begins (the commit's expected duration, so that the commit lands at the slot).
    pub fn next_start(&self, since: i128, period: Duration, lead: Duration) -> i128 {
        let period = period.as_nanos() as i128;
        if period == 0 || self.of == 0 {
            return since;
        }
        let offset = period * self.rank as i128 / self.of as i128;
        let phase = (offset - lead.as_nanos() as i128).rem_euclid(period);
        since + (phase - since).rem_euclid(period)
    }
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lease(shard: &str, owner: Option<&str>) -> Lease {
        Lease {
            shard: shard.into(),
            owner: owner.map(Into::into),
            counter: 1,
            checkpoint: None,
            checkpoint_txn: None,
            parents: Vec::new(),
        }
    }

    #[test]
    fn writers_agree_on_distinct_ranks_and_lapsed_or_idle_writers_take_none() {
        let leases = vec![
            lease("s0", Some("w-b")),
            lease("s1", Some("w-a")),
            lease("s2", Some("w-b")),
            lease("s3", Some("w-c")),
            lease("s4", None),
            lease("s5", Some("w-gone")),
        ];
        let expired = |l: &Lease| l.owner.as_deref() == Some("w-gone");
        let slot = |me| Slot::among(&leases, me, true, expired);
        assert_eq!(slot("w-a"), Some(Slot { rank: 0, of: 3 }));
        assert_eq!(slot("w-b"), Some(Slot { rank: 1, of: 3 }));
        assert_eq!(slot("w-c"), Some(Slot { rank: 2, of: 3 }));
        // A writer that just took its first lease counts itself before the table says so.
        assert_eq!(slot("w-d"), Some(Slot { rank: 3, of: 4 }));
        // Holding nothing: no commits, no slot. Alone: its own cadence.
        assert_eq!(Slot::among(&leases, "w-a", false, expired), None);
        assert_eq!(
            Slot::among(&[lease("s0", Some("w-a"))], "w-a", true, |_| false),
            None
        );
    }

    #[test]
    fn eight_writers_at_30s_start_3_75s_apart_each_early_by_its_commit_time() {
        let interval = Duration::from_secs(30);
        let lead = Duration::from_millis(500);
        let since = 1_700_000_000_123_456_789i128;
        let starts: Vec<i128> = (0..8)
            .map(|rank| Slot { rank, of: 8 }.next_start(since, interval, lead))
            .collect();
        let mut landed: Vec<i128> = starts
            .iter()
            .map(|s| (s + lead.as_nanos() as i128) % 30_000_000_000)
            .collect();
        landed.sort();
        let expect: Vec<i128> = (0..8).map(|r| r * 3_750_000_000).collect();
        assert_eq!(landed, expect);
    }

    proptest! {
        /// The flush starts within one interval of `since` (freshness), at the slot's phase.
        #[test]
        fn the_next_start_is_within_one_interval_at_the_slot_phase(
            since in 0i128..4_000_000_000_000_000_000,
            interval_ms in 1u64..120_000,
            lead_ms in 0u64..60_000,
            of in 1usize..64,
            rank_seed in any::<usize>(),
        ) {
            let slot = Slot { rank: rank_seed % of, of };
            let interval = Duration::from_millis(interval_ms);
            let lead = Duration::from_millis(lead_ms);
            let start = slot.next_start(since, interval, lead);
            let period = interval.as_nanos() as i128;
            prop_assert!(start >= since && start < since + period);
            let offset = period * slot.rank as i128 / of as i128;
            prop_assert_eq!((start + lead.as_nanos() as i128 - offset).rem_euclid(period), 0);
        }
    }
}
