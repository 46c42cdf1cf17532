//! One bad record must never fail a batch (issue 11, defect 7).
//!
//! Before the fix an event whose `event_type` was 5,000 characters long made the whole batch
//! fail with `upload data file: … File name too long (os error 36)`: nothing of the batch was
//! written, and the Kinesis service would have retried the same record forever. Event types
//! holding NUL, newlines, `/`, `=`, `%`, spaces or `..` were accepted as partition values.
//! These tests run the real pipeline on a local table and read both tables back.

mod common;

use std::path::Path;

use common::{batch, temp_dir, try_process};
use writer::config::PipelineConfig;
use writer::pipeline::{BatchReport, Pipeline};
use writer::source::RawRecord;

const T: i64 = 1_710_670_530;

fn config(dir: &Path) -> PipelineConfig {
    common::config(dir, "hostile-input-test")
}

fn event(uuid: &str, name: &str) -> Vec<u8> {
    serde_json::json!({"event_uuid": uuid, "event_name": name, "created_at": T, "k": 1})
        .to_string()
        .into_bytes()
}

async fn process(p: &mut Pipeline, recs: Vec<RawRecord>) -> BatchReport {
    try_process(p, recs)
        .await
        .expect("a bad record must not fail the batch")
}

/// Every value of a string column of the table's live files, with its file's path.
async fn column(uri: &str, column: &str) -> Vec<(String, String)> {
    let table = storage::open_table(uri, &storage::StorageConfig::default())
        .await
        .expect("open");
    let store = table.log_store().object_store(None);
    let files: Vec<(String, u64)> = table
        .snapshot()
        .expect("snapshot")
        .log_data()
        .iter()
        .map(|f| (f.path().into_owned(), u64::try_from(f.size()).unwrap_or(0)))
        .collect();
    let mut out = Vec::new();
    for (path, size) in files {
        storage::files::for_each_string(store.clone(), uri, &path, Some(size), column, |v| {
            out.push((path.clone(), v.to_string()))
        })
        .await
        .expect("read column");
    }
    out.sort();
    out
}

/// `(source_position, reason)` of every rejected row, by position.
async fn rejections(dir: &Path) -> Vec<(u64, String)> {
    let uri = dir.join("events_rejected").display().to_string();
    let table = storage::open_table(&uri, &storage::StorageConfig::default())
        .await
        .expect("open");
    let store = table.log_store().object_store(None);
    let mut out = Vec::new();
    for f in table.snapshot().expect("snapshot").log_data().iter() {
        let path = f.path().into_owned();
        let (mut pos, mut why) = (Vec::new(), Vec::new());
        storage::files::for_each_string(store.clone(), &uri, &path, None, "source_position", |v| {
            pos.push(v.parse::<u64>().expect("line number"))
        })
        .await
        .expect("read");
        storage::files::for_each_string(store.clone(), &uri, &path, None, "reason", |v| {
            why.push(v.to_string())
        })
        .await
        .expect("read");
        out.extend(pos.into_iter().zip(why));
    }
    out.sort();
    out
}

async fn written_uuids(dir: &Path) -> Vec<String> {
    let uri = dir.join("events").display().to_string();
    let mut v: Vec<String> = column(&uri, "event_uuid")
        .await
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_overlong_event_type_is_rejected_and_the_rest_of_the_batch_is_written() {
    let dir = temp_dir("overlong-type");
    let mut p = Pipeline::open(config(&dir)).await.expect("open");
    let long = format!("{}:order:completed", "a".repeat(5_000));
    let report = process(
        &mut p,
        batch(vec![
            event("good-1", "payment:order:completed"),
            event("bad-1", &long),
            event("good-2", "payment:order:completed"),
            event("good-3", "user:web"),
        ]),
    )
    .await;
    assert_eq!(report.counts.read, 4);
    assert_eq!(report.counts.written, 3);
    assert_eq!(report.counts.rejected, 1);
    assert_eq!(written_uuids(&dir).await, ["good-1", "good-2", "good-3"]);
    assert_eq!(
        rejections(&dir).await,
        [(2, "event_type_too_long".to_string())]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_event_types_are_rejected_each_with_its_reason() {
    let dir = temp_dir("hostile-types");
    let mut p = Pipeline::open(config(&dir)).await.expect("open");
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("payment:order:completed", None),
        ("a\u{0}b:x", Some("event_type_control_character")),
        ("a\nb", Some("event_type_control_character")),
        ("a\u{7f}", Some("event_type_control_character")),
        ("a/b", Some("event_type_pattern_mismatch")),
        ("a=b", Some("event_type_pattern_mismatch")),
        ("a%2Fb", Some("event_type_pattern_mismatch")),
        (" payment", Some("event_type_pattern_mismatch")),
        ("payment :x", Some("event_type_pattern_mismatch")),
        ("..", Some("event_type_pattern_mismatch")),
        ("Payment", Some("event_type_pattern_mismatch")),
        ("caf\u{e9}", Some("event_type_pattern_mismatch")),
        ("payment:we\u{1}b", Some("event_name_control_character")),
        ("payment:web:x\ny", Some("event_name_control_character")),
        ("user:web", None),
    ];
    let lines = cases
        .iter()
        .enumerate()
        .map(|(i, (name, _))| event(&format!("u{i}"), name))
        .collect();
    let report = process(&mut p, batch(lines)).await;
    let expected_rejected: Vec<(u64, String)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.map(|r| (i as u64 + 1, r.to_string())))
        .collect();
    assert_eq!(report.counts.rejected, expected_rejected.len() as u64);
    assert_eq!(report.counts.written, 2);
    assert_eq!(rejections(&dir).await, expected_rejected);
    assert_eq!(written_uuids(&dir).await, ["u0", "u14"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `created_at` at the edge of i64 with a fraction: the floor of a negative number one
/// below `i64::MIN` must be a rejection, not an arithmetic overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_at_at_the_edge_of_i64_is_a_rejection() {
    let dir = temp_dir("edge-created-at");
    let mut p = Pipeline::open(config(&dir)).await.expect("open");
    let lines = [
        "-9223372036854775808.5",
        "9223372036854775807.999",
        "-9223372036854775809",
        "1e309",
        "-1e309",
        "4.9e-324",
        "-0.0",
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| {
        format!(r#"{{"event_uuid":"e{i}","event_name":"a","created_at":{v}}}"#).into_bytes()
    })
    .collect();
    let report = process(&mut p, batch(lines)).await;
    assert_eq!(report.counts.rejected, 7);
    assert!(
        rejections(&dir)
            .await
            .iter()
            .all(|(_, r)| r == "created_at_out_of_range")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Bounds on how many partitions garbage can create -----------------------------------

use schemas::PartitionRules;
use writer::pipeline::PartitionPolicy;

fn with_policy(mut config: PipelineConfig, partition: PartitionPolicy) -> PipelineConfig {
    config.partition = partition;
    config
}

fn policy(cap: Option<usize>, allow: Option<&str>) -> PartitionPolicy {
    PartitionPolicy {
        rules: PartitionRules {
            event_type_allowlist: allow.and_then(PartitionRules::parse_allowlist),
            ..PartitionRules::default()
        },
        max_new_partitions_per_batch: cap,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_partitions_per_batch_are_capped_against_the_table() {
    let dir = temp_dir("partition-cap");
    let mut p = Pipeline::open(with_policy(config(&dir), policy(Some(2), None)))
        .await
        .expect("open");
    // Four new types; `c` and `d` (the last two to appear) are beyond the cap. The duplicate of a `c` event is
    // refused with it (it was not written either), not counted as a duplicate.
    let report = process(
        &mut p,
        batch(vec![
            event("a1", "a:x"),
            event("b1", "b:x"),
            event("c1", "c:x"),
            event("c1", "c:x"),
            event("d1", "d"),
            event("a1", "a:x"),
        ]),
    )
    .await;
    assert_eq!(report.counts.written, 2);
    assert_eq!(report.counts.duplicates, 1);
    assert_eq!(report.counts.rejected, 3);
    assert_eq!(
        rejections(&dir).await,
        [
            (3, "too_many_new_partitions".to_string()),
            (4, "too_many_new_partitions".to_string()),
            (5, "too_many_new_partitions".to_string()),
        ]
    );

    // Known types cost nothing; two more new ones fit, the third does not.
    let report = process(
        &mut p,
        batch(vec![
            event("a2", "a"),
            event("b2", "b"),
            event("c2", "c"),
            event("d2", "d"),
            event("e2", "e"),
        ]),
    )
    .await;
    assert_eq!((report.counts.written, report.counts.rejected), (4, 1));

    // A new process learns the existing partitions from the table itself.
    drop(p);
    let mut p = Pipeline::open(with_policy(config(&dir), policy(Some(1), None)))
        .await
        .expect("reopen");
    let report = process(
        &mut p,
        batch(vec![
            event("a3", "a"),
            event("d3", "d"),
            event("f3", "f"),
            event("g3", "g"),
        ]),
    )
    .await;
    assert_eq!((report.counts.written, report.counts.rejected), (3, 1));
    assert_eq!(
        written_uuids(&dir).await,
        ["a1", "a2", "a3", "b1", "b2", "c2", "d2", "d3", "f3"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_refuses_other_event_types() {
    let dir = temp_dir("allowlist");
    let mut p = Pipeline::open(with_policy(
        config(&dir),
        policy(None, Some("payment,user")),
    ))
    .await
    .expect("open");
    let report = process(
        &mut p,
        batch(vec![
            event("p", "payment:order:completed"),
            event("o", "order:web"),
            event("u", "user"),
        ]),
    )
    .await;
    assert_eq!((report.counts.written, report.counts.rejected), (2, 1));
    assert_eq!(
        rejections(&dir).await,
        [(2, "event_type_not_allowed".to_string())]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_policy_accepts_every_generated_name() {
    for name in loadgen::event_names() {
        let line = event("u", &name);
        let got = schemas::process(&line, &schemas::ValidationRules::default(), T + 1);
        assert!(got.is_ok(), "{name}: {got:?}");
    }
}

// ---- Property: no input can panic, or produce an unsafe partition value -----------------

mod hostile_records {
    use proptest::prelude::*;
    use schemas::partition::{MAX_DATA_FILE_RELATIVE_PATH_BYTES, MAX_EVENT_TYPE_BYTES};
    use schemas::{EventTypePattern, PartitionRules, RejectReason, ValidationRules};
    use writer::decode::decode_batch;
    use writer::source::{Position, RawRecord};

    const NOW: i64 = 1_800_000_000;

    /// A JSON string literal's *source text*: plain text, escapes, control characters,
    /// lone surrogates, huge runs.
    fn json_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z0-9_-]{1,8}",
            "[A-Z .=/%:]{1,4}",
            "\\PC{1,6}",
            Just("\\u0000".to_string()),
            Just("\\n".to_string()),
            Just("\\ud800".to_string()),
            Just("\\udc00\\ud800".to_string()),
            Just("\\ud83d\\ude00".to_string()),
            Just("\\u0085".to_string()),
            Just("\\\"".to_string()),
            (1usize..3000).prop_map(|n| "x".repeat(n)),
            Just("..".to_string()),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| format!("\"{}\"", p.concat()))
    }

    fn json_number() -> impl Strategy<Value = String> {
        prop_oneof![
            (946_684_800i64..NOW).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| format!("{n}.5")),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            Just("-9223372036854775808.5".to_string()),
            Just("9223372036854775807.999999999999".to_string()),
            Just("1e309".to_string()),
            Just("-0".to_string()),
            Just("4.9e-324".to_string()),
            Just("18446744073709551616".to_string()),
        ]
    }

    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            json_string(),
            json_number(),
            Just("null".to_string()),
            Just("true".to_string()),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((json_string(), inner), 0..6).prop_map(|v| {
                    let members: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
                // Deep nesting, closed or not.
                (1usize..3000, any::<bool>()).prop_map(|(d, closed)| {
                    let close = if closed { "]".repeat(d) } else { String::new() };
                    format!("{}1{close}", "[".repeat(d))
                }),
            ]
        })
    }

    /// An object whose members are drawn from the three common fields (possibly twice)
    /// and arbitrary others.
    fn record() -> impl Strategy<Value = Vec<u8>> {
        let member = prop_oneof![
            json_string().prop_map(|v| format!("\"event_uuid\":{v}")),
            json_string().prop_map(|v| format!("\"event_name\":{v}")),
            json_number().prop_map(|v| format!("\"created_at\":{v}")),
            json_value().prop_map(|v| format!("\"created_at\":{v}")),
            json_value().prop_map(|v| format!("\"event_name\":{v}")),
            (json_string(), json_value()).prop_map(|(k, v)| format!("{k}:{v}")),
        ];
        // Nearly valid: all three fields, so most names reach the partition checks.
        let name = prop_oneof![
            "[a-z0-9][a-z0-9_-]{0,70}(:[a-zA-Z0-9 .]{0,5}){0,2}".prop_map(|n| format!("\"{n}\"")),
            json_string(),
        ];
        let near_valid = (json_string(), name).prop_map(|(u, n)| {
            format!(r#"{{"event_uuid":{u},"event_name":{n},"created_at":1710670530}}"#).into_bytes()
        });
        prop_oneof![
            4 => near_valid,
            4 => prop::collection::vec(member, 0..8).prop_map(|m| format!("{{{}}}", m.join(",")).into_bytes()),
            1 => json_value().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..300),
        ]
    }

    /// Checks every decoded record: either a rejection with a known reason, or an event
    /// whose partition folder and data-file path are valid on any store.
    /// Returns how many records were accepted.
    fn check(lines: &[Vec<u8>], partitions: &PartitionRules) -> Result<usize, TestCaseError> {
        let records: Vec<RawRecord> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| RawRecord {
                data: bytes::Bytes::from(l.clone()),
                position: Position::Line(i as u64 + 1),
                judged_at: None,
            })
            .collect();
        let d = decode_batch(&records, &ValidationRules::default(), partitions, NOW);
        prop_assert_eq!(d.events.len() + d.rejects.len(), records.len());
        for r in &d.rejects {
            prop_assert!(RejectReason::ALL.contains(&r.reason));
            prop_assert!(r.message.len() < 400, "{}", r.message);
        }
        for e in &d.events {
            let t = e.event_type();
            prop_assert!(!t.is_empty() && t.len() <= MAX_EVENT_TYPE_BYTES);
            prop_assert!(!e.name.chars().any(char::is_control));
            prop_assert!(partitions.event_type_pattern.is_match(t));
            let pv = vec![
                ("event_type".to_string(), Some(t.to_string())),
                (
                    "created_date".to_string(),
                    Some(schemas::time::format_date(i64::from(e.created_days))),
                ),
            ];
            let path = storage::files::data_file_path(&pv, &uuid::Uuid::new_v4().to_string());
            prop_assert!(
                path.len() <= MAX_DATA_FILE_RELATIVE_PATH_BYTES,
                "{}",
                path.len()
            );
            prop_assert!(storage::files::check_data_file_path("t", &path).is_ok());
        }
        Ok(d.events.len())
    }

    /// The properties below are not vacuous: the generator reaches the partition checks
    /// with accepted events under both policies.
    #[test]
    fn generator_produces_accepted_events() -> Result<(), TestCaseError> {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let permissive = PartitionRules {
            event_type_pattern: EventTypePattern::new("(?s).*")
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
            event_type_allowlist: None,
        };
        let (mut total, mut strict, mut loose) = (0, 0, 0);
        for _ in 0..200 {
            let lines = prop::collection::vec(record(), 1..8)
                .new_tree(&mut runner)
                .map_err(TestCaseError::fail)?
                .current();
            total += lines.len();
            strict += check(&lines, &PartitionRules::default())?;
            loose += check(&lines, &permissive)?;
        }
        prop_assert!(strict * 20 > total, "{strict} of {total}");
        prop_assert!(loose > strict, "{loose} vs {strict}");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn default_policy(lines in prop::collection::vec(record(), 1..8)) {
            check(&lines, &PartitionRules::default())?;
        }

        /// With the most permissive pattern, the hard limits alone keep paths valid.
        #[test]
        fn permissive_pattern(lines in prop::collection::vec(record(), 1..8)) {
            let rules = PartitionRules {
                event_type_pattern: EventTypePattern::new("(?s).*").map_err(|e| TestCaseError::fail(e.to_string()))?,
                event_type_allowlist: None,
            };
            check(&lines, &rules)?;
        }
    }

    /// Inputs too big for the generator, once each.
    #[test]
    fn huge_inputs() -> Result<(), TestCaseError> {
        let deep = 100_000;
        let lines = vec![
            format!("{}{}", "[".repeat(deep), "]".repeat(deep)).into_bytes(),
            format!("{}1{}", "{\"a\":".repeat(deep), "}".repeat(deep)).into_bytes(),
            format!(
                r#"{{"event_uuid":"u","event_name":"a","created_at":1710670530,"p":{}1{}}}"#,
                "[".repeat(deep),
                "]".repeat(deep)
            )
            .into_bytes(),
            "{".repeat(deep).into_bytes(),
            format!(
                r#"{{"event_uuid":"u","event_name":"{}","created_at":1710670530}}"#,
                "a".repeat(5 << 20)
            )
            .into_bytes(),
        ];
        check(&lines, &PartitionRules::default()).map(|_| ())
    }
}
