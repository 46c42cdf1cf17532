"""Issue 3: Delta on S3 with the DynamoDB commit lock (and S3 conditional puts), against moto."""
import json
import os
import subprocess
import time
import uuid

import polars_deltalake
import pytest

from conftest import _bin, run
from expected import expected_from_lines
from faults import FaultProxy, Rule
from s3util import client, duck_s3, log_versions, make_bucket, polars_s3_options, temp_commit_files


def gen(path, count, seed, **kw):
    args = [_bin("loadgen"), "generate", "--count", str(count), "--seed", str(seed), "--output", str(path)]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    run(args)
    return path


def ingest_s3(writer_bin, moto, src, bucket, lock="dynamodb", lock_table="delta_log", extra=(), env=None, check=True):
    cmd = [writer_bin, "ingest", "--input", str(src), "--table", f"s3://{bucket}/events",
           "--rejected-table", f"s3://{bucket}/events_rejected", "--commit-lock", lock, *extra]
    if lock == "dynamodb":
        cmd += ["--lock-table", lock_table]
    return run(cmd, env={**moto["env"], **(env or {})}, check=check)


def create_lock_table(writer_bin, moto, name):
    summary, _ = run([writer_bin, "lock-table", "create", "--lock-table", name], env=moto["env"])
    return summary


def test_lock_table_create_is_spark_schema_and_idempotent(writer_bin, moto):
    name = f"lock_{uuid.uuid4().hex[:8]}"
    assert create_lock_table(writer_bin, moto, name)["result"] == "created"
    assert create_lock_table(writer_bin, moto, name)["result"] == "already_existed"
    ddb = client(moto, "dynamodb")
    t = ddb.describe_table(TableName=name)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in t["KeySchema"]} == {("tablePath", "HASH"), ("fileName", "RANGE")}
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expireTime" and ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")


def test_s3_without_commit_lock_is_refused(writer_bin, moto, tmp_path):
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    src = tmp_path / "in.ndjson"
    src.write_text('{"event_uuid":"a","event_name":"x","created_at":1710670530}\n')
    _, p = run([writer_bin, "ingest", "--input", str(src), "--table", f"s3://{bucket}/events",
                "--rejected-table", f"s3://{bucket}/rej"], env=moto["env"], check=False)
    assert p.returncode != 0
    assert b"commit-lock" in p.stderr
    assert log_versions(moto, bucket, "events") == []


@pytest.mark.parametrize("lock", ["dynamodb", "s3-conditional"])
def test_s3_end_to_end_exact(writer_bin, moto, tmp_path, lock):
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock_table = f"lock_{uuid.uuid4().hex[:8]}"
    if lock == "dynamodb":
        create_lock_table(writer_bin, moto, lock_table)
    src = gen(tmp_path / "in.ndjson", 3000, 11, duplicate_ratio=0.1, malformed_ratio=0.02)
    s1, _ = ingest_s3(writer_bin, moto, src, bucket, lock, lock_table, ["--max-batch-events", "700"])
    lines = src.read_bytes().split(b"\n")[:-1]
    events, rejects, counts = expected_from_lines(lines, int(time.time()))
    assert (s1["written"], s1["duplicates"], s1["rejected"]) == (len(events), counts["duplicates"], len(rejects))
    s2, _ = ingest_s3(writer_bin, moto, src, bucket, lock, lock_table)
    assert s2["written"] == 0 and s2["rejected_written"] == 0

    versions = log_versions(moto, bucket, "events")
    assert versions == list(range(len(versions))) and versions[-1] == s1["table_version"]

    con = duck_s3(moto)
    rows = con.execute(f"SELECT event_uuid, event_type, created_date FROM delta_scan('s3://{bucket}/events')").fetchall()
    assert len(rows) == len(events) == len(set(rows))
    assert set(rows) == set(events)
    df = polars_deltalake.read_delta(f"s3://{bucket}/events", storage_options=polars_s3_options(moto))
    assert df.height == len(events)

    if lock == "dynamodb":
        items = client(moto, "dynamodb").scan(TableName=lock_table)["Items"]
        mine = [i for i in items if i["tablePath"]["S"] == f"s3://{bucket}/events"]
        assert sorted(int(i["fileName"]["S"][:20]) for i in mine) == list(range(0, versions[-1] + 1))
        assert all(i["complete"]["S"] == "true" and int(i["expireTime"]["N"]) > time.time() for i in mine)
        assert all(i["tempPath"]["S"].startswith(".tmp/") for i in mine)
        # A published commit's temp file is deleted (not left for a 30-day lifecycle rule:
        # at 1x that was ~86k objects, ~7 GB, under _delta_log/.tmp/).
        assert temp_commit_files(moto, bucket, "events") == []
        assert temp_commit_files(moto, bucket, "events_rejected") == []


@pytest.mark.parametrize("lock", ["dynamodb", "s3-conditional"])
def test_concurrent_committer_processes(writer_bin, moto, tmp_path, lock):
    """Several processes commit to one table at once, with overlapping events: every commit
    lands once, versions are contiguous, and every event is stored exactly once."""
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock_table = f"lock_{uuid.uuid4().hex[:8]}"
    if lock == "dynamodb":
        create_lock_table(writer_bin, moto, lock_table)
    base = gen(tmp_path / "base.ndjson", 2400, 5, duplicate_ratio=0.0, malformed_ratio=0.0)
    lines = base.read_bytes().split(b"\n")[:-1]
    # 4 writers, each gets its own slice plus a slice shared with its neighbour.
    n = 4
    chunk = len(lines) // n
    inputs = []
    for i in range(n):
        mine = lines[i * chunk:(i + 1) * chunk]
        shared = lines[((i + 1) % n) * chunk:((i + 1) % n) * chunk + chunk // 3]
        f = tmp_path / f"w{i}.ndjson"
        f.write_bytes(b"\n".join(mine + shared) + b"\n")
        inputs.append(f)
    procs = []
    for i, f in enumerate(inputs):
        cmd = [writer_bin, "ingest", "--input", str(f), "--table", f"s3://{bucket}/events",
               "--rejected-table", f"s3://{bucket}/events_rejected", "--commit-lock", lock,
               "--max-batch-events", "100", "--writer-id", f"w{i}"]
        if lock == "dynamodb":
            cmd += ["--lock-table", lock_table]
        procs.append(subprocess.Popen(cmd, env={**os.environ, **moto["env"], "RUST_LOG": "warn"},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    summaries = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-3000:]
        summaries.append(json.loads(out.decode().strip().splitlines()[-1]))
    expected, _, _ = expected_from_lines(lines, int(time.time()))
    assert sum(s["written"] for s in summaries) == len(expected)
    assert sum(s["read"] for s in summaries) == sum(s["written"] + s["duplicates"] for s in summaries)
    versions = log_versions(moto, bucket, "events")
    assert versions == list(range(len(versions)))
    con = duck_s3(moto)
    rows = con.execute(f"SELECT event_uuid, event_type, created_date FROM delta_scan('s3://{bucket}/events')").fetchall()
    assert len(rows) == len(set(rows)) == len(expected)
    assert set(rows) == set(expected)
    assert temp_commit_files(moto, bucket, "events") == []


def _unpublish(moto, bucket, lock_table, version, keep_log_file):
    """Put the table in the state a writer crashed in: the lock entry for `version` written
    but incomplete, its content only in the temp file (and N.json removed unless kept)."""
    s3 = client(moto, "s3")
    key = f"events/_delta_log/{version:020d}.json"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    temp = f".tmp/{version:020d}.json.{uuid.uuid4()}"
    s3.put_object(Bucket=bucket, Key=f"events/_delta_log/{temp}", Body=body)
    if not keep_log_file:
        s3.delete_object(Bucket=bucket, Key=key)
    client(moto, "dynamodb").put_item(TableName=lock_table, Item={
        "tablePath": {"S": f"s3://{bucket}/events"}, "fileName": {"S": f"{version:020d}.json"},
        "tempPath": {"S": temp}, "complete": {"S": "false"}})
    return body


@pytest.mark.parametrize("state", ["entry_not_copied", "copied_not_completed", "temp_only"])
def test_crash_states_are_repaired(writer_bin, compactor_bin, moto, tmp_path, state):
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock_table = f"lock_{uuid.uuid4().hex[:8]}"
    create_lock_table(writer_bin, moto, lock_table)
    a = gen(tmp_path / "a.ndjson", 600, 21, duplicate_ratio=0.0, malformed_ratio=0.0)
    b = gen(tmp_path / "b.ndjson", 600, 22, duplicate_ratio=0.0, malformed_ratio=0.0)
    s1, _ = ingest_s3(writer_bin, moto, a, bucket, "dynamodb", lock_table, ["--max-batch-events", "200"])
    last = s1["table_version"]
    if state == "temp_only":
        # crashed after writing the temp file of the next version, before the entry
        client(moto, "s3").put_object(Bucket=bucket, Key=f"events/_delta_log/.tmp/{last + 1:020d}.json.{uuid.uuid4()}",
                                      Body=b'{"commitInfo":{}}\n')
        body = None
    else:
        body = _unpublish(moto, bucket, lock_table, last, keep_log_file=(state == "copied_not_completed"))
    if state == "entry_not_copied":
        # a reader repairs it: the version becomes visible without any writer
        summary, p = run([compactor_bin, "history", "--table", f"s3://{bucket}/events", "--commit-lock", "dynamodb",
                          "--lock-table", lock_table, "--limit", "3"], env=moto["env"])
        assert json.loads(p.stdout.decode().splitlines()[0])["version"] == last
    s2, _ = ingest_s3(writer_bin, moto, b, bucket, "dynamodb", lock_table, ["--max-batch-events", "200"])
    versions = log_versions(moto, bucket, "events")
    assert versions == list(range(len(versions))), versions
    if body is not None:
        got = client(moto, "s3").get_object(Bucket=bucket, Key=f"events/_delta_log/{last:020d}.json")["Body"].read()
        assert got == body
    item = client(moto, "dynamodb").get_item(TableName=lock_table, Key={
        "tablePath": {"S": f"s3://{bucket}/events"}, "fileName": {"S": f"{last:020d}.json"}})["Item"]
    assert item["complete"]["S"] == "true"
    lines = a.read_bytes().split(b"\n")[:-1] + b.read_bytes().split(b"\n")[:-1]
    expected, _, _ = expected_from_lines(lines, int(time.time()))
    con = duck_s3(moto)
    rows = con.execute(f"SELECT event_uuid, event_type, created_date FROM delta_scan('s3://{bucket}/events')").fetchall()
    assert len(rows) == len(set(rows)) == len(expected)
    assert s1["written"] + s2["written"] == len(expected)


def test_survives_throttling_and_5xx(writer_bin, moto, tmp_path):
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock_table = f"lock_{uuid.uuid4().hex[:8]}"
    create_lock_table(writer_bin, moto, lock_table)
    src = gen(tmp_path / "in.ndjson", 1500, 31, duplicate_ratio=0.1, malformed_ratio=0.01)
    # 15% of requests fail before reaching moto (S3 503 SlowDown, DynamoDB throttling); 5% of
    # DynamoDB ones are forwarded and then answered 500 (it happened, the client thinks not).
    proxy = FaultProxy(moto["port"], seed=1)
    proxy.add(Rule("throttle", "s3", probability=0.15))
    proxy.add(Rule("throttle", "dynamodb", code="ThrottlingException", probability=0.15))
    proxy.add(Rule("error", "dynamodb", status=500, after=True, probability=0.05 / 0.85))
    try:
        env = proxy.endpoints()
        s, _ = ingest_s3(writer_bin, moto, src, bucket, "dynamodb", lock_table, ["--max-batch-events", "300"], env=env)
    finally:
        proxy.close()
    assert proxy.injected > 5
    lines = src.read_bytes().split(b"\n")[:-1]
    expected, rejects, _ = expected_from_lines(lines, int(time.time()))
    con = duck_s3(moto)
    rows = con.execute(f"SELECT event_uuid, event_type, created_date FROM delta_scan('s3://{bucket}/events')").fetchall()
    assert len(rows) == len(set(rows)) == len(expected)
    assert set(rows) == set(expected)
    versions = log_versions(moto, bucket, "events")
    assert versions == list(range(len(versions)))


def test_running_writer_repairs_a_commit_left_unpublished_under_it(writer_bin, moto, tmp_path):
    """The writer finds new versions by reading `N+1.json` (no LIST). A commit another
    writer made but never published (it crashed after its lock entry, before the copy to
    `N.json`) is invisible to that probe: the running writer's next commit must conflict,
    repair the foreign commit, replay it and land on the version after it."""
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock_table = f"lock_{uuid.uuid4().hex[:8]}"
    create_lock_table(writer_bin, moto, lock_table)
    a = gen(tmp_path / "a.ndjson", 300, 41, duplicate_ratio=0.0, malformed_ratio=0.0)
    # Batch b: new events in exactly a's partitions, so the writer needs no file list (which
    # would bring delta-rs' table state forward and repair the commit as a side effect).
    b = tmp_path / "b.ndjson"
    b.write_bytes(b"".join(json.dumps({**json.loads(l), "event_uuid": str(uuid.uuid4())}).encode() + b"\n"
                           for l in a.read_bytes().split(b"\n")[:-1]))
    cmd = [writer_bin, "ingest", "--input", "-", "--table", f"s3://{bucket}/events",
           "--rejected-table", f"s3://{bucket}/events_rejected", "--commit-lock", "dynamodb",
           "--lock-table", lock_table, "--flush-interval", "200ms"]
    p = subprocess.Popen(cmd, env={**os.environ, **moto["env"], "RUST_LOG": "warn"},
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(a.read_bytes())
        p.stdin.flush()
        # Wait until batch a is committed (the log stops growing).
        deadline, seen, since = time.time() + 60, None, time.time()
        while time.time() < deadline:
            now = log_versions(moto, bucket, "events")
            if now != seen:
                seen, since = now, time.time()
            elif len(now) > 1 and time.time() - since > 1.5:
                break
            time.sleep(0.2)
        last = seen[-1]
        assert last >= 1 and seen == list(range(last + 1))
        # Version last+1, committed by a writer that then died: lock entry and temp file only.
        foreign = (b'{"commitInfo":{"timestamp":1,"operation":"WRITE","operationParameters":{"mode":"Append"}}}\n'
                   b'{"txn":{"appId":"foreign-writer","version":7}}')
        temp = f".tmp/{last + 1:020d}.json.{uuid.uuid4()}"
        client(moto, "s3").put_object(Bucket=bucket, Key=f"events/_delta_log/{temp}", Body=foreign)
        client(moto, "dynamodb").put_item(TableName=lock_table, Item={
            "tablePath": {"S": f"s3://{bucket}/events"}, "fileName": {"S": f"{last + 1:020d}.json"},
            "tempPath": {"S": temp}, "complete": {"S": "false"}})
        out, err = p.communicate(input=b.read_bytes(), timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err.decode()[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["table_version"] >= last + 2
    assert log_versions(moto, bucket, "events") == list(range(summary["table_version"] + 1))
    got = client(moto, "s3").get_object(Bucket=bucket, Key=f"events/_delta_log/{last + 1:020d}.json")["Body"].read()
    assert got == foreign
    lines = a.read_bytes().split(b"\n")[:-1] + b.read_bytes().split(b"\n")[:-1]
    expected, _, _ = expected_from_lines(lines, int(time.time()))
    rows = duck_s3(moto).execute(
        f"SELECT event_uuid, event_type, created_date FROM delta_scan('s3://{bucket}/events')").fetchall()
    assert len(rows) == len(set(rows)) == len(expected)
    assert set(rows) == set(expected)
