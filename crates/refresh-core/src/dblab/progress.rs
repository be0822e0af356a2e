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

use super::client::{RUNNING_STATUSES, Retrieving};
use super::engine::EngineIdentity;
use crate::request::DblabSpec;
use crate::run::{PollStatus, Refresh, RefreshFailure, RefreshPhase};

/// Consecutive looks at a restore without a dump before the dump counts as over.
pub const DUMP_OVER_LOOKS: u32 = 2;

/// How far the engine's clock may be behind ours when it stamps `lastRefresh` (which it
/// also truncates to the second).
pub const CLOCK_SKEW: time::Duration = time::Duration::seconds(60);

/// The job running now, inferred from the activity lists; `None` when it cannot be told.
pub fn phase_of(retrieving: &Retrieving) -> Option<RefreshPhase> {
    match retrieving.status.as_str() {
        "snapshotting" | "renewed" => return Some(RefreshPhase::Snapshot),
        "refreshing" => {}
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

/// A refresh triggered `at`, on an engine that looked like `before` just ahead of it.
pub fn triggered(
    at: OffsetDateTime,
    spec: &DblabSpec,
    before: &Retrieving,
    engine: EngineIdentity,
    dump_parallel_jobs: u32,
    release_after_dump: bool,
) -> Refresh {
    Refresh {
        previous_last_refresh: before.last_refresh().to_string(),
        triggered_at: at,
        deadline: at + spec.timeout,
        start_deadline: Some(at + spec.start_timeout),
        skipped_before: before.skipped_mark(),
        engine: Some(engine),
        dump_parallel_jobs,
        status: PollStatus::Pending,
        retrieval_status: before.status.clone(),
        last_refresh: before.last_refresh().to_string(),
        seen_start: false,
        failure: None,
        adopted: false,
        phase: None,
        alert: None,
        polls: 0,
        finished_at: None,
        release_after_dump,
        restore_looks: 0,
        dump_over: false,
        release_clone: false,
    }
}

/// A refresh found already started from this run's clone (the answer to its trigger was
/// lost): seen started, followed from `now` on.
pub fn adopted(
    now: OffsetDateTime,
    spec: &DblabSpec,
    seen: &Retrieving,
    engine: EngineIdentity,
    dump_parallel_jobs: u32,
    release_after_dump: bool,
) -> Refresh {
    Refresh {
        start_deadline: None,
        seen_start: true,
        adopted: true,
        ..triggered(now, spec, seen, engine, dump_parallel_jobs, release_after_dump)
    }
}

/// Whether `lastRefresh` says a refresh started at or after `t`. It is written in the
/// engine host's zone, which RFC 3339 carries.
pub fn started_after(last_refresh: &str, t: OffsetDateTime) -> bool {
    OffsetDateTime::parse(last_refresh, &Rfc3339).is_ok_and(|started| started >= t - CLOCK_SKEW)
}

fn started_since(last_refresh: &str, previous: &str, triggered_at: OffsetDateTime) -> bool {
    last_refresh != previous && started_after(last_refresh, triggered_at)
}

/// What a restart of the engine looks like from outside: `lastRefresh` lost after it had
/// a value, or the status back to `inactive` (the state of a fresh process).
fn restart_seen(prev: &Refresh, seen: &Retrieving) -> Option<String> {
    if !prev.last_refresh.is_empty() && seen.last_refresh().is_empty() {
        return Some(format!(
            "the DBLab Engine restarted: lastRefresh went from {:?} to null and retrieval is now {:?}, so this run's refresh did not complete; start a new run",
            prev.last_refresh, seen.status
        ));
    }
    if seen.status == "inactive" && prev.retrieval_status != "inactive" {
        return Some(format!(
            "the DBLab Engine restarted or stopped the refresh: retrieval went from {:?} back to \"inactive\"; start a new run",
            prev.retrieval_status
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

/// The next state of a refresh after one look at the engine. `finished` and `failed`
/// count only once this refresh was seen to run: a running status, or a `lastRefresh`
/// from the trigger on. Neither within the start window means the engine never started it.
pub fn advance(prev: &Refresh, seen: &Retrieving, now: OffsetDateTime) -> Refresh {
    let mut next = prev.clone();
    next.polls += 1;
    next.retrieval_status = seen.status.clone();
    next.last_refresh = seen.last_refresh().to_string();
    next.seen_start = prev.seen_start
        || RUNNING_STATUSES.contains(&seen.status.as_str())
        || started_since(seen.last_refresh(), &prev.previous_last_refresh, prev.triggered_at);
    let phase = phase_of(seen);
    if phase.is_some() {
        next.phase = phase;
    }
    // The dump is over when restore sessions run and no dump session does, seen on
    // consecutive looks; or once the engine is past its jobs. Never inferred from a
    // `dump+restore` look (immediateRestore), nor from a look without activity.
    next.restore_looks = if phase == Some(RefreshPhase::Restore) { prev.restore_looks + 1 } else { 0 };
    next.dump_over = prev.dump_over
        || next.restore_looks >= DUMP_OVER_LOOKS
        || (next.seen_start && matches!(seen.status.as_str(), "renewed" | "snapshotting"));
    let restart = restart_seen(prev, seen);
    next.status = match (&restart, next.seen_start, seen.status.as_str()) {
        (Some(why), _, _) => {
            next.alert = Some(why.clone());
            next.failure = Some(RefreshFailure::EngineRestarted);
            PollStatus::Failed
        }
        (None, true, "finished") => PollStatus::Ready,
        (None, true, "failed") => {
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
            crate::run::rfc3339(prev.triggered_at),
            seen.status,
            if seen.last_refresh().is_empty() { "null".to_string() } else { format!("{:?}", seen.last_refresh()) },
        );
        if let Some(skipped) = new_skip(prev, seen) {
            why.push_str(&format!("; the engine raised refresh_skipped: {skipped}"));
        }
        next.alert = Some(why);
    }
    if next.status == PollStatus::Pending && now > prev.deadline {
        next.status = PollStatus::TimedOut;
        next.alert = Some(format!("no outcome by the deadline; last status {:?}", seen.status));
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
    use crate::dblab::client::{Activity, Alert};

    const NOW: OffsetDateTime = datetime!(2026-11-22 05:00 UTC);
    const BEFORE: &str = "2026-11-21T05:00:00Z";
    const AFTER: &str = "2026-11-22T05:00:01Z";

    fn started(previous: &str) -> Refresh {
        let spec = DblabSpec {
            api_endpoint: "https://dblab.internal".into(),
            token_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:t".into(),
            insecure: false,
            allow_plaintext: false,
            ca_certificate: None,
            poll_interval: std::time::Duration::from_secs(30),
            timeout: std::time::Duration::from_secs(4 * 3_600),
            start_timeout: std::time::Duration::from_secs(300),
            restore_parallel_jobs: None,
        };
        let before = seen("finished", Some(previous).filter(|p| !p.is_empty()));
        let engine = EngineIdentity { version: "v4.2.0".into(), api: crate::dblab::Api::V42 };
        triggered(NOW, &spec, &before, engine, 2, true)
    }

    fn seen(status: &str, last_refresh: Option<&str>) -> Retrieving {
        Retrieving {
            mode: "logical".into(),
            status: status.into(),
            last_refresh: last_refresh.map(str::to_string),
            ..Default::default()
        }
    }

    fn with_activity(source: usize, target: usize) -> Retrieving {
        let mut s = seen("refreshing", Some(AFTER));
        s.activity = Some(Activity { source: Some(vec![json!({}); source]), target: Some(vec![json!({}); target]) });
        s
    }

    #[test]
    fn the_dump_is_over_after_two_restore_looks_and_the_clone_is_released_once() {
        let r = advance(&started(BEFORE), &with_activity(2, 0), NOW);
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(!r.dump_over && !r.release_clone, "one look is not enough");
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(r.dump_over && r.release_clone);
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(r.dump_over && !r.release_clone, "released on one poll only");
    }

    #[test]
    fn an_interrupted_or_overlapping_restore_is_not_the_end_of_the_dump() {
        let r = advance(&started(BEFORE), &with_activity(0, 1), NOW);
        let r = advance(&r, &seen("refreshing", Some(AFTER)), NOW);
        let r = advance(&r, &with_activity(0, 1), NOW);
        assert!(!r.dump_over, "a look without activity breaks the run of restore looks");
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
        s.alerts = Some(BTreeMap::from([(
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
        fresh.retrieval_status = "inactive".into();
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
            s.alerts = Some(BTreeMap::from([(
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
        prev.skipped_before = mark(1).skipped_mark();
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
        assert_eq!(phase_of(&s), None);
        s.activity = Some(Activity { source: Some(vec![json!({})]), target: Some(vec![]) });
        assert_eq!(phase_of(&s), Some(RefreshPhase::Dump));
        s.activity = Some(Activity { source: Some(vec![]), target: Some(vec![json!({})]) });
        assert_eq!(phase_of(&s), Some(RefreshPhase::Restore));
        s.activity = Some(Activity { source: Some(vec![json!({})]), target: Some(vec![json!({})]) });
        assert_eq!(phase_of(&s), Some(RefreshPhase::DumpAndRestore));
        assert_eq!(phase_of(&seen("snapshotting", Some(AFTER))), Some(RefreshPhase::Snapshot));
    }
}
