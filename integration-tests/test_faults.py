"""Issue 11 "Prove it": `writer run` (2 shards) through the fault proxy (`faults.py`).

Every case puts events before, during and after a fault window, then checks:
- exact: no loss, no duplicate rows, the rejected table exact (`Env.check_exact`);
- no stall: the records put right after the fault (one marker per shard) are committed
  within STALL_LIMIT of the fault's end;
- no re-read: the writer's summary `read` exceeds the records put by at most 5%: a reader
  restarted from the configured start instead of its checkpoint re-reads everything (with
  TRIM_HORIZON), or skips what was put meanwhile (with LATEST: then `exact` fails).

The writer is stopped with SIGTERM once everything put is committed: `--exit-when-idle`
would need an idle time longer than the fault window (readers are silent throughout a
GetRecords fault), doubling each case. Set FAULTS_REPORT=path to append each case's
measurements (JSON lines).
"""
import datetime
import json
import os
import signal
import time

import pytest

from faults import FaultProxy, Rule
from expected import expected_from_lines
from kinesis_env import END_TIME, GEN, Env, lines_for, put

LEASE = 3.0  # --lease-duration of Env.cmd
MAX_BACKOFF = 10.0  # a reader's GetRecords back-off cap
# A shard may be silent after the fault ends for a lease duration (a lease to take over) or
# one reader back-off (a reader asleep when the fault ends), plus a flush and a commit.
STALL_LIMIT = LEASE + MAX_BACKOFF + 3.0
N = 150  # events per phase
LEASES, LOCK = "leases", "lock"  # placeholders in rules, replaced by the Env's table names

S3_OPS = ("PUT", "GET", "LIST", "COPY")
CASES = {
    # id: (rules, window seconds, services through the proxy)
    # Readers give up once their back-off (0.2 s doubling) reaches 10 s: after 12.6 s of
    # non-retryable errors, but only 31-36 s into a run of 500s, which the SDK retries itself
    # (10 attempts) inside each call. So the 500 window is 30 s: the restart then comes just
    # after the fault ends, when a restart from the wrong place is most costly.
    "getrecords-500": ([Rule("error", "kinesis", "GetRecords", status=500)], 30, ("kinesis",)),
    "getrecords-denied": ([Rule("deny", "kinesis", "GetRecords")], 16, ("kinesis",)),
    "getrecords-throttled": ([Rule("throttle", "kinesis", "GetRecords")], 12, ("kinesis",)),
    # GetRecords is not the SDK's (issue 16): its own error classification must send an
    # expired iterator back to GetShardIterator after the last record read (TRIM_HORIZON:
    # re-acquiring from the start position would re-read everything).
    "getrecords-expired-iterator": ([Rule("deny", "kinesis", "GetRecords", code="ExpiredIteratorException",
                                          probability=0.5, max_count=6)], 8, ("kinesis",)),
    "lease-update-500": ([Rule("error", "dynamodb", "UpdateItem", LEASES, status=500)], 8, ("dynamodb",)),
    "lease-update-lost-reply": ([Rule("drop", "dynamodb", "UpdateItem", LEASES, after=True, probability=0.5)],
                                8, ("dynamodb",)),
    "lock-put-throttled-500": ([Rule("throttle", "dynamodb", "PutItem", LOCK, probability=0.4),
                                Rule("error", "dynamodb", "PutItem", LOCK, status=500, probability=0.4)],
                               8, ("dynamodb",)),
    "lock-put-lost-reply": ([Rule("drop", "dynamodb", "PutItem", LOCK, after=True, probability=0.5),
                             Rule("error", "dynamodb", "PutItem", LOCK, status=500, after=True, probability=0.5)],
                            8, ("dynamodb",)),
    # Every lock PutItem fails for longer than the SDK's retries: the first commit fails.
    "lock-put-500-first-commit": ([Rule("error", "dynamodb", "PutItem", LOCK, status=500)], 14, ("dynamodb",)),
    "s3-503": ([Rule("error", "s3", S3_OPS, status=503, probability=0.3)], 8, ("s3",)),
    "s3-slow": ([Rule("delay", "s3", S3_OPS + ("HEAD",), delay=2.0, probability=0.5)], 8, ("s3",)),
    "dropped-connections": ([Rule("drop", probability=0.1), Rule("drop", after=True, probability=0.1)], 8, ()),
}
# Armed before the first events are put (the others once those are committed).
FROM_THE_START = {"lock-put-500-first-commit"}
MATRIX = [
    ("getrecords-500", "TRIM_HORIZON"),
    ("getrecords-500", "LATEST"),
    ("getrecords-denied", "TRIM_HORIZON"),
    ("getrecords-denied", "LATEST"),
    ("getrecords-throttled", "LATEST"),
    ("getrecords-expired-iterator", "TRIM_HORIZON"),
    ("lease-update-500", "TRIM_HORIZON"),
    ("lease-update-lost-reply", "TRIM_HORIZON"),
    ("lock-put-throttled-500", "LATEST"),
    ("lock-put-lost-reply", "TRIM_HORIZON"),
    ("lock-put-500-first-commit", "LATEST"),
    ("s3-503", "LATEST"),
    ("s3-slow", "TRIM_HORIZON"),
    ("dropped-connections", "TRIM_HORIZON"),
]


def _rules(case, env, window):
    """Fresh copies of a case's rules, with the Env's table names and the window."""
    tables = {LEASES: env.leases, LOCK: env.lock}
    return [Rule(r.action, r.service, r.op, tables.get(r.table, r.table), status=r.status, code=r.code,
                 delay=r.delay, after=r.after, probability=r.probability, max_count=r.max_count, duration=window)
            for r in CASES[case][0]]


def _wait_committed(env, seqs, timeout):
    """The time at which every shard's committed position reached `seqs` (None: timeout)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = env.committed_positions()
        if all(done.get(shard, 0) >= seq for shard, seq in seqs.items()):
            return time.time()
        time.sleep(0.25)
    return None


@pytest.mark.parametrize("case,start", MATRIX, ids=[f"{c}-{s}" for c, s in MATRIX])
def test_fault(writer_bin, moto, tmp_path, case, start):
    _, window, services = CASES[case]
    env = Env(writer_bin, moto, shards=2)
    proxy = FaultProxy(moto["port"], seed=sum(map(ord, case)))
    # Kinesis always goes through the proxy (a pass-through unless a rule says otherwise):
    # its GetRecords count tells when the readers have polled.
    env.aws_env.update(proxy.endpoints(*services, "kinesis") if services else proxy.endpoints())
    lines, seed, rules, problems = [], 1000, [], []
    report = {"case": case, "start": start, "window": window}

    def events(n):
        nonlocal seed
        seed += 1
        put(moto, env.stream, n, seed, **GEN)
        lines.extend(lines_for(tmp_path, n, seed, **GEN))

    def markers(name):
        seqs, raws = env.put_markers(name)
        lines.extend(raws)
        return seqs

    if start == "TRIM_HORIZON":
        events(N)
    p = env.start("--start-position", start, "--exit-when-idle", "300s", "--max-batch-events", "100")
    try:
        if start == "LATEST":
            # Only records put after a reader's first LATEST iterator are read: wait until
            # both leases are held and both readers have polled.
            deadline = time.time() + 30
            while time.time() < deadline and not (
                    env.owners().get(None, 0) == 0 and sum(env.owners().values()) == 2
                    and proxy.requests[("kinesis", "GetRecords")] >= 4):
                time.sleep(0.2)
        if case in FROM_THE_START:
            rules = [proxy.add(r) for r in _rules(case, env, window)]
        if start == "LATEST":
            events(N)
        before = markers("before")
        if not rules:
            t0 = time.time()
            assert _wait_committed(env, before, 60), f"before-phase never committed\n{_tail(p)}"
            report["before_commit_s"] = round(time.time() - t0, 1)
            rules = [proxy.add(r) for r in _rules(case, env, window)]
        fault_end = rules[0].ends_at
        time.sleep(2)
        events(N // 2)
        time.sleep(max(0.0, fault_end - window / 2 - time.time()))
        events(N // 2)
        time.sleep(max(0.0, fault_end - time.time()))
        after = markers("after")  # right at the fault's end: how long until committed?
        events(N)
        done = _wait_committed(env, after, STALL_LIMIT + 10)
        report["stall_s"] = None if done is None else round(done - fault_end, 1)
        t0 = time.time()
        done = _wait_committed(env, markers("end"), 30 if report["stall_s"] is not None else 5)
        report["end_commit_s"] = None if done is None else round(done - t0, 1)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
        proxy.close()
    log = open(p.log_path).read()
    report["injected"] = {repr(r): r.count for r in rules}
    report["log"] = {k: log.count(k) for k in ("shard reader failed", "lease lost", "commit failed")}
    if rules:
        restarts = [_log_time(l) - rules[0].starts_at for l in log.splitlines() if "shard reader failed" in l]
        report["reader_restarts_at_s"] = [round(t, 1) for t in restarts]
    summary = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    put_total = sum(1 for l in lines if l.strip())
    report.update(put=put_total, read=summary.get("read"), exit=p.returncode)
    expected, rejects, _ = expected_from_lines(lines, END_TIME)
    rows = env.rows()
    report.update(lost=len(set(expected) - set(rows)), duplicated=len(rows) - len(set(rows)),
                  rejected_lost=len(rejects) - len(env.rejected()))
    try:
        env.check_exact(lines)
        report["exact"] = True
    except AssertionError as e:
        report["exact"] = f"not exact: {e}"
        problems.append(f"{report['exact']}: {report['lost']} rows lost, {report['duplicated']} duplicated, "
                        f"{report['rejected_lost']} rejected records missing")
    if report.get("stall_s") is None or report["stall_s"] > STALL_LIMIT:
        problems.append(f"records put at the fault's end committed {report.get('stall_s')} s after it "
                        f"(limit {STALL_LIMIT} s)")
    if (summary.get("read") or 0) > put_total * 1.05:
        problems.append(f"read {summary.get('read')} records, {put_total} put: re-read")
    if p.returncode != 0:
        problems.append(f"writer exited {p.returncode}")
    if not any(r.count for r in rules):
        problems.append("no fault injected")
    if path := os.environ.get("FAULTS_REPORT"):
        with open(path, "a") as f:
            f.write(json.dumps(report) + "\n")
    print(json.dumps(report))
    assert not problems, f"{problems}\n{json.dumps(report)}\nwriter log tail:\n{_tail(p)}"


def _log_time(line):
    """A JSON log line's timestamp, Unix seconds."""
    stamp = json.loads(line)["timestamp"].rstrip("Z")[:26]
    return datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc).timestamp()


def _tail(p, n=12):
    """The writer log's last `n` lines, each cut to 300 characters."""
    return "\n".join(l[:300] for l in open(p.log_path).read().splitlines()[-n:])


def test_proxy_speaks_each_protocol(moto):
    """The harness itself, with boto3 through the proxy: operations are told apart, errors
    parse as the service's own codes, a lost reply still took effect, counts add up."""
    import boto3
    import botocore.config
    import botocore.exceptions

    proxy = FaultProxy(moto["port"])
    cfg = botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=5)

    def c(service):
        return boto3.client(service, endpoint_url=proxy.url, region_name="us-east-1", config=cfg,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def code(call, **kw):
        try:
            call(**kw)
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
            return "dropped"
        return "ok"

    try:
        k, ddb, s3 = c("kinesis"), c("dynamodb"), c("s3")
        s3.create_bucket(Bucket="faults-self-test")
        ddb.create_table(TableName="ft", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        deny = proxy.add(Rule("deny", "kinesis", "ListStreams", max_count=1))
        assert code(k.list_streams) == (400, "AccessDeniedException")
        assert code(k.list_streams) == "ok" and deny.count == 1
        proxy.add(Rule("throttle", "dynamodb", "PutItem", "ft", max_count=1))
        assert code(ddb.put_item, TableName="other", Item={"k": {"S": "x"}}) != "ok"  # no such table: not ours
        assert code(ddb.put_item, TableName="ft", Item={"k": {"S": "a"}}) == (400, "ProvisionedThroughputExceededException")
        lost = proxy.add(Rule("drop", "dynamodb", "PutItem", after=True, max_count=1))
        assert code(ddb.put_item, TableName="ft", Item={"k": {"S": "b"}}) == "dropped"
        assert "Item" in ddb.get_item(TableName="ft", Key={"k": {"S": "b"}}), "the lost reply's write happened"
        assert lost.count == 1
        proxy.add(Rule("error", "s3", "PUT", status=503, max_count=1))
        proxy.add(Rule("throttle", "s3", "LIST", max_count=1))
        assert code(s3.put_object, Bucket="faults-self-test", Key="a", Body=b"x" * 100_000) == (503, "ServiceUnavailable")
        s3.put_object(Bucket="faults-self-test", Key="a", Body=b"x" * 100_000)
        assert code(s3.list_objects_v2, Bucket="faults-self-test") == (503, "SlowDown")
        assert s3.head_object(Bucket="faults-self-test", Key="a")["ContentLength"] == 100_000
        proxy.add(Rule("error", "s3", "COPY", status=500, max_count=1))
        assert code(s3.copy_object, Bucket="faults-self-test", Key="b",
                    CopySource={"Bucket": "faults-self-test", "Key": "a"}) == (500, "InternalError")
        slow = proxy.add(Rule("delay", "s3", "GET", delay=0.5, start_after=0, duration=60))
        t0 = time.time()
        assert s3.get_object(Bucket="faults-self-test", Key="a")["Body"].read() == b"x" * 100_000
        assert time.time() - t0 >= 0.5 and slow.count == 1
        proxy.remove(slow)
        later = proxy.add(Rule("error", "s3", "HEAD", status=500, start_after=30))
        assert code(s3.head_object, Bucket="faults-self-test", Key="a") == "ok" and later.count == 0
        assert proxy.requests[("kinesis", "ListStreams")] == 2
        assert proxy.requests[("s3", "PUT")] >= 3 and proxy.requests[("s3", "COPY")] == 1
    finally:
        proxy.close()
