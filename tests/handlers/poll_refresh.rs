use std::time::Duration;

use dblab_emulator::{Outcome, Settings, StartFailure, Version};
use refresh_core::RefreshError;
use refresh_core::dblab::{Refresh, RefreshFailure, RefreshPhase, RetrievalStatus};
use refresh_core::poll::PollStatus;
use refresh_core::run::Execution;
use refresh_core::watch::Watch;
use refresh_tests::World;
use serde_json::{Value, json};

use crate::patch_dblab::patch;
use crate::{poll_deps, ready_clone};

pub async fn poll(
    w: &World,
    request: &Value,
    execution: &Execution,
    refresh: &Refresh,
) -> Result<Refresh, RefreshError> {
    let input = ::poll_refresh::Input {
        execution: execution.clone(),
        request: crate::typed(request),
        refresh: refresh.clone(),
    };
    ::poll_refresh::handle(&poll_deps(w), input, Watch::once()).await
}

/// A started refresh on an engine with these settings, and the request that started it.
async fn started(settings: Settings) -> (World, Value, Execution, Refresh) {
    let w = World::with_engine(settings).await;
    let (_, mut request, execution) = w.rds_case().await;
    request["dblab"]["timeout"] = serde_json::json!("3s");
    let clone = ready_clone(&w, &request, &execution).await;
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    (w, request, execution, refresh)
}

/// Polls until the refresh leaves `pending`, collecting the phases seen.
async fn settle(
    w: &World,
    request: &Value,
    execution: &Execution,
    mut refresh: Refresh,
) -> (Refresh, Vec<RefreshPhase>) {
    let mut phases = Vec::new();
    for _ in 0..200 {
        refresh = poll(w, request, execution, &refresh).await.unwrap();
        if let Some(p) = refresh.phase
            && phases.last() != Some(&p)
        {
            phases.push(p);
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
    assert_eq!(done.retrieval_status, RetrievalStatus::Finished);
    assert_eq!(phases, [RefreshPhase::Dump, RefreshPhase::Restore, RefreshPhase::Snapshot]);
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
    assert_eq!(phases, [RefreshPhase::Dump]);
    assert!(timed_out.alert.unwrap().contains("refreshing"));
}

#[tokio::test]
async fn a_password_changed_after_the_trigger_fails_the_dump() {
    let (w, request, execution, refresh) = started(Settings::default()).await;
    w.emulator.configure(|s| {
        s.expected_password = Some("the-real-one".into());
        s.dump_ms = 300;
    });
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
    let input = ::poll_refresh::Input { execution, request: crate::typed(&request), refresh };
    let window = refresh_core::dblab::LOOK_TIME + Duration::from_secs(30);
    let done = ::poll_refresh::handle(&poll_deps(&w), input, Watch::for_window(window)).await.unwrap();
    assert_eq!(done.status, PollStatus::Ready);
    assert!(done.polls >= 2, "looked {} times", done.polls);
}

#[tokio::test]
async fn a_watch_ends_pending_when_its_window_is_over() {
    let (w, mut request, execution, refresh) =
        started(Settings { outcome: Outcome::Hang, ..Settings::default() }).await;
    request["dblab"]["pollInterval"] = serde_json::json!("1s");
    request["dblab"]["timeout"] = serde_json::json!("1m");
    let input = ::poll_refresh::Input { execution, request: crate::typed(&request), refresh };
    // Room for looks at 0, 1 and 2 s, each of which may take the longest a look can take.
    let window = refresh_core::dblab::LOOK_TIME + Duration::from_millis(2_500);
    let watched = ::poll_refresh::handle(&poll_deps(&w), input, Watch::for_window(window)).await.unwrap();
    assert_eq!(watched.status, PollStatus::Pending);
    assert_eq!(watched.polls, 3, "a fourth look could end past the window");
}

const VERSIONS: [Version; 2] = [Version::V41, Version::V42];

/// A refresh started with a 2 s start window.
async fn started_with_window(settings: Settings) -> (World, Value, Execution, Refresh) {
    let w = World::with_engine(settings).await;
    let (_, mut request, execution) = w.rds_case().await;
    request["dblab"]["startTimeout"] = serde_json::json!("2s");
    let clone = ready_clone(&w, &request, &execution).await;
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    (w, request, execution, refresh)
}

#[tokio::test]
async fn an_accepted_refresh_the_engine_never_starts_fails_fast() {
    for version in VERSIONS {
        let (w, request, execution, refresh) =
            started_with_window(Settings { version, start_failure: StartFailure::Silent, ..Settings::default() }).await;
        let (failed, _) = settle(&w, &request, &execution, refresh).await;
        assert_eq!((failed.status, failed.failure), (PollStatus::Failed, Some(RefreshFailure::NotStarted)));
        let alert = failed.alert.unwrap();
        assert!(alert.contains("failed to initiate full refresh"), "{alert}");
        assert!(failed.finished_at.unwrap() < failed.deadline, "well before dblab.timeout");
        assert!(w.emulator.view().log.iter().any(|l| l.starts_with("failed to initiate full refresh")));
    }
}

#[tokio::test]
async fn a_skipped_refresh_says_why() {
    let (w, request, execution, refresh) =
        started_with_window(Settings { start_failure: StartFailure::Skipped, ..Settings::default() }).await;
    let (failed, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(failed.failure, Some(RefreshFailure::NotStarted));
    assert!(failed.alert.unwrap().contains("refresh_skipped: Pool to perform full refresh not found"));
}

#[tokio::test]
async fn an_engine_restart_mid_refresh_is_not_a_success() {
    for version in VERSIONS {
        for outcome in [Outcome::Restart, Outcome::GoInactive] {
            let (w, request, execution, refresh) =
                started(Settings { version, outcome, dump_ms: 1_500, ..Settings::default() }).await;
            let (failed, _) = settle(&w, &request, &execution, refresh).await;
            assert_eq!(failed.status, PollStatus::Failed, "{version:?} {outcome:?}: {failed:?}");
            assert_eq!(failed.failure, Some(RefreshFailure::EngineRestarted));
            assert!(failed.alert.unwrap().contains("restarted"));
            assert_eq!(w.emulator.view().last_refresh, None, "the engine lost its lastRefresh");
        }
    }
}

#[tokio::test]
async fn a_restart_whose_startup_refresh_finishes_is_still_a_restart() {
    for version in VERSIONS {
        // The new process refreshes by itself (a free pool): lastRefresh is set again and the
        // status ends `finished`, but the engine's start time says what happened.
        let (w, request, execution, refresh) =
            started(Settings { version, outcome: Outcome::RestartAndRefresh, dump_ms: 1_000, ..Settings::default() })
                .await;
        let (failed, _) = settle(&w, &request, &execution, refresh.clone()).await;
        assert_eq!((failed.status, failed.failure), (PollStatus::Failed, Some(RefreshFailure::EngineRestarted)));
        let alert = failed.alert.unwrap();
        assert!(alert.contains(&format!("not {}", refresh.engine_started_at.unwrap())), "{alert}");
        assert_eq!(w.emulator.view().refreshes_started, 2, "its own startup refresh ran");
    }
}

#[tokio::test]
async fn a_finished_refresh_is_proven_by_the_engines_new_snapshot() {
    for version in VERSIONS {
        let (w, request, execution, refresh) = started(Settings { version, ..Settings::default() }).await;
        let (done, _) = settle(&w, &request, &execution, refresh).await;
        assert_eq!(done.status, PollStatus::Ready);
        let engine = w.emulator.view();
        let made = engine.snapshots.iter().find(|s| s.created_at.as_str() >= "2026-02").unwrap();
        let recorded = done.snapshot.unwrap();
        assert_eq!((recorded.id.as_str(), recorded.pool.as_str()), (made.id.as_str(), "dblab_pool"));
        assert_eq!(recorded.data_state_at.as_deref(), Some(made.data_state_at.as_str()));
    }
}

#[tokio::test]
async fn finished_without_a_new_snapshot_is_a_failure_of_its_own() {
    for version in VERSIONS {
        let (w, request, execution, refresh) =
            started(Settings { version, snapshot_exists: true, ..Settings::default() }).await;
        let (failed, _) = settle(&w, &request, &execution, refresh).await;
        assert_eq!((failed.status, failed.failure), (PollStatus::Failed, Some(RefreshFailure::NoSnapshot)));
        assert_eq!(failed.retrieval_status, RetrievalStatus::Finished, "the engine itself says finished");
        let alert = failed.alert.unwrap();
        assert!(alert.contains("made no snapshot of pool dblab_pool"), "{alert}");
        assert!(alert.contains("its newest is dblab_pool@snapshot_20260101000000"), "{alert}");
    }
}

#[tokio::test]
async fn an_alert_quoting_the_password_in_any_form_passes_none_on() {
    // The tool's error quotes the DSN (password URL-encoded) and its options (JSON-escaped).
    let (w, request, execution, refresh) =
        started(Settings { fail_echoing_password: true, ..Settings::default() }).await;
    let (failed, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(failed.status, PollStatus::Failed);
    let alert = failed.alert.clone().unwrap();
    assert!(alert.starts_with("pg_dump: error: connection to server failed for postgres://dblab:***@"), "{alert}");
    w.assert_no_secret(&serde_json::to_string(&failed).unwrap());
}

#[tokio::test]
async fn an_engine_whose_clock_is_five_minutes_off_either_way_still_proves_its_refresh() {
    // A refresh short enough to start and finish between two looks: only the engine's
    // `lastRefresh` and its snapshot's `createdAt`, on its own clock, tell it ran.
    for ahead in [-300, 300] {
        let quick = Settings {
            clock_ahead_seconds: ahead,
            dump_ms: 10,
            restore_ms: 10,
            snapshot_ms: 10,
            ..Settings::default()
        };
        let (w, request, execution, refresh) = started(quick).await;
        let read = refresh.engine_clock.ahead_ms.expect("the engine's Date header is read");
        assert!((read - ahead * 1_000).abs() <= 1_500, "{ahead} s: read {read} ms");
        while w.emulator.view().status != "finished" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = poll(&w, &request, &execution, &refresh).await.unwrap();
        assert_eq!((done.status, done.failure), (PollStatus::Ready, None), "{ahead} s: {:?}", done.alert);
        assert!(done.seen_start, "{ahead} s");
        let made = w.emulator.view().snapshots.iter().map(|s| s.id.clone()).max().unwrap();
        assert_eq!(done.snapshot.map(|s| s.id), Some(made), "{ahead} s");
    }
}

/// A run, then its clone deleted, then the engine process restarted: its start-up refresh
/// reads the dead clone. Waits for the new process to settle.
async fn restarted_after_a_run(settings: Settings) -> (World, Refresh) {
    let (w, request, execution, refresh) = started(settings).await;
    let (done, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!(done.status, PollStatus::Ready, "{:?}", done.alert);
    let host = w.emulator.view().dump_sources.last().unwrap().host.clone();
    w.emulator.configure(|s| s.dead_sources = vec![host]);
    w.emulator.restart_process();
    for _ in 0..100 {
        if !["refreshing", "renewed", "snapshotting"].contains(&w.emulator.view().status.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (w, done)
}

#[tokio::test]
async fn a_restart_after_a_run_leaves_the_engines_data_in_place() {
    let fresh = |done: &Refresh| done.snapshot.clone().unwrap();
    // Two pools: the start-up refresh takes the other one and fails in its dump; the data
    // this run brought stays listed, and the other pool's data is still on disk.
    let two = Settings {
        pools: vec![dblab_emulator::PoolSetting::free("pool_a"), dblab_emulator::PoolSetting::free("pool_b")],
        ..Settings::default()
    };
    let (w, done) = restarted_after_a_run(two).await;
    let engine = w.emulator.view();
    assert_eq!(engine.status, "failed", "{:?}", engine.log);
    assert_eq!(engine.refreshes_started, 2, "the start-up refresh ran");
    let refreshed = fresh(&done);
    let front = &engine.pools[0];
    assert_eq!((front.name.as_str(), front.status.as_str()), (refreshed.pool.as_str(), "active"));
    let other = &engine.pools[1];
    assert_eq!(other.status, "empty", "the failed start-up refresh empties the pool it took");
    assert!(other.data_state_at.is_some(), "a failed dump leaves the pool's data on disk");
    let listed: Vec<String> = w.emulator.view().snapshots.iter().map(|s| s.id.clone()).collect();
    assert!(listed.contains(&refreshed.id), "{listed:?}");
    // One pool with skipStartRefresh: nothing runs, nothing moves.
    let (w, done) = restarted_after_a_run(Settings { skip_start_refresh: true, ..Settings::default() }).await;
    let engine = w.emulator.view();
    assert_eq!((engine.status.as_str(), engine.refreshes_started), ("inactive", 1));
    assert_eq!(engine.pools[0].status, "active");
    assert_eq!(engine.snapshots.iter().map(|s| &s.id).max(), Some(&fresh(&done).id));
    // One pool without it: hidden until the next config change, its data on disk intact.
    let (w, done) = restarted_after_a_run(Settings::default()).await;
    let engine = w.emulator.view();
    assert_eq!((engine.status.as_str(), engine.pools[0].status.as_str()), ("failed", "empty"));
    assert_eq!(engine.pools[0].data_state_at, fresh(&done).data_state_at);
}

#[tokio::test]
async fn on_lvm_a_refresh_is_taken_on_the_engines_finished_and_said_to_be_unproven() {
    let pools = vec![dblab_emulator::PoolSetting { lvm: true, ..dblab_emulator::PoolSetting::free("lvm_pool") }];
    let w = World::with_engine(Settings { pools, ..Settings::default() }).await;
    let (_, mut request, execution) = w.rds_case().await;
    request["dblab"]["allowLvm"] = json!(true);
    let clone = ready_clone(&w, &request, &execution).await;
    let mut refused = request.clone();
    refused["dblab"]["allowLvm"] = json!(false);
    let err = patch(&w, &refused, &execution, &clone).await.unwrap_err();
    assert_eq!(err.name(), "DblabMisconfigured", "patch-dblab checks it again: {err}");
    assert_eq!(w.emulator.view().config_updates, 0);
    let refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    assert!(refresh.unproven.as_deref().is_some_and(|u| u.contains("rests on the engine's \"finished\" alone")));
    let (done, _) = settle(&w, &request, &execution, refresh).await;
    assert_eq!((done.status, done.snapshot), (PollStatus::Ready, None), "no snapshot is taken for evidence");
    // The technical snapshot LVM lists is stamped with the time it is asked: it would have
    // passed for this refresh's evidence.
    let listed = w.engine_call(reqwest::Method::GET, "/snapshots", None).await;
    assert_eq!(listed[0]["id"], "TechnicalSnapshot", "{listed}");
    assert!(listed[0]["createdAt"].as_str().unwrap() >= done.last_refresh.as_deref().unwrap(), "{listed}");
}

#[tokio::test]
async fn a_look_at_another_engine_than_the_locked_one_stops_the_watch() {
    let (w, request, execution, refresh) = started(Settings { dump_ms: 5_000, ..Settings::default() }).await;
    assert_eq!(refresh.locked_instance, w.emulator.settings().instance_id);
    let pending = poll(&w, &request, &execution, &refresh).await.unwrap();
    assert_eq!(pending.status, PollStatus::Pending);
    w.emulator.configure(|s| s.instance_id = Some("rebuilt-engine".into()));
    let err = poll(&w, &request, &execution, &pending).await.unwrap_err();
    assert_eq!(err.name(), "DblabEngineChanged", "{err}");
}
