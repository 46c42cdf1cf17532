"""Issue 4: `writer run` against moto's Kinesis + DynamoDB + S3: leases, exactly-once under
kill -9, scale-out, resharding, graceful shutdown."""
import json
import random
import signal
import time

import pytest

# END_TIME too: test_hardening.py imports the helpers from here.
from kinesis_env import END_TIME, GEN, Env, lines_for, put  # noqa: F401
from s3util import client


def test_multi_shard_exact_with_kpl(writer_bin, moto, tmp_path):
    env = Env(writer_bin, moto, shards=3)
    put(moto, env.stream, 1500, 1, **GEN)
    put(moto, env.stream, 600, 2, kpl_aggregate=10, **GEN)
    summary = env.run_until_idle()
    lines = lines_for(tmp_path, 1500, 1, **GEN) + lines_for(tmp_path, 600, 2, **GEN)
    expected = env.check_exact(lines)
    assert summary["written"] == len(expected)
    assert summary["read"] == summary["written"] + summary["duplicates"] + summary["rejected"]
    # a second run finds nothing new: checkpoints hold
    again = env.run_until_idle(idle="4s")
    assert again["read"] == 0


def test_sigkill_at_random_moments_stays_exact(writer_bin, moto, tmp_path):
    env = Env(writer_bin, moto, shards=2)
    rng = random.Random(7)
    seeds = []
    for i in range(6):
        seed = 100 + i
        seeds.append(seed)
        put(moto, env.stream, 500, seed, **GEN)
        p = env.start("--max-batch-events", "150")
        time.sleep(rng.uniform(1.0, 5.0))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    env.run_until_idle()
    lines = [l for s in seeds for l in lines_for(tmp_path, 500, s, **GEN)]
    env.check_exact(lines)


# `own-shards` (issue 15): each writer holds only its shards' keys and never reads the
# others' files; a takeover gains shards, so the index is re-read for them. Still exact:
# loadgen's copies share a partition key (the event's uuid).
@pytest.mark.parametrize("dedupe_keys", ["all", "own-shards"])
def test_three_instances_share_and_take_over(writer_bin, moto, tmp_path, dedupe_keys):
    env = Env(writer_bin, moto, shards=4)
    put(moto, env.stream, 1200, 11, **GEN)
    procs = [env.start("--writer-id", f"w{i}", "--max-batch-events", "100",
                       "--dedupe-keys", dedupe_keys) for i in range(3)]

    try:
        # Balanced (nobody above the fair share of 2, at least two owners) within a few
        # lease rounds (lease duration 3 s), and it stays balanced.
        deadline, seen = time.time() + 20, None
        while time.time() < deadline:
            seen = env.owners()
            if len([o for o in seen if o]) >= 2 and max(v for o, v in seen.items() if o) <= 2:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"leases never balanced: {seen}")
        time.sleep(4)
        seen = env.owners()
        assert max(v for o, v in seen.items() if o) <= 2, seen
        # The writers holding leases take turns to commit: distinct slots among as many
        # writers as hold leases (issue 15: commits spaced out instead of racing).
        holders = len([o for o, v in seen.items() if o and v])
        slots = {f"w{i}": last_slot(p.log_path) for i, p in enumerate(procs)}
        taken = {w: s for w, s in slots.items() if w in seen and seen[w]}
        assert sorted(r for r, _ in taken.values()) == list(range(holders)), (slots, seen)
        assert {n for _, n in taken.values()} == {holders}, (slots, seen)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=30)
        put(moto, env.stream, 800, 12, **GEN)
        time.sleep(10)  # > lease duration: survivors take the dead worker's shards
        assert "w0" not in env.owners()
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p in procs[1:]:
            p.communicate(timeout=60)
            assert p.returncode == 0, open(p.log_path).read()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    skipped = [last_batch_field(p.log_path, "foreign_commits_skipped") for p in procs]
    if dedupe_keys == "own-shards":
        assert any(s for s in skipped), f"no writer skipped another's commit: {skipped}"
    else:
        assert not any(s for s in skipped), skipped
    env.run_until_idle(idle="4s")
    lines = lines_for(tmp_path, 1200, 11, **GEN) + lines_for(tmp_path, 800, 12, **GEN)
    env.check_exact(lines)


def log_fields(log_path):
    """The fields of each JSON line of a writer's log (other lines skipped)."""
    with open(log_path) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            yield ev.get("fields", ev)


def last_batch_field(log_path, name):
    """`name` of the last `batch committed` line of a writer's JSON log (None: no batch)."""
    value = None
    for fields in log_fields(log_path):
        if fields.get("message") == "batch committed":
            value = fields.get(name)
    return value


def last_slot(log_path):
    """(rank, writers) of the last `commit slot` line of a writer's JSON log, or None."""
    slot = None
    for fields in log_fields(log_path):
        if fields.get("message") == "commit slot":
            slot = (int(fields["rank"]), int(fields["writers"]))
        elif str(fields.get("message", "")).startswith("no commit slot"):
            slot = None
    return slot


def test_split_and_merge_parents_before_children(writer_bin, moto, tmp_path):
    env = Env(writer_bin, moto, shards=2)
    k = client(moto, "kinesis")
    put(moto, env.stream, 600, 21, **GEN)
    shards = k.list_shards(StreamName=env.stream)["Shards"]
    s0 = shards[0]
    lo, hi = int(s0["HashKeyRange"]["StartingHashKey"]), int(s0["HashKeyRange"]["EndingHashKey"])
    k.split_shard(StreamName=env.stream, ShardToSplit=s0["ShardId"], NewStartingHashKey=str((lo + hi) // 2))
    time.sleep(0.5)
    put(moto, env.stream, 600, 22, **GEN)
    open_shards = [s for s in k.list_shards(StreamName=env.stream)["Shards"]
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    open_shards.sort(key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    k.merge_shards(StreamName=env.stream, ShardToMerge=open_shards[0]["ShardId"],
                   AdjacentShardToMerge=open_shards[1]["ShardId"])
    time.sleep(0.5)
    put(moto, env.stream, 600, 23, **GEN)
    env.run_until_idle(idle="8s")
    lines = [l for s in (21, 22, 23) for l in lines_for(tmp_path, 600, s, **GEN)]
    env.check_exact(lines)
    # Parents before children: the first commit carrying a child's records comes after the
    # last commit carrying any of its parents'.
    all_shards = k.list_shards(StreamName=env.stream)["Shards"]
    parents = {s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p] for s in all_shards}
    s3 = client(moto, "s3")
    seen = {}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=env.bucket, Prefix="events/_delta_log/")["Contents"]]
    for key in sorted(k for k in keys if k.endswith(".json") and "/.tmp/" not in k):
        version = int(key.rsplit("/", 1)[1][:20])
        for line in s3.get_object(Bucket=env.bucket, Key=key)["Body"].read().splitlines():
            a = json.loads(line)
            if "commitInfo" in a and "kinesis" in a["commitInfo"]:
                for shard in a["commitInfo"]["kinesis"]["shards"]:
                    seen.setdefault(shard, []).append(version)
    for child, ps in parents.items():
        if child in seen:
            for p in ps:
                if p in seen:
                    assert min(seen[child]) > max(seen[p]), (child, p, seen)


def test_sigterm_exits_cleanly_within_deadline(writer_bin, moto, tmp_path):
    env = Env(writer_bin, moto, shards=2)
    put(moto, env.stream, 800, 31, **GEN)
    p = env.start("--shutdown-deadline", "20s")
    time.sleep(4)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=40)
    assert p.returncode == 0, open(p.log_path).read()[-3000:]
    assert time.time() - t0 < 20
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["exit_reason"] == "signal"
    leases = client(moto, "dynamodb").scan(TableName=env.leases)["Items"]
    assert all("leaseOwner" not in l for l in leases), "leases released"
    env.run_until_idle(idle="4s")
    env.check_exact(lines_for(tmp_path, 800, 31, **GEN))


def test_max_run_time_stops_a_scheduled_run_cleanly(writer_bin, moto, tmp_path):
    """`--max-run-time` (the low-volume profile's cap on a scheduled run): without
    `--exit-when-idle` the writer would run forever; with the cap it stops on its own —
    flushed, leases released, exit 0 — and the next run continues exactly where it stopped."""
    env = Env(writer_bin, moto, shards=2)
    put(moto, env.stream, 400, 41, **GEN)
    t0 = time.time()
    p = env.start("--max-run-time", "5s", "--shutdown-deadline", "20s")
    out, _ = p.communicate(timeout=60)
    elapsed = time.time() - t0
    assert p.returncode == 0, open(p.log_path).read()[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["exit_reason"] == "max run time 5s", summary
    assert 5 <= elapsed < 30, elapsed
    leases = client(moto, "dynamodb").scan(TableName=env.leases)["Items"]
    assert all("leaseOwner" not in l for l in leases), "leases released"
    put(moto, env.stream, 300, 42, **GEN)
    env.run_until_idle(idle="4s")
    env.check_exact(lines_for(tmp_path, 400, 41, **GEN) + lines_for(tmp_path, 300, 42, **GEN))
