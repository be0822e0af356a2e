//! The DBLab Engine as a refresh drives it (`docs/dblab-engine.md` describes the engine's
//! API, and how versions 4.1 and 4.2 differ):
//! - `engines`: the engines the stack may drive (its `DblabEngines`), and the one a
//!   request names;
//! - `client`: the HTTP calls, bounded by the invocation's time;
//! - `status`: what the engine answers them with;
//! - `engine`: which engine it is, and the checks before a clone costs money;
//! - `engine_clock`: the engine's clock, which stamps the times a refresh is judged by;
//! - `config`: the patch that points the dump at the clone, and the proof that it took;
//! - `connstr`: libpq connection strings, read and re-addressed;
//! - `refresh`: a refresh as a run follows it, and how it begins;
//! - `trigger`: starting a refresh: follow one under way, refuse a busy engine, or patch
//!   and trigger, and how the dump runs;
//! - `look`: one look at a refresh, and what it reads;
//! - `progress`: reading a refresh's progress, one look at a time.

pub mod client;
pub mod config;
pub mod connstr;
pub mod engine;
pub mod engine_clock;
pub mod engines;
pub mod look;
pub mod progress;
pub mod refresh;
pub mod status;
pub mod trigger;

pub(crate) use client::REQUEST_TIMEOUT;
pub use client::{Connector, DblabClient};
pub use config::{Api, EngineConfig, SourceConnection, config_patch, connection_string_for, mismatches};
pub use engine::EngineIdentity;
pub use engine_clock::EngineClock;
pub use engines::{Engine, EngineList};
pub use look::{Look, look};
pub use progress::{advance, phase_of};
pub use refresh::{Refresh, RefreshFailure, RefreshPhase, Trigger};
pub use status::{AlertMark, EngineSnapshot, RetrievalStatus, Retrieving};

/// The longest one look at a refresh may take: `/status`, then `/instance/retrieval` or
/// `/snapshots`.
pub const LOOK_TIME: std::time::Duration = std::time::Duration::from_secs(2 * REQUEST_TIMEOUT.as_secs());

#[cfg(test)]
mod tests {
    #[test]
    fn a_look_has_time_for_its_two_calls() {
        assert!(super::LOOK_TIME >= super::REQUEST_TIMEOUT * 2, "{:?}", super::LOOK_TIME);
    }
}
