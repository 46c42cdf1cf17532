"""An independent implementation of the table rules, used to compute what the writer must
have written. Written from the issue's text, not from the Rust code."""
import datetime as dt
import json
import re
import unicodedata
from decimal import Decimal, ROUND_FLOOR

COMMON = ("event_uuid", "event_name", "created_at")
MIN_CREATED_AT = 946684800  # 2000-01-01


class Reject(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _pairs(pairs):
    seen = set()
    for k, _ in pairs:
        if k in COMMON and k in seen:
            raise Reject("duplicate_field")
        seen.add(k)
    return dict(pairs)


def parse(raw: bytes, now: int, max_future=86400):
    """Return the expected row dict for a valid record, or raise Reject(reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("not_utf8")
    try:
        obj = json.loads(text, object_pairs_hook=_pairs, parse_float=Decimal,
                         parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except Reject:
        raise
    except (ValueError, RecursionError):
        raise Reject("not_json")
    if not isinstance(obj, dict):
        raise Reject("not_object")
    if "event_uuid" not in obj:
        raise Reject("missing_event_uuid")
    u = obj["event_uuid"]
    if not isinstance(u, str) or u == "":
        raise Reject("invalid_event_uuid")
    if "event_name" not in obj:
        raise Reject("missing_event_name")
    name = obj["event_name"]
    if not isinstance(name, str):
        raise Reject("invalid_event_name")
    parts = name.split(":")
    if parts[0] == "":
        raise Reject("invalid_event_name")
    # Partition-value hard limits (README "Partition values").
    etype = parts[0]
    if len(etype.encode("utf-8", "surrogatepass")) > 64:
        raise Reject("event_type_too_long")
    if any(unicodedata.category(ch) == "Cc" for ch in etype):
        raise Reject("event_type_control_character")
    if len(name.encode("utf-8", "surrogatepass")) > 1024:
        raise Reject("event_name_too_long")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise Reject("event_name_control_character")
    if "created_at" not in obj:
        raise Reject("missing_created_at")
    c = obj["created_at"]
    if isinstance(c, bool) or not isinstance(c, (int, Decimal)):
        raise Reject("invalid_created_at")
    c = Decimal(c)
    secs = int(c.to_integral_value(rounding=ROUND_FLOOR))
    upper = now + max_future
    if not (MIN_CREATED_AT <= secs <= upper):
        if secs > upper and MIN_CREATED_AT <= secs // 1000 <= upper:
            raise Reject("created_at_in_milliseconds")
        raise Reject("created_at_out_of_range")
    # The configurable event_type pattern, checked last (default value).
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", etype):
        raise Reject("event_type_pattern_mismatch")
    frac = c - secs
    frac_digits = format(frac, "f").split(".")[1] if "." in format(frac, "f") else ""
    frac_digits = frac_digits[:9].rstrip("0")
    base = dt.datetime.fromtimestamp(secs, tz=dt.timezone.utc)
    created_datetime = base.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac_digits}" if frac_digits else "") + "Z"
    micros = secs * 1_000_000 + int((frac_digits + "000000")[:6])
    payload = json.loads(text, parse_float=Decimal)
    payload = {k: v for k, v in payload.items() if k not in COMMON}
    return {
        "event_uuid": u,
        "event_name": name,
        "created_at": secs,
        "created_datetime": created_datetime,
        "created_micros": micros,
        "event_type": parts[0],
        "event_subtype": parts[1] if len(parts) > 1 and parts[1] != "" else None,
        "created_date": base.date(),
        "payload": payload,
    }


def expected_from_lines(lines, now):
    """(events by (uuid, type, date) first-wins, rejects as {line_no: (reason, raw)}, counts)."""
    events = {}
    rejects = {}
    read = dups = 0
    for no, raw in enumerate(lines, 1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if raw.strip() == b"":
            continue
        read += 1
        try:
            row = parse(raw, now)
        except Reject as r:
            rejects[no] = (r.reason, raw)
            continue
        key = (row["event_uuid"], row["event_type"], row["created_date"])
        if key in events:
            dups += 1
        else:
            row["line"] = no
            events[key] = row
    return events, rejects, {"read": read, "duplicates": dups}
