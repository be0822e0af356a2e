//! The real engine's behaviours, on both API generations, through the real state machine:
//! a dump that can only read the clone, refreshes that never start or are lost to a
//! restart, a retried trigger, and one engine shared by two targets.

use dblab_emulator::{Outcome as EngineOutcome, PoolSetting, Settings, StartFailure, Version};
use refresh_core::row::Outcome;
use serde_json::json;

use crate::Scenario;

#[tokio::test]
async fn a_42_engine_with_a_stale_connection_string_dumps_the_aurora_clone_only() {
    let stale = "host=prod-writer.internal port=5432 dbname=app user=dblab sslmode=require";
    let s =
        Scenario::new(Settings { version: Version::V42, connection_string: Some(stale.into()), ..Settings::default() })
            .await;
    let source = s.w.aurora_source().await;
    let run = s.run("connstr", &s.w.request("aurora-cluster", &source)).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    let engine = s.w.emulator.view();
    let dumped = &engine.dump_sources[0];
    let clone = row.clone_identifier.as_deref().unwrap();
    assert!(dumped.host.contains(clone), "dumped from {} instead of the clone {clone}", dumped.host);
    let via = dumped.connection_string.as_deref().unwrap();
    assert!(via.contains("sslmode=require") && !via.contains("prod-writer"), "{via}");
    assert!(row.engine_version.as_deref().unwrap().ends_with("(4.2 API)"), "{row:?}");
}

#[tokio::test]
async fn a_refresh_the_engine_never_starts_fails_fast() {
    for version in [Version::V41, Version::V42] {
        let s = Scenario::new(Settings { version, start_failure: StartFailure::Silent, ..Settings::default() }).await;
        let (_, mut request) = s.rds_source().await;
        request["dblab"]["startTimeout"] = json!("3s");
        let run = s.run("notstarted", &request).await;
        let row = s.aftermath(&run, Outcome::Failed, Some("RefreshNotStarted"), Some("PollRefresh")).await;
        let message = row.error.unwrap().message;
        assert!(message.contains("failed to initiate full refresh"), "{message}");
        let took = row.finished_at.unwrap() - row.started_at;
        assert!(took < time::Duration::seconds(50), "given up on long before dblab.timeout (1m): {took}");
    }
}

#[tokio::test]
async fn an_engine_restart_mid_refresh_fails_the_run() {
    for version in [Version::V41, Version::V42] {
        let s =
            Scenario::new(Settings { version, outcome: EngineOutcome::Restart, dump_ms: 2_000, ..Settings::default() })
                .await;
        let (_, request) = s.rds_source().await;
        let run = s.run("restart", &request).await;
        let row = s.aftermath(&run, Outcome::Failed, Some("RefreshFailed"), Some("PollRefresh")).await;
        assert!(row.error.unwrap().message.contains("restarted"));
    }
}

#[tokio::test]
async fn a_lost_answer_to_the_trigger_is_retried_and_the_refresh_adopted() {
    let s = Scenario::new(Settings {
        version: Version::V42,
        lose_refresh_replies: 1,
        // Still dumping when the retry comes (its backoff, and the first attempt's wait after
        // the config change): one over already would be started again, not adopted.
        dump_ms: 10_000,
        ..Settings::default()
    })
    .await;
    let (_, request) = s.rds_source().await;
    let run = s.run("lostreply", &request).await;
    s.aftermath(&run, Outcome::Succeeded, None, None).await;
    let patched: serde_json::Value = run
        .events
        .iter()
        .filter_map(|e| e.state_exited_event_details())
        .find(|d| d.name() == "PatchDblab")
        .and_then(|d| d.output())
        .map(|o| serde_json::from_str(o).unwrap())
        .unwrap();
    assert_eq!(patched["refresh"]["adopted"], true, "the retry adopted the refresh: {patched}");
    assert_eq!(s.w.emulator.view().refreshes_started, 1, "one refresh, not two");
}

#[tokio::test]
async fn two_targets_on_one_engine_never_run_at_once() {
    let s = Scenario::new(Settings { dump_ms: 1_500, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let mut other = request.clone();
    other["target"] = json!(format!("other-{}", s.w.id));
    // The same engine by another address: one engine, one lock.
    other["dblab"]["engine"] = json!(s.w.engine_alias());
    let first = s.start("engine-a", &request).await;
    let second = s.start("engine-b", &other).await;
    let (a, b) = (s.wait(&first.0, &first.1).await, s.wait(&second.0, &second.1).await);
    let (winner, loser, loser_target) =
        if a.status == "SUCCEEDED" { (a, b, other["target"].clone()) } else { (b, a, request["target"].clone()) };
    assert_eq!(winner.status, "SUCCEEDED", "{:?}", winner.error);
    assert_eq!((loser.status.as_str(), loser.error.as_deref()), ("FAILED", Some("TargetLocked")));
    assert_eq!(loser.entered("Restore"), 0, "the refused run creates nothing");
    assert_eq!(loser.entered("LockEngineFailed"), 1, "refused at the engine's lock");
    let rows = refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table)
        .recent(loser_target.as_str().unwrap(), 5)
        .await
        .unwrap();
    let refusal = rows[0].error.as_ref().unwrap();
    assert!(refusal.message.contains(&winner.name), "the refusal names the run that holds the engine: {refusal:?}");
    let engine = s.w.emulator.view();
    assert_eq!((engine.refreshes_started, engine.config_updates), (1, 1), "the engine was changed by one run only");
    s.assert_unlocked().await;
}

#[tokio::test]
async fn finished_without_the_engines_snapshot_is_not_a_success() {
    // The engine's snapshot job found a snapshot of the same name: `finished`, nothing new.
    let s = Scenario::new(Settings { snapshot_exists: true, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let run = s.run("nosnapshot", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("RefreshWithoutSnapshot"), Some("PollRefresh")).await;
    let message = row.error.unwrap().message;
    assert!(message.contains("made no snapshot of pool dblab_pool"), "{message}");
    assert_eq!(row.engine_snapshot, None);
}

#[tokio::test]
async fn an_engine_that_echoes_the_password_in_any_form_leaks_it_nowhere() {
    // The dump fails with an alert quoting the DSN (password URL-encoded) and its options
    // (JSON-escaped): the cause travels into the state, the row, the email and the logs.
    let s = Scenario::new(Settings { fail_echoing_password: true, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let run = s.run("echo", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("RefreshFailed"), Some("PollRefresh")).await;
    assert!(row.error.unwrap().message.contains("postgres://dblab:***@"), "the engine's words are kept");
}

#[tokio::test]
async fn runs_on_an_engine_with_three_free_pools_each_prove_the_pool_the_engine_really_refreshed() {
    // Every config POST reloads the engine's pool list in its own order (examineEntries):
    // after the second run the pool the list showed before the POST is not the one taken.
    let pools = ["pool_a", "pool_b", "pool_c"].map(PoolSetting::free).to_vec();
    let s = Scenario::new(Settings { pools, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let mut refreshed = Vec::new();
    for label in ["first", "second", "third", "fourth"] {
        let run = s.run(label, &request).await;
        let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
        let snapshot = row.engine_snapshot.unwrap_or_else(|| panic!("{label}: no snapshot"));
        refreshed.push(snapshot.split('@').next().unwrap_or_default().to_string());
    }
    // c, b; then the reload puts c behind a ([b, a, c]) and c is refreshed again; then a.
    assert_eq!(refreshed, ["pool_c", "pool_b", "pool_c", "pool_a"]);
}

#[tokio::test]
async fn an_engine_swapped_behind_the_endpoint_mid_run_fails_the_run_and_the_clone_is_deleted() {
    // The refresh never ends on the engine the run locked: another one takes its address.
    let s = Scenario::new(Settings { outcome: EngineOutcome::Hang, ..Settings::default() }).await;
    let (_, request) = s.rds_source().await;
    let (name, arn) = s.start("swapped", &request).await;
    crate::cleanup::until_entered(&s, &arn, "WaitForRefresh").await;
    s.w.emulator.configure(|e| e.instance_id = Some("another-engine".into()));
    let run = s.wait(&name, &arn).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("DblabEngineChanged"), Some("PollRefresh")).await;
    let message = row.error.unwrap().message;
    assert!(message.contains("instance another-engine answers now"), "{message}");
}
