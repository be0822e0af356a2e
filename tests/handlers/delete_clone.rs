use ::delete_clone::{Input, Output, SweepReport};
use aws_sdk_rds::types::Tag;
use refresh_core::RefreshError;
use refresh_core::naming;
use refresh_core::poll::PollStatus;
use refresh_core::run::{CloneInstance, CloneKind, Deletion, DeletionStatus, Execution, Stop};
use refresh_core::tags;
use refresh_tests::World;
use serde_json::json;
use time::OffsetDateTime;

use crate::{delete_deps, ready_clone};

pub async fn delete(
    w: &World,
    execution: &Execution,
    clone: &CloneInstance,
    previous: Option<Deletion>,
) -> Result<Deletion, RefreshError> {
    delete_within(w, execution, clone, previous, None).await
}

pub async fn delete_within(
    w: &World,
    execution: &Execution,
    clone: &CloneInstance,
    previous: Option<Deletion>,
    timeout_seconds: Option<u64>,
) -> Result<Deletion, RefreshError> {
    let input = Input::Delete {
        execution: execution.clone(),
        clone: Box::new(clone.clone()),
        deletion: previous,
        timeout_seconds,
    };
    match ::delete_clone::handle(&delete_deps(w), input).await? {
        Output::Deletion(d) => Ok(d),
        Output::Sweep(s) => panic!("a deletion returned a sweep report: {s:?}"),
    }
}

/// Deletes until gone (at most ten steps).
pub async fn delete_fully(w: &World, execution: &Execution, clone: &CloneInstance) -> Deletion {
    let mut previous = None;
    for _ in 0..10 {
        let d = delete(w, execution, clone, previous).await.unwrap();
        if d.status == DeletionStatus::Deleted {
            return d;
        }
        previous = Some(d);
    }
    panic!("{} never finished deleting", clone.identifier);
}

async fn sweep(w: &World, dry_run: bool, execution_arn: Option<String>) -> SweepReport {
    match ::delete_clone::handle(&delete_deps(w), Input::Sweep { dry_run, execution_arn, max_age: None }).await.unwrap()
    {
        Output::Sweep(report) => report,
        Output::Deletion(d) => panic!("a sweep returned a deletion: {d:?}"),
    }
}

fn clone_ref(identifier: &str, kind: CloneKind) -> CloneInstance {
    let now = OffsetDateTime::now_utc();
    CloneInstance {
        identifier: identifier.into(),
        kind,
        writer_instance_id: (kind == CloneKind::Cluster).then(|| naming::writer_instance_name(identifier)),
        instance_class: "db.t3.micro".into(),
        engine: "postgres".into(),
        requested_at: now,
        deadline: now,
        status: PollStatus::Ready,
        rds_status: "available".into(),
        endpoint: None,
        checks: 1,
        ready_at: Some(now),
        storage_type: None,
        copy: None,
    }
}

fn ours(execution: &Execution, delete_after: &str) -> Vec<Tag> {
    let owner = tags::Ownership {
        target: "t",
        execution_name: &execution.name,
        execution_arn: execution.arn.as_deref(),
        delete_after,
    };
    tags::clone_tags(&Default::default(), &owner)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn instance(w: &World, id: &str, tag_list: Vec<Tag>, protected: bool) {
    w.rds
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("x")
        .master_user_password("password123")
        .allocated_storage(20)
        .deletion_protection(protected)
        .set_tags(Some(tag_list))
        .send()
        .await
        .unwrap();
}

async fn exists(w: &World, id: &str) -> bool {
    w.rds.describe_db_instances().db_instance_identifier(id).send().await.is_ok()
}

#[tokio::test]
async fn deletes_the_runs_clone_even_with_deletion_protection() {
    let w = World::new().await;
    let (source, mut request, execution) = w.rds_case().await;
    request["clone"]["deletionProtection"] = json!(true);
    let clone = ready_clone(&w, &request, &execution).await;
    let deletion = delete_fully(&w, &execution, &clone).await;
    assert_eq!(deletion.deleted, vec![clone.identifier.clone()]);
    assert!(!exists(&w, &clone.identifier).await);
    assert!(exists(&w, &source).await, "the source is untouched");
    let again = delete(&w, &execution, &clone, Some(deletion)).await.unwrap();
    assert_eq!(again.status, DeletionStatus::Deleted, "already gone is done");
    assert_eq!(again.checks, 2);
}

#[tokio::test]
async fn a_deletion_refused_while_unprotecting_applies_is_looked_at_again() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["clone"]["deletionProtection"] = json!(true);
    let clone = ready_clone(&w, &request, &execution).await;
    // As RDS answers while the protection change is still being applied.
    let fault = json!({"action": "DeleteDBInstance", "match": clone.identifier, "status": 400,
        "code": "InvalidParameterCombination",
        "message": "Cannot delete protected DB Instance, please disable deletion protection and try again.", "times": 1});
    refresh_tests::fixture("faults", fault).await;
    let first = delete(&w, &execution, &clone, None).await.unwrap();
    assert_eq!(first.status, DeletionStatus::Deleting, "not a failure: look again");
    let deletion = delete_fully(&w, &execution, &clone).await;
    assert_eq!(deletion.status, DeletionStatus::Deleted);
    assert!(!exists(&w, &clone.identifier).await);
}

#[tokio::test]
async fn a_deletion_is_followed_for_a_time_not_a_count_of_checks() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let clone = ready_clone(&w, &request, &execution).await;
    // RDS keeps refusing: the instance is busy (as when a modification is applying).
    let fault = json!({"action": "DeleteDBInstance", "match": clone.identifier, "status": 400,
        "code": "InvalidDBInstanceState", "times": 100});
    refresh_tests::fixture("faults", fault).await;
    let first = delete_within(&w, &execution, &clone, None, Some(2)).await.unwrap();
    assert_eq!(first.status, DeletionStatus::Deleting);
    let second = delete_within(&w, &execution, &clone, Some(first.clone()), Some(2)).await.unwrap();
    assert_eq!(second.status, DeletionStatus::Deleting, "a second check is not a reason to stop");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let late = delete_within(&w, &execution, &clone, Some(second), Some(2)).await.unwrap();
    assert_eq!(late.status, DeletionStatus::TimedOut, "two seconds after the first step");
    assert_eq!(late.requested_at, first.requested_at);
    refresh_tests::fixture("faults/clear", json!({"match": clone.identifier})).await;
    delete_fully(&w, &execution, &clone).await;
}

#[tokio::test]
async fn never_deletes_an_unmanaged_instance() {
    let w = World::new().await;
    let execution = w.execution();
    let source = w.rds_source().await;
    let err = delete(&w, &execution, &clone_ref(&source, CloneKind::Instance), None).await.unwrap_err();
    assert_eq!(err.name(), "DeleteRefused");
    assert!(exists(&w, &source).await);

    // Our prefix without our tag is not enough.
    let lookalike = format!("dblab-refresh-lookalike-{}", w.id);
    instance(&w, &lookalike, vec![Tag::builder().key("ManagedBy").value("terraform").build()], false).await;
    let err = delete(&w, &execution, &clone_ref(&lookalike, CloneKind::Instance), None).await.unwrap_err();
    assert_eq!(err.name(), "DeleteRefused");
    assert!(err.to_string().contains("ManagedBy"), "{err}");
    assert!(exists(&w, &lookalike).await);

    // Our tag without our prefix is not enough either.
    let renamed = format!("renamed-{}", w.id);
    instance(&w, &renamed, ours(&execution, "2000-01-01T00:00:00Z"), false).await;
    assert_eq!(
        delete(&w, &execution, &clone_ref(&renamed, CloneKind::Instance), None).await.unwrap_err().name(),
        "DeleteRefused"
    );
    assert!(exists(&w, &renamed).await);
}

#[tokio::test]
async fn never_deletes_another_executions_clone() {
    let w = World::new().await;
    let execution = w.execution();
    let id = format!("dblab-refresh-other-{}", w.id);
    instance(&w, &id, ours(&execution, "2100-01-01T00:00:00Z"), false).await;
    let mut stranger = execution.clone();
    stranger.name = "someone-else".into();
    let err = delete(&w, &stranger, &clone_ref(&id, CloneKind::Instance), None).await.unwrap_err();
    assert_eq!(err.name(), "DeleteRefused");
    assert!(exists(&w, &id).await);
}

#[tokio::test]
async fn aurora_members_go_first_and_the_cluster_waits_for_them() {
    let w = World::new().await;
    let execution = w.execution();
    let cluster = format!("dblab-refresh-aurora-{}", w.id);
    let writer = naming::writer_instance_name(&cluster);
    w.rds
        .create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("aurora-postgresql")
        .master_username("x")
        .master_user_password("password123")
        .deletion_protection(true)
        .set_tags(Some(ours(&execution, "2100-01-01T00:00:00Z")))
        .send()
        .await
        .unwrap();
    let mut writer_tags = ours(&execution, "2100-01-01T00:00:00Z");
    // The writer reports `deleting` until the fixture tag is removed: a slow deletion.
    writer_tags.push(Tag::builder().key("test:final-status").value("deleting").build());
    w.rds
        .create_db_instance()
        .db_instance_identifier(&writer)
        .db_cluster_identifier(&cluster)
        .engine("aurora-postgresql")
        .db_instance_class("db.r6g.large")
        .set_tags(Some(writer_tags))
        .send()
        .await
        .unwrap();
    let clone = clone_ref(&cluster, CloneKind::Cluster);

    let first = delete(&w, &execution, &clone, None).await.unwrap();
    assert_eq!(first.status, DeletionStatus::Deleting);
    assert!(first.deleted.is_empty());
    assert_eq!(w.rds_names(&cluster).await.len(), 2, "cluster kept while its member is deleting");

    let arn = w.rds.describe_db_instances().db_instance_identifier(&writer).send().await.unwrap().db_instances()[0]
        .db_instance_arn()
        .unwrap()
        .to_string();
    w.rds.remove_tags_from_resource().resource_name(arn).tag_keys("test:final-status").send().await.unwrap();
    let done = delete(&w, &execution, &clone, Some(first)).await.unwrap();
    assert_eq!(done.status, DeletionStatus::Deleted);
    assert_eq!(done.deleted, vec![writer.clone(), cluster.clone()], "members first, then the cluster");
    assert_eq!(done.checks, 2);
    assert!(w.rds_names(&cluster).await.is_empty());
}

#[tokio::test]
async fn sweep_deletes_only_clones_whose_run_is_confirmed_ended() {
    // A region of its own: the sweep looks at every clone of the account.
    let w = World::build(Default::default(), "eu-west-2").await;
    let live = w.running_execution("live").await;
    let dead = Execution {
        name: "gone".into(),
        arn: Some(format!("arn:aws:states:eu-west-2:123456789012:execution:sm-{}:gone", w.id)),
        started_at: None,
    };

    let expired = format!("dblab-refresh-expired-{}", w.id);
    let expired_live = format!("dblab-refresh-expiredlive-{}", w.id);
    let orphan = format!("dblab-refresh-orphan-{}", w.id);
    let in_use = format!("dblab-refresh-inuse-{}", w.id);
    let foreign = format!("dblab-refresh-foreign-{}", w.id);
    instance(&w, &expired, ours(&dead, "2000-01-01T00:00:00Z"), true).await;
    instance(&w, &expired_live, ours(&live, "2000-01-01T00:00:00Z"), false).await;
    instance(&w, &orphan, ours(&dead, "2100-01-01T00:00:00Z"), false).await;
    instance(&w, &in_use, ours(&live, "2100-01-01T00:00:00Z"), false).await;
    instance(&w, &foreign, vec![], false).await;
    // More than one page of instances.
    for n in 0..4 {
        instance(&w, &format!("filler{n}-{}", w.id), vec![], false).await;
    }

    let dry = sweep(&w, true, None).await;
    let mut would: Vec<_> = dry.deleted.iter().map(|i| i.identifier.clone()).collect();
    would.sort();
    assert_eq!(would, vec![expired.clone(), orphan.clone()]);
    assert_eq!(dry.examined, 4, "the unmanaged look-alike is not even examined");
    for id in [&expired, &orphan, &in_use, &foreign] {
        assert!(exists(&w, id).await, "a dry run deletes nothing");
    }

    let report = sweep(&w, false, None).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(!exists(&w, &expired).await && !exists(&w, &orphan).await);
    assert!(exists(&w, &in_use).await && exists(&w, &foreign).await);
    assert!(exists(&w, &expired_live).await, "past DeleteAfter, but its run is still running");
    let reason = |id: &str| report.deleted.iter().find(|i| i.identifier == id).map(|i| i.reason.clone()).unwrap();
    assert!(reason(&expired).starts_with("expired"));
    assert!(reason(&orphan).contains("does not exist"));
    let kept: Vec<_> = report.kept.iter().map(|i| i.identifier.clone()).collect();
    assert!(kept.contains(&in_use) && kept.contains(&expired_live), "{kept:?}");

    // The clean-up after one execution only looks at that execution's clones.
    w.sfn.stop_execution().execution_arn(live.arn.clone().unwrap()).send().await.unwrap();
    let scoped = sweep(&w, false, live.arn.clone()).await;
    assert_eq!(scoped.examined, 2);
    assert!(scoped.deleted.iter().all(|i| i.reason.contains("ABORTED")), "{scoped:?}");
    assert!(!exists(&w, &in_use).await && !exists(&w, &expired_live).await);
    assert!(exists(&w, &foreign).await);
}

#[tokio::test]
async fn a_sweep_that_cannot_check_a_run_skips_its_clone_and_says_why() {
    let w = World::build(Default::default(), "eu-west-3").await;
    let live = w.running_execution("doubt").await;
    let expired = format!("dblab-refresh-doubt-{}", w.id);
    instance(&w, &expired, ours(&live, "2000-01-01T00:00:00Z"), false).await;
    w.sfn.stop_execution().execution_arn(live.arn.clone().unwrap()).send().await.unwrap();
    // The run has ended, but the sweep cannot see that: it must not guess.
    for (status, code) in [(400, "ThrottlingException"), (400, "AccessDeniedException")] {
        let fault =
            json!({"action": "DescribeExecution", "match": live.name, "status": status, "code": code, "times": 4});
        refresh_tests::fixture("faults", fault).await;
        let report = sweep(&w, false, None).await;
        refresh_tests::fixture("faults/clear", json!({"match": live.name})).await;
        let kept = report.kept.iter().find(|i| i.identifier == expired).unwrap_or_else(|| panic!("{report:?}"));
        assert!(kept.reason.starts_with("skipped") && kept.reason.contains(code), "{kept:?}");
        assert!(exists(&w, &expired).await, "{code}: kept");
    }
    let report = sweep(&w, false, None).await;
    assert!(report.deleted.iter().any(|i| i.identifier == expired), "confirmed ended: deleted {report:?}");
}

pub async fn purge(
    w: &World,
    execution: &Execution,
    previous: Option<Deletion>,
    stop: Option<Stop>,
) -> Result<Deletion, RefreshError> {
    let input = Input::Purge { execution: execution.clone(), deletion: previous, stop, timeout_seconds: None };
    match ::delete_clone::handle(&delete_deps(w), input).await? {
        Output::Deletion(d) => Ok(d),
        Output::Sweep(s) => panic!("a purge returned a sweep report: {s:?}"),
    }
}

#[tokio::test]
async fn a_purge_names_what_it_deleted_after_its_last_call_found_nothing() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let clone = ready_clone(&w, &request, &execution).await;
    // Stopped just now, in a Task: that call may still be at work until LONGEST_CALL (2 s here).
    let stop = Stop { at: OffsetDateTime::now_utc(), in_flight: Some(true) };
    let first = purge(&w, &execution, None, Some(stop.clone())).await.unwrap();
    assert_eq!((first.status, first.identifier.as_str()), (DeletionStatus::Deleting, clone.identifier.as_str()));
    assert!(!exists(&w, &clone.identifier).await, "deleted at once all the same");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let last = purge(&w, &execution, Some(first), Some(stop)).await.unwrap();
    assert_eq!(last.status, DeletionStatus::Deleted);
    assert_eq!(last.identifier, clone.identifier, "the clone it deleted is still named");
    assert_eq!(last.deleted, vec![clone.identifier.clone()]);
}

#[tokio::test]
async fn a_purge_is_done_only_once_a_call_in_flight_is_over() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let stop = Stop { at: OffsetDateTime::now_utc(), in_flight: None };
    let first = purge(&w, &execution, None, Some(stop.clone())).await.unwrap();
    assert_eq!(first.status, DeletionStatus::Deleting, "nothing yet, but a restore may be in flight");
    // The restore that was in flight answers now: its clone appears after the first look.
    let clone = ready_clone(&w, &request, &execution).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let last = purge(&w, &execution, Some(first), Some(stop)).await.unwrap();
    assert_eq!((last.status, last.identifier.as_str()), (DeletionStatus::Deleted, clone.identifier.as_str()));
    assert!(!exists(&w, &clone.identifier).await);

    // Nothing was in flight (the run was stopped in a Wait): done at the first look.
    let other = w.running_execution("quiet").await;
    let quiet = Stop { at: OffsetDateTime::now_utc(), in_flight: Some(false) };
    let done = purge(&w, &other, None, Some(quiet)).await.unwrap();
    assert_eq!((done.status, done.identifier.as_str()), (DeletionStatus::Deleted, ""));
    // The refresh machine's own failure path has no stop: its calls are over.
    assert_eq!(purge(&w, &other, None, None).await.unwrap().status, DeletionStatus::Deleted);
}
