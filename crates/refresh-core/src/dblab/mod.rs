//! The DBLab Engine as a refresh drives it (`docs/dblab-engine.md` describes the engine's
//! API, and how versions 4.1 and 4.2 differ):
//! - `client`: the HTTP calls, bounded by the invocation's time;
//! - `engine`: which engine it is, and the checks before a clone costs money;
//! - `config`: the patch that points the dump at the clone, and the proof that it took;
//! - `connstr`: libpq connection strings, read and re-addressed;
//! - `progress`: reading a refresh's progress, one look at a time.

pub mod client;
pub mod config;
pub mod connstr;
pub mod engine;
pub mod progress;

pub use client::{
    AlertMark, BUSY_STATUSES, Connector, DblabClient, EngineSnapshot, REQUEST_TIMEOUT, RUNNING_STATUSES, Retrieving,
};
pub use config::{
    Api, EngineConfig, SourceConnection, config_patch, connection_string_for, dump_parallel_jobs, mismatches,
};
pub use engine::EngineIdentity;
pub use progress::{Look, advance, next_look_in, phase_of};

/// The longest one look at a refresh may take: `/status`, then `/instance/retrieval` or
/// `/snapshots`.
pub const LOOK_TIME: std::time::Duration = std::time::Duration::from_secs(2 * REQUEST_TIMEOUT.as_secs());
