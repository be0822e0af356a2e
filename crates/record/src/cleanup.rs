//! For the clean-up machine: whether an ended run recorded itself, and a stopped run's
//! state completed from its own execution history.

use refresh_core::RefreshError;
use refresh_core::history;
use refresh_core::request::Labels;
use refresh_core::row;
use refresh_core::run::{Execution, RunState};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::{Deps, RunStatus};

pub(crate) async fn status(
    deps: &Deps,
    execution: &Execution,
    request: &Value,
    now: OffsetDateTime,
) -> Result<RunStatus, RefreshError> {
    // A request without a valid target has its row apart, as `finish` wrote it.
    let target = Labels::of(request).target().unwrap_or(history::NO_TARGET);
    let started_at = execution.started_at.unwrap_or(now);
    let outcome = deps.history.run_outcome(target, &execution.name, started_at).await?;
    let recorded = outcome.as_deref().is_some_and(|o| o != row::Outcome::Running.as_str());
    info!(target, recorded, outcome = ?outcome, "run status read");
    Ok(RunStatus { recorded, outcome })
}

/// The input an ended execution was started with, as Step Functions keeps it.
pub(crate) async fn read_input(deps: &Deps, arn: &str) -> Result<String, RefreshError> {
    let started = deps.executions.started(arn).await?;
    let input = started
        .and_then(|s| s.input)
        .ok_or_else(|| RefreshError::Internal(format!("execution {arn} has no input to read (its history is gone)")))?;
    info!(bytes = input.len(), "ended run's input read from DescribeExecution");
    Ok(input)
}

pub(crate) async fn recover(deps: &Deps, state: RunState) -> Result<Value, RefreshError> {
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
