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
