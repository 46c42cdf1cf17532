//! The reader probe (`--probe-cmd`, e.g. `python bench/soak_probe.py`): run through `sh -c`
//! with the table and what to query, its stdout's JSON object kept as the sample's `probe`.
//! A failing probe is recorded, never fatal.

use std::time::Instant;

use serde_json::{Value, json};

use crate::compact::{last_json_line, tail};

/// What the probe is asked about.
pub struct ProbeQuery<'a> {
    pub table: &'a str,
    /// Simulated day, `YYYY-MM-DD`.
    pub day: &'a str,
    pub event_type: &'a str,
    /// An `event_uuid` written on that day (of `event_type`).
    pub uuid: &'a str,
    /// The end of the simulated hour just sampled (Unix seconds).
    pub hour_end: i64,
}

/// Single-quote `s` for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run the probe; its JSON, or `{"error": ..}`, with the wall time it took.
pub async fn run(cmd: &str, q: &ProbeQuery<'_>) -> Value {
    let line = format!(
        "{cmd} --table {} --day {} --event-type {} --uuid {} --hour-end {}",
        quote(q.table),
        quote(q.day),
        quote(q.event_type),
        quote(q.uuid),
        q.hour_end
    );
    let started = Instant::now();
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    match out {
        Ok(out) if out.status.success() => match last_json_line(&out.stdout) {
            Value::Null => {
                json!({"error": "probe printed no JSON", "stdout": tail(&out.stdout, 2000), "wall_ms": wall_ms})
            }
            v => v,
        },
        Ok(out) => json!({
            "error": format!("probe exited with {}", out.status),
            "stderr": tail(&out.stderr, 4000),
            "wall_ms": wall_ms,
        }),
        Err(e) => json!({"error": format!("could not run the probe: {e}"), "wall_ms": wall_ms}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
