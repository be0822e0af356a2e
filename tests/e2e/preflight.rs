//! Bad input, and an engine that cannot take the refresh, are refused before anything is
//! created: no clone, no change to the engine.

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use refresh_tests::{fixture, secret_reads};
use serde_json::json;

use crate::Scenario;

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

/// Whoever can start a run cannot send the stack's secrets anywhere: an address the stack
/// does not list, even with a token secret the stack may read, is refused at the run's
/// start, before any secret is read, and nothing reaches that address.
#[tokio::test]
async fn a_request_naming_an_engine_the_stack_does_not_list_is_refused_before_any_secret_is_read() {
    let s = Scenario::new(Settings::default()).await;
    let (_, mut request) = s.rds_source().await;
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = elsewhere.local_addr().unwrap();
    request["dblab"].as_object_mut().unwrap().remove("engine");
    request["dblab"]["apiEndpoint"] = json!(format!("https://{address}"));
    request["dblab"]["tokenSecretArn"] = json!(s.w.token_arn);
    let run = s.run("unlisted", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("InvalidRequest"), Some("StartRun")).await;
    let message = row.error.unwrap().message;
    assert!(message.contains("dblab.apiEndpoint") && message.contains("DblabEngines"), "{message}");
    assert_eq!(run.entered("FindSnapshot"), 0);
    assert_eq!(
        (secret_reads(&s.w.token_arn).await, secret_reads(&s.w.password_arn).await),
        (0, 0),
        "no GetSecretValue"
    );
    let knock = tokio::time::timeout(std::time::Duration::from_millis(100), elsewhere.accept()).await;
    assert!(knock.is_err(), "nothing connected to the unlisted address");
    // The recorder sees a read when there is one.
    s.w.secrets.get_secret_value().secret_id(&s.w.password_arn).send().await.unwrap();
    assert_eq!(secret_reads(&s.w.password_arn).await, 1, "the read recorder is blind");
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
    // The stack's engine on port 1: refused at once (`engines::DOWN`).
    request["dblab"]["engine"] = json!(refresh_tests::engines::DOWN);
    let run = s.run("unreachable", &request).await;
    s.aftermath(&run, Outcome::Failed, Some("DblabUnavailable"), Some("FindSnapshot")).await;
    assert_eq!(run.entered("Restore"), 0);
    let attempts = run.events.iter().filter(|e| e.lambda_function_failed_event_details().is_some()).count();
    assert_eq!(attempts, 5, "a transient error is retried (MaxAttempts 4) before the run gives up");
}
