//! The resolved settings of `writer run`. Where they come from (flags, environment, the
//! `--config` file, defaults) is [`crate::settings`]; this is what the service consumes.

use std::time::Duration;

use crate::config::PipelineConfig;
use crate::source::kinesis::StartPosition;

/// GetRecords' own maximum: fewer calls per record on a busy shard.
pub const RECORDS_PER_CALL: i32 = 10_000;
/// How often the stream's shard list is re-read to notice splits and merges.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

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
