//! Settings of `writer run`: a TOML file, overridden by environment variables, overridden by
//! flags (clap gives flags precedence over their `env`; the file fills what neither set).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{FlushPolicy, PipelineConfig};
use crate::source::kinesis::StartPosition;

/// Resolved service settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub stream: String,
    pub pipeline: PipelineConfig,
    pub lease_table: String,
    pub lease_duration: Duration,
    pub start: StartPosition,
    pub metrics_host: String,
    /// `None` disables the endpoint.
    pub metrics_port: Option<u16>,
    pub shutdown_deadline: Duration,
    pub exit_when_idle: Option<Duration>,
    pub poll_interval: Duration,
    pub records_per_call: i32,
    pub discovery_interval: Duration,
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub stream: Option<String>,
    pub table: Option<String>,
    pub rejected_table: Option<String>,
    pub lease_table: Option<String>,
    pub lock_table: Option<String>,
    pub commit_lock: Option<String>,
    pub lock_path_scheme: Option<String>,
    pub start_position: Option<String>,
    pub lease_duration: Option<String>,
    pub metrics_port: Option<u16>,
    pub metrics_host: Option<String>,
    pub shutdown_deadline: Option<String>,
    pub exit_when_idle: Option<String>,
    pub poll_interval: Option<String>,
    pub writer_id: Option<String>,
    pub dedupe_memory_mb: Option<usize>,
    pub flush: Option<FlushFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushFile {
    pub max_events: Option<usize>,
    pub max_bytes: Option<usize>,
    pub max_latency: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
    }
}

impl FlushFile {
    pub fn apply(&self, mut base: FlushPolicy) -> Result<FlushPolicy, String> {
        if let Some(v) = self.max_events {
            base.max_events = v.max(1);
        }
        if let Some(v) = self.max_bytes {
            base.max_bytes = v.max(1);
        }
        if let Some(v) = &self.max_latency {
            base.max_latency = crate::config::parse_duration(v)?;
        }
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_file_and_rejects_typos() {
        let f: FileConfig = toml::from_str(
            r#"
            stream = "events"
            table = "s3://b/events"
            rejected_table = "s3://b/rejected"
            lease_table = "leases"
            commit_lock = "dynamodb"
            start_position = "LATEST"
            metrics_port = 9898
            [flush]
            max_events = 1000
            max_latency = "2s"
            "#,
        )
        .expect("valid");
        assert_eq!(f.stream.as_deref(), Some("events"));
        let flush = f
            .flush
            .as_ref()
            .map(|x| x.apply(FlushPolicy::default()))
            .transpose()
            .expect("flush");
        assert_eq!(
            flush.map(|p| (p.max_events, p.max_latency)),
            Some((1000, Duration::from_secs(2)))
        );
        assert!(toml::from_str::<FileConfig>("strem = \"x\"").is_err());
    }
}
