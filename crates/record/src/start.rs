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

/// Time beyond the longest run before its lock expires by itself (recording, notifying).
const LOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(3_600);

pub(crate) async fn start(
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

pub(crate) async fn lock_engine(
    deps: &Deps,
    execution: &Execution,
    request: &Value,
    run: &RunStart,
    snapshot: &RestoreSource,
    now: OffsetDateTime,
) -> Result<EngineLock, RefreshError> {
    let endpoint = Labels::of(request).dblab_endpoint().unwrap_or_default();
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
