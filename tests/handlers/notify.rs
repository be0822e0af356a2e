use ::notify::Input;
use refresh_core::run::{CaughtError, RunState};
use refresh_tests::World;
use serde_json::json;

use crate::notify_deps;

#[tokio::test]
async fn one_message_with_subject_body_and_filter_attributes() {
    let w = World::new().await;
    let (topic, queue) = w.topic_with_queue().await;
    let state = RunState {
        request: w.request("rds", "prod-main"),
        execution: Some(w.execution()),
        error: Some(CaughtError {
            error: "SourceNotFound".into(),
            cause: Some(json!({"errorMessage": "source RDS instance \"prod-main\" does not exist"}).to_string()),
        }),
        failed_state: Some("FindSnapshot".into()),
        record_error: Some(CaughtError { error: "AwsTransient".into(), cause: Some("DynamoDB throttled".into()) }),
        ..Default::default()
    };
    // Its notification cannot be claimed (no table at all): not sent unmarked, where a later
    // call or the clean-up machine would send it again; the call fails and is retried.
    let unusable = notify_deps(&w, &topic, "no-such-table");
    let err = ::notify::handle(&unusable, Input { state: Box::new(state.clone()) }).await.unwrap_err();
    assert!(err.to_string().contains("PutItem"), "{err}");
    assert!(w.messages(&queue).await.is_empty(), "nothing sent");
    // Not recorded (its row could not be written): built from the state, sent once.
    let deps = notify_deps(&w, &topic, &w.history_table());
    let out = ::notify::handle(&deps, Input { state: Box::new(state.clone()) }).await.unwrap();
    assert_eq!(out.subject, format!("DBLab refresh of {}: FAILED (SourceNotFound)", w.target()));
    let again = ::notify::handle(&deps, Input { state: Box::new(state) }).await.unwrap();
    assert!(again.already_sent && again.message_id == out.message_id, "{again:?}");

    let messages = w.messages(&queue).await;
    assert_eq!(messages.len(), 1);
    let body = messages[0].body().unwrap();
    assert!(body.contains("What happened: source RDS instance \"prod-main\" does not exist"), "{body}");
    assert!(body.contains("Failed in:     FindSnapshot"));
    assert!(body.contains("nothing to clean up: no clone was created"));
    assert!(body.contains("could not be written to the history table (AwsTransient: DynamoDB throttled)"));
    let attrs = messages[0].message_attributes().unwrap();
    assert_eq!(attrs["outcome"].string_value(), Some("failed"));
    assert_eq!(attrs["target"].string_value(), Some(w.target().as_str()));
    w.assert_no_secret(body);
}

#[tokio::test]
async fn a_missing_topic_is_an_error_not_silence() {
    let w = World::new().await;
    let state = RunState { request: w.request("rds", "prod"), execution: Some(w.execution()), ..Default::default() };
    let err = ::notify::handle(
        &notify_deps(&w, "arn:aws:sns:us-east-1:123456789012:no-such-topic", "no-such-table"),
        Input { state: Box::new(state) },
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "AwsRequestFailed");
}

/// The claim by execution name: a fresh one of another call is waited for (retried), one
/// whose call died before its publish is taken over after `CLAIM_OUTLIVES`, and one whose
/// publish began is never sent again.
#[tokio::test]
async fn a_notification_claimed_by_another_call_is_sent_once_or_waited_for() {
    let w = World::new().await;
    let (topic, queue) = w.topic_with_queue().await;
    let history = refresh_core::history::History::new(w.dynamodb.clone(), w.history_table());
    let deps = notify_deps(&w, &topic, &w.history_table());
    let state = |execution: refresh_core::run::Execution| RunState {
        request: w.request("rds", "prod-main"),
        execution: Some(execution),
        error: Some(CaughtError { error: "SourceNotFound".into(), cause: None }),
        record_error: Some(CaughtError { error: "AwsTransient".into(), cause: None }),
        ..Default::default()
    };
    let now = time::OffsetDateTime::now_utc();

    let fresh = w.execution();
    assert_eq!(history.claim_notification(&fresh.name, now).await.unwrap(), refresh_core::history::Claim::Ours);
    let err = ::notify::handle(&deps, Input { state: Box::new(state(fresh)) }).await.unwrap_err();
    assert_eq!(err.name(), "AwsTransient", "another call may be sending it: {err}");

    let mut dead = w.execution();
    dead.name = format!("dead-{}", w.id);
    let long_ago = now - refresh_core::history::CLAIM_OUTLIVES - time::Duration::seconds(1);
    history.claim_notification(&dead.name, long_ago).await.unwrap();
    let out = ::notify::handle(&deps, Input { state: Box::new(state(dead)) }).await.unwrap();
    assert!(!out.already_sent, "a claim that never reached its publish is taken over");

    let mut maybe = w.execution();
    maybe.name = format!("maybe-{}", w.id);
    history.claim_notification(&maybe.name, long_ago).await.unwrap();
    history.notification_publishing(&maybe.name, long_ago).await.unwrap();
    let out = ::notify::handle(&deps, Input { state: Box::new(state(maybe)) }).await.unwrap();
    assert!(out.already_sent, "a publish that began may have gone out: never a second email");
    assert_eq!(w.messages(&queue).await.len(), 1, "the taken-over claim's email only");
}
