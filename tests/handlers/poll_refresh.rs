use std::time::Duration;

use dblab_emulator::{Outcome, Settings};
use refresh_core::RefreshError;
use refresh_core::run::{Execution, PollStatus, Refresh};
use refresh_core::watch::Watch;
use refresh_tests::World;
use serde_json::Value;

use crate::patch_dblab::patch;
use crate::{poll_deps, ready_clone};

pub async fn poll(
    w: &World,
    request: &Value,
    execution: &Execution,
    refresh: &Refresh,
) -> Result<Refresh, RefreshError> {
    let input =
        ::poll_refresh::Input { execution: execution.clone(), request: request.clone(), refresh: refresh.clone() };
    ::poll_refresh::handle(&poll_deps(w), input, Watch::once()).await
}

/// A started refresh on an engine with these settings, and the request that started it.
async fn started(settings: Settings) -> (World, Value, Execution, Refresh) {
    let w = World::with_engine(settings).await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    request["dblab"]["timeout"] = serde_json::json!("3s");
    let execution = w.execution();
    let clone = ready_clone(&w, &request, &execution).await;
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    (w, request, execution, refresh)
}

/// Polls until the refresh leaves `pending`, collecting the phases seen.
async fn settle(w: &World, request: &Value, execution: &Execution, mut refresh: Refresh) -> (Refresh, Vec<String>) {
    let mut phases = Vec::new();
    for _ in 0..200 {
        refresh = poll(w, request, execution, &refresh).await.unwrap();
        if let Some(p) = &refresh.phase
            && phases.last() != Some(p)
        {
            phases.push(p.clone());
        }
        if refresh.status != PollStatus::Pending {
            return (refresh, phases);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("refresh never settled: {refresh:?}");
}

#[tokio::test]
async fn follows_dump_restore_and_snapshot_to_done() {
    let (w, request, execution, refresh) =
        started(Settings { dump_ms: 600, restore_ms: 600, snapshot_ms: 400, ..Settings::default() }).await;
    let (done, phases) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(done.status, PollStatus::Ready);
    assert!(done.seen_start);
    assert_eq!(done.retrieval_status, "finished");
    assert_eq!(phases, ["dump", "restore", "snapshot"]);
    assert!(done.finished_at.is_some() && done.polls > 3);
    w.assert_no_secret(&serde_json::to_string(&done).unwrap());
}

#[tokio::test]
async fn a_failed_refresh_carries_the_engines_alert() {
    let (w, request, execution, refresh) =
        started(Settings { outcome: Outcome::FailRestore, ..Settings::default() }).await;
    let (failed, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(failed.status, PollStatus::Failed);
    assert!(failed.alert.as_deref().unwrap().contains("postgis"), "{failed:?}");
}

#[tokio::test]
async fn a_failure_before_the_first_poll_is_seen_at_once() {
    let (w, request, execution, refresh) =
        started(Settings { outcome: Outcome::FailImmediately, ..Settings::default() }).await;
    let first = poll(&w, &request, &execution, &refresh).await.unwrap();
    assert_eq!(first.status, PollStatus::Failed, "lastRefresh changed: this run's failure, not a stale one");
    assert_eq!(first.polls, 1);
    assert!(first.alert.unwrap().contains("pg_dump"));
}

#[tokio::test]
async fn a_refresh_that_never_finishes_times_out() {
    let (w, request, execution, refresh) = started(Settings { outcome: Outcome::Hang, ..Settings::default() }).await;
    let (timed_out, phases) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(timed_out.status, PollStatus::TimedOut);
    assert_eq!(phases, ["dump"]);
    assert!(timed_out.alert.unwrap().contains("refreshing"));
}

#[tokio::test]
async fn going_back_to_inactive_is_a_failure() {
    let (w, request, execution, refresh) =
        started(Settings { outcome: Outcome::GoInactive, dump_ms: 300, ..Settings::default() }).await;
    let (failed, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(failed.status, PollStatus::Failed);
    assert!(failed.alert.unwrap().contains("inactive"));
}

#[tokio::test]
async fn a_wrong_password_fails_the_dump() {
    let (w, request, execution, refresh) =
        started(Settings { expected_password: Some("the-real-one".into()), ..Settings::default() }).await;
    let (failed, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(failed.status, PollStatus::Failed);
    assert!(failed.alert.unwrap().contains("password authentication failed"));
}

#[tokio::test]
async fn engine_errors_are_transient() {
    let (w, request, execution, refresh) = started(Settings { dump_ms: 5_000, ..Settings::default() }).await;
    w.emulator.configure(|s| s.http500 = true);
    let err = poll(&w, &request, &execution, &refresh).await.unwrap_err();
    assert_eq!(err.name(), "DblabUnavailable");
    assert!(err.is_transient());
}

#[tokio::test]
async fn one_invocation_watches_until_the_refresh_is_done() {
    let (w, mut request, execution, refresh) =
        started(Settings { dump_ms: 600, restore_ms: 600, snapshot_ms: 300, ..Settings::default() }).await;
    request["dblab"]["pollInterval"] = serde_json::json!("1s");
    request["dblab"]["timeout"] = serde_json::json!("1m");
    let input = ::poll_refresh::Input { execution, request, refresh };
    let done = ::poll_refresh::handle(&poll_deps(&w), input, Watch::for_window(Duration::from_secs(30))).await.unwrap();
    assert_eq!(done.status, PollStatus::Ready);
    assert!(done.polls >= 2, "looked {} times", done.polls);
}

#[tokio::test]
async fn a_watch_ends_pending_when_its_window_is_over() {
    let (w, mut request, execution, refresh) =
        started(Settings { outcome: Outcome::Hang, ..Settings::default() }).await;
    request["dblab"]["pollInterval"] = serde_json::json!("1s");
    request["dblab"]["timeout"] = serde_json::json!("1m");
    let input = ::poll_refresh::Input { execution, request, refresh };
    let watched =
        ::poll_refresh::handle(&poll_deps(&w), input, Watch::for_window(Duration::from_millis(2_500))).await.unwrap();
    assert_eq!(watched.status, PollStatus::Pending);
    assert_eq!(watched.polls, 3, "looks at 0, 1 and 2 s; a fourth would end past the window");
}
