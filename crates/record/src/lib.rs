//! `record`: the run's history. At the start it validates the request, takes the
//! target's lock and writes a `running` row; once the preflight named the engine, it takes
//! the engine's lock (keyed by the engine's own identity); at the end it writes the outcome
//! and releases the locks (only those this execution holds). For the clean-up machine it also
//! tells whether an ended run recorded itself (`status`), and completes a stopped run's
//! state from that execution's own history (`recover`).

use refresh_core::RefreshError;
use refresh_core::executions::Executions;
use refresh_core::fleet;
use refresh_core::history::{self, History, RowWrite};
use refresh_core::request::RefreshRequest;
use refresh_core::run::{EngineLock, Execution, PollSeconds, RestoreSource, RunStart, RunState};
use refresh_core::summary::{self, RunSummary};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

pub struct Deps {
    pub history: History,
    pub executions: Executions,
    /// Where the clones run: the region their price is read for.
    pub region: String,
    /// The stack's freshness threshold, for a request without `freshness.maxAge`.
    pub freshness_default: std::time::Duration,
    /// The CloudWatch namespace of the freshness and clone-hours metrics.
    pub metrics_namespace: String,
    pub metrics: Metrics,
}

/// Where metric lines go: standard output in Lambda (one embedded-metric-format line,
/// which Lambda sends to CloudWatch Logs as its own event, where it becomes metrics), or
/// a list a test reads.
#[derive(Debug, Default)]
pub struct Metrics {
    collected: Option<std::sync::Mutex<Vec<Value>>>,
}

impl Metrics {
    pub fn stdout() -> Self {
        Self { collected: None }
    }

    pub fn collecting() -> Self {
        Self { collected: Some(Default::default()) }
    }

    fn emit(&self, line: &Value) {
        match &self.collected {
            None => println!("{line}"),
            Some(lines) => lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line.clone()),
        }
    }

    /// The lines collected so far (none for standard output).
    pub fn lines(&self) -> Vec<Value> {
        self.collected
            .as_ref()
            .map(|lines| lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
            .unwrap_or_default()
    }
}

/// Time beyond the longest run before its lock expires by itself (recording, notifying).
const LOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(3_600);

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
        Input::Start { execution, request } => start(deps, execution, request, now).await.map(Output::Started),
        Input::LockEngine { execution, request, run, snapshot } => {
            lock_engine(deps, &execution, &request, &run, &snapshot, now).await.map(Output::EngineLocked)
        }
        Input::Finish { state } => finish(deps, &state, now).await.map(|s| Output::Finished(Box::new(s))),
        Input::Status { execution, request } => status(deps, &execution, &request, now).await.map(Output::Status),
        Input::Recover { state } => recover(deps, *state).await.map(Output::Recovered),
        Input::Freshness {} => freshness(deps, now).await.map(Output::Freshness),
    }
}

async fn start(
    deps: &Deps,
    execution: Execution,
    document: Value,
    now: OffsetDateTime,
) -> Result<RunStart, RefreshError> {
    // Nothing is written for an invalid request.
    let request = RefreshRequest::from_document(&document)?;
    let started_at = execution.started_at.unwrap_or(now);
    // Held for as long as the run can last, and a margin to record and notify.
    let lock_expires_at = now + refresh_core::request::longest_run(&request.clone, &request.dblab).0 + LOCK_MARGIN;
    let mut run = RunStart {
        target: request.target.clone(),
        run_key: history::run_key(started_at, &execution.name),
        started_at,
        lock_expires_at,
        poll_seconds: PollSeconds { clone: request.clone.poll_interval.as_secs() },
        deletion_seconds: Some(request.clone.deletion_timeout.as_secs()),
        duplicate_of: None,
    };
    let locked = deps.history.acquire_lock(&request.target, &execution, lock_expires_at, now, &deps.executions).await;
    if let Err(e @ RefreshError::TargetLocked { .. }) = locked {
        let Some((original, original_started)) = duplicate_of(deps, &request.target, &execution, &document).await
        else {
            return Err(e);
        };
        let state =
            RunState { request: document, execution: Some(execution), run: Some(run.clone()), ..Default::default() };
        deps.history.put_run(&run.run_key, &summary::skipped(&state, &original, original_started, now)).await?;
        info!(target = %run.target, %original, "a duplicate start of a run under way: skipped");
        run.duplicate_of = Some(original);
        return Ok(run);
    }
    locked?;
    let state =
        RunState { request: document, execution: Some(execution), run: Some(run.clone()), ..Default::default() };
    let running = fleet::Running {
        execution_name: state.execution.as_ref().map(|e| e.name.clone()).unwrap_or_default(),
        execution_arn: state.execution.as_ref().and_then(|e| e.arn.clone()),
        started_at,
    };
    let max_age = request.freshness_max_age.unwrap_or(deps.freshness_default);
    // The row first: a StartRun that was in flight when its execution was stopped, and
    // answers after the clean-up recorded the run, must not make it `running` again.
    let execution = state.execution.as_ref().map(|e| e.name.as_str()).unwrap_or_default();
    if deps.history.put_run(&run.run_key, &summary::running(&state, now)).await? == RowWrite::AlreadyEnded {
        deps.history.release_lock(&run.target, execution).await?;
        warn!(target = %run.target, "the run ended while it was starting: its lock is released again");
        return Err(RefreshError::RunEnded { execution: execution.to_string() });
    }
    // The fleet view is a view: the run goes on without it.
    if let Err(e) = deps.history.fleet_started(&run.target, &running, max_age, now).await {
        warn!(error = %e, "the fleet item was not updated");
    }
    info!(target = %run.target, run_key = %run.run_key, "run started");
    Ok(run)
}

async fn lock_engine(
    deps: &Deps,
    execution: &Execution,
    request: &Value,
    run: &RunStart,
    snapshot: &RestoreSource,
    now: OffsetDateTime,
) -> Result<EngineLock, RefreshError> {
    let endpoint = request.pointer("/dblab/apiEndpoint").and_then(Value::as_str).unwrap_or_default();
    let Some(lock) = history::engine_lock(snapshot.engine_instance_id.as_deref(), endpoint) else {
        return Err(RefreshError::at("dblab.apiEndpoint", "is not a URL with a host"));
    };
    if lock.instance_id.is_none() {
        warn!(%endpoint, "the engine gives no instanceID: locked by its address, which another spelling would not share");
    }
    deps.history.acquire_engine_lock(&lock, execution, run.lock_expires_at, now, &deps.executions).await?;
    // Taken by a call that was in flight when the execution was stopped, after the
    // clean-up released the run's locks: given back at once.
    let outcome = deps.history.outcome_at(&run.target, &run.run_key).await?;
    if outcome.as_deref().is_some_and(|o| o != summary::Outcome::Running.as_str()) {
        deps.history.release_lock(&lock.key, &execution.name).await?;
        warn!(engine = %lock.describe(), "the run ended while it was locking its engine: the lock is released again");
        return Err(RefreshError::RunEnded { execution: execution.name.clone() });
    }
    info!(engine = %lock.describe(), "engine lock taken");
    Ok(lock)
}

/// A start this close to a running execution of the same request is a duplicate of it
/// (EventBridge Scheduler retries a start whose answer it lost; a person clicks twice).
pub const DUPLICATE_WINDOW: time::Duration = time::Duration::minutes(15);

/// The running execution that holds the target's lock, when it was started with the same
/// request within `DUPLICATE_WINDOW` of this one. Any doubt (an unreadable holder, another
/// request) is no duplicate: the start then fails as `TargetLocked`.
async fn duplicate_of(
    deps: &Deps,
    target: &str,
    execution: &Execution,
    document: &Value,
) -> Option<(String, OffsetDateTime)> {
    let (owner, arn) = deps.history.lock_holder(target).await.ok().flatten()?;
    let holder = deps
        .executions
        .started(arn.as_deref()?)
        .await
        .inspect_err(|e| warn!(error = %e, %owner, "cannot read the lock holder's start: not taken as a duplicate"))
        .ok()
        .flatten()?;
    let same_request =
        holder.input.as_deref().and_then(|i| serde_json::from_str::<Value>(i).ok()).as_ref() == Some(document);
    let started_at = execution.started_at?;
    let close = (started_at - holder.started_at).abs() <= DUPLICATE_WINDOW;
    (owner != execution.name && holder.running && same_request && close).then_some((owner, holder.started_at))
}

async fn status(
    deps: &Deps,
    execution: &Execution,
    request: &Value,
    now: OffsetDateTime,
) -> Result<RunStatus, RefreshError> {
    // A request without a valid target has its row apart, as `finish` wrote it.
    let target = RefreshRequest::target_of(request).unwrap_or(history::NO_TARGET);
    let started_at = execution.started_at.unwrap_or(now);
    let outcome = deps.history.run_outcome(target, &execution.name, started_at).await?;
    let recorded = outcome.as_deref().is_some_and(|o| o != summary::Outcome::Running.as_str());
    info!(target, recorded, outcome = ?outcome, "run status read");
    Ok(RunStatus { recorded, outcome })
}

async fn recover(deps: &Deps, state: RunState) -> Result<Value, RefreshError> {
    let arn = state.execution.as_ref().and_then(|e| e.arn.clone());
    // The clean-up goes on with what the event said when the history cannot be read.
    let stopped = match arn {
        Some(arn) => deps
            .executions
            .stopped(&arn)
            .await
            .inspect_err(|e| warn!(error = %e, "stopped execution's history unreadable: its row will be incomplete"))
            .unwrap_or_default(),
        None => Default::default(),
    };
    let recovered = refresh_core::stopped::complete(state, stopped);
    info!(
        snapshot = recovered.snapshot.is_some(),
        clone = ?recovered.clone.as_ref().map(|c| &c.identifier),
        failed_state = ?recovered.failed_state,
        "stopped run recovered"
    );
    let mut value = serde_json::to_value(&recovered).map_err(|e| RefreshError::Internal(e.to_string()))?;
    if let Value::Object(fields) = &mut value {
        fields.retain(|_, v| !v.is_null());
    }
    Ok(value)
}

async fn finish(deps: &Deps, state: &RunState, now: OffsetDateTime) -> Result<RunSummary, RefreshError> {
    let mut summary = summary::finished(state, now);
    // The cost is an estimate: a history that cannot be read leaves its part unknown
    // rather than the run unrecorded.
    let usage = match summary.execution_arn.as_deref() {
        Some(arn) => deps
            .executions
            .usage(arn)
            .await
            .inspect_err(|e| warn!(error = %e, "execution history unreadable: cost without Step Functions and Lambda"))
            .ok(),
        None => None,
    };
    summary.estimate_cost(&deps.region, usage);
    let run_key = match &state.run {
        Some(run) => run.run_key.clone(),
        // Without the run's key (a stopped run finished by the clean-up machine, or a run
        // refused at its start): its own row if it wrote one, else a new row.
        None => deps
            .history
            .find_run_key(history::partition_of(&summary), &summary.execution_name, summary.started_at)
            .await?
            .unwrap_or_else(|| history::run_key(summary.started_at, &summary.execution_name)),
    };
    // A retry whose first answer was lost finds the outcome written: the metrics were
    // emitted then, and are not emitted twice.
    let first = deps.history.put_run(&run_key, &summary).await? == RowWrite::Written;
    // The locks this execution may hold, from the state itself: a row written for a
    // request without a target, or without its execution, releases nothing.
    if let Some(execution) = &state.execution {
        if let Some(target) = RefreshRequest::target_of(&state.request) {
            deps.history.release_lock(target, &execution.name).await?;
        }
        // The lock LockEngine reported; or, if its answer was lost, the one it would have taken.
        let engine_lock = state.engine_lock.clone().or_else(|| {
            let endpoint = state.request.pointer("/dblab/apiEndpoint").and_then(Value::as_str)?;
            history::engine_lock(state.snapshot.as_ref()?.engine_instance_id.as_deref(), endpoint)
        });
        if let Some(lock) = engine_lock {
            deps.history.release_lock(&lock.key, &execution.name).await?;
        }
    }
    // A run that started (it took the lock) is its target's latest; one refused at its
    // start, or invalid, leaves the fleet as it was.
    if state.run.is_some() {
        let max_age = RefreshRequest::from_document(&state.request)
            .ok()
            .and_then(|r| r.freshness_max_age)
            .unwrap_or(deps.freshness_default);
        match deps.history.fleet_finished(&summary, max_age, now).await {
            Ok(Some(target)) if first => {
                deps.metrics.emit(&fleet::freshness_metrics(&deps.metrics_namespace, &target, now))
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "the fleet item was not updated"),
        }
        if let Some(line) = fleet::clone_hours_metric(&deps.metrics_namespace, &summary, now).filter(|_| first) {
            deps.metrics.emit(&line);
        }
    } else if let Some(target) = &summary.target {
        // Its start may have marked the target as running although its answer was lost.
        if let Err(e) = deps.history.fleet_clear_running(target, &summary.execution_name).await {
            warn!(error = %e, "the fleet item's run in progress was not cleared");
        }
    }
    info!(target = summary.target_label(), outcome = summary.outcome.as_str(), "run recorded");
    Ok(summary)
}

/// Every target's freshness metrics (the hourly schedule).
async fn freshness(deps: &Deps, now: OffsetDateTime) -> Result<FreshnessReport, RefreshError> {
    let fleet = deps.history.fleet().await?;
    let mut stale = Vec::new();
    for state in &fleet {
        deps.metrics.emit(&fleet::freshness_metrics(&deps.metrics_namespace, state, now));
        if state.stale(now) {
            stale.push(state.target.clone());
        }
    }
    info!(targets = fleet.len(), stale = ?stale, "freshness metrics emitted");
    Ok(FreshnessReport { targets: fleet.len(), stale })
}
