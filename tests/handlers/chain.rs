//! Every handler in workflow order, as the state machine calls them: the whole refresh
//! against moto and the emulator, with no secret in anything a handler returns.

use std::time::Duration;

use dblab_emulator::Settings;
use refresh_core::poll::PollStatus;
use refresh_core::row::Outcome;
use refresh_core::run::{DeletionStatus, RunState};
use refresh_tests::World;

use crate::delete_clone::delete_fully;
use crate::patch_dblab::patch;
use crate::poll_refresh::poll;
use crate::record::{finish, start};
use crate::{find, notify_deps, restore_clone, until_settled};

async fn full_refresh(source_type: &str) {
    let w = World::with_engine(Settings {
        expected_password: None,
        dump_ms: 400,
        restore_ms: 400,
        snapshot_ms: 200,
        ..Settings::default()
    })
    .await;
    let table = w.history_table();
    let (topic, queue) = w.topic_with_queue().await;
    let source = match source_type {
        "rds" => w.rds_source().await,
        _ => w.aurora_source().await,
    };
    let request = w.request(source_type, &source);
    let execution = w.execution();
    let mut outputs = Vec::new();

    let run = start(&w, &table, &execution, &request).await.unwrap();
    outputs.push(serde_json::to_string(&run).unwrap());
    let snapshot = find(&w, &request).await.unwrap();
    outputs.push(serde_json::to_string(&snapshot).unwrap());
    let clone = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    outputs.push(serde_json::to_string(&clone).unwrap());
    let clone = until_settled(&w, &request, &execution, clone).await;
    assert_eq!(clone.status, PollStatus::Ready);
    outputs.push(serde_json::to_string(&clone).unwrap());
    let mut refresh = patch(&w, &request, &execution, &clone).await.unwrap();
    while refresh.status == PollStatus::Pending {
        tokio::time::sleep(Duration::from_millis(100)).await;
        refresh = poll(&w, &request, &execution, &refresh).await.unwrap();
        outputs.push(serde_json::to_string(&refresh).unwrap());
    }
    assert_eq!(refresh.status, PollStatus::Ready, "{refresh:?}");
    let deletion = delete_fully(&w, &execution, &clone).await;
    assert_eq!(deletion.status, DeletionStatus::Deleted);
    outputs.push(serde_json::to_string(&deletion).unwrap());

    let state = RunState {
        request: request.clone(),
        execution: Some(execution.clone()),
        run: Some(run),
        snapshot: Some(snapshot.clone()),
        clone: Some(clone.clone()),
        refresh: Some(refresh),
        deletion: Some(deletion),
        ..Default::default()
    };
    let summary = finish(&w, &table, state.clone()).await.unwrap();
    outputs.push(serde_json::to_string(&summary).unwrap());
    assert_eq!(summary.outcome, Outcome::Succeeded);
    assert_eq!(summary.data_as_of, Some(snapshot.data_as_of));
    assert!(!summary.clone_left_behind);

    let notified_state = RunState { record: Some(summary), ..state };
    let notified =
        ::notify::handle(&notify_deps(&w, &topic, &table), ::notify::Input { state: Box::new(notified_state.clone()) })
            .await
            .unwrap();
    outputs.push(serde_json::to_string(&notified).unwrap());
    // Step Functions retries a call whose answer it lost: the email is not sent twice.
    let retried =
        ::notify::handle(&notify_deps(&w, &topic, &table), ::notify::Input { state: Box::new(notified_state) })
            .await
            .unwrap();
    assert!(retried.already_sent && !notified.already_sent);
    assert_eq!(retried.message_id, notified.message_id);
    let messages = w.messages(&queue).await;
    assert_eq!(messages.len(), 1);
    assert!(notified.subject.contains("succeeded"));
    outputs.push(messages[0].body().unwrap_or_default().to_string());

    // The engine dumped from the clone, with the real password; the clone is gone.
    let engine = w.emulator.view();
    assert_eq!(engine.dump_sources.last().unwrap().host, clone.endpoint.unwrap().address);
    assert_eq!(engine.password.as_deref(), Some(w.password.as_str()));
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone left");
    for output in &outputs {
        w.assert_no_secret(output);
    }
}

#[tokio::test]
async fn a_whole_rds_refresh_through_every_handler() {
    full_refresh("rds").await;
}

#[tokio::test]
async fn a_whole_aurora_refresh_through_every_handler() {
    full_refresh("aurora-cluster").await;
}
