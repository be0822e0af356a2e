//! `delete-clone`: deletes the run's clone, one step per call (Aurora: member instances,
//! then the cluster once they are gone), refusing anything that is not provably ours.
//! - `delete`: the clone in the state (the success path), and the snapshot it was
//!   restored from when the run copied one in;
//! - `purge`: every managed clone (and local snapshot copy) tagged with this execution, whether or not it reached
//!   the state (the failure path: a restore may fail after RDS accepted it);
//! - `sweep`: every managed clone that is expired or whose execution has ended (the
//!   schedule, and the clean-up after an aborted or timed-out execution); the policy is
//!   `refresh_core::sweep`, which `dblab-refresh cleanup` runs too.

use refresh_core::RefreshError;
use refresh_core::executions::Executions;
use refresh_core::rds::{DeleteGuard, ManagedClone, Rds};
use refresh_core::run::{CloneInstance, CloneKind, Deletion, DeletionStatus, Execution, Stop};
pub use refresh_core::sweep::SweepReport;
use refresh_core::tags;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub rds: Rds,
    pub executions: Executions,
    /// The longest a Lambda call can last (the longest function timeout, and a margin): a
    /// stopped run's call still in flight may create a clone until then.
    pub longest_call: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase", deny_unknown_fields)]
pub enum Input {
    /// Delete this run's clone. `deletion` is the previous call's result, if any.
    #[serde(rename_all = "camelCase")]
    Delete {
        execution: Execution,
        clone: Box<CloneInstance>,
        #[serde(default)]
        deletion: Option<Deletion>,
        /// `clone.deletionTimeout`; without it, `DEFAULT_TIMEOUT`.
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
    /// Delete every clone of this execution. `deletion` is the previous call's result;
    /// `stop`, for a stopped run, when it was stopped.
    #[serde(rename_all = "camelCase")]
    Purge {
        execution: Execution,
        #[serde(default)]
        deletion: Option<Deletion>,
        #[serde(default)]
        stop: Option<Stop>,
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
    /// Delete managed clones that no run will clean up. `executionArn` limits the sweep to
    /// one execution's clones (the clean-up after an aborted or timed-out execution).
    #[serde(rename_all = "camelCase")]
    Sweep {
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        execution_arn: Option<String>,
        /// Also delete clones older than this (`12h`) whose execution cannot be checked.
        #[serde(default)]
        max_age: Option<String>,
    },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output {
    Deletion(Deletion),
    Sweep(SweepReport),
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Output, RefreshError> {
    let now = OffsetDateTime::now_utc();
    match input {
        Input::Delete { execution, clone, deletion, timeout_seconds } => {
            let guard = DeleteGuard { owner: Some((&execution.name, execution.arn.as_deref())) };
            let mut step = deps.rds.delete(&clone.identifier, clone.kind, guard).await?;
            // The snapshot copied in for it goes with it: nothing else needs it.
            if let Some(copy) = &clone.copy {
                let copy_step = deps.rds.delete(&copy.identifier, CloneKind::SnapshotCopy, guard).await?;
                step.deleted.extend(copy_step.deleted);
                step.gone &= copy_step.gone;
            }
            let result = progress(deletion, &clone.identifier, step.deleted, step.gone, timeout(timeout_seconds), now);
            info!(clone = %clone.identifier, status = ?result.status, deleted = ?result.deleted, "deletion step done");
            Ok(Output::Deletion(result))
        }
        Input::Purge { execution, deletion, stop, timeout_seconds } => {
            purge(deps, &execution, deletion, stop.as_ref(), timeout(timeout_seconds), now).await.map(Output::Deletion)
        }
        Input::Sweep { dry_run, execution_arn, max_age } => {
            let max_age = max_age
                .map(|text| {
                    refresh_core::duration::parse(&text).map_err(|e| RefreshError::InvalidInput(format!("maxAge: {e}")))
                })
                .transpose()?;
            sweep(deps, dry_run, execution_arn.as_deref(), max_age, now).await.map(Output::Sweep)
        }
    }
}

/// How long a deletion is followed when the state machine does not say (a run that began
/// before `clone.deletionTimeout` existed, or the clean-up of a stopped run).
pub const DEFAULT_TIMEOUT: Duration = refresh_core::request::fields::CLONE_DELETION_TIMEOUT.default_period();

fn timeout(seconds: Option<u64>) -> Duration {
    seconds.map_or(DEFAULT_TIMEOUT, Duration::from_secs)
}

/// The next deletion state: checks counted and deleted resources accumulated over calls;
/// still deleting once `timeout` has passed since the first step is `timed_out`.
fn progress(
    previous: Option<Deletion>,
    identifier: &str,
    deleted_now: Vec<String>,
    gone: bool,
    timeout: Duration,
    now: OffsetDateTime,
) -> Deletion {
    let requested_at = previous.as_ref().map_or(now, Deletion::started_at);
    let (mut deleted, checks) = previous.map_or((Vec::new(), 0), |p| (p.deleted, p.checks));
    for id in deleted_now {
        if !deleted.contains(&id) {
            deleted.push(id);
        }
    }
    Deletion {
        identifier: identifier.to_string(),
        status: match (gone, now - requested_at >= timeout) {
            (true, _) => DeletionStatus::Deleted,
            (false, true) => DeletionStatus::TimedOut,
            (false, false) => DeletionStatus::Deleting,
        },
        deleted,
        checks: checks + 1,
        checked_at: now,
        requested_at: Some(requested_at),
    }
}

async fn purge(
    deps: &Deps,
    execution: &Execution,
    previous: Option<Deletion>,
    stop: Option<&Stop>,
    timeout: Duration,
    now: OffsetDateTime,
) -> Result<Deletion, RefreshError> {
    let mine: Vec<ManagedClone> = deps
        .rds
        .managed_clones()
        .await?
        .into_iter()
        .filter(|c| tags::made_by(&c.tags, &execution.name, execution.arn.as_deref()))
        .collect();
    let guard = DeleteGuard { owner: Some((&execution.name, execution.arn.as_deref())) };
    let mut deleted = Vec::new();
    let mut all_gone = true;
    for clone in &mine {
        let step = deps.rds.delete(&clone.identifier, clone.kind, guard).await?;
        deleted.extend(step.deleted);
        all_gone &= step.gone;
    }
    let found: Vec<&str> = mine.iter().map(|c| c.identifier.as_str()).collect();
    let names = found_so_far(previous.as_ref(), &found);
    // A call the stopped run had in flight (a restore) may still create a clone: nothing
    // is over before that call is.
    let quiet = stop.is_none_or(|s| now >= s.quiet_from(deps.longest_call));
    let result = progress(previous, &names, deleted, all_gone && quiet, timeout, now);
    info!(found = ?found, quiet, status = ?result.status, deleted = ?result.deleted, "purge step done");
    Ok(result)
}

/// Every clone a purge has found over its calls, not only this call's: the last call finds
/// nothing left, and the run's row must still name what was deleted.
fn found_so_far(previous: Option<&Deletion>, found_now: &[&str]) -> String {
    let mut names: Vec<&str> =
        previous.map(|p| p.identifier.split(", ").filter(|n| !n.is_empty()).collect()).unwrap_or_default();
    for name in found_now {
        if !names.contains(name) {
            names.push(name);
        }
    }
    names.join(", ")
}

async fn sweep(
    deps: &Deps,
    dry_run: bool,
    only_execution: Option<&str>,
    max_age: Option<std::time::Duration>,
    now: OffsetDateTime,
) -> Result<SweepReport, RefreshError> {
    refresh_core::sweep::sweep(&deps.rds, &deps.executions, dry_run, only_execution, max_age, now).await
}
