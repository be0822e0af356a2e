//! A whole refresh of an RDS instance and of an Aurora cluster: the clone made, the engine
//! refreshed from it, the clone deleted, one history row and one notification, and the
//! execution history far inside Step Functions' limit.

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use serde_json::json;

use crate::Scenario;

#[tokio::test]
async fn rds_instance_happy_path() {
    // Phases longer than one invocation's 3 s watch, so both poll loops go round.
    let s =
        Scenario::new(Settings { dump_ms: 4_000, restore_ms: 2_000, snapshot_ms: 1_000, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "4"});
    let run = s.run("rds", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert!(run.entered("CheckClone") >= 2, "the clone poll loop went round");
    assert!(run.entered("PollRefresh") >= 2, "the refresh poll loop went round");
    assert!(row.snapshot_identifier.unwrap().starts_with("rds:"));
    assert!(row.data_as_of.is_some() && row.clone_lifetime_seconds.is_some());
    assert_eq!(row.cleanup, format!("clone {} deleted", row.clone_identifier.unwrap()));
    let engine = s.w.emulator.view();
    assert_eq!(engine.refreshes_started, 1);
    assert_eq!(engine.password.as_deref(), Some(s.w.password.as_str()));

    // History events one refresh poll iteration writes, measured between two waits, and
    // what that means for an 8-hour refresh (plus a 2-hour restore) at the 30 s defaults
    // even if every invocation looked only once (no watch).
    let waits: Vec<usize> = run
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.state_entered_event_details().is_some_and(|d| d.name() == "WaitForRefresh"))
        .map(|(i, _)| i)
        .collect();
    let per_poll = waits[1] - waits[0];
    let fixed = run.events.len();
    let eight_hours = (8 * 3_600 / 30 + 2 * 3_600 / 30) * per_poll + fixed;
    assert!(eight_hours < 25_000 / 2, "{per_poll} events per poll: {eight_hours} for an 8-hour refresh");
    let worst = refresh_core::request::MAX_POLLS_PER_RUN as usize * per_poll + fixed;
    assert!(worst < 25_000, "the most polls a request may ask for write {worst} events");
}

#[tokio::test]
async fn aurora_cluster_happy_path() {
    let s = Scenario::new(Settings::default()).await;
    let source = s.w.aurora_source().await;
    let run = s.run("aurora", &s.w.request("aurora-cluster", &source)).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_type.as_deref(), Some("aurora-cluster"));
    let host = &s.w.emulator.view().dump_sources[0].host;
    assert!(host.contains(row.clone_identifier.as_deref().unwrap()), "dumped from the clone's writer endpoint: {host}");
}
