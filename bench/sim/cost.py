"""Monthly cost per scale, this design next to Firehose + Lambda + Glue (issue 15). Stdlib only.

Reads the simulated per-scale rows (`scales.py --mode rebase --flush-schedule jitter`, default
bench/sim/scales-rebase-jitter.json) and prices, for every row, one month (730 h) of

* **this design**: Kinesis (PROVISIONED shards of the row), Fargate writers (+ compactor),
  DynamoDB on-demand (leases, commit lock), S3 requests and storage, network, CloudWatch, KMS,
  ECR/Scheduler;
* **Firehose + Lambda + Glue** at the same volume, two variants: producers write to Firehose
  (Direct PUT), or Firehose reads the same Kinesis stream (the producer contract of this design).

Everything printed is **priced**: a list price (us-east-1, constants below, each with its source
and a `verify` flag when the number was not read on a retrieved AWS page) times a quantity that
is **simulated** (from the rows), **from terraform** (task sizes, schedules, retentions) or
**assumed** (constants below, each labelled). Nothing is measured on AWS.

Usage: python3 bench/sim/cost.py [--scales bench/sim/scales-rebase-jitter.json]
                                 [--out bench/sim/costs.json] [--event-bytes 313]
Deterministic: same input, same output.
"""
import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lakesim  # noqa: E402  (zipf_weights, expected_partitions, event sizes)

# ----------------------------------------------------------------------------------------------
# Unit prices, us-east-1, list, no free tier, no discounts. Status: "aws" = the number was read
# on a retrieved AWS page; "verify" = the number is the one terraform/README.md "Cost notes" and
# SCALING.md §5 already use, not confirmed on a retrieved AWS page (a third-party page that
# agrees is named where one was found). Re-check every "verify" price before deciding.
# ----------------------------------------------------------------------------------------------
HOURS = 730.0
MONTH_S = HOURS * 3600.0
GB = 2.0 ** 30
TB = 1024 * GB

# https://aws.amazon.com/kinesis/data-streams/pricing/ (us-east-1). Units confirmed on that page
# (PUT payload unit = 25 KB chunk of a record; on-demand rounds each record up to 1 KB); the
# dollar amounts are not in the retrieved excerpt -> verify.
KDS_SHARD_HOUR = 0.015            # $/shard-hour, PROVISIONED. verify
KDS_PUT_UNITS_PER_M = 0.014       # $/million PUT payload units. verify
KDS_PUT_UNIT_BYTES = 25 * 1024    # aws (unit definition)
KDS_EXTENDED_RETENTION_SHARD_HOUR = 0.020  # $/shard-hour beyond 24 h (prod keeps 168 h). verify
KDS_ON_DEMAND_STREAM_HOUR = 0.04  # $/stream-hour, ON_DEMAND (not used in totals). verify

# https://aws.amazon.com/fargate/pricing/ (us-east-1, Linux/x86). Same numbers on
# https://www.vantage.sh/blog/fargate-pricing (third party) -> verify.
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
# https://aws.amazon.com/vpc/pricing/ (public IPv4 address, in-use). verify
PUBLIC_IPV4_HOUR = 0.005
# https://aws.amazon.com/privatelink/pricing/ (interface endpoint per AZ-hour, per GB processed,
# first PB). verify
VPCE_AZ_HOUR = 0.01
VPCE_GB = 0.01

# https://aws.amazon.com/dynamodb/pricing/on-demand/ (us-east-1). Same numbers on
# https://airbyte.com/data-engineering-resources/dynamodb-pricing (third party) -> verify.
DDB_WRU_PER_M = 0.625
DDB_RRU_PER_M = 0.125

# https://aws.amazon.com/s3/pricing/ (us-east-1, S3 Standard). Storage tiers per month:
# first 50 TB, next 450 TB, over 500 TB. verify (the retrieved excerpt has no numbers).
S3_STORAGE_TIERS = [(50 * TB, 0.023), (450 * TB, 0.022), (float("inf"), 0.021)]
S3_PUT_PER_1K = 0.005             # PUT, COPY, POST, LIST. verify
S3_GET_PER_1K = 0.0004            # GET, HEAD and all other requests; DELETE is free. verify

# https://aws.amazon.com/cloudwatch/pricing/ (us-east-1). Free-tier sizes confirmed on that page
# (not applied here); $0.50/GB, $0.30/metric and $3/dashboard also on
# https://signoz.io/guides/cloudwatch-pricing (third party) -> verify.
CW_LOGS_INGEST_GB = 0.50
CW_LOGS_STORAGE_GB_MONTH = 0.03   # verify
CW_METRIC_MONTH = 0.30            # custom metric (first 10k)
CW_ALARM_MONTH = 0.10             # standard-resolution alarm metric. verify
CW_DASHBOARD_MONTH = 3.00

# https://aws.amazon.com/kms/pricing/ : "$1/month" per key confirmed on that page (aws);
# $0.03 per 10,000 requests on https://www.wring.co/blog/aws-kms-pricing-guide (third party) ->
# verify.
KMS_KEY_MONTH = 1.00
KMS_PER_10K = 0.03

# https://aws.amazon.com/ecr/pricing/ (storage). verify. EventBridge Scheduler: 14 M free
# invocations/month (https://aws.amazon.com/eventbridge/pricing/), 4,380 used -> $0. verify
ECR_GB_MONTH = 0.10

# https://aws.amazon.com/firehose/pricing/ (us-east-1). Confirmed on the retrieved AWS page (de
# and ru versions): Direct PUT and "KDS as a source" ingestion is tiered and billed per GB in 5 KB
# increments per record; format conversion is billed per GB of ingested data in 5 KB increments;
# dynamic partitioning per GB delivered to S3, per object, optionally per JQ hour. The FAQ (quoted
# in github.com/awslabs/aws-fluent-plugin-kinesis issue 193): the 5 KB round-up is per record,
# not per API call. The dollar amounts are not in the excerpts -> verify.
FH_ROUND_BYTES = 5 * 1024
FH_INGEST_TIERS = [(500 * TB, 0.029), (1536 * TB, 0.025), (3072 * TB, 0.020), (float("inf"), 0.020)]
FH_FORMAT_CONVERSION_GB = 0.018
FH_DYNPART_GB = 0.020
FH_DYNPART_PER_1K_OBJECTS = 0.005
FH_JQ_HOUR = 0.07                 # not used: the Lambda returns the partition keys

# https://aws.amazon.com/lambda/pricing/ : "$0.00001667 per GB-s" and "$0.20 per 1 million
# requests", US East (N. Virginia), read in the page's example (aws); also in
# https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html
LAMBDA_PER_M_REQUESTS = 0.20
LAMBDA_GB_S = 0.0000166667

# https://aws.amazon.com/glue/pricing/ : $0.44 per DPU-hour (ETL example on the retrieved jp/tr
# pages; the crawler rate is assumed equal -> verify); Data Catalog: first million objects stored
# and first million requests free (aws).
GLUE_DPU_HOUR = 0.44

PRICE_SOURCES = {
    "KDS_SHARD_HOUR": (KDS_SHARD_HOUR, "https://aws.amazon.com/kinesis/data-streams/pricing/", "verify"),
    "KDS_PUT_UNITS_PER_M": (KDS_PUT_UNITS_PER_M, "https://aws.amazon.com/kinesis/data-streams/pricing/", "verify"),
    "KDS_EXTENDED_RETENTION_SHARD_HOUR": (KDS_EXTENDED_RETENTION_SHARD_HOUR, "https://aws.amazon.com/kinesis/data-streams/pricing/", "verify"),
    "FARGATE_VCPU_HOUR": (FARGATE_VCPU_HOUR, "https://aws.amazon.com/fargate/pricing/", "verify (third party agrees)"),
    "FARGATE_GB_HOUR": (FARGATE_GB_HOUR, "https://aws.amazon.com/fargate/pricing/", "verify (third party agrees)"),
    "PUBLIC_IPV4_HOUR": (PUBLIC_IPV4_HOUR, "https://aws.amazon.com/vpc/pricing/", "verify"),
    "VPCE_AZ_HOUR": (VPCE_AZ_HOUR, "https://aws.amazon.com/privatelink/pricing/", "verify"),
    "VPCE_GB": (VPCE_GB, "https://aws.amazon.com/privatelink/pricing/", "verify"),
    "DDB_WRU_PER_M": (DDB_WRU_PER_M, "https://aws.amazon.com/dynamodb/pricing/on-demand/", "verify (third party agrees)"),
    "DDB_RRU_PER_M": (DDB_RRU_PER_M, "https://aws.amazon.com/dynamodb/pricing/on-demand/", "verify (third party agrees)"),
    "S3_STORAGE_GB_MONTH_FIRST_50TB": (S3_STORAGE_TIERS[0][1], "https://aws.amazon.com/s3/pricing/", "verify"),
    "S3_PUT_PER_1K": (S3_PUT_PER_1K, "https://aws.amazon.com/s3/pricing/", "verify"),
    "S3_GET_PER_1K": (S3_GET_PER_1K, "https://aws.amazon.com/s3/pricing/", "verify"),
    "CW_LOGS_INGEST_GB": (CW_LOGS_INGEST_GB, "https://aws.amazon.com/cloudwatch/pricing/", "verify (third party agrees)"),
    "CW_LOGS_STORAGE_GB_MONTH": (CW_LOGS_STORAGE_GB_MONTH, "https://aws.amazon.com/cloudwatch/pricing/", "verify"),
    "CW_METRIC_MONTH": (CW_METRIC_MONTH, "https://aws.amazon.com/cloudwatch/pricing/", "verify (third party agrees)"),
    "CW_ALARM_MONTH": (CW_ALARM_MONTH, "https://aws.amazon.com/cloudwatch/pricing/", "verify"),
    "CW_DASHBOARD_MONTH": (CW_DASHBOARD_MONTH, "https://aws.amazon.com/cloudwatch/pricing/", "verify (third party agrees)"),
    "KMS_KEY_MONTH": (KMS_KEY_MONTH, "https://aws.amazon.com/kms/pricing/", "aws"),
    "KMS_PER_10K": (KMS_PER_10K, "https://aws.amazon.com/kms/pricing/", "verify (third party agrees)"),
    "ECR_GB_MONTH": (ECR_GB_MONTH, "https://aws.amazon.com/ecr/pricing/", "verify"),
    "FH_INGEST_GB_FIRST_500TB": (FH_INGEST_TIERS[0][1], "https://aws.amazon.com/firehose/pricing/", "verify (5 KB per-record rounding: aws)"),
    "FH_FORMAT_CONVERSION_GB": (FH_FORMAT_CONVERSION_GB, "https://aws.amazon.com/firehose/pricing/", "verify (billed on ingested GB, 5 KB rounding: aws)"),
    "FH_DYNPART_GB": (FH_DYNPART_GB, "https://aws.amazon.com/firehose/pricing/", "verify"),
    "FH_DYNPART_PER_1K_OBJECTS": (FH_DYNPART_PER_1K_OBJECTS, "https://aws.amazon.com/firehose/pricing/", "verify"),
    "LAMBDA_PER_M_REQUESTS": (LAMBDA_PER_M_REQUESTS, "https://aws.amazon.com/lambda/pricing/", "aws"),
    "LAMBDA_GB_S": (LAMBDA_GB_S, "https://aws.amazon.com/lambda/pricing/", "aws"),
    "GLUE_DPU_HOUR": (GLUE_DPU_HOUR, "https://aws.amazon.com/glue/pricing/", "aws for ETL jobs; crawler rate verify"),
}

# ----------------------------------------------------------------------------------------------
# Quantities. "measured" = BENCHMARKS.md on this machine; "terraform" = terraform/envs/*;
# "code" = read from the writer/compactor source; "assumed" = a stated guess.
# ----------------------------------------------------------------------------------------------
EVENT_JSON_BYTES = lakesim.EVENT_JSON_BYTES   # 313 B, measured (loadgen average), what the rows used
PARQUET_RATIO = lakesim.EVENT_JSON_BYTES / lakesim.EVENT_PARQUET_BYTES  # 3.56x, measured (issue 12)
TYPES, ZIPF, LATE_SHARE, LATE_DAYS = 100, 1.0, 0.02, 2  # as scales.py

# Writer, per commit (code: writer/src/commit, storage/src/lock/dynamodb.rs; lakesim's sequence)
LOG_PUTS_PER_COMMIT = 2        # PUT temp commit file + COPY temp -> N.json (PUT-class)
LOG_GETS_PER_COMMIT = 2        # probe GET N+1.json (404) + HEAD N.json
DDB_WRU_PER_COMMIT = 2         # conditional PutItem (claim) + PutItem (complete)
DDB_RRU_PER_COMMIT = 1         # consistent GetItem N-1 (< 4 KB)
CHECKPOINT_EVERY = 100         # commits (code: protocol default); 2 PUTs (checkpoint, _last_checkpoint)
COMMIT_WINDOW_S = 0.5          # assumed (SCALING §3a arithmetic): two writers conflict if within it
LEASE_ROUND_S = 10.0 / 3       # code: lease_duration (10 s) / 3; each round a consistent Scan + renewals
LEASE_ITEM_BYTES = 300         # assumed
WRITER_START_GETS = 2 * (1 + 3 + 50)  # assumed: 2 tables x (_last_checkpoint + checkpoint reads + ~50 log JSON)
WRITER_START_LISTS = 2
RESTARTS_PER_WRITER_DAY = 1.0  # assumed for always-on writers (deploys, task replacement)
KEY_GETS_PER_SMALL_FILE = 1    # code (d9fac3c): small files' key columns in one GET
KEY_GETS_PER_BIG_FILE = 2      # assumed: footer + key column of a compacted file
ADD_ACTION_BYTES = 600         # assumed: one file's add action in the Delta log
VACUUM_RETENTION_DAYS = 7      # code: compactor vacuum default (a week of time travel)
LOG_RETENTION_DAYS = 7         # code: delta.logRetentionDuration

# Scheduled writer (terraform envs/lowvolume, README "Low-volume profile")
SCHED_PERIOD_S = 600.0
SCHED_IDLE_S = 20.0
SCHED_CAP_S = 540.0            # --max-run-time 9m
SCHED_FLUSH_S = 30.0
# How a scheduled run ends (terraform compute module): "caught-up" (`--exit-when-caught-up`, the
# default since it was built) or "idle" (only `--exit-when-idle 20s`, the earlier profile).
SCHED_EXIT = "caught-up"
SCHED_CATCH_UP_S = 10.0        # assumed for AWS: lease + GetShardIterator + GetRecords to the tip + one
                               # commit; measured ~1-2 s per run on moto (test_hardening.py, debug build)
TASK_START_S = 60.0            # assumed: Fargate provisioning + image pull, billed (README: 30-60 s)
TASK_STOP_S = 5.0              # assumed: final commit, checkpoint, lease release

# Compactor (task sizes and schedules from terraform envs and README cost notes)
COMPACTOR_START_S = 60.0               # assumed
COMPACTOR_VCPU_S_PER_SMALL_FILE = 0.04  # assumed: anchors 1x at ~7 min per hourly run on 2 vCPU
COMPACTOR_BYTES_PER_VCPU_S = 50e6      # assumed Parquet rewrite throughput per vCPU
COMPACTOR_GETS_PER_SMALL_FILE = 2      # assumed: footer + data
MULTIPART_PART_BYTES = 10 * 2 ** 20    # assumed object_store part size; +2 for create/complete
TARGET_FILE = 256 * 2 ** 20            # compactor target (scales.py)

# CloudWatch quantities (terraform modules/monitoring: 10 log metric filters, 12 alarms, one
# dashboard; lowvolume: 8 metrics emitted, Container Insights off)
CW_ALARMS = 12
CW_LOG_BYTES_PER_COMMIT = 2048         # assumed
CW_LOG_BYTES_PER_WRITER_MINUTE = 300   # code: "lease state" line at least once a minute
CW_LOG_BYTES_PER_TASK_START = 30_000   # assumed (start-up, summary)
CW_LOG_BYTES_PER_COMPACTOR_RUN = 20_000  # assumed
CW_CONTAINER_INSIGHTS_METRICS = 25     # assumed, verify (ECS standard Container Insights)
CW_CI_BYTES_PER_TASK_MINUTE = 2000     # assumed (performance log events)
# KMS requests (assumed): S3 Bucket Keys, DynamoDB, logs, ECR ~ 60k/month; Kinesis SSE: one
# GenerateDataKey (producers) and one Decrypt (each consumer) per shard every 5 min.
KMS_BASE_REQUESTS = 60_000
KMS_REQUESTS_PER_SHARD = 2 * 12 * HOURS
ECR_IMAGE_GB = 1.0                     # assumed

# Firehose + Lambda + Glue (assumed configuration of the replaced design)
FH_BUFFER_S = 300.0            # Firehose default S3 buffer interval (docs: BufferingHints default 300 s)
FH_BUFFER_BYTES = 128 * 2 ** 20  # dynamic partitioning buffer (max 128 MiB)
FH_LAMBDA_BUFFER_S = 60.0      # docs: default Lambda buffering interval 60 s
FH_LAMBDA_BUFFER_BYTES = 3 * 2 ** 20  # docs: Lambda buffer hint 0.2-3 MB; the cheapest
LAMBDA_MEMORY_GB = 0.5         # assumed
LAMBDA_S_PER_EVENT = 50e-6     # assumed (parse, enrich, re-serialize one event in Python)
LAMBDA_S_PER_INVOCATION = 0.05  # assumed
KPL_AGG_MAX_BYTES = 51_200     # KPL AggregationMaxSize default (assumed for Direct PUT packing too)
KPL_AGG_WINDOW_S = 0.1         # KPL RecordMaxBufferedTime default 100 ms
GLUE_CRAWLER_RUNS = HOURS / 24  # daily
GLUE_CRAWLER_DPU_HOURS = 2 * 10 / 60  # assumed: 2 DPU x 10-minute minimum (SCALING §5's $4.40)
FH_CW_ALARMS = 4               # assumed: delivery freshness, Lambda errors/throttles, ...
FH_CW_LOG_BYTES_PER_INVOCATION = 400  # Lambda START/END/REPORT lines

# Per scale: deployment (terraform envs, SCALING §1) -> (tasks, vCPU, GB, always-on writers,
# compactor interval s, compactor vCPU, GB, noncurrent-version days, log retention days, network)
DEPLOY = {
    "1/1000x scheduled": dict(env="lowvolume", writers=1, vcpu=0.25, gb=0.5, cmp_every=86400.0, cmp_vcpu=0.5,
                              cmp_gb=1.0, noncurrent_days=7, log_days=7, network="public-ipv4", ci=False, metrics=8),
    "1/1000x": dict(env="dev sizing, lowvolume network", writers=1, vcpu=0.5, gb=1.0, cmp_every=43200.0,
                    cmp_vcpu=1.0, cmp_gb=4.0, noncurrent_days=7, log_days=14, network="public-ipv4", ci=True,
                    metrics=10),
    "1x": dict(env="prod (2 writers)", writers=2, vcpu=1.0, gb=2.0, cmp_every=3600.0, cmp_vcpu=2.0, cmp_gb=8.0,
               noncurrent_days=30, log_days=90, network="endpoints", ci=True, metrics=10),
    "10x": dict(env="SCALING §1: 1 writer + 1 for failover", writers=2, vcpu=2.0, gb=4.0, cmp_every=3600.0,
                cmp_vcpu=2.0, cmp_gb=8.0, noncurrent_days=30, log_days=90, network="endpoints", ci=True, metrics=10),
    "100x": dict(env="SCALING §1: 1 writer + 1 for failover", writers=2, vcpu=2.0, gb=4.0, cmp_every=3600.0,
                 cmp_vcpu=2.0, cmp_gb=8.0, noncurrent_days=30, log_days=90, network="endpoints", ci=True, metrics=10),
    "1000x": dict(env="SCALING §1: 13 writers", writers=13, vcpu=2.0, gb=4.0, cmp_every=3600.0, cmp_vcpu=4.0,
                  cmp_gb=16.0, noncurrent_days=30, log_days=90, network="endpoints", ci=True, metrics=10),
}
VPCE_SERVICES, VPCE_AZS = 5, 2  # terraform modules/network: kinesis-streams, ecr.api, ecr.dkr, logs, sts; az_count 2

# SCALING.md §5, for the check (its own line items, $/month)
SECTION5 = {"Kinesis": 10.95, "Fargate writer": 2.53, "Compactor": 0.11, "DynamoDB": 0.19, "S3 requests": 5.39,
            "S3 storage": 0.02, "CloudWatch": 6.68, "KMS": 1.24, "ECR, Scheduler": 0.10}
SECTION5_EVENTS_PER_S = 280 / 3600.0


def tiered(amount, tiers):
    cost, left = 0.0, amount
    for size, price in tiers:
        use = min(left, size)
        cost += use * price
        left -= use
        if left <= 0:
            break
    return cost


def per_gb(tiers):
    """Byte-sized tiers -> GB-sized tiers."""
    return [(s / GB if s != float("inf") else s, p) for s, p in tiers]


def s3_storage_cost(nbytes):
    return tiered(nbytes / GB, per_gb(S3_STORAGE_TIERS))


def fargate_hour(vcpu, gb):
    return vcpu * FARGATE_VCPU_HOUR + gb * FARGATE_GB_HOUR


class Lines:
    """Line items of one design at one scale: name -> {usd, how, label}."""

    def __init__(self):
        self.items = {}

    def add(self, name, usd, how, label="priced"):
        self.items[name] = {"usd": round(usd, 4), "how": how, "label": label}

    def total(self, exclude=()):
        return round(sum(v["usd"] for k, v in self.items.items() if k not in exclude), 4)


def partitions(events, w):
    return lakesim.expected_partitions(events, w, LATE_SHARE, LATE_DAYS, 1)


def partition_weights(w):
    """(weight, is_late) of every (event_type, date) partition: on-time today, late over 2 days."""
    out = [(p * (1 - LATE_SHARE), False) for p in w]
    for _ in range(LATE_DAYS):
        out += [(p * LATE_SHARE / LATE_DAYS, True) for p in w]
    return out


def design(row, rate, event_bytes, w, sched=False):
    """This design at one scale. Returns (Lines, quantities)."""
    d = DEPLOY[row["scale"]]
    q = {}
    parquet_bytes = event_bytes / PARQUET_RATIO
    events_month = rate * MONTH_S
    json_bytes_month = events_month * event_bytes
    kpl = row["kpl"]
    shards = row["shards"]
    if event_bytes != EVENT_JSON_BYTES and kpl:  # bytes-bound with aggregation: resize like scales.py
        shards = max(1, math.ceil(rate * event_bytes / 1e6 / 0.75))
    q.update(events_per_s=rate, events_month=events_month, json_gb_month=json_bytes_month / GB,
             parquet_gb_month=events_month * parquet_bytes / GB, shards=shards, kpl=kpl)
    L = Lines()

    # --- Kinesis, PROVISIONED
    if kpl:
        agg = min(KPL_AGG_MAX_BYTES, max(event_bytes, rate / shards * KPL_AGG_WINDOW_S * event_bytes))
        records_month = json_bytes_month / agg
        put_units = records_month * math.ceil(agg / KDS_PUT_UNIT_BYTES)
    else:
        agg, records_month = event_bytes, events_month
        put_units = events_month * math.ceil(event_bytes / KDS_PUT_UNIT_BYTES)
    q.update(kinesis_records_month=records_month, kinesis_record_bytes=agg, put_units_month=put_units)
    L.add("Kinesis (provisioned)", shards * HOURS * KDS_SHARD_HOUR + put_units / 1e6 * KDS_PUT_UNITS_PER_M,
          f"PROVISIONED, {shards} shard(s) x 730 h x ${KDS_SHARD_HOUR} + {put_units / 1e6:,.1f} M PUT units x "
          f"${KDS_PUT_UNITS_PER_M}/M ({'KPL-aggregated records of ~%.0f KB' % (agg / 1024) if kpl else 'one record per event'}); 24 h retention")

    # --- Writers: task-hours, commits, files
    if sched:
        lam = rate
        if SCHED_EXIT == "idle":  # before --exit-when-caught-up: until a 20 s gap without records
            wait = (math.exp(lam * SCHED_IDLE_S) - 1) / lam if lam > 0 else SCHED_IDLE_S
            active = min(SCHED_CAP_S, max(SCHED_IDLE_S, wait))
        else:  # --exit-when-caught-up: read to the tip, one commit, stop
            active = SCHED_CATCH_UP_S
        runs = MONTH_S / SCHED_PERIOD_S
        billed_s = TASK_START_S + active + TASK_STOP_S
        task_h = runs * billed_s / 3600
        commits_per_run = max(1, math.ceil(active / SCHED_FLUSH_S))
        events_run = rate * SCHED_PERIOD_S
        ev_commit = events_run / commits_per_run
        files_commit = partitions(ev_commit, w)
        commits_month = runs * commits_per_run
        active_writers = 1
        starts_month = runs
        q.update(runs_month=runs, run_active_s=active, run_billed_s=billed_s, commits_per_run=commits_per_run,
                 hits_max_run_time=active >= SCHED_CAP_S)
        fg = task_h * fargate_hour(d["vcpu"], d["gb"])
        ip = task_h * PUBLIC_IPV4_HOUR
        L.add("Fargate writer", fg + ip,
              f"{runs:,.0f} runs x {billed_s:.0f} s (start {TASK_START_S:.0f} + active {active:.0f} + stop "
              f"{TASK_STOP_S:.0f}) = {task_h:,.0f} task-h x ${fargate_hour(d['vcpu'], d['gb']):.4f} "
              f"({d['vcpu']} vCPU/{d['gb']} GB) + public IPv4 ${ip:.2f}")
        lease_rounds = runs * active / LEASE_ROUND_S
        writer_minutes = task_h * 60
    else:
        writers = d["writers"]
        active_writers = min(writers, shards)
        # the row simulated row["writers"] writers; extra writers take a fair share of the shards
        per_writer_commit = row["commits_per_s"] / row["writers"]
        commit_rate = per_writer_commit * active_writers
        ev_commit = rate / commit_rate
        files_commit = row["files_per_commit"] * partitions(ev_commit, w) / partitions(row["batch_events_mean"], w) \
            if row["batch_events_mean"] > 0 else partitions(ev_commit, w)
        commits_month = commit_rate * MONTH_S
        task_h = writers * HOURS
        starts_month = writers * RESTARTS_PER_WRITER_DAY * HOURS / 24
        key_starts = active_writers * RESTARTS_PER_WRITER_DAY * HOURS / 24  # an idle standby loads no keys
        fg = task_h * fargate_hour(d["vcpu"], d["gb"])
        net_ip = task_h * PUBLIC_IPV4_HOUR if d["network"] == "public-ipv4" else 0.0
        L.add("Fargate writer", fg + net_ip,
              f"{writers} task(s) x 730 h x ${fargate_hour(d['vcpu'], d['gb']):.4f} ({d['vcpu']} vCPU/{d['gb']} GB, "
              f"{d['env']}); {active_writers} hold shards" + (f" + public IPv4 ${net_ip:.2f}" if net_ip else ""))
        lease_rounds = writers * MONTH_S / LEASE_ROUND_S
        writer_minutes = task_h * 60
    conflict = max(row["conflict_rate"], (active_writers - 1) * COMMIT_WINDOW_S / (row["flush_s"] if not sched else SCHED_FLUSH_S))
    files_day = commits_month / (HOURS / 24) * files_commit
    q.update(active_writers=active_writers, commits_month=commits_month, events_per_commit=ev_commit,
             files_per_commit=files_commit, files_per_day_before=files_day, conflicts_per_commit=conflict,
             writer_task_hours=task_h)

    # --- Compactor
    day_files_after = row["files_per_day_after"]
    runs_c = MONTH_S / d["cmp_every"]
    small_per_run = files_day * d["cmp_every"] / 86400
    bytes_per_run = rate * d["cmp_every"] * parquet_bytes
    cmp_s = COMPACTOR_START_S + (small_per_run * COMPACTOR_VCPU_S_PER_SMALL_FILE +
                                 bytes_per_run / COMPACTOR_BYTES_PER_VCPU_S) / d["cmp_vcpu"]
    cmp_h = runs_c * cmp_s / 3600
    cmp_cost = cmp_h * fargate_hour(d["cmp_vcpu"], d["cmp_gb"])
    if d["network"] == "public-ipv4":
        cmp_cost += cmp_h * PUBLIC_IPV4_HOUR
    q.update(compactor_runs_month=runs_c, compactor_run_s=cmp_s, compactor_task_hours=cmp_h,
             compactor_parallel_tasks=math.ceil(cmp_s / d["cmp_every"]))
    L.add("Fargate compactor", cmp_cost,
          f"{runs_c:,.0f} runs x {cmp_s:,.0f} s ({small_per_run:,.0f} small files, {bytes_per_run / 2**20:,.0f} MiB each run) "
          f"= {cmp_h:,.1f} task-h at {d['cmp_vcpu']} vCPU/{d['cmp_gb']} GB"
          + (f"; needs {math.ceil(cmp_s / d['cmp_every'])} tasks in parallel" if cmp_s > d["cmp_every"] else ""))

    # --- DynamoDB on-demand
    table_rru = max(1, math.ceil(shards * LEASE_ITEM_BYTES / 4096))  # consistent Scan of the lease table
    held = shards / active_writers  # shards of the committing writer (lease checkpoint each)
    renewals = lease_rounds * 1 if sched else shards * MONTH_S / LEASE_ROUND_S  # holders renew each round
    wru = commits_month * (DDB_WRU_PER_COMMIT + held + conflict) + renewals + starts_month * 2  # + take, release
    rru = commits_month * (DDB_RRU_PER_COMMIT + conflict) + lease_rounds * table_rru + starts_month * 2
    q.update(ddb_wru_month=wru, ddb_rru_month=rru)
    L.add("DynamoDB on-demand", wru / 1e6 * DDB_WRU_PER_M + rru / 1e6 * DDB_RRU_PER_M,
          f"{wru / 1e6:,.2f} M WRU (2 lock writes + lease checkpoint per held shard per commit, renewal per shard "
          f"every {LEASE_ROUND_S:.1f} s) + {rru / 1e6:,.2f} M RRU (lock read per commit, consistent lease-table scan "
          f"per writer round)")

    # --- S3 requests
    put_writer = commits_month * (files_commit + LOG_PUTS_PER_COMMIT) + commits_month / CHECKPOINT_EVERY * 2
    get_writer = commits_month * (LOG_GETS_PER_COMMIT + (active_writers - 1) + conflict) + starts_month * WRITER_START_GETS
    list_writer = commits_month * conflict + starts_month * WRITER_START_LISTS
    # dedupe key loads: every start (each scheduled run; a restart of an always-on writer) loads
    # the keys of each partition it touches: today's small files so far (half a day on average)
    # plus the compacted file(s) of late partitions
    pw = partition_weights(w)
    key_gets = 0.0
    if sched:
        commits_day = commits_month / (HOURS / 24)
        for p, late in pw:
            touched_commit = 1 - math.exp(-ev_commit * p)
            f_p = commits_day * touched_commit            # small files of this partition per day
            touched_run = 1 - math.exp(-rate * SCHED_PERIOD_S * p)
            key_gets += touched_run * (0.5 * f_p * KEY_GETS_PER_SMALL_FILE + (KEY_GETS_PER_BIG_FILE if late else 0))
        key_gets *= starts_month
    else:
        # a restarted writer (rebase design) reads its own shards' files: 1/active of the table's
        key_gets = key_starts * (0.5 * files_day / active_writers * KEY_GETS_PER_SMALL_FILE)
    q.update(dedupe_key_gets_month=key_gets)
    # compactor: GET small files, PUT outputs (multipart), log + checkpoint, vacuum LIST
    out_files_run = max(1.0, day_files_after * d["cmp_every"] / 86400)
    out_bytes = bytes_per_run / out_files_run
    parts = 1 if out_bytes <= MULTIPART_PART_BYTES else math.ceil(out_bytes / MULTIPART_PART_BYTES) + 2
    objects_listed = (files_day * (VACUUM_RETENTION_DAYS + 0.5) + day_files_after * 30
                      + commits_month / (HOURS / 24) * LOG_RETENTION_DAYS)
    put_cmp = runs_c * (out_files_run * parts + LOG_PUTS_PER_COMMIT + 2)
    get_cmp = runs_c * (small_per_run * COMPACTOR_GETS_PER_SMALL_FILE + WRITER_START_GETS)
    list_cmp = runs_c * math.ceil(objects_listed / 1000)
    q.update(vacuum_objects_listed=objects_listed, compactor_puts_month=put_cmp, compactor_gets_month=get_cmp,
             compactor_lists_month=list_cmp)
    puts = put_writer + put_cmp + list_writer + list_cmp
    gets = get_writer + key_gets + get_cmp
    q.update(s3_put_class_month=puts, s3_get_class_month=gets, writer_data_puts_month=commits_month * files_commit)
    L.add("S3 requests", puts / 1e3 * S3_PUT_PER_1K + gets / 1e3 * S3_GET_PER_1K,
          f"PUT-class {puts / 1e6:,.2f} M (writer: {files_commit:,.1f} data files + {LOG_PUTS_PER_COMMIT} log per commit "
          f"= {commits_month * files_commit / 1e6:,.2f} M data PUTs; compactor {put_cmp / 1e6:,.2f} M; vacuum LIST "
          f"{list_cmp / 1e6:,.3f} M) x ${S3_PUT_PER_1K}/1k + GET-class {gets / 1e6:,.2f} M (dedupe key loads "
          f"{key_gets / 1e6:,.2f} M, compactor {get_cmp / 1e6:,.2f} M) x ${S3_GET_PER_1K}/1k")

    # --- S3 storage: one month of data held a month (+ this per month kept), 7 days of time
    # travel (pre-compaction files kept by vacuum), noncurrent versions, the log
    month_b = events_month * parquet_bytes
    tt_b = month_b * VACUUM_RETENTION_DAYS / (HOURS / 24)
    nc_b = month_b * d["noncurrent_days"] / (HOURS / 24)
    log_b = commits_month / (HOURS / 24) * LOG_RETENTION_DAYS * files_commit * ADD_ACTION_BYTES
    q.update(storage_gb={"month_of_data": month_b / GB, "time_travel_7d": tt_b / GB,
                         f"noncurrent_{d['noncurrent_days']}d": nc_b / GB, "delta_log": log_b / GB})
    L.add("S3 storage", s3_storage_cost(month_b + tt_b + nc_b + log_b),
          f"{month_b / GB:,.1f} GB Parquet (one month, {event_bytes} B JSON / {PARQUET_RATIO:.2f}) + {tt_b / GB:,.1f} GB "
          f"time travel (7 d) + {nc_b / GB:,.1f} GB noncurrent versions ({d['noncurrent_days']} d) + {log_b / GB:,.2f} GB log; "
          f"the data part grows by ${s3_storage_cost(month_b):,.2f} for every further month kept")

    if not sched and active_writers != row["writers"]:
        q["s3_data_put_usd_if_one_active_writer"] = row["commits_per_s"] * MONTH_S * row["files_per_commit"] / 1e3 * S3_PUT_PER_1K
        q["s3_data_put_usd_as_deployed"] = commits_month * files_commit / 1e3 * S3_PUT_PER_1K

    # --- Network
    q["network_usd_if_public_ipv4"] = (task_h + cmp_h) * PUBLIC_IPV4_HOUR  # Kinesis -> task transfer is free
    if d["network"] == "endpoints":
        gb = json_bytes_month / GB * 1.05  # GetRecords (+ ~5% framing, assumed); logs/ECR small
        L.add("Network (VPC endpoints)", VPCE_SERVICES * VPCE_AZS * HOURS * VPCE_AZ_HOUR + gb * VPCE_GB,
              f"{VPCE_SERVICES} interface endpoints x {VPCE_AZS} AZ x 730 h x ${VPCE_AZ_HOUR} + {gb:,.0f} GB Kinesis reads x "
              f"${VPCE_GB}/GB (S3, DynamoDB via free gateway endpoints; a shared NAT would be $0.045/GB instead)")
    else:
        L.add("Network (VPC endpoints)", 0.0, "public subnets, public IPv4 (in the Fargate lines), no NAT, no endpoints")

    # --- CloudWatch
    log_bytes = (commits_month * CW_LOG_BYTES_PER_COMMIT + writer_minutes * CW_LOG_BYTES_PER_WRITER_MINUTE +
                 starts_month * CW_LOG_BYTES_PER_TASK_START + runs_c * CW_LOG_BYTES_PER_COMPACTOR_RUN)
    ci_metrics = CW_CONTAINER_INSIGHTS_METRICS if d["ci"] else 0
    if d["ci"]:
        log_bytes += (task_h + cmp_h) * 60 * CW_CI_BYTES_PER_TASK_MINUTE
    log_gb = log_bytes / GB
    cw = (log_gb * CW_LOGS_INGEST_GB + log_gb * d["log_days"] / 30.4 * CW_LOGS_STORAGE_GB_MONTH
          + (d["metrics"] + ci_metrics) * CW_METRIC_MONTH + CW_ALARMS * CW_ALARM_MONTH + CW_DASHBOARD_MONTH)
    q.update(cw_logs_gb_month=log_gb)
    L.add("CloudWatch", cw,
          f"{log_gb:,.2f} GB logs x ${CW_LOGS_INGEST_GB} + {d['metrics']} log metrics"
          + (f" + {ci_metrics} Container Insights metrics (verify)" if ci_metrics else "")
          + f" x ${CW_METRIC_MONTH} + {CW_ALARMS} alarms x ${CW_ALARM_MONTH} + dashboard ${CW_DASHBOARD_MONTH:.0f}")

    # --- KMS
    kreq = KMS_BASE_REQUESTS + shards * KMS_REQUESTS_PER_SHARD
    L.add("KMS", KMS_KEY_MONTH + kreq / 1e4 * KMS_PER_10K,
          f"1 key ${KMS_KEY_MONTH:.0f} + {kreq / 1e3:,.0f}k requests x ${KMS_PER_10K}/10k (Kinesis SSE per shard, "
          f"S3 Bucket Keys)")
    L.add("ECR, Scheduler", ECR_IMAGE_GB * ECR_GB_MONTH,
          f"{ECR_IMAGE_GB:.0f} GB image x ${ECR_GB_MONTH}; Scheduler within its free 14 M invocations")
    return L, q


def firehose(row, rate, event_bytes, w, shards, put_units, via_kinesis, aggregate=True):
    """Firehose (+ format conversion to Parquet, dynamic partitioning by event_type/date) ->
    Lambda enrichment -> S3 + Glue Data Catalog (daily crawler)."""
    L = Lines()
    events_month = rate * MONTH_S
    json_bytes = events_month * event_bytes
    parquet_bytes = json_bytes / PARQUET_RATIO
    # records as Firehose meters them: one per event, or (where this design assumes KPL from 10x
    # up) aggregated KDS records / producer-packed newline-delimited records of the same size
    if row["kpl"] and aggregate:
        rec = min(KPL_AGG_MAX_BYTES, max(event_bytes, rate / shards * KPL_AGG_WINDOW_S * event_bytes))
    else:
        rec = event_bytes
    records = json_bytes / rec
    billed = records * math.ceil(rec / FH_ROUND_BYTES) * FH_ROUND_BYTES
    if via_kinesis:
        L.add("Kinesis (provisioned)", shards * HOURS * KDS_SHARD_HOUR + put_units / 1e6 * KDS_PUT_UNITS_PER_M,
              f"the same stream: {shards} shard(s), {put_units / 1e6:,.1f} M PUT units")
    L.add("Firehose ingestion", tiered(billed / GB, per_gb(FH_INGEST_TIERS)),
          f"{records / 1e6:,.1f} M records of {rec:,.0f} B, each rounded up to 5 KB = {billed / GB:,.0f} GB x "
          f"${FH_INGEST_TIERS[0][1]}/GB (tiered)" + (" (source: the Kinesis stream)" if via_kinesis else " (Direct PUT)"))
    L.add("Firehose format conversion", billed / GB * FH_FORMAT_CONVERSION_GB,
          f"JSON -> Parquet, {billed / GB:,.0f} GB (5 KB rounding) x ${FH_FORMAT_CONVERSION_GB}")
    # objects: per buffer window, one per active partition, more where a partition's bytes pass
    # the buffer size
    windows = MONTH_S / FH_BUFFER_S
    objects = 0.0
    for p, _late in partition_weights(w):
        n = rate * FH_BUFFER_S * p
        objects += max(1 - math.exp(-n), n * event_bytes / FH_BUFFER_BYTES)
    objects *= windows
    L.add("Firehose dynamic partitioning", json_bytes / GB * FH_DYNPART_GB + objects / 1e3 * FH_DYNPART_PER_1K_OBJECTS,
          f"{json_bytes / GB:,.0f} GB (JSON bytes: upper bound, verify the basis) x ${FH_DYNPART_GB} + "
          f"{objects / 1e6:,.2f} M objects x ${FH_DYNPART_PER_1K_OBJECTS}/1k (buffer {FH_BUFFER_S:.0f} s); partition "
          f"keys from the Lambda, no JQ hours")
    inv = max(MONTH_S / FH_LAMBDA_BUFFER_S, json_bytes / FH_LAMBDA_BUFFER_BYTES)
    gbs = (events_month * LAMBDA_S_PER_EVENT + inv * LAMBDA_S_PER_INVOCATION) * LAMBDA_MEMORY_GB
    L.add("Lambda (enrichment)", inv / 1e6 * LAMBDA_PER_M_REQUESTS + gbs * LAMBDA_GB_S,
          f"{inv / 1e6:,.2f} M invocations (3 MB / 60 s buffers) x ${LAMBDA_PER_M_REQUESTS}/M + {gbs:,.0f} GB-s "
          f"({LAMBDA_S_PER_EVENT * 1e6:.0f} us/event, {LAMBDA_MEMORY_GB} GB, assumed) x ${LAMBDA_GB_S}")
    L.add("S3 requests", objects / 1e3 * S3_PUT_PER_1K,
          f"{objects / 1e6:,.2f} M object PUTs (no compaction: mean object {parquet_bytes / max(objects, 1) / 1024:,.1f} KB "
          f"of Parquet)")
    L.add("S3 storage", s3_storage_cost(parquet_bytes),
          f"{parquet_bytes / GB:,.1f} GB Parquet (one month, same ratio assumed), no time travel, no versions")
    L.add("Glue (catalog + crawler)", GLUE_CRAWLER_RUNS * GLUE_CRAWLER_DPU_HOURS * GLUE_DPU_HOUR,
          f"daily crawler {GLUE_CRAWLER_DPU_HOURS:.2f} DPU-h x ${GLUE_DPU_HOUR}; catalog within the free million "
          f"objects/requests; $0 with Athena partition projection instead")
    lg = inv * FH_CW_LOG_BYTES_PER_INVOCATION / GB
    L.add("CloudWatch", lg * CW_LOGS_INGEST_GB + FH_CW_ALARMS * CW_ALARM_MONTH + CW_DASHBOARD_MONTH,
          f"{lg:,.2f} GB Lambda logs + {FH_CW_ALARMS} alarms + dashboard (Firehose/Lambda metrics are free)")
    kreq = KMS_BASE_REQUESTS + (shards * KMS_REQUESTS_PER_SHARD if via_kinesis else 0)
    L.add("KMS", KMS_KEY_MONTH + kreq / 1e4 * KMS_PER_10K, f"1 key + {kreq / 1e3:,.0f}k requests")
    q = {"firehose_dynpart_usd_if_billed_on_parquet_bytes": parquet_bytes / GB * FH_DYNPART_GB
         + objects / 1e3 * FH_DYNPART_PER_1K_OBJECTS,
         "firehose_records_month": records, "firehose_record_bytes": rec, "firehose_billed_gb": billed / GB,
         "firehose_objects_month": objects, "lambda_invocations_month": inv}
    return L, q


LABELS = {
    "priced": "every $ figure: a list price above x a quantity below; never measured on AWS",
    "simulated": "from the input rows (bench/sim/scales.py, seeded): shards and KPL flag, writer count at 1000x, "
                 "commits/s, files per commit (rescaled with lakesim.expected_partitions when more writers share the "
                 "shards), conflict rate, files/day after compaction",
    "measured": "313 B of JSON and 88 B of Parquet per event (BENCHMARKS.md, loadgen events, this machine)",
    "terraform": "task sizes, writer counts, schedules, retentions, network posture, alarm/metric counts (terraform/envs, "
                 "modules/monitoring, README cost notes)",
    "code": "per-commit request sequence, lease round every 10/3 s, checkpoint every 100 commits, 7-day vacuum and log "
            "retention, one GET per small file's keys",
    "assumed": "the remaining constants at the top of cost.py (run start-up, compactor throughput, log bytes, Lambda "
               "cost per event, Firehose buffers, restarts per day, KMS request counts, ...)",
    "storage": "one month of data held for one month; the data part grows by that much for every further month kept",
}

DESIGN_OVERHEAD = ("CloudWatch", "KMS", "ECR, Scheduler")  # not "data path" (SCALING §5's definition)
FH_OVERHEAD = ("CloudWatch", "KMS")


def price_all(rows, event_bytes, only_scales=None):
    w = lakesim.zipf_weights(TYPES, ZIPF)
    out = []
    for row in rows:
        name = row["scale"]
        if only_scales and name not in only_scales:
            continue
        rate = row["events_per_s"]
        sched = name == "1/1000x scheduled"
        dl, dq = design(row, rate, event_bytes, w, sched=sched)
        fd, fq = firehose(row, rate, event_bytes, w, dq["shards"], dq["put_units_month"], via_kinesis=False)
        fk, _ = firehose(row, rate, event_bytes, w, dq["shards"], dq["put_units_month"], via_kinesis=True)
        fdn, _ = firehose(row, rate, event_bytes, w, dq["shards"], dq["put_units_month"], via_kinesis=False,
                          aggregate=False)
        fq["firehose_direct_put_total_without_aggregation"] = fdn.total()
        dq.update(fq)
        out.append({
            "scale": name, "events_per_s": rate, "kinesis_mode": "PROVISIONED",
            "deployment": DEPLOY[name]["env"],
            "quantities": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dq.items()},
            "this_design": {"lines": dl.items, "total": dl.total(), "data_path": dl.total(DESIGN_OVERHEAD)},
            "firehose_direct_put": {"lines": fd.items, "total": fd.total(), "data_path": fd.total(FH_OVERHEAD)},
            "firehose_from_kinesis": {"lines": fk.items, "total": fk.total(), "data_path": fk.total(FH_OVERHEAD)},
        })
    return out


def section5_check(rows):
    """SCALING §5's profile (280 events/h, envs/lowvolume) through the same model."""
    row = dict(next(r for r in rows if r["scale"] == "1/1000x scheduled"))
    row["events_per_s"] = SECTION5_EVENTS_PER_S
    global SCHED_EXIT
    mode, SCHED_EXIT = SCHED_EXIT, "idle"  # §5 was written for runs that end after a 20 s gap
    try:
        r = price_all([row], EVENT_JSON_BYTES)[0]
    finally:
        SCHED_EXIT = mode
    d = r["this_design"]["lines"]
    mine = {"Kinesis": d["Kinesis (provisioned)"]["usd"], "Fargate writer": d["Fargate writer"]["usd"],
            "Compactor": d["Fargate compactor"]["usd"], "DynamoDB": d["DynamoDB on-demand"]["usd"],
            "S3 requests": d["S3 requests"]["usd"], "S3 storage": d["S3 storage"]["usd"],
            "CloudWatch": d["CloudWatch"]["usd"], "KMS": d["KMS"]["usd"], "ECR, Scheduler": d["ECR, Scheduler"]["usd"]}
    return {"events_per_s": SECTION5_EVENTS_PER_S, "lines": {k: {"section5": SECTION5[k], "model": round(v, 2)}
                                                           for k, v in mine.items()},
            "section5_total": round(sum(SECTION5.values()), 2), "model_total": r["this_design"]["total"],
            "section5_data_path": round(sum(v for k, v in SECTION5.items() if k not in ("CloudWatch", "KMS", "ECR, Scheduler")), 2),
            "model_data_path": r["this_design"]["data_path"],
            "model_quantities": r["quantities"],
            "firehose_direct_put": r["firehose_direct_put"], "firehose_from_kinesis": r["firehose_from_kinesis"]}


def fmt(x):
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:,.1f}"
    return f"{x:,.2f}"


def markdown(res, check, sens):
    names = [r["scale"] for r in res]
    o = []
    o.append("| scale | this design: total (data path) | Firehose Direct PUT: total (data path) | "
             "Firehose reading the stream: total (data path) | data path, this design / Firehose from the stream |")
    o.append("|---|---|---|---|---|")
    for r in res:
        a, b, c = r["this_design"], r["firehose_direct_put"], r["firehose_from_kinesis"]
        o.append(f"| {r['scale']} | {fmt(a['total'])} ({fmt(a['data_path'])}) | {fmt(b['total'])} ({fmt(b['data_path'])}) | "
                 f"{fmt(c['total'])} ({fmt(c['data_path'])}) | {a['data_path'] / c['data_path']:.2f}x |")
    for key, title in (("this_design", "This design, $/month"), ("firehose_from_kinesis",
                                                                 "Firehose + Lambda + Glue reading the same stream, $/month "
                                                                 "(Direct PUT: the same without the Kinesis line, "
                                                                 "fewer KMS requests)")):
        o.append(f"\n{title}:\n")
        o.append("| line | " + " | ".join(names) + " |")
        o.append("|---|" + "---|" * len(names))
        for line in res[0][key]["lines"]:
            o.append(f"| {line} | " + " | ".join(fmt(r[key]["lines"][line]["usd"]) for r in res) + " |")
        o.append("| **total** | " + " | ".join(f"**{fmt(r[key]['total'])}**" for r in res) + " |")
    o.append("\nSCALING.md §5 (280 events/h, envs/lowvolume) against this model at the same rate:\n")
    o.append("| line | §5 | model |")
    o.append("|---|---|---|")
    for k, v in check["lines"].items():
        o.append(f"| {k} | {v['section5']:.2f} | {v['model']:.2f} |")
    o.append(f"| **total** (data path) | **{check['section5_total']:.2f}** ({check['section5_data_path']:.2f}) | "
             f"**{check['model_total']:.2f}** ({check['model_data_path']:.2f}) |")
    fd = check["firehose_direct_put"]["lines"]
    o.append(f"\nFirehose at §5's rate: ingestion {fd['Firehose ingestion']['usd']:.2f}, format conversion "
             f"{fd['Firehose format conversion']['usd']:.2f}, dynamic partitioning {fd['Firehose dynamic partitioning']['usd']:.2f}, "
             f"Lambda {fd['Lambda (enrichment)']['usd']:.2f}, S3 {fd['S3 requests']['usd'] + fd['S3 storage']['usd']:.2f}, "
             f"crawler {fd['Glue (catalog + crawler)']['usd']:.2f}; data path Direct PUT "
             f"{check['firehose_direct_put']['data_path']:.2f}, from the stream {check['firehose_from_kinesis']['data_path']:.2f} "
             f"(§5: 0.08-4.5 and 11-15.4, without dynamic partitioning)")
    o.append(f"\nSensitivity, events of {sens['event_bytes']} B JSON (KPL shards resized bytes-bound), totals: " +
             "; ".join(f"{s['scale']}: {fmt(s['this_design'])} vs {fmt(s['firehose_direct_put'])} / "
                       f"{fmt(s['firehose_from_kinesis'])}" for s in sens["scales"]))
    o.append("\nUnit prices (us-east-1; 'verify' = not read on a retrieved AWS page):\n")
    o.append("| constant | $ | source | status |")
    o.append("|---|---|---|---|")
    for k, (v, url, st) in PRICE_SOURCES.items():
        o.append(f"| {k} | {v:g} | {url} | {st} |")
    return "\n".join(o)


def main():
    global SCHED_EXIT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default=str(pathlib.Path(__file__).resolve().parent / "scales-rebase-jitter.json"))
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "costs.json"))
    ap.add_argument("--event-bytes", type=int, default=EVENT_JSON_BYTES,
                    help="JSON bytes per event (default: the 313 B the simulated rows used)")
    ap.add_argument("--sensitivity-bytes", type=int, default=1000, help="second event size, totals only")
    ap.add_argument("--scheduled-exit", choices=["caught-up", "idle"], default=SCHED_EXIT,
                    help="how a scheduled writer run ends: --exit-when-caught-up, or a 20 s idle gap only")
    a = ap.parse_args()
    SCHED_EXIT = a.scheduled_exit
    src = json.loads(pathlib.Path(a.scales).read_text())
    rows = src["scales"]
    res = price_all(rows, a.event_bytes)
    check = section5_check(rows)
    sres = price_all(rows, a.sensitivity_bytes)
    sens = {"event_bytes": a.sensitivity_bytes,
            "scales": [{"scale": r["scale"], "shards": r["quantities"]["shards"], "this_design": r["this_design"]["total"],
                        "firehose_direct_put": r["firehose_direct_put"]["total"],
                        "firehose_from_kinesis": r["firehose_from_kinesis"]["total"]} for r in sres]}
    # the totals are sums of their lines
    for r in res + sres:
        for k in ("this_design", "firehose_direct_put", "firehose_from_kinesis"):
            assert abs(sum(v["usd"] for v in r[k]["lines"].values()) - r[k]["total"]) < 1e-6
    result = {
        "what": "monthly cost per scale (730 h), priced: us-east-1 list prices x simulated/terraform/assumed quantities; "
                "nothing measured on AWS",
        "command": "python3 bench/sim/cost.py",
        "input": {"scales": pathlib.Path(a.scales).name, "mode": src.get("mode"), "flush_schedule": src.get("flush_schedule"),
                  "seed": src.get("seed")},
        "event_json_bytes": a.event_bytes, "parquet_ratio": round(PARQUET_RATIO, 3),
        "prices": {k: {"usd": v[0], "source": v[1], "status": v[2]} for k, v in PRICE_SOURCES.items()},
        "labels": LABELS,
        "scales": res, "section5_check": check, "sensitivity": sens,
    }
    pathlib.Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(res, check, sens))


if __name__ == "__main__":
    main()
