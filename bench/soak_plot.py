"""Curves and a first-day-vs-last-day summary of a soak run (issue 14).

    ~/.cache/events-lake/venv/bin/python bench/soak_plot.py --results DIR [--compactor-interval-s 3600]

Reads DIR/commits.jsonl (one line per writer commit), DIR/samples.jsonl (one line per table
sample, usually after each hourly compactor run; "probe" holds bench/soak_probe.py's JSON) and,
if present, DIR/baseline.json (soak_probe.py --baseline-dir output). Missing keys, null values
and unparsable lines are tolerated (skipped and counted). Writes:

- DIR/soak.png: a grid of curves against the simulated day.
- DIR/summary.md: each metric's median over the first and over the last simulated day, their
  ratio, and the issue's goals checked.

Simulated days are counted from the earliest sim_time in either file; a run of exactly N days
puts its final instant into day N-1.
"""
import argparse
import datetime as dt
import json
import math
import pathlib
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DAY = 86400.0
HOUR = 3600.0
MIB = 1024.0 * 1024.0
FLAT = 1.2  # goal: last day / first day
QUERY_VS_BASELINE = 1.5
STORAGE_OVER = 1.1
COMPACTOR_SHARE = 0.10
# Keys a sample may use for the bytes the retention window still protects.
PROTECTED_KEYS = ["retention_protected_bytes", "protected_bytes", "retained_bytes", "tombstoned_protected_bytes"]


def load_jsonl(path, notes):
    rows, bad = [], 0
    if not path.exists():
        notes.append(f"`{path.name}` not found")
        return rows
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(o, dict) and num(o.get("sim_time")) is not None:
                rows.append(o)
            else:
                bad += 1
    if bad:
        notes.append(f"`{path.name}`: {bad} line(s) skipped (not JSON or no sim_time)")
    rows.sort(key=lambda o: num(o["sim_time"]))
    return rows


def driver_commit(c):
    """A commit line as bench/soak writes it, with the flat keys this script reads added."""
    if "rss_bytes" not in c and num(c.get("rss_kib")) is not None:
        c["rss_bytes"] = num(c["rss_kib"]) * 1024
    return c


def driver_sample(s):
    """A sample as bench/soak writes it (nested `listing`, `opened`, a list of `compactor`
    runs, `writer_checkpoint`), with the flat keys this script reads added."""
    listing, opened = s.get("listing") or {}, s.get("opened") or {}
    flat = {
        "version": opened.get("version"),
        "live_files": opened.get("live_files"),
        "live_bytes": opened.get("live_bytes"),
        "referenced_bytes": opened.get("live_bytes"),
        "tombstones": opened.get("tombstones"),
        "delta_rs_open_ms": opened.get("open_ms"),
        "objects_total": listing.get("objects"),
        "objects_bytes": listing.get("bytes"),
        "log_entries": listing.get("log_entries"),
        "log_bytes": listing.get("log_bytes"),
        "data_bytes": listing.get("data_bytes"),
        "checkpoint_version": listing.get("latest_checkpoint_version"),
        "checkpoint_bytes": listing.get("latest_checkpoint_bytes"),
        "checkpoint_write_ms": (s.get("writer_checkpoint") or {}).get("ms"),
    }
    if num(s.get("writer_rss_kib")) is not None:
        flat["rss_bytes"] = num(s["writer_rss_kib"]) * 1024
    index = s.get("dedupe_index") or {}
    if num(index.get("bytes_held")) is not None:
        flat["index_bytes"] = num(index["bytes_held"])
    data, live = num(listing.get("data_bytes")), num(opened.get("live_bytes"))
    if data is not None and live is not None:
        # Samples follow the hourly `compactor run`, whose vacuum leaves only the files some
        # version inside its window can read: the rest of the data is time travel's.
        flat["time_travel_bytes"] = max(0.0, data - live)
    runs = s.get("compactor")
    if isinstance(runs, list) and runs:
        last = runs[-1]
        flat["compactor"] = {
            "duration_ms": last.get("wall_ms"),
            "peak_rss_bytes": (num(last.get("peak_rss_kib")) or 0) * 1024 or None,
            "summary": last.get("summary") or {},
        }
        # What the retention windows protect besides the latest version: the data files the
        # run's vacuum kept for time travel or as recent uploads (it deletes the rest) and the
        # `_delta_log`, whose entries the run's checkpoint step expires past
        # `delta.logRetentionDuration`.
        vac = (last.get("summary") or {}).get("vacuum") or {}
        kept = [num(vac.get(k)) for k in ("bytes_kept_for_time_travel", "bytes_kept_recent")]
        log_bytes = num(listing.get("log_bytes"))
        if None not in kept and log_bytes is not None:
            flat["retention_protected_bytes"] = sum(kept) + log_bytes
    for k, v in flat.items():
        if k not in s or isinstance(s.get(k), list):
            s[k] = v
    return s


def num(x):
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def get(o, *path):
    for p in path:
        if not isinstance(o, dict):
            return None
        o = o.get(p)
    return o


def ms_stat(v):
    """A probe timing: {"median": ...} or a bare number."""
    if isinstance(v, dict):
        return num(v.get("median"))
    return num(v)


def probe_of(sample):
    p = sample.get("probe")
    if isinstance(p, dict) and isinstance(p.get("soak"), dict):
        return p["soak"]
    return p if isinstance(p, dict) else None


def percentile(vals, q):
    s = sorted(vals)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Run:
    def __init__(self, d, interval_override):
        self.dir = d
        self.notes = []
        self.commits = [driver_commit(c) for c in load_jsonl(d / "commits.jsonl", self.notes)]
        self.samples = [driver_sample(s) for s in load_jsonl(d / "samples.jsonl", self.notes)]
        self.baseline = None
        bp = d / "baseline.json"
        if bp.exists():
            try:
                self.baseline = json.loads(bp.read_text())
            except json.JSONDecodeError:
                self.notes.append("`baseline.json` is not JSON; ignored")
        times = [num(o["sim_time"]) for o in self.commits + self.samples]
        if not times:
            raise SystemExit(f"no records with sim_time in {d}/commits.jsonl or samples.jsonl")
        self.t0, self.t1 = min(times), max(times)
        span = self.t1 - self.t0
        self.ndays = max(1, math.ceil(span / DAY - 1e-9))
        ctimes = [num(s["sim_time"]) for s in self.samples if isinstance(s.get("compactor"), dict)]
        gaps = [b - a for a, b in zip(ctimes, ctimes[1:]) if b > a]
        if interval_override:
            self.interval_s, self.interval_src = interval_override, "--compactor-interval-s"
        elif gaps:
            self.interval_s, self.interval_src = statistics.median(gaps), "median gap between compactor samples"
        else:
            self.interval_s, self.interval_src = HOUR, "default (1 h)"

    def day(self, t):
        return (t - self.t0) / DAY

    def day_index(self, t):
        return min(int((t - self.t0) // DAY), self.ndays - 1)

    def series(self, rows, fn):
        """[(sim_day, value)] for the rows where fn gives a number."""
        out = []
        for o in rows:
            try:
                v = num(fn(o))
            except (TypeError, KeyError, ValueError, AttributeError):
                v = None
            if v is not None:
                out.append((self.day(num(o["sim_time"])), v))
        return out

    def c(self, key):
        return self.series(self.commits, lambda o: o.get(key))

    def s(self, fn):
        return self.series(self.samples, fn if callable(fn) else (lambda o: o.get(fn)))

    def by_day(self, series, agg=statistics.median):
        days = {}
        for x, v in series:
            days.setdefault(min(int(x + 1e-12), self.ndays - 1), []).append(v)
        return {k: agg(v) for k, v in days.items()}

    def hourly(self, series, agg):
        hours = {}
        for x, v in series:
            hours.setdefault(int(x * 24 + 1e-9), []).append(v)
        return [((h + 0.5) / 24, agg(v)) for h, v in sorted(hours.items())]


def compactor_files_rewritten(o):
    return get(o, "compactor", "summary", "optimize", "files_removed")


def protected_key(run):
    for k in PROTECTED_KEYS:
        if any(num(s.get(k)) is not None for s in run.samples):
            return k
    return None


def metrics(run):
    """(label, series, daily aggregate name, goal) for the summary table and the plots."""
    p99 = lambda v: percentile(v, 0.99)  # noqa: E731
    pk = protected_key(run)
    m = [
        ("commit latency, median (ms)", run.c("latency_ms"), statistics.median, "flat"),
        ("commit latency, p99 over the day (ms)", run.c("latency_ms"), p99, None),
        ("writer RSS (MiB)", [(x, v / MIB) for x, v in run.c("rss_bytes")], statistics.median, "flat"),
        ("writer RSS, max over the day (MiB)", [(x, v / MIB) for x, v in run.c("rss_bytes")], max, None),
        ("commit lag (ms)", run.c("lag_ms"), statistics.median, None),
        ("events per commit", run.c("events"), statistics.median, None),
        ("live files", run.s("live_files"), statistics.median, None),
        ("tombstones", run.s("tombstones"), statistics.median, None),
        ("objects under the table", run.s("objects_total"), statistics.median, None),
        ("_delta_log entries", run.s("log_entries"), statistics.median, None),
        ("_delta_log MiB", [(x, v / MIB) for x, v in run.s("log_bytes")], statistics.median, None),
        ("checkpoint MiB", [(x, v / MIB) for x, v in run.s("checkpoint_bytes")], statistics.median, None),
        ("checkpoint write (ms)", run.s("checkpoint_write_ms"), statistics.median, "flat"),
        ("fresh reader open, delta-rs (ms)", run.s("delta_rs_open_ms"), statistics.median, "flat"),
        ("fresh reader open, DuckDB (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "duckdb_open_ms"))),
         statistics.median, "flat"),
        ("fresh reader open, polars (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "polars_open_ms"))),
         statistics.median, "flat"),
        ("fresh DuckDB count(*) after open (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "duckdb_count_ms"))),
         statistics.median, None),
        ("fresh polars count after open (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "polars_count_ms"))),
         statistics.median, None),
        ("compactor run (s)", run.s(lambda o: num(get(o, "compactor", "duration_ms")) / 1000), statistics.median,
         "flat"),
        ("writer dedupe index (MiB, at samples)", run.s(lambda o: num(o.get("index_bytes")) / MIB),
         statistics.median, None),
        ("compactor peak RSS (MiB)", run.s(lambda o: num(get(o, "compactor", "peak_rss_bytes")) / MIB),
         statistics.median, None),
        ("compactor files rewritten", run.s(compactor_files_rewritten), statistics.median, None),
        ("storage MiB (all objects)", [(x, v / MIB) for x, v in run.s("objects_bytes")], statistics.median, None),
        ("data kept for time travel MiB (not live, inside the vacuum window)",
         [(x, v / MIB) for x, v in run.s("time_travel_bytes")], statistics.median, None),
        ("referenced MiB (latest version)", [(x, v / MIB) for x, v in run.s("referenced_bytes")],
         statistics.median, None),
    ]
    if pk:
        m.append((f"retention-protected MiB (`{pk}`)", [(x, v / MIB) for x, v in run.s(pk)], statistics.median, None))
    m += [
        ("q1 count per type, one day (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "q1_ms"))), statistics.median,
         None),
        ("q2 one event by uuid (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "q2_ms"))), statistics.median, None),
        ("q3 last hour of one type (ms)", run.s(lambda o: ms_stat(get(probe_of(o), "q3_ms"))), statistics.median,
         None),
    ]
    return m


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def storage_ratio_series(run):
    pk = protected_key(run)
    out = []
    for s in run.samples:
        st, ref = num(s.get("objects_bytes")), num(s.get("referenced_bytes"))
        if st is None or not ref:
            continue
        prot = num(s.get(pk)) if pk else 0.0
        out.append((run.day(num(s["sim_time"])), st / (ref + (prot or 0.0))))
    return out, pk


def baseline_parts(b):
    """(soak probe at the baseline moment or None, baseline probe or None, ratios or {})."""
    if not isinstance(b, dict) or "error" in b:
        return None, None, {}
    if isinstance(b.get("baseline"), dict):
        return b.get("soak"), b["baseline"], b.get("ratios") or {}
    if "q1_ms" in b:
        return None, b, {}
    return None, None, {}


def summarize(run, ms_list):
    first, last = 0, run.ndays - 1
    lines = [f"# Soak summary: `{run.dir}`", ""]
    start = dt.datetime.fromtimestamp(run.t0, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    lines += [f"- {len(run.commits):,} commits, {len(run.samples):,} samples, "
              f"{(run.t1 - run.t0) / DAY:.2f} simulated days from {start} "
              f"(first day = day 0, last day = day {last}).",
              f"- Compactor interval: {run.interval_s:.0f} simulated s ({run.interval_src}).",
              "- Values are the median over the simulated day unless the metric says otherwise; "
              f"\"flat\" means last/first ≤ {FLAT}.", ""]
    if run.ndays < 2:
        run.notes.append("only one simulated day: first and last day are the same, so every ratio is 1")
    goals = []  # (goal, measured, verdict)
    rows = []
    for label, series, agg, goal in ms_list:
        d = run.by_day(series, agg)
        a, b = d.get(first), d.get(last)
        ratio = b / a if (a and b is not None) else None
        verdict = ""
        if goal == "flat":
            verdict = "—" if ratio is None else ("pass" if ratio <= FLAT else "FAIL")
            goals.append((f"{label}: last/first day ≤ {FLAT}", fmt(ratio), verdict))
        rows.append(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio)} | {verdict} |")

    # Compactor: every run under 10% of its interval.
    durs = run.s(lambda o: num(get(o, "compactor", "duration_ms")) / 1000)
    if durs:
        worst = max(v for _, v in durs)
        share = worst / run.interval_s
        goals.append((f"compactor run < {COMPACTOR_SHARE:.0%} of its interval (worst run)",
                      f"{worst:.1f} s = {share:.1%} of {run.interval_s:.0f} s",
                      "pass" if share < COMPACTOR_SHARE else "FAIL"))
    else:
        goals.append((f"compactor run < {COMPACTOR_SHARE:.0%} of its interval", "no compactor samples", "—"))

    # Storage vs referenced (+ retention-protected).
    sr, pk = storage_ratio_series(run)
    sd = run.by_day(sr)
    if sr:
        worst = max(v for _, v in sr)
        if pk:
            goals.append((f"storage ≤ {STORAGE_OVER} × (referenced + retention-protected `{pk}`), last day",
                          f"{fmt(sd.get(last))} (worst sample {worst:.3g})",
                          "—" if sd.get(last) is None else ("pass" if sd[last] <= STORAGE_OVER else "FAIL")))
        else:
            goals.append(("storage ≤ 1.1 × (referenced + retention-protected): the samples carry no "
                          "retention-protected bytes, so this shows storage / referenced only",
                          f"{fmt(sd.get(last))} last day (worst sample {worst:.3g})", "not checkable"))
    else:
        goals.append(("storage vs referenced bytes", "no objects_bytes/referenced_bytes in samples", "—"))

    # Readability at every sampled version.
    probes = [probe_of(s) for s in run.samples if s.get("probe") is not None]
    errors = [p for p in probes if not isinstance(p, dict) or "error" in p]
    not_ok = [p for p in probes if isinstance(p, dict) and "error" not in p and p.get("ok") is False]
    goals.append(("readable by DuckDB and polars at every sampled version",
                  f"{len(probes) - len(errors)}/{len(probes)} probes read the table",
                  "—" if not probes else ("pass" if not errors else "FAIL")))
    if not_ok:
        probs = sorted({str(x) for p in not_ok for x in (p.get("problems") or [])})
        goals.append(("probe correctness checks (q2 finds 1 row, readers agree)",
                      f"{len(not_ok)} probe(s) with problems: " + "; ".join(probs[:3]), "FAIL"))

    # Queries vs the fully compacted baseline.
    bsoak, base, ratios = baseline_parts(run.baseline)
    if base:
        qlab = {"q1": "q1 count per type, one day (ms)", "q2": "q2 one event by uuid (ms)",
                "q3": "q3 last hour of one type (ms)"}
        for q in ("q1", "q2", "q3"):
            r = num(ratios.get(q))
            bm = ms_stat(base.get(f"{q}_ms"))
            if r is not None:
                goals.append((f"{q} within {QUERY_VS_BASELINE}× of the compacted baseline (same rows, baseline.json)",
                              f"{fmt(ms_stat(get(bsoak, f'{q}_ms')))} ms vs {fmt(bm)} ms = {r:.2f}×",
                              "pass" if r <= QUERY_VS_BASELINE else "FAIL"))
            last_q = run.by_day([x for x in next(s for lab, s, _, _ in ms_list if lab == qlab[q])]).get(last)
            if last_q is not None and bm:
                goals.append((f"{q}, last-day median of the samples vs baseline (rows differ slightly)",
                              f"{fmt(last_q)} ms vs {fmt(bm)} ms = {last_q / bm:.2f}×",
                              "pass" if last_q / bm <= QUERY_VS_BASELINE else "FAIL"))
        if isinstance(run.baseline, dict) and run.baseline.get("problems"):
            run.notes.append("baseline.json problems: " + "; ".join(map(str, run.baseline["problems"])))
    else:
        goals.append((f"queries within {QUERY_VS_BASELINE}× of a fully compacted baseline",
                      "no usable baseline.json", "—"))

    lines += ["## Goals", "", "| goal | measured | verdict |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {v} |" for g, m, v in goals]
    lines += ["", f"## First vs last simulated day (day 0 vs day {last})", "",
              "| metric | first day | last day | ratio | goal |", "|---|---:|---:|---:|---|"]
    lines += rows
    if run.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in run.notes]
    return "\n".join(lines) + "\n"


def plot(run, out):
    fig, axes = plt.subplots(4, 3, figsize=(19, 17), constrained_layout=True)
    ax = iter(axes.flat)
    span_days = (run.t1 - run.t0) / DAY

    def xy(series):
        return [x for x, _ in series], [v for _, v in series]

    def line(a, series, label, **kw):
        if series:
            a.plot(*xy(series), label=label, **kw)
            return True
        return False

    def finish(a, title, ylabel, legend=True):
        a.set_title(title, fontsize=10)
        a.set_ylabel(ylabel, fontsize=9)
        a.set_xlim(0, max(span_days, 1e-6))
        for dday in range(1, run.ndays + 1):
            a.axvline(dday, color="0.88", lw=0.6, zorder=0)
        a.grid(alpha=0.25)
        a.tick_params(labelsize=8)
        handles, labels = a.get_legend_handles_labels()
        if legend and handles:
            a.legend(fontsize=7, loc="upper left")
        if not a.lines and not a.collections and not a.patches:
            a.text(0.5, 0.5, "no data", ha="center", va="center", transform=a.transAxes, color="0.5")

    def twin(a, series, label, color, ylabel):
        if not series:
            return
        b = a.twinx()
        b.plot(*xy(series), color=color, label=label, lw=1, marker="." if len(series) < 400 else None, ms=3)
        b.set_ylabel(ylabel, fontsize=9, color=color)
        b.tick_params(labelsize=8, colors=color)
        b.legend(fontsize=7, loc="upper right")

    # 1 commit latency
    a = next(ax)
    lat = run.c("latency_ms")
    if lat:
        a.scatter(*xy(lat), s=1, alpha=0.12, color="0.5", label="each commit", rasterized=True)
        line(a, run.hourly(lat, statistics.median), "median per sim hour", color="C0")
        line(a, run.hourly(lat, lambda v: percentile(v, 0.99)), "p99 per sim hour", color="C3")
        if min(v for _, v in lat) > 0:
            a.set_yscale("log")
    finish(a, "per-commit latency", "ms")

    # 2 RSS
    a = next(ax)
    line(a, [(x, v / MIB) for x, v in run.c("rss_bytes")], "writer RSS", color="C0")
    line(a, run.s(lambda o: num(get(o, "compactor", "peak_rss_bytes")) / MIB), "compactor peak RSS",
         color="C1", ls="", marker=".", ms=4)
    line(a, run.s(lambda o: num(o.get("index_bytes")) / MIB), "writer dedupe index", color="C2")
    finish(a, "memory", "MiB")

    # 3 files
    a = next(ax)
    line(a, run.s("live_files"), "live files", color="C0")
    line(a, run.s("tombstones"), "tombstones", color="C1")
    line(a, run.s("objects_total"), "objects under the table", color="C2")
    finish(a, "files", "count")

    # 4 delta log
    a = next(ax)
    line(a, run.s("log_entries"), "log entries", color="C0")
    finish(a, "_delta_log", "entries")
    twin(a, [(x, v / MIB) for x, v in run.s("log_bytes")], "log MiB", "C3", "MiB")

    # 5 checkpoint
    a = next(ax)
    line(a, [(x, v / MIB) for x, v in run.s("checkpoint_bytes")], "checkpoint MiB", color="C0")
    finish(a, "checkpoint size and write time", "MiB")
    twin(a, run.s("checkpoint_write_ms"), "checkpoint write ms", "C3", "ms")

    # 6 reader open
    a = next(ax)
    line(a, run.s("delta_rs_open_ms"), "delta-rs", color="C0", marker=".", ms=3)
    line(a, run.s(lambda o: ms_stat(get(probe_of(o), "duckdb_open_ms"))), "DuckDB delta ext", color="C1",
         marker=".", ms=3)
    line(a, run.s(lambda o: ms_stat(get(probe_of(o), "polars_open_ms"))), "polars (delta-kernel)", color="C2",
         marker=".", ms=3)
    errs = [run.day(num(s["sim_time"])) for s in run.samples
            if s.get("probe") is not None and (not isinstance(probe_of(s), dict) or "error" in probe_of(s))]
    if errs:
        a.scatter(errs, [0] * len(errs), marker="x", color="red", label=f"probe error ({len(errs)})", zorder=5)
    finish(a, "fresh reader: open latest version", "ms")

    # 7 compactor
    a = next(ax)
    line(a, run.s(lambda o: num(get(o, "compactor", "duration_ms")) / 1000), "run duration", color="C0",
         marker=".", ms=3)
    finish(a, f"hourly compactor run (interval {run.interval_s:.0f} s)", "s")
    fr = run.s(compactor_files_rewritten)
    if fr:
        b = a.twinx()
        b.plot(*xy(fr), color="C3", lw=0, marker=".", ms=3, label="files rewritten")
        vd = run.s(lambda o: get(o, "compactor", "summary", "vacuum", "files_deleted"))
        if vd:
            b.plot(*xy(vd), color="C2", lw=0, marker="+", ms=3, label="files vacuumed")
        b.set_ylabel("files", fontsize=9, color="C3")
        b.tick_params(labelsize=8)
        b.legend(fontsize=7, loc="upper right")

    # 8 storage
    a = next(ax)
    line(a, [(x, v / MIB) for x, v in run.s("objects_bytes")], "storage (all objects)", color="C0")
    line(a, [(x, v / MIB) for x, v in run.s("referenced_bytes")], "referenced by latest version", color="C2")
    line(a, [(x, v / MIB) for x, v in run.s("live_bytes")], "live bytes", color="C2", ls=":")
    pk = protected_key(run)
    if pk:
        ref_prot = []
        for s in run.samples:
            r, p = num(s.get("referenced_bytes")), num(s.get(pk))
            if r is not None and p is not None:
                ref_prot.append((run.day(num(s["sim_time"])), (r + p) / MIB))
        line(a, ref_prot, "referenced + retention-protected", color="C1", ls="--")
    finish(a, "bytes in storage vs referenced", "MiB")
    sr, _ = storage_ratio_series(run)
    twin(a, sr, "storage / (referenced" + (" + protected)" if pk else ")"), "C3", "ratio")

    # 9 queries
    a = next(ax)
    _, base, _ = baseline_parts(run.baseline)
    for i, (q, lab) in enumerate([("q1", "q1 count/type, 1 day"), ("q2", "q2 uuid in a day"),
                                  ("q3", "q3 last hour, 1 type")]):
        line(a, run.s(lambda o, q=q: ms_stat(get(probe_of(o), f"{q}_ms"))), lab, color=f"C{i}", marker=".", ms=3)
        bm = ms_stat(get(base, f"{q}_ms")) if base else None
        if bm:
            a.axhline(bm, color=f"C{i}", ls="--", lw=0.8, label=f"{q} baseline")
            a.axhline(bm * QUERY_VS_BASELINE, color=f"C{i}", ls=":", lw=0.8)
    finish(a, "DuckDB queries (median of reps); dashed: compacted baseline, dotted: 1.5×", "ms")

    # 10 lag and events per commit
    a = next(ax)
    lag = run.c("lag_ms")
    if lag:
        line(a, run.hourly(lag, statistics.median), "lag, median per sim hour", color="C0")
    finish(a, "commit lag and events per commit", "ms")
    ev = run.c("events")
    twin(a, run.hourly(ev, statistics.median) if ev else [], "events/commit (median per hour)", "C3", "events")

    # 11 reader count
    a = next(ax)
    line(a, run.s(lambda o: ms_stat(get(probe_of(o), "duckdb_count_ms"))), "DuckDB count(*)", color="C1",
         marker=".", ms=3)
    line(a, run.s(lambda o: ms_stat(get(probe_of(o), "polars_count_ms"))), "polars count", color="C2",
         marker=".", ms=3)
    finish(a, "fresh reader: full count after open", "ms")

    # 12 cadence
    a = next(ax)
    hours = {}
    for o in run.commits:
        h = int((num(o["sim_time"]) - run.t0) // HOUR)
        hours[h] = hours.get(h, 0) + 1
    if hours:
        a.plot([(h + 0.5) / 24 for h in sorted(hours)], [hours[h] for h in sorted(hours)], color="C0",
               label="commits per sim hour")
    finish(a, "commit cadence and table version", "commits / hour")
    ver = run.c("version") or run.s("version")
    twin(a, ver, "table version", "C3", "version")

    for a in axes[-1]:
        a.set_xlabel("simulated day", fontsize=9)
    fig.suptitle(f"soak: {run.dir.name} — {len(run.commits):,} commits, {len(run.samples):,} samples, "
                 f"{span_days:.2f} simulated days", fontsize=12)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, type=pathlib.Path)
    ap.add_argument("--compactor-interval-s", type=float, default=None,
                    help="the compactor's schedule in simulated seconds (default: inferred from the samples, else 3600)")
    args = ap.parse_args()
    run = Run(args.results, args.compactor_interval_s)
    ms_list = metrics(run)
    summary = summarize(run, ms_list)
    (args.results / "summary.md").write_text(summary, encoding="utf-8")
    plot(run, args.results / "soak.png")
    print(f"wrote {args.results / 'soak.png'} and {args.results / 'summary.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
