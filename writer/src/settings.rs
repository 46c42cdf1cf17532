//! The settings of `writer ingest` and `writer run`, each defined exactly once.
//!
//! Why this module exists: a setting used to be written three times (the flag struct, the
//! TOML file struct, the resolved config) with its default repeated as literals, and the
//! copies drifted — `min_created_at` and `max_future` were documented for the config file
//! but the file struct refused them. Here each command's settings are ONE struct that is at
//! the same time its clap flag group (with the `env` variable of each flag) and the schema of
//! its TOML file (keys = long flags with `_`). Every field is an `Option`, so the three layers
//! merge field by field — flags over the environment (clap does that), then the file, then
//! [`Settings::defaults`], the only place a default value is written — and the merged struct
//! is resolved into the typed [`PipelineConfig`] / [`ServiceConfig`] the rest of the code
//! consumes.
//!
//! Adding a setting is one field in [`PipelineSettings`] (shared by `ingest` and `run`) or
//! [`RunSettings`] (`run` only) — which makes the flag, the env variable and the TOML key
//! at once — its default in `defaults()` if it has one, and its line in `resolve`.
//! The tests check that every flag is also accepted as a TOML key with the same meaning.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use schemas::ValidationRules;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use storage::{CommitLock, StorageConfig};

use crate::config::{DedupeConfig, FlushPolicy, PipelineConfig, Tables, parse_duration};
use crate::pipeline::PartitionPolicy;
use crate::service::config::{DISCOVERY_INTERVAL, RECORDS_PER_CALL, ServiceConfig};
use crate::source::kinesis::StartPosition;

/// Why settings could not be turned into a configuration.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A setting without a default was given nowhere.
    #[error("--{flag} (or {env}, or `{key}` in the config file) is required")]
    Missing {
        flag: String,
        env: String,
        key: String,
    },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bad TOML, an unknown key (typo) or a value of the wrong type.
    #[error("parsing {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// The file gave the same setting twice (top-level key and `[flush]` table).
    #[error(
        "parsing {}: `{key}` and `[flush] {flush_key}` are the same setting; keep one",
        path.display()
    )]
    Conflict {
        path: PathBuf,
        key: &'static str,
        flush_key: &'static str,
    },
    /// A value that parses but cannot be used (e.g. an invalid regular expression).
    #[error("`{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// One layer of settings that can sit on top of another: the merge rule of every setting,
/// generated for each settings struct by `layered_settings!` so no field can be left out.
pub trait Layer: Sized {
    /// `self`'s values where set, `lower`'s elsewhere.
    fn or(self, lower: Self) -> Self;
    /// Appends `(field name, value as shown to users)` for each set value (for `--help`).
    fn describe(&self, name: &'static str, out: &mut Vec<(&'static str, String)>);
}

impl<T: Shown> Layer for Option<T> {
    fn or(self, lower: Self) -> Self {
        Option::or(self, lower)
    }
    fn describe(&self, name: &'static str, out: &mut Vec<(&'static str, String)>) {
        if let Some(v) = self {
            out.push((name, v.shown()));
        }
    }
}

/// A setting's value written the way a user would type it (shown as a `--help` default).
pub trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_by_display!(String, usize, u16, i64, bool);

impl Shown for Duration {
    fn shown(&self) -> String {
        let ms = self.as_millis();
        [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ]
        .into_iter()
        .find(|&(_, per)| ms >= per && ms.is_multiple_of(per))
        .map_or_else(
            || format!("{ms}ms"),
            |(unit, per)| format!("{}{unit}", ms / per),
        )
    }
}

impl Shown for CommitLock {
    fn shown(&self) -> String {
        self.as_str().into()
    }
}

impl Shown for crate::service::config::DedupeKeys {
    fn shown(&self) -> String {
        use clap::ValueEnum as _;
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_string())
    }
}

impl Shown for StartPosition {
    fn shown(&self) -> String {
        self.as_checkpoint()
    }
}

/// A command's settings: flags (with env variables), TOML file schema and defaults in one.
pub trait Settings: Layer + Args + DeserializeOwned + Default + fmt::Debug {
    /// The built-in defaults: the one place a default value is written. (`Default` is the
    /// empty layer, nothing set.)
    fn defaults() -> Self;
    /// The shared group, for the file-only `[flush]` table.
    fn pipeline_mut(&mut self) -> &mut PipelineSettings;
}

/// Declares a settings struct and derives its [`Layer`] impl from the same field list.
macro_rules! layered_settings {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[$smeta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Layer for $name {
            fn or(self, lower: Self) -> Self {
                $name { $( $field: Layer::or(self.$field, lower.$field), )* }
            }
            fn describe(&self, _name: &'static str, out: &mut Vec<(&'static str, String)>) {
                $( Layer::describe(&self.$field, stringify!($field), out); )*
            }
        }
    };
}

layered_settings! {
    /// Settings shared by `ingest` and `run`: tables, commit lock, batching, dedupe memory,
    /// the `created_at` window and the writer id.
    #[derive(Debug, Clone, Default, PartialEq, Args, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PipelineSettings {
        /// Events table location: a local path, `file://` or `s3://` URI.
        #[arg(long, env = "WRITER_TABLE")]
        pub table: Option<String>,
        /// Rejected-events table location.
        #[arg(long, env = "WRITER_REJECTED_TABLE")]
        pub rejected_table: Option<String>,
        /// How commits to `s3://` tables are made safe: `dynamodb` (Spark-compatible lock
        /// table) or `s3-conditional` (S3 `If-None-Match` writes). Required for `s3://`.
        #[arg(long, env = "WRITER_COMMIT_LOCK", value_parser = parse_commit_lock)]
        #[serde(default, deserialize_with = "de::parsed")]
        pub commit_lock: Option<CommitLock>,
        /// DynamoDB commit-lock table (with `--commit-lock dynamodb`).
        #[arg(long, env = "WRITER_LOCK_TABLE")]
        pub lock_table: Option<String>,
        /// Scheme recorded in the lock table's `tablePath` (e.g. `s3a` to share a table with
        /// Spark writers); default: the table URI's scheme.
        #[arg(long, env = "WRITER_LOCK_PATH_SCHEME")]
        pub lock_path_scheme: Option<String>,
        /// Maximum events per batch (one commit per table per batch). `ingest` defaults to
        /// half of `run`'s: it holds two batches in memory at once. File: also
        /// `[flush] max_events`.
        #[arg(long, env = "WRITER_MAX_BATCH_EVENTS")]
        pub max_batch_events: Option<usize>,
        /// Maximum raw bytes per batch. File: also `[flush] max_bytes`.
        #[arg(long, env = "WRITER_MAX_BATCH_BYTES")]
        pub max_batch_bytes: Option<usize>,
        /// Target time from a record being read to its commit being visible (e.g. `5s`,
        /// `500ms`); `run` starts the flush early by the recent commit duration (at most half
        /// of this). File: also `[flush] max_latency`.
        #[arg(long, env = "WRITER_FLUSH_INTERVAL", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub flush_interval: Option<Duration>,
        /// Memory budget for the dedupe key index, in MiB (least recently used partitions are
        /// evicted beyond it; a partition too large to cache is streamed instead). Default:
        /// 40% of the memory limit (cgroup limit in a container, else physical memory).
        #[arg(long, env = "WRITER_DEDUPE_MEMORY_MB")]
        pub dedupe_memory_mb: Option<usize>,
        /// Partitions no batch has touched for this long leave the dedupe key index, budget
        /// or not (a late event re-reads its partition's keys); `0` keeps them until the
        /// budget needs the room.
        #[arg(long, env = "WRITER_DEDUPE_IDLE_EVICT", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub dedupe_idle_evict: Option<Duration>,
        /// Earliest plausible `created_at`, Unix seconds (the default is 2000-01-01).
        #[arg(long, env = "WRITER_MIN_CREATED_AT", allow_negative_numbers = true)]
        pub min_created_at: Option<i64>,
        /// How far in the future `created_at` may be.
        #[arg(long, env = "WRITER_MAX_FUTURE", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub max_future: Option<Duration>,
        /// Regular expression every `event_type` (the partition value) must match, whole;
        /// others are rejected with `event_type_pattern_mismatch`.
        #[arg(long, env = "WRITER_EVENT_TYPE_PATTERN")]
        pub event_type_pattern: Option<String>,
        /// Comma-separated list of the only `event_type` values accepted (on top of the
        /// pattern); others are rejected with `event_type_not_allowed`. Default: any.
        #[arg(long, env = "WRITER_EVENT_TYPE_ALLOWLIST")]
        pub event_type_allowlist: Option<String>,
        /// At most this many `event_type` values new to the table per batch; events of
        /// further new types are rejected with `too_many_new_partitions`. 0: no cap.
        #[arg(long, env = "WRITER_MAX_NEW_PARTITIONS_PER_BATCH")]
        pub max_new_partitions_per_batch: Option<usize>,
        /// Identifier recorded in each commit (and, for `run`, in leases); default: host name
        /// and process id (plus a random suffix for `run`). For `run` it must be unique per
        /// running process: it is the lease owner, and two processes sharing it would take
        /// each other's shards back as their own.
        #[arg(long, env = "WRITER_ID")]
        pub writer_id: Option<String>,
        /// The config file's `[flush]` table (kept from the first file format); folded into
        /// the top-level keys when the file is read, so it is never seen after loading.
        #[arg(skip)]
        #[serde(default)]
        pub flush: FlushTable,
    }
}

layered_settings! {
    /// Settings of `writer run` (the Kinesis service).
    #[derive(Debug, Clone, Default, PartialEq, Args, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RunSettings {
        /// Kinesis stream name.
        #[arg(long, env = "WRITER_STREAM")]
        pub stream: Option<String>,
        #[command(flatten)]
        #[serde(flatten)]
        pub pipeline: PipelineSettings,
        /// DynamoDB table of shard leases (created when missing).
        #[arg(long, env = "WRITER_LEASE_TABLE")]
        pub lease_table: Option<String>,
        /// Where shards never seen start: `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP:<unix s>`.
        #[arg(long, env = "WRITER_START_POSITION")]
        #[serde(default, deserialize_with = "de::parsed")]
        pub start_position: Option<StartPosition>,
        /// Lease duration: a lease not renewed for this long may be taken.
        #[arg(long, env = "WRITER_LEASE_DURATION", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub lease_duration: Option<Duration>,
        /// Port of `/healthz` and `/metrics` (0 disables).
        #[arg(long, env = "WRITER_METRICS_PORT")]
        pub metrics_port: Option<u16>,
        /// Address the metrics endpoint binds (all interfaces by default, for the load
        /// balancer's checks).
        #[arg(long, env = "WRITER_METRICS_HOST")]
        pub metrics_host: Option<String>,
        /// Time allowed for a graceful stop after SIGTERM (keep it inside the container's stop
        /// timeout: ECS `stopTimeout`).
        #[arg(long, env = "WRITER_SHUTDOWN_DEADLINE", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub shutdown_deadline: Option<Duration>,
        /// Stop cleanly once no shard of the stream holds records this instance could read:
        /// every shard it reads delivered nothing for this long, and none is unowned, held by
        /// an expired lease, or owned by it but unread (tests, scheduled low-volume runs).
        #[arg(long, env = "WRITER_EXIT_WHEN_IDLE", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub exit_when_idle: Option<Duration>,
        /// Commit and stop cleanly once every shard of the stream this instance reads was
        /// read to its tip (an answer neither full nor behind) and none is left unread: the
        /// scheduled low-volume run, on a stream with no idle gaps for `--exit-when-idle`.
        /// Records arriving after that wait for the next run.
        #[arg(long, env = "WRITER_EXIT_WHEN_CAUGHT_UP", num_args = 0..=1, default_missing_value = "true")]
        pub exit_when_caught_up: Option<bool>,
        /// Take turns with the other writers of the table: flush at this writer's slot of
        /// each flush interval (its rank among the writers holding leases) so commits do not
        /// race for the same version (default `true`; `false`: each writer's own cadence).
        #[arg(long, env = "WRITER_COMMIT_SLOTS", num_args = 0..=1, default_missing_value = "true")]
        pub commit_slots: Option<bool>,
        /// Which keys dedupe holds: `all` (default: every key of the partitions written,
        /// exact for any copy; each writer reads the files the others add) or `own-shards`
        /// (keys that came through this writer's shards, their ancestors, or no shard: exact
        /// for copies that share a partition key; other writers' commits are never read —
        /// for several writers on one table, SCALING.md §2).
        #[arg(long, env = "WRITER_DEDUPE_KEYS", value_enum)]
        pub dedupe_keys: Option<crate::service::config::DedupeKeys>,
        /// Stop cleanly (flush, checkpoint, release leases) this long after starting, whatever
        /// is still readable: the cap of a scheduled run (low-volume profile), so a run started
        /// every N minutes never outlives its period when traffic has no idle gaps.
        #[arg(long, env = "WRITER_MAX_RUN_TIME", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub max_run_time: Option<Duration>,
        /// Pause between GetRecords calls on a shard read up to its tip (an empty or partial
        /// answer); a backlog is read 5 calls a second. Adds up to this much to freshness.
        #[arg(long, env = "WRITER_POLL_INTERVAL", value_parser = parse_duration)]
        #[serde(default, deserialize_with = "de::duration")]
        pub poll_interval: Option<Duration>,
    }
}

/// `[flush]` in the config file: the batch limits under their original names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushTable {
    pub max_events: Option<usize>,
    pub max_bytes: Option<usize>,
    #[serde(default, deserialize_with = "de::duration")]
    pub max_latency: Option<Duration>,
}

/// Never set on the flag layer and emptied when a file is read, so it takes no part in the
/// merge; implemented by hand because it is not a setting of its own.
impl Layer for FlushTable {
    fn or(self, lower: Self) -> Self {
        FlushTable {
            max_events: self.max_events.or(lower.max_events),
            max_bytes: self.max_bytes.or(lower.max_bytes),
            max_latency: self.max_latency.or(lower.max_latency),
        }
    }
    fn describe(&self, _name: &'static str, _out: &mut Vec<(&'static str, String)>) {}
}

/// `ingest`'s defaults (`run`'s are [`RunSettings`]' and differ in the batch cap).
impl Settings for PipelineSettings {
    fn defaults() -> Self {
        let flush = FlushPolicy::default();
        let rules = ValidationRules::default();
        PipelineSettings {
            lock_table: Some(storage::lock::DEFAULT_LOCK_TABLE.into()),
            max_batch_events: Some(crate::config::INGEST_MAX_BATCH_EVENTS),
            max_batch_bytes: Some(flush.max_bytes),
            flush_interval: Some(flush.max_latency),
            // 40% of the memory this process may really use (the container's cgroup limit,
            // else physical memory): a fixed 1 GiB overran a 1 GiB Fargate task.
            dedupe_memory_mb: Some(storage::memory::default_dedupe_memory_mb(
                storage::memory::process_memory_limit_bytes(),
            )),
            dedupe_idle_evict: Some(crate::config::DEFAULT_DEDUPE_IDLE_EVICT),
            min_created_at: Some(rules.min_created_at),
            max_future: Some(Duration::from_secs(rules.max_future_secs.unsigned_abs())),
            event_type_pattern: Some(
                schemas::PartitionRules::default()
                    .event_type_pattern
                    .to_string(),
            ),
            max_new_partitions_per_batch: Some(
                PartitionPolicy::default()
                    .max_new_partitions_per_batch
                    .unwrap_or(0),
            ),
            ..PipelineSettings::default()
        }
    }
    fn pipeline_mut(&mut self) -> &mut PipelineSettings {
        self
    }
}

impl Settings for RunSettings {
    fn defaults() -> Self {
        RunSettings {
            pipeline: PipelineSettings {
                max_batch_events: Some(FlushPolicy::default().max_events),
                ..PipelineSettings::defaults()
            },
            lease_table: Some("events_lake_leases".into()),
            start_position: Some(StartPosition::TrimHorizon),
            lease_duration: Some(Duration::from_secs(10)),
            metrics_port: Some(9898),
            metrics_host: Some("0.0.0.0".into()),
            shutdown_deadline: Some(Duration::from_secs(25)),
            poll_interval: Some(Duration::from_secs(1)),
            ..RunSettings::default()
        }
    }
    fn pipeline_mut(&mut self) -> &mut PipelineSettings {
        &mut self.pipeline
    }
}

/// A command's settings plus the config file they may also come from.
#[derive(Debug, Args)]
pub struct Layered<S: Settings> {
    /// TOML config file: keys are the long flags with `_` (`rejected_table = "…"`), batch
    /// limits also under `[flush]`; flags and environment variables win over it.
    #[arg(long, env = "WRITER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: S,
}

/// Everything `writer run` takes.
pub type RunArgs = Layered<RunSettings>;

impl<S: Settings> Layered<S> {
    /// Flags (clap already put them over their environment variables) over the file over
    /// the defaults.
    pub fn merge(self) -> Result<S, SettingsError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => S::default(),
        };
        Ok(self.settings.or(file).or(S::defaults()))
    }
}

impl RunArgs {
    /// The service's configuration from flags, environment, file and defaults.
    pub fn resolve(self) -> Result<ServiceConfig, SettingsError> {
        self.merge()?.resolve()
    }
}

impl Layered<PipelineSettings> {
    /// The pipeline's configuration (for `ingest`) from flags, environment, file and
    /// defaults.
    pub fn resolve(self) -> Result<PipelineConfig, SettingsError> {
        self.merge()?.resolve(default_writer_id)
    }
}

/// Reads a settings file. Unknown keys are errors, so a typo cannot silently leave a
/// setting at its default.
pub fn load_file<S: Settings>(path: &Path) -> Result<S, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

/// Parses a settings file's text (`path` only names it in errors).
pub fn parse_file<S: Settings>(text: &str, path: &Path) -> Result<S, SettingsError> {
    let mut settings: S = toml::from_str(text).map_err(|e| SettingsError::Parse {
        path: path.to_path_buf(),
        message: describe_toml_error(&e, text),
    })?;
    settings.pipeline_mut().fold_flush_table(path)?;
    Ok(settings)
}

/// toml's message, except for unknown keys: the shared group is flattened into the top
/// level, which costs serde the key's position, so toml would point at the file's first
/// line; name the key's own line instead, and say how keys are spelled.
fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message();
    let Some(key) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return e.to_string();
    };
    let line = text.lines().position(|l| {
        l.trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let at = line.map_or_else(String::new, |n| format!(" (line {})", n + 1));
    format!(
        "unknown key `{key}`{at}; keys are the long flags with `_` instead of `-` \
         (see --help), batch limits may also go under `[flush]` as `max_events`, `max_bytes`, \
         `max_latency`"
    )
}

impl PipelineSettings {
    /// Moves `[flush]` values to their top-level keys, so the file is one flat layer.
    fn fold_flush_table(&mut self, path: &Path) -> Result<(), SettingsError> {
        fn fold<T>(
            top: &mut Option<T>,
            flush: Option<T>,
            key: &'static str,
            flush_key: &'static str,
            path: &Path,
        ) -> Result<(), SettingsError> {
            match (top.is_some(), flush) {
                (true, Some(_)) => Err(SettingsError::Conflict {
                    path: path.to_path_buf(),
                    key,
                    flush_key,
                }),
                (_, Some(v)) => {
                    *top = Some(v);
                    Ok(())
                }
                (_, None) => Ok(()),
            }
        }
        let flush = std::mem::take(&mut self.flush);
        fold(
            &mut self.max_batch_events,
            flush.max_events,
            "max_batch_events",
            "max_events",
            path,
        )?;
        fold(
            &mut self.max_batch_bytes,
            flush.max_bytes,
            "max_batch_bytes",
            "max_bytes",
            path,
        )?;
        fold(
            &mut self.flush_interval,
            flush.max_latency,
            "flush_interval",
            "max_latency",
            path,
        )
    }

    /// The pipeline's typed configuration from merged settings.
    pub fn resolve(
        self,
        default_writer_id: impl FnOnce() -> String,
    ) -> Result<PipelineConfig, SettingsError> {
        type S = PipelineSettings;
        Ok(PipelineConfig {
            tables: Tables {
                events_uri: required::<S, _>(self.table, "table")?,
                rejected_uri: required::<S, _>(self.rejected_table, "rejected_table")?,
                storage: StorageConfig {
                    commit_lock: self.commit_lock,
                    lock_table: required::<S, _>(self.lock_table, "lock_table")?,
                    lock_path_scheme: self.lock_path_scheme,
                    ..StorageConfig::default()
                },
            },
            flush: FlushPolicy {
                max_events: required::<S, _>(self.max_batch_events, "max_batch_events")?.max(1),
                max_bytes: required::<S, _>(self.max_batch_bytes, "max_batch_bytes")?.max(1),
                max_latency: required::<S, _>(self.flush_interval, "flush_interval")?,
            },
            dedupe: DedupeConfig {
                memory_budget_bytes: required::<S, _>(self.dedupe_memory_mb, "dedupe_memory_mb")?
                    .max(1)
                    .saturating_mul(1 << 20),
                idle_evict: Some(required::<S, _>(
                    self.dedupe_idle_evict,
                    "dedupe_idle_evict",
                )?)
                .filter(|d| !d.is_zero()),
            },
            validation: ValidationRules {
                min_created_at: required::<S, _>(self.min_created_at, "min_created_at")?,
                max_future_secs: i64::try_from(
                    required::<S, _>(self.max_future, "max_future")?.as_secs(),
                )
                .unwrap_or(i64::MAX),
            },
            partition: PartitionPolicy {
                rules: schemas::PartitionRules {
                    event_type_pattern: required::<S, _>(
                        self.event_type_pattern,
                        "event_type_pattern",
                    )?
                    .parse()
                    .map_err(
                        |e: schemas::partition::PatternError| SettingsError::Invalid {
                            key: "event_type_pattern",
                            message: e.to_string(),
                        },
                    )?,
                    event_type_allowlist: self
                        .event_type_allowlist
                        .as_deref()
                        .and_then(schemas::PartitionRules::parse_allowlist),
                },
                max_new_partitions_per_batch: Some(required::<S, _>(
                    self.max_new_partitions_per_batch,
                    "max_new_partitions_per_batch",
                )?)
                .filter(|&n| n > 0),
            },
            writer_id: self.writer_id.unwrap_or_else(default_writer_id),
        })
    }
}

impl RunSettings {
    /// The service's typed configuration from merged settings.
    pub fn resolve(self) -> Result<ServiceConfig, SettingsError> {
        type S = RunSettings;
        let stream = required::<S, _>(self.stream, "stream")?;
        let port = required::<S, _>(self.metrics_port, "metrics_port")?;
        Ok(ServiceConfig {
            stream,
            pipeline: self.pipeline.resolve(|| {
                // Leases need an identity unique per process incarnation: a restarted task
                // may reuse the host name and pid of the one it replaces.
                format!(
                    "{}-{}",
                    default_writer_id(),
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                )
            })?,
            lease_table: required::<S, _>(self.lease_table, "lease_table")?,
            lease_duration: required::<S, _>(self.lease_duration, "lease_duration")?,
            start: required::<S, _>(self.start_position, "start_position")?,
            metrics_host: required::<S, _>(self.metrics_host, "metrics_host")?,
            metrics_port: (port != 0).then_some(port),
            shutdown_deadline: required::<S, _>(self.shutdown_deadline, "shutdown_deadline")?,
            exit_when_idle: self.exit_when_idle,
            exit_when_caught_up: self.exit_when_caught_up.unwrap_or(false),
            commit_slots: self.commit_slots.unwrap_or(true),
            dedupe_keys: self.dedupe_keys.unwrap_or_default(),
            max_run_time: self.max_run_time,
            poll_interval: required::<S, _>(self.poll_interval, "poll_interval")?,
            records_per_call: RECORDS_PER_CALL,
            discovery_interval: DISCOVERY_INTERVAL,
        })
    }
}

/// The value, or the "is required" error naming every way to give it (from the flag's own
/// definition, so the message cannot name a flag or env variable that does not exist).
fn required<S: Args, T>(value: Option<T>, id: &str) -> Result<T, SettingsError> {
    value.ok_or_else(|| {
        let cmd = S::augment_args(clap::Command::new("settings"));
        let arg = cmd.get_arguments().find(|a| a.get_id() == id);
        let flag = arg
            .and_then(|a| a.get_long())
            .map_or_else(|| id.replace('_', "-"), str::to_string);
        let env = arg.and_then(|a| a.get_env()).map_or_else(
            || format!("WRITER_{}", id.to_uppercase()),
            |e| e.to_string_lossy().into_owned(),
        );
        SettingsError::Missing {
            flag,
            env,
            key: id.to_string(),
        }
    })
}

/// Appends each setting's default to its flag's help (`[default: 5s]`), from
/// [`Settings::defaults`]. Not clap's `default_value`: that would make every setting look
/// given on the command line and hide the config file's value.
pub fn document_defaults<S: Settings>(cmd: clap::Command) -> clap::Command {
    let mut shown = Vec::new();
    S::defaults().describe("", &mut shown);
    cmd.mut_args(|arg| {
        let Some((_, value)) = shown.iter().find(|(id, _)| arg.get_id() == *id) else {
            return arg;
        };
        let with_default = |help: Option<&clap::builder::StyledStr>| {
            let help = help.map(|h| h.to_string()).unwrap_or_default();
            format!("{help} [default: {value}]")
        };
        let help = with_default(arg.get_help());
        let long_help = arg.get_long_help().map(|h| with_default(Some(h)));
        let arg = arg.help(help);
        match long_help {
            Some(long) => arg.long_help(long),
            None => arg,
        }
    })
}

/// Host name and process id: who wrote a commit, for an auditor reading the log.
pub fn default_writer_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{host}-{}", std::process::id())
}

fn parse_commit_lock(s: &str) -> Result<CommitLock, String> {
    s.parse()
}

/// serde adapters so the file takes the same spellings as the flags.
mod de {
    use std::fmt;
    use std::str::FromStr;
    use std::time::Duration;

    use serde::Deserialize;
    use serde::de::{Deserializer, Error, Visitor};

    /// A value parsed from its string form by the same `FromStr` the flag uses.
    pub fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: fmt::Display,
    {
        let s = String::deserialize(d)?;
        s.parse().map(Some).map_err(D::Error::custom)
    }

    /// `"5s"`, `"500ms"`, `"1d"` as for the flags; a bare number is seconds.
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        d.deserialize_any(DurationVisitor).map(Some)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"5s\", \"500ms\", \"1d\" or a number of seconds")
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Duration, E> {
            super::parse_duration(v).map_err(E::custom)
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("invalid duration `{v}`")))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Duration, E> {
            super::parse_duration(&v.to_string()).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Command, FromArgMatches};

    /// Marks the child process of [`settings_env_sits_between_flags_and_file`].
    const CHILD_MARKER: &str = "EVENTS_LAKE_SETTINGS_ENV_CHILD";
    const CHILD_DONE: &str = "settings env layer checked";

    /// `writer run`'s flags without their env variables, so these tests do not depend on the
    /// environment they run in (the env layer is tested in a child process).
    fn run_command_without_env() -> Command {
        RunArgs::augment_args(Command::new("run")).mut_args(|a| a.env(None))
    }

    fn parse_flags(cmd: &Command, flags: &[&str]) -> Result<RunArgs, clap::Error> {
        let matches = cmd
            .clone()
            .try_get_matches_from(std::iter::once("run").chain(flags.iter().copied()))?;
        RunArgs::from_arg_matches(&matches)
    }

    fn parse_run_file(text: &str) -> Result<RunSettings, SettingsError> {
        parse_file(text, Path::new("test.toml"))
    }

    /// The settings without a default, so a layer can be resolved.
    fn required_only() -> RunSettings {
        RunSettings {
            stream: Some("s".into()),
            pipeline: PipelineSettings {
                table: Some("t".into()),
                rejected_table: Some("r".into()),
                writer_id: Some("w".into()),
                ..PipelineSettings::default()
            },
            ..RunSettings::default()
        }
    }

    fn resolve(layer: RunSettings) -> ServiceConfig {
        layer
            .or(required_only())
            .or(RunSettings::defaults())
            .resolve()
            .expect("resolves")
    }

    /// The documented `created_at` window keys load from the file and reach the validation
    /// rules (they were refused as unknown keys before settings had one definition).
    #[test]
    fn settings_file_min_created_at_and_max_future_take_effect() {
        let file = parse_run_file(
            "stream = \"s\"\ntable = \"t\"\nrejected_table = \"r\"\n\
             min_created_at = 1700000000\nmax_future = \"2h\"\n",
        )
        .expect("loads");
        let cfg = file
            .or(RunSettings::defaults())
            .resolve()
            .expect("resolves");
        assert_eq!(
            cfg.pipeline.validation,
            ValidationRules {
                min_created_at: 1_700_000_000,
                max_future_secs: 7200,
            }
        );
    }

    /// Values clap may accept for a flag, tried in order; a new flag whose type takes none
    /// of them fails the test below with a request to add one.
    const SAMPLES: [&str; 5] = ["7", "dynamodb", "LATEST", "true", "own-shards"];

    /// Every long flag of `writer run` is a TOML key (`-` → `_`) meaning the same thing, so a
    /// setting cannot be added to the flags and be missing from the file.
    #[test]
    fn settings_every_run_flag_is_a_toml_key() {
        let cmd = run_command_without_env();
        let mut whole_file = String::new();
        let mut by_flags = RunSettings::default();
        let mut checked = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "config" {
                continue; // the file itself
            }
            let flag = format!("--{long}");
            let key = long.replace('-', "_");
            let (sample, from_flag) = SAMPLES
                .iter()
                .find_map(|&v| {
                    parse_flags(&cmd, &[flag.as_str(), v])
                        .ok()
                        .map(|a| (v, a.settings))
                })
                .unwrap_or_else(|| panic!("{flag} accepts none of {SAMPLES:?}: add a sample"));
            assert_ne!(
                from_flag,
                RunSettings::default(),
                "{flag} {sample} set nothing"
            );
            // A TOML value is bare (numbers) or quoted (strings, durations, names).
            let from_file = [sample.to_string(), format!("\"{sample}\"")]
                .iter()
                .find_map(|value| {
                    let line = format!("{key} = {value}\n");
                    parse_run_file(&line).ok().map(|s| (line, s))
                });
            let Some((line, from_file)) = from_file else {
                panic!("{flag} {sample}: TOML key `{key}` is refused");
            };
            assert_eq!(
                from_file, from_flag,
                "`{line}` differs from `{flag} {sample}`"
            );
            assert_eq!(
                format!("{:?}", resolve(from_file)),
                format!("{:?}", resolve(from_flag.clone())),
                "`{line}` resolves differently from `{flag} {sample}`"
            );
            whole_file.push_str(&line);
            by_flags = from_flag.or(by_flags);
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} flags found");
        // All keys at once (the shared group is flattened into the file's top level).
        assert_eq!(parse_run_file(&whole_file).expect("whole file"), by_flags);
    }

    /// The first file format's `[flush]` table still works and means the top-level keys.
    #[test]
    fn settings_flush_table_is_the_batch_keys() {
        let table =
            parse_run_file("[flush]\nmax_events = 1000\nmax_bytes = 2000\nmax_latency = \"2s\"\n")
                .expect("flush table");
        let top = parse_run_file(
            "max_batch_events = 1000\nmax_batch_bytes = 2000\nflush_interval = \"2s\"\n",
        )
        .expect("top-level keys");
        assert_eq!(table, top);
        let flush = resolve(table).pipeline.flush;
        assert_eq!(
            (flush.max_events, flush.max_bytes, flush.max_latency),
            (1000, 2000, Duration::from_secs(2))
        );
        let both = parse_run_file("max_batch_events = 1\n[flush]\nmax_events = 2\n");
        assert!(
            matches!(
                both,
                Err(SettingsError::Conflict {
                    key: "max_batch_events",
                    ..
                })
            ),
            "{both:?}"
        );
    }

    #[test]
    fn settings_typo_keys_are_rejected() {
        for (typo, expected) in [
            (
                "stream = \"s\"\nstrem = \"x\"",
                "unknown key `strem` (line 2)",
            ), // `run` key
            (
                "max_batch_event = 1",
                "unknown key `max_batch_event` (line 1)",
            ), // shared group
            ("[flush]\nmax_event = 1", "unknown key `max_event` (line 2)"), // in `[flush]`
        ] {
            let err = parse_run_file(typo).expect_err(typo).to_string();
            assert!(err.contains(expected), "{typo}: {err}");
        }
        // `ingest` takes only the shared group: a `run`-only key is refused there.
        let err = parse_file::<PipelineSettings>("stream = \"x\"", Path::new("i.toml"))
            .expect_err("run-only key");
        assert!(
            err.to_string().contains("unknown key `stream` (line 1)"),
            "{err}"
        );
    }

    #[test]
    fn settings_flag_over_file_over_default() {
        let dir = std::env::temp_dir().join(format!("settings-precedence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("writer.toml");
        std::fs::write(
            &path,
            "stream = \"s\"\ntable = \"t\"\nrejected_table = \"r\"\n\
             lease_table = \"from-file\"\nmetrics_port = 1111\n[flush]\nmax_events = 30\n",
        )
        .expect("write config");
        let config = path.to_str().expect("utf-8 path");
        let cmd = run_command_without_env();
        let cfg = parse_flags(&cmd, &["--config", config, "--metrics-port", "2222"])
            .expect("flags")
            .resolve()
            .expect("resolves");
        assert_eq!(cfg.metrics_port, Some(2222), "flag over file");
        assert_eq!(cfg.lease_table, "from-file", "file over default");
        assert_eq!(
            cfg.pipeline.flush.max_events, 30,
            "file `[flush]` over default"
        );
        assert_eq!(cfg.poll_interval, Duration::from_secs(1), "default");
        assert_eq!(cfg.max_run_time, None, "no cap unless asked");
        let capped = parse_flags(&cmd, &["--config", config, "--max-run-time", "9m"])
            .expect("flags")
            .resolve()
            .expect("resolves");
        assert_eq!(capped.max_run_time, Some(Duration::from_secs(540)));
        let cfg = parse_flags(&cmd, &["--config", config, "--max-batch-events", "10"])
            .expect("flags")
            .resolve()
            .expect("resolves");
        assert_eq!(
            cfg.pipeline.flush.max_events, 10,
            "flag over file `[flush]`"
        );
        assert_eq!(cfg.metrics_port, Some(1111));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn settings_missing_required_names_every_source() {
        let err = RunSettings::defaults().resolve().expect_err("no stream");
        assert_eq!(
            err.to_string(),
            "--stream (or WRITER_STREAM, or `stream` in the config file) is required"
        );
        let err = PipelineSettings::defaults()
            .resolve(default_writer_id)
            .expect_err("no table");
        assert_eq!(
            err.to_string(),
            "--table (or WRITER_TABLE, or `table` in the config file) is required"
        );
    }

    /// Flags > environment > file > default, with real environment variables: set only in a
    /// child process running [`env_layer_child`], because the environment is process-global
    /// and other tests run concurrently.
    #[test]
    fn settings_env_sits_between_flags_and_file() {
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let name = format!("{module}::env_layer_child");
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
        child.args([
            name.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WRITER_") {
                child.env_remove(name);
            }
        }
        let out = child
            .env(CHILD_MARKER, "1")
            .env("WRITER_MAX_BATCH_EVENTS", "20")
            .env("WRITER_MAX_BATCH_BYTES", "21")
            .env("WRITER_FLUSH_INTERVAL", "22s")
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(CHILD_DONE),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run by settings_env_sits_between_flags_and_file, in its own environment"]
    fn env_layer_child() {
        if std::env::var_os(CHILD_MARKER).is_none() {
            return; // run directly with --ignored: nothing to check without the env set-up
        }
        let file = parse_run_file(
            "max_batch_events = 30\nmax_batch_bytes = 31\ndedupe_memory_mb = 32\n\
             dedupe_idle_evict = \"0\"\n[flush]\nmax_latency = \"33s\"\n",
        )
        .expect("file");
        // The command is built here, so its flags read this process's environment.
        let cmd = RunArgs::augment_args(Command::new("run"));
        let flags = parse_flags(&cmd, &["--max-batch-events", "10"]).expect("flags");
        let cfg = resolve(flags.settings.or(file));
        assert_eq!(cfg.pipeline.flush.max_events, 10, "flag over env");
        assert_eq!(cfg.pipeline.flush.max_bytes, 21, "env over file");
        assert_eq!(
            cfg.pipeline.flush.max_latency,
            Duration::from_secs(22),
            "env over file [flush]"
        );
        assert_eq!(
            cfg.pipeline.dedupe.memory_budget_bytes,
            32 << 20,
            "file over default"
        );
        assert_eq!(
            cfg.pipeline.dedupe.idle_evict, None,
            "0 turns eviction by age off"
        );
        assert_eq!(cfg.lease_duration, Duration::from_secs(10), "default");
        println!("{CHILD_DONE}");
    }

    #[test]
    fn ingest_batches_default_to_half_the_services() {
        // `ingest` holds two full batches in memory; `run`'s cap bounds its commit rate.
        assert_eq!(
            PipelineSettings::defaults().max_batch_events,
            Some(crate::config::INGEST_MAX_BATCH_EVENTS)
        );
        let run = RunSettings::defaults().pipeline;
        assert_eq!(
            run.max_batch_events,
            Some(FlushPolicy::default().max_events)
        );
        assert_eq!(
            run,
            PipelineSettings {
                max_batch_events: run.max_batch_events,
                ..PipelineSettings::defaults()
            },
            "only the batch cap differs"
        );
    }

    #[test]
    fn settings_defaults_are_shown_in_help() {
        let mut cmd = document_defaults::<RunSettings>(RunArgs::augment_args(Command::new("run")));
        // Whitespace normalized: clap may wrap long lines.
        let help = cmd.render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let memory = storage::memory::default_dedupe_memory_mb(
            storage::memory::process_memory_limit_bytes(),
        );
        for shown in [
            "[default: 5s]".to_string(),
            "[default: 9898]".to_string(),
            "[default: TRIM_HORIZON]".to_string(),
            "[default: delta_log]".to_string(),
            "--dedupe-idle-evict <DEDUPE_IDLE_EVICT> Partitions no batch has touched".to_string(),
            "[default: 1h]".to_string(),
            format!("[default: {memory}]"),
        ] {
            assert!(help.contains(&shown), "{shown} missing from:\n{help}");
        }
    }
}
