"""Benchmarks for BENCHMARKS.md. One run, one machine, the same generated input for every
contender. Usage (from the repo root): `make bench` or
`python bench/run.py [--events 1000000] [--skip-dedupe-scaling] [--only writer,polars,deltalake]`.

Prints a JSON document with every measurement; BENCHMARKS.md quotes it.
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WRITER = os.environ.get("BENCH_WRITER", str(TARGET / "release" / "writer"))
LOADGEN = os.environ.get("BENCH_LOADGEN", str(TARGET / "release" / "loadgen"))
END_TIME = 1_764_000_000  # fixed, so every run generates the same bytes


def sh(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, **kw)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd} failed:\n{p.stderr.decode()[-4000:]}")
    return p, dt


def child_rss_mb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def generate(path, count, seed=1, dup=0.05, malformed=0.0, late=0.0, end_time=END_TIME):
    sh([LOADGEN, "generate", "--count", str(count), "--seed", str(seed), "--output", str(path),
        "--duplicate-ratio", str(dup), "--malformed-ratio", str(malformed), "--late-ratio", str(late),
        "--large-ratio", "0.0005", "--end-time", str(end_time)])


def bench_writer(src, work, batch_events):
    lake = work / "writer_lake"
    shutil.rmtree(lake, ignore_errors=True)
    p, dt = sh([WRITER, "ingest", "--input", str(src), "--table", str(lake / "events"),
                "--rejected-table", str(lake / "rejected"), "--max-batch-events", str(batch_events),
                "--min-created-at", "946684800", "--max-future", "36500d"],
               env={**os.environ, "RUST_LOG": "warn"})
    summary = json.loads(p.stdout.decode().strip().splitlines()[-1])
    return {"seconds": dt, "events_per_sec": summary["read"] / dt, "summary": summary}


POLARS = r'''
import sys, time, polars as pl
src, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
df = pl.read_ndjson(src, infer_schema_length=None)
common = ["event_uuid", "event_name", "created_at"]
others = [c for c in df.columns if c not in common]
parts = pl.col("event_name").str.split(":")
ts = pl.from_epoch((pl.col("created_at") * 1_000_000).cast(pl.Int64), time_unit="us").dt.replace_time_zone("UTC")
df = df.unique(subset=["event_uuid"], keep="first", maintain_order=True).select(
    pl.col("event_uuid"), pl.col("event_name"),
    pl.col("created_at").floor().cast(pl.Int64).alias("created_at"),
    ts.alias("created_timestamp"),
    ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ").alias("created_datetime"),
    parts.list.get(0).alias("event_type"),
    parts.list.get(1, null_on_oob=True).alias("event_subtype"),
    ts.dt.date().alias("created_date"),
    pl.struct(others).struct.json_encode().alias("payload"),
)
df.write_delta(out, mode="append", delta_write_options={"partition_by": ["event_type", "created_date"]})
print(df.height, time.perf_counter() - t0)
'''

DELTALAKE = r'''
import sys, time, json
import pyarrow as pa, pyarrow.compute as pc
from deltalake import write_deltalake
src, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
# The NDJSON has no single schema (payload fields vary), so parse lines in Python and let
# pyarrow compute the time columns.
cols = {k: [] for k in ("event_uuid", "event_name", "created_at", "event_type", "event_subtype", "payload")}
seen = set()
with open(src, "rb") as f:
    for line in f:
        o = json.loads(line)
        u = o.pop("event_uuid")
        if u in seen:
            continue
        seen.add(u)
        name = o.pop("event_name")
        p = name.split(":")
        cols["event_uuid"].append(u)
        cols["event_name"].append(name)
        cols["created_at"].append(float(o.pop("created_at")))
        cols["event_type"].append(p[0])
        cols["event_subtype"].append(p[1] if len(p) > 1 and p[1] else None)
        cols["payload"].append(json.dumps(o, ensure_ascii=False, separators=(",", ":")))
created = pa.array(cols["created_at"], pa.float64())
ts = pc.cast(pc.multiply(created, 1_000_000).cast(pa.int64()), pa.timestamp("us", tz="UTC"))
t = pa.table({
    "event_uuid": cols["event_uuid"], "event_name": cols["event_name"],
    "created_at": pc.floor(created).cast(pa.int64()), "created_timestamp": ts,
    "created_datetime": pc.strftime(ts, "%Y-%m-%dT%H:%M:%SZ"),
    "event_type": cols["event_type"], "event_subtype": pa.array(cols["event_subtype"], pa.string()),
    "created_date": pc.cast(ts, pa.date32()), "payload": cols["payload"],
})
write_deltalake(out, t, partition_by=["event_type", "created_date"], mode="append")
print(t.num_rows, time.perf_counter() - t0)
'''


def bench_python(script, src, work, name):
    out = work / f"{name}_lake"
    shutil.rmtree(out, ignore_errors=True)
    code = work / f"bench_{name}.py"
    code.write_text(script)
    p, dt = sh([sys.executable, str(code), str(src), str(out)])
    rows = int(p.stdout.decode().split()[0])
    return {"seconds": dt, "rows": rows}


def dedupe_scaling(work, base_sizes, batch=100_000, batches=5, budget_mb=4096):
    """Per-batch cost of ingesting 100k-event batches into a table already holding N events
    in the same partitions. The writer is one process: the first batch after the fill loads
    the partitions' keys (cold), later ones are steady state."""
    results = {}
    for n in base_sizes:
        src = work / f"fill_{n}.ndjson"
        generate(src, n + batch * batches, seed=100 + n % 97, dup=0.0, late=0.0)
        lake = work / f"scale_{n}"
        shutil.rmtree(lake, ignore_errors=True)
        # fill with big batches, then the measured 100k batches
        head = work / f"head_{n}.ndjson"
        tail = work / f"tail_{n}.ndjson"
        with open(src, "rb") as f, open(head, "wb") as h, open(tail, "wb") as t:
            for i, line in enumerate(f):
                (h if i < n else t).write(line)
        common = ["--table", str(lake / "events"), "--rejected-table", str(lake / "rejected"),
                  "--min-created-at", "946684800", "--max-future", "36500d",
                  "--dedupe-memory-mb", str(budget_mb)]
        sh([WRITER, "ingest", "--input", str(head), "--max-batch-events", "500000", *common],
           env={**os.environ, "RUST_LOG": "warn"})
        p, dt = sh([WRITER, "--log-format", "json", "ingest", "--input", str(tail),
                    "--max-batch-events", str(batch), *common],
                   env={**os.environ, "RUST_LOG": "info"})
        per_batch = [json.loads(l)["commit_ms"] for l in p.stderr.decode().splitlines()
                     if '"batch committed"' in l]
        summary = json.loads(p.stdout.decode().strip().splitlines()[-1])
        results[n] = {"batch_ms": per_batch, "cold_ms": per_batch[0],
                      "steady_ms": sorted(per_batch[1:])[len(per_batch[1:]) // 2],
                      "dedupe_index": summary["dedupe_index"], "total_seconds": dt}
        for f in (src, head, tail):
            f.unlink()
    return results


COMPACT_PY = r'''
import sys, time
from deltalake import DeltaTable
t0 = time.perf_counter()
m = DeltaTable(sys.argv[1]).optimize.compact()
print(time.perf_counter() - t0, m["numFilesAdded"], m["numFilesRemoved"])
'''


def duck_query_seconds(table, reps=3):
    import duckdb
    sys.path.insert(0, str(ROOT / "integration-tests"))
    from conftest import duckdb_delta_extension
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
    con.execute(f"LOAD '{duckdb_delta_extension()}'")
    q = (f"SELECT event_type, created_date, count(*), count(DISTINCT event_uuid) FROM delta_scan('{table}') "
         "WHERE created_at > 0 GROUP BY ALL ORDER BY ALL")
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        con.execute(q).fetchall()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def compaction_bench(src, work, batch_events):
    """One table of many small files (the writer in small batches), copied twice: this
    compactor vs python deltalake's optimize.compact(); DuckDB query time before and after."""
    base = work / "compact_base"
    shutil.rmtree(base, ignore_errors=True)
    sh([WRITER, "ingest", "--input", str(src), "--table", str(base / "events"), "--rejected-table", str(base / "rej"),
        "--max-batch-events", str(batch_events), "--min-created-at", "946684800", "--max-future", "36500d"],
       env={**os.environ, "RUST_LOG": "warn"})
    files_before = len([p for p in (base / "events").rglob("*.parquet") if "_delta_log" not in p.parts])
    a, b = work / "compact_a", work / "compact_b"
    for d in (a, b):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base / "events", d)
    query_before = duck_query_seconds(a)
    compactor = str(pathlib.Path(WRITER).parent / "compactor")
    p, dt_ours = sh([compactor, "optimize", "--table", str(a)], env={**os.environ, "RUST_LOG": "warn"})
    ours = json.loads(p.stdout.decode().strip().splitlines()[-1])
    code = work / "bench_compact.py"
    code.write_text(COMPACT_PY)
    p, _ = sh([sys.executable, str(code), str(b)])
    theirs_s, added, removed = p.stdout.decode().split()
    query_after = duck_query_seconds(a)
    return {"files_before": files_before, "compactor_seconds": dt_ours, "compactor_summary": ours,
            "python_deltalake_compact_seconds": float(theirs_s), "python_deltalake_files_added": int(added),
            "python_deltalake_files_removed": int(removed),
            "duckdb_query_seconds_before": query_before, "duckdb_query_seconds_after": query_after}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--only", default="writer,polars,deltalake")
    ap.add_argument("--batch-events", type=int, default=200_000)
    ap.add_argument("--skip-dedupe-scaling", action="store_true")
    ap.add_argument("--skip-compaction", action="store_true")
    ap.add_argument("--scaling-sizes", default="1000000,10000000")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="lakebench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "events.ndjson"
    generate(src, args.events)
    out = {"events": args.events, "input_bytes": src.stat().st_size, "cores": os.cpu_count()}
    only = set(args.only.split(","))
    if "writer" in only:
        out["writer"] = bench_writer(src, work, args.batch_events)
        out["writer"]["max_rss_mb_any_child"] = child_rss_mb()
    if "polars" in only:
        r = bench_python(POLARS, src, work, "polars")
        r["events_per_sec"] = args.events / r["seconds"]
        out["polars"] = r
    if "deltalake" in only:
        r = bench_python(DELTALAKE, src, work, "deltalake")
        r["events_per_sec"] = args.events / r["seconds"]
        out["python_deltalake"] = r
    if "writer" in out and "polars" in out:
        out["writer_vs_polars"] = out["writer"]["events_per_sec"] / out["polars"]["events_per_sec"]
    if "writer" in out and "python_deltalake" in out:
        out["writer_vs_python_deltalake"] = out["writer"]["events_per_sec"] / out["python_deltalake"]["events_per_sec"]
    if not args.skip_compaction:
        out["compaction"] = compaction_bench(src, work, max(args.events // 50, 1000))
    if not args.skip_dedupe_scaling:
        sizes = [int(s) for s in args.scaling_sizes.split(",")]
        out["dedupe_scaling"] = dedupe_scaling(work, sizes)
        a, b = (out["dedupe_scaling"][s]["steady_ms"] for s in (sizes[0], sizes[-1]))
        out["dedupe_scaling_ratio"] = b / a if a else None
    print(json.dumps(out, indent=2, default=str))
    if "writer" in out and "polars" in out:
        w, p = out["writer"], out["polars"]
        print(f"writer ingest {w['seconds']:.2f} s ({w['events_per_sec']:,.0f} events/s), "
              f"polars {p['seconds']:.2f} s ({p['events_per_sec']:,.0f} events/s): "
              f"writer/polars = {out['writer_vs_polars']:.2f}x", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
