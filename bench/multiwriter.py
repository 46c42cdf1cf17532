"""Commit ceiling into one table (issue 15, item 2): N concurrent `writer run` processes on one
Kinesis stream, all committing to ONE events table.

For each N (default 1, 2, 4, 8) and each store (moto S3 + DynamoDB commit lock, local disk):
fresh emulators (moto for S3/DynamoDB; kinesalite for Kinesis when installed, else moto), a
stream of `--shards` shards, N writers (`--writer-id w<i>`, short `--flush-interval`,
`--exit-when-idle`), then the load generator puts `--rate` x `--seconds` events (1% producer
duplicates, no malformed lines so every commit is an events-table commit). When every writer
has drained and exited, the script records:

* commits and commits/s from the table's Delta log (versions carrying the writers'
  `commitInfo.kinesis`; their `timestamp`s), over the whole run and over the steady window
  (from `--warmup` s after the first put to the last put);
* conflicts: the writers' `commit conflict, retrying` debug lines for the events table (the
  same events the `events_lake_commit_conflicts_total` counter adds up); conflict rate =
  conflicts / commits;
* commit latency: `batch committed` `commit_ms` (whole batch) and the `append phases`
  breakdown (sync, dedupe, write_files, log-entry write) per append; the cost of a conflict =
  (mean total of appends that conflicted - mean total of those that did not) / conflicts;
* accounting: rows read back with DuckDB's delta extension (and polars) == the distinct events
  put (re-derived from the generator's seed by `integration-tests/expected.py`), no duplicate
  `event_uuid`, and the writers' summaries add up (read = written + duplicates).

Usage: python bench/multiwriter.py [--store s3,local] [--writers 1,2,4,8] [--rate 1000]
       [--seconds 60] [--shards 8] [--flush-interval 1s]
Writes bench/results/multiwriter-<store>.json (one entry per N).
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/events-lake/target"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "integration-tests"))
from kinesis_load import KINESALITE, LOADGEN, WRITER, cpu_seconds, free_port, percentile, start_kinesalite, wait_port  # noqa: E402

QUIET = pathlib.Path("/tmp/quiet.lock")


def wait_quiet():
    while QUIET.exists():
        print("quiet.lock present, waiting", file=sys.stderr)
        time.sleep(20)


def pct(values, p):
    return percentile(sorted(values), p)


def mean(values):
    return round(statistics.fmean(values), 1) if values else None


class Emulators:
    """moto (S3, DynamoDB; its request log on stderr, `moto_stderr`) and the Kinesis emulator."""

    def __init__(self, kinesis, moto_stderr=subprocess.DEVNULL):
        self.procs = []
        port = free_port()
        self.procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                           stdout=subprocess.DEVNULL, stderr=moto_stderr))
        self.url = f"http://127.0.0.1:{port}"
        self.kurl = self.url
        if kinesis == "kinesalite":
            kport = free_port()
            self.procs.append(start_kinesalite(kport))
            self.kurl = f"http://127.0.0.1:{kport}"
            wait_port(kport)
        wait_port(port)
        self.pids = {"moto": self.procs[0].pid, "kinesis_emulator": self.procs[-1].pid}
        self.env = {"AWS_ENDPOINT_URL": self.url, "AWS_ENDPOINT_URL_KINESIS": self.kurl,
                    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self, service):
        return boto3.client(service, endpoint_url=self.kurl if service == "kinesis" else self.url,
                            region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def parse_log(path):
    """Per-process log: commits (batch committed), appends (append phases, with the conflicts
    that preceded each), conflict times."""
    batches, appends, conflict_ts = [], [], []
    pending = 0
    for line in open(path, errors="replace"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        f = rec.get("fields", rec)
        msg = f.get("message")
        table = str(f.get("table", rec.get("table", "")))
        if msg == "batch committed":
            batches.append({"commit_ms": f.get("commit_ms"), "read": f.get("read"), "freshness_ms": f.get("freshness_ms"),
                            # Cumulative per process (issue 15: what a shard takeover re-reads).
                            **{k: f.get(k) for k in ("key_files_read", "scopes_completed", "gain_files_skipped")}})
        elif msg == "commit conflict, retrying" and not table.rstrip("/").endswith("events_rejected"):
            pending += 1
            conflict_ts.append(rec.get("timestamp"))
        elif msg == "append phases" and not table.rstrip("/").endswith("events_rejected"):
            appends.append({k: f.get(k) for k in ("total_ms", "sync_ms", "dedupe_ms", "write_files_ms", "commit_ms",
                                                   "refresh_ms", "files")} | {"conflicts": pending})
            pending = 0
    return batches, appends, conflict_ts


def run_one(args, store, n):
    wait_quiet()
    emu = Emulators(args.kinesis)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"multiwriter-{store}-{n}-"))
    try:
        return _run_one(args, store, n, emu, work)
    finally:
        emu.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _run_one(args, store, n, emu, work):
    env = {**os.environ, **emu.env,
           "RUST_LOG": "info,writer::commit=debug,buoyant_kernel=warn,deltalake_core=warn"}
    stream, bucket = "mw", "mw-lake"
    k = emu.client("kinesis")
    k.create_stream(StreamName=stream, ShardCount=args.shards)
    while k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.2)
    if store == "s3":
        emu.client("s3").create_bucket(Bucket=bucket)
        subprocess.run([WRITER, "lock-table", "create", "--lock-table", "delta_log"], env=env, check=True,
                       capture_output=True)
        table = f"s3://{bucket}/events"
        tables = ["--table", table, "--rejected-table", f"s3://{bucket}/events_rejected",
                  "--commit-lock", "dynamodb", "--lock-table", "delta_log"]
    else:
        table = str(work / "events")
        tables = ["--table", table, "--rejected-table", str(work / "events_rejected")]
    end_time = int(time.time())
    events = int(args.rate * args.seconds)
    writers = []
    for i in range(n):
        log_path = work / f"writer-{i}.log"
        log = open(log_path, "wb")
        p = subprocess.Popen([WRITER, "--log-format", "json", "run", "--stream", stream, *tables,
                              "--lease-table", "leases", "--writer-id", f"w{i}",
                              "--flush-interval", args.flush_interval, "--lease-duration", args.lease_duration,
                              "--poll-interval", "200ms", "--start-position", "TRIM_HORIZON",
                              "--metrics-port", "0", "--max-future", "36500d", "--dedupe-memory-mb", "512",
                              "--exit-when-idle", args.idle, "--commit-slots", args.commit_slots,
                              "--dedupe-keys", args.dedupe_keys],
                             env=env, stdout=subprocess.PIPE, stderr=log)
        p.log_path, p.log = log_path, log
        writers.append(p)
    pids = {**emu.pids, **{f"w{i}": p.pid for i, p in enumerate(writers)}}
    cpu0 = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    cpu = dict(cpu0)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for name, pid in pids.items():
                cpu[name] = cpu_seconds(pid) or cpu[name]
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Let the writers create the lease table and share the shards before the first put (the
    # idle timer only starts counting once they read).
    ddb = emu.client("dynamodb")
    owners = {}
    deadline = time.time() + args.balance_wait
    while time.time() < deadline:
        try:
            items = ddb.scan(TableName="leases")["Items"]
        except ddb.exceptions.ResourceNotFoundException:
            items = []
        owners = {}
        for it in items:
            o = it.get("leaseOwner", {}).get("S")
            owners[o] = owners.get(o, 0) + 1
        owned = {o: c for o, c in owners.items() if o}
        if sum(owned.values()) == args.shards and len(owned) == min(n, args.shards) \
                and max(owned.values()) <= -(-args.shards // n):
            break
        time.sleep(0.5)
    owners_at_start = owners
    t_put = time.time()
    gen = subprocess.run([LOADGEN, "generate", "--count", str(events), "--seed", str(args.seed),
                          "--end-time", str(end_time), "--kinesis-stream", stream, "--rate", str(args.rate),
                          "--duplicate-ratio", "0.01", "--malformed-ratio", "0", "--large-ratio", "0"],
                         env=env, capture_output=True)
    t_put_end = time.time()
    if gen.returncode != 0:
        raise RuntimeError(gen.stderr.decode()[-2000:])
    summaries = []
    for p in writers:
        try:
            out, _ = p.communicate(timeout=args.drain_timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=60)
        p.log.close()
        lines = [l for l in out.decode(errors="replace").splitlines() if l.strip()]
        try:
            summaries.append(json.loads(lines[-1]))
        except (IndexError, ValueError):
            summaries.append({"error": f"exit {p.returncode}", "log_tail": open(p.log_path, errors="replace").read()[-2000:]})
    t_done = time.time()
    stop.set()
    sampler.join()

    # The Delta log: one version per commit.
    commits = []  # (version, commitInfo timestamp s, writer id)
    if store == "s3":
        s3 = emu.client("s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/_delta_log/"):
            keys += [o["Key"] for o in page.get("Contents", [])]
        logs = {int(kk.rsplit("/", 1)[1][:20]): kk for kk in keys
                if kk.endswith(".json") and kk.rsplit("/", 1)[1][:20].isdigit()}
        read = lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # noqa: E731
    else:
        d = pathlib.Path(table) / "_delta_log"
        logs = {int(p.name[:20]): p for p in d.glob("*.json") if p.name[:20].isdigit()}
        read = lambda p: p.read_bytes()  # noqa: E731
    for v in sorted(logs):
        for line in read(logs[v]).splitlines():
            ci = json.loads(line).get("commitInfo")
            if ci and "kinesis" in ci:
                commits.append((v, ci["timestamp"] / 1000.0, (ci.get("writer") or {}).get("id")))
    ts = sorted(t for _, t, _ in commits)
    w0, w1 = t_put + args.warmup, t_put_end
    steady = [t for t in ts if w0 <= t <= w1]
    gaps = [b - a for a, b in zip(steady, steady[1:])]

    batches, appends, conflict_ts = [], [], []
    per_writer = []
    for i, p in enumerate(writers):
        b, a, c = parse_log(p.log_path)
        batches += b
        appends += a
        conflict_ts += c
        last = b[-1] if b else {}
        per_writer.append({"writer": f"w{i}", "commits": len(b), "conflicts": sum(x["conflicts"] for x in a),
                           "key_files_read": last.get("key_files_read"),
                           "scopes_completed": last.get("scopes_completed"),
                           "gain_files_skipped": last.get("gain_files_skipped"),
                           "summary": summaries[i]})
    conflicts = sum(x["conflicts"] for x in appends)
    clean = [x["total_ms"] for x in appends if x["conflicts"] == 0 and x["total_ms"] is not None]
    dirty = [x for x in appends if x["conflicts"] > 0 and x["total_ms"] is not None]
    conflict_cost = None
    if dirty and clean:
        conflict_cost = round((statistics.fmean(x["total_ms"] for x in dirty) - statistics.fmean(clean))
                              / statistics.fmean(x["conflicts"] for x in dirty), 1)

    # Accounting, read back independently.
    from expected import expected_from_lines
    with tempfile.NamedTemporaryFile(suffix=".ndjson") as f:
        subprocess.run([LOADGEN, "generate", "--count", str(events), "--seed", str(args.seed), "--end-time",
                        str(end_time), "--output", f.name, "--duplicate-ratio", "0.01", "--malformed-ratio", "0",
                        "--large-ratio", "0"], check=True, capture_output=True)
        lines = pathlib.Path(f.name).read_bytes().split(b"\n")[:-1]
    exp_events, exp_rejects, exp_counts = expected_from_lines(lines, end_time)
    if store == "s3":
        from s3util import duck_s3, polars_s3_options
        moto = {"url": emu.url}
        con = duck_s3(moto)
        src = f"delta_scan('s3://{bucket}/events')"
        popts = polars_s3_options(moto)
    else:
        import duckdb
        from conftest import duckdb_delta_extension
        con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
        con.execute(f"LOAD '{duckdb_delta_extension()}'")
        src = f"delta_scan('{table}')"
        popts = None
    rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT event_uuid) FROM {src}").fetchone()
    got = set(con.execute(f"SELECT event_uuid, event_type, CAST(created_date AS VARCHAR) FROM {src}").fetchall())
    con.close()
    want = {(u, t, str(d)) for (u, t, d) in exp_events}
    try:
        import polars as pl
        polars_rows = pl.scan_delta(f"s3://{bucket}/events" if store == "s3" else table,
                                    storage_options=popts).select(pl.len()).collect().item()
    except Exception as e:  # a second reader is a cross-check, not the measurement
        polars_rows = f"error: {type(e).__name__}: {e}"[:300]
    sums = {key: sum(s.get(key, 0) for s in summaries) for key in ("read", "written", "duplicates", "rejected", "commits")}

    span = (ts[-1] - ts[0]) if len(ts) > 1 else None
    result = {
        "store": store, "writers": n, "shards": args.shards, "flush_interval": args.flush_interval,
        "commit_slots": args.commit_slots,
        "dedupe_keys": args.dedupe_keys,
        "rate": args.rate, "events_put": events, "kinesis": args.kinesis,
        "lease_owners_at_first_put": owners_at_start,
        "put_seconds": round(t_put_end - t_put, 1), "drain_seconds": round(t_done - t_put_end, 1),
        "commits": len(commits), "table_versions": len(logs),
        "commits_per_sec_overall": round(len(ts) / span, 3) if span else None,
        "steady_window_s": round(w1 - w0, 1), "commits_in_steady_window": len(steady),
        "commits_per_sec_steady": round(len(steady) / (w1 - w0), 3) if w1 > w0 else None,
        "commit_gap_ms_p50": round(1000 * pct(gaps, 50), 1) if gaps else None,
        "commit_gap_ms_min": round(1000 * min(gaps), 1) if gaps else None,
        "conflicts": conflicts,
        "conflict_rate": round(conflicts / len(commits), 4) if commits else None,
        "appends_with_conflict": len(dirty),
        "max_conflicts_one_append": max((x["conflicts"] for x in appends), default=0),
        "conflict_cost_ms": conflict_cost,
        "batch_ms_p50": pct([b["commit_ms"] for b in batches], 50),
        "batch_ms_p99": pct([b["commit_ms"] for b in batches], 99),
        "freshness_ms_p50": pct([b["freshness_ms"] for b in batches if b["freshness_ms"] is not None], 50),
        "freshness_ms_p99": pct([b["freshness_ms"] for b in batches if b["freshness_ms"] is not None], 99),
        "batch_events_p50": pct([b["read"] for b in batches], 50),
        "append_phases_mean_ms": {k: mean([x[k] for x in appends if x[k] is not None])
                                  for k in ("total_ms", "sync_ms", "dedupe_ms", "write_files_ms", "commit_ms", "refresh_ms", "files")},
        "append_phases_p99_ms": {k: pct([x[k] for x in appends if x[k] is not None], 99)
                                 for k in ("total_ms", "sync_ms", "write_files_ms", "commit_ms")},
        "append_phases_clean_mean_ms": {k: mean([x[k] for x in appends if x[k] is not None and x["conflicts"] == 0])
                                        for k in ("total_ms", "sync_ms", "dedupe_ms", "write_files_ms", "commit_ms", "refresh_ms")},
        "append_phases_conflicted_mean_ms": {k: mean([x[k] for x in dirty if x[k] is not None])
                                             for k in ("total_ms", "sync_ms", "dedupe_ms", "write_files_ms", "commit_ms", "refresh_ms")},
        "writer_totals": sums,
        "accounting": {
            "expected_distinct_events": len(want), "expected_read": exp_counts["read"],
            "rows_duckdb": rows, "distinct_event_uuid_duckdb": distinct, "rows_polars": polars_rows,
            "rows_equal_expected": got == want, "missing": len(want - got), "unexpected": len(got - want),
            "no_duplicates": rows == distinct == len(got),
            "summaries_add_up": sums["read"] == exp_counts["read"] and sums["written"] == len(want)
            and sums["read"] == sums["written"] + sums["duplicates"] + sums["rejected"],
        },
        "cpu_seconds": {name: round(cpu[name] - cpu0[name], 1) for name in pids},
        "per_writer": per_writer,
        "appends": appends if args.keep_appends else None,
        "batches": batches if args.keep_appends else None,
        "conflict_times": conflict_ts if args.keep_appends else None,
        "commit_times": ts if args.keep_appends else None,
        "t_put": t_put, "t_put_end": t_put_end,
    }
    result["accounting"]["exact"] = bool(result["accounting"]["rows_equal_expected"]
                                         and result["accounting"]["no_duplicates"]
                                         and result["accounting"]["summaries_add_up"])
    return result


def probe_moto(args):
    """Request latencies of moto itself (for the simulation's validation): a small GET, a
    small PUT, and a LIST of `_delta_log/` from a start key, as the bucket fills with data
    files (moto scans every key of the bucket for a LIST)."""
    wait_quiet()
    emu = Emulators("moto")
    try:
        s3 = emu.client("s3")
        s3.create_bucket(Bucket="probe")
        body = b"x" * 2000
        rows, keys = [], 0
        for target in (0, 500, 1000, 2000, 4000, 8000):
            while keys < target:
                s3.put_object(Bucket="probe", Key=f"events/event_type=t{keys % 10}/part-{keys:06}.parquet", Body=body)
                keys += 1
            for v in range(3):
                s3.put_object(Bucket="probe", Key=f"events/_delta_log/{keys + v:020}.json", Body=b"{}")
            t = time.time()
            for _ in range(10):
                s3.list_objects_v2(Bucket="probe", Prefix="events/_delta_log/", StartAfter=f"events/_delta_log/{keys:020}.json")
            lst = (time.time() - t) / 10
            t = time.time()
            for _ in range(10):
                s3.get_object(Bucket="probe", Key=f"events/_delta_log/{keys:020}.json")["Body"].read()
            get = (time.time() - t) / 10
            t = time.time()
            for i in range(10):
                s3.put_object(Bucket="probe", Key=f"events/tmp/{keys}-{i}", Body=body)
            put = (time.time() - t) / 10
            rows.append({"bucket_keys": keys, "list_ms": round(1000 * lst, 2), "get_ms": round(1000 * get, 2),
                         "put_ms": round(1000 * put, 2)})
            print(json.dumps(rows[-1]), flush=True)
        out = pathlib.Path(args.out_dir) / "multiwriter-moto-probe.json"
        out.write_text(json.dumps(rows, indent=1) + "\n")
    finally:
        emu.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probe-moto", action="store_true", help="only measure moto's GET/PUT/LIST latencies")
    ap.add_argument("--store", default="s3,local")
    ap.add_argument("--writers", default="1,2,4,8")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=60, help="put duration: events = rate x seconds")
    ap.add_argument("--flush-interval", default="1s")
    ap.add_argument("--commit-slots", default="true", choices=["true", "false"],
                    help="writers take turns by the wall clock (`writer run --commit-slots`)")
    ap.add_argument("--dedupe-keys", default="all", choices=["all", "own-shards"],
                    help="which keys each writer's dedupe holds (`writer run --dedupe-keys`)")
    ap.add_argument("--lease-duration", default="3s")
    ap.add_argument("--idle", default="12s", help="--exit-when-idle of the writers")
    ap.add_argument("--warmup", type=float, default=10, help="seconds after the first put before the steady window")
    ap.add_argument("--balance-wait", type=float, default=20)
    ap.add_argument("--drain-timeout", type=float, default=300)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--kinesis", choices=["kinesalite", "moto"],
                    default="kinesalite" if (KINESALITE / "node_modules/kinesalite").exists() and shutil.which("node") else "moto")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (writer logs, local tables)")
    ap.add_argument("--keep-appends", action="store_true", default=True)
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--tag", default="", help="suffix of the output file name")
    args = ap.parse_args()
    if args.probe_moto:
        return probe_moto(args)
    for store in args.store.split(","):
        pathlib.Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        out = pathlib.Path(args.out_dir) / f"multiwriter-{store}{args.tag}.json"
        results = []
        for n in [int(x) for x in args.writers.split(",")]:
            r = run_one(args, store, n)
            results.append(r)
            brief = {k: r[k] for k in ("store", "writers", "commits", "commits_per_sec_steady", "conflicts",
                                         "conflict_rate", "conflict_cost_ms", "batch_ms_p50", "freshness_ms_p99")}
            brief["exact"] = r["accounting"]["exact"]
            print(json.dumps(brief), flush=True)
            out.write_text(json.dumps({"args": vars(args), "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
