use refresh_core::poll::PollStatus;
use refresh_core::run::CloneKind;
use refresh_tests::World;
use serde_json::json;

use refresh_core::watch::Watch;
use std::time::Duration;

use crate::{check, check_deps, restored, until_settled};

#[tokio::test]
async fn pending_while_creating_then_ready_with_the_endpoint() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "2"});
    let clone = restored(&w, &request, &execution).await;
    let first = check(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!((first.status, first.rds_status.as_str()), (PollStatus::Pending, "creating"));
    let second = check(&w, &request, &execution, &first).await.unwrap();
    assert_eq!(second.status, PollStatus::Pending);
    let third = check(&w, &request, &execution, &second).await.unwrap();
    assert_eq!(third.status, PollStatus::Ready);
    assert_eq!(third.checks, 3);
    let endpoint = third.endpoint.clone().unwrap();
    assert!(endpoint.address.starts_with(&clone.identifier), "{endpoint:?}");
    assert!(third.ready_at.is_some());
}

#[tokio::test]
async fn one_invocation_watches_until_the_clone_is_ready() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "2"});
    request["clone"]["pollInterval"] = json!("1s");
    let clone = restored(&w, &request, &execution).await;
    let input = ::check_available::Input { execution, request: crate::typed(&request), clone };
    // A look may take its calls' longest time: the window leaves room for it after each wait.
    let window = refresh_core::rds::LONGEST_CHECK + Duration::from_secs(30);
    let ready = ::check_available::handle(&check_deps(&w), input, Watch::for_window(window)).await.unwrap();
    assert_eq!((ready.status, ready.checks), (PollStatus::Ready, 3));
    assert!(ready.endpoint.is_some());
}

#[tokio::test]
async fn a_terminal_rds_status_fails_with_that_status() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "1", "test:final-status": "incompatible-restore"});
    let clone = restored(&w, &request, &execution).await;
    let settled = until_settled(&w, &request, &execution, clone).await;
    assert_eq!(settled.status, PollStatus::Failed);
    assert_eq!(settled.rds_status, "incompatible-restore");
}

#[tokio::test]
async fn a_clone_that_never_becomes_available_times_out() {
    let w = World::new().await;
    let (_, mut request, execution) = w.rds_case().await;
    request["clone"]["tags"] = json!({"test:creating-polls": "1000"});
    request["clone"]["restoreTimeout"] = json!("1s");
    let clone = restored(&w, &request, &execution).await;
    let early = check(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!(early.status, PollStatus::Pending);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let late = check(&w, &request, &execution, &early).await.unwrap();
    assert_eq!(late.status, PollStatus::TimedOut);
    assert_eq!(late.rds_status, "creating");
}

#[tokio::test]
async fn a_vanished_clone_is_a_failure() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let clone = restored(&w, &request, &execution).await;
    w.rds
        .delete_db_instance()
        .db_instance_identifier(&clone.identifier)
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    let next = check(&w, &request, &execution, &clone).await.unwrap();
    assert_eq!((next.status, next.rds_status.as_str()), (PollStatus::Failed, "not-found"));
}

#[tokio::test]
async fn aurora_is_ready_once_the_writer_is_up_with_the_writer_endpoint() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let request = w.request("aurora-cluster", &source);
    let execution = w.execution();
    let clone = restored(&w, &request, &execution).await;
    let ready = until_settled(&w, &request, &execution, clone.clone()).await;
    assert_eq!(ready.status, PollStatus::Ready, "{ready:?}");
    assert_eq!(ready.kind, CloneKind::Cluster);
    let cluster = w.rds.describe_db_clusters().db_cluster_identifier(&clone.identifier).send().await.unwrap();
    let cluster = &cluster.db_clusters()[0];
    assert_eq!(
        ready.endpoint.as_ref().map(|e| e.address.as_str()),
        cluster.endpoint(),
        "the cluster's writer endpoint"
    );
    let members: Vec<_> = cluster.db_cluster_members().iter().filter_map(|m| m.db_instance_identifier()).collect();
    assert_eq!(members, vec![ready.instance_id()]);
}

#[tokio::test]
async fn aws_errors_are_classified_transient_or_terminal() {
    let w = World::new().await;
    let (_, request, execution) = w.rds_case().await;
    let clone = restored(&w, &request, &execution).await;
    // The exact parameter: a listing's page marker may name this clone too.
    let only_this = format!("DBInstanceIdentifier={}", clone.identifier);
    for (status, code, expected) in [
        (500, "InternalFailure", "AwsTransient"),
        (400, "Throttling", "AwsTransient"),
        (403, "AccessDenied", "AwsRequestFailed"),
    ] {
        let scope =
            json!({"action": "DescribeDBInstances", "match": only_this, "status": status, "code": code, "times": 10});
        refresh_tests::fixture("faults", scope).await;
        let result = check(&w, &request, &execution, &clone).await;
        refresh_tests::fixture("faults/clear", json!({"match": only_this})).await;
        let err = result.unwrap_err();
        assert_eq!(err.name(), expected, "{status} {code}: {err}");
        assert!(err.to_string().contains(code), "{err}");
    }
}

#[tokio::test]
async fn an_aurora_clone_reports_its_storage_configuration_for_its_price() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let mut request = w.request("aurora-cluster", &source);
    request["clone"]["storageType"] = json!("aurora-iopt1");
    let execution = w.execution();
    let clone = restored(&w, &request, &execution).await;
    let ready = until_settled(&w, &request, &execution, clone).await;
    assert_eq!(ready.storage_type.as_deref(), Some("aurora-iopt1"), "{ready:?}");
    let engine = refresh_core::cost::Engine::aurora(ready.storage_type.as_deref());
    assert_eq!(engine, refresh_core::cost::Engine::AuroraIoOptimized);
}

#[tokio::test]
async fn an_aurora_look_makes_at_most_the_calls_its_time_bound_counts() {
    let w = World::new().await;
    let source = w.aurora_source().await;
    let request = w.request("aurora-cluster", &source);
    let execution = w.execution();
    let requests = refresh_tests::Requests::default();
    let counted = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&w.config).interceptor(requests.clone()).build(),
    );
    let deps = ::check_available::Deps {
        rds: refresh_core::rds::Rds::new(counted),
        history: refresh_core::history::History::new(w.dynamodb.clone(), w.history_table()),
    };
    let look = |clone: refresh_core::run::CloneInstance| {
        let input = ::check_available::Input { execution: execution.clone(), request: crate::typed(&request), clone };
        ::check_available::handle(&deps, input, Watch::once())
    };
    let mut clone = restored(&w, &request, &execution).await;
    let mut most = 0;
    for _ in 0..30 {
        requests.clear();
        clone = look(clone).await.unwrap();
        most = most.max(requests.all().len());
        if clone.status != PollStatus::Pending {
            break;
        }
    }
    assert_eq!(clone.status, PollStatus::Ready);
    assert!(most > 2, "the look that creates the writer makes {most} calls");
    // The worst case: the writer's description misses it (a lost answer made it already),
    // so its creation conflicts and it is described again.
    let writer = clone.instance_id().to_string();
    let fault = json!({"action": "DescribeDBInstances", "match": writer, "status": 404, "code": "DBInstanceNotFound", "times": 1});
    refresh_tests::fixture("faults", fault).await;
    clone.status = PollStatus::Pending;
    requests.clear();
    look(clone).await.unwrap();
    let calls = requests.all();
    most = most.max(calls.len());
    assert_eq!(most, refresh_core::rds::MOST_CALLS_PER_CHECK as usize, "{calls:?}");
}
