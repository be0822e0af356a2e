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
    // A skipped duplicate sends no email, by design.
    let notified = outcome.as_deref() == Some(row::Outcome::Skipped.as_str())
        || deps.history.notification_sent_already(&execution.name).await?;
    info!(target, recorded, notified, outcome = ?outcome, "run status read");
    Ok(RunStatus { recorded, notified, outcome })
}

/// The input an ended execution was started with, as Step Functions keeps it. An input
/// past the request's bound (which validation refused, and the run recorded under its
/// target) comes back as its target alone: whole, it could pass the clean-up's own 256 KB.
pub(crate) async fn read_input(deps: &Deps, arn: &str) -> Result<String, RefreshError> {
    let started = deps.executions.started(arn).await?;
    let input = started
        .and_then(|s| s.input)
        .ok_or_else(|| RefreshError::Internal(format!("execution {arn} has no input to read (its history is gone)")))?;
    info!(bytes = input.len(), "ended run's input read from DescribeExecution");
    if input.len() <= refresh_core::request::MAX_REQUEST_BYTES {
        return Ok(input);
    }
    let target = serde_json::from_str::<Value>(&input).ok().and_then(|v| v.get("target").cloned());
    let kept = match target {
        Some(Value::String(t)) if t.len() <= 256 => serde_json::json!({ "target": t }),
        _ => serde_json::json!({}),
    };
    warn!(bytes = input.len(), "an oversized input: only its target is passed on");
    Ok(kept.to_string())
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
