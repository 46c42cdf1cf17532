"""Load test of `writer run` through an emulated Kinesis stream, for BENCHMARKS.md.

Feeds N events (default 1M, an hour of production traffic) into a multi-shard stream with the
load generator (`loadgen generate --kinesis-stream`, 1% producer duplicates, 0.1% malformed)
while probe events are put one by one with their put time. Measures:

* sustained events/s: records the writer read / (last commit visible - first put);
* event put -> visible latency: a poller HEADs the next commit file every 100 ms and notes
  when each appears; a probe is visible when the first commit whose recorded shard range
  covers its sequence number appears (p50/p99/max over all probes);
* writer peak RSS (sampled from /proc every 200 ms);
* the commit durations the writer logged.

Kinesis is kinesalite (npm) bound to 127.0.0.1 when available, else moto. moto's Kinesis is
O(records in shard) per PutRecord and per GetRecords (it copies its key list), so a 1M-event
run against it measures moto, not the writer. S3 and DynamoDB (lock + leases) are moto.
Usage: python bench/kinesis_load.py [--events N] [--shards 4] [--rate R] [--kinesis moto]
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WRITER = os.environ.get("BENCH_WRITER", str(TARGET / "release" / "writer"))
LOADGEN = os.environ.get("BENCH_LOADGEN", str(TARGET / "release" / "loadgen"))
KINESALITE = pathlib.Path(os.environ.get("KINESALITE_DIR", pathlib.Path.home() / ".cache/events-lake/node"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def start_kinesalite(port):
    """kinesalite in memory, on loopback only (its CLI would bind every interface)."""
    script = ("require('kinesalite')({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0,"
              f" shardLimit: 1000}}).listen({port}, '127.0.0.1')")
    env = {**os.environ, "NODE_PATH": str(KINESALITE / "node_modules")}
    return subprocess.Popen(["node", "-e", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def cpu_times(pid):
    """(utime, stime) of a live process, in seconds (None once it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tck, int(fields[12]) / tck
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds (None once it is gone)."""
    t = cpu_times(pid)
    return None if t is None else t[0] + t[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--flush-interval", default="2s")
    ap.add_argument("--poll-interval", default="200ms",
                    help="`writer run --poll-interval` (the deployed default is 1s; 200ms, this bench's "
                         "historical value, makes 5x the GetRecords calls at the tip)")
    ap.add_argument("--rate", type=float, default=0, help="generator events/s (0 = as fast as possible)")
    ap.add_argument("--kinesis", choices=["kinesalite", "moto"],
                    default="kinesalite" if (KINESALITE / "node_modules/kinesalite").exists() and shutil.which("node") else "moto")
    ap.add_argument("--store", choices=["s3", "local"], default="s3",
                    help="s3: tables in moto S3 with the DynamoDB commit lock; local: tables on local disk "
                         "(separates the writer from moto's S3 costs; leases stay in moto DynamoDB)")
    ap.add_argument("--out", help="also write the JSON result to this file")
    ap.add_argument("--perf-data", help="also sample the writer with `perf record -g` (dwarf call graphs, "
                                        "499 Hz) for the whole run into this file (use a symbolized build: "
                                        "BENCH_WRITER=$CARGO_TARGET_DIR/profiling/writer, `make profile-service` does it all)")
    ap.add_argument("--keep-alive", action="store_true",
                    help="put bench/keepalive_proxy.py in front of moto: the writer keeps its S3 and DynamoDB "
                         "connections open, as against AWS (moto closes every connection after one request)")
    args = ap.parse_args()
    procs = []
    port = free_port()
    procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}"
    if args.keep_alive:
        pport = free_port()
        procs.append(subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve().parent / "keepalive_proxy.py"),
                                       "--listen-port", str(pport), "--upstream-port", str(port),
                                       "--stats", args.out + ".proxy.json" if args.out else os.devnull]))
        wait_port(pport)
        url = f"http://127.0.0.1:{pport}"
    kurl = url
    if args.kinesis == "kinesalite":
        kport = free_port()
        procs.append(start_kinesalite(kport))
        kurl = f"http://127.0.0.1:{kport}"
        wait_port(kport)
    wait_port(port)
    try:
        emulators = {"moto": procs[0].pid, "kinesis_emulator": procs[-1].pid if args.kinesis == "kinesalite" else procs[0].pid}
        if args.keep_alive:
            emulators["keepalive_proxy"] = procs[1].pid
        run(args, url, kurl, emulators)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)


def expected_counts(args, probes):
    """What the writer must have written, rejected and dropped, computed independently:
    the generator is deterministic for a seed, so the same events are regenerated to a file
    and put through the test suite's Python model of the table rules
    (`integration-tests/expected.py`); every probe is a unique valid event."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "integration-tests"))
    from expected import expected_from_lines
    with tempfile.NamedTemporaryFile(suffix=".ndjson") as f:
        subprocess.run([LOADGEN, "generate", "--count", str(args.events), "--seed", "9", "--output", f.name,
                        "--duplicate-ratio", "0.01", "--malformed-ratio", "0.001"], check=True, capture_output=True)
        lines = pathlib.Path(f.name).read_bytes().split(b"\n")[:-1]
    events, rejects, counts = expected_from_lines(lines, int(time.time()))
    return {"read": len(lines) + probes, "written": len(events) + probes,
            "duplicates": counts["duplicates"], "rejected": len(rejects)}


def run(args, url, kurl, emulators):
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ENDPOINT_URL_KINESIS": kurl,
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true", "AWS_EC2_METADATA_DISABLED": "true",
           "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info,buoyant_kernel=warn,deltalake_core=warn")}

    def c(service):
        return boto3.client(service, endpoint_url=kurl if service == "kinesis" else url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    stream, bucket = "load", "load-lake"
    c("kinesis").create_stream(StreamName=stream, ShardCount=args.shards)
    while c("kinesis").describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.2)
    if args.store == "s3":
        c("s3").create_bucket(Bucket=bucket)
        subprocess.run([WRITER, "lock-table", "create", "--lock-table", "delta_log"], env=env, check=True,
                       capture_output=True)
        tables = ["--table", f"s3://{bucket}/events", "--rejected-table", f"s3://{bucket}/events_rejected",
                  "--commit-lock", "dynamodb"]
        s3 = c("s3")

        def read_log(version):
            key = f"events/_delta_log/{version:020}.json"
            try:
                return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None
    else:
        local = pathlib.Path(tempfile.mkdtemp(prefix="load-lake-"))
        tables = ["--table", str(local / "events"), "--rejected-table", str(local / "events_rejected")]

        def read_log(version):
            try:
                return (local / "events" / "_delta_log" / f"{version:020}.json").read_bytes()
            except FileNotFoundError:
                return None
    log_path = tempfile.NamedTemporaryFile(prefix="writer-load-", suffix=".log", delete=False).name
    log = open(log_path, "wb")
    writer = subprocess.Popen([WRITER, "run", "--stream", stream, *tables, "--lease-table", "leases",
                               "--flush-interval", args.flush_interval,
                               "--start-position", "TRIM_HORIZON",
                               "--poll-interval", args.poll_interval, "--metrics-port", "0",
                               "--exit-when-idle", "15s",
                               "--log-format", "json"],
                              env=env, stdout=subprocess.PIPE, stderr=log)
    perf = None
    if args.perf_data:
        perf = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-p",
                                 str(writer.pid), "-o", args.perf_data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    peak_rss = [0]
    writer_user_sys = [(0.0, 0.0)]
    stop = threading.Event()
    pids = {"writer": writer.pid, **emulators}
    cpu_start = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    cpu = dict(cpu_start)

    def sample_rss():
        while writer.poll() is None:
            try:
                for line in open(f"/proc/{writer.pid}/status"):
                    if line.startswith("VmRSS:"):
                        peak_rss[0] = max(peak_rss[0], int(line.split()[1]))
            except OSError:
                pass
            for name, pid in list(pids.items()):
                cpu[name] = cpu_seconds(pid) or cpu[name]
            writer_user_sys[0] = cpu_times(writer.pid) or writer_user_sys[0]
            time.sleep(0.2)

    # version -> wall time its commit file was first listed
    visible = {}

    def poll_log():
        # Existence of the next version's file (a HEAD on S3): O(1) for the store, unlike
        # listing `_delta_log` (which in moto costs O(keys in the bucket) and, polled 10x a
        # second, would itself saturate the emulator the writer depends on).
        if args.store == "s3":
            s3p = c("s3")

            def exists(v):
                try:
                    s3p.head_object(Bucket=bucket, Key=f"events/_delta_log/{v:020}.json")
                    return True
                except s3p.exceptions.ClientError as e:
                    if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                        print(f"poll: {e}", file=sys.stderr)
                    return False
        else:
            def exists(v):
                return (local / "events" / "_delta_log" / f"{v:020}.json").exists()
        nxt = 0
        while True:
            done = stop.is_set() and writer.poll() is not None
            while exists(nxt):
                visible.setdefault(nxt, time.time())
                nxt += 1
            if done:
                return
            time.sleep(0.1)

    probes = []

    def probe_loop():
        k = c("kinesis")
        while not stop.is_set():
            u = f"probe-{uuid.uuid4()}"
            body = json.dumps({"event_uuid": u, "event_name": "probe:latency", "created_at": int(time.time())})
            t = time.time()
            r = k.put_record(StreamName=stream, Data=body.encode(), PartitionKey=u)
            probes.append((r["ShardId"], int(r["SequenceNumber"]), t))
            time.sleep(0.5)

    threads = [threading.Thread(target=f, daemon=True) for f in (sample_rss, poll_log)]
    for t in threads:
        t.start()
    t0 = time.time()
    prober = threading.Thread(target=probe_loop, daemon=True)
    prober.start()
    gen = subprocess.Popen([LOADGEN, "generate", "--count", str(args.events), "--seed", "9", "--kinesis-stream", stream,
                            "--rate", str(args.rate), "--duplicate-ratio", "0.01", "--malformed-ratio", "0.001"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pids["generator"] = gen.pid
    cpu_start["generator"] = cpu["generator"] = 0.0
    _, gen_err = gen.communicate()
    put_done = time.time()
    stop.set()
    prober.join()
    if gen.returncode != 0:
        raise RuntimeError(f"generator failed: {gen_err.decode()[-2000:]}")
    out, _ = writer.communicate(timeout=3600)
    if perf is not None:
        perf.wait(timeout=120)  # perf stops by itself when the process it follows exits
    threads[1].join()
    log.close()
    summary = json.loads(out.decode().strip().splitlines()[-1])

    commits = []  # (visible time, commitInfo timestamp, shards)
    for version, seen_at in sorted(visible.items()):
        body = read_log(version) or b""
        for line in body.splitlines():
            ci = json.loads(line).get("commitInfo", {})
            if "kinesis" in ci:
                commits.append((seen_at, ci["timestamp"] / 1000.0, ci["kinesis"]["shards"]))
    lat, lat_committed = [], []
    for shard, seq, t in probes:
        seen = [(v, ts) for v, ts, shards in commits if shard in shards
                and int(shards[shard]["first_sequence"]) <= seq <= int(shards[shard]["last_sequence"])]
        if seen:
            v, ts = min(seen)
            lat.append(v - t)
            lat_committed.append(ts - t)
    lat.sort()
    lat_committed.sort()
    commit_ms = []
    batch_sizes = []
    for line in open(log_path, errors="replace"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        f = rec.get("fields", rec)
        if f.get("message") == "batch committed":
            commit_ms.append(f["commit_ms"])
            batch_sizes.append(f["read"])
    commit_ms.sort()
    last_visible = max(v for v, _, _ in commits)
    result = {
        "events": args.events, "shards": args.shards, "flush_interval": args.flush_interval,
        "poll_interval": args.poll_interval,
        "kinesis": args.kinesis, "store": args.store, "rate": args.rate, "keep_alive": args.keep_alive,
        "generator_seconds": round(put_done - t0, 2),
        "generator_events_per_sec": round(args.events / (put_done - t0)),
        "end_to_end_seconds": round(last_visible - t0, 2),
        "sustained_events_per_sec": round(summary["read"] / (last_visible - t0)),
        "probes": len(probes), "probes_seen": len(lat),
        "latency_p50_s": percentile(lat, 50), "latency_p99_s": percentile(lat, 99),
        "latency_max_s": lat[-1] if lat else None,
        # put -> the commit's own timestamp (taken when the commit is prepared, before the
        # log entry is written): separates the writer's share from the poller's resolution.
        "latency_to_commit_start_p50_s": percentile(lat_committed, 50),
        "latency_to_commit_start_p99_s": percentile(lat_committed, 99),
        "commits": len(commits),
        "commit_ms_p50": percentile(commit_ms, 50), "commit_ms_p99": percentile(commit_ms, 99),
        "batch_records_p50": percentile(sorted(batch_sizes), 50),
        "batch_records_max": max(batch_sizes) if batch_sizes else None,
        "writer_peak_rss_mb": round(peak_rss[0] / 1024, 1),
        # CPU seconds each process used during the run (2 cores in all on the bench machine):
        # shows which part was the bottleneck.
        "cpu_seconds": {name: round(cpu[name] - cpu_start[name], 1) for name in pids}, "writer_summary": summary,
        "writer_user_sys_seconds": [round(x, 1) for x in writer_user_sys[0]],
        "writer_cpu_seconds_per_million_events": round((cpu["writer"] - cpu_start["writer"]) * 1e6 / summary["read"], 1),
        "writer_log": log_path,
    }
    result["expected"] = expected_counts(args, len(probes))
    result["counts_exact"] = all(summary[k] == v for k, v in result["expected"].items())
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
