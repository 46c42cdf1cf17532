"""Reader probe for the soak benchmark (issue 14): how long a *fresh* reader needs to open the
events table, and three Athena-style queries timed with DuckDB's delta extension.

Usage (with the project venv, ~/.cache/events-lake/venv/bin/python):

    bench/soak_probe.py --table PATH|s3://bucket/prefix --day YYYY-MM-DD --event-type T \
        --uuid U --hour-end EPOCH [--version N] [--reps 3] [--baseline-dir DIR]

Prints exactly ONE JSON object on stdout (everything else the libraries print goes to stderr).
Exit 0 when the measurements were made (correctness problems, e.g. q2 not finding exactly one
row, are reported in "ok"/"problems", not by the exit code); exit 1 with {"error": "..."} on
stdout when they could not be made (table unreadable, bad arguments, ...).

Which snapshot: `--version N` if given, else the latest version at probe start (resolved once
with delta-rs, untimed). Every reader below is pinned to that version, so all numbers describe
the same snapshot even while a writer keeps committing.

What is timed (each repeated --reps times; reported as {"median", "min", "runs"} in ms):
- duckdb_connect_ms: `duckdb.connect()` (a new in-memory database) + LOAD of the delta (and,
  for s3://, httpfs) extension from the installed packages by path + CREATE SECRET. Not part
  of "open".
- duckdb_open_ms: on that fresh connection, `DESCRIBE SELECT * FROM delta_scan(T, version=>V)`:
  binding the scan, i.e. reading the _delta_log (last checkpoint + later commits) into a
  snapshot and its schema. No data file is read.
- duckdb_count_ms: right after, on the same connection, `SELECT count(*) FROM delta_scan(...)`
  (binds again, lists the live files, reads the Parquet footers). duckdb_open_ms +
  duckdb_count_ms is the time to the first answer of a fresh DuckDB.
- polars_open_ms: `polars_deltalake.scan_delta(T, version=V)` (delta-kernel snapshot +
  schema; it is eager), then polars_count_ms: `.select(pl.len()).collect()`.
- q1_ms .. q3_ms: one more fresh DuckDB connection, each query run --reps times in a row; each
  run re-binds delta_scan (re-reads the log), as every Athena query would:
  q1 count per event_type for one day:
     SELECT event_type, count(*) FROM t WHERE created_date = DATE 'day' GROUP BY 1
     (q1_rows = total of the counts, q1_groups = number of types)
  q2 one event by uuid within a day:
     SELECT * FROM t WHERE created_date = DATE 'day' AND event_uuid = 'U'   (q2_rows must be 1)
  q3 the last hour of one type:
     SELECT count(*) FROM t WHERE event_type = 'T' AND created_date BETWEEN <dates of the hour>
       AND created_at >= hour_end - 3600 AND created_at < hour_end
     (the created_date predicate is what an Athena user writes for partition pruning)

--baseline-dir DIR: additionally read that version of the table fully (polars_deltalake), write
it ONCE with python deltalake as a fully compacted table in DIR (partitioned by event_type,
created_date, one Parquet file per partition, Snappy like the writer, the source table's Delta
schema: created_date a date, timestamps UTC microseconds), run the same probe on DIR and print
{"soak": ..., "baseline": ..., "ratios": soak / baseline, ...}. A local DIR that already holds
a Delta table is emptied first (local folder or s3:// prefix); a non-empty DIR that is not one
is refused.

S3 (e.g. moto): endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), region from AWS_REGION or
AWS_DEFAULT_REGION (default us-east-1), as the integration tests set them.
"""
import argparse
import datetime as dt
import json
import os
import pathlib
import shutil
import statistics
import sys
import time
import urllib.parse

Q2_EXPECTED_ROWS = 1
PARTITIONS = ["event_type", "created_date"]


class ProbeError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ProbeError(f"bad arguments: {message}")


def ms(t0):
    return (time.perf_counter() - t0) * 1000.0


def stats(runs):
    return {"median": round(statistics.median(runs), 3), "min": round(min(runs), 3), "runs": [round(r, 3) for r in runs]}


def sql_str(s):
    return "'" + str(s).replace("'", "''") + "'"


def is_s3(uri):
    return uri.startswith("s3://") or uri.startswith("s3a://")


def s3_env():
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {
        "endpoint": endpoint,
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "token": os.environ.get("AWS_SESSION_TOKEN"),
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    }


def object_store_options(uri):
    """storage_options for delta-rs / delta-kernel (polars_deltalake, deltalake)."""
    if not is_s3(uri):
        return None
    e = s3_env()
    opts = {"aws_region": e["region"]}
    if e["key"]:
        opts["aws_access_key_id"] = e["key"]
    if e["secret"]:
        opts["aws_secret_access_key"] = e["secret"]
    if e["token"]:
        opts["aws_session_token"] = e["token"]
    if e["endpoint"]:
        opts["aws_endpoint_url"] = e["endpoint"]
        opts["aws_virtual_hosted_style_request"] = "false"
        if e["endpoint"].startswith("http://"):
            opts["aws_allow_http"] = "true"
    return opts


def extension_path(package, name):
    mod = __import__(package)
    found = sorted(pathlib.Path(mod.__file__).parent.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise ProbeError(f"{name}.duckdb_extension not found under the {package} package")
    return str(found[0])


def duck_connect(uri):
    import duckdb

    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    if is_s3(uri):
        con.execute(f"LOAD {sql_str(extension_path('duckdb_extension_httpfs', 'httpfs'))}")
    con.execute(f"LOAD {sql_str(extension_path('duckdb_extension_delta', 'delta'))}")
    if is_s3(uri):
        e = s3_env()
        parts = ["TYPE S3", f"REGION {sql_str(e['region'])}"]
        if e["key"]:
            parts += [f"KEY_ID {sql_str(e['key'])}", f"SECRET {sql_str(e['secret'] or '')}"]
        if e["token"]:
            parts.append(f"SESSION_TOKEN {sql_str(e['token'])}")
        if e["endpoint"]:
            u = urllib.parse.urlparse(e["endpoint"])
            parts += [f"ENDPOINT {sql_str(u.netloc)}", "URL_STYLE 'path'",
                      f"USE_SSL {'true' if u.scheme == 'https' else 'false'}"]
        con.execute(f"CREATE SECRET probe_s3 ({', '.join(parts)})")
    return con


def resolve_version(uri):
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=object_store_options(uri)).version()


def probe(uri, day, event_type, uuid, hour_end, version, reps):
    import polars as pl
    import polars_deltalake

    t_all = time.perf_counter()
    hour_start = hour_end - 3600
    d0 = dt.datetime.fromtimestamp(hour_start, dt.timezone.utc).date().isoformat()
    d1 = dt.datetime.fromtimestamp(hour_end - 1, dt.timezone.utc).date().isoformat()
    pinned_by = "argument"
    if version is None:
        try:
            version = resolve_version(uri)
        except Exception as e:  # noqa: BLE001 - report, never trace
            raise ProbeError(f"cannot open {uri}: {type(e).__name__}: {e}") from None
        pinned_by = "latest at probe start"
    scan = f"delta_scan({sql_str(uri)}, version => {int(version)})"
    out = {"table": uri, "version": version, "version_pinned_by": pinned_by,
           "params": {"day": day, "event_type": event_type, "uuid": uuid, "hour_start": hour_start,
                      "hour_end": hour_end},
           "reps": reps}
    problems = []

    # DuckDB: fresh connection per rep, open (bind: log -> snapshot + schema), then count(*).
    connect, open_, count = [], [], []
    rows = None
    for _ in range(reps):
        t0 = time.perf_counter()
        con = duck_connect(uri)
        connect.append(ms(t0))
        t0 = time.perf_counter()
        cols = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        open_.append(ms(t0))
        t0 = time.perf_counter()
        n = con.execute(f"SELECT count(*) FROM {scan}").fetchone()[0]
        count.append(ms(t0))
        con.close()
        if rows is not None and n != rows:
            problems.append(f"duckdb count changed between reps at a pinned version: {rows} then {n}")
        rows = n
    out["duckdb_connect_ms"] = stats(connect)
    out["duckdb_open_ms"] = stats(open_)
    out["duckdb_count_ms"] = stats(count)
    out["duckdb_rows"] = rows
    out["columns"] = {c[0]: c[1] for c in cols}

    # polars (delta-kernel): scan_delta opens the snapshot eagerly, then count.
    opts = object_store_options(uri)
    open_, count = [], []
    prow = None
    for _ in range(reps):
        t0 = time.perf_counter()
        lf = polars_deltalake.scan_delta(uri, version=version, storage_options=opts)
        lf.collect_schema()
        open_.append(ms(t0))
        t0 = time.perf_counter()
        prow = lf.select(pl.len()).collect().item()
        count.append(ms(t0))
    out["polars_open_ms"] = stats(open_)
    out["polars_count_ms"] = stats(count)
    out["polars_rows"] = prow
    if prow != rows:
        problems.append(f"polars counts {prow} rows, duckdb {rows}")

    # The three queries, on one more fresh connection.
    queries = {
        "q1": f"SELECT event_type, count(*) FROM {scan} WHERE created_date = DATE {sql_str(day)} "
              "GROUP BY event_type ORDER BY event_type",
        "q2": f"SELECT * FROM {scan} WHERE created_date = DATE {sql_str(day)} AND event_uuid = {sql_str(uuid)}",
        "q3": f"SELECT count(*) FROM {scan} WHERE event_type = {sql_str(event_type)} "
              f"AND created_date BETWEEN DATE {sql_str(d0)} AND DATE {sql_str(d1)} "
              f"AND created_at >= {int(hour_start)} AND created_at < {int(hour_end)}",
    }
    con = duck_connect(uri)
    for name, sql in queries.items():
        runs, result = [], None
        for _ in range(reps):
            t0 = time.perf_counter()
            result = con.execute(sql).fetchall()
            runs.append(ms(t0))
        out[f"{name}_ms"] = stats(runs)
        if name == "q1":
            out["q1_rows"] = sum(r[1] for r in result)
            out["q1_groups"] = len(result)
        elif name == "q2":
            out["q2_rows"] = len(result)
            if len(result) != Q2_EXPECTED_ROWS:
                problems.append(f"q2 found {len(result)} rows for the uuid, expected {Q2_EXPECTED_ROWS}")
        else:
            out["q3_rows"] = result[0][0]
    con.close()
    out["ok"] = not problems
    out["problems"] = problems
    out["total_ms"] = ms(t_all)
    return out


def clear_s3_prefix(uri):
    """Empty s3://bucket/prefix/ if it holds a Delta table; refuse if it holds anything else."""
    import boto3

    u = urllib.parse.urlparse(uri)
    bucket, prefix = u.netloc, u.path.strip("/") + "/"
    e = s3_env()
    s3 = boto3.client("s3", endpoint_url=e["endpoint"], region_name=e["region"])
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    if not keys:
        return
    if not any(k.startswith(prefix + "_delta_log/") for k in keys):
        raise ProbeError(f"--baseline-dir {uri} is not empty and holds no Delta table; refusing to overwrite")
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})


def build_baseline(uri, version, target):
    """Read `version` of the table fully and write it once, fully compacted, to `target`."""
    import polars_deltalake
    import pyarrow as pa
    from deltalake import DeltaTable, WriterProperties, write_deltalake

    t0 = time.perf_counter()
    src_opts = object_store_options(uri)
    df = polars_deltalake.read_delta(uri, version=version, storage_options=src_opts)
    read_ms = ms(t0)
    # The source's own Delta schema (types and nullability), so the baseline differs only in layout.
    schema = pa.schema(DeltaTable(uri, version=version, storage_options=src_opts).schema().to_arrow())
    table = df.to_arrow().select(schema.names).cast(schema)
    dst_opts = object_store_options(target)
    if is_s3(target):
        dst_opts = {**dst_opts, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        clear_s3_prefix(target)
    else:
        p = pathlib.Path(target)
        if p.exists():
            if (p / "_delta_log").is_dir():
                shutil.rmtree(p)
            elif any(p.iterdir()):
                raise ProbeError(f"--baseline-dir {target} is not empty and holds no Delta table; refusing to overwrite")
        p.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    write_deltalake(target, table, partition_by=PARTITIONS, mode="error", storage_options=dst_opts,
                    target_file_size=1 << 40,
                    writer_properties=WriterProperties(compression="SNAPPY", max_row_group_size=1 << 20))
    write_ms = ms(t1)
    base = DeltaTable(target, storage_options=dst_opts)
    files = base.file_uris()
    src_types = {f.name: str(f.type) for f in schema}
    dst_types = {f.name: str(f.type) for f in pa.schema(base.schema().to_arrow())}
    build = {"dir": target, "source_version": version, "rows": table.num_rows, "files": len(files),
             "partitions": table.select(PARTITIONS).group_by(PARTITIONS).aggregate([]).num_rows,
             "bytes": sum(int(x) for x in base.get_add_actions(flatten=True).column("size_bytes").to_pylist()),
             "read_ms": read_ms, "write_ms": write_ms, "schema_matches": src_types == dst_types}
    if src_types != dst_types:
        build["schema_differences"] = {k: [src_types.get(k), dst_types.get(k)]
                                       for k in set(src_types) | set(dst_types) if src_types.get(k) != dst_types.get(k)}
    return build


RATIO_KEYS = ["q1_ms", "q2_ms", "q3_ms", "duckdb_open_ms", "duckdb_count_ms", "polars_open_ms", "polars_count_ms"]
SAME_ROWS = ["duckdb_rows", "polars_rows", "q1_rows", "q1_groups", "q2_rows", "q3_rows"]


def main():
    ap = Parser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--table", required=True)
    ap.add_argument("--day", required=True, help="created_date for q1 and q2, YYYY-MM-DD")
    ap.add_argument("--event-type", required=True, help="event_type for q3")
    ap.add_argument("--uuid", required=True, help="event_uuid for q2 (must exist once on --day)")
    ap.add_argument("--hour-end", required=True, type=int, help="q3 covers created_at in [hour_end-3600, hour_end)")
    ap.add_argument("--version", type=int, default=None, help="table version to read (default: latest)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline-dir", default=None)
    args = ap.parse_args()
    try:
        dt.date.fromisoformat(args.day)
    except ValueError:
        raise ProbeError(f"--day {args.day!r} is not YYYY-MM-DD") from None
    if args.reps < 1:
        raise ProbeError("--reps must be at least 1")
    if args.version is not None and args.version < 0:
        raise ProbeError("--version must be >= 0")
    q = (args.day, args.event_type, args.uuid, args.hour_end)
    soak = probe(args.table, *q, args.version, args.reps)
    if not args.baseline_dir:
        return soak
    build = build_baseline(args.table, soak["version"], args.baseline_dir)
    base = probe(args.baseline_dir, *q, None, args.reps)
    base["build"] = build
    ratios = {k.removesuffix("_ms"): (soak[k]["median"] / base[k]["median"]) if base[k]["median"] else None
              for k in RATIO_KEYS}
    problems = [f"{k}: soak {soak.get(k)} vs baseline {base.get(k)}" for k in SAME_ROWS if soak.get(k) != base.get(k)]
    if not build["schema_matches"]:
        problems.append(f"baseline schema differs: {build.get('schema_differences')}")
    if build["files"] != build["partitions"]:
        problems.append(f"baseline has {build['files']} files for {build['partitions']} partitions")
    return {"soak": soak, "baseline": base, "ratios": ratios,
            "queries_within_1_5x": all(ratios[q] is not None and ratios[q] <= 1.5 for q in ("q1", "q2", "q3")),
            "ok": soak["ok"] and base["ok"] and not problems, "problems": problems}


if __name__ == "__main__":
    # One JSON object on stdout, nothing else: whatever the libraries print goes to stderr.
    # (--help alone prints to stdout.)
    real_stdout = os.dup(1)
    if not {"-h", "--help"} & set(sys.argv[1:]):
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    code = 0
    try:
        result = main()
    except SystemExit:  # --help
        result = None
    except ProbeError as e:
        result, code = {"error": str(e)}, 1
    except BaseException as e:  # noqa: BLE001 - never a traceback, always one JSON object
        result, code = {"error": f"{type(e).__name__}: {e}"}, 1
    if result is not None:
        os.write(real_stdout, (json.dumps(result, default=str) + "\n").encode())
    sys.exit(code)
