"""Deterministic discrete-event simulation of the events lake writer (issue 15).

Python standard library only; the same `--seed` gives the same numbers.

What is modelled (one Delta table, every writer committing to it):

* **Kinesis**: `shards` shards, events spread evenly (partition key = event_uuid). Each shard is
  polled every `poll` seconds (the writer's `--poll-interval`, also the 5 GetRecords/s/shard
  limit) plus a GetRecords latency; a record is *received* at the first poll of its shard
  after it was put.
* **Writers**: `writers` tasks, shards spread evenly over them (leases). Each runs the service
  loop of `writer/src/service/mod.rs` + `buffer.rs`: the buffer's clock starts when the first
  record after the previous take is received; the flush starts at that + `F - min(est, F/2)`
  (`est` = EWMA 1/4 of the last batch durations), or when `max_batch_events` are buffered.
  The loop is blocked while a batch commits (records received meanwhile go to the next batch).
* **A batch** (`writer/src/commit/mod.rs`): prepare (CPU) -> sync (probe `N+1.json` with S3
  GETs until a 404; in `replay` mode also read the key column of every file other writers
  added, in `rebase` mode not) -> dedupe + Parquet encode (CPU) -> PUT one data file per
  partition (parallel, `put_concurrency`) -> the log entry through the DynamoDB lock
  (`storage/src/lock/dynamodb.rs`): HEAD N.json, GetItem N-1, PUT temp, **conditional PutItem
  (the commit point)**, COPY temp -> N.json (**visible**), PutItem complete, DELETE temp.
  The base version is what the sync saw (visible versions); the claim fails when another
  commit claimed `base+1` first -> conflict: back off U(5,50) ms x attempt, sync again (a
  LIST), re-check the keys (replay) and try again; files already uploaded are reused.
* **Compaction**: once an hour a compactor run rewrites the previous hour's small files
  (duration from bytes / throughput) and commits once (delta-rs: on a lost version it reads
  the winners, checks, and retries at the next version); its commits are counted with the
  writers' and its conflicts too.

Platforms: `aws` (latency distributions from published AWS figures, see PLATFORMS and
SCALING notes) or `fitted` (per-phase times bootstrapped from a measured single-writer run of
`bench/multiwriter.py`, for validation on this machine).
"""
import heapq
import json
import math
import random
import statistics

EVENT_JSON_BYTES = 313  # loadgen average (BENCHMARKS.md: 313 MB per 1M events)
EVENT_PARQUET_BYTES = 88  # 84 MB of Parquet for 950k rows (BENCHMARKS.md, issue 12)
KEY_BYTES = 16  # event_uuid in the key index / key column


def lognormal(rng, median, p99):
    """A lognormal sample with the given median and 99th percentile (seconds)."""
    sigma = math.log(p99 / median) / 2.326
    return median * math.exp(rng.gauss(0.0, sigma))


# Latency models: (median s, p99 s). "cited" = from an AWS page (see scaling.md), "assumed"
# otherwise. Object bodies add size / per-connection throughput.
AWS = {
    "s3_get_small": (0.020, 0.150),   # cited: <512 KB requests "median latency ... tens of ms"; 100-200 ms first byte
    "s3_head": (0.015, 0.120),        # assumed (like a small GET)
    "s3_put_small": (0.030, 0.200),   # cited range (tens of ms median, 100-200 ms tail), exact values assumed
    "s3_copy_small": (0.040, 0.250),  # assumed (server-side copy of a < 10 KB object)
    "s3_list": (0.040, 0.250),        # assumed
    "s3_delete": (0.020, 0.150),      # assumed
    "ddb_write": (0.006, 0.025),      # cited: single-digit ms average for PutItem/GetItem; p99 assumed
    "ddb_read": (0.004, 0.020),       # cited as above
    "kinesis_get": (0.020, 0.100),    # assumed (GetRecords round trip); poll every 200 ms (5 TPS/shard, cited)
    "s3_conn_bytes_per_s": 80e6,      # assumed per-connection PUT/GET throughput for data files
}


class Platform:
    """Where the time goes for one writer operation."""

    def __init__(self, rng, kind="aws", lat=None, cpu=None, fitted=None):
        self.rng = rng
        self.kind = kind
        self.lat = dict(AWS if lat is None else lat)
        # CPU seconds of writer work (one task): per event (decode, dedupe, Parquet) and per
        # commit (fixed overheads); `vcpu` parallel cores per task.
        self.cpu = cpu or {"per_event": 20e-6, "per_file": 0.0008, "per_commit": 0.010, "vcpu": 2}
        self.fitted = fitted

    def l(self, name):
        m, p = self.lat[name]
        return lognormal(self.rng, m, p)

    def parallel(self, n, one, concurrency):
        """Wall time of n independent requests with at most `concurrency` in flight."""
        if n <= 0:
            return 0.0
        if n > 8 * concurrency or (concurrency == 1 and n > 64):
            # many requests: the lanes even out (sum / lanes) plus one request's tail
            xs = [one() for _ in range(64)]
            return statistics.fmean(xs) * n / concurrency + max(xs)
        lanes = [0.0] * min(n, concurrency)
        for _ in range(n):
            i = min(range(len(lanes)), key=lanes.__getitem__)
            lanes[i] += one()
        return max(lanes)


def zipf_weights(n, s):
    w = [1.0 / (i + 1) ** s for i in range(n)]
    t = sum(w)
    return [x / t for x in w]


def expected_partitions(events, weights, late_share, late_days, ontime_dates=1):
    """Expected distinct (event_type, created_date) partitions in a batch of `events`
    (on-time events spread over `ontime_dates` dates, late ones over `late_days` more)."""
    if events <= 0:
        return 0.0
    on_time = events * (1 - late_share) / ontime_dates
    late = events * late_share / max(1, late_days)
    total = ontime_dates * sum(1 - math.exp(-on_time * p) for p in weights)
    if late_share > 0:
        total += late_days * sum(1 - math.exp(-late * p) for p in weights)
    return total


class Table:
    """The Delta log as the lock sees it: claimed versions, and when each became visible."""

    def __init__(self):
        self.claimed = 0  # latest claimed version
        self.visible_at = {0: 0.0}  # version -> time N.json exists
        self.commits = []  # (claim time, who, events)
        self.files_added = {}  # version -> files

    def latest_visible(self, t):
        v = self.claimed
        while v > 0 and self.visible_at.get(v, math.inf) > t:
            v -= 1
        return v


class Sim:
    def __init__(self, seed):
        self.now = 0.0
        self.q = []
        self.n = 0
        self.rng = random.Random(seed)

    def at(self, t, fn):
        self.n += 1
        heapq.heappush(self.q, (t, self.n, fn))

    def run(self, until):
        while self.q and self.q[0][0] <= until:
            t, _, fn = heapq.heappop(self.q)
            self.now = t
            fn()


class Writer:
    def __init__(self, sim, cfg, table, plat, wid, shard_rate, nshards, stats):
        self.sim, self.cfg, self.table, self.p, self.id = sim, cfg, table, plat, wid
        self.index = int(wid[1:]) if wid[1:].isdigit() else 0
        self.rate = shard_rate  # events/s per shard
        self.nshards = nshards
        self.stats = stats
        r = sim.rng
        # Each shard polls every poll + GetRecords latency (fixed per shard: a phase and a period).
        self.phase = [r.uniform(0, cfg["poll"]) for _ in range(nshards)]
        self.period = [cfg["poll"] + plat.l("kinesis_get") for _ in range(nshards)]
        self.last_take = 0.0
        self.est = 0.0
        self.known_version = 0
        self.busy = False
        self.explicit = cfg.get("explicit_arrivals", False)
        self.next_burst = [0] * nshards
        self.receipts = {}
        if self.explicit:
            # Poisson arrivals per shard (low volume), generated lazily
            self.next_arrival = [r.expovariate(shard_rate) if shard_rate > 0 else math.inf for _ in range(nshards)]
            self.pending = [[] for _ in range(nshards)]

    # -- reading ---------------------------------------------------------------------------
    def tick_at_or_before(self, j, t):
        if t < self.phase[j]:
            return -math.inf
        return self.phase[j] + math.floor((t - self.phase[j]) / self.period[j]) * self.period[j]

    def first_tick_after(self, j, t):
        if t < self.phase[j]:
            return self.phase[j]
        return self.phase[j] + (math.floor((t - self.phase[j]) / self.period[j]) + 1) * self.period[j]

    def arrivals_until(self, j, t):
        """Explicit mode: move arrivals up to t into pending[j]."""
        r = self.sim.rng
        while self.next_arrival[j] <= t:
            self.pending[j].append(self.next_arrival[j])
            self.next_arrival[j] += r.expovariate(self.rate)

    def next_burst_after(self, t):
        """Burst arrivals (the load generator puts 500 records per PutRecords every
        500/rate s, the same instants for every shard): the first burst time > t."""
        b, ph = self.cfg["burst_period"], self.cfg.get("burst_phase", 0.0)
        t = max(t, ph - b / 2)
        return ph + (math.floor((t - ph) / b) + 1) * b

    def since(self):
        """When the buffer clock started: first receipt of a non-empty poll after last take."""
        t0 = self.last_take
        if self.cfg.get("burst_period"):
            return min(self.burst_receipt(j, self.next_burst[j]) for j in range(self.nshards))
        if not self.explicit:
            return min(self.first_tick_after(j, t0) for j in range(self.nshards))
        best = math.inf
        for j in range(self.nshards):
            # first arrival after the last take's covering tick -> received at the first tick after it
            cover = self.tick_at_or_before(j, t0)
            self.arrivals_until(j, max(t0, cover) + 3600)
            nxt = next((a for a in self.pending[j] if a > cover), None)
            if nxt is not None:
                best = min(best, self.first_tick_after(j, max(nxt, t0)))
        return best

    def burst_receipt(self, j, k):
        """When shard j's part of burst k is received: the emulator (kinesalite, one thread)
        serves the readers' queued GetRecords when the 500-record PutRecords is done: a
        share q of the shards receive a burst `d` after it, the others (asleep between polls)
        at their next poll, U(0, poll period) later."""
        key = (j, k)
        r = self.receipts.get(key)
        if r is None:
            d, q = self.cfg["burst_receipt"]
            r = self.cfg.get("burst_phase", 0.0) + k * self.cfg["burst_period"] + d
            if k * self.cfg["burst_period"] >= self.cfg["duration"]:
                r = math.inf  # the load stopped; the writers drain what they hold
            elif self.sim.rng.random() >= q:
                r += self.sim.rng.uniform(0, self.period[j])
            self.receipts[key] = r
        return r

    def take(self, t):
        """Records received in (last_take, t]: [(count, arrived_lo, arrived_hi)]."""
        chunks = []
        if self.cfg.get("burst_period"):
            per = self.rate * self.cfg["burst_period"]
            for j in range(self.nshards):
                while self.burst_receipt(j, self.next_burst[j]) <= t:
                    k = self.next_burst[j]
                    x = self.cfg.get("burst_phase", 0.0) + k * self.cfg["burst_period"]
                    chunks.append((per, x, x))
                    self.receipts.pop((j, k), None)
                    self.next_burst[j] = k + 1
            self.last_take = t
            return chunks
        for j in range(self.nshards):
            a = self.tick_at_or_before(j, self.last_take)
            b = self.tick_at_or_before(j, t)
            if b <= a:
                continue
            if self.cfg.get("burst_period"):
                continue
            elif not self.explicit:
                lo = max(a, 0.0)
                if b > lo:
                    chunks.append((self.rate * (b - lo), lo, b))
            else:
                self.arrivals_until(j, b)
                got = [x for x in self.pending[j] if a < x <= b]
                self.pending[j] = [x for x in self.pending[j] if x > b]
                for x in got:
                    chunks.append((1, x, x))
        self.last_take = t
        return chunks

    def wait(self):
        f = self.cfg["flush"]
        return f - min(self.est, f / 2)

    # -- the service loop ------------------------------------------------------------------
    def start(self):
        # tasks start at different moments (deploys, restarts): a random offset within one
        # flush interval (cfg start_spread=0 starts them together, as in a benchmark)
        spread = self.cfg.get("start_spread", self.cfg["flush"])
        self.sim.at(self.sim.rng.uniform(0, spread) if spread else 0.0, self.schedule)

    def schedule(self):
        s = self.since()
        if s == math.inf:
            return
        due = s + self.wait()
        mode = self.cfg.get("flush_schedule", "deadline")
        if mode == "jitter":
            # proposal: +-10% random jitter on each deadline (breaks phase locking)
            due += self.sim.rng.uniform(-0.1, 0.1) * self.cfg["flush"]
        elif mode == "slotted":
            # proposal: writer i of W flushes only at its slot, i*F/W + k*F (wall clock), the
            # first slot at or after now: commits of different writers are F/W apart
            f, n = self.cfg["flush"], self.cfg["writers"]
            off = self.index * f / n
            now = max(self.sim.now, self.last_take + 1e-6)
            due = off + math.ceil((now - off) / f) * f
        cap = self.cfg.get("max_batch_events")
        if cap and not self.explicit and self.rate > 0:
            due = min(due, self.last_take + cap / (self.rate * self.nshards))
        self.sim.at(max(due, self.sim.now), self.flush)

    def flush(self):
        t = self.sim.now
        chunks = self.take(t)
        events = sum(c for c, _, _ in chunks)
        if events <= 0:
            self.schedule()
            return
        Batch(self, t, chunks, events).begin()

    def done(self, batch):
        took = self.sim.now - batch.started
        self.est = took if self.est == 0 else (3 * self.est + took) / 4
        self.schedule()


class Batch:
    """One append: prepare, sync, stage, claim; retried on conflicts."""

    def __init__(self, w, t, chunks, events):
        self.w, self.started, self.chunks, self.events = w, t, chunks, events
        self.conflicts = 0
        self.staged = False
        # rebase: shard-aligned key ownership -> dedupe needs only this writer's keys, so the
        # files are staged first and the snapshot is read just before the claim
        self.rebase = w.cfg.get("mode") == "rebase"
        self.parts = max(1, round(expected_partitions(events, w.cfg["type_weights"], w.cfg["late_share"],
                                                      w.cfg["late_days"], w.cfg["ontime_dates"])))

    def begin(self):
        w, p = self.w, self.w.p
        if p.kind == "fitted":
            ph = p.fitted.sample_phases(self.events, w.cfg)
            self.ph = ph
            self.after(ph["prepare"], self.stage if self.rebase else self.sync)
        else:
            cpu = p.cpu
            prep = (self.events * cpu["per_event"] * 0.45) / cpu["vcpu"]
            self.after(prep, self.stage if self.rebase else self.sync)

    def after(self, dt, fn):
        self.w.sim.at(self.w.sim.now + max(0.0, dt), fn)

    def sync(self):
        """Probe N+1.json until a 404 (a LIST after a conflict): the base version is fixed
        when the probe ends; the new entries' key columns are read after it (`read_added`
        runs after `follow`), so that part is inside the conflict window."""
        w, p, tb = self.w, self.w.p, self.w.table
        now = w.sim.now
        new = max(0, tb.latest_visible(now) - w.known_version)
        if p.kind == "fitted":
            d = self.ph["sync"] if self.conflicts == 0 else self.ph["sync_retry"]
            if self.conflicts:
                d += p.fitted.list_cost(tb)
            d += new * p.fitted.per_version * p.fitted.k
        else:
            d = sum(p.l("s3_get_small") for _ in range(new + 1))
            if self.conflicts:
                d += p.l("s3_list")
        self.after(d, self.synced)

    def synced(self):
        w, p, tb = self.w, self.w.p, self.w.table
        self.base = tb.latest_visible(w.sim.now)
        files = sum(tb.files_added.get(v, 0) for v in range(w.known_version + 1, self.base + 1))
        w.known_version = self.base
        if self.rebase:
            self.after(0.0, self.precommit)  # files staged before the sync; nothing to re-check
            return
        # writer/src/dedupe/mod.rs `read_added`: the partitions (scopes) one after the other,
        # each scope's new files 8 at a time: ~one GET of a key column per foreign file, in
        # sequence
        if p.kind == "fitted":
            d = files * p.fitted.per_file_replay * p.fitted.k
        elif files:
            rows_per_file = w.cfg["rows_per_file_other"]
            one = lambda: p.l("s3_get_small") + rows_per_file * KEY_BYTES / p.lat["s3_conn_bytes_per_s"]  # noqa: E731
            d = p.parallel(int(files), one, 1) + files * rows_per_file * 0.3e-6  # + hashing keys (assumed 0.3 us/key)
        else:
            d = 0.0
        self.after(d, self.stage)

    def stage(self):
        w, p = self.w, self.w.p
        if p.kind == "fitted":
            if not self.staged:
                d = self.ph["dedupe"] + self.ph["write_files"]
            else:
                d = self.ph["dedupe_retry"]
        else:
            cpu = p.cpu
            if not self.staged:
                enc = (self.events * cpu["per_event"] * 0.55 + self.parts * cpu["per_file"]) / cpu["vcpu"]
                size = self.events * EVENT_PARQUET_BYTES / self.parts
                one = lambda: p.l("s3_put_small") + size / p.lat["s3_conn_bytes_per_s"]  # noqa: E731
                d = enc + p.parallel(self.parts, one, w.cfg["put_concurrency"]) + cpu["per_commit"]
            else:
                d = self.events * cpu["per_event"] * 0.1 / cpu["vcpu"]  # re-check the batch's keys
        self.staged = True
        self.after(d, self.sync if (self.rebase and not self.synced_once()) else self.precommit)

    def synced_once(self):
        return getattr(self, "base", None) is not None

    def precommit(self):
        w, p = self.w, self.w.p
        if p.kind == "fitted":
            self.after(self.ph["commit_pre"], self.claim)
        elif w.cfg["store"] == "local":
            self.after(0.001, self.claim)
        else:
            # HEAD N.json, GetItem N-1, PUT temp
            self.after(p.l("s3_head") + p.l("ddb_read") + p.l("s3_put_small") + p.l("ddb_write") / 2, self.claim)

    def claim(self):
        w, p, tb = self.w, self.w.p, self.w.table
        now = w.sim.now
        if tb.claimed != self.base:
            self.conflicts += 1
            w.stats["conflicts"] += 1
            w.stats["conflict_log"].append(now)
            backoff = w.sim.rng.uniform(0.005, 0.050) * min(self.conflicts, 10)
            if self.conflicts >= 10:
                w.stats["gave_up"] += 1
            self.after(backoff, self.sync)
            return
        tb.claimed += 1
        v = tb.claimed
        tb.files_added[v] = self.parts
        if p.kind == "fitted":
            publish = self.ph["commit_post"]
        elif w.cfg["store"] == "local":
            publish = 0.0
        else:
            publish = p.l("ddb_write") / 2 + p.l("s3_copy_small")
        tb.visible_at[v] = now + publish
        tb.commits.append((now, w.id, self.events))
        w.known_version = v

        def visible():
            vis = w.sim.now
            w.stats["batches"].append((self.started, vis, self.events, self.conflicts, self.parts,
                                       vis - min(lo for _, lo, _ in self.chunks)))
            for c, lo, hi in self.chunks:
                w.stats["fresh"].append((c, vis - hi, vis - lo, vis))
            tail = 0.0
            if p.kind != "fitted" and w.cfg["store"] != "local":
                tail = p.l("ddb_write")  # mark complete (DELETE of the temp is in the background)
            self.after(tail, lambda: w.done(self))

        self.after(publish, visible)


class Compactor:
    """Hourly compaction: one commit that rewrites the previous hour's files."""

    def __init__(self, sim, cfg, table, plat, stats):
        self.sim, self.cfg, self.table, self.p, self.stats = sim, cfg, table, plat, stats

    def start(self):
        self.sim.at(self.cfg["compact_every"], self.run)

    def run(self):
        cfg = self.cfg
        hour_bytes = cfg["rate"] * cfg["compact_every"] * EVENT_PARQUET_BYTES
        # read + rewrite at the compactor's throughput (assumed), then commit with rebase
        d = hour_bytes * 2 / cfg["compactor_bytes_per_s"] + 5.0
        self.attempts = 0
        self.sim.at(self.sim.now + d, self.sync)
        self.sim.at(self.sim.now + cfg["compact_every"], self.run)

    def sync(self):
        self.base = self.table.latest_visible(self.sim.now)
        d = (self.p.l("s3_get_small") + self.p.l("s3_list")) if self.p.kind == "aws" else 0.01
        self.sim.at(self.sim.now + d, self.claim)

    def claim(self):
        tb = self.table
        pre = (self.p.l("s3_put_small") + self.p.l("ddb_write")) if self.p.kind == "aws" else 0.005
        if tb.claimed != self.base:
            self.stats["compactor_conflicts"] += 1
            self.attempts += 1
            # delta-rs rebase: read the winners (GET each), re-check, retry
            self.sim.at(self.sim.now + pre, self.sync)
            return
        tb.claimed += 1
        v = tb.claimed
        tb.visible_at[v] = self.sim.now + ((self.p.l("s3_copy_small")) if self.p.kind == "aws" else 0.0)
        tb.files_added[v] = 0
        tb.commits.append((self.sim.now, "compactor", 0))
        self.stats["compactions"] += 1


def weighted_percentile(items, q):
    """items: (weight, lo, hi) uniform intervals; the q-quantile of the mixture (bisection)."""
    if not items:
        return None
    total = sum(w for w, _, _ in items)
    lo = min(l for _, l, _ in items)
    hi = max(h for _, _, h in items)
    for _ in range(50):
        mid = (lo + hi) / 2
        below = 0.0
        for w, a, b in items:
            if mid >= b:
                below += w
            elif mid > a:
                below += w * (mid - a) / (b - a)
        if below / total < q:
            lo = mid
        else:
            hi = mid
    return hi


def pctl(values, q):
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 3)


def simulate(cfg, seed=1, fitted=None):
    """Run one configuration; return the metrics."""
    sim = Sim(seed)
    plat = Platform(random.Random(seed + 1), kind="fitted" if fitted else "aws", lat=cfg.get("lat"),
                    cpu=cfg.get("cpu"), fitted=fitted)
    if fitted:
        fitted.rng = random.Random(seed + 2)
    table = Table()
    stats = {"conflicts": 0, "gave_up": 0, "batches": [], "fresh": [], "conflict_log": [],
             "compactor_conflicts": 0, "compactions": 0}
    cfg = dict(cfg)
    cfg.setdefault("type_weights", zipf_weights(cfg.get("event_types", 100), cfg.get("zipf_s", 1.0)))
    cfg.setdefault("late_share", 0.02)
    cfg.setdefault("late_days", 2)
    cfg.setdefault("ontime_dates", 1)
    cfg.setdefault("poll", 0.2)
    cfg.setdefault("mode", "replay")
    cfg.setdefault("store", "s3")
    cfg.setdefault("put_concurrency", 16)
    cfg.setdefault("get_concurrency", 16)
    cfg.setdefault("compactor_bytes_per_s", 100e6)
    writers, shards = cfg["writers"], cfg["shards"]
    shard_rate = cfg["rate"] / shards
    per_writer_rate = cfg["rate"] / writers
    batch = per_writer_rate * cfg["flush"]
    cfg["rows_per_file_other"] = max(1.0, batch / max(1.0, expected_partitions(
        batch, cfg["type_weights"], cfg["late_share"], cfg["late_days"], cfg["ontime_dates"])))
    cfg.setdefault("explicit_arrivals", cfg["rate"] * cfg["duration"] < 200_000)
    ws = []
    split = cfg.get("shard_split") or [shards // writers + (1 if i < shards % writers else 0) for i in range(writers)]
    writers = len(split)
    for i in range(writers):
        k = split[i]
        w = Writer(sim, cfg, table, plat, f"w{i}", shard_rate, k, stats)
        ws.append(w)
        w.start()
    if cfg.get("compact_every"):
        Compactor(sim, cfg, table, plat, stats).start()
    sim.run(cfg["duration"] + cfg.get("drain", 0.0))
    warm = cfg.get("warmup", min(60.0, cfg["duration"] / 5))
    span = cfg["duration"] - warm
    commits = [c for c in table.commits if warm <= c[0] <= cfg["duration"]]
    wcommits = [c for c in commits if c[1] != "compactor"]
    batches = [b for b in stats["batches"] if b[1] >= warm]
    # every failed claim, also of batches still retrying (or committed in the drain)
    conflicts = stats["conflicts"]
    all_commits = len([c for c in table.commits if c[1] != "compactor"])
    # only events made visible after the warm-up
    fresh = [(c, a, b) for (c, a, b, vis) in stats["fresh"] if vis >= warm]
    durations = sorted(b[1] - b[0] for b in batches)
    parts = [b[4] for b in batches]
    out = {
        "writers": writers, "shards": shards, "flush_s": cfg["flush"], "rate": cfg["rate"],
        "sim_seconds": cfg["duration"],
        "commits": len(wcommits), "commits_per_s": round(len(commits) / span, 4) if span > 0 else None,
        "writer_commits_per_s": round(len(wcommits) / span, 4) if span > 0 else None,
        "conflicts": conflicts, "conflict_rate": round(conflicts / all_commits, 4) if all_commits else 0.0,
        "batches_with_conflict": sum(1 for b in stats["batches"] if b[3]),
        "compactions": stats["compactions"], "compactor_conflicts": stats["compactor_conflicts"],
        "gave_up": stats["gave_up"],
        "events_committed_per_s": round(sum(b[2] for b in batches) / span, 1) if span > 0 else None,
        "batch_events_mean": round(statistics.fmean(b[2] for b in batches), 1) if batches else 0,
        "batch_s_p50": round(durations[len(durations) // 2], 3) if durations else None,
        "batch_s_p99": round(durations[min(len(durations) - 1, int(0.99 * len(durations)))], 3) if durations else None,
        "files_per_commit": round(statistics.fmean(parts), 1) if parts else 0,
        "freshness_p50_s": round(weighted_percentile(fresh, 0.50), 3) if fresh else None,
        # the writer's own metric: commit visible - oldest record of the batch, per batch
        "oldest_freshness_p50_s": pctl([b[5] for b in batches], 0.50),
        "oldest_freshness_p99_s": pctl([b[5] for b in batches], 0.99),
        "freshness_p99_s": round(weighted_percentile(fresh, 0.99), 3) if fresh else None,
    }
    return out


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", required=True, help="JSON config")
    a = ap.parse_args()
    print(json.dumps(simulate(json.loads(a.config), a.seed), indent=1))


if __name__ == "__main__":
    main()
