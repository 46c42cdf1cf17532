"""Issue 11, defect 7: one bad record must never fail a batch.

Before the fix, an event whose `event_type` was 5,000 characters made `writer ingest` exit 1
(`upload data file: ... File name too long (os error 36)`) and nothing of the batch was
written. Event types with NUL, newlines, `/`, `=`, `%`, spaces or `..` were accepted as
partition values. Here a hostile corpus goes through `writer ingest`; both tables are read
back with DuckDB (delta extension) and polars-deltalake, never with delta-rs.
"""
import json
import pathlib

import polars as pl
import polars_deltalake

from conftest import run

T = 1710670530


def ev(uuid, name, **extra):
    return json.dumps({"event_uuid": uuid, "event_name": name, "created_at": T, **extra}).encode()


def ingest(writer_bin, lines, lake):
    src = lake / "input.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    summary, _ = run([writer_bin, "ingest", "--input", str(src), "--table", str(lake / "events"),
                      "--rejected-table", str(lake / "events_rejected")])
    return summary


def rejected(duck, lake):
    rows = duck.execute(f"""
        SELECT source_position, reason, raw, message FROM delta_scan('{lake / "events_rejected"}')
    """).fetchall()
    return {int(r[0]): (r[1], bytes(r[2]), r[3]) for r in rows}


def written(duck, lake):
    rows = duck.execute(f"""
        SELECT event_uuid, event_type, event_subtype, length(payload) FROM delta_scan('{lake / "events"}')
    """).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_one_overlong_event_type_does_not_fail_the_batch(writer_bin, tmp_lake, duck):
    lines = [
        ev("good-1", "payment:order:completed"),
        ev("bad-1", "a" * 5000 + ":order:completed"),
        ev("good-2", "payment:order:completed"),
        ev("good-3", "user:web"),
    ]
    summary = ingest(writer_bin, lines, tmp_lake)
    assert (summary["read"], summary["written"], summary["rejected"]) == (4, 3, 1)

    got = written(duck, tmp_lake)
    assert sorted(got) == ["good-1", "good-2", "good-3"]
    rej = rejected(duck, tmp_lake)
    assert {k: v[:2] for k, v in rej.items()} == {2: ("event_type_too_long", lines[1])}
    assert "a" * 64 not in rej[2][2], "messages never quote field values"

    # A second, independent reader agrees.
    df = polars_deltalake.read_delta(str(tmp_lake / "events"))
    assert sorted(df["event_uuid"].to_list()) == ["good-1", "good-2", "good-3"]
    r = polars_deltalake.read_delta(str(tmp_lake / "events_rejected"))
    assert r["reason"].to_list() == ["event_type_too_long"]


def hostile_corpus():
    """(line, expected reason or None when the record is valid and must be written)."""
    deep = 100_000
    big_value = "x" * (5 << 20)
    cases = [
        (ev("ok-1", "payment:order:completed"), None),
        # Partition-value policy.
        (ev("h-long", "a" * 5000 + ":x"), "event_type_too_long"),
        (ev("h-5mb", "b" * (5 << 20)), "event_type_too_long"),
        (ev("h-nul", "pay\u0000ment:x"), "event_type_control_character"),
        (ev("h-nl", "pay\nment"), "event_type_control_character"),
        (ev("h-c1", "pay\u0085ment"), "event_type_control_character"),
        (ev("h-slash", "a/b:x"), "event_type_pattern_mismatch"),
        (ev("h-eq", "a=b"), "event_type_pattern_mismatch"),
        (ev("h-pct", "a%2Fb"), "event_type_pattern_mismatch"),
        (ev("h-lead", " payment"), "event_type_pattern_mismatch"),
        (ev("h-trail", "payment :x"), "event_type_pattern_mismatch"),
        (ev("h-dotdot", "..:x"), "event_type_pattern_mismatch"),
        (ev("h-dot", "."), "event_type_pattern_mismatch"),
        (ev("h-upper", "Payment:order"), "event_type_pattern_mismatch"),
        (ev("h-unicode", "caf\u00e9:x"), "event_type_pattern_mismatch"),
        (ev("h-sub-ctl", "payment:or\u0007der"), "event_name_control_character"),
        (ev("h-name-long", "payment:" + "s" * 2000), "event_name_too_long"),
        # Lone surrogates, duplicate keys.
        (b'{"event_uuid":"h-sur","event_name":"\\ud800","created_at":%d}' % T, "invalid_event_name"),
        (b'{"event_uuid":"\\udfff","event_name":"a","created_at":%d}' % T, "invalid_event_uuid"),
        (b'{"event_uuid":"h-dup","event_name":"a","event_name":"b","created_at":%d}' % T, "duplicate_field"),
        # Numbers at the edges of i64 and f64.
        (b'{"event_uuid":"h-n1","event_name":"a","created_at":-9223372036854775808.5}', "created_at_out_of_range"),
        (b'{"event_uuid":"h-n2","event_name":"a","created_at":9223372036854775807}', "created_at_out_of_range"),
        (b'{"event_uuid":"h-n3","event_name":"a","created_at":1e309}', "created_at_out_of_range"),
        (b'{"event_uuid":"h-n4","event_name":"a","created_at":4.9e-324}', "created_at_out_of_range"),
        (b'{"event_uuid":"h-n5","event_name":"a","created_at":-1.7976931348623157e308}', "created_at_out_of_range"),
        # Deep nesting is checked without recursion (no stack to overflow): a 100k-deep
        # array is valid JSON but not an object; an unclosed one is not JSON at all.
        (b"[" * deep + b"]" * deep, "not_object"),
        (b'{"a":' * deep + b"1" + b"}" * deep, "missing_event_uuid"),
        (b"{" * deep, "not_json"),
        # Bytes.
        (b"\xff\xfe\x00", "not_utf8"),
        (b"\x00", "not_json"),
        # Big but valid records are written, not refused.
        (ev("ok-5mb", "payment:big", blob=big_value), None),
        (ev("ok-wide", "user:web", **{f"k{i}": i for i in range(20_000)}), None),
        (ev("ok-2", "user:web:created"), None),
    ]
    return cases


def test_hostile_corpus(writer_bin, tmp_lake, duck):
    cases = hostile_corpus()
    lines = [c[0] for c in cases]
    assert all(b"\n" not in l for l in lines)
    summary = ingest(writer_bin, lines, tmp_lake)

    valid = {json.loads(l)["event_uuid"] for l, why in cases if why is None}
    expected_rejects = {no: (why, l) for no, (l, why) in enumerate(cases, 1) if why is not None}
    assert summary["read"] == len(cases)
    assert summary["read"] == summary["written"] + summary["duplicates"] + summary["rejected"]
    assert summary["written"] == len(valid)
    assert summary["rejected"] == len(expected_rejects)

    rej = rejected(duck, tmp_lake)
    assert {k: v[0] for k, v in rej.items()} == {k: v[0] for k, v in expected_rejects.items()}
    for no, (why, raw) in expected_rejects.items():
        assert rej[no][1] == raw, f"line {no}: raw bytes kept exactly"
        assert rej[no][2], f"line {no}: a human message"
        assert len(rej[no][2]) < 500, f"line {no}: the message does not echo the input"

    got = written(duck, tmp_lake)
    assert set(got) == valid
    assert got["ok-5mb"][0] == "payment" and got["ok-5mb"][2] > (5 << 20)

    # Every partition folder is a short, plain name: nothing to escape.
    table = pathlib.Path(tmp_lake / "events")
    folders = sorted(p.name for p in table.iterdir() if p.name.startswith("event_type="))
    assert folders == ["event_type=payment", "event_type=user"]

    df = polars_deltalake.read_delta(str(table))
    assert set(df["event_uuid"].to_list()) == valid
    r = polars_deltalake.read_delta(str(tmp_lake / "events_rejected"))
    assert r.group_by("reason").len().select(pl.col("len").sum()).item() == len(expected_rejects)

    # Ingesting the same file again records nothing twice.
    again = ingest(writer_bin, lines, tmp_lake)
    assert (again["written"], again["rejected_written"]) == (0, 0)
    assert again["duplicates"] == len(valid)


def test_hostile_corpus_through_the_service_wedges_no_shard(writer_bin, moto):
    """The same corpus through `writer run` (Kinesis caps a record at 1 MiB, so the 5 MB
    lines stay out): every record is written or rejected with its reason, the batch commits,
    and the writer goes idle and exits 0 — no shard retries a poison record forever."""
    from kinesis_env import Env
    from s3util import client, duck_s3

    cases = [(line, why) for line, why in hostile_corpus() if len(line) < (1 << 20) - 1024]
    env = Env(writer_bin, moto, shards=2)
    k = client(moto, "kinesis")
    for i, (line, _) in enumerate(cases):
        k.put_record(StreamName=env.stream, Data=line, PartitionKey=f"p{i}")
    summary = env.run_until_idle(idle="4s", timeout=240)
    assert summary["read"] == len(cases), summary
    assert summary["read"] == summary["written"] + summary["duplicates"] + summary["rejected"]
    con = duck_s3(moto)
    got = {r[0] for r in con.execute(f"SELECT event_uuid FROM delta_scan('s3://{env.bucket}/events')").fetchall()}
    assert got == {json.loads(l)["event_uuid"] for l, why in cases if why is None}
    reasons = sorted(r[0] for r in con.execute(
        f"SELECT reason FROM delta_scan('s3://{env.bucket}/events_rejected')").fetchall())
    assert reasons == sorted(why for _, why in cases if why is not None)
