//! What the clone is restored from: the latest restorable time, a point in time (and one
//! outside the window refused), an Aurora fast clone; each records the time its data is from.

use std::time::Duration;

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use serde_json::json;

use crate::Scenario;

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
