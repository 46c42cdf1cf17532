//! The table's history for audits: one JSON line per version, newest first, with the
//! commit's metadata (the writer, the source positions and counts it recorded; compaction
//! and vacuum commits marked).

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::TableArgs;

pub async fn history(t: &TableArgs, limit: usize) -> Result<Vec<Value>> {
    let table = storage::open_table(&t.table, &t.storage()).await?;
    let latest = table.version().map_or(-1, |v| v as i64);
    let log_store = table.log_store();
    let mut out = Vec::new();
    let mut v = latest;
    while v >= 0 && out.len() < limit {
        let Some(bytes) = log_store
            .read_commit_entry(v as u64)
            .await
            .with_context(|| format!("reading version {v}"))?
        else {
            break; // expired by log retention: older versions are only in checkpoints
        };
        let mut info = Value::Null;
        let (mut adds, mut removes) = (0u64, 0u64);
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let a: Value =
                serde_json::from_slice(line).with_context(|| format!("parsing version {v}"))?;
            if let Some(ci) = a.get("commitInfo") {
                info = ci.clone();
            } else if a.get("add").is_some() {
                adds += 1;
            } else if a.get("remove").is_some() {
                removes += 1;
            }
        }
        let operation = info
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        out.push(json!({
            "version": v,
            "timestamp": info.get("timestamp"),
            "operation": operation,
            "compaction": matches!(operation.as_str(), "OPTIMIZE" | "VACUUM START" | "VACUUM END"),
            "files_added": adds,
            "files_removed": removes,
            "commit_info": info,
        }));
        v -= 1;
    }
    Ok(out)
}
