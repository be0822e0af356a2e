//! Reading a refresh's progress from what the engine shows, one look at a time.
//!
//! Three facts of the real engine shape these rules (`docs/dblab-engine.md`):
//! - a 200 from `POST /full-refresh` means accepted, not started: a failure before the
//!   jobs are built changes neither the status nor `lastRefresh`, and shows only in the
//!   engine's log;
//! - `lastRefresh` is set when the jobs start, lives only in the engine's memory, and
//!   goes back to `null` when the engine restarts, as the status goes to `finished` or
//!   `inactive`;
//! - a stale `finished` or `failed` from the previous refresh can be read after the trigger.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::look::Look;
use super::refresh::{Refresh, RefreshFailure, RefreshPhase};
use super::status::{EngineSnapshot, RetrievalStatus, Retrieving};
use crate::poll::PollStatus;

/// The job running now, inferred from the activity lists; `None` when it cannot be told.
pub fn phase_of(retrieving: &Retrieving) -> Option<RefreshPhase> {
    match retrieving.status {
        RetrievalStatus::Snapshotting | RetrievalStatus::Renewed => return Some(RefreshPhase::Snapshot),
        RetrievalStatus::Refreshing => {}
        _ => return None,
    }
    let activity = retrieving.activity.as_ref()?;
    let source = activity.source.as_ref().is_some_and(|s| !s.is_empty());
    let target = activity.target.as_ref().is_some_and(|t| !t.is_empty());
    match (source, target) {
        (true, false) => Some(RefreshPhase::Dump),
        (false, true) => Some(RefreshPhase::Restore),
        (true, true) => Some(RefreshPhase::DumpAndRestore),
        (false, false) => None,
    }
}

/// Whether `lastRefresh` says a refresh started at or after `t`, a time on the engine's
/// clock (`EngineClock::earliest`). It is written in the engine host's zone, which RFC 3339
/// carries.
pub(crate) fn started_after(last_refresh: &str, t: OffsetDateTime) -> bool {
    OffsetDateTime::parse(last_refresh, &Rfc3339).is_ok_and(|started| started >= t)
}

/// The earliest the engine's clock may have read at the trigger.
fn triggered_on_engine_clock(refresh: &Refresh) -> OffsetDateTime {
    refresh.engine_clock.earliest(refresh.triggered_at)
}

fn started_since(refresh: &Refresh, last_refresh: Option<&str>) -> bool {
    last_refresh.is_some_and(|last| {
        Some(last) != refresh.previous_last_refresh.as_deref()
            && started_after(last, triggered_on_engine_clock(refresh))
    })
}

/// How long the engine may stay `renewed`: between the restore job and the snapshot job it
/// is there for an instant (retrieval.go `run`); the snapshot job, data patching included,
/// runs as `snapshotting`. Past this, the engine has no snapshot job to run.
pub(crate) const RENEWED_BOUND: time::Duration = time::Duration::minutes(5);

/// What a restart of the engine looks like from outside: a new `engine.startedAt` (every
/// process start sets it; with a free pool the new process may even run a startup refresh
/// of its own, with whatever config it has, so `lastRefresh` proves nothing then),
/// `lastRefresh` lost after it had a value, or the status back to `inactive`.
fn restart_seen(prev: &Refresh, look: &Look) -> Option<String> {
    let seen = &look.retrieving;
    if let (Some(before), Some(now)) = (&prev.engine_started_at, &look.engine_started_at)
        && before != now
    {
        return Some(format!(
            "the DBLab Engine restarted: its process started at {now}, not {before} as when this run triggered the \
             refresh, so this run's refresh did not complete (retrieval is now {:?}); start a new run",
            seen.status.as_str()
        ));
    }
    if let (Some(before), None) = (&prev.last_refresh, &seen.last_refresh) {
        return Some(format!(
            "the DBLab Engine restarted: lastRefresh went from {before:?} to null and retrieval is now {:?}, so this run's refresh did not complete; start a new run",
            seen.status.as_str()
        ));
    }
    if seen.status == RetrievalStatus::Inactive && prev.retrieval_status != RetrievalStatus::Inactive {
        return Some(format!(
            "the DBLab Engine restarted or stopped the refresh: retrieval went from {:?} back to \"inactive\"; start a new run",
            prev.retrieval_status.as_str()
        ));
    }
    None
}

/// The `refresh_skipped` warning, if it was raised or bumped after the trigger.
fn new_skip(prev: &Refresh, seen: &Retrieving) -> Option<String> {
    let now = seen.skipped_mark()?;
    let raised = match &prev.skipped_before {
        None => true,
        Some(before) => now.count > before.count || now.last_seen != before.last_seen,
    };
    raised.then_some(now.message)
}

/// The engine's snapshot of this refresh: one of the refreshed pool, made since the
/// refresh started (`lastRefresh`, when readable; else the trigger), both on the engine's
/// clock. The newest, if several.
fn evidence<'a>(refresh: &Refresh, snapshots: &'a [EngineSnapshot]) -> Option<&'a EngineSnapshot> {
    let since = refresh
        .last_refresh
        .as_deref()
        .and_then(|started| OffsetDateTime::parse(started, &Rfc3339).ok())
        .unwrap_or_else(|| triggered_on_engine_clock(refresh));
    let made = |s: &EngineSnapshot| s.created_at.as_deref().and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    snapshots
        .iter()
        .filter(|s| refresh.pool.as_ref().is_none_or(|pool| &s.pool == pool))
        .filter(|s| made(s).is_some_and(|t| t >= since))
        .max_by_key(|s| made(s))
}

/// Why a `finished` without evidence is not a success, with what the engine does show.
fn no_evidence(refresh: &Refresh, snapshots: Option<&[EngineSnapshot]>) -> String {
    let pool = refresh.pool.as_deref().map_or_else(String::new, |p| format!(" of pool {p}"));
    let started =
        refresh.last_refresh.clone().unwrap_or_else(|| crate::clock::rfc3339(triggered_on_engine_clock(refresh)));
    let newest = snapshots
        .into_iter()
        .flatten()
        .filter(|s| refresh.pool.as_ref().is_none_or(|pool| &s.pool == pool))
        .max_by_key(|s| s.created_at.clone())
        .map_or_else(
            || "it lists none".to_string(),
            |s| format!("its newest is {} made {}", s.id, s.created_at.as_deref().unwrap_or("at an unknown time")),
        );
    format!(
        "the engine reported the refresh finished, but made no snapshot{pool} since it started at {started} \
         ({newest}), so its clones would still see the old data; look for \"Skip snapshotting\" in the engine's log"
    )
}

/// The next state of a refresh after one look at the engine. `finished` and `failed`
/// count only once this refresh was seen to run: a running status, or a `lastRefresh`
/// from the trigger on. Neither within the start window means the engine never started it.
/// `finished` is a success only with the engine's snapshot of it.
pub fn advance(prev: &Refresh, look: &Look, now: OffsetDateTime) -> Refresh {
    let seen = &look.retrieving;
    let mut next = prev.clone();
    next.polls += 1;
    next.retrieval_status = seen.status.clone();
    next.last_refresh = seen.last_refresh.clone();
    next.seen_start = prev.seen_start || seen.status.is_running() || started_since(prev, seen.last_refresh.as_deref());
    let phase = phase_of(seen);
    if phase.is_some() {
        next.phase = phase;
    }
    if let Some(pool) = &look.refreshing_pool
        && next.seen_start
        && seen.status.is_running()
    {
        next.pool = Some(pool.clone());
    }
    next.renewed_since = (seen.status == RetrievalStatus::Renewed).then(|| prev.renewed_since.unwrap_or(now));
    // The dump is over when one look sees restore sessions and no dump session, or the
    // engine past its jobs. The engine runs its jobs one after another and only the restore
    // job reports target sessions alone (the dump job reports them only with
    // immediateRestore, which never releases early): one such look proves the dump job has
    // returned. Never inferred from a `dump+restore` look, nor from one without activity.
    // (A restore phase is seen only while `refreshing`, which counts as this run's start.)
    next.dump_over = prev.dump_over
        || phase == Some(RefreshPhase::Restore)
        || (next.seen_start && matches!(seen.status, RetrievalStatus::Renewed | RetrievalStatus::Snapshotting));
    let restart = restart_seen(prev, look);
    next.status = match (&restart, next.seen_start, &seen.status) {
        (Some(why), _, _) => {
            next.alert = Some(why.clone());
            next.failure = Some(RefreshFailure::EngineRestarted);
            PollStatus::Failed
        }
        // LVM (accepted by the request): no snapshot to look for.
        (None, true, RetrievalStatus::Finished) if next.unproven.is_some() => PollStatus::Ready,
        (None, true, RetrievalStatus::Finished) => match evidence(&next, look.snapshots.as_deref().unwrap_or_default())
        {
            Some(snapshot) => {
                next.snapshot = Some(snapshot.clone());
                PollStatus::Ready
            }
            None => {
                next.alert = Some(no_evidence(&next, look.snapshots.as_deref()));
                next.failure = Some(RefreshFailure::NoSnapshot);
                PollStatus::Failed
            }
        },
        (None, true, RetrievalStatus::Failed) => {
            next.alert = Some(
                seen.failure_message()
                    .unwrap_or_else(|| "the engine reported the refresh failed without an alert".into()),
            );
            PollStatus::Failed
        }
        _ => PollStatus::Pending,
    };
    if next.status == PollStatus::Pending
        && !next.seen_start
        && prev.start_deadline.is_some_and(|start_by| now > start_by)
    {
        next.status = PollStatus::Failed;
        next.failure = Some(RefreshFailure::NotStarted);
        let mut why = format!(
            "the engine accepted the refresh at {} but did not start it (status still {:?}, lastRefresh {}); look for \"failed to initiate full refresh\" in the engine's log",
            crate::clock::rfc3339(prev.triggered_at),
            seen.status.as_str(),
            seen.last_refresh.as_ref().map_or_else(|| "null".to_string(), |started| format!("{started:?}")),
        );
        if let Some(skipped) = new_skip(prev, seen) {
            why.push_str(&format!("; the engine raised refresh_skipped: {skipped}"));
        }
        next.alert = Some(why);
    }
    if let Some(since) = next.renewed_since
        && next.status == PollStatus::Pending
        && now - since > RENEWED_BOUND
    {
        next.status = PollStatus::Failed;
        next.failure = Some(RefreshFailure::NoSnapshot);
        next.alert = Some(format!(
            "the engine restored the data and has stayed \"renewed\" since {}: it runs no logical snapshot job \
             (logicalSnapshot is missing from retrieval.jobs in its server.yml), so it makes no snapshot and its clones would not see the new data; add the job and run again",
            crate::clock::rfc3339(since)
        ));
    }
    if next.status == PollStatus::Pending && now > prev.deadline {
        next.status = PollStatus::TimedOut;
        next.alert = Some(format!("no outcome by the deadline; last status {:?}", seen.status.as_str()));
    }
    if next.status != PollStatus::Pending {
        next.finished_at = Some(now);
    }
    next.release_clone =
        prev.release_after_dump && next.dump_over && !prev.dump_over && next.status == PollStatus::Pending;
    next
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::dblab::engine::EngineIdentity;
    use crate::dblab::engine_clock::EngineClock;
    use crate::dblab::refresh::{Trigger, adopted, triggered};
    use crate::dblab::status::{Activity, Alert, EngineInfo, InstanceStatus};
    use crate::request::DblabSpec;

    const NOW: OffsetDateTime = datetime!(2026-11-22 05:00 UTC);
    const BEFORE: &str = "2026-11-21T05:00:00Z";
    const AFTER: &str = "2026-11-22T05:00:01Z";

    fn spec() -> DblabSpec {
        DblabSpec {
            engine: Some("e".into()),
            api_endpoint: None,
            token_secret_arn: None,
            ca_certificate: None,
            poll_interval: std::time::Duration::from_secs(30),
            timeout: std::time::Duration::from_secs(4 * 3_600),
            start_timeout: std::time::Duration::from_secs(300),
            restore_parallel_jobs: None,
            allow_ignored_errors: false,
            allow_lvm: false,
        }
    }

    /// `/status` as `patch-dblab` read it before the trigger.
    fn status_before(status: &str, last_refresh: Option<&str>) -> InstanceStatus {
        InstanceStatus {
            retrieving: seen(status, last_refresh).retrieving,
            engine: EngineInfo { started_at: Some(STARTED.into()), ..Default::default() },
            pools: Vec::new(),
        }
    }

    fn trigger<'a>(spec: &'a DblabSpec, before: &'a InstanceStatus, jobs: u32, release: bool) -> Trigger<'a> {
        Trigger {
            spec,
            before,
            engine: EngineIdentity { version: "v4.2.0".into(), api: crate::dblab::Api::V42 },
            clock: EngineClock::default(),
            dump_parallel_jobs: jobs,
            release_after_dump: release,
            pool: Some(POOL.into()),
            ignored_errors: None,
            unproven: None,
            locked_instance: None,
        }
    }

    fn started(previous: &str) -> Refresh {
        let before = status_before("finished", Some(previous).filter(|p| !p.is_empty()));
        triggered(NOW, trigger(&spec(), &before, 2, true))
    }

    const STARTED: &str = "2026-11-20T00:00:00Z";
    const POOL: &str = "dblab_pool";

    fn snapshot(pool: &str, created_at: &str) -> EngineSnapshot {
        EngineSnapshot {
            id: format!("{pool}@snapshot_{created_at}"),
            created_at: Some(created_at.into()),
            data_state_at: Some(created_at.into()),
            pool: pool.into(),
        }
    }

    /// A look at an engine that has run since `STARTED`, whose pool has a snapshot made
    /// at `AFTER` (this refresh's, once it finished).
    fn seen(status: &str, last_refresh: Option<&str>) -> Look {
        Look {
            retrieving: Retrieving {
                mode: "logical".into(),
                status: status.to_string().into(),
                last_refresh: last_refresh.map(str::to_string),
                ..Default::default()
            },
            engine_started_at: Some(STARTED.into()),
            refreshing_pool: None,
            snapshots: Some(vec![snapshot(POOL, BEFORE), snapshot(POOL, AFTER)]),
        }
    }

    fn with_activity(source: usize, target: usize) -> Look {
        let mut s = seen("refreshing", Some(AFTER));
        s.retrieving.activity =
            Some(Activity { source: Some(vec![json!({}); source]), target: Some(vec![json!({}); target]) });
        s
    }

    #[test]
    fn one_restore_look_ends_the_dump_and_the_clone_is_released_once() {
        let r = advance(&started(BEFORE), &with_activity(2, 0), NOW);
        assert!(!r.dump_over && !r.release_clone, "dumping");
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(r.dump_over && r.release_clone, "the restore job runs only after the dump job");
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(r.dump_over && !r.release_clone, "released on one poll only");
        let r = advance(&r, &with_activity(1, 0), NOW);
        assert!(r.dump_over, "over stays over");
    }

    #[test]
    fn a_run_that_deletes_its_clone_after_the_dump_looks_twice_per_interval_while_it_dumps() {
        let poll = std::time::Duration::from_secs(30);
        let r = started(BEFORE);
        assert!(r.release_after_dump);
        assert_eq!(r.next_look_in(poll), poll / 2);
        assert_eq!(r.wait_seconds, spec().poll_interval.as_secs() / 2, "the first wait, from the trigger");
        let r = advance(&r, &with_activity(0, 1), NOW);
        assert!(r.dump_over);
        assert_eq!(r.next_look_in(poll), poll, "the dump is over: back to the interval");
        let mut keep = started(BEFORE);
        keep.release_after_dump = false;
        assert_eq!(keep.next_look_in(poll), poll, "kept to the end: the interval throughout");
        let (spec, before) = (spec(), status_before("finished", None));
        assert_eq!(triggered(NOW, trigger(&spec, &before, 2, false)).wait_seconds, spec.poll_interval.as_secs());
    }

    #[test]
    fn an_unreadable_or_overlapping_restore_is_not_the_end_of_the_dump() {
        let r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        assert!(!r.dump_over, "a look without activity says nothing");
        let mut r = started(BEFORE);
        for _ in 0..5 {
            r = advance(&r, &with_activity(1, 1), NOW);
        }
        assert!(!r.dump_over, "immediateRestore: dump and restore at once say nothing");
    }

    #[test]
    fn snapshotting_means_the_dump_is_over_and_finishing_releases_nothing_early() {
        let r = advance(&started(BEFORE), &with_activity(1, 0), NOW);
        let r = advance(&r, &seen("snapshotting", Some(AFTER)), NOW);
        assert!(r.dump_over && r.release_clone);
        let r = advance(&advance(&started(BEFORE), &with_activity(1, 0), NOW), &seen("finished", Some(AFTER)), NOW);
        assert!(!r.release_clone, "done: the normal deletion follows");
        let mut keep = started(BEFORE);
        keep.release_after_dump = false;
        let r = advance(&advance(&keep, &with_activity(0, 1), NOW), &with_activity(0, 1), NOW);
        assert!(r.dump_over && !r.release_clone, "not asked for");
    }

    #[test]
    fn a_stale_finished_is_not_this_runs_outcome() {
        let next = advance(&started(BEFORE), &seen("finished", Some(BEFORE)), NOW);
        assert_eq!(next.status, PollStatus::Pending);
        assert!(!next.seen_start);
    }

    #[test]
    fn refreshing_then_finished_is_done() {
        let r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        assert_eq!((r.status, r.seen_start), (PollStatus::Pending, true));
        let r = advance(&r, &seen("snapshotting", Some(AFTER)), NOW);
        let r = advance(&r, &seen("finished", Some(AFTER)), NOW);
        assert_eq!(r.status, PollStatus::Ready);
        assert_eq!(r.finished_at, Some(NOW));
        assert_eq!(r.polls, 3);
    }

    #[test]
    fn a_failure_before_the_first_poll_is_caught_by_last_refresh() {
        let mut s = seen("failed", Some(AFTER));
        s.retrieving.alerts = Some(BTreeMap::from([(
            "refresh_failed".to_string(),
            Alert {
                level: "error".into(),
                message: "pg_dump: connection refused".into(),
                count: 1,
                last_seen: AFTER.into(),
            },
        )]));
        let r = advance(&started(BEFORE), &s, NOW);
        assert_eq!(r.status, PollStatus::Failed);
        assert_eq!(r.alert.as_deref(), Some("pg_dump: connection refused"));
        assert_eq!(r.failure, None, "the engine's own failure");
    }

    #[test]
    fn a_stale_failure_with_unchanged_last_refresh_waits() {
        let r = advance(&started(BEFORE), &seen("failed", Some(BEFORE)), NOW);
        assert_eq!(r.status, PollStatus::Pending);
    }

    #[test]
    fn last_refresh_counts_only_from_the_trigger_on_in_any_zone() {
        // The engine host in UTC+2, its clock a few seconds behind ours: this refresh.
        let r = advance(&started(BEFORE), &seen("failed", Some("2026-11-22T06:59:58+02:00")), NOW);
        assert!(r.seen_start && r.status == PollStatus::Failed);
        // A value that changed but is older than the trigger (or unreadable) is not this run's.
        for other in ["2026-11-22T04:50:00Z", "yesterday"] {
            let r = advance(&started(BEFORE), &seen("finished", Some(other)), NOW);
            assert!(!r.seen_start && r.status == PollStatus::Pending, "{other}");
        }
    }

    #[test]
    fn a_restart_after_the_start_is_a_failure_not_a_success() {
        // lastRefresh lost and the status `finished`: the engine restarted mid-refresh.
        let r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&r, &seen("finished", None), NOW);
        assert_eq!(r.status, PollStatus::Failed);
        assert_eq!(r.failure, Some(RefreshFailure::EngineRestarted));
        assert!(r.alert.unwrap().contains("restarted"));
        // Before this refresh was seen: a lost lastRefresh is a restart all the same.
        let r = advance(&started(BEFORE), &seen("finished", None), NOW);
        assert_eq!((r.status, r.failure), (PollStatus::Failed, Some(RefreshFailure::EngineRestarted)));
        // Back to inactive.
        let r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&r, &seen("inactive", Some(AFTER)), NOW);
        assert_eq!((r.status, r.failure), (PollStatus::Failed, Some(RefreshFailure::EngineRestarted)));
    }

    #[test]
    fn a_fresh_engine_that_has_not_started_yet_is_not_a_restart() {
        let mut fresh = started("");
        fresh.retrieval_status = RetrievalStatus::Inactive;
        let r = advance(&fresh, &seen("inactive", None), NOW);
        assert_eq!(r.status, PollStatus::Pending);
        let r = advance(&r, &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&r, &seen("finished", Some(AFTER)), NOW);
        assert_eq!(r.status, PollStatus::Ready);
    }

    #[test]
    fn accepted_but_never_started_fails_fast_and_names_the_log_line() {
        let quiet = seen("finished", Some(BEFORE));
        let r = advance(&started(BEFORE), &quiet, datetime!(2026-11-22 05:04 UTC));
        assert_eq!(r.status, PollStatus::Pending, "inside the start window");
        let r = advance(&r, &quiet, datetime!(2026-11-22 05:05:01 UTC));
        assert_eq!((r.status, r.failure), (PollStatus::Failed, Some(RefreshFailure::NotStarted)));
        assert!(r.alert.as_deref().unwrap().contains("failed to initiate full refresh"), "{:?}", r.alert);
        // A refresh seen running is never "not started", however long it runs.
        let r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&r, &seen("refreshing", Some(AFTER)), datetime!(2026-11-22 06:00 UTC));
        assert_eq!(r.status, PollStatus::Pending);
    }

    #[test]
    fn a_new_or_bumped_skip_warning_is_quoted() {
        let mark = |count: u64| {
            let mut s = seen("finished", Some(BEFORE));
            s.retrieving.alerts = Some(BTreeMap::from([(
                "refresh_skipped".to_string(),
                Alert {
                    level: "warning".into(),
                    message: format!("no free pool ({count})"),
                    count,
                    last_seen: "t".into(),
                },
            )]));
            s
        };
        let mut prev = started(BEFORE);
        prev.skipped_before = mark(1).retrieving.skipped_mark();
        let late = datetime!(2026-11-22 05:06 UTC);
        let unchanged = advance(&prev, &mark(1), late);
        assert!(!unchanged.alert.unwrap().contains("refresh_skipped"));
        let bumped = advance(&prev, &mark(2), late);
        assert!(bumped.alert.unwrap().contains("refresh_skipped: no free pool (2)"));
    }

    #[test]
    fn past_the_deadline_is_timed_out_but_an_outcome_wins() {
        let late = datetime!(2026-11-22 09:00:01 UTC);
        let r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), late);
        assert_eq!(r.status, PollStatus::TimedOut);
        let r = advance(&started(BEFORE), &seen("finished", Some(AFTER)), late);
        assert_eq!(r.status, PollStatus::Ready);
    }

    #[test]
    fn phases_come_from_activity() {
        let mut s = seen("refreshing", Some(AFTER));
        assert_eq!(phase_of(&s.retrieving), None);
        s.retrieving.activity = Some(Activity { source: Some(vec![json!({})]), target: Some(vec![]) });
        assert_eq!(phase_of(&s.retrieving), Some(RefreshPhase::Dump));
        s.retrieving.activity = Some(Activity { source: Some(vec![]), target: Some(vec![json!({})]) });
        assert_eq!(phase_of(&s.retrieving), Some(RefreshPhase::Restore));
        s.retrieving.activity = Some(Activity { source: Some(vec![json!({})]), target: Some(vec![json!({})]) });
        assert_eq!(phase_of(&s.retrieving), Some(RefreshPhase::DumpAndRestore));
        assert_eq!(phase_of(&seen("snapshotting", Some(AFTER)).retrieving), Some(RefreshPhase::Snapshot));
    }

    #[test]
    fn finished_is_a_success_only_with_the_engines_new_snapshot_of_the_pool() {
        let running = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        let done = advance(&running, &seen("finished", Some(AFTER)), NOW);
        assert_eq!(done.status, PollStatus::Ready);
        assert_eq!(done.snapshot.as_ref().map(|s| s.id.as_str()), Some("dblab_pool@snapshot_2026-11-22T05:00:01Z"));
        // Only the old snapshot (the engine skipped snapshotting): not proven.
        let mut stale = seen("finished", Some(AFTER));
        stale.snapshots = Some(vec![snapshot(POOL, BEFORE)]);
        let r = advance(&running, &stale, NOW);
        assert_eq!((r.status, r.failure), (PollStatus::Failed, Some(RefreshFailure::NoSnapshot)));
        let why = r.alert.unwrap();
        assert!(why.contains("made no snapshot of pool dblab_pool since it started at 2026-11-22T05:00:01Z"), "{why}");
        assert!(why.contains(&format!("its newest is dblab_pool@snapshot_{BEFORE}")), "{why}");
        // A new snapshot, of another pool: not this refresh's.
        let mut elsewhere = seen("finished", Some(AFTER));
        elsewhere.snapshots = Some(vec![snapshot("other_pool", AFTER)]);
        assert_eq!(advance(&running, &elsewhere, NOW).failure, Some(RefreshFailure::NoSnapshot));
        // None listed, or none read.
        let mut none = seen("finished", Some(AFTER));
        none.snapshots = Some(vec![]);
        assert!(advance(&running, &none, NOW).alert.unwrap().contains("it lists none"));
        none.snapshots = None;
        assert_eq!(advance(&running, &none, NOW).status, PollStatus::Failed);
    }

    #[test]
    fn a_new_engine_start_time_is_a_restart_whatever_else_it_says() {
        let running = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        // The restarted engine ran a startup refresh of its own: lastRefresh is set, finished.
        let mut restarted = seen("finished", Some("2026-11-22T05:03:00Z"));
        restarted.engine_started_at = Some("2026-11-22T05:02:00Z".into());
        let r = advance(&running, &restarted, NOW);
        assert_eq!((r.status, r.failure), (PollStatus::Failed, Some(RefreshFailure::EngineRestarted)));
        assert!(r.alert.unwrap().contains("started at 2026-11-22T05:02:00Z, not 2026-11-20T00:00:00Z"));
        // An engine that does not say when it started is judged on the rest.
        let mut silent = seen("finished", Some(AFTER));
        silent.engine_started_at = None;
        assert_eq!(advance(&running, &silent, NOW).status, PollStatus::Ready);
    }

    fn adopted_refresh(last_refresh: &str) -> Refresh {
        let before = status_before("refreshing", Some(last_refresh));
        adopted(NOW, trigger(&spec(), &before, 1, false))
    }

    #[test]
    fn an_adopted_refresh_is_already_started_and_has_no_start_window() {
        let r = adopted_refresh(AFTER);
        assert!(r.adopted && r.seen_start);
        assert_eq!(r.start_deadline, None);
        // It ends with lastRefresh unchanged since adoption: that is its own, not a stale one.
        let done = advance(&r, &seen("finished", Some(AFTER)), NOW);
        assert_eq!(done.status, PollStatus::Ready, "{done:?}");
    }

    #[test]
    fn the_windows_end_strictly_after_their_last_instant() {
        let start_by = NOW + time::Duration::minutes(5);
        let quiet = seen("finished", Some(BEFORE));
        let r = advance(&started(BEFORE), &quiet, start_by);
        assert_eq!(
            (r.status, r.finished_at),
            (PollStatus::Pending, None),
            "at the start deadline itself: still waiting"
        );
        let deadline = NOW + time::Duration::hours(4);
        let running = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&running, &seen("refreshing", Some(AFTER)), deadline);
        assert_eq!((r.status, r.finished_at), (PollStatus::Pending, None), "at the deadline itself: still waiting");
        let r = advance(&running, &seen("refreshing", Some(AFTER)), deadline + time::Duration::seconds(1));
        assert_eq!((r.status, r.finished_at), (PollStatus::TimedOut, Some(deadline + time::Duration::seconds(1))));
    }

    #[test]
    fn without_a_readable_last_refresh_the_snapshot_counts_from_the_trigger_less_the_skew() {
        let mut r = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        r.last_refresh = Some("not a time".into());
        // The engine's clock 30 s behind ours: its snapshot is stamped before our trigger.
        assert!(super::evidence(&r, &[snapshot(POOL, "2026-11-22T04:59:30Z")]).is_some(), "within the skew");
        let old = [snapshot(POOL, "2026-11-22T04:58:59Z")];
        assert!(super::evidence(&r, &old).is_none(), "more than a minute before the trigger");
    }

    #[test]
    fn a_renewed_that_outlasts_its_bound_fails_naming_the_snapshot_job() {
        let running = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&running, &seen("renewed", Some(AFTER)), NOW);
        assert_eq!((r.status, r.renewed_since), (PollStatus::Pending, Some(NOW)));
        let r = advance(&r, &seen("renewed", Some(AFTER)), NOW + RENEWED_BOUND);
        assert_eq!((r.status, r.renewed_since), (PollStatus::Pending, Some(NOW)), "at the bound itself: waiting");
        let late = NOW + RENEWED_BOUND + time::Duration::seconds(1);
        let failed = advance(&r, &seen("renewed", Some(AFTER)), late);
        assert_eq!((failed.status, failed.failure), (PollStatus::Failed, Some(RefreshFailure::NoSnapshot)));
        assert!(failed.alert.unwrap().contains("logicalSnapshot is missing"));
        // Snapshotting in between starts the count again.
        let moved = advance(&r, &seen("snapshotting", Some(AFTER)), late);
        assert_eq!((moved.status, moved.renewed_since), (PollStatus::Pending, None));
        let again = advance(&moved, &seen("renewed", Some(AFTER)), late);
        assert_eq!(again.renewed_since, Some(late));
    }

    #[test]
    fn on_an_lvm_engine_accepted_by_the_request_finished_is_the_success() {
        let mut lvm = advance(&started(BEFORE), &seen("refreshing", Some(AFTER)), NOW);
        lvm.unproven = Some("LVM".into());
        let mut done = seen("finished", Some(AFTER));
        done.snapshots = Some(Vec::new());
        let r = advance(&lvm, &done, NOW);
        assert_eq!((r.status, r.snapshot, r.failure), (PollStatus::Ready, None, None));
        lvm.unproven = None;
        assert_eq!(advance(&lvm, &done, NOW).failure, Some(RefreshFailure::NoSnapshot), "ZFS needs its snapshot");
    }

    #[test]
    fn the_pool_is_the_one_the_engine_shows_refreshing() {
        let mut look = seen("refreshing", Some(AFTER));
        look.refreshing_pool = Some("other_pool".into());
        let r = advance(&started(BEFORE), &look, NOW);
        assert_eq!(r.pool.as_deref(), Some("other_pool"), "the engine's word over the prediction");
        let mut idle = seen("finished", Some(BEFORE));
        idle.refreshing_pool = Some("third_pool".into());
        let r = advance(&started(BEFORE), &idle, NOW);
        assert_eq!(r.pool.as_deref(), Some(POOL), "not this refresh's: the prediction stands");
    }

    #[test]
    fn the_engines_times_are_judged_on_its_own_clock() {
        // Triggered at NOW (05:00 ours). An engine five minutes ahead stamped its refresh and
        // snapshot at 05:05; one made at 05:03 on its clock is two minutes older than the
        // trigger, though three minutes later than it on ours.
        let mut ahead = started(BEFORE);
        ahead.engine_clock = EngineClock { ahead_ms: Some(300_000), half_trip_ms: 0, answered: None };
        let quick = |started_at: &str| Look {
            retrieving: Retrieving {
                status: RetrievalStatus::Finished,
                last_refresh: Some(started_at.into()),
                ..Default::default()
            },
            engine_started_at: Some(STARTED.into()),
            refreshing_pool: None,
            snapshots: Some(vec![snapshot(POOL, started_at)]),
        };
        let r = advance(&ahead, &quick("2026-11-22T05:05:00Z"), NOW);
        assert_eq!(r.status, PollStatus::Ready, "{:?}", r.alert);
        let r = advance(&ahead, &quick("2026-11-22T05:03:00Z"), NOW);
        assert!(!r.seen_start && r.status == PollStatus::Pending, "a refresh from before the trigger is not this one");
        ahead.last_refresh = None;
        assert!(super::evidence(&ahead, &[snapshot(POOL, "2026-11-22T05:03:00Z")]).is_none());
        assert!(super::evidence(&ahead, &[snapshot(POOL, "2026-11-22T05:04:58Z")]).is_some(), "within the read error");
        // Five minutes behind: its refresh, stamped 04:55, started after the trigger.
        let mut behind = started(BEFORE);
        behind.engine_clock = EngineClock { ahead_ms: Some(-300_000), half_trip_ms: 0, answered: None };
        let r = advance(&behind, &quick("2026-11-22T04:55:00Z"), NOW);
        assert_eq!(r.status, PollStatus::Ready, "{:?}", r.alert);
        assert!(
            advance(&started(BEFORE), &quick("2026-11-22T04:55:00Z"), NOW).status == PollStatus::Pending,
            "unread: the skew allows a minute only"
        );
    }
}
