"""Validate bench/sim/lakesim.py against bench/multiwriter.py measurements (issue 15).

For each store (s3 = moto S3 + DynamoDB lock, local = local disk): the per-phase service
times of one commit are taken from the measured 1-writer run only (bootstrap over its
`append phases`: sync, dedupe, write_files, log-entry write; prepare = batch time - append
time), and the simulation predicts the 2-, 4- and 8-writer runs. Nothing from those runs is
used except their configuration (writers, shards, rate, flush interval, duration).

Machine contention (2 cores shared by the writers and the emulators) is predicted from the
1-writer run too: its CPU seconds give a per-commit and a per-event CPU cost; with N writers
the utilisation rho(N) grows with the commit rate, and every phase is stretched by
(1 - rho(1)) / (1 - rho(N)) (processor sharing). `--no-contention` turns that off.

Usage: python bench/sim/validate.py [--seed 1] [--results bench/results] [--out FILE]
"""
import argparse
import json
import pathlib
import random
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lakesim  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
INGEST_CPU_PER_EVENT = 7.0e-6  # BENCHMARKS.md: `writer ingest` ~7 user CPU-s per 1M events


class Fitted:
    """Per-phase service times bootstrapped from a 1-writer run."""

    def __init__(self, run1, store, contention=True):
        self.store = store
        apps = [a for a in run1["appends"] if a["conflicts"] == 0 and a["total_ms"] is not None]
        self.samples = apps
        med = lambda k: statistics.median(a[k] for a in apps) / 1000.0  # noqa: E731
        self.prepare = max(0.0, run1["batch_ms_p50"] / 1000.0 - med("total_ms"))
        # write_files = a + b * files (least squares over the run's appends)
        xs = [a["files"] for a in apps]
        ys = [a["write_files_ms"] / 1000.0 for a in apps]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        vx = sum((x - mx) ** 2 for x in xs)
        self.wf_slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / vx) if vx > 0 else 0.0
        # one small-object request against the store (the 1-writer sync is one probe + a 404)
        self.get = max(0.0005, med("sync_ms"))
        self.files_per_commit = statistics.fmean(xs)
        # CPU: the 1-writer run's writer + emulator CPU split into per-event and per-commit
        cpu = run1["cpu_seconds"]
        wall = run1["put_seconds"] + run1["drain_seconds"]
        writer_cpu = sum(v for k, v in cpu.items() if k.startswith("w"))
        moto_cpu = cpu.get("moto", 0.0) if store == "s3" else 0.0
        events = run1["events_put"]
        commits = run1["commits"]
        self.cpu_per_commit = max(0.0, (writer_cpu - INGEST_CPU_PER_EVENT * events) + moto_cpu) / commits
        self.base_cpu_rate = sum(cpu.values()) / wall  # CPU-s per s at N=1
        self.moto_per_commit = cpu.get("moto", 0.0) / commits
        self.rho1 = min(0.95, run1["commits_per_sec_steady"] * self.moto_per_commit) if store == "s3" else 0.0
        self.commit_rate1 = run1["commits_per_sec_steady"]
        self.contention = contention
        self.k = 1.0
        self.rng = random.Random(0)
        # a foreign version: GET its log entry, then the key column of each of its files, one
        # partition after the other (read_added): one small GET each
        self.per_version = self.get
        self.per_file_replay = self.get
        # after a conflict the sync LISTs `_delta_log` (get_latest_version): on moto a LIST scans
        # every key of the bucket (bench/results/multiwriter-moto-probe.json); local: a readdir
        self.list_a, self.list_b = (0.0, 0.0)
        self.moto_get = 0.0
        probe = ROOT / "bench" / "results" / "multiwriter-moto-probe.json"
        if store == "s3" and probe.exists():
            pts = json.loads(probe.read_text())
            self.moto_get = statistics.median(p["get_ms"] for p in pts) / 1000.0
            xs = [p["bucket_keys"] for p in pts]
            ys = [p["list_ms"] / 1000.0 for p in pts]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            self.list_b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            self.list_a = my - self.list_b * mx

    def list_cost(self, table):
        keys = sum(table.files_added.values()) + table.claimed
        return (self.list_a + self.list_b * keys) * self.k

    def set_writers(self, n, commit_rate_guess, files_per_foreign_commit):
        """Stretch factor for n writers committing `commit_rate_guess` commits/s in all.

        s3: moto (one Python process) serves every S3 and DynamoDB request; its CPU per
        commit at N=1 (`moto_per_commit`) plus, with n writers, the GETs each of the n-1
        others makes to replay the commit (key column of each file, one GET each, moto's
        cost of one small GET from the probe) give its utilisation rho; phases stretch by
        (1 - rho1) / (1 - rho) (processor sharing). local: no shared emulator on the path."""
        if not self.contention or self.store != "s3":
            self.k = 1.0
            return
        demand = self.moto_per_commit + (n - 1) * (1 + files_per_foreign_commit) * self.moto_get
        rho = min(0.97, commit_rate_guess * demand)
        self.k = (1 - self.rho1) / (1 - rho)

    def sample_phases(self, events, cfg):
        a = self.rng.choice(self.samples)
        files = max(1.0, lakesim.expected_partitions(events, cfg["type_weights"], cfg["late_share"],
                                                      cfg["late_days"], cfg["ontime_dates"]))
        s = lambda k: a[k] / 1000.0  # noqa: E731
        wf = max(0.2 * s("write_files_ms"), s("write_files_ms") + self.wf_slope * (files - a["files"]))
        commit = s("commit_ms")
        # DynamoDB protocol: HEAD, GetItem, PUT temp, PutItem (claim) | COPY (visible), PutItem, DELETE
        pre, post = (0.55, 0.30) if self.store == "s3" else (1.0, 0.0)
        k = self.k
        return {
            "prepare": self.prepare * k,
            "sync": s("sync_ms") * k,
            "sync_retry": (s("sync_ms") + self.get) * k,  # a LIST after a conflict
            "dedupe": s("dedupe_ms") * k,
            "dedupe_retry": s("dedupe_ms") * k,
            "write_files": wf * k,
            "commit_pre": commit * pre * k,
            "commit_post": commit * post * k,
        }


def sim_config(run, duration=None):
    return {
        "writers": run["writers"], "shards": run["shards"], "rate": run["rate"],
        "flush": float(run["flush_interval"].rstrip("s")), "duration": duration or run["put_seconds"],
        "drain": run["drain_seconds"],
        "start_spread": 0.0,  # the benchmark starts every writer before the first put
        "warmup": 10.0, "poll": 0.2, "event_types": 10, "zipf_s": 0.0, "late_share": 0.05, "late_days": 3,
        "ontime_dates": 2, "store": run["store"], "explicit_arrivals": False,
        # loadgen --rate: one PutRecords of 500 records every 500/rate s (loadgen/src/kinesis.rs)
        "burst_period": 500.0 / run["rate"],
        # (delay d, share q): kinesalite is one thread; a reader whose GetRecords was queued
        # behind the 500-record put (share q) gets the burst when the put is done (d after
        # it); the others are asleep (poll interval) and get it at their next poll
        "burst_receipt": (0.15, 0.75),
    }


def predict(run, fitted, seed, reps=3, receipt=None, smooth=False):
    """Mean over `reps` seeds of the simulated commits/s and conflict rate. `smooth`: the
    same run with arrivals spread evenly (many producers) instead of loadgen's bursts."""
    cfg = sim_config(run)
    if smooth:
        cfg.pop("burst_period")
    if receipt:
        cfg["burst_receipt"] = receipt
    # the shards each writer held when the load started (the lease protocol's outcome is
    # part of the configuration; the simulation does not model lease balancing)
    owners = {o: c for o, c in (run.get("lease_owners_at_first_put") or {}).items() if o and o != "None"}
    if owners and sum(owners.values()) == run["shards"]:
        cfg["shard_split"] = sorted(owners.values(), reverse=True)
    # contention depends on the commit rate, which depends on contention: the fixed point
    # commits/s = sim(stretch(commits/s)), by bisection (sim(g) - g falls as g grows)
    n = len(cfg.get("shard_split") or [0] * run["writers"])

    def run_at(guess):
        per_writer = run["rate"] / n / max(0.05, guess / n)
        files = lakesim.expected_partitions(per_writer, [0.1] * 10, 0.05, 3, 2)
        fitted.set_writers(n, guess, files)
        return [lakesim.simulate(cfg, seed=seed + r, fitted=fitted) for r in range(reps)]

    lo, hi = 0.02, 2.0 * n * max(fitted.commit_rate1, 0.1)
    outs = run_at(hi)
    if fitted.store == "s3" and fitted.contention:
        for _ in range(8):
            mid = (lo + hi) / 2
            outs = run_at(mid)
            got = statistics.fmean(o["commits_per_s"] for o in outs)
            if got > mid:
                lo = mid
            else:
                hi = mid
        outs = run_at((lo + hi) / 2)
    return {
        "commits_per_s": round(statistics.fmean(o["commits_per_s"] for o in outs), 3),
        "conflict_rate": round(statistics.fmean(o["conflict_rate"] for o in outs), 4),
        "batch_s_p50": round(statistics.fmean(o["batch_s_p50"] for o in outs), 3),
        "oldest_freshness_p50_s": round(statistics.fmean(o["oldest_freshness_p50_s"] for o in outs), 3),
        "oldest_freshness_p99_s": round(statistics.fmean(o["oldest_freshness_p99_s"] for o in outs), 3),
        "active_writers": n,
        "stretch": round(fitted.k, 3),
    }


def fit_receipt(run1, fitted, seed):
    """When a burst reaches the writer (delay after the put, and spread over the shards):
    chosen on the 1-writer run alone, so that the simulated batch freshness (commit visible -
    oldest record) matches its measured p50 and p99."""
    want = (run1["freshness_ms_p50"] / 1000.0, run1["freshness_ms_p99"] / 1000.0)
    best = None
    for d in (0.0, 0.05, 0.1, 0.15):
        for q in (0.5, 0.75, 0.9, 1.0):
            p = predict(run1, fitted, seed, reps=2, receipt=(d, q))
            err = (abs(p["oldest_freshness_p50_s"] - want[0]) + abs(p["oldest_freshness_p99_s"] - want[1])
                   + abs(p["commits_per_s"] / run1["commits_per_sec_steady"] - 1))
            if best is None or err < best[0]:
                best = (err, (d, q))
    return best[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--stores", default="s3,local")
    ap.add_argument("--no-contention", action="store_true")
    ap.add_argument("--extra", default="-flush5s",
                    help="also predict bench/results/multiwriter-<store><EXTRA>.json (other flush intervals) "
                         "from the same 1-writer fit")
    ap.add_argument("--smooth", action="store_true", help="also simulate each run with smooth arrivals")
    ap.add_argument("--out")
    a = ap.parse_args()
    rows = []
    for store in a.stores.split(","):
        path = pathlib.Path(a.results) / f"multiwriter-{store}.json"
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            continue
        runs = {r["writers"]: r for r in json.loads(path.read_text())["runs"]}
        if 1 not in runs:
            continue
        fitted = Fitted(runs[1], store, contention=not a.no_contention)
        receipt = fit_receipt(runs[1], fitted, a.seed)
        print(f"{store}: burst receipt delay, jitter fitted on writers=1: {receipt}", file=sys.stderr)
        todo = [(n, r, "") for n, r in sorted(runs.items())]
        extra = pathlib.Path(a.results) / f"multiwriter-{store}{a.extra}.json"
        if a.extra and extra.exists():
            todo += [(r["writers"], r, a.extra) for r in json.loads(extra.read_text())["runs"]]
        for n, run, tag in todo:
            p = predict(run, fitted, a.seed, receipt=receipt)
            smooth = predict(run, fitted, a.seed, receipt=receipt, smooth=True) if a.smooth else None
            meas_cps = run["commits_per_sec_steady"]
            meas_cr = run["conflict_rate"]
            # conflict rates near zero: compare in absolute points (25% of a 2% rate is noise)
            rows.append({
                "store": store + tag, "writers": n, "flush": run["flush_interval"],
                "measured_commits_per_s": meas_cps, "simulated_commits_per_s": p["commits_per_s"],
                "commits_err": round(p["commits_per_s"] / meas_cps - 1, 3) if meas_cps else None,
                "measured_conflict_rate": meas_cr, "simulated_conflict_rate": p["conflict_rate"],
                "conflict_err": round(p["conflict_rate"] / meas_cr - 1, 3) if meas_cr else None,
                "measured_batch_ms_p50": run["batch_ms_p50"], "simulated_batch_ms_p50": round(1000 * p["batch_s_p50"]),
                "stretch": p["stretch"], "fitted_on": "writers=1", "burst_receipt": receipt,
                "active_writers": p["active_writers"],
                "smooth_arrivals": smooth,
                "measured_freshness_ms_p50_p99": [run["freshness_ms_p50"], run["freshness_ms_p99"]],
                "simulated_freshness_ms_p50_p99": [round(1000 * p["oldest_freshness_p50_s"]),
                                                   round(1000 * p["oldest_freshness_p99_s"])],
            })
    text = json.dumps(rows, indent=1)
    print(text)
    print("\n| store | writers | commits/s measured | simulated | err | conflict rate measured | simulated | err |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ce = f"{100 * r['commits_err']:+.0f}%" if r["commits_err"] is not None else "-"
        fe = f"{100 * r['conflict_err']:+.0f}%" if r["conflict_err"] is not None else "-"
        print(f"| {r['store']} | {r['writers']} | {r['measured_commits_per_s']} | {r['simulated_commits_per_s']} | {ce} "
              f"| {r['measured_conflict_rate']} | {r['simulated_conflict_rate']} | {fe} |"
              + (f" smooth arrivals: {r['smooth_arrivals']['commits_per_s']} commits/s, conflict rate "
                 f"{r['smooth_arrivals']['conflict_rate']}" if r.get("smooth_arrivals") else ""))
    if a.out:
        pathlib.Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
