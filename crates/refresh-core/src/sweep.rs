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
pub(crate) enum Verdict {
    Keep(String),
    Delete(String),
}

/// Whether the sweep deletes a managed clone: only when its execution (named in its tags)
/// is confirmed ended, never on a guess. A running execution's clone stays even past its
/// DeleteAfter (the run's own timeouts and clean-up end it); a clone whose execution
/// cannot be checked (throttling, access denied, a wrong region, no execution tag) is
/// skipped, with the reason. `max_age` narrows the sweep to clones older than that.
pub(crate) fn judge(
    clone: &ManagedClone,
    execution: Option<&Result<ExecutionState, String>>,
    now: OffsetDateTime,
    max_age: Option<std::time::Duration>,
) -> Verdict {
    let name = tags::get(&clone.tags, tags::EXECUTION_KEY).unwrap_or("(no execution tag)");
    if let Some(age) = max_age
        && clone.created_at.is_none_or(|created| now - created <= age)
    {
        return Verdict::Keep(format!("not older than {}", crate::duration::format(age)));
    }
    let delete_after =
        tags::get(&clone.tags, tags::DELETE_AFTER_KEY).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let why = match delete_after.filter(|limit| now > *limit) {
        Some(limit) => format!("expired (DeleteAfter {})", limit.format(&Rfc3339).unwrap_or_default()),
        None => "orphaned".to_string(),
    };
    match execution {
        Some(Ok(ExecutionState::Running)) if why == "orphaned" => {
            Verdict::Keep(format!("execution {name} is still running"))
        }
        Some(Ok(ExecutionState::Running)) => {
            Verdict::Keep(format!("{why}, but execution {name} is still running: its own timeouts and clean-up end it"))
        }
        Some(Ok(ExecutionState::Ended(status))) => Verdict::Delete(format!("{why}: execution {name} ended {status}")),
        Some(Ok(ExecutionState::Missing)) => Verdict::Delete(format!("{why}: execution {name} does not exist")),
        Some(Err(e)) => Verdict::Keep(format!("skipped: cannot tell whether execution {name} runs ({e})")),
        None => {
            Verdict::Keep("skipped: no execution recorded on the clone, so its run cannot be confirmed ended".into())
        }
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
            Verdict::Keep(reason) => {
                if reason.starts_with("skipped") {
                    warn!(clone = %clone.identifier, %reason, "sweep skipped a clone");
                }
                report.kept.push(item(reason, None));
            }
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
    fn an_expired_clone_of_a_running_execution_stays() {
        let v = judge(&clone(Some("2026-11-22T04:00:00Z")), Some(&Ok(ExecutionState::Running)), NOW, None);
        assert!(matches!(v, Verdict::Keep(r) if r.contains("still running")));
    }

    #[test]
    fn a_running_execution_keeps_its_clone() {
        let v = judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Ok(ExecutionState::Running)), NOW, None);
        assert!(matches!(v, Verdict::Keep(_)));
    }

    #[test]
    fn ended_or_missing_executions_release_their_clone() {
        let ended =
            judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Ok(ExecutionState::Ended("ABORTED".into()))), NOW, None);
        assert!(matches!(ended, Verdict::Delete(r) if r.starts_with("orphaned") && r.contains("ABORTED")));
        let missing = judge(&clone(Some("2026-11-24T00:00:00Z")), Some(&Ok(ExecutionState::Missing)), NOW, None);
        assert!(matches!(missing, Verdict::Delete(_)));
        let expired = judge(&clone(Some("2026-11-22T04:00:00Z")), Some(&Ok(ExecutionState::Missing)), NOW, None);
        assert!(matches!(expired, Verdict::Delete(r) if r.starts_with("expired")));
    }

    #[test]
    fn doubt_keeps_the_clone_whatever_its_age() {
        let twelve = Some(std::time::Duration::from_secs(12 * 3_600));
        let mut old = clone(Some("2026-11-21T00:00:00Z"));
        old.created_at = Some(NOW - time::Duration::hours(13));
        for doubt in ["ThrottlingException: Rate exceeded", "AccessDeniedException: not authorized", "wrong region"] {
            let v = judge(&old, Some(&Err(doubt.into())), NOW, twelve);
            assert!(matches!(&v, Verdict::Keep(r) if r.starts_with("skipped") && r.contains(doubt)), "{v:?}");
        }
        assert!(matches!(judge(&old, None, NOW, twelve), Verdict::Keep(r) if r.starts_with("skipped")));
    }

    #[test]
    fn max_age_only_narrows_the_sweep() {
        let mut young = clone(Some("2026-11-24T00:00:00Z"));
        young.created_at = Some(NOW - time::Duration::hours(2));
        let twelve = Some(std::time::Duration::from_secs(12 * 3_600));
        let ended = Ok(ExecutionState::Ended("FAILED".into()));
        assert!(matches!(judge(&young, Some(&ended), NOW, twelve), Verdict::Keep(_)));
        young.created_at = Some(NOW - time::Duration::hours(13));
        assert!(matches!(judge(&young, Some(&ended), NOW, twelve), Verdict::Delete(_)));
        assert!(matches!(judge(&young, Some(&Ok(ExecutionState::Running)), NOW, twelve), Verdict::Keep(_)));
    }

    #[test]
    fn the_verdicts_say_exactly_why() {
        let running = Ok(ExecutionState::Running);
        // Not past DeleteAfter (even at the very instant): orphaned, and kept for its running execution.
        assert_eq!(
            judge(&clone(Some("2026-11-22T05:00:00Z")), Some(&running), NOW, None),
            Verdict::Keep("execution run-1 is still running".into())
        );
        assert_eq!(
            judge(&clone(Some("2026-11-22T04:59:59Z")), Some(&running), NOW, None),
            Verdict::Keep(
                "expired (DeleteAfter 2026-11-22T04:59:59Z), but execution run-1 is still running: its own timeouts \
                 and clean-up end it"
                    .into()
            )
        );
        assert_eq!(
            judge(&clone(Some("2026-11-22T05:00:00Z")), Some(&Ok(ExecutionState::Missing)), NOW, None),
            Verdict::Delete("orphaned: execution run-1 does not exist".into())
        );
        assert_eq!(
            judge(&clone(None), Some(&Ok(ExecutionState::Ended("TIMED_OUT".into()))), NOW, None),
            Verdict::Delete("orphaned: execution run-1 ended TIMED_OUT".into())
        );
        let mut untagged = clone(None);
        untagged.tags.retain(|(k, _)| k != tags::EXECUTION_KEY);
        assert_eq!(
            judge(&untagged, Some(&Err("boom".into())), NOW, None),
            Verdict::Keep("skipped: cannot tell whether execution (no execution tag) runs (boom)".into())
        );
    }

    #[test]
    fn max_age_counts_from_the_clones_creation_and_keeps_one_of_unknown_age() {
        let twelve = Some(std::time::Duration::from_secs(12 * 3_600));
        let ended = Ok(ExecutionState::Ended("FAILED".into()));
        let mut c = clone(None);
        c.created_at = Some(NOW - time::Duration::hours(12));
        assert_eq!(judge(&c, Some(&ended), NOW, twelve), Verdict::Keep("not older than 12h".into()), "exactly its age");
        c.created_at = Some(NOW - time::Duration::hours(12) - time::Duration::seconds(1));
        assert!(matches!(judge(&c, Some(&ended), NOW, twelve), Verdict::Delete(_)));
        c.created_at = None;
        assert!(
            matches!(judge(&c, Some(&ended), NOW, twelve), Verdict::Keep(_)),
            "no creation time: not known to be old"
        );
        assert!(matches!(judge(&c, Some(&ended), NOW, None), Verdict::Delete(_)), "no max age: age does not matter");
    }
}
