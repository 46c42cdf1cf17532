//! Creating the events table before the writer opens it: the writer's own schema and
//! partitioning (`schemas::table::EVENTS`), the project's `delta.checkpointInterval`, and the
//! time-based properties scaled by the compression factor.

use std::time::Duration;

use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTableBuilder, DeltaTableError};
use schemas::table::{EVENTS, default_table_properties};
use storage::{LakeError, StorageConfig};

use crate::clock::scaled_interval;

/// The two time-based properties the compression factor scales.
pub const SCALED_PROPERTIES: [&str; 2] = [
    "delta.logRetentionDuration",
    "delta.deletedFileRetentionDuration",
];

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{0}: the table already exists; the soak needs a fresh location")]
    Exists(String),
    #[error("{uri}: {step}: {source}")]
    Delta {
        uri: String,
        step: &'static str,
        source: DeltaTableError,
    },
}

/// The table properties of the soak's events table: the project defaults with the two
/// retention durations divided by `compression`. Returns them with the scaled retention.
pub fn properties(compression: f64) -> (Vec<(String, String)>, Duration) {
    let mut retention = Duration::ZERO;
    let mut out = Vec::new();
    for (k, v) in default_table_properties() {
        if SCALED_PROPERTIES.contains(&k) {
            let real = parse_days(v);
            let (d, text) = scaled_interval(real, compression);
            retention = retention.max(d);
            out.push((k.to_string(), text));
        } else {
            out.push((k.to_string(), v.to_string()));
        }
    }
    (out, retention)
}

/// `interval N days` (the only form the project defaults use); 7 days otherwise.
fn parse_days(v: &str) -> Duration {
    let days = v
        .strip_prefix("interval ")
        .and_then(|r| r.strip_suffix(" days"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(7);
    Duration::from_secs(days * 86_400)
}

/// Create the events table at `uri` with `properties`; refuses an existing table.
pub async fn create_events_table(
    uri: &str,
    storage: &StorageConfig,
    properties: &[(String, String)],
) -> Result<(), SetupError> {
    let delta = |step| {
        move |source| SetupError::Delta {
            uri: uri.to_string(),
            step,
            source,
        }
    };
    let url = storage::table_url(uri)?;
    let mut table = DeltaTableBuilder::from_url(url)
        .and_then(|b| b.with_storage_options(storage.delta_options()).build())
        .map_err(delta("open"))?;
    match table.load().await {
        Ok(()) => return Err(SetupError::Exists(uri.to_string())),
        Err(DeltaTableError::NotATable(_)) => {}
        Err(e) => return Err(delta("load")(e)),
    }
    CreateBuilder::new()
        .with_log_store(table.log_store())
        .with_table_name(EVENTS.name)
        .with_columns(EVENTS.delta_fields())
        .with_partition_columns(EVENTS.partition_columns.iter().copied())
        .with_configuration(properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
        .with_save_mode(SaveMode::ErrorIfExists)
        .await
        .map_err(delta("create"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_scaled_and_checkpoint_interval_kept() {
        let (props, retention) = properties(168.0);
        assert_eq!(retention, Duration::from_secs(3600));
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("delta.logRetentionDuration"),
            Some("interval 3600 seconds")
        );
        assert_eq!(get("delta.checkpointInterval"), Some("20"));
    }
}
