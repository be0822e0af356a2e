//! Every run leaves exactly one history row and one notification: a request without a
//! target too, and a run whose `record` and `notify` answers were lost and retried.

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use refresh_tests::fixture;
use serde_json::json;

use crate::{Scenario, row_of};

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

/// The notifications about `run` in the scenario's queue since it was last read.
async fn emails_about(s: &Scenario, run_arn: &str) -> usize {
    s.w.messages(&s.queue).await.iter().filter(|m| m.body().unwrap_or_default().contains(run_arn)).count()
}

/// The run's history row cannot be written (DynamoDB refuses it): its own machine still
/// notifies, and the clean-up that follows records it and sends no second email.
#[tokio::test]
async fn a_run_whose_record_fails_sends_one_email_and_the_cleanup_none() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    let target = s.w.target();
    // Fails at its clone's check, before the engine is touched: time to plant the fault once
    // the run's `running` row is written.
    request["clone"]["tags"] = json!({"test:creating-polls": "3", "test:final-status": "incompatible-restore"});
    let (name, arn) = s.start("unrecorded", &request).await;
    let history = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table);
    let started = refresh_tests::poll_until(
        100,
        std::time::Duration::from_millis(100),
        || history.recent(&target, 1),
        |rows| rows.as_ref().is_ok_and(|r| !r.is_empty()),
    )
    .await;
    assert_eq!(started.unwrap()[0].outcome, Outcome::Running);
    // The failure's row, and only it (the start's says `running`): refused, not retried.
    let fault = json!({"action": "PutItem", "match": [target.as_str(), "\"outcome\":{\"S\":\"failed\"}"], "status": 400,
        "code": "ValidationException", "times": 1});
    fixture("faults", fault).await;
    let run = s.wait(&name, &arn).await;
    assert_eq!(run.status, "FAILED", "{:?}", run.error);
    assert_eq!(run.entered("NotifyFailure"), 1);
    let rows = history.recent(&target, 5).await.unwrap();
    assert_eq!(rows[0].outcome, Outcome::Running, "the record failed: {rows:?}");
    assert_eq!(emails_about(&s, &run.arn).await, 1, "the run's own email");

    let described = s.w.sfn.describe_execution().execution_arn(&run.arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned = s.clean_up(&run.name, &run.arn, "FAILED", described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    assert_eq!((cleaned.entered("RecordOutcome"), cleaned.entered("Notify")), (1, 1));
    assert_eq!(emails_about(&s, &run.arn).await, 0, "no second email");
    let row = row_of(&s, &target, &run).await;
    assert_eq!(row.outcome, Outcome::Failed, "the clean-up recorded it: {row:?}");
    s.assert_unlocked().await;
}

/// SNS refuses the run's notification (its own notify fails) after a success and after a
/// failure: the clean-up machine sends it, from the row, once; a second clean-up sends none.
#[tokio::test]
async fn a_notification_that_fails_is_sent_by_the_cleanup_once() {
    for (label, source) in [("succeeded", None), ("failed", Some("no-such-db"))] {
        let s = Scenario::new(Settings::default()).await;
        let request = match source {
            Some(missing) => s.w.request("rds", missing),
            None => s.rds_source().await.1,
        };
        let fault = json!({"action": "Publish", "match": s.w.target(), "status": 400, "code": "InvalidParameter",
            "times": 1});
        fixture("faults", fault).await;
        let run = s.run(label, &request).await;
        let notify = if source.is_none() { "NotifySuccess" } else { "NotifyFailure" };
        assert_eq!(run.entered(notify), 1, "{label}");
        assert_eq!(emails_about(&s, &run.arn).await, 0, "{label}: SNS refused it");
        let ended = run.status.clone();
        assert_eq!(ended, if source.is_none() { "SUCCEEDED" } else { "FAILED" });

        let described = s.w.sfn.describe_execution().execution_arn(&run.arn).send().await.unwrap();
        let start = described.start_date().to_millis().unwrap();
        let input = described.input().unwrap_or_default().to_string();
        let cleaned = s.clean_up(&run.name, &run.arn, &ended, &input, start).await;
        assert_eq!(cleaned.status, "SUCCEEDED", "{label}: {:?}", cleaned.error);
        assert_eq!((cleaned.entered("NotifyRecorded"), cleaned.entered("Cleanup")), (1, 0), "{label}");
        let messages = s.w.messages(&s.queue).await;
        let mine: Vec<_> = messages.iter().filter(|m| m.body().unwrap_or_default().contains(&run.arn)).collect();
        assert_eq!(mine.len(), 1, "{label}: the clean-up's email");
        let outcome = if source.is_none() { "succeeded" } else { "failed" };
        assert_eq!(
            mine[0].message_attributes().unwrap()["outcome"].string_value(),
            Some(outcome),
            "{label}: from the row"
        );

        let again = s.clean_up(&run.name, &run.arn, &ended, &input, start).await;
        assert_eq!(again.entered("NotifyRecorded"), 0, "{label}: notified already");
        assert_eq!(emails_about(&s, &run.arn).await, 0, "{label}: never a second email");
    }
}
