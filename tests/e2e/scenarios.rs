use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dblab_emulator::{Outcome as EngineOutcome, Settings};
use refresh_core::row::Outcome;
use refresh_tests::fixture;
use serde_json::json;

use crate::Scenario;

#[tokio::test]
async fn rds_instance_happy_path() {
    // Phases longer than one invocation's 3 s watch, so both poll loops go round.
    let s =
        Scenario::new(Settings { dump_ms: 4_000, restore_ms: 2_000, snapshot_ms: 1_000, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "4"});
    let run = s.run("rds", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert!(run.entered("CheckClone") >= 2, "the clone poll loop went round");
    assert!(run.entered("PollRefresh") >= 2, "the refresh poll loop went round");
    assert!(row.snapshot_identifier.unwrap().starts_with("rds:"));
    assert!(row.data_as_of.is_some() && row.clone_lifetime_seconds.is_some());
    assert_eq!(row.cleanup, format!("clone {} deleted", row.clone_identifier.unwrap()));
    let engine = s.w.emulator.view();
    assert_eq!(engine.refreshes_started, 1);
    assert_eq!(engine.password.as_deref(), Some(s.w.password.as_str()));

    // History events one refresh poll iteration writes, measured between two waits, and
    // what that means for an 8-hour refresh (plus a 2-hour restore) at the 30 s defaults
    // even if every invocation looked only once (no watch).
    let waits: Vec<usize> = run
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.state_entered_event_details().is_some_and(|d| d.name() == "WaitForRefresh"))
        .map(|(i, _)| i)
        .collect();
    let per_poll = waits[1] - waits[0];
    let fixed = run.events.len();
    let eight_hours = (8 * 3_600 / 30 + 2 * 3_600 / 30) * per_poll + fixed;
    assert!(eight_hours < 25_000 / 2, "{per_poll} events per poll: {eight_hours} for an 8-hour refresh");
    let worst = refresh_core::request::MAX_POLLS_PER_RUN as usize * per_poll + fixed;
    assert!(worst < 25_000, "the most polls a request may ask for write {worst} events");
}

#[tokio::test]
async fn aurora_cluster_happy_path() {
    let s = Scenario::new(Settings::default()).await;
    let source = s.w.aurora_source().await;
    let run = s.run("aurora", &s.w.request("aurora-cluster", &source)).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_type.as_deref(), Some("aurora-cluster"));
    let host = &s.w.emulator.view().dump_sources[0].host;
    assert!(host.contains(row.clone_identifier.as_deref().unwrap()), "dumped from the clone's writer endpoint: {host}");
}

#[tokio::test]
async fn no_snapshot_available() {
    let s = Scenario::new(Settings::default()).await;
    let (source, request) = s.rds_source().await;
    let snapshots = s.w.rds.describe_db_snapshots().db_instance_identifier(&source).send().await.unwrap();
    for snap in snapshots.db_snapshots() {
        fixture("rds/snapshot-status", json!({"snapshot": snap.db_snapshot_identifier(), "status": "creating"})).await;
    }
    let run = s.run("nosnap", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("NoSnapshotAvailable"), Some("FindSnapshot")).await;
    assert_eq!(row.cleanup, "nothing to clean up: no clone was created");
}

#[tokio::test]
async fn explicit_snapshot_missing() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request["source"]["snapshotIdentifier"] = json!("no-such-snapshot");
    let run = s.run("missingsnap", &request).await;
    s.aftermath(&run, Outcome::Failed, Some("SnapshotNotFound"), Some("FindSnapshot")).await;
}

#[tokio::test]
async fn source_missing() {
    let s = Scenario::new(Settings::default()).await;
    let run = s.run("nosource", &s.w.request("rds", "no-such-db")).await;
    s.aftermath(&run, Outcome::Failed, Some("SourceNotFound"), Some("FindSnapshot")).await;
}

#[tokio::test]
async fn invalid_request_is_refused_before_anything_exists() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request["source"]["password"] = json!("do-not-accept-me");
    let run = s.run("invalid", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("InvalidRequest"), Some("StartRun")).await;
    assert!(row.error.unwrap().message.contains("source.password"));
    assert_eq!(s.w.emulator.view().config_updates, 0);
}

/// The preflight refuses: no clone is ever created and the engine is never changed.
async fn preflight_refusal(settings: Settings, error: &str) {
    let s = Scenario::new(settings).await;
    let (_, request) = s.rds_source().await;
    let run = s.run("preflight", &request).await;
    s.aftermath(&run, Outcome::Failed, Some(error), Some("FindSnapshot")).await;
    assert_eq!(run.entered("Restore"), 0, "no clone may be created");
    assert_eq!(s.w.emulator.view().config_updates, 0);
}

#[tokio::test]
async fn dblab_token_rejected() {
    preflight_refusal(Settings { reject_token: true, ..Settings::default() }, "DblabUnauthorized").await;
}

#[tokio::test]
async fn dblab_busy() {
    preflight_refusal(Settings { status: "refreshing".into(), ..Settings::default() }, "DblabBusy").await;
}

#[tokio::test]
async fn dblab_config_locked() {
    preflight_refusal(Settings { config_modification: false, ..Settings::default() }, "DblabMisconfigured").await;
}

#[tokio::test]
async fn dblab_with_its_own_timetable() {
    let settings =
        Settings { version: dblab_emulator::Version::V42, timetable: "0 3 * * *".into(), ..Settings::default() };
    preflight_refusal(settings, "DblabMisconfigured").await;
}

#[tokio::test]
async fn dblab_physical_mode() {
    preflight_refusal(Settings { mode: "physical".into(), ..Settings::default() }, "DblabNotLogical").await;
}

#[tokio::test]
async fn dblab_unreachable_after_retries() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    // Port 1: refused at once, and no test binds it (they take ephemeral ports; a port freed
    // here could be taken by another scenario's engine before the run dials it).
    request["dblab"]["apiEndpoint"] = json!("http://127.0.0.1:1");
    let run = s.run("unreachable", &request).await;
    s.aftermath(&run, Outcome::Failed, Some("DblabUnavailable"), Some("FindSnapshot")).await;
    assert_eq!(run.entered("Restore"), 0);
    let attempts = run.events.iter().filter(|e| e.lambda_function_failed_event_details().is_some()).count();
    assert_eq!(attempts, 5, "a transient error is retried (MaxAttempts 4) before the run gives up");
}

#[tokio::test]
async fn clone_ends_incompatible_restore() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "1", "test:final-status": "incompatible-restore"});
    let run = s.run("incompatible", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("CloneFailed"), Some("CheckClone")).await;
    assert!(row.error.unwrap().message.contains("incompatible-restore"));
    assert!(row.cleanup.ends_with("deleted"), "{}", row.cleanup);
}

#[tokio::test]
async fn clone_never_available() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "1000"});
    request["clone"]["restoreTimeout"] = json!("3s");
    let run = s.run("neverready", &request).await;
    s.aftermath(&run, Outcome::Failed, Some("CloneTimedOut"), Some("CheckClone")).await;
}

#[tokio::test]
async fn config_not_applied() {
    let s = Scenario::new(Settings { missing_keys: vec!["dbname".into()], ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let run = s.run("config", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("DblabConfigNotApplied"), Some("PatchDblab")).await;
    assert!(row.error.unwrap().message.contains("dbname"));
    assert_eq!(s.w.emulator.view().refreshes_started, 0);
}

#[tokio::test]
async fn refresh_fails_with_an_alert() {
    let s = Scenario::new(Settings { outcome: EngineOutcome::FailDump, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let run = s.run("alert", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("RefreshFailed"), Some("PollRefresh")).await;
    assert!(row.error.unwrap().message.contains("permission denied"));
}

#[tokio::test]
async fn refresh_fails_before_the_first_poll() {
    let s = Scenario::new(Settings { outcome: EngineOutcome::FailImmediately, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let run = s.run("early", &request).await;
    s.aftermath(&run, Outcome::Failed, Some("RefreshFailed"), Some("PollRefresh")).await;
    assert_eq!(run.entered("PollRefresh"), 1, "seen on the first poll, not after the timeout");
}

#[tokio::test]
async fn refresh_never_finishes() {
    let s = Scenario::new(Settings { outcome: EngineOutcome::Hang, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["dblab"]["timeout"] = json!("3s");
    let run = s.run("hang", &request).await;
    s.aftermath(&run, Outcome::Failed, Some("RefreshTimedOut"), Some("PollRefresh")).await;
}

#[tokio::test]
async fn a_5xx_storm_mid_run_still_cleans_up() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    // Time to break the engine after the clone exists and before it is ready.
    request["clone"]["tags"] = json!({"test:creating-polls": "3"});
    let (name, arn) = s.start("storm", &request).await;
    let prefix = format!("dblab-refresh-{}", s.w.target());
    for _ in 0..100 {
        if !s.w.rds_names(&prefix).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.w.emulator.configure(|e| e.http500 = true);
    let run = s.wait(&name, &arn).await;
    s.aftermath(&run, Outcome::Failed, Some("DblabUnavailable"), Some("PatchDblab")).await;
}

#[tokio::test]
async fn two_runs_of_one_target_at_once() {
    let s = Scenario::new(Settings { dump_ms: 1_500, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    // Two different requests for one target (the same request twice is a duplicate start).
    let mut other = request.clone();
    other["dblab"]["pollInterval"] = json!("2s");
    let first = s.start("first", &request).await;
    let second = s.start("second", &other).await;
    let (a, b) = (s.wait(&first.0, &first.1).await, s.wait(&second.0, &second.1).await);
    let (winner, loser) = if a.status == "SUCCEEDED" { (a, b) } else { (b, a) };
    assert_eq!(winner.status, "SUCCEEDED");
    assert_eq!((loser.status.as_str(), loser.error.as_deref()), ("FAILED", Some("TargetLocked")));
    assert_eq!(loser.entered("FindSnapshot"), 0, "the refused run creates nothing");
    assert_eq!(s.w.emulator.view().refreshes_started, 1);
    assert!(s.w.rds_names(&format!("dblab-refresh-{}", s.w.target())).await.is_empty());
    let messages = s.w.messages(&s.queue).await;
    for run in [&winner, &loser] {
        let count = messages.iter().filter(|m| m.body().unwrap_or_default().contains(&run.arn)).count();
        assert_eq!(count, 1, "one notification each");
    }
    refresh_tests::assert_no_leak(&s.leaks(&s.w.scanner(), &[&winner, &loser]).await, "two runs at once");
    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(&s.w.target(), 10)
        .await
        .unwrap();
    let outcomes: Vec<_> = rows.iter().map(|r| (r.execution_name.as_str(), r.outcome)).collect();
    assert_eq!(rows.len(), 2, "{outcomes:?}");
    assert!(
        outcomes.contains(&(winner.name.as_str(), Outcome::Succeeded))
            && outcomes.contains(&(loser.name.as_str(), Outcome::Failed))
    );
    s.assert_unlocked().await;
}

#[tokio::test]
async fn a_duplicate_start_is_recorded_as_skipped_and_is_no_failure() {
    let s = Scenario::new(Settings { dump_ms: 1_500, ..Settings::default() }).await;
    // A second subscriber sees every notification of this target, for counting.
    let all = s.w.subscribe_queue(&s.stack.topic_arn, Some(&s.w.target())).await;
    let (_, request) = s.rds_source().await;
    // As EventBridge Scheduler does when it retries a start whose answer it lost.
    let first = s.start("scheduled", &request).await;
    let second = s.start("retried", &request).await;
    let (a, b) = (s.wait(&first.0, &first.1).await, s.wait(&second.0, &second.1).await);
    let (run, duplicate) = if a.entered("SkippedDuplicate") == 0 { (a, b) } else { (b, a) };
    assert_eq!((run.status.as_str(), duplicate.status.as_str()), ("SUCCEEDED", "SUCCEEDED"), "no failure to alarm on");
    assert_eq!(duplicate.entered("SkippedDuplicate"), 1);
    assert_eq!(duplicate.entered("FindSnapshot") + duplicate.entered("RecordFailure"), 0, "it creates nothing");
    refresh_tests::assert_no_leak(&s.leaks(&s.w.scanner(), &[&duplicate]).await, "a duplicate start");

    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.execution_name, run.name);
    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(&s.w.target(), 10)
        .await
        .unwrap();
    let skipped = rows.iter().find(|r| r.execution_name == duplicate.name).unwrap();
    assert_eq!(skipped.outcome, Outcome::Skipped);
    assert_eq!(skipped.duplicate_of.as_deref(), Some(run.name.as_str()));
    assert!(skipped.cleanup.starts_with(&format!("skipped: duplicate of {}", run.name)), "{}", skipped.cleanup);
    let messages = s.w.messages(&all).await;
    assert_eq!(messages.len(), 1, "one email, for the run itself");
    assert!(!messages[0].body().unwrap_or_default().contains(&duplicate.arn));
}

#[tokio::test]
async fn a_run_stopped_by_hand_is_cleaned_up_by_the_cleanup_machine() {
    let s = Scenario::new(Settings { outcome: EngineOutcome::Hang, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let (name, arn) = s.start("stopped", &request).await;
    for _ in 0..200 {
        if s.w.emulator.view().refreshes_started == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.w.sfn.stop_execution().execution_arn(&arn).send().await.unwrap();
    let stopped = s.wait(&name, &arn).await;
    assert_eq!(stopped.status, "ABORTED");
    assert_eq!(stopped.entered("Cleanup"), 0, "no Catch runs for an aborted execution");
    let prefix = format!("dblab-refresh-{}", s.w.target());
    assert_eq!(s.w.rds_names(&prefix).await.len(), 1);

    // What the EventBridge rule on ended executions starts, with the event.
    let described = s.w.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned =
        s.clean_up(&name, &arn, described.status().as_str(), described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    refresh_tests::assert_no_leak(&s.leaks(&s.w.scanner(), &[&cleaned]).await, "the clean-up");

    // The stopped run's own row is finished, its lock released, one notification sent.
    let stopped_in = stopped.last_entered().unwrap();
    assert!(["WaitForRefresh", "PollRefresh", "IsRefreshDone"].contains(&stopped_in.as_str()), "{stopped_in}");
    let row = s.aftermath(&stopped, Outcome::Failed, Some("ExecutionStopped"), Some(&stopped_in)).await;
    let message = row.error.as_ref().unwrap().message.clone();
    assert!(message.starts_with(&format!("the execution ended ABORTED in state {stopped_in}")), "{message}");
    // Complete from the stopped execution's own history: what it restored, from when, which clone.
    let clone = row.clone_identifier.clone().unwrap_or_else(|| panic!("no clone in {row:?}"));
    assert!(clone.starts_with(&prefix), "{row:?}");
    assert_eq!(row.cleanup, format!("clone {clone} deleted"));
    assert!(row.snapshot_identifier.is_some() && row.clone_class.is_some(), "{row:?}");
    assert!(row.phases.iter().any(|p| p.name == "restore" && p.ended_at.is_some()), "{row:?}");
    assert!(row.clone_billed_seconds.is_some(), "{row:?}");

    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(&s.w.target(), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the running row was finished, not duplicated");

    // The engine restarted; the next run goes through.
    s.w.emulator.restart(Settings::default());
    let next = s.run("after", &request).await;
    assert_eq!(next.status, "SUCCEEDED", "{:?}", next.error);
}

#[tokio::test]
async fn twenty_targets_at_once() {
    let mut scenarios = Vec::new();
    for _ in 0..20 {
        let s = Scenario::new(Settings::default()).await;
        let (_, request) = s.rds_source().await;
        let started = s.start("many", &request).await;
        scenarios.push((s, started));
    }
    for (s, (name, arn)) in &scenarios {
        let run = s.wait(name, arn).await;
        s.aftermath(&run, Outcome::Succeeded, None, None).await;
    }
}

#[tokio::test]
async fn clone_deleted_once_the_dump_is_over() {
    // The restore into DBLab outlasts two polls after the dump, so the release comes first.
    let s =
        Scenario::new(Settings { dump_ms: 2_000, restore_ms: 5_000, snapshot_ms: 500, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["deleteAfterDump"] = json!(true);
    let run = s.run("early", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(run.entered("DeleteCloneAfterDump"), 1, "released exactly once");
    assert!(row.clone_deleted_after_dump, "{row:?}");
    assert!(row.cleanup.contains("once the dump was over"), "{}", row.cleanup);
    let engine = s.w.emulator.view();
    let at = |what: &str| engine.timeline.iter().find(|(w, _)| w == what).map(|(_, t)| *t).unwrap();
    let released = run.entered_at("DeleteCloneAfterDump").unwrap();
    assert!(at("restore") < released, "never before the dump is over");
    assert!(released < at("finished"), "while DBLab was still restoring");
}

#[tokio::test]
async fn delete_after_dump_with_immediate_restore_is_refused_before_anything_exists() {
    let s = Scenario::new(Settings { immediate_restore: true, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["deleteAfterDump"] = json!(true);
    let run = s.run("overlap", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("InvalidRequest"), Some("FindSnapshot")).await;
    assert!(row.error.unwrap().message.contains("clone.deleteAfterDump"));
    assert_eq!(run.entered("Restore"), 0, "no clone may be created");
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// When the execution started, by its first history event.
fn started(run: &crate::Run) -> time::OffsetDateTime {
    let first = std::time::SystemTime::try_from(*run.events[0].timestamp()).unwrap();
    time::OffsetDateTime::from(first)
}

#[tokio::test]
async fn latest_point_restore_records_its_restore_time() {
    let s = Scenario::new(Settings::default()).await;
    let (source, mut request) = s.rds_source().await;
    request["source"]["mode"] = json!("latest-point");
    let run = s.run("latest", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_mode.as_deref(), Some("latest-point"));
    assert_eq!(row.snapshot_identifier, None, "no snapshot in this mode");
    assert!(row.restored_from.as_deref().unwrap().starts_with(&format!("{source} at its latest restorable time")));
    // The latest restorable time read by the preflight: within the run, never its end.
    let as_of = row.data_as_of.unwrap();
    assert!(as_of >= started(&run) - time::Duration::seconds(2), "{as_of} before the run");
    assert!(as_of < row.finished_at.unwrap() - time::Duration::seconds(2), "{as_of} is the run's end");
}

#[tokio::test]
async fn point_in_time_restore_records_the_requested_time() {
    let s = Scenario::new(Settings::default()).await;
    let source = s.w.aurora_source().await;
    let cluster = s.w.rds.describe_db_clusters().db_cluster_identifier(&source).send().await.unwrap();
    let earliest = cluster.db_clusters()[0].earliest_restorable_time().and_then(refresh_core::clock::from_aws).unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let wanted = earliest + time::Duration::seconds(1);
    let mut request = s.w.request("aurora-cluster", &source);
    request["source"]["mode"] = json!("point-in-time");
    request["source"]["restoreTime"] = json!(rfc3339(wanted));
    let run = s.run("pitr", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_mode.as_deref(), Some("point-in-time"));
    assert_eq!(row.data_as_of, Some(wanted), "exactly the time asked for");
}

#[tokio::test]
async fn point_in_time_outside_the_window_is_refused_before_anything_exists() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request["source"]["mode"] = json!("point-in-time");
    request["source"]["restoreTime"] = json!(rfc3339(time::OffsetDateTime::now_utc() - time::Duration::days(30)));
    let run = s.run("too-old", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("InvalidRequest"), Some("FindSnapshot")).await;
    let message = row.error.unwrap().message;
    assert!(message.contains("source.restoreTime") && message.contains("outside the restorable window"), "{message}");
    assert_eq!(run.entered("Restore"), 0, "no clone may be created");
}

#[tokio::test]
async fn aurora_fast_clone_records_the_moment_of_cloning() {
    let s = Scenario::new(Settings::default()).await;
    let source = s.w.aurora_source().await;
    let mut request = s.w.request("aurora-cluster", &source);
    request["source"]["mode"] = json!("fast-clone");
    let run = s.run("fast", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_mode.as_deref(), Some("fast-clone"));
    assert_eq!(row.restored_from, Some(format!("copy-on-write clone of {source}")));
    let restore_called = run
        .events
        .iter()
        .find(|e| e.state_entered_event_details().is_some_and(|d| d.name() == "Restore"))
        .map(|e| time::OffsetDateTime::from(std::time::SystemTime::try_from(*e.timestamp()).unwrap()))
        .unwrap();
    let as_of = row.data_as_of.unwrap();
    assert!(as_of >= restore_called - time::Duration::seconds(1), "{as_of} is before the clone was asked for");
    assert!(as_of < restore_called + time::Duration::seconds(30), "{as_of} long after the clone was asked for");
}

#[tokio::test]
async fn a_clone_slow_to_go_leaves_the_refresh_a_success_and_says_so() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["deletionTimeout"] = json!("3s");
    // RDS refuses the deletion for a while (the instance is busy).
    let prefix = format!("dblab-refresh-{}", s.w.target());
    let fault = json!({"action": "DeleteDBInstance", "match": prefix, "status": 400, "code": "InvalidDBInstanceState", "times": 1000});
    fixture("faults", fault).await;
    let run = s.run("slowdelete", &request).await;
    fixture("faults/clear", json!({"match": prefix})).await;
    assert_eq!(run.status, "SUCCEEDED", "{:?}", run.error);
    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(&s.w.target(), 5)
        .await
        .unwrap();
    let row = rows.iter().find(|r| r.execution_name == run.name).unwrap();
    assert_eq!(row.outcome, Outcome::Succeeded, "{row:?}");
    assert!(row.error.is_none(), "{row:?}");
    assert!(row.clone_left_behind && row.cleanup.contains("still deleting"), "{row:?}");
    s.assert_unlocked().await;
    // The clone is left for the sweep; the test removes it itself.
    let left = s.w.rds_names(&prefix).await;
    assert_eq!(left.len(), 1, "{left:?}");
    s.w.rds.delete_db_instance().db_instance_identifier(&left[0]).skip_final_snapshot(true).send().await.unwrap();
}

#[tokio::test]
async fn a_failed_run_that_recorded_itself_is_left_alone_by_the_cleanup() {
    let s = Scenario::new(Settings::default()).await;
    let run = s.run("handled", &s.w.request("rds", "no-such-db")).await;
    s.aftermath(&run, Outcome::Failed, Some("SourceNotFound"), Some("FindSnapshot")).await;
    let described = s.w.sfn.describe_execution().execution_arn(&run.arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned = s.clean_up(&run.name, &run.arn, "FAILED", described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    assert_eq!(cleaned.entered("Cleanup") + cleaned.entered("RecordOutcome") + cleaned.entered("Notify"), 0);
    // No second notification, and the row keeps the run's own outcome.
    let again = s.w.messages(&s.queue).await;
    assert!(again.iter().all(|m| !m.body().unwrap_or_default().contains(&run.arn)), "a second notification");
    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(&s.w.target(), 5)
        .await
        .unwrap();
    let row = rows.iter().find(|r| r.execution_name == run.name).unwrap();
    assert_eq!(row.error.as_ref().map(|e| e.name.as_str()), Some("SourceNotFound"), "{row:?}");
}

#[tokio::test]
async fn a_run_that_failed_without_recording_is_finished_by_the_cleanup() {
    // As when an error no Catch handles (States.Runtime) ends a run: its row still says
    // running and its lock is held.
    let s = Scenario::new(Settings::default()).await;
    let (_, request) = s.rds_source().await;
    let run = s.w.failing_execution("runtime").await;
    let history = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table);
    let deps = ::record::Deps {
        history,
        executions: refresh_core::executions::Executions::new(s.w.sfn.clone()),
        region: "us-east-1".into(),
        freshness_default: std::time::Duration::from_secs(36 * 3_600),
        metrics_namespace: "dblab-refresh/test".into(),
        metrics: refresh_core::metrics::Sink::collecting(),
    };
    let start = time::OffsetDateTime::now_utc();
    let execution = refresh_core::run::Execution { started_at: Some(start), ..run.clone() };
    ::record::handle(&deps, ::record::Input::Start { execution, request: request.clone() }).await.unwrap();
    let arn = run.arn.clone().unwrap();
    let failed = s.wait(&run.name, &arn).await;
    assert_eq!(failed.status, "FAILED");
    let millis = i64::try_from(start.unix_timestamp_nanos() / 1_000_000).unwrap();
    let cleaned = s.clean_up(&run.name, &arn, "FAILED", &request.to_string(), millis).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    assert_eq!(cleaned.entered("Cleanup"), 1);
    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(&s.w.target(), 5)
        .await
        .unwrap();
    let row = rows.iter().find(|r| r.execution_name == run.name).unwrap();
    assert_eq!(row.outcome, Outcome::Failed, "{row:?}");
    let message = &row.error.as_ref().unwrap().message;
    assert!(message.starts_with("the execution ended FAILED in state P (States.Runtime: "), "{row:?}");
    let messages = s.w.messages(&s.queue).await;
    assert_eq!(messages.iter().filter(|m| m.body().unwrap_or_default().contains(&arn)).count(), 1);
    s.assert_unlocked().await;
}

#[tokio::test]
async fn the_leak_scan_finds_a_secret_planted_in_a_row_and_the_fleet_item() {
    // Self-test of the scan every scenario ends with, on the real table: each place, each form.
    let s = Scenario::new(Settings::default()).await;
    let scanner = s.w.scanner();
    assert!(s.leaks(&scanner, &[]).await.is_empty(), "a fresh target has nothing to find");
    let forms = refresh_tests::leaks::forms(&s.w.password);
    for (form, value) in &forms {
        // Items any reader can still parse (a fleet query may run meanwhile), plus the plant.
        let put = |pk: String, sk: &str| {
            s.w.dynamodb
                .put_item()
                .table_name(&s.stack.table)
                .item("target", AttributeValue::S(pk))
                .item("sk", AttributeValue::S(sk.into()))
                .item("trackedSince", AttributeValue::S("2026-12-01T00:00:00Z".into()))
                .item("freshnessMaxAgeSeconds", AttributeValue::N("86400".into()))
                .item(
                    "error",
                    AttributeValue::M([("message".to_string(), AttributeValue::S(format!("said {value}")))].into()),
                )
        };
        put(s.w.target(), "run#planted").send().await.unwrap();
        put(refresh_core::fleet::FLEET_PK.into(), &s.w.target()).send().await.unwrap();
        let found = s.leaks(&scanner, &[]).await;
        for place in ["history item run#planted.error", "fleet item.error"] {
            assert!(
                found.iter().any(|l| l.place == place && l.form == *form),
                "{form} in {place} not found: {found:?}"
            );
        }
    }
    // Leave nothing behind for the other tests' fleet queries.
    s.w.dynamodb
        .delete_item()
        .table_name(&s.stack.table)
        .key("target", AttributeValue::S(refresh_core::fleet::FLEET_PK.into()))
        .key("sk", AttributeValue::S(s.w.target()))
        .send()
        .await
        .unwrap();
}

/// Waits until a running execution has entered `state`.
async fn until_entered(s: &Scenario, arn: &str, state: &str) {
    for _ in 0..300 {
        let history = s.w.sfn.get_execution_history().execution_arn(arn).send().await.unwrap();
        if history.events().iter().any(|e| e.state_entered_event_details().is_some_and(|d| d.name() == state)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{arn} never entered {state}");
}

/// The run's history row.
async fn row_of(s: &Scenario, partition: &str, run: &crate::Run) -> refresh_core::row::RunSummary {
    let rows =
        refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table).recent(partition, 50).await.unwrap();
    rows.into_iter().find(|r| r.execution_name == run.name).unwrap_or_else(|| panic!("no row for {}", run.name))
}

#[tokio::test]
async fn a_run_stopped_while_its_restore_is_in_flight_has_that_clone_deleted_and_named() {
    let s = Scenario::new(Settings::default()).await;
    let (_, request) = s.rds_source().await;
    // RDS answers the restore late: the run is stopped while the call is in flight, and the
    // clone appears after the clean-up's first look.
    let prefix = format!("dblab-refresh-{}", s.w.target());
    let delay = refresh_tests::stack::LONGEST_CALL_SECONDS / 2;
    let fault =
        json!({"action": "RestoreDBInstanceFromDBSnapshot", "match": prefix, "delaySeconds": delay, "times": 1});
    fixture("faults", fault).await;
    let (name, arn) = s.start("inflight", &request).await;
    until_entered(&s, &arn, "Restore").await;
    s.w.sfn.stop_execution().execution_arn(&arn).send().await.unwrap();
    // In AWS the execution is ABORTED at once and EventBridge starts the clean-up; moto
    // holds the status until the call returns, so the clean-up starts here, as AWS would.
    assert!(s.w.rds_names(&prefix).await.is_empty(), "the clone does not exist yet");
    let described = s.w.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned = s.clean_up(&name, &arn, "ABORTED", described.input().unwrap_or_default(), start).await;
    let stopped = s.wait(&name, &arn).await;
    assert_eq!((stopped.status.as_str(), stopped.last_entered().as_deref()), ("ABORTED", Some("Restore")));
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    assert!(cleaned.entered("ContinueCleanup") >= 1, "it looked again after the call could have ended");
    let row = s.aftermath(&stopped, Outcome::Failed, Some("ExecutionStopped"), Some("Restore")).await;
    let clone = row.clone_identifier.clone().unwrap_or_else(|| panic!("the deleted clone is not named: {row:?}"));
    assert!(clone.starts_with(&prefix), "{row:?}");
    assert_eq!(row.cleanup, format!("clone {clone} deleted"));
    assert!(row.cost.as_ref().is_some_and(|c| c.clone_usd != Some(0.0)), "not priced at $0: {row:?}");
}

#[tokio::test]
async fn a_run_without_a_target_is_recorded_and_notified_once() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    request.as_object_mut().unwrap().remove("target");
    let all = s.w.subscribe_queue(&s.stack.topic_arn, None).await;
    let run = s.run("notarget", &request).await;
    assert_eq!((run.status.as_str(), run.error.as_deref()), ("FAILED", Some("InvalidRequest")));
    let described = s.w.sfn.describe_execution().execution_arn(&run.arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned = s.clean_up(&run.name, &run.arn, "FAILED", described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    assert_eq!(cleaned.entered("Cleanup") + cleaned.entered("RecordOutcome") + cleaned.entered("Notify"), 0);
    let row = row_of(&s, refresh_core::history::NO_TARGET, &run).await;
    assert_eq!(row.error.as_ref().map(|e| e.name.as_str()), Some("InvalidRequest"), "not ExecutionStopped: {row:?}");
    let messages = s.w.messages(&all).await;
    let about = messages.iter().filter(|m| m.body().unwrap_or_default().contains(&run.arn)).count();
    assert_eq!(about, 1, "one email");
}

#[tokio::test]
async fn a_deletion_that_fails_after_the_refresh_leaves_a_success_and_the_sweep_the_clone() {
    let s = Scenario::new(Settings::default()).await;
    let (_, request) = s.rds_source().await;
    let prefix = format!("dblab-refresh-{}", s.w.target());
    let fault =
        json!({"action": "DeleteDBInstance", "match": prefix, "status": 400, "code": "AccessDenied", "times": 1000});
    fixture("faults", fault).await;
    let run = s.run("denied", &request).await;
    fixture("faults/clear", json!({"match": prefix})).await;
    assert_eq!(run.status, "SUCCEEDED", "{:?} {:?}", run.error, run.cause);
    assert_eq!(run.entered("Cleanup"), 0, "no failure path");
    let row = row_of(&s, &s.w.target(), &run).await;
    assert_eq!((row.outcome, &row.error), (Outcome::Succeeded, &None), "{row:?}");
    assert!(row.clone_left_behind && row.cleanup.contains("LEFT BEHIND"), "{row:?}");
    assert!(row.cleanup.contains("AwsRequestFailed") && row.cleanup.contains("sweep"), "{}", row.cleanup);
    s.assert_unlocked().await;
    // The fleet advanced: the engine holds the new data.
    let fleet = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table).fleet().await.unwrap();
    let target = fleet.iter().find(|t| t.target == s.w.target()).unwrap();
    assert_eq!(target.data_as_of, row.data_as_of);
    let messages = s.w.messages(&s.queue).await;
    let message = messages.iter().find(|m| m.body().unwrap_or_default().contains(&run.arn)).unwrap();
    assert!(message.body().unwrap_or_default().contains("LEFT BEHIND"));

    // The hourly sweep deletes it: its execution has ended.
    let deps = ::delete_clone::Deps {
        rds: refresh_core::rds::Rds::new(s.w.rds.clone()),
        executions: refresh_core::executions::Executions::new(s.w.sfn.clone()),
        longest_call: Duration::from_secs(refresh_tests::stack::LONGEST_CALL_SECONDS),
    };
    for _ in 0..5 {
        let sweep =
            ::delete_clone::Input::Sweep { dry_run: false, execution_arn: Some(run.arn.clone()), max_age: None };
        ::delete_clone::handle(&deps, sweep).await.unwrap();
        if s.w.rds_names(&prefix).await.is_empty() {
            break;
        }
    }
    assert!(s.w.rds_names(&prefix).await.is_empty(), "the sweep deleted it");
}

#[tokio::test]
async fn lost_answers_of_record_and_notify_count_the_clone_once_and_send_one_email() {
    let s = Scenario::new(Settings::default()).await;
    let (_, request) = s.rds_source().await;
    let target = s.w.target();
    // Each call does its work, then Step Functions hears Lambda.ServiceException and retries.
    fixture("lambda/lose-answer", json!({"function": "record", "match": ["finish", "deletion", target], "times": 1}))
        .await;
    fixture("lambda/lose-answer", json!({"function": "notify", "match": target, "times": 1})).await;
    let run = s.run("lost", &request).await;
    assert_eq!(run.status, "SUCCEEDED", "{:?}", run.error);
    let failed_calls =
        run.events.iter().filter(|e| e.r#type() == &aws_sdk_sfn::types::HistoryEventType::LambdaFunctionFailed).count();
    assert_eq!(failed_calls, 2, "both answers were lost and retried");
    // One email (the aftermath counts them).
    s.aftermath(&run, Outcome::Succeeded, None, None).await;
    // Record's metric lines, as Lambda would send them to CloudWatch.
    let log = std::fs::read_to_string(refresh_tests::repo_root().join("target/e2e-lambda-runtime.log")).unwrap();
    let clone_hours = log
        .lines()
        .filter(|l| {
            l.starts_with('{') && l.contains("\"CloneHours\"") && l.contains(&format!("\"Target\":\"{target}\""))
        })
        .count();
    assert_eq!(clone_hours, 1, "the clone's hours are counted once");
}
