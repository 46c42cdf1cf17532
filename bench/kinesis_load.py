"""Load test of `writer run` through an emulated Kinesis stream (moto), for BENCHMARKS.md.

Feeds N events (default 1M, an hour of production traffic) into a multi-shard stream with the
load generator, while probe events are put one by one with their put time; measures
sustained events/s, event put -> visible latency (a probe is visible when the commit whose
recorded shard range covers its sequence number lands; p50/p99 from commitInfo timestamps),
and the writer's peak RSS. Usage: python bench/kinesis_load.py [--events N] [--shards 4]
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WRITER = os.environ.get("BENCH_WRITER", str(TARGET / "release" / "writer"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--flush-interval", default="2s")
    ap.add_argument("--rate", type=float, default=0, help="generator events/s (0 = as fast as possible)")
    args = ap.parse_args()
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_EC2_METADATA_DISABLED": "true", "RUST_LOG": "warn"}
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    c = lambda s: boto3.client(s, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    stream, bucket = "load", "load-lake"
    c("kinesis").create_stream(StreamName=stream, ShardCount=args.shards)
    c("s3").create_bucket(Bucket=bucket)
    subprocess.run([WRITER, "lock-table", "create", "--lock-table", "delta_log"], env=env, check=True, capture_output=True)
    log = tempfile.NamedTemporaryFile(prefix="writer-load-", suffix=".log", delete=False)
    writer = subprocess.Popen([WRITER, "run", "--stream", stream, "--table", f"s3://{bucket}/events",
                               "--rejected-table", f"s3://{bucket}/events_rejected", "--lease-table", "leases",
                               "--commit-lock", "dynamodb", "--flush-interval", args.flush_interval,
                               "--poll-interval", "200ms", "--metrics-port", "0", "--exit-when-idle", "15s"],
                              env=env, stdout=subprocess.PIPE, stderr=log)
    peak_rss = [0]

    def sample_rss():
        while writer.poll() is None:
            try:
                for line in open(f"/proc/{writer.pid}/status"):
                    if line.startswith("VmRSS:"):
                        peak_rss[0] = max(peak_rss[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.2)

    threading.Thread(target=sample_rss, daemon=True).start()
    probes = []
    stop = threading.Event()

    def probe_loop():
        k = c("kinesis")
        while not stop.is_set():
            u = f"probe-{uuid.uuid4()}"
            body = json.dumps({"event_uuid": u, "event_name": "probe:latency", "created_at": int(time.time())})
            t = time.time()
            r = k.put_record(StreamName=stream, Data=body.encode(), PartitionKey=u)
            probes.append((r["ShardId"], int(r["SequenceNumber"]), t))
            time.sleep(0.5)

    t0 = time.time()
    threading.Thread(target=probe_loop, daemon=True).start()
    gen = subprocess.run([WRITER, "generate", "--count", str(args.events), "--seed", "9", "--kinesis-stream", stream,
                          "--rate", str(args.rate), "--duplicate-ratio", "0.01", "--malformed-ratio", "0.001"],
                         env=env, capture_output=True)
    put_done = time.time()
    stop.set()
    out, _ = writer.communicate(timeout=3600)
    summary = json.loads(out.decode().strip().splitlines()[-1])
    # commits: timestamp and per-shard sequence ranges
    s3 = c("s3")
    commits = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="events/_delta_log/"):
        for o in page.get("Contents", []):
            key = o["Key"]
            if key.endswith(".json") and "/.tmp/" not in key:
                for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
                    a = json.loads(line)
                    ci = a.get("commitInfo", {})
                    if "kinesis" in ci:
                        commits.append((ci["timestamp"] / 1000.0, ci["kinesis"]["shards"]))
    lat = []
    for shard, seq, t in probes:
        seen = [ts for ts, shards in commits if shard in shards
                and int(shards[shard]["first_sequence"]) <= seq <= int(shards[shard]["last_sequence"])]
        if seen:
            lat.append(min(seen) - t)
    last_commit = max(ts for ts, _ in commits)
    lat.sort()
    result = {
        "events": args.events, "shards": args.shards, "flush_interval": args.flush_interval,
        "generator_seconds": put_done - t0, "generator_events_per_sec": args.events / (put_done - t0),
        "end_to_end_seconds": last_commit - t0, "sustained_events_per_sec": summary["read"] / (last_commit - t0),
        "probes": len(probes), "probes_seen": len(lat),
        "latency_p50_s": statistics.median(lat) if lat else None,
        "latency_p99_s": lat[int(len(lat) * 0.99) - 1] if lat else None,
        "writer_peak_rss_mb": peak_rss[0] / 1024, "writer_summary": summary,
    }
    print(json.dumps(result, indent=2))
    moto.send_signal(signal.SIGTERM)


if __name__ == "__main__":
    main()
