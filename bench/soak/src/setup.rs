//! Creating the events table before the writer opens it: the writer's own schema and
//! partitioning (`schemas::table::EVENTS`), the project's `delta.checkpointInterval`, and the
//! time-based properties scaled by the compression factor.

use std::time::Duration;

use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTableBuilder, DeltaTableError};
use schemas::table::{EVENTS, default_table_properties};
use storage::{LakeError, StorageConfig};

use compactor::vacuum::DEFAULT_RETENTION;

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
/// retention durations divided by `compression`, and the compactor's vacuum retention (its
/// default, [`compactor::vacuum::DEFAULT_RETENTION`]) divided the same way.
pub fn properties(compression: f64) -> (Vec<(String, String)>, Duration) {
    let mut out = Vec::new();
    for (k, v) in default_table_properties() {
        if SCALED_PROPERTIES.contains(&k) {
            let real = parse_interval(v).unwrap_or(DEFAULT_RETENTION);
            out.push((k.to_string(), scaled_interval(real, compression).1));
        } else {
            out.push((k.to_string(), v.to_string()));
        }
    }
    (out, scaled_interval(DEFAULT_RETENTION, compression).0)
}

/// `interval N <unit>` as the project defaults write it (seconds … weeks, singular or
/// plural); `None` for anything else.
fn parse_interval(v: &str) -> Option<Duration> {
    let mut words = v.strip_prefix("interval ")?.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    let unit = match words.next()?.trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        "week" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n * unit))
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
        assert_eq!(
            get("delta.deletedFileRetentionDuration"),
            Some("interval 21 seconds")
        );
        assert_eq!(get("delta.checkpointInterval"), Some("100"));
    }

    #[test]
    fn intervals_parse_in_every_unit() {
        assert_eq!(
            parse_interval("interval 6 hours"),
            Some(Duration::from_secs(21_600))
        );
        assert_eq!(
            parse_interval("interval 1 day"),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_interval("interval 90 seconds"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_interval("interval 2 weeks"),
            Some(Duration::from_secs(1_209_600))
        );
        assert_eq!(parse_interval("6 hours"), None);
        assert_eq!(parse_interval("interval x days"), None);
    }
}
