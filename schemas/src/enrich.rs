//! From a parsed record to a table row: type-check the common fields and derive
//! `created_datetime`, `created_timestamp`, `created_date`, `event_type` and `event_subtype`.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::parse::{RawEvent, raw_as_str};
use crate::time::{SECS_PER_DAY, format_datetime};
use crate::validate::{RejectReason, Rejection, ValidationRules};

/// A valid, enriched event, borrowing from the input where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enriched<'a> {
    pub event_uuid: Cow<'a, str>,
    pub event_name: Cow<'a, str>,
    /// Whole Unix seconds (floor), as received.
    pub created_at: i64,
    /// Microseconds since the epoch, for the `timestamp` column.
    pub created_micros: i64,
    /// ISO 8601 UTC, with the input's fraction when it had one.
    pub created_datetime: String,
    /// Days since 1970-01-01 (the `created_date` partition).
    pub created_days: i32,
    pub payload: String,
}

impl Enriched<'_> {
    /// First `:`-separated part of the name (never empty for a valid event).
    pub fn event_type(&self) -> &str {
        split_name(&self.event_name).0
    }

    /// Second part of the name; `None` when absent or empty.
    pub fn event_subtype(&self) -> Option<&str> {
        split_name(&self.event_name).1
    }
}

/// Where `event_type` and `event_subtype` sit in an event name. A row's type and subtype
/// are read several times while its batch is grouped and written; the name is split once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameParts {
    /// End of the first part (the type starts the name).
    type_end: usize,
    /// Byte range of the second part, when present and non-empty.
    subtype: Option<(usize, usize)>,
}

impl NameParts {
    /// The parts of `name`, as [`split_name`] cuts them.
    pub fn of(name: &str) -> Self {
        let (event_type, subtype) = split_name(name);
        let type_end = event_type.len();
        NameParts {
            type_end,
            // The second part starts right after the first `:`.
            subtype: subtype.map(|s| (type_end + 1, type_end + 1 + s.len())),
        }
    }

    /// The first part of `name` (the name these parts were made of).
    pub fn event_type(self, name: &str) -> &str {
        name.get(..self.type_end).unwrap_or("")
    }

    /// The second part of `name`; `None` when absent or empty.
    pub fn event_subtype(self, name: &str) -> Option<&str> {
        self.subtype.and_then(|(start, end)| name.get(start..end))
    }
}

/// `(event_type, event_subtype)` of an event name.
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    // Byte search (SIMD in `memchr`): this runs several times per event; `:` is ASCII, so
    // the cut positions are character boundaries.
    let Some(i) = memchr::memchr(b':', name.as_bytes()) else {
        return (name, None);
    };
    let (first, rest) = (&name[..i], &name[i + 1..]);
    let second = match memchr::memchr(b':', rest.as_bytes()) {
        Some(j) => &rest[..j],
        None => rest,
    };
    (first, (!second.is_empty()).then_some(second))
}

/// Validate and enrich a parsed record.
pub fn enrich<'a>(
    raw: RawEvent<'a>,
    rules: &ValidationRules,
    now_secs: i64,
) -> Result<Enriched<'a>, Rejection> {
    let event_uuid = uuid_of(raw.event_uuid)?;
    let event_name = name_of(raw.event_name)?;
    if split_name(&event_name).0.is_empty() {
        return Err(Rejection::new(
            RejectReason::InvalidEventName,
            "event_name has an empty first part (event_type)",
        ));
    }
    // The type becomes a folder name in every object key: refuse what no key can hold
    // before anything else is done with the record (see `partition`).
    crate::partition::check_event_name(&event_name)?;
    let created = match raw.created_at {
        None => {
            return Err(Rejection::new(
                RejectReason::MissingCreatedAt,
                "created_at is missing",
            ));
        }
        Some(v) => parse_created_at(v)?,
    };
    rules.check_window(created.secs, now_secs)?;
    let created_datetime = format_datetime(created.secs, created.fraction.as_ref());
    let created_micros = created
        .secs
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(created.nanos / 1000));
    let created_days = i32::try_from(created.secs.div_euclid(SECS_PER_DAY)).map_err(|_| {
        Rejection::new(
            RejectReason::CreatedAtOutOfRange,
            "created_at is beyond the date range",
        )
    })?;
    Ok(Enriched {
        event_uuid,
        event_name,
        created_at: created.secs,
        created_micros,
        created_datetime,
        created_days,
        payload: raw.payload,
    })
}

/// `event_uuid`: present, a string, not empty.
fn uuid_of(v: Option<&RawValue>) -> Result<Cow<'_, str>, Rejection> {
    let v =
        v.ok_or_else(|| Rejection::new(RejectReason::MissingEventUuid, "event_uuid is missing"))?;
    match raw_as_str(v) {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(Rejection::new(
            RejectReason::InvalidEventUuid,
            "event_uuid is an empty string",
        )),
        None => Err(Rejection::new(
            RejectReason::InvalidEventUuid,
            not_a_string("event_uuid", v),
        )),
    }
}

/// `event_name`: present and a string (its parts are checked by the caller).
fn name_of(v: Option<&RawValue>) -> Result<Cow<'_, str>, Rejection> {
    let v =
        v.ok_or_else(|| Rejection::new(RejectReason::MissingEventName, "event_name is missing"))?;
    raw_as_str(v).ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidEventName,
            not_a_string("event_name", v),
        )
    })
}

/// `created_at` split into whole seconds (floor) and the fraction.
#[derive(Debug, PartialEq, Eq)]
struct CreatedAt<'a> {
    secs: i64,
    nanos: u32,
    /// Fraction digits as the input wrote them (possibly more than 9).
    fraction: Cow<'a, str>,
}

fn parse_created_at(raw: &RawValue) -> Result<CreatedAt<'_>, Rejection> {
    let text = raw.get();
    let invalid = || {
        Rejection::new(
            RejectReason::InvalidCreatedAt,
            format!(
                "created_at must be a number of Unix seconds, got {}",
                json_kind(raw)
            ),
        )
    };
    let first = text.as_bytes().first().copied().unwrap_or(b' ');
    if !(first == b'-' || first.is_ascii_digit()) {
        return Err(invalid());
    }
    // Plain decimal notation: take the digits as written, so no float rounding can move a
    // timestamp across a second (or a day) boundary.
    if !text.contains(['e', 'E']) {
        let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
        let negative = int_part.starts_with('-');
        let secs: i64 = int_part.parse().map_err(|_| out_of_range(text))?;
        let digits = frac.get(..frac.len().min(9)).unwrap_or("");
        let mut nanos: u32 = digits.parse::<u32>().unwrap_or(0);
        for _ in digits.len()..9 {
            nanos *= 10;
        }
        if negative && nanos > 0 {
            // floor semantics for the whole part; fraction counted forward from it. The
            // floor of `-9223372036854775808.5` is not an i64: out of range, not overflow.
            let secs = secs.checked_sub(1).ok_or_else(|| out_of_range(text))?;
            return Ok(CreatedAt {
                secs,
                nanos: 1_000_000_000 - nanos,
                fraction: Cow::Owned(format!("{:09}", 1_000_000_000 - nanos)),
            });
        }
        return Ok(CreatedAt {
            secs,
            nanos,
            fraction: Cow::Borrowed(frac),
        });
    }
    // Exponent notation: rare; go through f64 (exact for any second within the window).
    let value: f64 = text.parse().map_err(|_| invalid())?;
    if !value.is_finite() || value.abs() > 9.0e15 {
        return Err(out_of_range(text));
    }
    let secs = value.floor();
    let nanos = ((value - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    let fraction = if nanos == 0 {
        Cow::Borrowed("")
    } else {
        Cow::Owned(format!("{nanos:09}"))
    };
    Ok(CreatedAt {
        secs: secs as i64,
        nanos,
        fraction,
    })
}

fn out_of_range(text: &str) -> Rejection {
    Rejection::new(
        RejectReason::CreatedAtOutOfRange,
        format!(
            "created_at is not representable as Unix seconds ({} characters)",
            text.len()
        ),
    )
}

/// Why a common field that must be a string is not one. A JSON string that still fails to
/// parse holds an escaped lone surrogate (`"\ud800"`): valid JSON syntax, but no Unicode
/// text, so it cannot be stored in a string column.
fn not_a_string(field: &str, raw: &RawValue) -> String {
    match json_kind(raw) {
        "a string" => {
            format!("{field} is not valid Unicode text (it escapes a lone UTF-16 surrogate)")
        }
        kind => format!("{field} must be a string, got {kind}"),
    }
}

fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The byte search cuts names where `splitn(3, ':')` does.
        #[test]
        fn split_name_matches_splitn(name in "[a-z:é]{0,12}|\\PC*") {
            let mut parts = name.splitn(3, ':');
            let first = parts.next().unwrap_or("");
            let second = parts.next().filter(|s| !s.is_empty());
            proptest::prop_assert_eq!(split_name(&name), (first, second));
        }
    }
    use crate::parse::parse_event;
    use crate::time::format_date;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn run(json: &str) -> Result<Enriched<'_>, Rejection> {
        enrich(
            parse_event(json.as_bytes())?,
            &ValidationRules::default(),
            NOW,
        )
    }

    fn reason(json: &str) -> RejectReason {
        run(json)
            .err()
            .map(|r| r.reason)
            .expect("should be rejected")
    }

    #[test]
    fn enriches_three_part_name() {
        let e = run(r#"{"event_uuid":"u1","event_name":"payment:order:completed","created_at":1710670530,"amount":12.5}"#)
            .expect("valid");
        assert_eq!(e.event_type(), "payment");
        assert_eq!(e.event_subtype(), Some("order"));
        assert_eq!(e.created_datetime, "2024-03-17T10:15:30Z");
        assert_eq!(format_date(i64::from(e.created_days)), "2024-03-17");
        assert_eq!(e.payload, r#"{"amount":12.5}"#);
        assert_eq!(e.created_micros, 1_710_670_530_000_000);
    }

    #[test]
    fn subtype_null_when_absent_or_empty() {
        let e = run(r#"{"event_uuid":"u","event_name":"login","created_at":1710670530}"#)
            .expect("valid");
        assert_eq!((e.event_type(), e.event_subtype()), ("login", None));
        let e = run(r#"{"event_uuid":"u","event_name":"login::x","created_at":1710670530}"#)
            .expect("valid");
        assert_eq!((e.event_type(), e.event_subtype()), ("login", None));
    }

    #[test]
    fn fractional_seconds_keep_digits() {
        let e = run(r#"{"event_uuid":"u","event_name":"a","created_at":1710670530.125}"#)
            .expect("valid");
        assert_eq!(e.created_at, 1_710_670_530);
        assert_eq!(e.created_datetime, "2024-03-17T10:15:30.125Z");
        assert_eq!(e.created_micros, 1_710_670_530_125_000);
        let e = run(r#"{"event_uuid":"u","event_name":"a","created_at":1.7106705301e9}"#)
            .expect("valid");
        assert_eq!(e.created_at, 1_710_670_530);
    }

    /// A table of (input, expected reason) cases, one per line: long by nature, not logic.
    #[test]
    fn rejections() {
        use RejectReason::*;
        let cases = [
            (
                r#"{"event_name":"a","created_at":1710670530}"#,
                MissingEventUuid,
            ),
            (
                r#"{"event_uuid":"","event_name":"a","created_at":1710670530}"#,
                InvalidEventUuid,
            ),
            (
                r#"{"event_uuid":5,"event_name":"a","created_at":1710670530}"#,
                InvalidEventUuid,
            ),
            (
                r#"{"event_uuid":"u","created_at":1710670530}"#,
                MissingEventName,
            ),
            (
                r#"{"event_uuid":"u","event_name":["a"],"created_at":1710670530}"#,
                InvalidEventName,
            ),
            (
                r#"{"event_uuid":"u","event_name":":a","created_at":1710670530}"#,
                InvalidEventName,
            ),
            (
                r#"{"event_uuid":"u","event_name":"","created_at":1710670530}"#,
                InvalidEventName,
            ),
            (r#"{"event_uuid":"u","event_name":"a"}"#, MissingCreatedAt),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":"1710670530"}"#,
                InvalidCreatedAt,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":null}"#,
                InvalidCreatedAt,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":12}"#,
                CreatedAtOutOfRange,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":1710670530000}"#,
                CreatedAtInMilliseconds,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":99999999999999999999999}"#,
                CreatedAtOutOfRange,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":1e400}"#,
                CreatedAtOutOfRange,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a","created_at":-9223372036854775808.5}"#,
                CreatedAtOutOfRange,
            ),
            (
                r#"{"event_uuid":"u","event_name":"\ud800","created_at":1710670530}"#,
                InvalidEventName,
            ),
            (
                r#"{"event_uuid":"\udfff","event_name":"a","created_at":1710670530}"#,
                InvalidEventUuid,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a\u0000b","created_at":1710670530}"#,
                EventTypeControlCharacter,
            ),
            (
                r#"{"event_uuid":"u","event_name":"a:b\nc","created_at":1710670530}"#,
                EventNameControlCharacter,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(reason(input), want, "{input}");
        }
        let long = format!(
            r#"{{"event_uuid":"u","event_name":"{}:x","created_at":1710670530}}"#,
            "a".repeat(5000)
        );
        assert_eq!(reason(&long), EventTypeTooLong);
        let msg = run(r#"{"event_uuid":"u","event_name":"\ud800","created_at":1}"#)
            .err()
            .map(|r| r.message);
        assert_eq!(
            msg.as_deref(),
            Some("event_name is not valid Unicode text (it escapes a lone UTF-16 surrogate)")
        );
        // future beyond now + 1 day
        assert_eq!(
            reason(&format!(
                r#"{{"event_uuid":"u","event_name":"a","created_at":{}}}"#,
                NOW + 86_401
            )),
            RejectReason::CreatedAtOutOfRange
        );
        assert!(
            run(&format!(
                r#"{{"event_uuid":"u","event_name":"a","created_at":{}}}"#,
                NOW + 86_400
            ))
            .is_ok()
        );
    }

    fn name_strategy() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[a-z0-9_é\u{1F600}]{0,6}", 1..6)
    }

    proptest! {
        #[test]
        fn name_parts(parts in name_strategy()) {
            let name = parts.join(":");
            let json = serde_json::json!({"event_uuid": "u", "event_name": name, "created_at": 1_710_670_530}).to_string();
            let got = run(&json);
            if parts[0].is_empty() {
                prop_assert_eq!(got.err().map(|r| r.reason), Some(RejectReason::InvalidEventName));
            } else {
                let e = got.expect("valid");
                prop_assert_eq!(e.event_type(), parts[0].as_str());
                let sub = parts.get(1).filter(|s| !s.is_empty()).map(String::as_str);
                prop_assert_eq!(e.event_subtype(), sub);
            }
        }

        /// Every instant in the window enriches exactly as chrono says, UTC, at any time of
        /// day (so day boundaries and leap days are covered), with any fraction.
        #[test]
        fn created_at_matches_chrono(secs in 946_684_800i64..NOW, micros in 0u32..1_000_000, with_frac in any::<bool>()) {
            let value = if with_frac { format!("{secs}.{micros:06}") } else { secs.to_string() };
            let json = format!(r#"{{"event_uuid":"u","event_name":"a:b","created_at":{value}}}"#);
            let e = run(&json).expect("valid");
            let micros = if with_frac { micros } else { 0 };
            let dt: DateTime<Utc> = DateTime::from_timestamp(secs, micros * 1000).expect("in range");
            prop_assert_eq!(e.created_at, secs);
            prop_assert_eq!(e.created_micros, dt.timestamp_micros());
            prop_assert_eq!(format_date(i64::from(e.created_days)), dt.format("%Y-%m-%d").to_string());
            let parsed = DateTime::parse_from_rfc3339(&e.created_datetime).expect("rfc3339");
            prop_assert_eq!(parsed.with_timezone(&Utc), dt);
            prop_assert!(e.created_datetime.ends_with('Z'));
        }

        #[test]
        fn leap_days(year in 2000i64..2040) {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let feb29 = crate::time::days_from_civil(year, 2, 29);
            let expected = if leap { format!("{year}-02-29") } else { format!("{year}-03-01") };
            prop_assert_eq!(format_date(feb29), expected);
        }

        /// Arbitrary bytes never panic: they are either an event or a rejection.
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = crate::process(&bytes, &ValidationRules::default(), NOW);
        }

        /// The payload plus the three fields rebuilds the original object.
        #[test]
        fn payload_rebuilds_original(extra in prop::collection::btree_map("[a-zA-Z_\"\\\\é]{1,8}", any::<i32>(), 0..5)) {
            let mut obj = serde_json::Map::new();
            obj.insert("event_uuid".into(), "u".into());
            obj.insert("event_name".into(), "a:b".into());
            obj.insert("created_at".into(), 1_710_670_530.into());
            for (k, v) in &extra {
                if !["event_uuid", "event_name", "created_at"].contains(&k.as_str()) {
                    obj.insert(k.clone(), (*v).into());
                }
            }
            let original = serde_json::Value::Object(obj.clone());
            let text = original.to_string();
            let e = run(&text).expect("valid");
            let mut rebuilt: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&e.payload).expect("json");
            rebuilt.insert("event_uuid".into(), e.event_uuid.as_ref().into());
            rebuilt.insert("event_name".into(), e.event_name.as_ref().into());
            rebuilt.insert("created_at".into(), e.created_at.into());
            prop_assert_eq!(serde_json::Value::Object(rebuilt), original);
        }
    }
}
