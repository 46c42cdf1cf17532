"""Issue 11: a short soak of the service with every retention shortened to seconds.

`writer run` (S3 + DynamoDB lock) keeps running while `compactor run` (optimize, checkpoint
with log expiry, vacuum) loops beside it, and traffic alternates with idle periods longer
than the log retention — so the writer's last log entries are expired under it while it is
idle (defect 3), and vacuum runs against files that time travel may still need (defect 5).
At the end: the table is exact, nothing wedged, and the data files in storage are exactly
the live files of the latest version once the retention has passed.

The table properties are shortened in the test (never the production defaults). The
expected live files are replayed here from the checkpoint parquet and the log JSON
(pyarrow + json, no delta-rs); rows are read with DuckDB's delta extension.
"""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pyarrow.parquet as pq

from conftest import run
from kinesis_env import Env
from s3util import client, duck_s3
from test_vacuum_retention import S3, canonical, is_data

RETENTION = "interval 3 seconds"
DAY = 1_764_000_000 - 1_764_000_000 % 86400  # a fixed UTC midnight
TYPES = ("pay", "login", "view")


def live_files(store):
    """Live data files of the latest version: the newest checkpoint, then the JSONs after it."""
    listing = store.listing()
    start, files = -1, set()
    if "_delta_log/_last_checkpoint" in listing:
        start = json.loads(store.read("_delta_log/_last_checkpoint"))["version"]
        table = pq.read_table(__import__("io").BytesIO(store.read(f"_delta_log/{start:020}.checkpoint.parquet")))
        for add in table.column("add").to_pylist():
            if add and add.get("path"):
                files.add(canonical(add["path"]))
    versions = sorted(int(k[11:31]) for k in listing
                      if k.startswith("_delta_log/") and k.endswith(".json") and k[11:31].isdigit())
    for v in [v for v in versions if v > start]:
        for line in store.read(f"_delta_log/{v:020}.json").decode().splitlines():
            a = json.loads(line) if line.strip() else {}
            if "add" in a:
                files.add(canonical(a["add"]["path"]))
            elif "remove" in a:
                files.discard(canonical(a["remove"]["path"]))
    return files


def records(round_no, count):
    """`count` events over three types on one day, a tenth of them sent twice, plus a bad line."""
    out = []
    for i in range(count):
        event = {"event_uuid": str(uuid.UUID(int=round_no * 100_000 + i)),
                 "event_name": f"{TYPES[i % 3]}:x", "created_at": DAY + 3600 + i, "n": i}
        out.append(json.dumps(event).encode())
        if i % 10 == 0:
            out.append(json.dumps(event).encode())
    out.append(b"not json " + str(round_no).encode())
    return out


def put_records(moto, stream, data):
    k = client(moto, "kinesis")
    for i in range(0, len(data), 100):
        k.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": str(j)} for j, d in
                                                  enumerate(data[i:i + 100], start=i)])


class CompactorLoop(threading.Thread):
    def __init__(self, compactor_bin, uri, lock_args, env):
        super().__init__(daemon=True)
        # Vacuum too keeps files for seconds only (its own default is a week).
        self.cmd = [compactor_bin, "run", "--table", uri, "--retention", "3s", *lock_args]
        self.env, self.stop, self.runs, self.failures = env, threading.Event(), 0, []

    def run(self):
        while not self.stop.is_set():
            summary, p = run(self.cmd, env=self.env, check=False, timeout=300)
            self.runs += 1
            if p.returncode != 0:
                self.failures.append(p.stderr.decode(errors="replace")[-2000:])
            self.stop.wait(1.0)


def test_service_and_compactor_with_retention_in_seconds(writer_bin, compactor_bin, moto):
    env = Env(writer_bin, moto, shards=2)
    store = S3(moto, env.bucket, "events", env.lock)
    lock_args = ["--commit-lock", "dynamodb", "--lock-table", env.lock]
    sent = []

    # Round 0 creates the tables; then every retention is shortened to seconds.
    batch = records(0, 90)
    put_records(moto, env.stream, batch)
    sent += batch
    env.run_until_idle(idle="3s")
    import deltalake  # setup only: table properties
    opts = {**store.storage_options, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    deltalake.DeltaTable(store.uri, storage_options=opts).alter.set_table_properties({
        "delta.logRetentionDuration": RETENTION, "delta.deletedFileRetentionDuration": RETENTION,
        "delta.checkpointInterval": "4"})

    log = tempfile.NamedTemporaryFile(prefix="writer-soak-", suffix=".log", delete=False)
    writer = subprocess.Popen(env.cmd("--writer-id", "soak"), stdout=subprocess.PIPE, stderr=log,
                              env={**os.environ, **moto["env"], "RUST_LOG": "info,buoyant_kernel=warn,deltalake_core=warn"})
    compactor = CompactorLoop(compactor_bin, store.uri, lock_args, moto["env"])
    compactor.start()
    try:
        for round_no in range(1, 5):
            batch = records(round_no, 90)
            put_records(moto, env.stream, batch)
            sent += batch
            time.sleep(3)   # committed (flush interval 1 s)
            time.sleep(8)   # idle for longer than the log retention while the compactor runs
        # one last round after the last idle period
        batch = records(9, 90)
        put_records(moto, env.stream, batch)
        sent += batch
        time.sleep(4)
    finally:
        compactor.stop.set()
        compactor.join(timeout=300)
        writer.send_signal(signal.SIGTERM)
        out, _ = writer.communicate(timeout=60)
    text = open(log.name).read()
    assert writer.returncode == 0, text[-3000:]
    assert not compactor.failures, compactor.failures[:2]
    assert compactor.runs >= 5, compactor.runs
    assert "the log moved on past this writer" in text, "the idle writer's entries were never expired: no test"

    # Exact: every distinct event once, every bad line rejected once.
    expected = {json.loads(d)["event_uuid"] for d in sent if d.startswith(b"{")}
    con = duck_s3(moto)
    rows = con.execute(f"SELECT event_uuid FROM delta_scan('s3://{env.bucket}/events')").fetchall()
    assert len(rows) == len({r[0] for r in rows}), "duplicate rows"
    assert {r[0] for r in rows} == expected
    rejected = con.execute(f"SELECT count(*) FROM delta_scan('s3://{env.bucket}/events_rejected')").fetchone()[0]
    assert rejected == sum(1 for d in sent if not d.startswith(b"{"))

    # Storage = live files once nothing is protected any more: wait out the retention, vacuum.
    time.sleep(4)
    summary, _ = run([compactor_bin, "vacuum", "--table", store.uri, "--retention", "3s", *lock_args],
                     env=moto["env"])
    stored = {canonical(k) for k in store.listing() if is_data(k)}
    assert stored == live_files(store), (len(stored), summary)
