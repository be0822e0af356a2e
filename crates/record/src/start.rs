//! The run's start: the request validated, the target's lock, the `running` row (or a
//! duplicate start's `skipped` one), then the engine's lock once the preflight named it.

use refresh_core::RefreshError;
use refresh_core::fleet;
use refresh_core::history::{self, RowWrite};
use refresh_core::request::{Labels, RefreshRequest};
use refresh_core::run::{EngineLock, Execution, PollSeconds, RestoreSource, RunStart, RunState};
use refresh_core::{row, summary};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::Deps;

pub(crate) async fn start(
    deps: &Deps,
    execution: Execution,
    document: Value,
    now: OffsetDateTime,
) -> Result<RunStart, RefreshError> {
    // Nothing is written for an invalid request, or one naming an engine the stack does
    // not list.
    let request = RefreshRequest::from_document(&document)?;
    deps.engines.resolve(&request)?;
    let started_at = execution.started_at.unwrap_or(now);
    let lock_expires_at = history::lock_expiry(&request, now);
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
    let duplicate = match &locked {
        Err(RefreshError::TargetLocked { .. }) => {
            deps.history.duplicate_of(&request.target, &execution, &document, &deps.executions).await
        }
        _ => None,
    };
    let state =
        RunState { request: document, execution: Some(execution), run: Some(run.clone()), ..Default::default() };
    if let Some((original, original_started)) = duplicate {
        deps.history.put_run(&run.run_key, &summary::skipped(&state, &original, original_started, now)).await?;
        info!(target = %run.target, %original, "a duplicate start of a run under way: skipped");
        run.duplicate_of = Some(original);
        return Ok(run);
    }
    locked?;
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

pub(crate) async fn lock_engine(
    deps: &Deps,
    execution: &Execution,
    request: &Value,
    run: &RunStart,
    snapshot: &RestoreSource,
    now: OffsetDateTime,
) -> Result<EngineLock, RefreshError> {
    let Some(engine) = deps.engines.labelled(&Labels::of(request)) else {
        return Err(RefreshError::at("dblab.engine", format!("is not one of {}", deps.engines.describe())));
    };
    let endpoint = engine.endpoint();
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
    if outcome.as_deref().is_some_and(|o| o != row::Outcome::Running.as_str()) {
        deps.history.release_lock(&lock.key, &execution.name).await?;
        warn!(engine = %lock.describe(), "the run ended while it was locking its engine: the lock is released again");
        return Err(RefreshError::RunEnded { execution: execution.name.clone() });
    }
    info!(engine = %lock.describe(), "engine lock taken");
    Ok(lock)
}
