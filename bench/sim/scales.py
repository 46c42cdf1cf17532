"""The events lake at 1/1000x ... 1000x, simulated (issue 15). Python stdlib only.

1x = 1M events/hour (277.8 events/s), 100 event types (Zipf s=1), partitions
event_type/created_date, 2% of events late (previous 2 days), 313 B of JSON and 88 B of
Parquet per event (BENCHMARKS.md). Latencies: lakesim.AWS (cited / assumed, see scaling.md).

Per scale: the shard count (KPL aggregation assumed from 10x up: 1 MB/s per shard, else
1,000 records/s per shard), the writer count from the writer's CPU cost, a flush interval, then
the simulation gives commits/s, conflict rate, p99 freshness; files/day before and after
compaction are computed from the same batch sizes. The commit ceiling (most commits/s one
table takes through the DynamoDB lock) is found by simulating more and more writers with a
short flush until commits/s stops growing.

Usage: python bench/sim/scales.py [--seed 1] [--out bench/results/sim-scales.json]
"""
import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lakesim  # noqa: E402

X1 = 1_000_000 / 3600.0
TYPES, ZIPF = 100, 1.0
LATE_SHARE, LATE_DAYS = 0.02, 2
TARGET_FILE = 256 * 2**20  # compactor target file size

# Writer CPU cost (CPU-seconds), from BENCHMARKS.md and bench/results/multiwriter-*.json:
# per event (Kinesis decode + validate + dedupe + Parquet) and per commit (sync, S3/DynamoDB
# requests, log entry, checkpoint share). Overridden by --cpu-per-event/--cpu-per-commit.
# BENCHMARKS.md (issue 4, session 3): `writer run`, 1M events, 2 s flush: 85 CPU-s on S3
# (536 commits), 43 on local disk (469 commits); bench/results/multiwriter-local.json: writer
# CPU vs commits over 1-4 writers (60k events) gives ~0.06 CPU-s per local commit, so
# ~15 us per event ((43 - 469 x 0.06) / 1M); on S3 the per-commit cost is then
# (85 - 15) / 536 = 0.13 CPU-s. (`writer ingest` alone: ~7.4 us per event.)
CPU_PER_EVENT = 15e-6
CPU_PER_COMMIT = 0.13
VCPU_PER_TASK = 2
TARGET_UTIL = 0.5  # size writers to run at half their CPU (headroom for catch-up after a restart)
# Batch memory: BENCHMARKS.md `writer ingest` peaks at ~650 MB with two 200k-event batches in
# flight (~1.6 KB per buffered event); keep a batch <= 1M events (~1.6 GB) for a 4 GiB task.
MAX_BATCH = 1_000_000


def shards_for(rate, kpl):
    """Shards at <= 75% of the per-shard write limit (cited: 1 MB/s and 1,000 records/s)."""
    if kpl:
        return max(1, math.ceil(rate * lakesim.EVENT_JSON_BYTES / 1e6 / 0.75))
    return max(1, math.ceil(rate / 1000 / 0.75))


def writers_for(rate, flush, cpu_e, cpu_c):
    """Writer tasks (VCPU_PER_TASK each) so CPU stays under TARGET_UTIL and a batch under
    MAX_BATCH events."""
    w = max(1, math.ceil(rate * flush / MAX_BATCH))
    while True:
        per = rate / w
        cpu = per * cpu_e + (1.0 / flush) * cpu_c  # CPU-s per s of one writer
        if cpu <= VCPU_PER_TASK * TARGET_UTIL or w > 4096:
            return w, cpu
        w += 1


def files_per_day(rate, commits_per_s_writers, files_per_commit):
    before = commits_per_s_writers * 86400 * files_per_commit
    w = lakesim.zipf_weights(TYPES, ZIPF)
    day_bytes = rate * 86400 * lakesim.EVENT_PARQUET_BYTES
    # after compaction (steady state: each partition-day's files merged up to the target size)
    after = sum(math.ceil(day_bytes * (1 - LATE_SHARE) * p / TARGET_FILE) for p in w)
    # late events land in the previous days' partitions; compacted the same way
    after += sum(math.ceil(day_bytes * LATE_SHARE * p / TARGET_FILE) for p in w)
    return round(before), after


def base_cfg(rate, shards, writers, flush, duration, mode):
    return {"rate": rate, "shards": shards, "writers": writers, "flush": flush, "duration": duration,
            "event_types": TYPES, "zipf_s": ZIPF, "late_share": LATE_SHARE, "late_days": LATE_DAYS,
            "poll": 0.2, "mode": mode, "store": "s3", "put_concurrency": 32, "get_concurrency": 32,
            "max_batch_events": 10_000_000, "compact_every": 3600.0 if duration >= 3600 else None,
            "compactor_bytes_per_s": 1e9,  # assumed: partitions compacted in parallel
            "cpu": {"per_event": CPU_PER_EVENT, "per_file": 0.0008, "per_commit": 0.010, "vcpu": VCPU_PER_TASK}}


def ceiling(seed, mode):
    """Commits/s one table takes: writers with a 0.2 s flush and small batches, more of them
    until commits/s stops growing."""
    best, rows = 0.0, []
    for w in (1, 2, 4, 8, 16, 32):
        cfg = base_cfg(100.0 * w, w, w, 0.2, 60.0, mode)
        cfg["event_types"], cfg["zipf_s"] = 10, 0.0
        o = lakesim.simulate(cfg, seed=seed)
        rows.append({"writers": w, "commits_per_s": o["commits_per_s"], "conflict_rate": o["conflict_rate"],
                     "batch_s_p50": o["batch_s_p50"]})
        best = max(best, o["commits_per_s"])
    return best, rows


SCALES = [
    # name, multiple of 1x, flush interval (s), KPL aggregation
    ("1/1000x scheduled", 0.001, 900.0, False),  # a writer every 15 min (--exit-when-idle) ~ a 900 s flush
    ("1/1000x", 0.001, 30.0, False),
    ("1x", 1, 30.0, False),
    ("10x", 10, 30.0, True),
    ("100x", 100, 30.0, True),
    ("1000x", 1000, 45.0, True),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=4200.0, help="simulated seconds per scale (>1 h: one compaction)")
    ap.add_argument("--mode", default="replay", choices=["replay", "rebase"],
                    help="replay: a commit re-reads the keys of other writers' new files (today); "
                         "rebase: shard-aligned key ownership, no key re-reads")
    ap.add_argument("--cpu-per-event", type=float, default=CPU_PER_EVENT)
    ap.add_argument("--cpu-per-commit", type=float, default=CPU_PER_COMMIT)
    ap.add_argument("--flush", help="override flush per scale: comma list of 6 seconds values")
    ap.add_argument("--writers", help="override writer count per scale: comma list of 6")
    ap.add_argument("--only", help="comma list of scale names to run")
    ap.add_argument("--flush-schedule", default="deadline", choices=["deadline", "jitter", "slotted"],
                    help="deadline: today's rule (oldest record + F - commit estimate); jitter: +-10%%; "
                         "slotted: writer i flushes at i*F/W + k*F")
    ap.add_argument("--ceiling", type=float, help="skip the ceiling search, use this value")
    ap.add_argument("--out")
    a = ap.parse_args()
    ceil_s3, ceil_rows = ceiling(a.seed, a.mode) if not a.ceiling else (a.ceiling, [])
    rows = []
    flushes = [float(x) for x in a.flush.split(",")] if a.flush else None
    wover = [int(x) for x in a.writers.split(",")] if a.writers else None
    for i, (name, mult, flush, kpl) in enumerate(SCALES):
        if a.only and name not in a.only.split(","):
            continue
        rate = X1 * mult
        if flushes:
            flush = flushes[i]
        shards = shards_for(rate, kpl)
        writers, cpu = writers_for(rate, flush, a.cpu_per_event, a.cpu_per_commit)
        if wover:
            writers = wover[i]
            cpu = rate / writers * a.cpu_per_event + a.cpu_per_commit / flush
        writers = min(writers, shards) if shards >= writers else shards
        cfg = base_cfg(rate, shards, writers, flush, max(a.duration, 4 * flush), a.mode)
        cfg["cpu"]["per_event"] = a.cpu_per_event
        cfg["cpu"]["vcpu"] = VCPU_PER_TASK
        cfg["max_batch_events"] = MAX_BATCH
        cfg["flush_schedule"] = a.flush_schedule
        o = lakesim.simulate(cfg, seed=a.seed)
        before, after = files_per_day(rate, o["writer_commits_per_s"], o["files_per_commit"])
        row = {
            "scale": name, "events_per_s": round(rate, 3), "kpl": kpl, "shards": shards,
            "shards_without_kpl": shards_for(rate, False), "writers": writers,
            "writer_vcpu": VCPU_PER_TASK, "writer_cpu_used_vcpu": round(cpu, 2),
            "flush_s": flush, "commits_per_s": o["commits_per_s"], "conflict_rate": o["conflict_rate"],
            "compactions": o["compactions"], "compactor_conflicts": o["compactor_conflicts"],
            "events_committed_per_s": o["events_committed_per_s"],
            "freshness_p50_s": o["freshness_p50_s"], "freshness_p99_s": o["freshness_p99_s"],
            "freshness_ok": o["freshness_p99_s"] is not None and o["freshness_p99_s"] <= 2 * flush,
            "batch_events_mean": o["batch_events_mean"], "batch_s_p50": o["batch_s_p50"],
            "batch_s_p99": o["batch_s_p99"],
            "batch_raw_mb": round(o["batch_events_mean"] * lakesim.EVENT_JSON_BYTES / 1e6, 1),
            "files_per_commit": o["files_per_commit"], "files_per_day_before": before, "files_per_day_after": after,
            "ceiling_commits_per_s": round(ceil_s3, 2),
            "commit_share_of_ceiling": round(o["commits_per_s"] / ceil_s3, 3) if ceil_s3 else None,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"seed": a.seed, "mode": a.mode, "flush_schedule": a.flush_schedule, "duration_s": a.duration, "cpu_per_event": a.cpu_per_event,
              "cpu_per_commit": a.cpu_per_commit, "ceiling": ceil_rows, "scales": rows, "latency_model": lakesim.AWS}
    print("\n| scale | events/s | shards (KPL) / without | writers x vCPU | flush s | commits/s | conflict rate | "
          "p99 freshness s | files/day before | after | commits / ceiling |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']} | {r['events_per_s']:,} | {r['shards']}{' (KPL)' if r['kpl'] else ''} / "
              f"{r['shards_without_kpl']} | {r['writers']} x {r['writer_vcpu']} | {r['flush_s']:g} | "
              f"{r['commits_per_s']} | {r['conflict_rate']} | {r['freshness_p99_s']} | {r['files_per_day_before']:,} | "
              f"{r['files_per_day_after']:,} | {r['commit_share_of_ceiling']} |")
    print(f"\nceiling (simulated, AWS latencies, mode {a.mode}): {ceil_s3:.2f} commits/s; {ceil_rows}")
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
