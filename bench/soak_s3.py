#!/usr/bin/env python3
"""The soak benchmark on S3 with the DynamoDB commit lock, against a moto server (issue 14).

Starts moto on a free 127.0.0.1 port, creates a bucket and the lock table (with
`writer lock-table create`, as an operator would), then runs `bench/soak` with
`--commit-lock dynamodb` on `s3://<bucket>/events` — the writer, the scheduled
`compactor run` subprocesses and the reader probe all talk to moto through the usual
AWS_* environment. Everything after `--` is passed to `soak` (e.g. `--sim-days 1
--compression 168`); `--out` and the table arguments are set here.

    bench/soak_s3.py --bin-dir target/release --out bench/results/soak-s3 -- --sim-days 1

moto keeps every object in memory and answers from one Python process, so its latencies are
those of this machine, not of S3: the run checks that the S3 + DynamoDB path holds (no
failures, no leftover temp files, readers agree) and shows the same growth curves; it does
not give S3 latencies.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto server did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True, help="folder with the release soak, writer and compactor")
    ap.add_argument("--out", required=True, help="results folder (commits.jsonl, samples.jsonl, ...)")
    ap.add_argument("soak_args", nargs=argparse.REMAINDER, help="-- then arguments for soak")
    a = ap.parse_args()
    extra = a.soak_args[1:] if a.soak_args[:1] == ["--"] else a.soak_args
    bins = Path(a.bin_dir)

    proc, url = start_moto()
    try:
        env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ALLOW_HTTP": "true", "AWS_EC2_METADATA_DISABLED": "true", "MALLOC_ARENA_MAX": "2"}
        bucket, lock_table = f"soak-{uuid.uuid4().hex[:8]}", "delta_log"
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=bucket)
        subprocess.run([bins / "writer", "lock-table", "create", "--lock-table", lock_table],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        cmd = [bins / "soak", "--table", f"s3://{bucket}/events", "--rejected-table",
               f"s3://{bucket}/events_rejected", "--commit-lock", "dynamodb", "--lock-table", lock_table,
               "--out", a.out, "--commit-interval", "30s", "--events-per-commit", "300", "--event-types", "100",
               "--late-fraction", "0.02", "--compact-every", "1h", "--probe-every", "6h",
               "--compactor-bin", str(bins / "compactor"),
               "--probe-cmd", f"{sys.executable} {HERE / 'soak_probe.py'}", "--seed", "1", *extra]
        rc = subprocess.run([str(c) for c in cmd], env=env).returncode
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
        temp = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/_delta_log/.tmp/"):
            temp += len(page.get("Contents", []))
        (Path(a.out) / "s3.json").write_text(json.dumps({"bucket": bucket, "lock_table": lock_table,
                                                          "soak_exit": rc, "temp_commit_files_left": temp}) + "\n")
        print(json.dumps({"soak_exit": rc, "temp_commit_files_left": temp}))
        return rc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
