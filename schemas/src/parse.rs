//! Parsing one raw record's JSON into its three common fields plus the untouched rest.
//!
//! Only `event_uuid`, `event_name` and `created_at` are interpreted. Every other member is
//! kept as its raw JSON text (borrowed from the input, never re-parsed into a tree), which is
//! what makes parsing cheap and lets `payload` rebuild the original event exactly.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::validate::{RejectReason, Rejection};

pub const FIELD_UUID: &str = "event_uuid";
pub const FIELD_NAME: &str = "event_name";
pub const FIELD_CREATED_AT: &str = "created_at";

/// A parsed record: the common fields as raw JSON (typed later, by validation) and the
/// payload object rebuilt from every other member, in input order.
#[derive(Debug)]
pub struct RawEvent<'a> {
    pub event_uuid: Option<&'a RawValue>,
    pub event_name: Option<&'a RawValue>,
    pub created_at: Option<&'a RawValue>,
    /// JSON object text of all other members (`{}` when there are none).
    pub payload: String,
}

/// Parse one record. Fails with `not_utf8`, `not_json`, `not_object` or `duplicate_field`.
pub fn parse_event(bytes: &[u8]) -> Result<RawEvent<'_>, Rejection> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            RejectReason::NotUtf8,
            format!(
                "record is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return Err(classify_non_object(text));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de
        .deserialize_map(EventVisitor {
            len_hint: text.len(),
        })
        .and_then(|ev| de.end().map(|_| ev));
    match parsed {
        Ok(Ok(ev)) => Ok(ev),
        Ok(Err(dup)) => Err(Rejection::new(
            RejectReason::DuplicateField,
            format!("field `{dup}` appears more than once"),
        )),
        Err(e) => Err(Rejection::new(
            RejectReason::NotJson,
            format!("record is not valid JSON: {}", redact_serde_error(&e)),
        )),
    }
}

fn classify_non_object(text: &str) -> Rejection {
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => Rejection::new(
            RejectReason::NotObject,
            format!(
                "record is JSON but not an object (starts with `{}`)",
                first_char(text)
            ),
        ),
        Err(e) => Rejection::new(
            RejectReason::NotJson,
            format!("record is not valid JSON: {}", redact_serde_error(&e)),
        ),
    }
}

fn first_char(text: &str) -> String {
    text.trim_start()
        .chars()
        .next()
        .map(String::from)
        .unwrap_or_default()
}

/// serde_json's messages name positions and classes, never input content, so they are safe
/// to store and log; this keeps only that part.
fn redact_serde_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

struct EventVisitor {
    len_hint: usize,
}

/// Result of a visit: the event, or the name of a common field seen twice (an ambiguity we
/// refuse to resolve silently).
type Visited<'a> = Result<RawEvent<'a>, &'static str>;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Visited<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut uuid = None;
        let mut name = None;
        let mut created = None;
        let mut duplicate: Option<&'static str> = None;
        let mut payload = String::with_capacity(self.len_hint);
        payload.push('{');
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            let slot = match key.as_ref() {
                FIELD_UUID => Some((&mut uuid, FIELD_UUID)),
                FIELD_NAME => Some((&mut name, FIELD_NAME)),
                FIELD_CREATED_AT => Some((&mut created, FIELD_CREATED_AT)),
                _ => None,
            };
            match slot {
                Some((slot, field)) => {
                    if slot.is_some() {
                        duplicate.get_or_insert(field);
                    }
                    *slot = Some(value);
                }
                None => {
                    if payload.len() > 1 {
                        payload.push(',');
                    }
                    push_json_string(&mut payload, &key);
                    payload.push(':');
                    payload.push_str(value.get());
                }
            }
        }
        payload.push('}');
        if let Some(field) = duplicate {
            return Ok(Err(field));
        }
        Ok(Ok(RawEvent {
            event_uuid: uuid,
            event_name: name,
            created_at: created,
            payload,
        }))
    }
}

/// Append `s` as a JSON string literal (RFC 8259 escaping).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // Nearly every key needs no escape: copy it whole (the same bytes the loop would push).
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        push_escaped(out, s);
    }
    out.push('"');
}

/// `s` with every character JSON requires escaped, escaped.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// Interpret a raw JSON value as a string, if it is one.
pub fn raw_as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(bytes: &[u8]) -> RejectReason {
        parse_event(bytes)
            .err()
            .map(|r| r.reason)
            .unwrap_or(RejectReason::NotJson)
    }

    #[test]
    fn keeps_other_members_raw_and_in_order() {
        let ev = parse_event(
            br#"{"b": {"x": [1, 2]}, "event_uuid":"u","a":"\u00e9\n","event_name":"x:y","created_at":1}"#,
        )
        .expect("valid");
        assert_eq!(ev.payload, r#"{"b":{"x": [1, 2]},"a":"\u00e9\n"}"#);
        assert_eq!(ev.event_uuid.map(|r| r.get()), Some(r#""u""#));
    }

    #[test]
    fn payload_round_trips_escaped_keys() {
        let ev = parse_event(br#"{"k\"ey\u0001":1}"#).expect("valid");
        let v: serde_json::Value = serde_json::from_str(&ev.payload).expect("payload is JSON");
        assert_eq!(v["k\"ey\u{1}"], 1);
    }

    #[test]
    fn classifies_bad_records() {
        assert_eq!(reason(b"\xff\xfe"), RejectReason::NotUtf8);
        assert_eq!(reason(b"{\"a\":"), RejectReason::NotJson);
        assert_eq!(reason(b"[1,2]"), RejectReason::NotObject);
        assert_eq!(reason(b"\"str\""), RejectReason::NotObject);
        assert_eq!(reason(b"nope"), RejectReason::NotJson);
        assert_eq!(reason(b"{} trailing"), RejectReason::NotJson);
        assert_eq!(reason(b""), RejectReason::NotJson);
        assert_eq!(
            reason(br#"{"event_uuid":"a","event_uuid":"b"}"#),
            RejectReason::DuplicateField
        );
    }

    proptest::proptest! {
        /// The copy-whole fast path writes what the escaping loop writes.
        #[test]
        fn key_fast_path_matches_escaping(s in "\\PC*|[a-z\"\\\\\n\u{1}é]{0,12}") {
            let mut fast = String::new();
            push_json_string(&mut fast, &s);
            let mut slow = String::from("\"");
            push_escaped(&mut slow, &s);
            slow.push('"');
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn empty_payload_is_empty_object() {
        let ev = parse_event(br#"{"event_uuid":"u"}"#).expect("valid");
        assert_eq!(ev.payload, "{}");
    }
}
