//! Production in its own account, end to end on real data: production's account runs the
//! publisher (copy under the copy key, share with the refresh account); the refresh stack,
//! in its own account, refreshes the engine from the shared copy. What these prove: the
//! pool ends with exactly the data of production's snapshot, production's server receives
//! no connection, and the refresh account asks nothing of production's account but to
//! read and restore what was shared; a share missing or withdrawn mid-run fails clearly
//! with nothing left behind.

use refresh_core::request::SourceType;
use refresh_core::row::Outcome;
use refresh_tests::RealSource;
use refresh_tests::production::{PRODUCTION_ACCOUNT, Production, beyond_reading_shares};
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;

use crate::Scenario;
use dblab_emulator::Settings;

/// Production's account: a real, seeded instance under the AWS managed key, and its
/// publisher's settings.
async fn production(s: &Scenario) -> (Production, RealSource, publish_snapshot::Settings) {
    let production = Production::new().await;
    let key = production.copy_key().await;
    assert_eq!(key, refresh_tests::production::copy_key_arn(), "the stack's SourceKmsKeyArns lists it");
    let id = production.instance(&format!("prod-{}", s.w.id)).await;
    let source = s.w.back_with_postgres(Some(PRODUCTION_ACCOUNT), "instance", id).await;
    let settings = production.settings(SourceType::Rds, &[&source.id], &key, 2);
    (production, source, settings)
}

fn shared_request(s: &Scenario, source: &RealSource) -> Value {
    let mut request = s.w.request("rds", &source.id);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request
}

#[tokio::test]
async fn production_in_another_account_publishes_and_the_engine_gets_exactly_its_snapshots_data() {
    let s = Scenario::real(Settings::default()).await;
    let (production, source, settings) = production(&s).await;
    let (_, taken_at) = source.snapshots.first().cloned().expect("an automated snapshot");
    let at_snapshot = s.w.checksums(&source.server, "app").await;
    s.w.sql(&source.server, "app", "insert into public.customers (email, name, profile, created_at) values ('late@example.com', 'Late', '{}', now())").await;

    // Production's side: RDS's event, then the pass that shares the finished copy.
    let copy = production.publish(&settings).await.unwrap().sources[0].copy_started.clone().unwrap();
    assert_eq!(production.publish(&settings).await.unwrap().sources[0].shared, std::slice::from_ref(&copy));

    let from = OffsetDateTime::now_utc();
    let run = s.run("crossaccount", &shared_request(&s, &source)).await;
    let to = OffsetDateTime::now_utc();
    // aftermath: neither the clone nor its local copy is left.
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    let arn = format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:snapshot:{copy}");
    assert_eq!(row.snapshot_identifier.as_deref(), Some(arn.as_str()), "restored from the shared copy, by its ARN");
    assert_eq!(row.data_as_of, Some(taken_at), "data as of production's own snapshot, not of the copy");
    // The share is encrypted: copied into this account, restored from there, the copy deleted.
    assert_eq!(row.copy_identifier, row.clone_identifier, "the local copy is named as its clone: {row:?}");
    assert!(row.phases.iter().any(|p| p.name == "copy" && p.ended_at.is_some()), "{row:?}");
    assert!(row.copy_lifetime_seconds.is_some(), "{row:?}");
    assert!(row.cost.as_ref().is_some_and(|c| c.snapshot_copy.is_some()), "the copy is priced: {row:?}");
    assert!(row.cleanup.contains("and its snapshot copy deleted"), "{}", row.cleanup);
    assert!(run.entered("Restore") == 2, "the restore asked again once the copy was there");

    assert_eq!(s.w.checksums(s.w.pool(), "app").await, at_snapshot, "every table, every row of the snapshot");
    let late =
        s.w.sql(s.w.pool(), "app", "select count(*) from public.customers where email = 'late@example.com'").await;
    assert_eq!(late, "0", "a row written after the snapshot arrived");
    let seen = s.w.connections(&source.server, from, to).await;
    assert!(seen.is_empty(), "production received {} connection(s): {seen:#?}", seen.len());
    let asked = production.requests_from_elsewhere(&s.w.id).await;
    assert!(asked.iter().any(|a| a == "rds CopyDBSnapshot"), "copied in: {asked:?}");
    assert!(!asked.iter().any(|a| a == "rds RestoreDBInstanceFromDBSnapshot"), "not restored directly: {asked:?}");
    assert_eq!(beyond_reading_shares(&asked), Vec::<String>::new(), "only reads of what was shared: {asked:?}");
}

#[tokio::test]
async fn nothing_shared_yet_fails_before_a_clone_and_says_what_production_must_do() {
    let s = Scenario::real(Settings::default()).await;
    let (_production, source, _) = production(&s).await;
    let run = s.run("notshared", &shared_request(&s, &source)).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("NoSnapshotAvailable"), Some("FindSnapshot")).await;
    let message = row.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains(PRODUCTION_ACCOUNT) && message.contains("publisher"), "{message}");
    assert_eq!(run.entered("Restore"), 0, "no clone was asked for");
}

#[tokio::test]
async fn a_share_withdrawn_while_the_copy_is_asked_fails_it_and_leaves_nothing() {
    let s = Scenario::real(Settings::default()).await;
    let (production, source, settings) = production(&s).await;
    let copy = production.publish(&settings).await.unwrap().sources[0].copy_started.clone().unwrap();
    production.publish(&settings).await.unwrap();
    // The copy is held a few seconds on its way to RDS (noted before it is held):
    // production withdraws the share meanwhile.
    refresh_tests::fixture(
        "faults",
        json!({"action": "CopyDBSnapshot", "match": source.id, "delaySeconds": 4, "times": 1}),
    )
    .await;
    let (name, arn) = s.start("withdrawn", &shared_request(&s, &source)).await;
    let mut asked = Vec::new();
    for _ in 0..240 {
        asked = production.requests_from_elsewhere(&s.w.id).await;
        if asked.iter().any(|a| a == "rds CopyDBSnapshot") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(asked.iter().any(|a| a == "rds CopyDBSnapshot"), "the copy was never asked: {asked:?}");
    production.withdraw_share(SourceType::Rds, &copy).await;
    let run = s.wait(&name, &arn).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("AwsRequestFailed"), Some("Restore")).await;
    let message = row.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains(&copy), "names the snapshot it could not restore: {message}");
}

/// A copy slower than `clone.restoreTimeout` fails the run at its deadline, and a run
/// stopped while its copy is being made is cleaned up by the clean-up machine: neither
/// leaves a copy (deleting a copy still being made ends it: RDS API, DeleteDBSnapshot).
#[tokio::test]
async fn a_copy_past_its_deadline_or_stopped_midway_leaves_nothing() {
    let s = Scenario::real(Settings::default()).await;
    let (production, source, settings) = production(&s).await;
    production.publish(&settings).await.unwrap();
    production.publish(&settings).await.unwrap();
    let mut request = shared_request(&s, &source);
    request["clone"]["tags"] = json!({"test:creating-polls": "1000"});
    request["clone"]["restoreTimeout"] = json!("3s");
    let run = s.run("copylate", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("CloneTimedOut"), Some("CheckClone")).await;
    let message = row.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
    assert!(message.contains("copy") && message.contains("no clone was asked for"), "{message}");
    assert_eq!(row.clone_identifier, None, "{row:?}");
    assert!(row.cleanup.contains("snapshot copy") && row.cleanup.ends_with("deleted"), "{}", row.cleanup);
    assert_eq!(run.entered("Restore"), 1);

    request["clone"]["restoreTimeout"] = json!("10m");
    let (name, arn) = s.start("copystopped", &request).await;
    crate::cleanup::until_entered(&s, &arn, "CheckClone").await;
    let prefix = format!("dblab-refresh-{}", s.w.target());
    assert_eq!(s.w.rds_names(&prefix).await.len(), 1, "the copy on its way");
    s.w.sfn.stop_execution().execution_arn(&arn).send().await.unwrap();
    let stopped = s.wait(&name, &arn).await;
    let described = s.w.sfn.describe_execution().execution_arn(&arn).send().await.unwrap();
    let start = described.start_date().to_millis().unwrap();
    let cleaned =
        s.clean_up(&name, &arn, described.status().as_str(), described.input().unwrap_or_default(), start).await;
    assert_eq!(cleaned.status, "SUCCEEDED", "{:?}", cleaned.error);
    let stopped_in = stopped.last_entered().unwrap();
    let row = s.aftermath(&stopped, Outcome::Failed, Some("ExecutionStopped"), Some(&stopped_in)).await;
    assert!(row.copy_identifier.is_some(), "the stopped run's copy is named: {row:?}");
}

/// RDS refuses the copy for its key (the stack's key disabled, or its policy changed after
/// the preflight): the run fails at the restore, naming the key error, with nothing left.
#[tokio::test]
async fn a_copy_refused_for_its_key_fails_the_run_and_leaves_nothing() {
    let s = Scenario::real(Settings::default()).await;
    let (production, source, settings) = production(&s).await;
    production.publish(&settings).await.unwrap();
    production.publish(&settings).await.unwrap();
    // The launcher answers as RDS does for a key it may not use (CopyDBSnapshot lists
    // KMSKeyNotAccessibleFault); the key itself is shared by every test, so it stays usable.
    let fault = json!({"action": "CopyDBSnapshot", "match": source.id, "status": 400, "code": "KMSKeyNotAccessibleFault", "times": 1});
    refresh_tests::fixture("faults", fault).await;
    let run = s.run("copykey", &shared_request(&s, &source)).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("AwsRequestFailed"), Some("Restore")).await;
    let message = row.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("CopyDBSnapshot") && message.contains("KMSKeyNotAccessibleFault"), "{message}");
}

#[tokio::test]
async fn a_cluster_shared_through_ram_is_cloned_across_accounts_with_its_live_data() {
    let s = Scenario::real(Settings::default()).await;
    let production = Production::new().await;
    let key = production.copy_key().await;
    let id = production.cluster(&format!("prod-{}", s.w.id), &key).await;
    let source = s.w.back_with_postgres(Some(PRODUCTION_ACCOUNT), "cluster", id).await;
    s.w.sql(&source.server, "app", "insert into public.customers (email, name, profile, created_at) values ('live@example.com', 'Live', '{}', now())").await;
    let expected = s.w.checksums(&source.server, "app").await;
    // The launcher plays copy-on-write as the archive replayed to its end: bring it to now.
    refresh_tests::fixture("postgres/archive", json!({"account": PRODUCTION_ACCOUNT, "cluster": source.id})).await;
    production.share_cluster_through_ram(&source.id, true).await;

    let mut request = s.w.request("aurora-cluster", &source.id);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request["source"]["mode"] = json!("fast-clone");
    let from = OffsetDateTime::now_utc();
    let run = s.run("ramclone", &request).await;
    let to = OffsetDateTime::now_utc();
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_mode.as_deref(), Some("fast-clone"));
    assert_eq!(s.w.checksums(s.w.pool(), "app").await, expected, "the live data, every table");
    let seen = s.w.connections(&source.server, from, to).await;
    assert!(seen.is_empty(), "production received {} connection(s): {seen:#?}", seen.len());
    let asked = production.requests_from_elsewhere(&s.w.id).await;
    assert!(asked.iter().any(|a| a == "rds RestoreDBClusterToPointInTime"), "{asked:?}");
    assert_eq!(beyond_reading_shares(&asked), Vec::<String>::new(), "only the clone of the shared cluster: {asked:?}");
}
