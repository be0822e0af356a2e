//! The orphan sweep's policy, shared by the scheduled `delete-clone` sweep and
//! `dblab-refresh cleanup`: which managed clones no run will clean up, and deleting them.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, warn};

use crate::error::RefreshError;
use crate::executions::{ExecutionState, Executions};
use crate::rds::{DeleteGuard, ManagedClone, Rds};
use crate::run::{CloneKind, DeletionStatus};
use crate::tags;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub dry_run: bool,
    pub examined: usize,
    /// Clones deleted (or, in a dry run, that would be).
    pub deleted: Vec<SweepItem>,
    pub kept: Vec<SweepItem>,
    pub errors: Vec<SweepItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepItem {
    pub identifier: String,
    pub kind: CloneKind,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeletionStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep(String),
    Delete(String),
}

/// Whether the sweep deletes a managed clone. `execution` is the state of the execution
/// named in its tags (`None` when it has no such tag). `max_age` only decides for clones
/// whose execution cannot be checked: a running execution's clone lives to DeleteAfter.
pub fn judge(
    clone: &ManagedClone,
    execution: Option<&Result<ExecutionState, String>>,
    now: OffsetDateTime,
    max_age: Option<std::time::Duration>,
) -> Verdict {
    let delete_after =
        tags::get(&clone.tags, tags::DELETE_AFTER_KEY).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    if let Some(limit) = delete_after.filter(|limit| now > *limit) {
        return Verdict::Delete(format!(
            "expired: DeleteAfter {} has passed",
            limit.format(&Rfc3339).unwrap_or_default()
        ));
    }
    let name = tags::get(&clone.tags, tags::EXECUTION_KEY).unwrap_or("unknown");
    let too_old = max_age.zip(clone.created_at).filter(|(age, created)| now - *created > *age);
    if let (Some((age, _)), None | Some(Err(_))) = (too_old, execution) {
        return Verdict::Delete(format!(
            "older than {} and its execution cannot be checked",
            crate::duration::format(age)
        ));
    }
    match execution {
        Some(Ok(ExecutionState::Running)) => Verdict::Keep(format!("execution {name} is still running")),
        Some(Ok(ExecutionState::Ended(status))) => {
            Verdict::Delete(format!("orphaned: execution {name} ended {status}"))
        }
        Some(Ok(ExecutionState::Missing)) => Verdict::Delete(format!("orphaned: execution {name} does not exist")),
        Some(Err(e)) => {
            Verdict::Keep(format!("cannot tell whether execution {name} runs ({e}); kept until DeleteAfter"))
        }
        None if delete_after.is_none() => Verdict::Keep("no DeleteAfter tag and no execution recorded".into()),
        None => Verdict::Keep("no execution recorded; kept until DeleteAfter".into()),
    }
}

/// Examines every managed clone (or one execution's) and deletes those `judge` condemns;
/// a failed deletion is reported, never fatal to the rest.
pub async fn sweep(
    rds: &Rds,
    executions: &Executions,
    dry_run: bool,
    only_execution: Option<&str>,
    max_age: Option<std::time::Duration>,
    now: OffsetDateTime,
) -> Result<SweepReport, RefreshError> {
    let mut clones = rds.managed_clones().await?;
    if let Some(arn) = only_execution {
        clones.retain(|c| tags::get(&c.tags, tags::EXECUTION_ARN_KEY) == Some(arn));
    }
    let mut report =
        SweepReport { dry_run, examined: clones.len(), deleted: Vec::new(), kept: Vec::new(), errors: Vec::new() };
    for clone in clones {
        let execution = match tags::get(&clone.tags, tags::EXECUTION_ARN_KEY) {
            Some(arn) => Some(executions.state(arn).await.map_err(|e| e.to_string())),
            None => None,
        };
        let item = |reason: String, status| SweepItem {
            identifier: clone.identifier.clone(),
            kind: clone.kind,
            reason,
            status,
        };
        match judge(&clone, execution.as_ref(), now, max_age) {
            Verdict::Keep(reason) => report.kept.push(item(reason, None)),
            Verdict::Delete(reason) if dry_run => report.deleted.push(item(reason, None)),
            Verdict::Delete(reason) => {
                match rds.delete(&clone.identifier, clone.kind, DeleteGuard { owner: None }).await {
                    Ok(step) => {
                        let status = if step.gone { DeletionStatus::Deleted } else { DeletionStatus::Deleting };
                        warn!(clone = %clone.identifier, %reason, ?status, "sweep deleted a clone");
                        report.deleted.push(item(reason, Some(status)));
                    }
                    Err(e) => report.errors.push(item(format!("{}: {e}", e.name()), None)),
                }
            }
        }
    }
    info!(
        examined = report.examined,
        deleted = report.deleted.len(),
        kept = report.kept.len(),
        errors = report.errors.len(),
        dry_run,
        "sweep done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 05:00 UTC);

    fn clone(delete_after: Option<&str>) -> ManagedClone {
        let mut tag_list = vec![
            (tags::MANAGED_BY_KEY.to_string(), tags::MANAGED_BY_VALUE.to_string()),
            (tags::EXECUTION_KEY.to_string(), "run-1".to_string()),
        ];
        if let Some(d) = delete_after {
            tag_list.push((tags::DELETE_AFTER_KEY.to_string(), d.to_string()));
        }
        ManagedClone {
            identifier: "dblab-refresh-x-20261122-000000".into(),
            kind: CloneKind::Instance,
            status: "available".into(),
            created_at: None,
            tags: tag_list,
        }
    }

    #[test]
    fn expired_clones_go_even_if_their_run_is_alive() {
        let v = judge(&clone(Some("2026-11-22T04:00:00Z")), Some(&Ok(ExecutionState::Running)), NOW, None);
        assert!(matches!(v, Verdict::Delete(r) if r.starts_with("expired")));
    }

    #[test]
    fn a_running_execution_keeps_its_clone() {
        let v = judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Ok(ExecutionState::Running)), NOW, None);
        assert!(matches!(v, Verdict::Keep(_)));
    }

    #[test]
    fn ended_or_missing_executions_orphan_their_clone() {
        let ended =
            judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Ok(ExecutionState::Ended("ABORTED".into()))), NOW, None);
        assert!(matches!(ended, Verdict::Delete(r) if r.contains("ABORTED")));
        let missing = judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Ok(ExecutionState::Missing)), NOW, None);
        assert!(matches!(missing, Verdict::Delete(_)));
    }

    #[test]
    fn max_age_decides_only_where_the_run_cannot_be_checked() {
        let mut old = clone(Some("2026-11-24T00:00:00Z"));
        old.created_at = Some(NOW - time::Duration::hours(13));
        let twelve = Some(std::time::Duration::from_secs(12 * 3_600));
        assert!(matches!(judge(&old, Some(&Err("AccessDenied".into())), NOW, twelve), Verdict::Delete(_)));
        assert!(matches!(judge(&old, None, NOW, twelve), Verdict::Delete(_)));
        assert!(
            matches!(judge(&old, Some(&Ok(ExecutionState::Running)), NOW, twelve), Verdict::Keep(_)),
            "never a live run's clone"
        );
        assert!(matches!(judge(&old, None, NOW, Some(std::time::Duration::from_secs(14 * 3_600))), Verdict::Keep(_)));
    }

    #[test]
    fn doubt_keeps_the_clone() {
        let v = judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Err("AccessDenied".into())), NOW, None);
        assert!(matches!(v, Verdict::Keep(_)));
        assert!(matches!(judge(&clone(None), None, NOW, None), Verdict::Keep(_)));
        assert!(matches!(judge(&clone(Some("garbage")), None, NOW, None), Verdict::Keep(_)));
    }
}
