//! The run's end: its outcome row (once), its locks released, the fleet's item and the
//! run's metrics.

use refresh_core::RefreshError;
use refresh_core::history::{self, RowWrite};
use refresh_core::metrics;
use refresh_core::request::Labels;
use refresh_core::row::RunSummary;
use refresh_core::run::RunState;
use refresh_core::summary;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::Deps;

pub(crate) async fn finish(deps: &Deps, state: &RunState, now: OffsetDateTime) -> Result<RunSummary, RefreshError> {
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
        if let Some(target) = Labels::of(&state.request).target() {
            deps.history.release_lock(target, &execution.name).await?;
        }
        // The lock LockEngine reported; or, if its answer was lost, the one it would have taken.
        let engine_lock = state.engine_lock.clone().or_else(|| {
            let engine = deps.engines.labelled(&Labels::of(&state.request))?;
            history::engine_lock(state.snapshot.as_ref()?.engine_instance_id.as_deref(), engine.endpoint())
        });
        if let Some(lock) = engine_lock {
            deps.history.release_lock(&lock.key, &execution.name).await?;
        }
    }
    // A run that started (it took the lock) is its target's latest; one refused at its
    // start, or invalid, leaves the fleet as it was.
    if state.run.is_some() {
        let max_age = Labels::of(&state.request).freshness_max_age().unwrap_or(deps.freshness_default);
        match deps.history.fleet_finished(&summary, max_age, now).await {
            Ok(Some(target)) if first => deps.metrics.emit(&metrics::freshness(&deps.metrics_namespace, &target, now)),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "the fleet item was not updated"),
        }
        if let Some(line) = metrics::clone_hours(&deps.metrics_namespace, &summary, now).filter(|_| first) {
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
