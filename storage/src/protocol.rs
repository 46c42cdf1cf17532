//! Refusing tables whose protocol or metadata asks writers for something we do not enforce.
//!
//! The writer writes its own commits and the compactor rewrites files; neither evaluates
//! CHECK constraints, column invariants or generation expressions, maps column names,
//! writes deletion vectors, CDC files or row ids. delta-rs' `can_commit` lets a table with
//! CHECK constraints through (it trusts the caller to have enforced them), so a table someone
//! added a constraint to would silently receive rows violating it. Both binaries call
//! [`check_writable`] right after opening a table and refuse, before writing anything, when
//! it reports a feature; the error lists every offending feature so the operator can decide.
//!
//! The check looks at what is *used* (configuration keys, column metadata) as well as at
//! what the protocol *declares* (versions, feature names), because legacy protocols
//! (writer versions 2-6) imply features without naming them.

use std::collections::HashMap;
use std::fmt;

use deltalake::DeltaTable;
use serde_json::Value;

use crate::error::LakeError;

/// Highest legacy writer version whose features we can all honour (2: `appendOnly` and
/// `invariants`, and invariants are refused below when actually present); 7 means named
/// table features, checked one by one.
const MAX_LEGACY_WRITER_VERSION: i32 = 2;
/// Reader versions we can read data files of (3 = named reader features, checked).
const MAX_READER_VERSION: i32 = 3;

/// Named writer features that need nothing from us unless used, and whose use is detected
/// separately (configuration / column metadata), or that only restrict what we never do.
const HARMLESS_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "generatedColumns",
    "columnMapping",
];
/// Named reader features we can read through (column mapping: detected when used).
const HARMLESS_READER_FEATURES: &[&str] = &["columnMapping"];

/// One reason a table cannot be written by this project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsupportedFeature {
    CheckConstraint {
        name: String,
        expression: String,
    },
    GeneratedColumn {
        column: String,
    },
    Invariant {
        column: String,
    },
    IdentityColumn {
        column: String,
    },
    ColumnMapping {
        mode: String,
    },
    DeletionVectors,
    ChangeDataFeed,
    RowTracking,
    WriterVersion(i32),
    ReaderVersion(i32),
    WriterFeature(String),
    ReaderFeature(String),
    /// The schema could not be inspected, so column-level features cannot be ruled out.
    UnreadableSchema(String),
}

impl fmt::Display for UnsupportedFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CheckConstraint { name, expression } => {
                write!(f, "CHECK constraint `{name}` ({expression})")
            }
            Self::GeneratedColumn { column } => write!(f, "generated column `{column}`"),
            Self::Invariant { column } => write!(f, "invariant on column `{column}`"),
            Self::IdentityColumn { column } => write!(f, "identity column `{column}`"),
            Self::ColumnMapping { mode } => write!(f, "column mapping (mode `{mode}`)"),
            Self::DeletionVectors => f.write_str("deletion vectors"),
            Self::ChangeDataFeed => f.write_str("change data feed"),
            Self::RowTracking => f.write_str("row tracking"),
            Self::WriterVersion(v) => write!(f, "writer protocol version {v}"),
            Self::ReaderVersion(v) => write!(f, "reader protocol version {v}"),
            Self::WriterFeature(n) => write!(f, "writer feature `{n}`"),
            Self::ReaderFeature(n) => write!(f, "reader feature `{n}`"),
            Self::UnreadableSchema(e) => write!(f, "unreadable schema ({e})"),
        }
    }
}

/// The parts of a table's protocol and metadata the check needs, as plain data.
#[derive(Debug, Clone, Default)]
pub struct TableProtocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    pub reader_features: Vec<String>,
    pub writer_features: Vec<String>,
    pub configuration: HashMap<String, String>,
    /// The metadata's `schemaString` (Delta schema JSON).
    pub schema_json: String,
}

impl TableProtocol {
    /// Extract from a loaded table's snapshot.
    pub fn of(table: &DeltaTable, uri: &str) -> Result<Self, LakeError> {
        let snapshot = table
            .snapshot()
            .map_err(|e| LakeError::delta(uri, "snapshot", e))?;
        let protocol = snapshot.protocol();
        let metadata = snapshot.metadata();
        let names = |features: Option<&[_]>| -> Vec<String> {
            features
                .unwrap_or_default()
                .iter()
                .map(|f| match serde_json::to_value(f) {
                    Ok(Value::String(s)) => s,
                    other => format!("{other:?}"),
                })
                .collect()
        };
        Ok(Self {
            min_reader_version: protocol.min_reader_version(),
            min_writer_version: protocol.min_writer_version(),
            reader_features: names(protocol.reader_features()),
            writer_features: names(protocol.writer_features()),
            configuration: metadata.configuration().clone(),
            schema_json: metadata.schema_string().clone(),
        })
    }
}

fn enabled(config: &HashMap<String, String>, key: &str) -> bool {
    config
        .get(key)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Every feature of `p` this project does not enforce; empty means safe to write.
pub fn unsupported_features(p: &TableProtocol) -> Vec<UnsupportedFeature> {
    use UnsupportedFeature as U;
    let mut out = Vec::new();
    if p.min_reader_version > MAX_READER_VERSION {
        out.push(U::ReaderVersion(p.min_reader_version));
    }
    if !(1..=MAX_LEGACY_WRITER_VERSION).contains(&p.min_writer_version) && p.min_writer_version != 7
    {
        out.push(U::WriterVersion(p.min_writer_version));
    }
    for f in &p.writer_features {
        if f == "deletionVectors" {
            out.push(U::DeletionVectors);
        } else if !HARMLESS_WRITER_FEATURES.contains(&f.as_str()) {
            out.push(U::WriterFeature(f.clone()));
        }
    }
    for f in &p.reader_features {
        // Reader-writer features are listed in both sets: reported once, above.
        if !HARMLESS_READER_FEATURES.contains(&f.as_str()) && !p.writer_features.contains(f) {
            out.push(if f == "deletionVectors" {
                U::DeletionVectors
            } else {
                U::ReaderFeature(f.clone())
            });
        }
    }
    let mut constraints: Vec<_> = p
        .configuration
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("delta.constraints.")
                .map(|name| U::CheckConstraint {
                    name: name.to_string(),
                    expression: v.clone(),
                })
        })
        .collect();
    constraints.sort_by_key(|c| c.to_string());
    out.extend(constraints);
    if let Some(mode) = p.configuration.get("delta.columnMapping.mode")
        && !mode.trim().eq_ignore_ascii_case("none")
    {
        out.push(U::ColumnMapping { mode: mode.clone() });
    }
    if enabled(&p.configuration, "delta.enableDeletionVectors")
        && !out.contains(&U::DeletionVectors)
    {
        out.push(U::DeletionVectors);
    }
    if enabled(&p.configuration, "delta.enableChangeDataFeed") {
        out.push(U::ChangeDataFeed);
    }
    if enabled(&p.configuration, "delta.enableRowTracking") {
        out.push(U::RowTracking);
    }
    match serde_json::from_str::<Value>(&p.schema_json) {
        Ok(schema) => column_features(&schema, "", &mut out),
        Err(e) => out.push(U::UnreadableSchema(e.to_string())),
    }
    out
}

/// Walk a Delta schema JSON (structs, arrays, maps) for column-level writer features.
fn column_features(ty: &Value, prefix: &str, out: &mut Vec<UnsupportedFeature>) {
    match ty.get("type").and_then(Value::as_str) {
        Some("struct") => {
            for field in ty
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = field.get("name").and_then(Value::as_str).unwrap_or("?");
                let column = if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}.{name}")
                };
                if let Some(meta) = field.get("metadata").and_then(Value::as_object) {
                    if meta.contains_key("delta.generationExpression") {
                        out.push(UnsupportedFeature::GeneratedColumn {
                            column: column.clone(),
                        });
                    }
                    if meta.contains_key("delta.invariants") {
                        out.push(UnsupportedFeature::Invariant {
                            column: column.clone(),
                        });
                    }
                    if meta.keys().any(|k| k.starts_with("delta.identity.")) {
                        out.push(UnsupportedFeature::IdentityColumn {
                            column: column.clone(),
                        });
                    }
                }
                if let Some(t) = field.get("type") {
                    column_features(t, &column, out);
                }
            }
        }
        Some("array") => {
            if let Some(t) = ty.get("elementType") {
                column_features(t, &format!("{prefix}[]"), out);
            }
        }
        Some("map") => {
            for k in ["keyType", "valueType"] {
                if let Some(t) = ty.get(k) {
                    column_features(t, &format!("{prefix}{{{k}}}"), out);
                }
            }
        }
        _ => {}
    }
}

/// Refuse to write `table` when it has features we do not enforce. Call right after
/// opening a table for writing, before any file is uploaded.
pub fn check_writable(table: &DeltaTable, uri: &str) -> Result<(), LakeError> {
    let found = unsupported_features(&TableProtocol::of(table, uri)?);
    if found.is_empty() {
        return Ok(());
    }
    let list = found
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(LakeError::Invariant {
        table: uri.to_string(),
        detail: format!(
            "refusing to write: the table uses features this tool does not enforce: {list}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use UnsupportedFeature as U;

    fn plain() -> TableProtocol {
        TableProtocol {
            min_reader_version: 1,
            min_writer_version: 2,
            schema_json: r#"{"type":"struct","fields":[
                {"name":"event_uuid","type":"string","nullable":false,"metadata":{}},
                {"name":"payload","type":"string","nullable":true,"metadata":{"comment":"x"}}]}"#
                .into(),
            ..Default::default()
        }
    }

    #[test]
    fn our_own_tables_pass() {
        let mut p = plain();
        assert_eq!(unsupported_features(&p), vec![]);
        p.configuration.insert(
            "delta.deletedFileRetentionDuration".into(),
            "interval 7 days".into(),
        );
        p.configuration
            .insert("delta.columnMapping.mode".into(), "none".into());
        p.configuration
            .insert("delta.enableDeletionVectors".into(), "false".into());
        assert_eq!(unsupported_features(&p), vec![]);
        p.min_reader_version = 3;
        p.min_writer_version = 7;
        p.writer_features = vec!["appendOnly".into(), "invariants".into()];
        assert_eq!(unsupported_features(&p), vec![]);
    }

    #[test]
    fn check_constraints_are_refused() {
        let mut p = plain();
        p.min_writer_version = 3;
        p.configuration
            .insert("delta.constraints.positive".into(), "created_at > 0".into());
        assert_eq!(
            unsupported_features(&p),
            vec![
                U::WriterVersion(3),
                U::CheckConstraint {
                    name: "positive".into(),
                    expression: "created_at > 0".into()
                }
            ]
        );
        let msg = U::CheckConstraint {
            name: "positive".into(),
            expression: "created_at > 0".into(),
        }
        .to_string();
        assert!(msg.contains("CHECK constraint `positive`"), "{msg}");
    }

    #[test]
    fn column_level_features_are_found_also_nested() {
        let mut p = plain();
        p.schema_json = r#"{"type":"struct","fields":[
            {"name":"a","type":"long","nullable":true,"metadata":{"delta.generationExpression":"b + 1"}},
            {"name":"s","type":{"type":"struct","fields":[
                {"name":"x","type":"integer","nullable":true,"metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"x > 0\"}}"}}]},
             "nullable":true,"metadata":{}},
            {"name":"id","type":"long","nullable":false,"metadata":{"delta.identity.start":1,"delta.identity.step":1}}]}"#
            .into();
        assert_eq!(
            unsupported_features(&p),
            vec![
                U::GeneratedColumn { column: "a".into() },
                U::Invariant {
                    column: "s.x".into()
                },
                U::IdentityColumn {
                    column: "id".into()
                },
            ]
        );
    }

    #[test]
    fn table_features_and_properties() {
        let mut p = plain();
        p.min_reader_version = 3;
        p.min_writer_version = 7;
        p.reader_features = vec![
            "deletionVectors".into(),
            "v2Checkpoint".into(),
            "typeWidening".into(),
        ];
        p.writer_features = vec![
            "deletionVectors".into(),
            "v2Checkpoint".into(),
            "rowTracking".into(),
        ];
        // a reader-only feature listed on its own still counts
        p.configuration
            .insert("delta.columnMapping.mode".into(), "name".into());
        p.configuration
            .insert("delta.enableDeletionVectors".into(), "true".into());
        p.configuration
            .insert("delta.enableChangeDataFeed".into(), "TRUE".into());
        assert_eq!(
            unsupported_features(&p),
            vec![
                U::DeletionVectors,
                U::WriterFeature("v2Checkpoint".into()),
                U::WriterFeature("rowTracking".into()),
                U::ReaderFeature("typeWidening".into()),
                U::ColumnMapping {
                    mode: "name".into()
                },
                U::ChangeDataFeed,
            ]
        );
    }

    #[test]
    fn versions_beyond_support_and_bad_schema() {
        let mut p = plain();
        p.min_reader_version = 4;
        p.min_writer_version = 8;
        p.schema_json = "{".into();
        let found = unsupported_features(&p);
        assert_eq!(found[..2], [U::ReaderVersion(4), U::WriterVersion(8)]);
        assert!(matches!(found[2], U::UnreadableSchema(_)));
        p.min_writer_version = 5;
        assert!(unsupported_features(&p).contains(&U::WriterVersion(5)));
    }
}
