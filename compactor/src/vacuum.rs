//! Vacuum: delete data files that no commit inside the retention window references.
//!
//! Default mode deletes only files *removed by earlier commits* (tombstones) once their
//! removal is older than the retention: a file a live writer has uploaded but not yet
//! committed is never a tombstone, so it can never be deleted from under the writer (the
//! delta-rs "full vacuum deletes uncommitted files" hazard). `--full` also deletes files no
//! commit ever referenced, but only those older than the retention (hours or days, against a
//! writer's seconds between upload and commit).

use anyhow::{Context, Result};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::VacuumMode;
use serde::Serialize;
use serde_json::json;

use crate::{TableArgs, VacuumArgs};

#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumSummary {
    pub command: &'static str,
    pub dry_run: bool,
    pub mode: &'static str,
    pub retention_hours: Option<f64>,
    pub files_deleted: u64,
    pub versions_committed: u64,
    pub table_version: i64,
}

pub async fn vacuum(t: &TableArgs, args: &VacuumArgs) -> Result<VacuumSummary> {
    let table = storage::open_table(&t.table, &t.storage()).await?;
    let before = table.version().map_or(-1, |v| v as i64);
    let mut builder = table
        .vacuum()
        .with_dry_run(args.dry_run)
        .with_enforce_retention_duration(!args.force)
        .with_mode(if args.full {
            VacuumMode::Full
        } else {
            VacuumMode::Lite
        })
        .with_commit_properties(CommitProperties::default().with_metadata([(
            "compactor".to_string(),
            json!({"version": env!("CARGO_PKG_VERSION")}),
        )]));
    if let Some(r) = args.retention {
        let r = chrono::Duration::from_std(r).context("retention out of range")?;
        builder = builder.with_retention_period(r);
    }
    let (table, metrics) = builder
        .await
        .context("vacuum (retention shorter than the table's time-travel window needs --force)")?;
    if args.dry_run {
        for f in &metrics.files_deleted {
            println!("{f}");
        }
    }
    let after = table.version().map_or(-1, |v| v as i64);
    Ok(VacuumSummary {
        command: "vacuum",
        dry_run: args.dry_run,
        mode: if args.full { "full" } else { "lite" },
        retention_hours: args.retention.map(|r| r.as_secs_f64() / 3600.0),
        files_deleted: metrics.files_deleted.len() as u64,
        versions_committed: (after - before).max(0) as u64,
        table_version: after,
    })
}
