//! What a run amounts to: the history row (`row::RunSummary`) derived from the execution
//! state alone, so `record` and `notify` tell the same story.

use time::OffsetDateTime;

use crate::dblab::{EngineIdentity, Refresh, RefreshFailure, RefreshPhase, RetrievalStatus};
use crate::error::names;
use crate::poll::PollStatus;
use crate::request::{Labels, SourceMode};
use crate::row::{ErrorSummary, Outcome, Phase, RunSummary};
use crate::run::{CloneInstance, Deletion, DeletionStatus, RestoreSource, RunState};

/// When the clone stopped being needed: the first deletion step, after the dump or after
/// the refresh.
fn deletion_began(state: &RunState, deletion: &Deletion) -> OffsetDateTime {
    let late = deletion.started_at();
    state.early_deletion.as_ref().map_or(late, |early| early.started_at().min(late))
}

/// How long the clone lived, from its request, and what RDS bills of that.
fn record_lifetime(summary: &mut RunSummary, clone: &CloneInstance, ended: OffsetDateTime) {
    summary.clone_lifetime_seconds = Some((ended - clone.requested_at).whole_seconds());
    summary.clone_billed_seconds = Some(billed_seconds(clone, ended));
}

/// RDS bills a clone from `available`, at least ten minutes; one never available, not at all.
fn billed_seconds(clone: &CloneInstance, ended: OffsetDateTime) -> i64 {
    clone.ready_at.map_or(0, |ready| (ended - ready).whole_seconds().max(crate::cost::MINIMUM_BILLED_SECONDS))
}

/// The clone, once RDS was asked for it: not while its snapshot was still being copied in.
fn asked_clone(state: &RunState) -> Option<&CloneInstance> {
    state.clone.as_ref().filter(|c| !c.waiting_for_copy())
}

/// The row written when a run starts.
pub fn running(state: &RunState, now: OffsetDateTime) -> RunSummary {
    let mut summary = base(state, now);
    summary.cleanup = "run in progress".into();
    summary
}

fn base(state: &RunState, now: OffsetDateTime) -> RunSummary {
    let execution = state.execution.as_ref();
    let labels = Labels::of(&state.request);
    RunSummary {
        target: labels.target().map(str::to_string),
        invalid_target: labels.invalid_target(),
        execution_name: execution.map_or_else(|| "unknown".to_string(), |e| e.name.clone()),
        execution_arn: execution.and_then(|e| e.arn.clone()),
        outcome: Outcome::Running,
        started_at: state
            .run
            .as_ref()
            .map(|r| r.started_at)
            .or_else(|| execution.and_then(|e| e.started_at))
            .unwrap_or(now),
        finished_at: None,
        source_type: labels.source_type().map(str::to_string),
        source_identifier: labels.source_identifier().map(str::to_string),
        source_mode: state.snapshot.as_ref().map(|s| s.mode.as_str().to_string()),
        snapshot_identifier: state
            .snapshot
            .as_ref()
            .filter(|s| s.mode == SourceMode::Snapshot)
            .map(|s| s.identifier.clone()),
        restored_from: state.snapshot.as_ref().map(RestoreSource::describe),
        data_as_of: data_as_of(state),
        clone_identifier: asked_clone(state).map(|c| c.identifier.clone()),
        clone_class: asked_clone(state).map(|c| c.instance_class.clone()),
        clone_storage_type: asked_clone(state).and_then(|c| c.storage_type.clone()),
        copy_identifier: state.clone.as_ref().and_then(|c| c.copy.as_ref()).map(|c| c.identifier.clone()),
        copy_gb: state.clone.as_ref().and_then(|c| c.copy.as_ref()).and_then(|c| c.allocated_gb),
        copy_lifetime_seconds: None,
        engine_version: state.refresh.as_ref().and_then(|r| r.engine.as_ref()).map(EngineIdentity::describe),
        engine_lock: state.engine_lock.as_ref().map(crate::run::EngineLock::describe),
        engine_snapshot: state.refresh.as_ref().and_then(|r| r.snapshot.as_ref()).map(|s| s.id.clone()),
        engine_data_state_at: state
            .refresh
            .as_ref()
            .and_then(|r| r.snapshot.as_ref())
            .and_then(|s| s.data_state_at.clone()),
        ignored_errors: state.refresh.as_ref().and_then(|r| r.ignored_errors.clone()),
        unproven: state.refresh.as_ref().and_then(|r| r.unproven.clone()),
        engine_pool_emptied: None,
        clone_lifetime_seconds: None,
        clone_billed_seconds: None,
        clone_deleted_after_dump: false,
        phases: Vec::new(),
        error: None,
        cleanup: String::new(),
        clone_left_behind: false,
        cost: None,
        duplicate_of: None,
    }
}

/// The row of a duplicate start: the same request started again while `original` runs it
/// (a Scheduler retry after a lost answer, a double click). Nothing was created.
pub fn skipped(state: &RunState, original: &str, original_started: OffsetDateTime, now: OffsetDateTime) -> RunSummary {
    let mut summary = base(state, now);
    summary.outcome = Outcome::Skipped;
    summary.finished_at = Some(now);
    summary.duplicate_of = Some(original.to_string());
    summary.cleanup = format!(
        "skipped: duplicate of {original} (started {} with the same request); nothing was created",
        crate::clock::rfc3339(original_started)
    );
    summary
}

/// When the data is from: the snapshot's time or the restore time; a fast clone's data is
/// of the moment it was requested.
fn data_as_of(state: &RunState) -> Option<OffsetDateTime> {
    let from = state.snapshot.as_ref()?;
    match (from.mode, &state.clone) {
        (SourceMode::FastClone, Some(clone)) => Some(clone.requested_at),
        (SourceMode::FastClone, None) => None,
        _ => Some(from.data_as_of),
    }
}

/// The final row: outcome, error, phases and what became of the clone.
pub fn finished(state: &RunState, now: OffsetDateTime) -> RunSummary {
    let mut summary = base(state, now);
    summary.finished_at = Some(now);
    summary.error = failure(state);
    let refreshed = state.refresh.as_ref().is_some_and(|r| r.status == PollStatus::Ready);
    summary.outcome = if summary.error.is_none() && refreshed { Outcome::Succeeded } else { Outcome::Failed };
    if summary.outcome == Outcome::Failed && summary.error.is_none() {
        summary.error = Some(ErrorSummary {
            name: names::INCOMPLETE.into(),
            message: "the run ended before the refresh finished, without an error".into(),
            state: state.failed_state.clone(),
        });
    }
    summary.phases = phases(state, summary.started_at);
    summary.engine_pool_emptied = state.refresh.as_ref().and_then(pool_emptied);
    describe_cleanup(state, &mut summary);
    if let Some(e) = &state.cleanup_error {
        summary.cleanup.push_str(&format!(" (the clean-up failed: {}: {})", e.error, e.message()));
    }
    summary
}

/// A refresh the engine itself failed empties the pool it was refreshing (retrieval.go
/// `RefreshData` and `SnapshotData`): its snapshots leave `/snapshots` and no clone can be
/// made from it until the engine's next pool reload (its next config change: the next run),
/// which shows whatever is on disk. After a failed snapshot job that is the restored data;
/// otherwise it depends on where the failure was, which the last look does not tell (it may
/// have come after it): the old data if the dump failed, part of the new or none once the
/// restore began (restore.go `Run` cleans the data directory, then marks each database),
/// partly overwritten data under immediateRestore.
fn pool_emptied(refresh: &Refresh) -> Option<String> {
    let pool = refresh.pool.as_deref()?;
    let engine_failed = refresh.status == PollStatus::Failed
        && refresh.seen_start
        && refresh.retrieval_status == RetrievalStatus::Failed
        && refresh.failure.is_none();
    if !engine_failed {
        return None;
    }
    let until = match refresh.phase {
        Some(RefreshPhase::Snapshot) => {
            "until the engine reloads its pools at its next config change (the next run): the snapshot job failed \
             after the restore, and the restored data is on disk, with no snapshot of it"
        }
        seen => &*format!(
            "until the engine reloads its pools at its next config change (the next run), which shows what the \
             failure left on disk: the old data if the dump failed, part of the new data or none if the restore \
             had begun (the last look saw {}); only a successful refresh is sure to bring the data back",
            seen.map_or("no job running", RefreshPhase::describe)
        ),
    };
    Some(format!(
        "the engine's failed refresh emptied pool {pool}: its snapshots are not listed and no clone can be made from \
         it {until}; clones already open on other pools are unaffected"
    ))
}

/// What became of the clone, said plainly: deleted, still deleting, left behind, or never
/// made. A clone is named from the state or, when it never reached the state (a restore
/// that failed after RDS accepted it, a stopped run), from what the purge found.
fn describe_cleanup(state: &RunState, summary: &mut RunSummary) {
    let deletion = state.deletion.as_ref();
    let found = deletion.map(|d| d.identifier.as_str()).filter(|ids| !ids.is_empty());
    if state.clone.is_none() {
        summary.clone_identifier = found.map(str::to_string);
        // Made by this run's restore, from this request: of the class it asked for.
        if found.is_some() {
            summary.clone_class = Labels::of(&state.request).clone_class().map(str::to_string);
        }
    }
    let copy = state.clone.as_ref().and_then(|c| c.copy.as_ref());
    let named = match (&summary.clone_identifier, copy) {
        (Some(ids), Some(_)) => Some(format!("clone {ids} and its snapshot copy")),
        (Some(ids), None) => Some(format!("clone {ids}")),
        (None, Some(copy)) => Some(format!("snapshot copy {} (no clone was asked for)", copy.identifier)),
        (None, None) => None,
    };
    if let (Some(copy), Some(d)) = (copy, deletion.filter(|d| d.status != DeletionStatus::Deleting)) {
        summary.copy_lifetime_seconds = Some((deletion_began(state, d) - copy.requested_at).whole_seconds());
    }
    match (deletion, named) {
        (Some(d), Some(named)) if d.status == DeletionStatus::Deleted => {
            // Its life ends when the first deletion step is taken: after the dump, or after the refresh.
            let early = state.early_deletion.as_ref().map(Deletion::started_at);
            summary.clone_deleted_after_dump = early.is_some();
            summary.cleanup = match (early, &state.early_deletion_error) {
                (Some(_), _) => format!("{named} deleted once the dump was over"),
                (None, Some(e)) => format!(
                    "{named} deleted after the refresh: deleting it once the dump was over failed ({}: {})",
                    e.error,
                    e.message()
                ),
                (None, None) => format!("{named} deleted"),
            };
            if let Some(clone) = asked_clone(state) {
                record_lifetime(summary, clone, deletion_began(state, d));
            }
        }
        (Some(d), None) if d.status == DeletionStatus::Deleted => {
            summary.cleanup = "nothing to clean up: no clone was created".into();
        }
        // Asked to go, but slower than clone.deletionTimeout: the refresh's outcome stands.
        (Some(d), Some(named)) if d.status == DeletionStatus::TimedOut => {
            summary.cleanup =
                format!("{named} still deleting when clone.deletionTimeout ran out; the orphan sweep will finish it");
            summary.clone_left_behind = true;
            if let Some(clone) = asked_clone(state) {
                record_lifetime(summary, clone, deletion_began(state, d));
            }
        }
        // Without a snapshot, restore never ran; without a clean-up error, nothing was missed.
        (None, None) if state.snapshot.is_none() && state.cleanup_error.is_none() => {
            summary.cleanup = "nothing to clean up: no clone was created".into();
        }
        (_, Some(named)) => {
            summary.cleanup = match &state.deletion_error {
                Some(e) => format!(
                    "{named} LEFT BEHIND: deleting it after the refresh failed ({}: {}); the hourly orphan sweep will \
                     delete it, or delete it by hand",
                    e.error,
                    e.message()
                ),
                None => format!(
                    "{named} left behind: its deletion was not confirmed; the orphan sweep will delete it, or delete \
                     it by hand"
                ),
            };
            summary.clone_left_behind = true;
        }
        (_, None) => {
            summary.cleanup = "any clone of this run may be left behind: its deletion was not confirmed; the orphan \
                               sweep will delete it, or delete it by hand"
                .into();
            summary.clone_left_behind = true;
        }
    }
}

fn failure(state: &RunState) -> Option<ErrorSummary> {
    if let Some(caught) = &state.error {
        return Some(ErrorSummary {
            name: caught.error.clone(),
            message: caught.message(),
            state: state.failed_state.clone(),
        });
    }
    let derived = |name: &str, message: String| {
        Some(ErrorSummary { name: name.into(), message, state: state.failed_state.clone() })
    };
    if let Some(clone) = &state.clone
        && let Some(copy) = clone.copy.as_ref().filter(|_| clone.waiting_for_copy())
    {
        let what = format!("the copy {} of shared snapshot {} into this account", copy.identifier, copy.copy_of);
        match clone.status {
            PollStatus::Failed => {
                return derived(names::CLONE_FAILED, format!("{what} ended in RDS status {:?}", copy.status));
            }
            PollStatus::TimedOut => {
                let progress = copy.percent.map(|p| format!(", {p}% done")).unwrap_or_default();
                return derived(
                    names::CLONE_TIMED_OUT,
                    format!(
                        "{what} was not available by its deadline (clone.restoreTimeout; last status {:?}{progress}): \
                         no clone was asked for",
                        copy.status
                    ),
                );
            }
            PollStatus::Pending | PollStatus::Ready | PollStatus::Copied => {}
        }
    }
    if let Some(clone) = asked_clone(state) {
        match clone.status {
            PollStatus::Failed => {
                return derived(
                    names::CLONE_FAILED,
                    format!("clone {} ended in RDS status {:?}", clone.identifier, clone.rds_status),
                );
            }
            PollStatus::TimedOut => {
                return derived(
                    names::CLONE_TIMED_OUT,
                    format!(
                        "clone {} was not available by its deadline (last RDS status {:?})",
                        clone.identifier, clone.rds_status
                    ),
                );
            }
            PollStatus::Pending | PollStatus::Ready | PollStatus::Copied => {}
        }
    }
    if let Some(refresh) = &state.refresh {
        let alert = refresh.alert.clone().unwrap_or_default();
        match refresh.status {
            PollStatus::Failed if refresh.failure == Some(RefreshFailure::NotStarted) => {
                return derived(names::REFRESH_NOT_STARTED, alert);
            }
            PollStatus::Failed if refresh.failure == Some(RefreshFailure::NoSnapshot) => {
                return derived(names::REFRESH_WITHOUT_SNAPSHOT, alert);
            }
            PollStatus::Failed => return derived(names::REFRESH_FAILED, alert),
            PollStatus::TimedOut => return derived(names::REFRESH_TIMED_OUT, alert),
            PollStatus::Pending | PollStatus::Ready | PollStatus::Copied => {}
        }
    }
    None
}

fn phases(state: &RunState, started_at: OffsetDateTime) -> Vec<Phase> {
    let mut out = Vec::new();
    if let Some(snapshot) = &state.snapshot {
        out.push(Phase { name: "preflight".into(), started_at, ended_at: Some(snapshot.found_at) });
    }
    if let Some(copy) = state.clone.as_ref().and_then(|c| c.copy.as_ref()) {
        out.push(Phase { name: "copy".into(), started_at: copy.requested_at, ended_at: copy.ready_at });
    }
    if let Some(clone) = asked_clone(state) {
        out.push(Phase { name: "restore".into(), started_at: clone.requested_at, ended_at: clone.ready_at });
    }
    if let Some(refresh) = &state.refresh {
        out.push(Phase { name: "refresh".into(), started_at: refresh.triggered_at, ended_at: refresh.finished_at });
    }
    if let (Some(deletion), Some(start)) = (
        &state.deletion,
        state.refresh.as_ref().and_then(|r| r.finished_at).or(state.clone.as_ref().and_then(|c| c.ready_at)),
    ) {
        let ended_at = (deletion.status == DeletionStatus::Deleted).then_some(deletion.checked_at);
        out.push(Phase { name: "delete".into(), started_at: start, ended_at });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::*;
    use serde_json::json;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-22 05:00 UTC);

    fn clone(status: PollStatus) -> CloneInstance {
        CloneInstance {
            identifier: "dblab-refresh-staging-20261122-050000".into(),
            kind: CloneKind::Instance,
            writer_instance_id: None,
            instance_class: "db.t3.medium".into(),
            engine: "postgres".into(),
            requested_at: datetime!(2026-11-22 05:01 UTC),
            deadline: datetime!(2026-11-22 07:01 UTC),
            status,
            rds_status: if status == PollStatus::Failed { "incompatible-restore".into() } else { "available".into() },
            endpoint: None,
            checks: 3,
            ready_at: (status == PollStatus::Ready).then_some(datetime!(2026-11-22 05:11 UTC)),
            storage_type: None,
            copy: None,
        }
    }

    fn refresh(status: PollStatus) -> Refresh {
        Refresh {
            previous_last_refresh: Some("a".into()),
            triggered_at: datetime!(2026-11-22 05:12 UTC),
            engine_clock: Default::default(),
            deadline: datetime!(2026-11-22 09:12 UTC),
            start_deadline: Some(datetime!(2026-11-22 05:17 UTC)),
            skipped_before: None,
            engine: Some(crate::dblab::EngineIdentity { version: "v4.1.3".into(), api: crate::dblab::Api::V41 }),
            dump_parallel_jobs: 1,
            status,
            retrieval_status: RetrievalStatus::Finished,
            last_refresh: Some("b".into()),
            seen_start: true,
            failure: None,
            adopted: false,
            phase: None,
            alert: (status == PollStatus::Failed).then(|| "pg_dump failed".to_string()),
            polls: 4,
            finished_at: Some(datetime!(2026-11-22 06:12 UTC)),
            release_after_dump: false,
            dump_over: false,
            release_clone: false,
            wait_seconds: 0,
            engine_started_at: None,
            pool: Some("dblab_pool".into()),
            renewed_since: None,
            unproven: None,
            locked_instance: None,
            ignored_errors: None,
            snapshot: (status == PollStatus::Ready).then(|| crate::dblab::EngineSnapshot {
                id: "dblab_pool@snapshot_20261122052000".into(),
                created_at: Some("2026-11-22T06:11:00Z".into()),
                data_state_at: Some("2026-11-22T05:20:00Z".into()),
                pool: "dblab_pool".into(),
            }),
        }
    }

    fn deleted() -> Deletion {
        Deletion {
            identifier: "dblab-refresh-staging-20261122-050000".into(),
            status: DeletionStatus::Deleted,
            deleted: vec![],
            checks: 2,
            checked_at: datetime!(2026-11-22 06:20 UTC),
            requested_at: None,
        }
    }

    #[test]
    fn a_clone_deleted_after_the_dump_lived_until_then() {
        let mut s = state();
        s.clone = Some(clone(PollStatus::Ready));
        s.refresh = Some(refresh(PollStatus::Ready));
        s.deletion = Some(deleted());
        s.early_deletion = Some(Deletion {
            status: DeletionStatus::Deleting,
            checks: 1,
            checked_at: datetime!(2026-11-22 05:40 UTC),
            requested_at: Some(datetime!(2026-11-22 05:40 UTC)),
            ..deleted()
        });
        let sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
        assert_eq!(sum.outcome, Outcome::Succeeded);
        assert!(sum.clone_deleted_after_dump);
        assert_eq!(sum.clone_lifetime_seconds, Some(39 * 60), "until 05:40, not 06:20");
        assert_eq!(sum.clone_billed_seconds, Some(29 * 60), "billed from available (05:11), not the request");
        assert!(sum.cleanup.contains("once the dump was over"), "{}", sum.cleanup);
    }

    #[test]
    fn a_failed_early_deletion_is_said_and_the_lifetime_runs_to_the_late_one() {
        let mut s = state();
        s.clone = Some(clone(PollStatus::Ready));
        s.refresh = Some(refresh(PollStatus::Ready));
        s.deletion = Some(deleted());
        s.early_deletion_error = Some(CaughtError { error: "AwsTransient".into(), cause: Some("throttled".into()) });
        let sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
        assert!(!sum.clone_deleted_after_dump);
        assert_eq!(sum.clone_lifetime_seconds, Some(79 * 60));
        assert!(sum.cleanup.contains("failed (AwsTransient: throttled)"), "{}", sum.cleanup);
    }

    fn state() -> RunState {
        RunState {
            request: json!({"target": "staging", "source": {"type": "rds", "identifier": "prod"}}),
            execution: Some(Execution { name: "run-1".into(), arn: None, started_at: Some(T0) }),
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_run_succeeds_with_phases_and_lifetime() {
        let mut s = state();
        s.clone = Some(clone(PollStatus::Ready));
        s.refresh = Some(refresh(PollStatus::Ready));
        s.deletion = Some(deleted());
        let sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
        assert_eq!(sum.outcome, Outcome::Succeeded);
        assert!(sum.error.is_none());
        assert_eq!(sum.clone_lifetime_seconds, Some(79 * 60));
        assert_eq!(sum.duration_seconds(), Some(81 * 60));
        let phases: Vec<_> = sum.phases.iter().map(|p| (p.name.as_str(), p.seconds())).collect();
        assert_eq!(phases, [("restore", Some(10 * 60)), ("refresh", Some(60 * 60)), ("delete", Some(8 * 60))]);
        assert!(!sum.clone_left_behind);
        assert_eq!(sum.source_identifier.as_deref(), Some("prod"));
        assert_eq!(sum.engine_snapshot.as_deref(), Some("dblab_pool@snapshot_20261122052000"));
        assert_eq!(sum.engine_data_state_at.as_deref(), Some("2026-11-22T05:20:00Z"));
    }

    #[test]
    fn an_aurora_clone_is_priced_from_the_aurora_list_and_an_rds_one_from_rds() {
        let mut s = state();
        s.clone = Some(CloneInstance { instance_class: "db.r6g.large".into(), ..clone(PollStatus::Ready) });
        s.refresh = Some(refresh(PollStatus::Ready));
        s.deletion = Some(deleted());
        let price = |source_type: &str| {
            let mut s = s.clone();
            s.request["source"]["type"] = serde_json::json!(source_type);
            let mut sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
            sum.estimate_cost("us-east-1", None);
            sum.cost.unwrap().clone_hourly_usd
        };
        assert_eq!(price("aurora-cluster"), Some(0.26));
        assert_eq!(price("rds"), Some(0.225));
    }

    #[test]
    fn poll_verdicts_become_named_errors() {
        let mut s = state();
        s.clone = Some(clone(PollStatus::Failed));
        s.failed_state = Some("CheckCloneAvailable".into());
        s.deletion = Some(deleted());
        let sum = finished(&s, T0);
        let e = sum.error.unwrap();
        assert_eq!(e.name, "CloneFailed");
        assert!(e.message.contains("incompatible-restore"));
        assert_eq!(e.state.as_deref(), Some("CheckCloneAvailable"));

        let mut s = state();
        s.clone = Some(clone(PollStatus::Ready));
        s.refresh = Some(refresh(PollStatus::Failed));
        let sum = finished(&s, T0);
        assert_eq!(sum.error.as_ref().unwrap().name, "RefreshFailed");
        assert_eq!(sum.error.unwrap().message, "pg_dump failed");
        assert!(sum.clone_left_behind, "no deletion recorded");
    }

    #[test]
    fn a_refresh_the_engine_failed_says_which_pool_it_emptied_and_until_when() {
        let failed_in = |phase: Option<RefreshPhase>| {
            let mut s = state();
            s.clone = Some(clone(PollStatus::Ready));
            let mut r = refresh(PollStatus::Failed);
            (r.retrieval_status, r.seen_start, r.phase) = (RetrievalStatus::Failed, true, phase);
            s.refresh = Some(r);
            finished(&s, T0).engine_pool_emptied
        };
        let dump = failed_in(Some(RefreshPhase::Dump)).unwrap();
        assert!(dump.starts_with("the engine's failed refresh emptied pool dblab_pool: "), "{dump}");
        // The last look saw the dump: the restore may have begun since, so nothing is promised.
        assert!(dump.contains("the old data if the dump failed, part of the new data or none"), "{dump}");
        assert!(dump.contains("(the last look saw the dump)"), "{dump}");
        assert!(failed_in(Some(RefreshPhase::Restore)).unwrap().contains("(the last look saw the restore)"));
        assert!(failed_in(None).unwrap().contains("(the last look saw no job running)"));
        let snapshot = failed_in(Some(RefreshPhase::Snapshot)).unwrap();
        assert!(snapshot.contains("the restored data is on disk, with no snapshot of it"), "{snapshot}");
        // Not the engine's failure of this refresh: no pool was emptied by it.
        let mut s = state();
        let mut r = refresh(PollStatus::Failed);
        (r.retrieval_status, r.seen_start, r.failure) =
            (RetrievalStatus::Failed, true, Some(RefreshFailure::EngineRestarted));
        s.refresh = Some(r.clone());
        assert_eq!(finished(&s, T0).engine_pool_emptied, None, "a restart");
        (r.failure, r.seen_start) = (None, false);
        s.refresh = Some(r);
        assert_eq!(finished(&s, T0).engine_pool_emptied, None, "a stale failed, never this refresh's");
        s.refresh = Some(refresh(PollStatus::Ready));
        assert_eq!(finished(&s, T0).engine_pool_emptied, None);
    }

    #[test]
    fn a_caught_error_wins_and_an_invalid_request_still_has_a_row() {
        let s = RunState {
            request: json!({"source": 3}),
            error: Some(CaughtError {
                error: "InvalidRequest".into(),
                cause: Some(r#"{"errorMessage":"target: is required"}"#.into()),
            }),
            failed_state: Some("StartRun".into()),
            ..Default::default()
        };
        let sum = finished(&s, T0);
        assert_eq!(sum.target, None);
        assert_eq!(sum.target_label(), "(no target)");
        assert_eq!(sum.outcome, Outcome::Failed);
        assert_eq!(sum.error.unwrap().message, "target: is required");
        assert_eq!(sum.cleanup, "nothing to clean up: no clone was created");
    }

    fn snapshot() -> RestoreSource {
        RestoreSource {
            mode: SourceMode::Snapshot,
            identifier: "rds:x".into(),
            arn: "arn".into(),
            engine: "postgres".into(),
            engine_version: None,
            data_as_of: T0,
            snapshot_type: "automated".into(),
            source_type: crate::request::SourceType::Rds,
            source_identifier: "prod".into(),
            found_at: T0,
            engine_instance_id: None,
            local_key: None,
            encrypted: false,
            serverless_capacity: None,
            kms_key_id: None,
            storage_gb: None,
        }
    }

    #[test]
    fn a_purge_reports_what_it_found_and_doubt_is_flagged() {
        let mut s = state();
        s.snapshot = None;
        s.error = Some(CaughtError { error: "AwsTransient".into(), cause: None });
        let mut d = deleted();
        d.deleted = vec!["dblab-refresh-staging-20261122-050000".into()];
        s.deletion = Some(d);
        let sum = finished(&s, T0);
        assert_eq!(sum.cleanup, "clone dblab-refresh-staging-20261122-050000 deleted");
        assert_eq!(sum.clone_identifier.as_deref(), Some("dblab-refresh-staging-20261122-050000"));
        s.deletion = None;
        assert!(!finished(&s, T0).clone_left_behind, "no snapshot: restore never ran");
        s.snapshot = Some(snapshot());
        let sum = finished(&s, T0);
        assert!(sum.clone_left_behind);
        assert!(sum.cleanup.starts_with("any clone of this run may be left behind"), "{}", sum.cleanup);
    }

    #[test]
    fn a_failed_purge_never_says_no_clone_was_created() {
        // The clean-up of a stopped run: no snapshot in its state, and the purge failed.
        let mut s = state();
        s.error = Some(CaughtError { error: "ExecutionStopped".into(), cause: None });
        s.cleanup_error = Some(CaughtError { error: "AwsTransient".into(), cause: Some("throttled".into()) });
        let sum = finished(&s, T0);
        assert!(sum.clone_left_behind, "{sum:?}");
        assert!(sum.cleanup.starts_with("any clone of this run may be left behind"), "{}", sum.cleanup);
        // With the clone known (recovered from the execution's history), it is named.
        s.snapshot = Some(snapshot());
        s.clone = Some(clone(PollStatus::Ready));
        let sum = finished(&s, T0);
        assert!(sum.cleanup.starts_with("clone dblab-refresh-staging-20261122-050000 left behind"), "{}", sum.cleanup);
        assert!(sum.cleanup.ends_with("(the clean-up failed: AwsTransient: throttled)"), "{}", sum.cleanup);
    }

    fn copy(ready: Option<OffsetDateTime>) -> LocalCopy {
        LocalCopy {
            identifier: "dblab-refresh-staging-20261122-050000".into(),
            copy_of: "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-prod".into(),
            requested_at: datetime!(2026-11-22 05:01 UTC),
            ready_at: ready,
            status: if ready.is_some() { "available".into() } else { "creating".into() },
            percent: Some(40),
            allocated_gb: Some(100),
        }
    }

    #[test]
    fn a_run_that_ended_in_its_copy_asked_for_no_clone_and_says_what_became_of_the_copy() {
        let mut s = state();
        s.snapshot = Some(snapshot());
        s.clone = Some(CloneInstance {
            status: PollStatus::TimedOut,
            rds_status: "copy:creating".into(),
            copy: Some(copy(None)),
            ..clone(PollStatus::TimedOut)
        });
        s.deletion = Some(Deletion { requested_at: Some(datetime!(2026-11-22 06:10 UTC)), ..deleted() });
        let sum = finished(&s, T0);
        assert_eq!((sum.clone_identifier.as_deref(), sum.clone_class.as_deref()), (None, None), "{sum:?}");
        assert_eq!(sum.copy_identifier.as_deref(), Some("dblab-refresh-staging-20261122-050000"));
        let error = sum.error.clone().unwrap();
        assert_eq!(error.name, names::CLONE_TIMED_OUT);
        assert!(error.message.contains("dblab-share-prod") && error.message.contains("40% done"), "{}", error.message);
        assert_eq!(sum.cleanup, "snapshot copy dblab-refresh-staging-20261122-050000 (no clone was asked for) deleted");
        assert_eq!(sum.copy_lifetime_seconds, Some(69 * 60), "from its request to its deletion");
        let names: Vec<_> = sum.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["preflight", "copy"], "no restore phase: {names:?}");
        // Still deleting: how long it was kept is not known yet.
        s.deletion = Some(Deletion { status: DeletionStatus::Deleting, ..deleted() });
        assert_eq!(finished(&s, T0).copy_lifetime_seconds, None);
        // Copied, then the clone restored from it: both named, the copy phase ended.
        s.clone =
            Some(CloneInstance { copy: Some(copy(Some(datetime!(2026-11-22 05:30 UTC)))), ..clone(PollStatus::Ready) });
        s.deletion = Some(deleted());
        let sum = finished(&s, T0);
        assert_eq!(sum.clone_identifier.as_deref(), Some("dblab-refresh-staging-20261122-050000"));
        assert!(sum.cleanup.ends_with("and its snapshot copy deleted"), "{}", sum.cleanup);
        assert!(sum.phases.iter().any(|p| p.name == "copy" && p.seconds() == Some(29 * 60)), "{:?}", sum.phases);
    }

    #[test]
    fn a_purge_still_deleting_says_so_and_not_deleted() {
        let mut s = state();
        s.error = Some(CaughtError { error: "ExecutionStopped".into(), cause: None });
        s.snapshot = Some(snapshot());
        s.deletion = Some(Deletion { status: DeletionStatus::TimedOut, ..deleted() });
        let sum = finished(&s, T0);
        assert!(sum.clone_left_behind);
        assert_eq!(
            sum.cleanup,
            "clone dblab-refresh-staging-20261122-050000 still deleting when clone.deletionTimeout ran out; the \
             orphan sweep will finish it"
        );
    }

    #[test]
    fn a_clone_the_state_never_held_is_priced_unknown_not_zero() {
        let mut s = state();
        s.snapshot = Some(snapshot());
        s.error = Some(CaughtError { error: "AwsTransient".into(), cause: None });
        s.deletion = Some(deleted());
        let mut sum = finished(&s, datetime!(2026-11-22 06:00 UTC));
        sum.estimate_cost(
            "us-east-1",
            Some(crate::cost::Usage { transitions: 9, lambda_invocations: 4, lambda_seconds: 2.0 }),
        );
        let cost = sum.cost.unwrap();
        assert_eq!((cost.clone_usd, cost.total_usd), (None, None), "{cost:?}");
        // And a clone whose class is known is priced.
        s.clone = Some(CloneInstance { instance_class: "db.r6g.large".into(), ..clone(PollStatus::Ready) });
        let mut sum = finished(&s, datetime!(2026-11-22 06:00 UTC));
        sum.estimate_cost("us-east-1", None);
        assert_eq!(sum.cost.unwrap().clone_hourly_usd, Some(0.225));
        // One only the purge found was made from this request: of the class it asked for.
        s.clone = None;
        s.request["clone"] = json!({"instanceClass": "db.r6g.large"});
        let mut sum = finished(&s, datetime!(2026-11-22 06:00 UTC));
        sum.estimate_cost("us-east-1", None);
        assert_eq!(sum.clone_class.as_deref(), Some("db.r6g.large"));
        assert_eq!(sum.cost.unwrap().clone_hourly_usd, Some(0.225));
    }

    #[test]
    fn no_verdict_and_no_error_is_still_a_failure() {
        let sum = finished(&state(), T0);
        assert_eq!(sum.outcome, Outcome::Failed);
        assert_eq!(sum.error.unwrap().name, "RunIncomplete");
    }

    #[test]
    fn the_data_is_as_of_the_snapshot_or_for_a_fast_clone_its_request() {
        let mut s = state();
        s.snapshot = Some(snapshot());
        let sum = finished(&s, T0);
        assert_eq!((sum.data_as_of, sum.snapshot_identifier.as_deref()), (Some(T0), Some("rds:x")));
        s.snapshot = Some(RestoreSource { mode: SourceMode::FastClone, ..snapshot() });
        let sum = finished(&s, T0);
        assert_eq!((sum.data_as_of, sum.snapshot_identifier), (None, None), "no clone yet: no data time");
        s.clone = Some(clone(PollStatus::Ready));
        assert_eq!(finished(&s, T0).data_as_of, Some(datetime!(2026-11-22 05:01 UTC)), "the clone's request");
    }

    #[test]
    fn a_deletion_that_fails_after_the_refresh_leaves_a_success_that_says_so() {
        let mut s = state();
        s.snapshot = Some(snapshot());
        s.clone = Some(clone(PollStatus::Ready));
        s.refresh = Some(refresh(PollStatus::Ready));
        s.deletion_error = Some(CaughtError { error: "AwsRequestFailed".into(), cause: Some("access denied".into()) });
        let sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
        assert_eq!((sum.outcome, &sum.error), (Outcome::Succeeded, &None), "the engine holds the new data");
        assert!(sum.clone_left_behind);
        assert_eq!(
            sum.cleanup,
            "clone dblab-refresh-staging-20261122-050000 LEFT BEHIND: deleting it after the refresh failed \
             (AwsRequestFailed: access denied); the hourly orphan sweep will delete it, or delete it by hand"
        );
        let message = crate::notification::compose(&sum);
        assert!(message.subject.ends_with("; clone left to the sweep"), "{}", message.subject);
        assert!(message.body.contains("LEFT BEHIND"), "{}", message.body);
    }

    #[test]
    fn only_a_confirmed_deletion_is_deleted_and_only_a_timed_out_one_still_deleting() {
        let mut s = state();
        s.snapshot = Some(snapshot());
        s.clone = Some(clone(PollStatus::Ready));
        s.refresh = Some(refresh(PollStatus::Ready));
        let at = |status| Some(Deletion { status, ..deleted() });
        s.deletion = at(DeletionStatus::Deleting);
        let sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
        assert!(
            sum.cleanup.ends_with(
                "left behind: its deletion was not confirmed; the orphan sweep will delete it, or delete it by hand"
            ),
            "{}",
            sum.cleanup
        );
        assert!(sum.clone_left_behind && sum.clone_lifetime_seconds.is_none());
        let delete = sum.phases.iter().find(|p| p.name == "delete").unwrap();
        assert_eq!(delete.ended_at, None, "a deletion still going has not ended");
        s.deletion = at(DeletionStatus::TimedOut);
        assert!(finished(&s, datetime!(2026-11-22 06:21 UTC)).cleanup.contains("still deleting"));
        s.deletion = at(DeletionStatus::Deleted);
        let sum = finished(&s, datetime!(2026-11-22 06:21 UTC));
        assert_eq!(sum.cleanup, "clone dblab-refresh-staging-20261122-050000 deleted");
        assert!(!sum.clone_left_behind);
    }

    #[test]
    fn each_refresh_verdict_has_its_own_name() {
        let named = |failure: Option<RefreshFailure>| {
            let mut s = state();
            s.refresh = Some(Refresh { failure, ..refresh(PollStatus::Failed) });
            finished(&s, T0).error.unwrap().name
        };
        assert_eq!(named(Some(RefreshFailure::NotStarted)), "RefreshNotStarted");
        assert_eq!(named(Some(RefreshFailure::NoSnapshot)), "RefreshWithoutSnapshot");
        assert_eq!(named(Some(RefreshFailure::EngineRestarted)), "RefreshFailed");
        assert_eq!(named(None), "RefreshFailed");
    }

    #[test]
    fn a_purge_that_found_nothing_says_so_only_once_it_is_confirmed() {
        let mut s = state();
        s.snapshot = Some(snapshot());
        s.error = Some(CaughtError { error: "AwsRequestFailed".into(), cause: None });
        let nothing = |status| Some(Deletion { identifier: String::new(), status, ..deleted() });
        s.deletion = nothing(DeletionStatus::Deleted);
        let sum = finished(&s, T0);
        assert_eq!((sum.cleanup.as_str(), sum.clone_left_behind), ("nothing to clean up: no clone was created", false));
        s.deletion = nothing(DeletionStatus::Deleting);
        let sum = finished(&s, T0);
        assert!(sum.cleanup.starts_with("any clone of this run may be left behind"), "{}", sum.cleanup);
        assert!(sum.clone_left_behind);
    }
}
