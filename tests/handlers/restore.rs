use refresh_core::naming;
use refresh_core::poll::PollStatus;
use refresh_core::run::CloneKind;
use refresh_core::tags;
use refresh_tests::World;
use serde_json::json;

use crate::{find, restore_clone};

fn tag<'a>(list: &'a [aws_sdk_rds::types::Tag], key: &str) -> Option<&'a str> {
    list.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

#[tokio::test]
async fn restores_a_tagged_instance_with_a_sanitized_name() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["target"] = json!(format!("Stage_DB.{}", w.id));
    request["clone"]["tags"] = json!({"team": "data", "cost-center": "42"});
    let snapshot = find(&w, &request).await.unwrap();
    assert!(snapshot.identifier.starts_with("rds:"), "automated snapshot ids carry a colon");
    let clone = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();

    let expected = naming::clone_name(&format!("Stage_DB.{}", w.id), execution.started_at.unwrap());
    assert_eq!(clone.identifier, expected);
    assert!(clone.identifier.starts_with(&format!("dblab-refresh-stage-db-{}-", w.id)));
    assert_eq!(clone.kind, CloneKind::Instance);
    assert_eq!(clone.status, PollStatus::Pending);
    assert_eq!(clone.instance_class, "db.r6g.xlarge");

    let described = w.rds.describe_db_instances().db_instance_identifier(&clone.identifier).send().await.unwrap();
    let instance = &described.db_instances()[0];
    assert_eq!(instance.db_instance_class(), Some("db.r6g.xlarge"));
    assert_ne!(instance.publicly_accessible(), Some(true), "clones are private unless asked");
    let list = instance.tag_list();
    assert_eq!(tag(list, "team"), Some("data"));
    assert_eq!(tag(list, "cost-center"), Some("42"));
    assert_eq!(tag(list, tags::MANAGED_BY_KEY), Some(tags::MANAGED_BY_VALUE));
    assert_eq!(tag(list, tags::TARGET_KEY), Some(format!("Stage_DB.{}", w.id).as_str()));
    assert_eq!(tag(list, tags::EXECUTION_KEY), Some(execution.name.as_str()));
    assert_eq!(tag(list, tags::EXECUTION_ARN_KEY), execution.arn.as_deref());
    let delete_after = time::OffsetDateTime::parse(
        tag(list, tags::DELETE_AFTER_KEY).unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = delete_after - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::minutes(59) && ahead <= time::Duration::hours(1), "maxAge is 1h: {ahead}");
}

#[tokio::test]
async fn provisioned_storage_is_restored_with_its_iops_which_rds_requires() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    // The source has 20 GiB: io1 takes at most 50 IOPS per GiB.
    request["clone"]["storageType"] = json!("io1");
    request["clone"]["iops"] = json!(1000);
    let snapshot = find(&w, &request).await.unwrap();
    assert_eq!(snapshot.storage_gb, Some(20));
    let clone = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    let described = w.rds.describe_db_instances().db_instance_identifier(&clone.identifier).send().await.unwrap();
    let instance = &described.db_instances()[0];
    assert_eq!((instance.storage_type(), instance.iops()), (Some("io1"), Some(1000)));
    // What validation keeps from RDS: the type without its IOPS, which RDS refuses.
    assert_eq!(refused_restore(&w, &snapshot.identifier, "io1", None).await, "InvalidParameterCombination");
}

/// The code RDS (the launcher) refuses a restore of `snapshot` as `storage` with `iops` with.
async fn refused_restore(w: &World, snapshot: &str, storage: &str, iops: Option<i32>) -> String {
    let refused = w
        .rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier(refresh_tests::unique("raw"))
        .db_snapshot_identifier(snapshot)
        .storage_type(storage)
        .set_iops(iops)
        .send()
        .await
        .unwrap_err();
    aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&refused)
        .unwrap_or_else(|| panic!("no code: {refused:?}"))
        .to_string()
}

#[tokio::test]
async fn gp3_takes_its_baseline_and_iops_only_where_rds_provisions_them() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["clone"]["storageType"] = json!("gp3");
    let snapshot = find(&w, &request).await.unwrap();
    let clone = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    let described = w.rds.describe_db_instances().db_instance_identifier(&clone.identifier).send().await.unwrap();
    assert_eq!(described.db_instances()[0].storage_type(), Some("gp3"));
    // 12000 IOPS on 20 GiB: RDS provisions gp3 IOPS for PostgreSQL only from 400 GiB. The
    // preflight refuses it, naming the field, before anything exists.
    request["clone"]["iops"] = json!(12_000);
    let refused = find(&w, &request).await.unwrap_err();
    assert_eq!(refused.name(), "InvalidRequest");
    assert!(refused.to_string().contains("clone.iops") && refused.to_string().contains("400 GiB"), "{refused}");
    // And so would RDS (the launcher, as RDS answers).
    let code = refused_restore(&w, &snapshot.identifier, "gp3", Some(12_000)).await;
    assert_eq!(code, "InvalidParameterCombination");
}

#[tokio::test]
async fn a_retried_restore_returns_the_same_clone() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let snapshot = find(&w, &request).await.unwrap();
    let first = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    let second = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    assert_eq!(first.identifier, second.identifier);
    assert_eq!(w.rds_names(&format!("dblab-refresh-target-{}", w.id)).await, vec![first.identifier]);
}

#[tokio::test]
async fn a_clone_of_another_execution_is_never_adopted() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let snapshot = find(&w, &request).await.unwrap();
    restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    let mut other = execution.clone();
    other.name = format!("other-{}", w.id);
    let err = restore_clone(&w, &request, &other, &snapshot).await.unwrap_err();
    assert_eq!(err.name(), "CloneConflict");
    assert!(err.to_string().contains(&execution.name), "{err}");
}

#[tokio::test]
async fn an_existing_unmanaged_instance_under_the_name_is_a_conflict() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let name = naming::clone_name(&w.target(), execution.started_at.unwrap());
    w.rds
        .create_db_instance()
        .db_instance_identifier(&name)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("x")
        .master_user_password("password123")
        .allocated_storage(20)
        .send()
        .await
        .unwrap();
    let snapshot = find(&w, &request).await.unwrap();
    let err = restore_clone(&w, &request, &execution, &snapshot).await.unwrap_err();
    assert_eq!(err.name(), "CloneConflict");
    assert!(err.to_string().contains("ManagedBy"), "{err}");
}

#[tokio::test]
async fn restores_an_aurora_cluster_tagged_as_ours() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let request = w.request("aurora-cluster", &source);
    let execution = w.execution();
    let snapshot = find(&w, &request).await.unwrap();
    let clone = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    assert_eq!(clone.kind, CloneKind::Cluster);
    assert_eq!(clone.writer_instance_id.as_deref(), Some(naming::writer_instance_name(&clone.identifier).as_str()));
    assert_eq!(clone.instance_id(), naming::writer_instance_name(&clone.identifier));
    let cluster = w.rds.describe_db_clusters().db_cluster_identifier(&clone.identifier).send().await.unwrap();
    let cluster = &cluster.db_clusters()[0];
    assert_eq!(cluster.engine(), Some("aurora-postgresql"));
    assert_eq!(tag(cluster.tag_list(), tags::MANAGED_BY_KEY), Some(tags::MANAGED_BY_VALUE));
    let retried = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    assert_eq!(retried.identifier, clone.identifier);
}

/// Fails the next call of `action` whose body holds `text`, runs `restore`, and clears the
/// fault: an error here proves which RDS action (and parameter) the restore used.
async fn refused_once(action: &str, text: &str) {
    let fault = json!({"action": action, "match": text, "status": 400, "code": "InvalidRestoreFault", "times": 1});
    refresh_tests::fixture("faults", fault).await;
}

#[tokio::test]
async fn a_point_in_time_clone_of_an_instance_is_restored_to_that_time() {
    let w = World::new().await;
    let (source, mut request, execution) = w.rds_case().await;
    request["source"]["mode"] = json!("latest-point");
    let point = find(&w, &request).await.unwrap();
    refused_once("RestoreDBInstanceToPointInTime", &format!("SourceDBInstanceIdentifier={source}")).await;
    let err = restore_clone(&w, &request, &execution, &point).await.unwrap_err();
    assert!(err.to_string().contains("RestoreDBInstanceToPointInTime"), "{err}");

    let clone = restore_clone(&w, &request, &execution, &point).await.unwrap();
    assert_eq!((clone.kind, clone.engine.as_str()), (CloneKind::Instance, "postgres"));
    let described = w.rds.describe_db_instances().db_instance_identifier(&clone.identifier).send().await.unwrap();
    let instance = &described.db_instances()[0];
    assert_eq!(instance.db_instance_class(), Some("db.r6g.xlarge"));
    assert_eq!(tag(instance.tag_list(), tags::MANAGED_BY_KEY), Some(tags::MANAGED_BY_VALUE));
    assert_eq!(tag(instance.tag_list(), tags::EXECUTION_KEY), Some(execution.name.as_str()));
    // The source is only read from.
    let production = w.rds.describe_db_instances().db_instance_identifier(&source).send().await.unwrap();
    let production = &production.db_instances()[0];
    assert_eq!(tag(production.tag_list(), tags::MANAGED_BY_KEY), None);
    assert_eq!(production.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(restore_clone(&w, &request, &execution, &point).await.unwrap().identifier, clone.identifier);
}

#[tokio::test]
async fn an_aurora_fast_clone_is_copy_on_write() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let mut request = w.request("aurora-cluster", &source);
    request["source"]["mode"] = json!("fast-clone");
    let execution = w.execution();
    let point = find(&w, &request).await.unwrap();
    refused_once("RestoreDBClusterToPointInTime", "RestoreType=copy-on-write").await;
    let err = restore_clone(&w, &request, &execution, &point).await.unwrap_err();
    assert!(err.to_string().contains("RestoreDBClusterToPointInTime"), "{err}");

    let clone = restore_clone(&w, &request, &execution, &point).await.unwrap();
    assert_eq!(clone.kind, CloneKind::Cluster);
    let cluster = w.rds.describe_db_clusters().db_cluster_identifier(&clone.identifier).send().await.unwrap();
    let cluster = &cluster.db_clusters()[0];
    assert_eq!(cluster.engine(), Some("aurora-postgresql"));
    assert_eq!(tag(cluster.tag_list(), tags::MANAGED_BY_KEY), Some(tags::MANAGED_BY_VALUE));
    let production = w.rds.describe_db_clusters().db_cluster_identifier(&source).send().await.unwrap();
    assert_eq!(tag(production.db_clusters()[0].tag_list(), tags::MANAGED_BY_KEY), None);

    // A retry (its answer lost) finds the clone and keeps the time it was asked for: the
    // moment the copy-on-write clone's data is from, not the retry's.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let retried = restore_clone(&w, &request, &execution, &point).await.unwrap();
    assert_eq!(retried.identifier, clone.identifier);
    let drift = (retried.requested_at - clone.requested_at).abs();
    assert!(drift < time::Duration::seconds(1), "{} then {}", clone.requested_at, retried.requested_at);
}

/// An Aurora source with or without a Serverless v2 scaling configuration.
async fn aurora_source_scaled(w: &World, scaled: bool) -> String {
    let id = format!("prod-sv2-{}", w.id);
    let mut create = w
        .rds
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .engine_version("16.3")
        .master_username("admin")
        .master_user_password("production-password");
    if scaled {
        let scaling =
            aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder().min_capacity(0.5).max_capacity(4.0).build();
        create = create.serverless_v2_scaling_configuration(scaling);
    }
    create.send().await.unwrap();
    id
}

#[tokio::test]
async fn a_serverless_v2_clone_copies_the_source_capacity_and_gets_its_writer() {
    let w = World::new().await;
    let source = aurora_source_scaled(&w, true).await;
    let mut request = w.request("aurora-cluster", &source);
    request["clone"]["instanceClass"] = json!("db.serverless");
    let execution = w.execution();
    let snapshot = find(&w, &request).await.unwrap();
    let capacity = snapshot.serverless_capacity.unwrap();
    assert_eq!((capacity.min_capacity, capacity.max_capacity), (0.5, 4.0), "copied from the source cluster");
    let clone = restore_clone(&w, &request, &execution, &snapshot).await.unwrap();
    let clone = crate::until_settled(&w, &request, &execution, clone).await;
    assert_eq!(clone.status, PollStatus::Ready, "{clone:?}");
}

#[tokio::test]
async fn a_serverless_v2_clone_without_any_capacity_is_refused_clearly() {
    let w = World::new().await;
    let source = aurora_source_scaled(&w, false).await;
    let mut request = w.request("aurora-cluster", &source);
    request["clone"]["instanceClass"] = json!("db.serverless");
    // The preflight refuses it before anything exists...
    let err = find(&w, &request).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    assert!(err.to_string().contains("clone.minCapacity"), "{err}");
    // ...and should a cluster without a configuration be restored anyway, RDS's refusal of
    // its writer is terminal and says why, never "not ready yet".
    request["clone"]["minCapacity"] = json!(0.5);
    request["clone"]["maxCapacity"] = json!(2);
    let mut snapshot = find(&w, &request).await.unwrap();
    snapshot.serverless_capacity = None;
    let execution = w.execution();
    let clone = restore_clone(&w, &request, &execution, &snapshot).await;
    let err = match clone {
        Err(e) => e,
        Ok(clone) => crate::check(&w, &request, &execution, &clone).await.unwrap_err(),
    };
    assert_eq!(err.name(), "InvalidRequest");
    assert!(err.to_string().contains("Serverless v2 scaling configuration"), "{err}");
}

/// An Aurora PostgreSQL source on `version`, scaled 0.5 to 4 ACUs.
async fn aurora_source_on(w: &World, label: &str, version: &str) -> String {
    let id = format!("prod-{label}-{}", w.id);
    let scaling =
        aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder().min_capacity(0.5).max_capacity(4.0).build();
    w.rds
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .engine_version(version)
        .master_username("admin")
        .master_user_password("production-password")
        .serverless_v2_scaling_configuration(scaling)
        .send()
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_serverless_v2_range_the_source_version_cannot_take_is_refused_before_anything_exists() {
    let w = World::new().await;
    let cases = [
        ("old", "13.4", None, "clone.instanceClass"),
        ("nopause", "14.6", Some((0.0, 4.0)), "clone.minCapacity"),
        ("small", "14.6", Some((0.5, 256.0)), "clone.maxCapacity"),
    ];
    for (label, version, capacity, field) in cases {
        let source = aurora_source_on(&w, label, version).await;
        let mut request = w.request("aurora-cluster", &source);
        request["clone"]["instanceClass"] = json!("db.serverless");
        if let Some((min, max)) = capacity {
            request["clone"]["minCapacity"] = json!(min);
            request["clone"]["maxCapacity"] = json!(max);
        }
        let err = find(&w, &request).await.unwrap_err();
        assert_eq!(err.name(), "InvalidRequest");
        let text = err.to_string();
        assert!(text.contains(field) && text.contains(version), "{version} {capacity:?}: {text}");
    }
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "nothing was created");
    // A version that pauses and scales to 256 takes both.
    let source = aurora_source_on(&w, "recent", "16.3").await;
    let mut request = w.request("aurora-cluster", &source);
    request["clone"]["instanceClass"] = json!("db.serverless");
    request["clone"]["minCapacity"] = json!(0);
    request["clone"]["maxCapacity"] = json!(256);
    let capacity = find(&w, &request).await.unwrap().serverless_capacity.unwrap();
    assert_eq!((capacity.min_capacity, capacity.max_capacity), (0.0, 256.0));
}
