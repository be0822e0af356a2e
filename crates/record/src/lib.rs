//! `record`: the run's history. At the start it validates the request, takes the
//! target's lock and writes a `running` row; once the preflight named the engine, it takes
//! the engine's lock (keyed by the engine's own identity); at the end it writes the outcome
//! and releases the locks (only those this execution holds). For the clean-up machine it also
//! tells whether an ended run recorded itself (`status`), and completes a stopped run's
//! state from that execution's own history (`recover`).

use refresh_core::RefreshError;
use refresh_core::executions::Executions;
use refresh_core::history::History;
use refresh_core::metrics;
use refresh_core::row::RunSummary;
use refresh_core::run::{EngineLock, Execution, RestoreSource, RunStart, RunState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

mod cleanup;
mod finish;
mod freshness;
mod start;

pub struct Deps {
    pub history: History,
    pub executions: Executions,
    /// Where the clones run: the region their price is read for.
    pub region: String,
    /// The stack's freshness threshold, for a request without `freshness.maxAge`.
    pub freshness_default: std::time::Duration,
    /// The CloudWatch namespace of the freshness and clone-hours metrics.
    pub metrics_namespace: String,
    pub metrics: metrics::Sink,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", deny_unknown_fields)]
pub enum Input {
    Start {
        execution: Execution,
        request: Value,
    },
    /// The engine's lock, before the clone is made: keyed by the `instanceID` the
    /// preflight read, so every address of one engine is one lock.
    LockEngine {
        execution: Execution,
        request: Value,
        run: Box<RunStart>,
        snapshot: Box<RestoreSource>,
    },
    Finish {
        state: Box<RunState>,
    },
    /// Whether a run that ended has its outcome recorded already (its own failure path
    /// purged, recorded and notified): the clean-up machine then does nothing more.
    Status {
        execution: Execution,
        request: Value,
    },
    /// The clean-up machine's state completed from the stopped execution's own history:
    /// its snapshot, clone, refresh and the state it was in.
    Recover {
        state: Box<RunState>,
    },
    /// Every target's freshness as metrics (the hourly schedule): a target that stopped
    /// running altogether still goes stale.
    Freshness {},
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output {
    Started(RunStart),
    EngineLocked(EngineLock),
    Finished(Box<RunSummary>),
    Status(RunStatus),
    /// The whole state, without empty parts: the clean-up machine's Choices test presence.
    Recovered(Value),
    Freshness(FreshnessReport),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FreshnessReport {
    pub targets: usize,
    pub stale: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The run's row holds its outcome (not `running`).
    pub recorded: bool,
    pub outcome: Option<String>,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Output, RefreshError> {
    let now = OffsetDateTime::now_utc();
    match input {
        Input::Start { execution, request } => start::start(deps, execution, request, now).await.map(Output::Started),
        Input::LockEngine { execution, request, run, snapshot } => {
            start::lock_engine(deps, &execution, &request, &run, &snapshot, now).await.map(Output::EngineLocked)
        }
        Input::Finish { state } => finish::finish(deps, &state, now).await.map(|s| Output::Finished(Box::new(s))),
        Input::Status { execution, request } => {
            cleanup::status(deps, &execution, &request, now).await.map(Output::Status)
        }
        Input::Recover { state } => cleanup::recover(deps, *state).await.map(Output::Recovered),
        Input::Freshness {} => freshness::freshness(deps, now).await.map(Output::Freshness),
    }
}
