//! Every handler against a real moto server and the DBLab emulator, over HTTP.
// A test fails by panicking: unwrapping is how these helpers report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod check_available;
mod delete_clone;
mod emulator_real;
mod find_snapshot;
mod notify;
mod patch_dblab;
mod poll_refresh;
mod publisher;
mod record;
mod restore;
mod shared_snapshots;

use refresh_core::RefreshError;
use refresh_core::executions::Executions;
use refresh_core::history::History;
use refresh_core::notification::Notifier;
use refresh_core::poll::PollStatus;
use refresh_core::rds::Rds;
use refresh_core::run::{CloneInstance, Execution, RestoreSource};
use refresh_core::secrets::SecretReader;
use refresh_core::watch::Watch;
use refresh_tests::World;
use serde_json::Value;
use std::time::Duration;

pub fn find_deps(w: &World) -> ::find_snapshot::Deps {
    ::find_snapshot::Deps {
        rds: Rds::new(w.rds.clone()),
        ec2: refresh_core::clients::Ec2::new(&w.config),
        kms: refresh_core::clients::Kms::new(&w.config),
        allowed_kms_keys: vec![refresh_tests::stack::ALLOWED_KMS_KEY.to_string()],
        shared_snapshot_arns: refresh_tests::production::shared_snapshot_arns(),
        copy_key: Some(refresh_tests::stack::copy_in_key_arn()),
        secrets: SecretReader::new(w.secrets.clone()),
        dblab: Default::default(),
        engines: w.engines(),
    }
}

pub fn restore_deps(w: &World) -> ::restore::Deps {
    ::restore::Deps { rds: Rds::new(w.rds.clone()), history: History::new(w.dynamodb.clone(), w.history_table()) }
}

pub fn check_deps(w: &World) -> ::check_available::Deps {
    ::check_available::Deps {
        rds: Rds::new(w.rds.clone()),
        history: History::new(w.dynamodb.clone(), w.history_table()),
    }
}

pub fn patch_deps(w: &World) -> ::patch_dblab::Deps {
    ::patch_dblab::Deps {
        secrets: SecretReader::new(w.secrets.clone()),
        dblab: Default::default(),
        engines: w.engines(),
        history: History::new(w.dynamodb.clone(), w.history_table()),
    }
}

pub fn poll_deps(w: &World) -> ::poll_refresh::Deps {
    ::poll_refresh::Deps {
        secrets: SecretReader::new(w.secrets.clone()),
        dblab: Default::default(),
        engines: w.engines(),
    }
}

pub fn delete_deps(w: &World) -> ::delete_clone::Deps {
    ::delete_clone::Deps {
        rds: Rds::new(w.rds.clone()),
        executions: Executions::new(w.sfn.clone()),
        longest_call: std::time::Duration::from_secs(2),
    }
}

pub fn record_deps(w: &World, table: &str) -> ::record::Deps {
    ::record::Deps {
        history: History::new(w.dynamodb.clone(), table),
        executions: Executions::new(w.sfn.clone()),
        region: "us-east-1".into(),
        freshness_default: std::time::Duration::from_secs(36 * 3_600),
        metrics_namespace: "dblab-refresh/test".into(),
        metrics: refresh_core::metrics::Sink::collecting(),
        cleanup_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:no-cleanup".into(),
        cleanup_after: ::record::CLEANUP_AFTER,
        engines: w.engines(),
    }
}

pub fn notify_deps(w: &World, topic_arn: &str, table: &str) -> ::notify::Deps {
    ::notify::Deps {
        notifier: Notifier::new(w.sns.clone(), topic_arn),
        history: History::new(w.dynamodb.clone(), table),
    }
}

pub async fn find(w: &World, request: &Value) -> Result<RestoreSource, RefreshError> {
    // Through the Lambda adapter's door: an invalid request is refused there, as in AWS.
    let event = serde_json::json!({"execution": w.execution(), "request": request});
    let input = lambda_adapter::read_input::<::find_snapshot::Input>(event)?;
    ::find_snapshot::handle(&find_deps(w), input, Watch::once()).await
}

pub async fn restore_clone(
    w: &World,
    request: &Value,
    execution: &Execution,
    snapshot: &RestoreSource,
) -> Result<CloneInstance, RefreshError> {
    w.hold_locks(execution, &[request["target"].as_str().unwrap_or_default()]).await;
    let input = ::restore::Input { execution: execution.clone(), request: typed(request), snapshot: snapshot.clone() };
    ::restore::handle(&restore_deps(w), input).await
}

pub async fn check(
    w: &World,
    request: &Value,
    execution: &Execution,
    clone: &CloneInstance,
) -> Result<CloneInstance, RefreshError> {
    let input =
        ::check_available::Input { execution: execution.clone(), request: typed(request), clone: clone.clone() };
    ::check_available::handle(&check_deps(w), input, Watch::once()).await
}

/// Polls the clone until it leaves `pending` (at most 30 polls).
pub async fn until_settled(w: &World, request: &Value, execution: &Execution, clone: CloneInstance) -> CloneInstance {
    let mut clone = clone;
    for _ in 0..30 {
        clone = check(w, request, execution, &clone).await.unwrap();
        if clone.status != PollStatus::Pending {
            return clone;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clone {} still pending: {}", clone.identifier, clone.rds_status);
}

/// The snapshot found and the clone restored (still pending), for this execution.
pub async fn restored(w: &World, request: &Value, execution: &Execution) -> CloneInstance {
    let snapshot = find(w, request).await.unwrap();
    restore_clone(w, request, execution, &snapshot).await.unwrap()
}

/// Source, snapshot and an available clone: the state before patch-dblab.
pub async fn ready_clone(w: &World, request: &Value, execution: &Execution) -> CloneInstance {
    let clone = restored(w, request, execution).await;
    let clone = until_settled(w, request, execution, clone).await;
    assert_eq!(clone.status, PollStatus::Ready, "{clone:?}");
    clone
}

/// A request the tests know to be valid, as a handler's input holds it.
pub fn typed(request: &Value) -> refresh_core::RefreshRequest {
    refresh_core::RefreshRequest::from_document(request).unwrap_or_else(|e| panic!("invalid test request: {e}"))
}

/// The error name, or a panic naming what came back instead.
pub fn error_name<T: std::fmt::Debug>(result: Result<T, RefreshError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.name(),
    }
}
