//! One run per target at a time: a second fails fast and creates nothing; a duplicate
//! start of the same request is recorded as skipped, not as a failure.

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use serde_json::json;

use crate::Scenario;

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
