//! `record`: the run's history. At the start it validates the request, takes the
//! target's lock and writes a `running` row; once the preflight named the engine, it takes
//! the engine's lock (keyed by the engine's own identity); at the end it writes the outcome
//! and releases the locks (only those this execution holds). For the clean-up machine it also
//! tells whether an ended run recorded itself (`status`), reads an ended run's input when
//! its event left it out (`readInput`), and completes a stopped run's state from that
//! execution's own history (`recover`).

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
    /// The clean-up state machine, which the hourly pass starts for a run whose ended
    /// event never came.
    pub cleanup_machine_arn: String,
    /// How long after its end a run may still be in its clean-up (the clean-up machine's
    /// own timeout, and a margin): later, its clean-up never started.
    pub cleanup_after: time::Duration,
    /// The engines the stack may drive (`DblabEngines`): a run naming another is refused
    /// at its start.
    pub engines: refresh_core::dblab::EngineList,
}

/// The clean-up machine's `TimeoutSeconds` (2 h) and a quarter of an hour.
pub const CLEANUP_AFTER: time::Duration = time::Duration::minutes(135);

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
    /// purged and recorded), and its notification sent: the clean-up machine then does
    /// nothing more, or only sends the notification.
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
    /// running altogether still goes stale. Also starts the clean-up of a run that ended
    /// without one (its ended event was lost).
    Freshness {},
    /// An ended execution's input, as text, for the clean-up machine when its event left
    /// the input out (EventBridge does past about 248 KB of input and output).
    ReadInput {
        arn: String,
    },
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
    Input(String),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FreshnessReport {
    pub targets: usize,
    pub stale: Vec<String>,
    /// Runs that ended without their clean-up, whose clean-up this pass started.
    pub cleanups_started: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The run's row holds its outcome (not `running`).
    pub recorded: bool,
    /// Its notification went out, by either machine (or, a skipped duplicate, needs none).
    pub notified: bool,
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
        Input::ReadInput { arn } => cleanup::read_input(deps, &arn).await.map(Output::Input),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missed_clean_up_is_only_assumed_after_the_clean_up_machine_would_have_ended() {
        let machine: serde_json::Value =
            serde_json::from_str(include_str!("../../../statemachine/cleanup.asl.json")).unwrap();
        let timeout = machine["TimeoutSeconds"].as_i64().unwrap();
        assert!(super::CLEANUP_AFTER.whole_seconds() > timeout, "{timeout} s");
    }
}
