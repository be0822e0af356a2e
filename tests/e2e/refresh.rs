//! The refresh on the engine: every way it fails (the engine's check of the clone, config
//! not applied, an alert, a failure before the first poll, no end, a storm of 5xx) ends with
//! the clone deleted and the cause recorded.

use std::time::Duration;

use dblab_emulator::{Outcome as EngineOutcome, Settings};
use refresh_core::row::Outcome;
use serde_json::json;

use crate::Scenario;

#[tokio::test]
async fn a_clone_the_engine_refuses_to_read_touches_no_pool_and_is_deleted() {
    let s = Scenario::new(Settings { missing_extensions: vec!["postgis".into()], ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let before = s.w.emulator.view();
    let run = s.run("probe", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("DblabSourceRefused"), Some("PatchDblab")).await;
    assert!(row.error.unwrap().message.contains("missing_extension"));
    let after = s.w.emulator.view();
    assert_eq!((after.config_updates, after.refreshes_started), (0, 0));
    assert_eq!((after.pools, after.snapshots, after.config), (before.pools, before.snapshots, before.config));
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
    // The engine emptied the pool it was refreshing: its users are told what they lost.
    let emptied = row.engine_pool_emptied.unwrap_or_default();
    assert!(emptied.starts_with("the engine's failed refresh emptied pool dblab_pool"), "{emptied}");
    // Where it failed is not known from outside: what the next reload shows is not promised.
    assert!(emptied.contains("at its next config change (the next run)"), "{emptied}");
    assert!(emptied.contains("only a successful refresh is sure to bring the data back"), "{emptied}");
    assert_eq!(s.w.emulator.view().pools[0].status, "empty");
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
