//! The temporary clone: one that fails or never becomes available is deleted and the run
//! fails; one slow to go, or whose deletion is denied, leaves a refresh that worked a
//! success that says so, and the sweep the clone.

use std::time::Duration;

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use refresh_tests::fixture;
use serde_json::json;

use crate::{Scenario, row_of};

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
