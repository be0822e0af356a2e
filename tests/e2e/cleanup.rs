//! Runs that end outside their own Catch (stopped by hand, stopped while a call was in
//! flight, failed without recording): the clean-up machine deletes their clones, records
//! and notifies; a run that recorded itself is left alone.

use std::time::Duration;

use dblab_emulator::{Outcome as EngineOutcome, Settings};
use refresh_core::row::Outcome;
use refresh_tests::fixture;
use serde_json::json;

use crate::Scenario;

/// Waits until a running execution has entered `state`.
pub(crate) async fn until_entered(s: &Scenario, arn: &str, state: &str) {
    for _ in 0..900 {
        let history = s.w.sfn.get_execution_history().execution_arn(arn).send().await.unwrap();
        if history.events().iter().any(|e| e.state_entered_event_details().is_some_and(|d| d.name() == state)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{arn} never entered {state}");
}

#[tokio::test]
async fn a_run_stopped_by_hand_is_cleaned_up_by_the_cleanup_machine() {
    let s = Scenario::new(Settings { outcome: EngineOutcome::Hang, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let (name, arn) = s.start("stopped", &request).await;
    // The engine starts its refresh while PatchDblab is still answering; the stop comes once
    // the run polls (CI's slower machine once stopped it inside PatchDblab).
    until_entered(&s, &arn, "WaitForRefresh").await;
    assert_eq!(s.w.emulator.view().refreshes_started, 1);
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
        cleanup_machine_arn: s.stack.cleanup_machine_arn.clone(),
        cleanup_after: ::record::CLEANUP_AFTER,
        engines: s.w.engines(),
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
async fn a_run_whose_ended_event_leaves_out_its_input_is_cleaned_up_from_the_execution() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    // The clone stays `creating`: the run waits on it, with a clone to delete.
    request["clone"]["tags"] = json!({"test:creating-polls": "1000"});
    let (name, arn) = s.start("noinput", &request).await;
    until_entered(&s, &arn, "WaitForClone").await;
    s.w.sfn.stop_execution().execution_arn(&arn).send().await.unwrap();
    let stopped = s.wait(&name, &arn).await;
    assert_eq!(stopped.status, "ABORTED");
    let prefix = format!("dblab-refresh-{}", s.w.target());
    assert_eq!(s.w.rds_names(&prefix).await.len(), 1);

    // The event as EventBridge sends it past about 248 KB of input and output, and as
    // record's hourly pass sends it for a run whose event never came: no input.
    let ended = refresh_core::executions::Executions::new(s.w.sfn.clone()).ended(&arn).await.unwrap().unwrap();
    let event = refresh_core::stopped::cleanup_event(&ended);
    assert_eq!(event["detail"]["inputDetails"]["included"], false);
    assert!(event["detail"].get("input").is_none());
    let cleaned = s.clean_up_with(&event).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    assert_eq!((cleaned.entered("ReadInput"), cleaned.entered("InputUnreadable")), (1, 0));
    let stopped_in = stopped.last_entered().unwrap();
    let row = s.aftermath(&stopped, Outcome::Failed, Some("ExecutionStopped"), Some(&stopped_in)).await;
    assert_eq!(row.target.as_deref(), Some(s.w.target().as_str()), "the request was read from the execution");
}

#[tokio::test]
async fn a_handler_answer_over_256_kb_ends_the_run_past_its_catch_and_the_cleanup_deletes_the_clone() {
    let s = Scenario::new(Settings::default()).await;
    let (_, request) = s.rds_source().await;
    // check-available's first answer past Step Functions' 256 KB: States.DataLimitExceeded,
    // which States.ALL does not catch in AWS.
    let inflate = json!({"function": "check-available", "match": s.w.target(), "times": 1, "bytes": 300_000});
    fixture("lambda/inflate-answer", inflate).await;
    let run = s.run("oversized", &request).await;
    assert_eq!((run.status.as_str(), run.error.as_deref()), ("FAILED", Some("States.DataLimitExceeded")));
    assert_eq!(run.last_entered().as_deref(), Some("CheckClone"));
    assert_eq!(run.entered("CheckCloneFailed") + run.entered("Cleanup") + run.entered("RecordFailure"), 0);
    let prefix = format!("dblab-refresh-{}", s.w.target());
    assert_eq!(s.w.rds_names(&prefix).await.len(), 1, "the clone is left to the clean-up machine");

    let described = s.w.sfn.describe_execution().execution_arn(&run.arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned = s.clean_up(&run.name, &run.arn, "FAILED", described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    let row = s.aftermath(&run, Outcome::Failed, Some("ExecutionStopped"), Some("CheckClone")).await;
    let message = row.error.as_ref().unwrap().message.clone();
    assert!(message.contains("States.DataLimitExceeded"), "{message}");
}

/// The payload Step Functions sent the Lambda call of `state` (its first): what a redrive of
/// the execution from that state sends again.
fn payload_of(run: &crate::Run, state: &str) -> serde_json::Value {
    let entered = run
        .events
        .iter()
        .position(|e| e.state_entered_event_details().is_some_and(|d| d.name() == state))
        .unwrap_or_else(|| panic!("{} never entered {state}", run.name));
    let scheduled = run.events[entered..]
        .iter()
        .find_map(|e| e.lambda_function_scheduled_event_details())
        .and_then(|d| d.input())
        .unwrap_or_else(|| panic!("no Lambda call in {state}"));
    serde_json::from_str(scheduled).unwrap()
}

/// A run stopped and cleaned up, then redriven (Step Functions re-runs its unsuccessful
/// states with the inputs they had): it holds no lock any more, so neither the restore nor
/// the engine's patch does anything. moto has no RedriveExecution; the real handler
/// binaries are called with the payloads the execution sent them, as a redrive would.
#[tokio::test]
async fn a_redriven_execution_after_its_cleanup_creates_and_changes_nothing() {
    let s = Scenario::new(Settings { outcome: EngineOutcome::Hang, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let (name, arn) = s.start("redriven", &request).await;
    until_entered(&s, &arn, "WaitForRefresh").await;
    s.w.sfn.stop_execution().execution_arn(&arn).send().await.unwrap();
    let stopped = s.wait(&name, &arn).await;
    let described = s.w.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned = s.clean_up(&name, &arn, "ABORTED", described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    s.aftermath(&stopped, Outcome::Failed, Some("ExecutionStopped"), stopped.last_entered().as_deref()).await;
    let engine = s.w.emulator.view();

    for (function, state) in [("restore", "Restore"), ("patch-dblab", "PatchDblab")] {
        let (status, answer) = refresh_tests::stack::invoke(function, &payload_of(&stopped, state)).await;
        assert_eq!((status, answer["errorType"].as_str()), (500, Some("LockLost")), "{function}: {answer}");
        assert!(answer["errorMessage"].as_str().unwrap_or_default().contains(&name), "{answer}");
    }
    let prefix = format!("dblab-refresh-{}", s.w.target());
    assert!(s.w.rds_names(&prefix).await.is_empty(), "no clone made again");
    let after = s.w.emulator.view();
    assert_eq!((after.config_updates, after.refreshes_started), (engine.config_updates, engine.refreshes_started));
    s.assert_unlocked().await;
}
