//! Shard leases in DynamoDB, after the KCL's design.
//!
//! One item per shard (`leaseKey` = shard id) with `leaseOwner`, `leaseCounter`, the
//! committed `checkpoint` (a sequence number, `SHARD_END`, or an initial position) with the
//! Delta transaction version it corresponds to (`checkpointTxn`), and `parentShardIds`.
//! (No write-ahead checkpoint: the Delta commit carries the position, so the lease's
//! checkpoint is only a cache of it; see [`crate::service`].)
//!
//! Every write is conditional. An owner renews by bumping `leaseCounter` on condition it is
//! still the owner with the counter it last saw; a lease whose counter has not moved for a
//! lease duration (as observed locally, so clocks never matter) is expired and may be taken
//! by bumping the counter it was seen with. A worker that loses a lease finds out at its next
//! conditional write and stops; the Delta `txn` check at commit time (see
//! [`crate::service`]) fences it even if it is paused in between.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

pub const ATTR_KEY: &str = "leaseKey";
pub const CHECKPOINT_SHARD_END: &str = "SHARD_END";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease table {table}: {step}: {message}")]
    Aws {
        table: String,
        step: &'static str,
        message: String,
    },
    /// A conditional write failed: someone else owns the lease now.
    #[error("lease for shard {shard} lost")]
    Lost { shard: String },
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard id (`leaseKey`).
    pub shard: String,
    /// The worker holding it (`leaseOwner`; `None`: free).
    pub owner: Option<String>,
    /// Bumped by every take, renewal and release (`leaseCounter`); writes are conditional
    /// on it.
    pub counter: i64,
    /// A sequence number, `SHARD_END`, or an initial position (`checkpoint`).
    pub checkpoint: Option<String>,
    /// The shard's Delta `txn` version the checkpoint corresponds to (`checkpointTxn`).
    pub checkpoint_txn: Option<i64>,
    /// Shards this one was split or merged from (`parentShardIds`): read after them.
    pub parents: Vec<String>,
}

impl Lease {
    pub fn finished(&self) -> bool {
        self.checkpoint.as_deref() == Some(CHECKPOINT_SHARD_END)
    }
}

/// This worker's view of the lease table: the conditional writes, and the counters it has
/// watched (expiry is judged by observation, never by comparing clocks).
pub struct LeaseTable {
    /// DynamoDB client every lease read and conditional write goes through.
    client: Client,
    /// The DynamoDB table name.
    table: String,
    /// This worker's id (`--writer-id`), written as `leaseOwner`.
    worker: String,
    /// The lease duration: a counter that stood still this long is expired.
    duration: Duration,
    /// Counter last seen per shard and when it last changed (local clock only).
    seen: HashMap<String, (i64, Instant)>,
    /// When each lease was first listed: a lease watched for less than a lease duration
    /// cannot be told apart from a live one yet (see [`LeaseTable::watched`]).
    first_seen: HashMap<String, Instant>,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl LeaseTable {
    pub fn new(client: Client, table: String, worker: String, duration: Duration) -> Self {
        LeaseTable {
            client,
            table,
            worker,
            duration,
            seen: HashMap::new(),
            first_seen: HashMap::new(),
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn aws<E: std::error::Error + 'static>(&self, step: &'static str, e: E) -> LeaseError {
        LeaseError::Aws {
            table: self.table.clone(),
            step,
            message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
        }
    }

    fn conditional<E>(
        &self,
        shard: &str,
        step: &'static str,
        e: aws_sdk_dynamodb::error::SdkError<E>,
    ) -> LeaseError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") {
            LeaseError::Lost {
                shard: shard.to_string(),
            }
        } else {
            self.aws(step, e)
        }
    }

    /// Create the table if needed (on-demand billing, `leaseKey` hash key).
    pub async fn ensure(&self) -> Result<(), LeaseError> {
        storage::aws::ensure_table(&self.client, &self.table, ATTR_KEY, None, None)
            .await
            .map(|_| ())
            .map_err(|e| LeaseError::Aws {
                table: self.table.clone(),
                step: "create lease table",
                message: e.to_string(),
            })
    }

    /// Create a lease for a newly discovered shard (no-op when it exists).
    pub async fn create(
        &self,
        shard: &str,
        parents: &[String],
        initial: &str,
    ) -> Result<(), LeaseError> {
        let mut item = HashMap::from([
            (ATTR_KEY.to_string(), s(shard)),
            ("leaseCounter".to_string(), n(0)),
            ("checkpoint".to_string(), s(initial)),
        ]);
        if !parents.is_empty() {
            item.insert(
                "parentShardIds".into(),
                AttributeValue::L(parents.iter().map(|p| s(p)).collect()),
            );
        }
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(leaseKey)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.aws("create lease", e)),
        }
    }

    /// All leases (consistent scan), updating the local view of which counters move.
    pub async fn list(&mut self) -> Result<Vec<Lease>, LeaseError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.aws("scan leases", e))?;
            out.extend(page.items().iter().filter_map(parse));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let now = Instant::now();
        for l in &out {
            self.first_seen.entry(l.shard.clone()).or_insert(now);
            match self.seen.get(&l.shard) {
                Some((c, _)) if *c == l.counter => {}
                _ => {
                    self.seen.insert(l.shard.clone(), (l.counter, now));
                }
            }
        }
        Ok(out)
    }

    /// Whether this worker has watched `l` for longer than a lease duration, so that
    /// [`Self::expired`] is a verdict: a dead owner's lease then shows as expired.
    pub fn watched(&self, l: &Lease) -> bool {
        self.first_seen
            .get(&l.shard)
            .is_some_and(|t| t.elapsed() > self.duration)
    }

    /// Unowned, or owned but not renewed for a lease duration.
    pub fn expired(&self, l: &Lease) -> bool {
        match &l.owner {
            None => true,
            Some(_) => self
                .seen
                .get(&l.shard)
                .is_none_or(|(_, since)| since.elapsed() > self.duration),
        }
    }

    /// Take a lease seen with `counter` (expired, unowned, or stolen).
    pub async fn take(&mut self, shard: &str, counter: i64) -> Result<i64, LeaseError> {
        self.bump_counter(
            shard,
            counter,
            "SET leaseOwner = :me, leaseCounter = :next",
            "leaseCounter = :seen",
            "take lease",
        )
        .await?;
        self.seen
            .insert(shard.to_string(), (counter + 1, Instant::now()));
        Ok(counter + 1)
    }

    /// Renew an owned lease; returns the new counter.
    pub async fn renew(&mut self, shard: &str, counter: i64) -> Result<i64, LeaseError> {
        self.bump_counter(
            shard,
            counter,
            "SET leaseCounter = :next",
            "leaseOwner = :me AND leaseCounter = :seen",
            "renew lease",
        )
        .await?;
        self.seen
            .insert(shard.to_string(), (counter + 1, Instant::now()));
        Ok(counter + 1)
    }

    /// After the Delta commit: move the checkpoint.
    pub async fn checkpoint(
        &self,
        shard: &str,
        sequence: &str,
        txn: i64,
    ) -> Result<(), LeaseError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_KEY, s(shard))
            // REMOVE: attributes an earlier version of the writer kept (write-ahead
            // checkpoints); gone after the first checkpoint.
            .update_expression(
                "SET checkpoint = :c, checkpointTxn = :t REMOVE pendingCheckpoint, pendingTxn",
            )
            .condition_expression("leaseOwner = :me")
            .expression_attribute_values(":me", s(&self.worker))
            .expression_attribute_values(":c", s(sequence))
            .expression_attribute_values(":t", n(txn))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.conditional(shard, "checkpoint", e))
    }

    /// Give a lease back (graceful shutdown): others may take it at once.
    pub async fn release(&mut self, shard: &str, counter: i64) -> Result<(), LeaseError> {
        self.bump_counter(
            shard,
            counter,
            "REMOVE leaseOwner SET leaseCounter = :next",
            "leaseOwner = :me AND leaseCounter = :seen",
            "release lease",
        )
        .await
    }

    /// The one write behind take, renew and release: `update` on condition `condition`,
    /// with `:me` = this worker, `:seen` = `counter` (the counter this worker last saw) and
    /// `:next` = `counter + 1`. A failed condition is [`LeaseError::Lost`].
    async fn bump_counter(
        &self,
        shard: &str,
        counter: i64,
        update: &str,
        condition: &str,
        step: &'static str,
    ) -> Result<(), LeaseError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_KEY, s(shard))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_values(":me", s(&self.worker))
            .expression_attribute_values(":next", n(counter + 1))
            .expression_attribute_values(":seen", n(counter))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.conditional(shard, step, e))
    }
}

fn parse(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    let gs = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let gn = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
    };
    Some(Lease {
        shard: gs(ATTR_KEY)?,
        owner: gs("leaseOwner"),
        counter: gn("leaseCounter").unwrap_or(0),
        checkpoint: gs("checkpoint"),
        checkpoint_txn: gn("checkpointTxn"),
        parents: item
            .get("parentShardIds")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
    })
}

/// Which leases this worker should take: a fair share of the unfinished ones whose parents
/// are finished. Pure, so it is unit-tested apart from DynamoDB.
///
/// `held` are the shards this worker is actually reading. A lease that names this worker as
/// owner but is not in `held` is an *orphan*: the worker stopped reading it after a transient
/// error (a failed scan, a renew whose reply was lost) without being able to give it back.
/// Nobody else takes it until it expires, and this worker would never take it again, so it
/// is taken back at once, whatever the fair share says: a shard this worker owns is always
/// either read or given back.
pub fn plan(
    leases: &[Lease],
    me: &str,
    held: &HashSet<&str>,
    expired: impl Fn(&Lease) -> bool,
) -> Plan {
    let active = ready(leases);
    let mine = |l: &Lease| l.owner.as_deref() == Some(me);
    let mut per_owner: HashMap<&str, usize> = HashMap::new();
    per_owner.insert(me, 0);
    for l in &active {
        // Ours count only when actually read (orphans are taken back below); others' only
        // while alive.
        let Some(o) = l.owner.as_deref() else {
            continue;
        };
        let counts = if o == me {
            held.contains(l.shard.as_str())
        } else {
            !expired(l)
        };
        if counts {
            *per_owner.entry(o).or_default() += 1;
        }
    }
    let workers = per_owner.len().max(1);
    let target = active.len().div_ceil(workers);
    let held_count = per_owner.get(me).copied().unwrap_or(0);
    let mut take: Vec<(String, i64)> = active
        .iter()
        .filter(|l| mine(l) && !held.contains(l.shard.as_str()))
        .map(|l| (l.shard.clone(), l.counter))
        .collect();
    let count = held_count + take.len();
    if count < target {
        let want = target - count;
        let before = take.len();
        take.extend(
            active
                .iter()
                .filter(|l| !mine(l) && expired(l))
                .take(want)
                .map(|l| (l.shard.clone(), l.counter)),
        );
        if take.len() == before {
            // Steal one from the most loaded worker when it holds at least two more than we
            // would (then the move shrinks the spread, and a balanced table, every worker
            // within one shard of the others, never thrashes). "More than its share" alone
            // is not enough: workers holding nothing are invisible to the others, so with 8
            // shards, 4 workers at 2 each and 4 idle, nobody exceeded ceil(8/5) = 2 and the
            // idle ones stayed idle.
            if let Some((victim, victim_count)) = per_owner
                .iter()
                .filter(|(o, _)| **o != me)
                .max_by_key(|(_, c)| **c)
                && *victim_count >= count + 2
                && let Some(l) = active.iter().find(|l| l.owner.as_deref() == Some(victim))
            {
                take.push((l.shard.clone(), l.counter));
            }
        }
    }
    Plan { take, target }
}

/// Unfinished leases whose parents are finished (or unknown): the shards that can be read.
pub fn ready(leases: &[Lease]) -> Vec<&Lease> {
    let finished: HashSet<&str> = leases
        .iter()
        .filter(|l| l.finished())
        .map(|l| l.shard.as_str())
        .collect();
    let known: HashSet<&str> = leases.iter().map(|l| l.shard.as_str()).collect();
    leases
        .iter()
        .filter(|l| {
            !l.finished()
                && l.parents
                    .iter()
                    .all(|p| finished.contains(p.as_str()) || !known.contains(p.as_str()))
        })
        .collect()
}

/// Readable shards nobody is reading: unowned, held by an expired lease, or owned by `me`
/// but not in `held` (orphans). Zero is the condition for `--exit-when-idle` to stop, and
/// the value operators alarm on (`events_lake_shards_unread`).
pub fn unread<'a>(
    leases: &'a [Lease],
    me: &str,
    held: &HashSet<&str>,
    expired: impl Fn(&Lease) -> bool,
) -> Vec<&'a Lease> {
    ready(leases)
        .into_iter()
        .filter(|l| match l.owner.as_deref() {
            None => true,
            Some(o) if o == me => !held.contains(l.shard.as_str()),
            Some(_) => expired(l),
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// (shard, counter seen) to take.
    pub take: Vec<(String, i64)>,
    /// This worker's fair share of the readable shards.
    pub target: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: &str, owner: Option<&str>, parents: &[&str], done: bool) -> Lease {
        Lease {
            shard: shard.into(),
            owner: owner.map(String::from),
            counter: 1,
            checkpoint: Some(
                if done {
                    CHECKPOINT_SHARD_END
                } else {
                    "TRIM_HORIZON"
                }
                .into(),
            ),
            checkpoint_txn: None,
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn takes_fair_share_of_unowned() {
        let leases: Vec<Lease> = (0..4)
            .map(|i| lease(&format!("s{i}"), None, &[], false))
            .collect();
        let p = plan(&leases, "me", &HashSet::new(), |l| l.owner.is_none());
        assert_eq!(p.take.len(), 4);
        let mut leases = leases;
        leases[0].owner = Some("other".into());
        leases[1].owner = Some("other".into());
        let p = plan(&leases, "me", &HashSet::new(), |l| l.owner.is_none());
        assert_eq!(p.target, 2);
        assert_eq!(p.take.len(), 2);
    }

    #[test]
    fn children_wait_for_parents() {
        let leases = vec![
            lease("parent", Some("x"), &[], false),
            lease("child", None, &["parent"], false),
        ];
        let p = plan(&leases, "me", &HashSet::new(), |l| l.owner.is_none());
        assert!(p.take.iter().all(|(s, _)| s != "child"));
        let leases = vec![
            lease("parent", None, &[], true),
            lease("child", None, &["parent"], false),
        ];
        let p = plan(&leases, "me", &HashSet::new(), |l| l.owner.is_none());
        assert_eq!(p.take, vec![("child".to_string(), 1)]);
    }

    #[test]
    fn steals_from_overloaded_worker() {
        let leases: Vec<Lease> = (0..4)
            .map(|i| lease(&format!("s{i}"), Some("other"), &[], false))
            .collect();
        let p = plan(&leases, "me", &HashSet::new(), |_| false);
        assert_eq!(p.target, 2);
        assert_eq!(p.take.len(), 1);
    }

    #[test]
    fn an_idle_worker_steals_when_its_peers_hold_exactly_their_share() {
        // 8 shards, 4 workers with 2 each, a fifth with none: its share is ceil(8/5) = 2,
        // nobody holds more than that, yet it holds 2 fewer than they do (issue 15: 8
        // writers on 8 shards left 4 of them idle).
        let leases: Vec<Lease> = (0..8)
            .map(|i| {
                lease(
                    &format!("s{i}"),
                    Some(format!("w{}", i / 2).as_str()),
                    &[],
                    false,
                )
            })
            .collect();
        let p = plan(&leases, "me", &HashSet::new(), |_| false);
        assert_eq!(p.target, 2);
        assert_eq!(p.take.len(), 1);
        // One apart is balanced: no steal (it would only move the imbalance around).
        let mut leases = leases;
        leases[7].owner = Some("me".into());
        let held: HashSet<&str> = ["s7"].into_iter().collect();
        let p = plan(&leases, "me", &held, |_| false);
        assert!(p.take.is_empty(), "{p:?}");
    }

    proptest::proptest! {
        /// Lease rounds of every worker, from any start, end with every worker holding its
        /// share to within one shard, and then nothing moves (no thrashing).
        #[test]
        fn lease_rounds_converge_to_an_even_spread_and_stay_there(
            owners in proptest::collection::vec(proptest::option::of(0usize..12), 1..40),
            workers in 1usize..12,
        ) {
            let name = |w: usize| format!("w{w}");
            let mut leases: Vec<Lease> = owners
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let owner = o.filter(|&w| w < workers).map(name);
                    lease(&format!("s{i}"), owner.as_deref(), &[], false)
                })
                .collect();
            let round = |leases: &mut Vec<Lease>| {
                let mut moved = false;
                for w in (0..workers).map(name) {
                    let held: HashSet<String> = leases
                        .iter()
                        .filter(|l| l.owner.as_deref() == Some(w.as_str()))
                        .map(|l| l.shard.clone())
                        .collect();
                    let held: HashSet<&str> = held.iter().map(String::as_str).collect();
                    let p = plan(leases, &w, &held, |l| l.owner.is_none());
                    for (shard, _) in p.take {
                        if let Some(l) = leases.iter_mut().find(|l| l.shard == shard) {
                            moved |= l.owner.as_deref() != Some(w.as_str());
                            l.owner = Some(w.clone());
                            l.counter += 1;
                        }
                    }
                }
                moved
            };
            let mut rounds = 0;
            while round(&mut leases) {
                rounds += 1;
                proptest::prop_assert!(rounds <= leases.len() * workers, "no convergence");
            }
            let counts: Vec<usize> = (0..workers)
                .map(|w| leases.iter().filter(|l| l.owner == Some(name(w))).count())
                .collect();
            proptest::prop_assert!(leases.iter().all(|l| l.owner.is_some()));
            let (min, max) = (counts.iter().min(), counts.iter().max());
            proptest::prop_assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{counts:?}");
            proptest::prop_assert!(!round(&mut leases), "moved after converging");
        }
    }

    #[test]
    fn orphans_of_mine_are_taken_back_at_once_and_count_as_unread() {
        // Four shards; I read s0 and s1, but the table still names me owner of s2 (I stopped
        // reading it after a transient error). Another live worker holds s3.
        let mut leases: Vec<Lease> = (0..4)
            .map(|i| lease(&format!("s{i}"), Some("me"), &[], false))
            .collect();
        leases[3].owner = Some("other".into());
        let held: HashSet<&str> = ["s0", "s1"].into_iter().collect();
        let p = plan(&leases, "me", &held, |_| false);
        assert_eq!(p.take, vec![("s2".to_string(), 1)]);
        let unread_now: Vec<&str> = unread(&leases, "me", &held, |_| false)
            .iter()
            .map(|l| l.shard.as_str())
            .collect();
        assert_eq!(unread_now, vec!["s2"]);
        // Once read again, nothing is unread; an expired peer's lease is.
        let held: HashSet<&str> = ["s0", "s1", "s2"].into_iter().collect();
        assert!(unread(&leases, "me", &held, |_| false).is_empty());
        let expired_peer = unread(&leases, "me", &held, |l| {
            l.owner.as_deref() == Some("other")
        });
        assert_eq!(expired_peer.len(), 1);
    }

    #[test]
    fn unowned_and_expired_are_unread_but_children_of_unfinished_parents_are_not() {
        let leases = vec![
            lease("parent", None, &[], false),
            lease("child", None, &["parent"], false),
            lease("done", None, &[], true),
        ];
        let unread_now: Vec<&str> = unread(&leases, "me", &HashSet::new(), |_| true)
            .iter()
            .map(|l| l.shard.as_str())
            .collect();
        assert_eq!(unread_now, vec!["parent"]);
    }
}
