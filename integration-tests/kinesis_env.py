"""A Kinesis stream, lease and lock tables and a bucket on moto for `writer run`, with the
helpers the service tests share (test_kinesis_service.py, test_faults.py)."""
import json
import os
import subprocess
import tempfile
import time
import uuid

from conftest import _bin, run
from expected import expected_from_lines
from s3util import client, duck_s3, make_bucket

END_TIME = 1_764_000_000
# The generator mix the service tests use: duplicates, malformed records, late events.
GEN = dict(duplicate_ratio=0.1, malformed_ratio=0.02, late_ratio=0.2)


def make_stream(moto, shards):
    name = f"s-{uuid.uuid4().hex[:8]}"
    k = client(moto, "kinesis")
    k.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(50):
        if k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.1)
    return name


def put(moto, stream, count, seed, **kw):
    args = [_bin("loadgen"), "generate", "--count", str(count), "--seed", str(seed), "--end-time", str(END_TIME),
            "--kinesis-stream", stream]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    run(args, env=moto["env"])


def lines_for(tmp_path, count, seed, **kw):
    f = tmp_path / f"lines-{seed}.ndjson"
    args = [_bin("loadgen"), "generate", "--count", str(count), "--seed", str(seed), "--end-time", str(END_TIME),
            "--output", str(f)]
    for k, v in kw.items():
        if k in ("rate", "kpl_aggregate"):
            continue
        args += [f"--{k.replace('_', '-')}", str(v)]
    run(args)
    return f.read_bytes().split(b"\n")[:-1]


class Env:
    def __init__(self, writer_bin, moto, shards=2):
        self.writer_bin = writer_bin
        self.moto = moto
        self.bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
        self.stream = make_stream(moto, shards)
        self.leases = f"leases-{uuid.uuid4().hex[:8]}"
        self.lock = f"lock-{uuid.uuid4().hex[:8]}"
        run([writer_bin, "lock-table", "create", "--lock-table", self.lock], env=moto["env"])
        # What the writer gets (tests point services at a fault proxy by updating it).
        self.aws_env = dict(moto["env"])
        self._positions, self._versions_read = {}, set()

    def cmd(self, *extra):
        return [self.writer_bin, "--log-format", "json", "run", "--stream", self.stream,
                "--table", f"s3://{self.bucket}/events", "--rejected-table", f"s3://{self.bucket}/events_rejected",
                "--lease-table", self.leases, "--commit-lock", "dynamodb", "--lock-table", self.lock,
                "--lease-duration", "3s", "--flush-interval", "1s", "--poll-interval", "200ms",
                "--metrics-port", "0", "--max-future", "36500d", *extra]

    def start(self, *extra):
        # stderr goes to a file: an unread pipe fills up and blocks the writer's logging.
        log = tempfile.NamedTemporaryFile(prefix="writer-", suffix=".log", delete=False)
        p = subprocess.Popen(self.cmd(*extra), env={**os.environ, **self.aws_env, "RUST_LOG": "info,buoyant_kernel=warn,deltalake_core=warn"},
                             stdout=subprocess.PIPE, stderr=log)
        p.log_path = log.name
        return p

    def run_until_idle(self, idle="6s", timeout=300):
        summary, p = run(self.cmd("--exit-when-idle", idle), env=self.aws_env, timeout=timeout)
        return summary

    def rows(self):
        con = duck_s3(self.moto)
        return con.execute(
            f"SELECT event_uuid, event_type, created_date FROM delta_scan('s3://{self.bucket}/events')").fetchall()

    def rejected(self):
        con = duck_s3(self.moto)
        return con.execute(f"SELECT raw, reason FROM delta_scan('s3://{self.bucket}/events_rejected')").fetchall()

    def check_exact(self, lines):
        expected, rejects, _ = expected_from_lines(lines, END_TIME)
        rows = self.rows()
        assert len(rows) == len(set(rows)), "duplicate rows"
        assert set(rows) == set(expected), (len(rows), len(expected))
        rej = self.rejected()
        assert sorted(bytes(r[0]) for r in rej) == sorted(raw for _, raw in rejects.values())
        return expected

    def owners(self):
        """{lease owner (None: unowned): number of leases}."""
        out = {}
        ddb = client(self.moto, "dynamodb")
        try:
            items = ddb.scan(TableName=self.leases)["Items"]
        except ddb.exceptions.ResourceNotFoundException:
            return out  # the writers have not created the lease table yet
        for item in items:
            o = item.get("leaseOwner", {}).get("S")
            out[o] = out.get(o, 0) + 1
        return out

    def shard_starts(self):
        """{shard id: its starting hash key} of the stream's shards."""
        shards = client(self.moto, "kinesis").list_shards(StreamName=self.stream)["Shards"]
        return {s["ShardId"]: s["HashKeyRange"]["StartingHashKey"] for s in shards}

    def put_markers(self, tag):
        """Put one record into each shard; {shard: its sequence number}, and the raw records
        (they are not JSON: they land in the rejected table)."""
        k = client(self.moto, "kinesis")
        seqs, raws = {}, []
        for shard, start in self.shard_starts().items():
            raw = f"marker {tag} {shard} {uuid.uuid4().hex}".encode()
            r = k.put_record(StreamName=self.stream, Data=raw, PartitionKey="m", ExplicitHashKey=start)
            seqs[r["ShardId"]] = int(r["SequenceNumber"])
            raws.append(raw)
        return seqs, raws

    def committed_positions(self):
        """{shard: last sequence number committed}, from the events table's Delta log (read
        straight from moto; each version is read once)."""
        s3 = client(self.moto, "s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="events/_delta_log/0"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        for key in keys:
            if key in self._versions_read:
                continue
            self._versions_read.add(key)
            for line in s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().splitlines():
                info = json.loads(line).get("commitInfo", {}).get("kinesis", {})
                for shard, meta in info.get("shards", {}).items():
                    seq = int(meta["last_sequence"])
                    self._positions[shard] = max(self._positions.get(shard, 0), seq)
        return dict(self._positions)
