//! Load generator: realistic event streams for tests, benchmarks and demos.
//!
//! 100 event names (1-, 2- and 3-part), payloads with nested objects, arrays, unicode and
//! occasional large values; exact producer duplicates (a line re-sent verbatim, sometimes
//! much later), malformed records of every rejection kind, and late events. Deterministic
//! for a given seed, so a test can regenerate its input.
//!
//! Its own crate (and the `loadgen` binary) rather than a `writer` subcommand, so test
//! tooling never ships in the production image. [`Generator`] makes the lines;
//! [`kinesis::put_kinesis`] sends them to a stream, optionally as KPL aggregates built by
//! [`kpl::aggregate`].

pub mod kinesis;
pub mod kpl;

use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Lines to generate (malformed and duplicate lines included).
    pub count: u64,
    /// Seed of the random generator: the same settings and seed give the same bytes.
    pub seed: u64,
    /// Share of lines that re-send an earlier valid event byte for byte.
    pub duplicate_ratio: f64,
    /// Share of lines that are malformed (one of the rejection kinds).
    pub malformed_ratio: f64,
    /// Share of events created up to `max_lateness_secs` before `end_time`.
    pub late_ratio: f64,
    /// How far before `end_time` a late event can be created, in seconds.
    pub max_lateness_secs: i64,
    /// Share of events with a large (8-64 KiB) string value.
    pub large_ratio: f64,
    /// Events are created in the hour before this instant (Unix seconds).
    pub end_time: i64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            count: 10_000,
            seed: 42,
            duplicate_ratio: 0.05,
            malformed_ratio: 0.01,
            late_ratio: 0.05,
            max_lateness_secs: 3 * 86_400,
            large_ratio: 0.002,
            end_time: chrono::Utc::now().timestamp(),
        }
    }
}

/// What was generated (lines by kind); printed as the JSON summary, so the field names
/// are a contract with the tests and benchmarks.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GenSummary {
    /// All lines: `unique_valid + duplicates + malformed`.
    pub lines: u64,
    /// Valid events generated for the first time.
    pub unique_valid: u64,
    /// Lines that repeat an earlier valid line byte for byte.
    pub duplicates: u64,
    /// Lines that the writer rejects (one of the rejection kinds).
    pub malformed: u64,
    /// NDJSON bytes, newlines included.
    pub bytes: u64,
}

/// The 100 event names: 10 one-part, 30 two-part, 60 three-part.
pub fn event_names() -> Vec<String> {
    const TYPES: [&str; 10] = [
        "payment",
        "order",
        "user",
        "session",
        "cart",
        "search",
        "email",
        "inventory",
        "shipment",
        "review",
    ];
    const SUBS: [&str; 3] = ["web", "mobile", "api"];
    const ACTIONS: [&str; 2] = ["created", "completed"];
    let mut names = Vec::with_capacity(100);
    for t in TYPES {
        names.push(t.to_string());
        for s in SUBS {
            names.push(format!("{t}:{s}"));
            for a in ACTIONS {
                names.push(format!("{t}:{s}:{a}"));
            }
        }
    }
    names
}

const WORDS: [&str; 12] = [
    "alpha",
    "Zürich",
    "naïve",
    "東京",
    "данные",
    "😀 party",
    "O'Brien",
    "line\nbreak",
    "tab\tsep",
    "quote\"d",
    "back\\slash",
    "plain",
];

/// A generator; `next_line` yields one NDJSON line (without the newline).
pub struct Generator {
    /// The settings it was made with.
    pub cfg: GenConfig,
    /// The only source of randomness, seeded from `cfg.seed` (hence the determinism).
    rng: SmallRng,
    /// [`event_names`], drawn from uniformly.
    names: Vec<String>,
    /// Valid lines a duplicate can repeat: up to 100,000, then replaced at random so
    /// duplicates can still reach far back.
    recent: Vec<Vec<u8>>,
    /// Counts of what `next_line` has produced so far.
    pub summary: GenSummary,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let rng = SmallRng::seed_from_u64(cfg.seed);
        Generator {
            cfg,
            rng,
            names: event_names(),
            recent: Vec::new(),
            summary: GenSummary::default(),
        }
    }

    pub fn next_line(&mut self) -> Vec<u8> {
        let roll: f64 = self.rng.random();
        let line = if roll < self.cfg.malformed_ratio {
            self.summary.malformed += 1;
            self.malformed()
        } else if roll < self.cfg.malformed_ratio + self.cfg.duplicate_ratio
            && !self.recent.is_empty()
        {
            self.summary.duplicates += 1;
            // Mostly a recent retry, sometimes one from long ago (across batches).
            let i = if self.rng.random_bool(0.8) {
                self.recent.len() - 1 - self.rng.random_range(0..self.recent.len().min(50))
            } else {
                self.rng.random_range(0..self.recent.len())
            };
            self.recent[i].clone()
        } else {
            self.summary.unique_valid += 1;
            let l = self.valid_event().into_bytes();
            if self.recent.len() < 100_000 {
                self.recent.push(l.clone());
            } else {
                let i = self.rng.random_range(0..self.recent.len());
                self.recent[i] = l.clone();
            }
            l
        };
        self.summary.lines += 1;
        self.summary.bytes += line.len() as u64 + 1;
        line
    }

    fn uuid(&mut self) -> String {
        let u = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        match self.rng.random_range(0..200) {
            0 => u.hyphenated().to_string().to_uppercase(),
            1 => format!("evt_{}", u.simple()),
            _ => u.hyphenated().to_string(),
        }
    }

    fn created_at(&mut self) -> serde_json::Value {
        let secs = if self.rng.random_bool(self.cfg.late_ratio) {
            self.cfg.end_time - self.rng.random_range(0..self.cfg.max_lateness_secs.max(1))
        } else {
            self.cfg.end_time - self.rng.random_range(0..3600)
        };
        if self.rng.random_bool(0.2) {
            let millis: u32 = self.rng.random_range(1..1000);
            // Written as text to keep the exact digits (f64 would print them back the same).
            serde_json::Value::Number(
                serde_json::Number::from_f64(secs as f64 + f64::from(millis) / 1000.0)
                    .unwrap_or_else(|| secs.into()),
            )
        } else {
            json!(secs)
        }
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.rng.random_range(0..WORDS.len())]
    }

    fn valid_event(&mut self) -> String {
        let name = self.names[self.rng.random_range(0..self.names.len())].clone();
        let uuid = self.uuid();
        let created = self.created_at();
        let mut payload = serde_json::Map::new();
        payload.insert(
            "user_id".into(),
            json!(self.rng.random_range(1..1_000_000u32)),
        );
        payload.insert(
            "amount".into(),
            json!(f64::from(self.rng.random_range(0..100_000u32)) / 100.0),
        );
        payload.insert(
            "currency".into(),
            json!(["EUR", "USD", "GBP", "JPY"][self.rng.random_range(0..4)]),
        );
        let w1 = self.word();
        let w2 = self.word();
        let os = ["ios", "android", "linux"][self.rng.random_range(0..3)];
        let version = self.rng.random_range(1..20);
        payload.insert(
            "context".into(),
            json!({"device": {"os": os, "version": version},
                   "geo": {"city": w1, "lat": 47.37, "lon": 8.54}, "labels": [w2, "x", 1, null, true]}),
        );
        if self.rng.random_bool(self.cfg.large_ratio) {
            let n = self.rng.random_range(8 * 1024..64 * 1024);
            let s: String = (0..n)
                .map(|i| if i % 97 == 0 { 'é' } else { 'x' })
                .collect();
            payload.insert("blob".into(), json!(s));
        }
        // Common fields at a random place among the others, as real producers do.
        let mut obj = serde_json::Map::new();
        let at = self.rng.random_range(0..=payload.len());
        for (i, (k, v)) in payload.into_iter().enumerate() {
            if i == at {
                obj.insert("event_uuid".into(), json!(uuid));
                obj.insert("event_name".into(), json!(name));
                obj.insert("created_at".into(), created.clone());
            }
            obj.insert(k, v);
        }
        if !obj.contains_key("event_uuid") {
            obj.insert("event_uuid".into(), json!(uuid));
            obj.insert("event_name".into(), json!(name));
            obj.insert("created_at".into(), created);
        }
        serde_json::Value::Object(obj).to_string()
    }

    fn malformed(&mut self) -> Vec<u8> {
        let t = self.cfg.end_time - 60;
        let u = self.uuid();
        match self.rng.random_range(0..12) {
            0 => b"{\"event_uuid\": \"broken".to_vec(),
            1 => b"[1, 2, 3]".to_vec(),
            2 => format!(r#"{{"event_name":"order:web","created_at":{t}}}"#).into_bytes(),
            3 => format!(r#"{{"event_uuid":"","event_name":"order:web","created_at":{t}}}"#)
                .into_bytes(),
            4 => format!(r#"{{"event_uuid":12345,"event_name":"order:web","created_at":{t}}}"#)
                .into_bytes(),
            5 => format!(r#"{{"event_uuid":"{u}","created_at":{t}}}"#).into_bytes(),
            6 => format!(r#"{{"event_uuid":"{u}","event_name":":web","created_at":{t}}}"#)
                .into_bytes(),
            7 => format!(r#"{{"event_uuid":"{u}","event_name":"order:web","created_at":"{t}"}}"#)
                .into_bytes(),
            8 => format!(
                r#"{{"event_uuid":"{u}","event_name":"order:web","created_at":{}}}"#,
                t * 1000
            )
            .into_bytes(),
            9 => {
                format!(r#"{{"event_uuid":"{u}","event_name":"order:web","created_at":631152000}}"#)
                    .into_bytes()
            }
            10 => {
                let mut v = format!(
                    r#"{{"event_uuid":"{u}","event_name":"order:web","created_at":{t},"x":""#
                )
                .into_bytes();
                v.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
                v
            }
            _ => format!(r#"{{"event_uuid":"{u}","event_name":"order:web"}}"#).into_bytes(),
        }
    }

    /// Write `count` lines as NDJSON.
    pub fn write_all(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        for _ in 0..self.cfg.count {
            let line = self.next_line();
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_names_of_each_shape() {
        let names = event_names();
        assert_eq!(names.len(), 100);
        let parts = |n: usize| names.iter().filter(|s| s.split(':').count() == n).count();
        assert_eq!((parts(1), parts(2), parts(3)), (10, 30, 60));
    }

    #[test]
    fn deterministic_and_accounted() {
        let cfg = GenConfig {
            count: 2000,
            end_time: 1_800_000_000,
            ..GenConfig::default()
        };
        let mut a = Vec::new();
        let mut g = Generator::new(cfg.clone());
        g.write_all(&mut a).expect("write");
        let mut b = Vec::new();
        Generator::new(cfg).write_all(&mut b).expect("write");
        assert_eq!(a, b);
        let s = g.summary;
        assert_eq!(s.lines, 2000);
        assert_eq!(s.unique_valid + s.duplicates + s.malformed, s.lines);
        assert!(s.duplicates > 0 && s.malformed > 0);
    }

    #[test]
    fn valid_lines_are_valid() {
        let cfg = GenConfig {
            count: 500,
            malformed_ratio: 0.0,
            end_time: 1_800_000_000,
            ..GenConfig::default()
        };
        let mut g = Generator::new(cfg);
        for _ in 0..500 {
            let l = g.next_line();
            let r = schemas::process(&l, &schemas::ValidationRules::default(), 1_800_000_000);
            assert!(r.is_ok(), "{:?}", r.err());
        }
    }
}
