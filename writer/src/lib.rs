//! The events lake writer: raw JSON events in, a deduplicated, partitioned Delta table out.
//!
//! Data flows through one module per concept:
//! [`source`] (NDJSON, Kinesis) → [`batch`] (flush policy) → [`decode`] (validate and
//! enrich, in parallel) → [`dedupe`] (exact, against the batch and the table) →
//! [`commit`] (Parquet files plus one Delta commit per table) — orchestrated by
//! [`pipeline`]. [`generate`] makes realistic test input.

pub mod batch;
pub mod commit;
pub mod config;
pub mod decode;
pub mod dedupe;
pub mod generate;
pub mod pipeline;
pub mod rows;
pub mod service;
pub mod settings;
pub mod source;
