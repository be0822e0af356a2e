//! The hourly schedule: every target's freshness as metrics, so a target that stopped
//! running altogether still goes stale; and the runs that ended without their clean-up
//! (EventBridge delivers the ended-run events best effort) have it started.

use refresh_core::RefreshError;
use refresh_core::fleet::TargetState;
use refresh_core::metrics;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::{Deps, FreshnessReport};

/// Every target's freshness metrics, then the clean-ups no event started (the hourly schedule).
pub(crate) async fn freshness(deps: &Deps, now: OffsetDateTime) -> Result<FreshnessReport, RefreshError> {
    let fleet = deps.history.fleet().await?;
    let mut stale = Vec::new();
    for state in &fleet {
        deps.metrics.emit(&metrics::freshness(&deps.metrics_namespace, state, now));
        if state.stale(now) {
            stale.push(state.target.clone());
        }
    }
    deps.metrics.emit(&metrics::freshness_pass(&deps.metrics_namespace, now));
    info!(targets = fleet.len(), stale = ?stale, "freshness metrics emitted");
    // One target that cannot be checked does not keep the others from theirs; the pass
    // still fails (and alarms) once all were tried.
    let mut cleanups_started = Vec::new();
    let mut failed = None;
    for state in &fleet {
        match start_missed_cleanup(deps, state, now).await {
            Ok(Some(name)) => cleanups_started.push(name),
            Ok(None) => {}
            Err(e) => {
                warn!(target = %state.target, error = %e, "could not check the run in progress");
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(FreshnessReport { targets: fleet.len(), stale, cleanups_started }),
    }
}

/// A target whose run still shows as running although its execution ended longer ago than
/// a clean-up takes: the event that starts the clean-up never came. The clean-up machine
/// is started for it, under the run's own clean-up name, so never twice.
async fn start_missed_cleanup(
    deps: &Deps,
    state: &TargetState,
    now: OffsetDateTime,
) -> Result<Option<String>, RefreshError> {
    let Some(running) = &state.running else { return Ok(None) };
    let Some(arn) = &running.execution_arn else {
        warn!(target = %state.target, execution = %running.execution_name, "a running run without its ARN cannot be checked");
        return Ok(None);
    };
    let Some(ended) = deps.executions.ended(arn).await? else { return Ok(None) };
    if now - ended.stopped_at < deps.cleanup_after {
        return Ok(None);
    }
    let started = deps.executions.start_cleanup(&deps.cleanup_machine_arn, &ended).await?;
    warn!(
        target = %state.target, execution = %ended.name, status = %ended.status, started,
        "a run ended without its clean-up: clean-up started"
    );
    Ok(started.then(|| ended.name.clone()))
}
