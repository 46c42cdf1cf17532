"""Issue 11, defect 5: vacuum must actually reclaim storage.

A file replaced by optimize is deletable once the commit that removed it is older than the
retention — but by then the checkpoint has dropped its tombstone, so a tombstone-driven vacuum
never deletes it; and files uploaded by a writer that crashed before committing were never
deleted at all. These tests build exactly that situation (tiny `deletedFileRetentionDuration`,
optimize, wait, checkpoint, more writes inside the window) and check that vacuum deletes
precisely the files no version inside the window can read, on local disk and on S3 (moto).

The expected file set is computed here from the `_delta_log` JSON (an independent replay, not
delta-rs); rows are read back with polars-deltalake (time travel) and DuckDB's delta extension.
`deltalake` (Python) is used only to set the table properties.
"""
import json
import time
import urllib.parse
import uuid

import polars_deltalake
import pytest

from conftest import _bin, run
from s3util import client, duck_s3, make_bucket, polars_s3_options

# Short enough for a test, long enough that the steps inside the window (one ingest, one
# optimize, reading versions) finish well within it on a loaded 2-core machine.
RETENTION_S = 30


def canonical(path):
    """Percent-decode to a fixed point: the log URL-encodes paths, partition folders are
    percent-encoded too, and stores present names differently."""
    prev = None
    while prev != path:
        prev, path = path, urllib.parse.unquote(path)
    return path.lstrip("/")


def is_data(rel):
    parts = rel.split("/")
    if parts[0] == "_delta_log" or not parts[-1].endswith(".parquet"):
        return False
    return not any(p.startswith(("_", ".")) for p in parts)


class Local:
    def __init__(self, root):
        self.root = root
        self.uri = str(root)
        self.env = {}
        self.lock_args = []
        self.storage_options = None

    def listing(self):
        return {str(p.relative_to(self.root)): p.stat().st_size for p in self.root.rglob("*") if p.is_file()}

    def read(self, rel):
        return (self.root / rel).read_bytes()

    def put(self, rel, data):
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(data)

    def duck(self, duck_fixture):
        return duck_fixture


class S3:
    def __init__(self, moto, bucket, prefix, lock_table):
        self.moto = moto
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"
        self.env = moto["env"]
        self.lock_args = ["--commit-lock", "dynamodb", "--lock-table", lock_table]
        self.storage_options = polars_s3_options(moto)
        self.s3 = client(moto, "s3")

    def listing(self):
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "/"):
            for o in page.get("Contents", []):
                out[o["Key"][len(self.prefix) + 1:]] = o["Size"]
        return out

    def read(self, rel):
        return self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}")["Body"].read()

    def put(self, rel, data):
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}", Body=data)

    def duck(self, _duck_fixture):
        return duck_s3(self.moto)


def log_commits(store):
    """{version: (commit timestamp ms, [added paths], [removed paths])} from the JSONs."""
    out = {}
    for rel in store.listing():
        name = rel.split("/")[-1]
        if rel.startswith("_delta_log/") and rel.count("/") == 1 and name.endswith(".json") and name[:20].isdigit():
            ts, adds, removes = 0, [], []
            for line in store.read(rel).decode().splitlines():
                if not line.strip():
                    continue
                a = json.loads(line)
                if "commitInfo" in a:
                    ts = a["commitInfo"].get("timestamp", 0)
                elif "add" in a:
                    adds.append(canonical(a["add"]["path"]))
                elif "remove" in a:
                    removes.append(canonical(a["remove"]["path"]))
            out[int(name[:20])] = (ts, adds, removes)
    return out


def live_files(commits):
    live = set()
    for v in sorted(commits):
        _, adds, removes = commits[v]
        live |= set(adds)
        live -= set(removes)
    return live


def rows_at(store, version):
    kw = {"storage_options": store.storage_options} if store.storage_options else {}
    df = polars_deltalake.read_delta(store.uri, version=version, **kw)
    return sorted(df["event_uuid"].to_list())


def gen(path, count, seed):
    run([_bin("loadgen"), "generate", "--count", str(count), "--seed", str(seed), "--output", str(path),
         "--late-ratio", "0", "--malformed-ratio", "0"])
    return path


def ingest(writer_bin, store, src, rej):
    s, _ = run([writer_bin, "ingest", "--input", str(src), "--table", store.uri, "--rejected-table", rej,
                "--max-batch-events", "40", *store.lock_args], env=store.env)
    return s


def set_retention(store):
    import deltalake  # setup only: table properties

    opts = None
    if store.storage_options:
        opts = {**store.storage_options, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    deltalake.DeltaTable(store.uri, storage_options=opts).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": f"interval {RETENTION_S} seconds"})


def scenario(writer_bin, compactor_bin, store, tmp_path, duck):
    comp = lambda *a: run([compactor_bin, *a, "--table", store.uri, *store.lock_args], env=store.env)[0]  # noqa: E731
    rej = str(tmp_path / "rej") if isinstance(store, Local) else store.uri + "_rejected"

    # Many small files, then a tiny deleted-file retention.
    ingest(writer_bin, store, gen(tmp_path / "a.ndjson", 400, 11), rej)
    set_retention(store)
    # An upload of a writer that crashed before committing (it will be older than the
    # retention at vacuum time), and things that are not data files at all.
    some_file = sorted(r for r in store.listing() if is_data(r))[0]
    folder = some_file.rsplit("/", 1)[0]
    old_orphan = f"{folder}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    store.put(old_orphan, store.read(some_file))
    not_data = ["notes.txt", f"{folder}/_SUCCESS", f"_tmp/part-{uuid.uuid4()}.parquet",
                f"{folder}/.part-x.parquet.crc"]
    for rel in not_data:
        store.put(rel, b"not a data file")

    o1 = comp("optimize", "--target-size", "1MiB")
    assert o1["files_removed"] > 0
    t1 = time.time()
    # Rows of every version so far (immutable, so read while waiting out the retention).
    versions_before = {v: rows_at(store, v) for v in range(1, o1["table_version"] + 1)}
    time.sleep(max(0.0, t1 + RETENTION_S + 3 - time.time()))

    # Past the retention: the checkpoint drops optimize's tombstones. Then new commits
    # inside the window: small files, and an optimize that replaces them.
    k = comp("checkpoint")
    assert k["checkpoint_version"] == o1["table_version"]
    ingest(writer_bin, store, gen(tmp_path / "b.ndjson", 120, 12), rej)
    o2 = comp("optimize", "--target-size", "1MiB")
    assert o2["files_removed"] > 0
    young_orphan = f"{folder}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    store.put(young_orphan, store.read(some_file))
    latest = o2["table_version"]
    for v in range(o1["table_version"] + 1, latest + 1):
        versions_before[v] = rows_at(store, v)
    latest_rows = store.duck(duck).execute(f"SELECT count(*) FROM delta_scan('{store.uri}')").fetchone()[0]

    before = store.listing()
    commits = log_commits(store)
    live = live_files(commits)
    data_before = {r: s for r, s in before.items() if is_data(r)}

    # Dry run: lists, deletes nothing.
    dry, p = run([compactor_bin, "vacuum", "--table", store.uri, "--retention", f"{RETENTION_S}s", "--dry-run", *store.lock_args], env=store.env)
    dry_listed = {canonical(line) for line in p.stdout.decode().splitlines()[:-1]}
    assert store.listing() == before

    t_before = time.time()
    summary, _ = run([compactor_bin, "vacuum", "--table", store.uri, "--retention", f"{RETENTION_S}s", *store.lock_args], env=store.env)
    t_after = time.time()

    # The vacuum's cutoff is somewhere in [t_before, t_after] - R; the timeline keeps every
    # commit clear of that interval, so the expected set does not depend on where.
    lo, hi = (t_before - RETENTION_S) * 1000, (t_after - RETENTION_S) * 1000
    assert not [v for v, (ts, _, _) in commits.items() if lo <= ts <= hi], "timeline too slow for the retention"
    window = [v for v, (ts, _, _) in commits.items() if ts > hi]
    assert window and min(window) > o1["table_version"], (window, o1)
    boundary = min(window) - 1  # the version "as of" the cutoff: oldest readable one
    protected = set(live)
    for v in window:
        protected |= set(commits[v][1]) | set(commits[v][2])
    expected_deleted = {r for r in data_before
                        if canonical(r) not in protected and canonical(r) != canonical(young_orphan)}

    after = store.listing()
    deleted = set(before) - set(after)
    assert {canonical(r) for r in deleted} == {canonical(r) for r in expected_deleted}
    # It reclaimed what the old vacuum never could: optimize's replaced files and the orphan.
    assert canonical(old_orphan) in {canonical(r) for r in deleted}
    assert any(canonical(r) in set(commits[v][2]) for r in deleted for v in commits if v <= o1["table_version"])
    assert young_orphan in after
    for rel in not_data:
        assert rel in after, rel
    assert all(r in after for r in before if r.startswith("_delta_log/"))
    # Exactly the live files plus what the window protects (plus the in-flight upload) remain.
    data_after = {canonical(r) for r in after if is_data(r)}
    assert data_after == (live | (protected & {canonical(r) for r in data_before})) | {canonical(young_orphan)}

    assert summary["files_deleted"] == len(deleted) == len(dry_listed) == dry["files_deleted"]
    assert dry_listed == {canonical(r) for r in deleted}
    assert summary["bytes_deleted"] == sum(before[r] for r in deleted) == dry["bytes_deleted"]
    assert summary["files_kept_recent"] >= 1  # the young orphan

    # Every version inside the window reads exactly what it read before the vacuum.
    assert store.duck(duck).execute(f"SELECT count(*) FROM delta_scan('{store.uri}')").fetchone()[0] == latest_rows
    for v in range(boundary, latest + 1):
        assert rows_at(store, v) == versions_before[v], f"version {v} changed"
    assert summary["oldest_version_kept"] <= boundary

    # A second vacuum has nothing left to do.
    again, _ = run([compactor_bin, "vacuum", "--table", store.uri, "--retention", f"{RETENTION_S}s", "--dry-run", *store.lock_args], env=store.env)
    assert again["files_deleted"] == 0


def test_vacuum_reclaims_replaced_and_orphaned_files_local(writer_bin, compactor_bin, tmp_path, duck):
    scenario(writer_bin, compactor_bin, Local(tmp_path / "events"), tmp_path, duck)


def test_vacuum_reclaims_replaced_and_orphaned_files_s3(writer_bin, compactor_bin, moto, tmp_path, duck):
    bucket = make_bucket(moto, f"b-{uuid.uuid4().hex[:8]}")
    lock = f"lock-{uuid.uuid4().hex[:8]}"
    run([writer_bin, "lock-table", "create", "--lock-table", lock], env=moto["env"])
    scenario(writer_bin, compactor_bin, S3(moto, bucket, "events", lock), tmp_path, duck)


@pytest.mark.parametrize("flag", [[], ["--full"]])
def test_vacuum_guard_still_refuses_short_retention(writer_bin, compactor_bin, tmp_path, flag):
    table = tmp_path / "events"
    ingest(writer_bin, Local(table), gen(tmp_path / "a.ndjson", 100, 13), str(tmp_path / "rej"))
    # shorter than the table's delta.deletedFileRetentionDuration (1 hour)
    _, p = run([compactor_bin, "vacuum", "--table", str(table), "--retention", "30m", *flag], check=False)
    assert p.returncode != 0
    assert b"deletedFileRetentionDuration" in p.stderr and b"--force" in p.stderr
