#!/usr/bin/env python3
"""Dedupe per-batch cost and memory from a 1M-key to a 200M-key partition (issue 15).

Grows one partition of a local table step by step (`keyscale grow`: shard 0 is the measured
writer's, every further shard of 1M keys stands for another writer's) and, at each size,
runs a fresh `keyscale measure` process as shard 0's writer: with `--dedupe-keys own-shards`
(the 1000x design) and with `all` (every key of the partition, the default). Optionally a
copy of the table at one size is compacted (`compactor optimize`, which mixes every shard's
rows in one file) and measured again, to show what compaction does to the design.

Output: one JSON line per measured batch in `bench/results/keyscale-<tag>.jsonl`, and a
summary table (first batch = the partition's load; steady = the other batches) printed and
written next to it as `.md`.

Usage: python3 bench/keyscale.py --sizes 1M,10M,50M,200M --tag s16
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/events-lake/target"))


def count(text):
    text = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * mult)


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def measure(binary, table, day, mode, batches, out, label):
    proc = run(
        [binary, "--table", f"{table}/events", "--rejected-table", f"{table}/rejected", "--day", day,
         "measure", "--dedupe-keys", mode, "--batches", str(batches)],
        stdout=subprocess.PIPE, text=True,
    )
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    with open(out, "a") as f:
        for l in lines:
            l["layout"] = label
            f.write(json.dumps(l) + "\n")
    return lines


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def summarise(lines):
    first, rest = lines[0], lines[1:]
    return {
        "layout": first.get("layout"),
        "mode": first["dedupe_keys"],
        "partition_keys": first["partition_keys"],
        "partition_files": first["partition_files"],
        "first_ms": first["wall_ms"],
        "first_files_read": first["files_read"],
        "first_files_skipped": first["load_files_skipped"],
        "first_keys_loaded": first["keys_loaded"],
        "steady_median_ms": median([l["wall_ms"] for l in rest]),
        "steady_max_ms": max((l["wall_ms"] for l in rest), default=None),
        "steady_files_read": sum(l["files_read"] for l in rest),
        "streamed": sum(l["scopes_streamed"] for l in lines),
        "index_mb": lines[-1]["index_bytes"] / 2**20,
        "peak_rss_mb": max(l["peak_rss_kib"] for l in lines) / 1024,
        "exact": all(l["exact"] for l in lines),
    }


def table_md(rows):
    head = ("| layout | index | partition keys | files | first batch (load) | files read / skipped | keys loaded "
            "| steady batch median / max | steady files read | index MB | peak RSS MB | exact |")
    out = [head, "|" + "---|" * 12]
    for r in rows:
        out.append(
            f"| {r['layout']} | {r['mode']} | {r['partition_keys']:,} | {r['partition_files']:,} "
            f"| {r['first_ms'] / 1000:.2f} s | {r['first_files_read']:,} / {r['first_files_skipped']:,} "
            f"| {r['first_keys_loaded']:,} | {r['steady_median_ms']:.0f} / {r['steady_max_ms']:.0f} ms "
            f"| {r['steady_files_read']} | {r['index_mb']:.0f} | {r['peak_rss_mb']:.0f} | {'yes' if r['exact'] else 'NO'} |"
        )
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,10M,50M,200M")
    ap.add_argument("--workdir", default="/tmp/keyscale")
    ap.add_argument("--tag", default="local")
    ap.add_argument("--batches", type=int, default=10, help="measured batches per size (own-shards)")
    ap.add_argument("--all-batches", type=int, default=4, help="measured batches per size with `all`")
    ap.add_argument("--compact-at", default="", help="also measure a compacted copy at this size")
    ap.add_argument("--keep", action="store_true", help="keep the table afterwards")
    args = ap.parse_args()

    binary = os.path.join(TARGET, "release", "keyscale")
    compactor = os.path.join(TARGET, "release", "compactor")
    day = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    table = os.path.join(args.workdir, "t")
    results = os.path.join(ROOT, "bench", "results")
    out = os.path.join(results, f"keyscale-{args.tag}.jsonl")
    if os.path.exists(out):
        sys.exit(f"{out} exists: pick another --tag")
    compact_at = count(args.compact_at) if args.compact_at else None
    rows = []
    for size in [count(s) for s in args.sizes.split(",")]:
        started = time.time()
        run([binary, "--table", f"{table}/events", "--rejected-table", f"{table}/rejected", "--day", day,
             "grow", "--keys", str(size)], stderr=subprocess.DEVNULL)
        print(f"grown to {size:,} keys in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        rows.append(summarise(measure(binary, table, day, "own-shards", args.batches, out, "uncompacted")))
        rows.append(summarise(measure(binary, table, day, "all", args.all_batches, out, "uncompacted")))
        if compact_at == size:
            copy = os.path.join(args.workdir, "compacted")
            shutil.copytree(table, copy)
            run([compactor, "optimize", "--table", f"{copy}/events"], stdout=subprocess.DEVNULL)
            rows.append(summarise(measure(binary, copy, day, "own-shards", args.batches, out, "compacted")))
            shutil.rmtree(copy)
        print(table_md(rows[-3:]), file=sys.stderr, flush=True)
    md = table_md(rows)
    print(md)
    with open(out.replace(".jsonl", ".md"), "w") as f:
        f.write(md + "\n")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
