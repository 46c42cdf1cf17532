"""Issue 5: compactor — optimize, vacuum, checkpoint, history; safe beside a live writer."""
import json
import math
import os
import subprocess
import threading
import time
import uuid

import polars_deltalake

from conftest import _bin, run
from expected import expected_from_lines
from s3util import client, duck_s3, make_bucket, polars_s3_options, staged_commit_files


def gen(path, count, seed, **kw):
    args = [_bin("loadgen"), "generate", "--count", str(count), "--seed", str(seed), "--output", str(path),
            "--late-ratio", "0", "--malformed-ratio", "0.01"]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    run(args)
    return path


def data_files(table):
    return len([p for p in table.rglob("*.parquet") if "_delta_log" not in p.parts])


def test_optimize_local_keeps_rows_and_time_travel(writer_bin, compactor_bin, tmp_path, duck):
    table = tmp_path / "events"
    src = gen(tmp_path / "in.ndjson", 3000, 3)
    s, _ = run([writer_bin, "ingest", "--input", str(src), "--table", str(table),
                "--rejected-table", str(tmp_path / "rej"), "--max-batch-events", "100"])
    before_version = s["table_version"]
    before = set(duck.execute(f"SELECT event_uuid, event_type, created_date, payload FROM delta_scan('{table}')").fetchall())
    history_before = {v: polars_deltalake.read_delta(str(table), version=v).height for v in (1, before_version // 2, before_version)}

    out, _ = run([compactor_bin, "optimize", "--table", str(table), "--target-size", "1MiB"])
    assert out["files_after"] < out["files_before"]
    assert out["versions_committed"] >= 1 and out["partitions_touched"] >= 1
    after = set(duck.execute(f"SELECT event_uuid, event_type, created_date, payload FROM delta_scan('{table}')").fetchall())
    assert after == before
    # every pre-compaction version still reads the same rows
    for v, n in history_before.items():
        assert polars_deltalake.read_delta(str(table), version=v).height == n
    # file count per partition is what the target size implies
    import deltalake  # reference reader for the file list only
    dt = deltalake.DeltaTable(str(table))
    import pyarrow
    adds = pyarrow.table(dt.get_add_actions(flatten=True)).to_pylist()
    parts = {}
    for a in adds:
        key = (a["partition.event_type"], str(a["partition.created_date"]))
        parts.setdefault(key, []).append(a["size_bytes"])
    for key, sizes in parts.items():
        assert len(sizes) <= max(1, math.ceil(sum(sizes) / (1 << 20))) + 1, (key, sizes)
    # compaction commits are marked, with dataChange=false
    hist, p = run([compactor_bin, "history", "--table", str(table), "--limit", "500"])
    entries = [json.loads(l) for l in p.stdout.decode().splitlines()[:-1]]
    assert any(e["compaction"] and e["operation"] == "OPTIMIZE" for e in entries)
    assert any("writer" in e["commit_info"] for e in entries if e["operation"] == "WRITE")
    log = table / "_delta_log"
    for f in log.glob("*.json"):
        for line in f.read_text().splitlines():
            a = json.loads(line)
            ci = a.get("commitInfo", {})
            if ci.get("operation") == "OPTIMIZE":
                acts = [json.loads(l) for l in f.read_text().splitlines()]
                assert all(x["add"]["dataChange"] is False for x in acts if "add" in x)
                assert all(x["remove"]["dataChange"] is False for x in acts if "remove" in x)


def test_vacuum_guard_and_dry_run(writer_bin, compactor_bin, tmp_path, duck):
    table = tmp_path / "events"
    src = gen(tmp_path / "in.ndjson", 800, 4)
    run([writer_bin, "ingest", "--input", str(src), "--table", str(table), "--rejected-table", str(tmp_path / "rej"),
         "--max-batch-events", "100"])
    run([compactor_bin, "optimize", "--table", str(table), "--target-size", "1MiB"])
    before = duck.execute(f"SELECT count(*) FROM delta_scan('{table}')").fetchone()[0]
    # shorter than the table's delta.deletedFileRetentionDuration (1 hour): refused
    _, p = run([compactor_bin, "vacuum", "--table", str(table), "--retention", "30m"], check=False)
    assert p.returncode != 0 and b"retention" in p.stderr
    # forced dry run lists the compacted-away files and deletes nothing
    n_files = data_files(table)
    summary, p = run([compactor_bin, "vacuum", "--table", str(table), "--retention", "0h", "--force", "--dry-run"])
    listed = p.stdout.decode().splitlines()[:-1]
    assert summary["dry_run"] and summary["files_deleted"] == len(listed) > 0
    assert data_files(table) == n_files
    # a real forced vacuum deletes them; the current version still reads every row
    summary, _ = run([compactor_bin, "vacuum", "--table", str(table), "--retention", "0h", "--force"])
    assert summary["files_deleted"] == len(listed)
    assert data_files(table) == n_files - len(listed)
    assert duck.execute(f"SELECT count(*) FROM delta_scan('{table}')").fetchone()[0] == before
    # default retention (7 days) deletes nothing now
    summary, _ = run([compactor_bin, "vacuum", "--table", str(table)])
    assert summary["files_deleted"] == 0


def test_checkpoint(writer_bin, compactor_bin, tmp_path):
    table = tmp_path / "events"
    src = gen(tmp_path / "in.ndjson", 500, 5)
    run([writer_bin, "ingest", "--input", str(src), "--table", str(table), "--rejected-table", str(tmp_path / "rej"),
         "--max-batch-events", "50"])
    summary, _ = run([compactor_bin, "checkpoint", "--table", str(table)])
    v = summary["checkpoint_version"]
    assert (table / "_delta_log" / f"{v:020d}.checkpoint.parquet").exists()
    assert polars_deltalake.read_delta(str(table)).height > 0


def test_compactor_beside_live_writer_on_s3(writer_bin, compactor_bin, moto, tmp_path):
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock = f"lock-{uuid.uuid4().hex[:8]}"
    run([writer_bin, "lock-table", "create", "--lock-table", lock], env=moto["env"])
    table = f"s3://{bucket}/events"
    common = ["--commit-lock", "dynamodb", "--lock-table", lock]
    inputs = [gen(tmp_path / f"in{i}.ndjson", 400, 40 + i, duplicate_ratio=0.1) for i in range(6)]
    # seed the table so the compactor has something from the start
    run([writer_bin, "ingest", "--input", str(inputs[0]), "--table", table, "--rejected-table", f"s3://{bucket}/rej",
         "--max-batch-events", "40", *common], env=moto["env"])
    stop = threading.Event()
    runs = []

    def compact_loop():
        while not stop.is_set():
            p = subprocess.run([compactor_bin, "run", "--table", table, "--target-size", "1MiB", *common],
                               env={**os.environ, **moto["env"], "RUST_LOG": "warn"}, capture_output=True)
            runs.append(p)
            time.sleep(0.2)

    t = threading.Thread(target=compact_loop)
    t.start()
    try:
        for f in inputs[1:]:
            run([writer_bin, "ingest", "--input", str(f), "--table", table, "--rejected-table", f"s3://{bucket}/rej",
                 "--max-batch-events", "40", *common], env=moto["env"])
    finally:
        stop.set()
        t.join(timeout=300)
    assert runs and all(p.returncode == 0 for p in runs), [p.stderr.decode()[-2000:] for p in runs if p.returncode]
    run([compactor_bin, "optimize", "--table", table, "--target-size", "1MiB", *common], env=moto["env"])
    lines = [l for f in inputs for l in f.read_bytes().split(b"\n")[:-1]]
    expected, _, _ = expected_from_lines(lines, int(time.time()))
    con = duck_s3(moto)
    rows = con.execute(f"SELECT event_uuid, event_type, created_date FROM delta_scan('{table}')").fetchall()
    assert len(rows) == len(set(rows)) == len(expected)
    assert set(rows) == set(expected)
    df = polars_deltalake.read_delta(table, storage_options=polars_s3_options(moto))
    assert df.height == len(expected)
    assert any(json.loads(p.stdout.decode().splitlines()[-1])["versions_committed"] > 0 for p in runs)
    # The compactor commits through delta-rs, which stages each commit in a file of its own.
    assert staged_commit_files(moto, bucket, "events") == []
