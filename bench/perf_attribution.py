"""Attribute a `perf record -g` profile of the writer to the pipeline's parts (issue 16).

`perf report --children` on a long dwarf profile takes longer than the run it profiled on
this machine; this folds `perf script` output instead (a minute). Each sample is charged to
the first part named by its stack walking from the leaf up (so a `malloc` under Parquet
encoding is Parquet's), except that a stack under an AWS SDK operation (GetRecords, the
DynamoDB calls) is that operation's whatever its leaf. HTTP frames are charged to their caller when the stack shows it;
hyper's connection tasks have no caller frame and land in "HTTP (connection tasks)".

Usage:
  perf script -i service.perf -F comm,tid,ip,sym --no-inline | gzip -1 > service.script.gz
  python bench/perf_attribution.py service.script.gz
"""
import collections
import gzip
import sys

PARTS = [
    # Session 14 on: GetRecords is the writer's own signed call (`kinesis::get_records`);
    # before, the SDK's, whose records were then copied (`push_raw_records`).
    ("Kinesis GetRecords, own call (sign, HTTP, parse, base64, KPL)",
     ["kinesis::get_records", "push_raw_records", "kpl::deaggregate"]),
    ("Kinesis SDK (GetRecords before session 14; GetShardIterator, ListShards)", ["aws_sdk_kinesis"]),
    ("DynamoDB SDK (commit lock, leases)", ["aws_sdk_dynamodb"]),
    ("decode + enrich (schemas::parse, writer::decode, rows)", ["schemas::parse", "writer::decode", "writer::rows"]),
    ("dedupe index", ["writer::dedupe", "storage::files"]),
    ("Parquet/Arrow encode", ["parquet::", "arrow_"]),
    ("Delta log, checkpoint (deltalake, storage::log, writer::commit)",
     ["deltalake", "delta_kernel", "storage::log", "writer::commit"]),
    ("object_store (S3 requests)", ["object_store"]),
    ("HTTP (connection tasks)", ["reqwest", "hyper"]),
    ("AWS SDK runtime (smithy orchestrator, no operation frame)", ["aws_smithy"]),
    ("logging (tracing)", ["tracing_subscriber", "tracing_core"]),
    ("service loop, buffer, pipeline", ["writer::service", "writer::pipeline"]),
    ("rayon (workers, spinning)", ["rayon"]),
    ("tokio runtime (park/unpark, timers, I/O driver)", ["tokio::"]),
]
LEAF_ALLOC = ("malloc", "free", "_int_", "unlink_chunk", "realloc", "memmove", "memcpy")


# Parts that own everything under them (the SDK's JSON, signing and HTTP frames are generic
# smithy/hyper code): a stack holding one of these is charged to it whatever its leaf.
OWNERS = PARTS[:3]


def part_of(stack):
    for name, keys in OWNERS:
        if any(k in frame for frame in stack for k in keys):
            return name
    for frame in stack:
        for name, keys in PARTS:
            if any(k in frame for k in keys):
                return name
    return "other (no marker frame)"


def samples(path):
    opener = gzip.open if path.endswith(".gz") else open
    stack = []
    with opener(path, "rt", errors="replace") as f:
        for line in f:
            if not line.strip():
                if stack:
                    yield stack
                stack = []
            elif line[0] in " \t":
                parts = line.strip().split(" ", 1)
                stack.append(parts[1] if len(parts) > 1 else "")
    if stack:
        yield stack


def main():
    total = collections.Counter()
    alloc = collections.Counter()
    n = 0
    for stack in samples(sys.argv[1]):
        n += 1
        p = part_of(stack)
        total[p] += 1
        if any(a in stack[0] for a in LEAF_ALLOC):
            alloc[p] += 1
    print(f"{n} samples")
    print("| part | share of writer CPU | of which allocator/memmove at the leaf |")
    print("|---|---|---|")
    for p, v in total.most_common():
        print(f"| {p} | {100 * v / n:.1f}% | {100 * alloc[p] / n:.1f}% |")


if __name__ == "__main__":
    main()
