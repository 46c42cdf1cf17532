"""Issue 2: the core write path on a local table, checked with independent readers."""
import datetime as dt
import json
import os
import pathlib
import time
import urllib.parse
from decimal import Decimal

import polars as pl
import polars_deltalake
import pytest

from conftest import run
from expected import expected_from_lines

# Hand-written edge cases on top of the generated corpus.
EDGE = [
    b'{"event_uuid":"edge-1","event_name":"payment:order:completed","created_at":1710670530,"amount":1}',
    b'{"event_uuid":"edge-1","event_name":"payment:order:completed","created_at":1710670530,"amount":1}',
    b'{"created_at":1710670530.5,"event_name":"login","event_uuid":"edge-2","nested":{"a":[1,{"b":null}]}}',
    b'{"event_uuid":"edge-3","event_name":"a::b","created_at":1709164800}',
    b'{"event_uuid":"edge-4","event_name":"caf\xc3\xa9:\xe6\x9d\xb1\xe4\xba\xac","created_at":1709251199.999,"t":"\\u00e9\\n"}',
    b'{"event_uuid":"edge-5","event_name":"x","created_at":1710670530000}',
    b'{"event_uuid":"edge-6","event_name":"x","created_at":true}',
    b'{"event_uuid":"edge-7","event_name":"x","created_at":1710670530,"event_uuid":"dup"}',
    b'\xff\xfe\xfd',
    b'',
    b'   ',
    b'null',
    b'{"event_uuid":"edge-8","event_name":"with space/and=eq","created_at":1710670530}',
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, loadgen_bin):
    d = tmp_path_factory.mktemp("corpus")
    gen = d / "gen.ndjson"
    summary, _ = run([loadgen_bin, "generate", "--count", "6000", "--seed", "7", "--output", str(gen),
                      "--duplicate-ratio", "0.1", "--malformed-ratio", "0.03", "--large-ratio", "0.01",
                      "--late-ratio", "0.3", "--max-lateness", "5d"])
    assert summary["lines"] == 6000
    data = gen.read_bytes() + b"\n".join(EDGE) + b"\n"
    path = d / "events.ndjson"
    path.write_bytes(data)
    return path


def ingest(writer_bin, src, lake, extra=()):
    summary, _ = run([writer_bin, "ingest", "--input", str(src), "--table", str(lake / "events"),
                      "--rejected-table", str(lake / "events_rejected"), *extra])
    return summary


def test_ingest_twice_exact(writer_bin, corpus, tmp_lake, duck):
    lines = corpus.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    now = int(time.time())
    events, rejects, counts = expected_from_lines(lines, now)

    # Small batches so dedupe against the table (not only within a batch) is exercised.
    first = ingest(writer_bin, corpus, tmp_lake, ["--max-batch-events", "1500"])
    assert first["read"] == counts["read"]
    assert first["written"] == len(events)
    assert first["duplicates"] == counts["duplicates"]
    assert first["rejected"] == len(rejects)
    assert first["read"] == first["written"] + first["duplicates"] + first["rejected"]
    assert first["table_version"] >= 1

    second = ingest(writer_bin, corpus, tmp_lake)
    assert second["written"] == 0
    assert second["rejected_written"] == 0
    assert second["duplicates"] == first["written"] + first["duplicates"]
    assert second["table_version"] == first["table_version"]

    table = str(tmp_lake / "events")
    rows = duck.execute(f"""
        SELECT event_uuid, event_name, created_at, epoch_us(created_timestamp), created_datetime,
               event_type, event_subtype, created_date, payload, source, source_position
        FROM delta_scan('{table}')""").fetchall()
    assert len(rows) == len(events)
    uuids = [(r[0], r[5], r[7]) for r in rows]
    assert len(set(uuids)) == len(uuids), "duplicate keys in table"
    by_key = {(r[0], r[5], r[7]): r for r in rows}
    assert set(by_key) == set(events)
    for key, exp in events.items():
        r = by_key[key]
        assert r[1] == exp["event_name"]
        assert r[2] == exp["created_at"]
        assert r[3] == exp["created_micros"], (r, exp)
        assert r[4] == exp["created_datetime"]
        assert r[6] == exp["event_subtype"]
        assert json.loads(r[8], parse_float=Decimal) == exp["payload"]
        assert r[9].startswith("file:")
        assert int(r[10]) == exp["line"], "first occurrence must win"

    # polars-deltalake agrees (a second, independent reader).
    df = polars_deltalake.read_delta(table)
    assert df.height == len(events)
    assert df.select(pl.col("event_uuid").n_unique()).item() == len({k[0] for k in events})

    # Hive-style folders, as the log says.
    log = pathlib.Path(table) / "_delta_log"
    adds = []
    for f in sorted(log.glob("*.json")):
        for line in f.read_text().splitlines():
            a = json.loads(line)
            if "add" in a:
                adds.append(a["add"])
    assert adds
    for a in adds:
        rel = urllib.parse.unquote(a["path"])
        pv = a["partitionValues"]
        assert rel.startswith(f"event_type={urllib.parse.quote(pv['event_type'], safe='')}/created_date={pv['created_date']}/"), rel
        assert (pathlib.Path(table) / rel).exists()
    assert (pathlib.Path(table) / "event_type=payment").is_dir()

    # Commit metadata tells an auditor what each version holds.
    infos = []
    for f in sorted(log.glob("*.json")):
        for line in f.read_text().splitlines():
            a = json.loads(line)
            if "commitInfo" in a and a["commitInfo"].get("operation") == "WRITE":
                infos.append(a["commitInfo"])
    assert infos and all("writer" in i and "source" in i and "counts" in i for i in infos)

    # The rejected table is complete: every bad line, once, with its reason and raw bytes.
    rej = duck.execute(f"""
        SELECT source_position, reason, raw, message, rejected_at FROM delta_scan('{tmp_lake / "events_rejected"}')
    """).fetchall()
    got = {int(r[0]): (r[1], bytes(r[2])) for r in rej}
    assert len(rej) == len(rejects)
    assert got == rejects
    assert all(r[3] for r in rej)


def test_stdin_and_summary_contract(writer_bin, tmp_lake):
    lines = [
        b'{"event_uuid":"s1","event_name":"a:b:c","created_at":1710670530}',
        b'{"event_uuid":"s1","event_name":"a:b:c","created_at":1710670530}',
        b'not json',
    ]
    summary, p = run([writer_bin, "ingest", "--input", "-", "--table", str(tmp_lake / "t"),
                      "--rejected-table", str(tmp_lake / "r")], input=b"\n".join(lines) + b"\n")
    for k in ("read", "written", "duplicates", "rejected", "table_version"):
        assert k in summary
    assert (summary["read"], summary["written"], summary["duplicates"], summary["rejected"]) == (3, 1, 1, 1)


def test_real_failure_exits_nonzero(writer_bin, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _, p = run([writer_bin, "ingest", "--input", "/nonexistent/input.ndjson", "--table", str(tmp_path / "t"),
                "--rejected-table", str(tmp_path / "r")], check=False)
    assert p.returncode != 0
    assert b"input" in p.stderr
    _, p = run([writer_bin, "ingest", "--input", "-", "--table", str(blocker / "t"),
                "--rejected-table", str(tmp_path / "r")], input=b"", check=False)
    assert p.returncode != 0
    assert p.stderr.strip()


def test_help_documents_flags(writer_bin):
    _, p = run([writer_bin, "ingest", "--help"])
    out = p.stdout.decode()
    for flag in ("--input", "--table", "--rejected-table", "--max-batch-events", "--flush-interval",
                 "--dedupe-memory-mb", "--min-created-at", "--max-future"):
        assert flag in out


def test_checkpoints_written_off_the_commit_path(writer_bin, tmp_lake, duck):
    """Every `delta.checkpointInterval` (100, set at table creation) commits a checkpoint falls due; it is
    written by a background task rather than inside the commit. When commits outrun it (here:
    206 tiny commits in about a second) a due checkpoint waits and only the newest waiting
    one is written, so checkpoints sit only at due versions and the last due one (199) is
    always there when the writer exits. The writer never expires log entries (that is the
    compactor's job): all commits stay readable for time travel."""
    lines = [json.dumps({"event_uuid": f"cp-{i}", "event_name": f"t{i % 3}:s", "created_at": 1710670530 + i}).encode()
             for i in range(1030)]
    src = tmp_lake / "in.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    summary = ingest(writer_bin, src, tmp_lake, ["--max-batch-events", "5"])
    assert summary["written"] == 1030
    assert summary["table_version"] == 206  # version 0 creates the table, then 206 batches
    log = tmp_lake / "events" / "_delta_log"
    checkpoints = sorted(int(p.name[:20]) for p in log.glob("*.checkpoint.parquet"))
    assert checkpoints and set(checkpoints) <= set(range(99, 206, 100)), checkpoints
    assert checkpoints[-1] == 199
    assert json.loads((log / "_last_checkpoint").read_text())["version"] == 199
    assert len(list(log.glob("*.json"))) == 207
    # Readers that start from the checkpoint see every row; time travel before it still works.
    n = duck.execute(f"SELECT count(*) FROM delta_scan('{tmp_lake / 'events'}')").fetchone()[0]
    assert n == 1030
    assert polars_deltalake.read_delta(str(tmp_lake / "events"), version=50).height == 250


def test_writer_never_expires_log_entries(writer_bin, tmp_lake):
    """delta-rs, left alone, deletes log entries older than `delta.logRetentionDuration`
    (7 days) after every commit; the writer leaves that to `compactor checkpoint`, so an
    audit's time travel never depends on when the last writer happened to commit."""
    def batch(start, n):
        src = tmp_lake / f"in-{start}.ndjson"
        src.write_bytes(b"\n".join(
            json.dumps({"event_uuid": f"ex-{i}", "event_name": "t:s", "created_at": 1710670530 + i}).encode()
            for i in range(start, start + n)) + b"\n")
        return src
    ingest(writer_bin, batch(0, 250), tmp_lake, ["--max-batch-events", "5"])  # versions 1..50
    log = tmp_lake / "events" / "_delta_log"
    month_ago = time.time() - 30 * 86400
    for f in log.glob("*.json"):
        os.utime(f, (month_ago, month_ago))
    summary = ingest(writer_bin, batch(250, 100), tmp_lake, ["--max-batch-events", "5"])  # versions 51..70
    assert summary["table_version"] == 70
    assert sorted(int(f.name[:20]) for f in log.glob("*.json")) == list(range(71))
    assert polars_deltalake.read_delta(str(tmp_lake / "events"), version=10).height == 50
