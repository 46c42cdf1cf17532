//! The events lake writer: raw JSON events in, a deduplicated, partitioned Delta table out.
//!
//! # Where a record goes
//! Both commands share one path from "a batch of raw records" to "committed"; they differ in
//! where the records come from and what a commit must also record.
//!
//! **`writer ingest`** (a file or stdin, one process):
//! 1. *read* — [`source::ndjson`] yields lines with their line numbers;
//! 2. *batch* — [`batch::Batcher`] cuts batches by the flush rule [`batch::Fill`] (events,
//!    bytes, age);
//! 3. *decode* — [`decode`] parses, validates and enriches each record in parallel (the rules
//!    live in the `schemas` crate), sorts out rejects and drops in-batch duplicates
//!    ([`pipeline::Prepared`]); the next batch is decoded while the previous one commits;
//! 4. *commit* — [`pipeline::Pipeline`] commits the rejects to the rejected table, then the
//!    events through [`commit::TableSink`]: **plan** (the [`commit::follow`] log follower
//!    reads other writers' commits, the [`dedupe`] key index drops keys the table already
//!    holds) → **stage** (Parquet files laid out by [`rows`] from the `schemas` table
//!    definition) → **commit** at exactly the next version (through the commit lock of the
//!    `storage` crate) → **committed** (index and `txn` cache updated; a Delta checkpoint is
//!    written in the background when due).
//!
//! **`writer run`** (the Kinesis service, see [`service`]):
//! 1. *read* — [`service::shards`] holds the shard leases ([`source::kinesis::lease`]) and
//!    runs one reader per shard ([`source::kinesis`], with KPL de-aggregation);
//! 2. *batch* — [`service::buffer`] collects every shard's records under the same
//!    [`batch::Fill`] rule (starting early by the commit time, so the flush interval bounds
//!    freshness);
//! 3. *progress* — [`service::progress`] computes what the commit must carry per shard: its
//!    `txn` version, the fence on the previous one, the sequence numbers read;
//! 4. *decode* and *commit* — the same [`pipeline::Pipeline::process`] as `ingest`, the
//!    progress committed atomically with the rows;
//! 5. *checkpoint* — after the commit, each shard's lease records the position (a cache of
//!    the Delta `txn`, which stays the truth on restart).
//!
//! Settings for both come from [`settings`] (flags → environment → TOML → defaults, each
//! defined once) and resolve to [`config::PipelineConfig`] / [`service::ServiceConfig`].

pub mod batch;
pub mod commit;
pub mod config;
pub mod decode;
pub mod dedupe;
pub mod pipeline;
pub mod rows;
pub mod service;
pub mod settings;
pub mod source;
