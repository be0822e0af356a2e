//! `clone.deleteAfterDump`: the clone deleted once the dump is over, and refused where the
//! end of the dump cannot be told.

use dblab_emulator::Settings;
use refresh_core::row::Outcome;
use serde_json::json;

use crate::Scenario;

#[tokio::test]
async fn clone_deleted_once_the_dump_is_over() {
    // The restore into DBLab outlasts two polls after the dump, so the release comes first.
    let s =
        Scenario::new(Settings { dump_ms: 2_000, restore_ms: 5_000, snapshot_ms: 500, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["deleteAfterDump"] = json!(true);
    let run = s.run("early", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(run.entered("DeleteCloneAfterDump"), 1, "released exactly once");
    assert!(row.clone_deleted_after_dump, "{row:?}");
    assert!(row.cleanup.contains("once the dump was over"), "{}", row.cleanup);
    let engine = s.w.emulator.view();
    let at = |what: &str| engine.timeline.iter().find(|(w, _)| w == what).map(|(_, t)| *t).unwrap();
    let released = run.entered_at("DeleteCloneAfterDump").unwrap();
    assert!(at("restore") < released, "never before the dump is over");
    assert!(released < at("finished"), "while DBLab was still restoring");
}

#[tokio::test]
async fn delete_after_dump_with_immediate_restore_is_refused_before_anything_exists() {
    let s = Scenario::new(Settings { immediate_restore: true, ..Settings::default() }).await;
    let (_, mut request) = s.rds_source().await;
    request["clone"]["deleteAfterDump"] = json!(true);
    let run = s.run("overlap", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("InvalidRequest"), Some("FindSnapshot")).await;
    assert!(row.error.unwrap().message.contains("clone.deleteAfterDump"));
    assert_eq!(run.entered("Restore"), 0, "no clone may be created");
}
