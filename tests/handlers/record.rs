use ::record::{Input, Output};
use aws_sdk_dynamodb::types::AttributeValue;
use refresh_core::RefreshError;
use refresh_core::history::{self, History};
use refresh_core::row::{Outcome, RunSummary};
use refresh_core::run::{CaughtError, EngineLock, Execution, RunStart, RunState};
use refresh_tests::World;
use serde_json::{Value, json};

use crate::record_deps;

pub async fn start(w: &World, table: &str, execution: &Execution, request: &Value) -> Result<RunStart, RefreshError> {
    let input = Input::Start { execution: execution.clone(), request: request.clone() };
    match ::record::handle(&record_deps(w, table), input).await? {
        Output::Started(run) => Ok(run),
        other => panic!("start returned {other:?}"),
    }
}

pub async fn finish(w: &World, table: &str, state: RunState) -> Result<RunSummary, RefreshError> {
    match ::record::handle(&record_deps(w, table), Input::Finish { state: Box::new(state) }).await? {
        Output::Finished(summary) => Ok(*summary),
        other => panic!("finish returned {other:?}"),
    }
}

async fn items(w: &World, table: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    w.dynamodb.scan().table_name(table).consistent_read(true).send().await.unwrap().items().to_vec()
}

fn other(w: &World, name: &str) -> Execution {
    let mut e = w.execution();
    e.name = format!("{name}-{}", w.id);
    e.arn = Some(format!("arn:aws:states:us-east-1:123456789012:execution:refresh:{}", e.name));
    e
}

#[tokio::test]
async fn a_start_writes_a_running_row_once_even_when_retried() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    let first = w.execution();
    let run = start(&w, &table, &first, &request).await.unwrap();
    assert_eq!(run.poll_seconds.clone, 1);
    assert!(run.run_key.starts_with("run#") && run.run_key.ends_with(&first.name));

    // A retried start by the same execution is harmless.
    assert_eq!(start(&w, &table, &first, &request).await.unwrap().run_key, run.run_key);

    let history = History::new(w.dynamodb.clone(), &table);
    let rows = history.recent(&w.target(), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Outcome::Running);
    assert_eq!(rows[0].execution_name, first.name);
}

#[tokio::test]
async fn the_lock_of_a_running_execution_holds_and_is_released_at_the_end() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    let first = w.running_execution("first").await;
    let run = start(&w, &table, &first, &request).await.unwrap();

    let second = other(&w, "second");
    let err = start(&w, &table, &second, &request).await.unwrap_err();
    assert_eq!(err.name(), "TargetLocked");
    assert!(err.to_string().contains(&first.name), "{err}");

    // The refused run still leaves a row of its own, and does not release the lock.
    let refused = RunState {
        request: request.clone(),
        execution: Some(second.clone()),
        error: Some(CaughtError {
            error: err.name().into(),
            cause: Some(json!({"errorMessage": err.to_string()}).to_string()),
        }),
        failed_state: Some("StartRun".into()),
        ..Default::default()
    };
    let summary = finish(&w, &table, refused).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Failed);
    assert_eq!(summary.error.unwrap().name, "TargetLocked");
    assert_eq!(start(&w, &table, &other(&w, "third"), &request).await.unwrap_err().name(), "TargetLocked");

    // The holder finishes: the lock goes, and the next run may start.
    let state = RunState {
        request: request.clone(),
        execution: Some(first.clone()),
        run: Some(run.clone()),
        ..Default::default()
    };
    let done = finish(&w, &table, state).await.unwrap();
    assert_eq!(done.outcome, Outcome::Failed, "no refresh happened in this state");
    start(&w, &table, &other(&w, "fourth"), &request).await.unwrap();

    let history = History::new(w.dynamodb.clone(), &table);
    let rows = history.recent(&w.target(), 10).await.unwrap();
    assert_eq!(rows.len(), 3, "three runs, three rows: none overwrote another");
    assert!(rows.windows(2).all(|p| p[0].started_at >= p[1].started_at), "newest first");
}

#[tokio::test]
async fn a_lock_left_by_a_dead_execution_is_taken_over() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    // The holder's ARN names no execution that exists (it was deleted, or never ran).
    let ghost = other(&w, "ghost");
    start(&w, &table, &ghost, &request).await.unwrap();
    let next = other(&w, "next");
    start(&w, &table, &next, &request).await.unwrap();
    let lock = w
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("target", AttributeValue::S(w.target()))
        .key("sk", AttributeValue::S("lock".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(lock.item().unwrap()["owner"].as_s().unwrap(), &next.name);
}

#[tokio::test]
async fn an_expired_lock_is_taken_over() {
    let w = World::new().await;
    let table = w.history_table();
    w.dynamodb
        .put_item()
        .table_name(&table)
        .item("target", AttributeValue::S(w.target()))
        .item("sk", AttributeValue::S("lock".into()))
        .item("owner", AttributeValue::S("long-gone".into()))
        .item("ttl", AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    start(&w, &table, &w.execution(), &w.request("rds", "prod")).await.unwrap();
}

#[tokio::test]
async fn an_invalid_request_writes_nothing() {
    let w = World::new().await;
    let table = w.history_table();
    let mut request = w.request("rds", "prod");
    request["dblab"]["token"] = json!("plain");
    let err = start(&w, &table, &w.execution(), &request).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    assert!(items(&w, &table).await.is_empty());

    // The failure path still records it, under the target it named.
    let state = RunState {
        request,
        execution: Some(w.execution()),
        error: Some(CaughtError {
            error: "InvalidRequest".into(),
            cause: Some(json!({"errorMessage": err.to_string()}).to_string()),
        }),
        failed_state: Some("StartRun".into()),
        ..Default::default()
    };
    let summary = finish(&w, &table, state).await.unwrap();
    assert!(summary.error.unwrap().message.contains("dblab.token"));
    assert_eq!(items(&w, &table).await.len(), 1);
}

#[tokio::test]
async fn a_row_answers_the_history_questions() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod-main");
    let execution = w.execution();
    let run = start(&w, &table, &execution, &request).await.unwrap();
    let state: RunState = serde_json::from_value(json!({
        "request": request,
        "execution": execution,
        "run": run,
        "snapshot": {"identifier": "rds:prod-main-2026-11-22-03-10", "arn": "arn:aws:rds:us-east-1:1:snapshot:x", "engine": "postgres",
                     "dataAsOf": "2026-11-22T03:10:00Z", "snapshotType": "automated", "sourceType": "rds",
                     "sourceIdentifier": "prod-main", "foundAt": "2026-11-22T05:00:05Z"},
        "clone": {"identifier": "dblab-refresh-x-20261122-050000", "kind": "instance", "instanceClass": "db.r6g.xlarge", "engine": "postgres",
                  "requestedAt": "2026-11-22T05:00:10Z", "deadline": "2026-11-22T07:00:10Z", "status": "ready", "rdsStatus": "available",
                  "endpoint": {"address": "h", "port": 5432}, "checks": 9, "readyAt": "2026-11-22T05:12:00Z"},
        "refresh": {"previousLastRefresh": "a", "triggeredAt": "2026-11-22T05:12:30Z", "deadline": "2026-11-22T09:12:30Z", "dumpParallelJobs": 2,
                    "status": "ready", "retrievalStatus": "finished", "lastRefresh": "b", "seenStart": true, "polls": 40,
                    "finishedAt": "2026-11-22T06:30:00Z"},
        "deletion": {"identifier": "dblab-refresh-x-20261122-050000", "status": "deleted", "deleted": ["dblab-refresh-x-20261122-050000"],
                     "checks": 2, "checkedAt": "2026-11-22T06:31:00Z"}
    }))
    .unwrap();
    let summary = finish(&w, &table, state).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Succeeded);

    let history = History::new(w.dynamodb.clone(), &table);
    let last = history.recent(&w.target(), 1).await.unwrap().remove(0);
    assert_eq!(last, summary, "the row reads back as written");
    assert_eq!(last.source_identifier.as_deref(), Some("prod-main"));
    assert_eq!(last.snapshot_identifier.as_deref(), Some("rds:prod-main-2026-11-22-03-10"));
    assert_eq!(last.data_as_of.unwrap().to_string(), "2026-11-22 3:10:00.0 +00:00:00");
    assert_eq!(last.clone_lifetime_seconds, Some(5_450));
    // Priced at the list price of its class; this execution has no history to read.
    let cost = last.cost.as_ref().unwrap();
    assert_eq!((cost.region.as_str(), cost.clone_class.as_deref()), ("us-east-1", Some("db.r6g.xlarge")));
    // Billed from `available`, as RDS bills: not from the restore request.
    let billed = last.clone_billed_seconds.unwrap();
    assert!((600..5_450).contains(&billed), "{billed}");
    assert!((cost.clone_usd.unwrap() - 0.45 * billed as f64 / 3_600.0).abs() < 1e-9, "{cost:?}");
    assert_eq!((cost.usage, cost.total_usd), (None, None), "unknown, not guessed");
    let names: Vec<_> = last.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["preflight", "restore", "refresh", "delete"]);
    let raw = items(&w, &table).await;
    let row = raw.iter().find(|i| i["sk"].as_s().unwrap().starts_with("run#")).unwrap();
    assert_eq!(row["outcome"].as_s().unwrap(), "succeeded");
    assert!(row.contains_key("durationSeconds"));
    assert!(raw.iter().all(|i| i["sk"].as_s().unwrap() != "lock"), "lock released");
}

#[tokio::test]
async fn a_finish_without_the_run_key_finishes_the_runs_own_row() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    let execution = w.execution();
    start(&w, &table, &execution, &request).await.unwrap();
    // The clean-up machine knows the start time from an event, a few milliseconds apart.
    let mut from_event = execution.clone();
    from_event.started_at = execution.started_at.map(|t| t + time::Duration::milliseconds(7));
    let state = RunState {
        request,
        execution: Some(from_event),
        error: Some(CaughtError { error: "ExecutionStopped".into(), cause: Some("ended ABORTED".into()) }),
        ..Default::default()
    };
    finish(&w, &table, state).await.unwrap();
    let rows = History::new(w.dynamodb.clone(), &table).recent(&w.target(), 10).await.unwrap();
    assert_eq!(rows.len(), 1, "the running row was finished, not duplicated");
    assert_eq!(rows[0].outcome, Outcome::Failed);
    assert!(items(&w, &table).await.iter().all(|i| i["sk"].as_s().unwrap() != "lock"), "lock released");
}

pub async fn lock_engine(
    w: &World,
    table: &str,
    execution: &Execution,
    request: &Value,
    run: &RunStart,
) -> Result<EngineLock, RefreshError> {
    // What the preflight found, the engine's instanceID among it.
    let snapshot = crate::find(w, request).await?;
    let input = Input::LockEngine {
        execution: execution.clone(),
        request: request.clone(),
        run: Box::new(run.clone()),
        snapshot: Box::new(snapshot),
    };
    match ::record::handle(&record_deps(w, table), input).await? {
        Output::EngineLocked(lock) => Ok(lock),
        other => panic!("lockEngine returned {other:?}"),
    }
}

#[tokio::test]
async fn two_targets_on_one_engine_take_turns_whatever_address_they_name_it_by() {
    let w = World::new().await;
    let table = w.history_table();
    let source = w.rds_source().await;
    let first_request = w.request("rds", &source);
    // Another target, naming the same engine by another address (a name, not the IP).
    let mut second_request = w.request("rds", &source);
    second_request["target"] = json!(format!("other-{}", w.id));
    second_request["dblab"]["engine"] = json!(w.engine_alias());
    let first = w.running_execution("first").await;
    let run = start(&w, &table, &first, &first_request).await.unwrap();
    let lock = lock_engine(&w, &table, &first, &first_request, &run).await.unwrap();
    assert_eq!(lock.instance_id, w.emulator.settings().instance_id);

    let second = other(&w, "second");
    let second_run = start(&w, &table, &second, &second_request).await.unwrap();
    let err = lock_engine(&w, &table, &second, &second_request, &second_run).await.unwrap_err();
    assert_eq!(err.name(), "TargetLocked");
    let text = err.to_string();
    assert!(
        text.contains(&first.name) && text.contains(&format!("engine instance {}", lock.instance_id.unwrap())),
        "{text}"
    );

    // The holder finishes: both its locks go, and the other target's run may take the
    // engine. Its state lacks the lock (LockEngine's answer lost): the preflight's finding
    // names it all the same.
    let snapshot = crate::find(&w, &first_request).await.unwrap();
    let state = RunState {
        request: first_request,
        execution: Some(first),
        run: Some(run),
        snapshot: Some(snapshot),
        engine_lock: None,
        ..Default::default()
    };
    finish(&w, &table, state).await.unwrap();
    lock_engine(&w, &table, &second, &second_request, &second_run).await.unwrap();
}

#[tokio::test]
async fn an_engine_without_an_instance_id_is_locked_by_its_address_and_the_row_says_so() {
    let w = World::with_engine(dblab_emulator::Settings { instance_id: None, ..Default::default() }).await;
    let table = w.history_table();
    let source = w.rds_source().await;
    let request = w.request("rds", &source);
    let execution = w.running_execution("noid").await;
    let run = start(&w, &table, &execution, &request).await.unwrap();
    let lock = lock_engine(&w, &table, &execution, &request, &run).await.unwrap();
    assert_eq!((lock.instance_id.as_deref(), lock.key.starts_with("engine#http://127.0.0.1:")), (None, true));
    let state =
        RunState { request, execution: Some(execution), run: Some(run), engine_lock: Some(lock), ..Default::default() };
    let row = finish(&w, &table, state).await.unwrap();
    assert!(row.engine_lock.unwrap().contains("the engine gives no instanceID"));
    // With an instanceID, the row says which engine it was.
    let state = RunState {
        request: json!({"target": "t"}),
        engine_lock: Some(EngineLock { key: "engine#id#e7".into(), instance_id: Some("e7".into()) }),
        ..Default::default()
    };
    assert_eq!(
        refresh_core::summary::finished(&state, time::OffsetDateTime::now_utc()).engine_lock.as_deref(),
        Some("engine instance e7")
    );
    assert!(items(&w, &table).await.iter().all(|i| i["sk"].as_s().unwrap() != "lock"), "both locks released");
}

#[tokio::test]
async fn a_target_named_unknown_releases_its_lock() {
    let w = World::new().await;
    let table = w.history_table();
    let mut request = w.request("rds", "prod");
    request["target"] = json!("unknown");
    // Its own engine, so no other test's run on the same endpoint is in the way.
    let execution = w.running_execution("unknown").await;
    let run = start(&w, &table, &execution, &request).await.unwrap();
    let state = RunState { request: request.clone(), execution: Some(execution), run: Some(run), ..Default::default() };
    finish(&w, &table, state).await.unwrap();
    start(&w, &table, &other(&w, "next"), &request).await.unwrap();
    // A request without a target is recorded apart: never in the history of "unknown".
    let invalid = RunState {
        request: json!({"source": 3}),
        execution: Some(other(&w, "invalid")),
        error: Some(CaughtError { error: "InvalidRequest".into(), cause: Some("target: is required".into()) }),
        ..Default::default()
    };
    let row = finish(&w, &table, invalid).await.unwrap();
    assert_eq!((row.target.as_deref(), row.target_label()), (None, "(no target)"));
    let history = History::new(w.dynamodb.clone(), &table);
    let theirs = history.recent("unknown", 10).await.unwrap();
    assert!(theirs.iter().all(|r| r.target.as_deref() == Some("unknown")), "{theirs:?}");
    let apart = history.recent(refresh_core::history::NO_TARGET, 10).await.unwrap();
    assert_eq!(apart.iter().map(|r| r.target.clone()).collect::<Vec<_>>(), vec![None]);
}

async fn recorded(w: &World, table: &str, execution: &Execution, request: &Value) -> bool {
    let input = Input::Status { execution: execution.clone(), request: request.clone() };
    match ::record::handle(&record_deps(w, table), input).await.unwrap() {
        Output::Status(status) => status.recorded,
        other => panic!("status returned {other:?}"),
    }
}

#[tokio::test]
async fn status_tells_whether_a_run_recorded_its_outcome() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    let execution = w.running_execution("status").await;
    assert!(!recorded(&w, &table, &execution, &request).await, "no row yet");
    let run = start(&w, &table, &execution, &request).await.unwrap();
    assert!(!recorded(&w, &table, &execution, &request).await, "running");
    let state =
        RunState { request: request.clone(), execution: Some(execution.clone()), run: Some(run), ..Default::default() };
    finish(&w, &table, state).await.unwrap();
    assert!(recorded(&w, &table, &execution, &request).await, "finished");
}

#[tokio::test]
async fn recover_completes_a_stopped_run_from_its_own_history() {
    let w = World::new().await;
    let table = w.history_table();
    // A stand-in for a refresh run stopped while it waited for the refresh: its states
    // passed on a snapshot and a clone, as FindSnapshot and Restore do.
    let snapshot = json!({
        "mode": "snapshot", "identifier": "rds:prod-2026-11-30-03-00", "arn": "arn:snap", "engine": "postgres",
        "dataAsOf": "2026-11-30T03:00:00Z", "snapshotType": "automated", "sourceType": "rds",
        "sourceIdentifier": "prod", "foundAt": "2026-12-01T04:00:05Z"
    });
    let clone = json!({
        "identifier": "dblab-refresh-x-1", "kind": "instance", "instanceClass": "db.r6g.large",
        "engine": "postgres", "requestedAt": "2026-12-01T04:00:06Z", "deadline": "2026-12-01T06:00:06Z",
        "status": "ready", "rdsStatus": "available", "readyAt": "2026-12-01T04:10:00Z"
    });
    let definition = json!({"StartAt": "FindSnapshot", "States": {
        "FindSnapshot": {"Type": "Pass", "Result": snapshot, "ResultPath": "$.snapshot", "Next": "Restore"},
        "Restore": {"Type": "Pass", "Result": clone, "ResultPath": "$.clone", "Next": "WaitForRefresh"},
        "WaitForRefresh": {"Type": "Wait", "Seconds": 600, "End": true}
    }});
    let machine = w
        .sfn
        .create_state_machine()
        .name(format!("stopped-{}", w.id))
        .role_arn("arn:aws:iam::123456789012:role/sfn")
        .definition(definition.to_string())
        .send()
        .await
        .unwrap();
    let request = w.request("rds", "prod");
    let name = format!("stopped-{}", w.id);
    let started = w
        .sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .name(&name)
        .input(json!({"request": request}).to_string())
        .send()
        .await
        .unwrap();
    let arn = started.execution_arn().to_string();
    for _ in 0..50 {
        let events = w.sfn.get_execution_history().execution_arn(&arn).send().await.unwrap();
        if events.events().iter().any(|e| e.r#type().as_str() == "WaitStateEntered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    w.sfn.stop_execution().execution_arn(&arn).send().await.unwrap();

    let cleanup = RunState {
        request: request.clone(),
        execution: Some(Execution { name, arn: Some(arn), started_at: None }),
        error: Some(CaughtError { error: "ExecutionStopped".into(), cause: Some("from the event".into()) }),
        ..Default::default()
    };
    let input = Input::Recover { state: Box::new(cleanup) };
    let Output::Recovered(value) = ::record::handle(&record_deps(&w, &table), input).await.unwrap() else {
        panic!("recover returned something else")
    };
    assert!(value.as_object().unwrap().values().all(|v| !v.is_null()), "no empty parts: {value}");
    let state: RunState = serde_json::from_value(value).unwrap();
    assert_eq!(state.snapshot.unwrap().identifier, "rds:prod-2026-11-30-03-00");
    assert_eq!(state.clone.unwrap().instance_class, "db.r6g.large");
    assert_eq!(state.failed_state.as_deref(), Some("WaitForRefresh"));
    assert_eq!(state.request, request, "the clean-up's own parts are kept");
    assert!(
        state.error.unwrap().message().starts_with("the execution ended ABORTED in state WaitForRefresh"),
        "from the execution's history, not the event"
    );
}

#[tokio::test]
async fn a_duplicate_start_of_a_running_request_is_skipped_not_failed() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    // The run under way, started with this request (as the Scheduler starts it).
    let original = w.running_execution_of("original", Some(&request)).await;
    let now = time::OffsetDateTime::now_utc();
    let original = Execution { started_at: Some(now), ..original };
    start(&w, &table, &original, &request).await.unwrap();

    // The Scheduler's retry a minute later: the same request.
    let retry = Execution { started_at: Some(now + time::Duration::minutes(1)), ..other(&w, "retry") };
    let run = start(&w, &table, &retry, &request).await.unwrap();
    assert_eq!(run.duplicate_of.as_deref(), Some(original.name.as_str()));
    let rows = History::new(w.dynamodb.clone(), &table).recent(&w.target(), 10).await.unwrap();
    let row = rows.iter().find(|r| r.execution_name == retry.name).unwrap();
    assert_eq!(row.outcome, Outcome::Skipped);
    assert_eq!(row.duplicate_of.as_deref(), Some(original.name.as_str()));
    assert!(row.cleanup.starts_with(&format!("skipped: duplicate of {}", original.name)), "{}", row.cleanup);
    assert!(row.error.is_none(), "{row:?}");

    // Another request for the target, or the same one long after, is a real conflict.
    let mut changed = request.clone();
    changed["dblab"]["pollInterval"] = json!("2s");
    let other_request = Execution { started_at: Some(now + time::Duration::minutes(1)), ..other(&w, "changed") };
    let refused = start(&w, &table, &other_request, &changed).await.unwrap_err();
    assert_eq!(refused.name(), "TargetLocked", "{refused}");
    let late = Execution { started_at: Some(now + time::Duration::minutes(16)), ..other(&w, "late") };
    let refused = start(&w, &table, &late, &request).await.unwrap_err();
    assert_eq!(refused.name(), "TargetLocked", "{refused}");
}

fn ended(request: &Value, execution: Execution, run: RunStart, data_as_of: Option<&str>) -> RunState {
    let mut state = json!({
        "request": request,
        "execution": execution,
        "run": run,
        "deletion": {"identifier": "", "status": "deleted", "deleted": [], "checkedAt": "2026-12-01T04:00:00Z"},
    });
    if let Some(at) = data_as_of {
        state["snapshot"] = json!({
            "mode": "snapshot", "identifier": "rds:prod", "arn": "arn:snap", "engine": "postgres",
            "dataAsOf": at, "snapshotType": "automated", "sourceType": "rds", "sourceIdentifier": "prod",
            "foundAt": "2026-12-01T04:00:00Z"
        });
        state["refresh"] = json!({
            "previousLastRefresh": "", "triggeredAt": "2026-12-01T04:01:00Z", "deadline": "2026-12-01T08:01:00Z",
            "dumpParallelJobs": 1, "status": "ready", "retrievalStatus": "finished", "lastRefresh": "x",
            "seenStart": true, "finishedAt": "2026-12-01T04:30:00Z"
        });
    } else {
        state["error"] = json!({"Error": "RefreshFailed", "Cause": "pg_dump failed"});
    }
    serde_json::from_value(state).unwrap()
}

#[tokio::test]
async fn the_fleet_keeps_each_targets_latest_state_and_its_freshness() {
    let w = World::new().await;
    let table = w.history_table();
    let deps = crate::record_deps(&w, &table);
    let now = time::OffsetDateTime::now_utc();
    let long_ago = (now - time::Duration::hours(48)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let recent = (now - time::Duration::hours(2)).format(&time::format_description::well_known::Rfc3339).unwrap();

    // old: refreshed, but its data is two days old (the default threshold is 36 h).
    let mut old = w.request("rds", "prod");
    old["target"] = json!(format!("old-{}", w.id));
    let e = other(&w, "old");
    let run = start(&w, &table, &e, &old).await.unwrap();
    finish(&w, &table, ended(&old, e, run, Some(&long_ago))).await.unwrap();
    // fresh: refreshed two hours ago, then a failed run: its data is still two hours old.
    let mut fresh = w.request("rds", "prod");
    fresh["target"] = json!(format!("fresh-{}", w.id));
    let e = other(&w, "fresh1");
    let run = start(&w, &table, &e, &fresh).await.unwrap();
    finish(&w, &table, ended(&fresh, e, run, Some(&recent))).await.unwrap();
    let e = other(&w, "fresh2");
    let run = start(&w, &table, &e, &fresh).await.unwrap();
    finish(&w, &table, ended(&fresh, e, run, None)).await.unwrap();
    // busy: a run under way, never refreshed, with its own 1-hour threshold.
    let mut busy = w.request("rds", "prod");
    busy["target"] = json!(format!("busy-{}", w.id));
    busy["freshness"] = json!({"maxAge": "1h"});
    let e = other(&w, "busy");
    start(&w, &table, &e, &busy).await.unwrap();

    let fleet = History::new(w.dynamodb.clone(), &table).fleet().await.unwrap();
    let by = |prefix: &str| fleet.iter().find(|s| s.target.starts_with(prefix)).unwrap().clone();
    assert_eq!(fleet.len(), 3, "{fleet:?}");
    let (o, f, b) = (by("old-"), by("fresh-"), by("busy-"));
    assert!(o.stale(now) && o.running.is_none() && o.last_run.as_ref().unwrap().outcome == Outcome::Succeeded);
    assert!(!f.stale(now), "{f:?}");
    assert_eq!(
        f.last_run.as_ref().map(|r| (r.outcome, r.error.as_deref())),
        Some((Outcome::Failed, Some("RefreshFailed")))
    );
    assert_eq!(f.data_as_of.map(|t| t.unix_timestamp()), Some((now - time::Duration::hours(2)).unix_timestamp()));
    assert!(b.running.is_some() && b.last_run.is_none() && b.data_as_of.is_none());
    assert_eq!(b.freshness_max_age_seconds, 3_600);
    assert!(!b.stale(now), "first seen just now");

    // As the hourly schedule sends it.
    let input: Input = serde_json::from_value(json!({"action": "freshness"})).unwrap();
    let Output::Freshness(report) = ::record::handle(&deps, input).await.unwrap() else {
        panic!("freshness returned something else")
    };
    assert_eq!((report.targets, report.stale), (3, vec![o.target.clone()]));
    // Each pass is counted, so hours without one alarm (FreshnessSilentAlarm).
    let passes = deps.metrics.lines().iter().filter(|l| l["FreshnessPasses"] == 1).count();
    assert_eq!(passes, 1);
}

/// The run's failure row, as StartRunFailed records a request refused at its start.
fn refused(request: Value, execution: Execution) -> RunState {
    RunState {
        request,
        execution: Some(execution),
        error: Some(CaughtError { error: "InvalidRequest".into(), cause: Some("refused".into()) }),
        failed_state: Some("StartRun".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_run_without_a_target_is_recorded_once_and_status_finds_it() {
    let w = World::new().await;
    let table = w.history_table();
    let mut request = w.request("rds", "prod");
    request.as_object_mut().unwrap().remove("target");
    let execution = w.running_execution("no-target").await;
    assert!(!recorded(&w, &table, &execution, &request).await);
    finish(&w, &table, refused(request.clone(), execution.clone())).await.unwrap();
    // The clean-up machine asks this before finishing a run again.
    assert!(recorded(&w, &table, &execution, &request).await, "its row under #no-target is its record");
}

#[tokio::test]
async fn an_invalid_target_never_becomes_a_key() {
    let w = World::new().await;
    let table = w.history_table();
    let deps = crate::record_deps(&w, &table);
    // A valid target first, so the fleet has an item to read.
    let request = w.request("rds", "prod");
    let e = other(&w, "valid");
    let run = start(&w, &table, &e, &request).await.unwrap();
    finish(&w, &table, ended(&request, e, run, None)).await.unwrap();

    for (name, target) in [("fleet", json!("fleet#")), ("long", json!("x".repeat(300))), ("nested", json!({"a": 1}))] {
        let mut bad = w.request("rds", "prod");
        bad["target"] = target;
        let e = other(&w, name);
        assert_eq!(start(&w, &table, &e, &bad).await.unwrap_err().name(), "InvalidRequest");
        let summary = finish(&w, &table, refused(bad.clone(), e.clone())).await.unwrap();
        assert_eq!(summary.target, None);
        assert!(summary.invalid_target.is_some(), "the row says what was asked for");
        assert!(recorded(&w, &table, &e, &bad).await, "{name}: recorded, so not finished again");
    }
    let keys: Vec<String> = items(&w, &table).await.iter().map(|i| i["target"].as_s().unwrap().clone()).collect();
    assert!(
        keys.iter().all(|k| [w.target().as_str(), history::NO_TARGET, history::FLEET_PK].contains(&k.as_str())),
        "only a valid target, the fleet and #no-target are keys: {keys:?}"
    );
    let rows = History::new(w.dynamodb.clone(), &table).recent(history::NO_TARGET, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r.invalid_target.as_deref() == Some("\"fleet#\"")), "{rows:?}");
    // The fleet still reads, and the hourly freshness run still works.
    let input: Input = serde_json::from_value(json!({"action": "freshness"})).unwrap();
    let Output::Freshness(report) = ::record::handle(&deps, input).await.unwrap() else { panic!("freshness") };
    assert_eq!(report.targets, 1);
}

#[tokio::test]
async fn a_retried_finish_emits_its_metrics_once() {
    let w = World::new().await;
    let table = w.history_table();
    let deps = crate::record_deps(&w, &table);
    let request = w.request("rds", "prod");
    let e = w.execution();
    let run = start(&w, &table, &e, &request).await.unwrap();
    let mut state = ended(&request, e, run, Some("2026-12-01T03:00:00Z"));
    state.clone = Some(
        serde_json::from_value(json!({
            "identifier": format!("dblab-refresh-{}-1", w.target()), "kind": "instance", "instanceClass": "db.t4g.micro",
            "engine": "postgres", "requestedAt": "2026-12-01T04:00:06Z", "deadline": "2026-12-01T06:00:06Z",
            "status": "ready", "rdsStatus": "available", "readyAt": "2026-12-01T04:10:00Z"
        }))
        .unwrap(),
    );
    for _ in 0..2 {
        let input = Input::Finish { state: Box::new(state.clone()) };
        let Output::Finished(summary) = ::record::handle(&deps, input).await.unwrap() else { panic!("finish") };
        assert_eq!(summary.outcome, Outcome::Succeeded);
    }
    let lines = deps.metrics.lines();
    let named = |metric: &str| lines.iter().filter(|l| l.to_string().contains(metric)).count();
    assert_eq!((named("CloneHours"), named("DataAgeSeconds")), (1, 1), "{lines:?}");
}

#[tokio::test]
async fn a_start_that_comes_back_after_its_run_was_recorded_takes_nothing() {
    let w = World::new().await;
    let table = w.history_table();
    let source = w.rds_source().await;
    let request = w.request("rds", &source);
    let mut execution = w.running_execution("late").await;
    // As the state machine gives it ($$.Execution.StartTime): every call has the same start.
    execution.started_at = Some(time::OffsetDateTime::now_utc());
    let run = start(&w, &table, &execution, &request).await.unwrap();
    // The clean-up recorded the stopped run and released its locks...
    let stopped = RunState {
        request: request.clone(),
        execution: Some(execution.clone()),
        run: Some(run.clone()),
        error: Some(CaughtError { error: "ExecutionStopped".into(), cause: Some("ended ABORTED".into()) }),
        ..Default::default()
    };
    finish(&w, &table, stopped).await.unwrap();
    // ...then a StartRun and a LockEngine that were in flight answer.
    let err = start(&w, &table, &execution, &request).await.unwrap_err();
    assert_eq!(err.name(), "RunEnded");
    let err = lock_engine(&w, &table, &execution, &request, &run).await.unwrap_err();
    assert_eq!(err.name(), "RunEnded");
    let raw = items(&w, &table).await;
    assert!(raw.iter().all(|i| i["sk"].as_s().unwrap() != "lock"), "no lock taken back: {raw:?}");
    let rows = History::new(w.dynamodb.clone(), &table).recent(&w.target(), 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.outcome).collect::<Vec<_>>(), [Outcome::Failed], "not running again");
    let fleet = History::new(w.dynamodb.clone(), &table).fleet().await.unwrap();
    assert!(fleet.iter().all(|t| t.running.is_none()), "{fleet:?}");
}

#[tokio::test]
async fn a_finish_without_its_start_clears_the_run_in_progress() {
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    let execution = w.execution();
    start(&w, &table, &execution, &request).await.unwrap();
    // StartRun's answer was lost: the state has no `run`.
    let state = RunState {
        request,
        execution: Some(execution),
        error: Some(CaughtError { error: "AwsTransient".into(), cause: Some("lost".into()) }),
        failed_state: Some("StartRun".into()),
        ..Default::default()
    };
    finish(&w, &table, state).await.unwrap();
    let fleet = History::new(w.dynamodb.clone(), &table).fleet().await.unwrap();
    assert_eq!(fleet.len(), 1);
    assert!(fleet[0].running.is_none(), "status must not show a run in progress: {:?}", fleet[0]);
}

#[tokio::test]
async fn the_cost_reads_only_the_historys_types_and_times() {
    let w = World::new().await;
    let execution = w.running_execution("usage").await;
    let arn = execution.arn.clone().unwrap();
    let requests = refresh_tests::Requests::default();
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&w.config).interceptor(requests.clone()).build(),
    );
    let executions = refresh_core::executions::Executions::new(sfn);
    executions.usage(&arn).await.unwrap();
    let asked = requests.all();
    assert!(!asked.is_empty() && asked.iter().all(|r| r.contains("\"includeExecutionData\":false")), "{asked:?}");
    // What a stopped run had done is in its states' data: read with it.
    requests.clear();
    executions.stopped(&arn).await.unwrap();
    assert!(requests.all().iter().all(|r| r.contains("\"includeExecutionData\":true")), "{:?}", requests.all());
}

#[tokio::test]
async fn the_hourly_pass_starts_the_clean_up_of_a_run_whose_ended_event_never_came_once() {
    async fn pass(deps: &::record::Deps) -> Vec<String> {
        let input: Input = serde_json::from_value(json!({"action": "freshness"})).unwrap();
        let Output::Freshness(report) = ::record::handle(deps, input).await.unwrap() else { panic!("freshness") };
        report.cleanups_started
    }
    let w = World::new().await;
    let table = w.history_table();
    let request = w.request("rds", "prod");
    // A run that fails outside every Catch, and whose ended event is lost: its row and the
    // fleet say running.
    let mut execution = w.failing_execution("lost-event").await;
    execution.started_at = Some(time::OffsetDateTime::now_utc());
    let still = w.running_execution("still").await;
    let mut other_request = w.request("rds", "prod");
    other_request["target"] = json!(format!("{}-other", w.target()));
    start(&w, &table, &execution, &request).await.unwrap();
    start(&w, &table, &Execution { started_at: execution.started_at, ..still.clone() }, &other_request).await.unwrap();
    let arn = execution.arn.clone().unwrap();
    let executions = refresh_core::executions::Executions::new(w.sfn.clone());
    for _ in 0..100 {
        if executions.ended(&arn).await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let cleanup = w
        .sfn
        .create_state_machine()
        .name(format!("cleanup-{}", w.id))
        .role_arn("arn:aws:iam::123456789012:role/sfn")
        .definition(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#)
        .send()
        .await
        .unwrap();
    let mut deps = crate::record_deps(&w, &table);
    deps.cleanup_machine_arn = cleanup.state_machine_arn().to_string();
    // Within the clean-up machine's own time, its clean-up may still be under way.
    assert_eq!(pass(&deps).await, Vec::<String>::new());
    deps.cleanup_after = time::Duration::ZERO;
    assert_eq!(pass(&deps).await, [execution.name.clone()], "the ended run only, not the running one");
    let started = w.sfn.list_executions().state_machine_arn(cleanup.state_machine_arn()).send().await.unwrap();
    assert_eq!(started.executions().len(), 1);
    let described =
        w.sfn.describe_execution().execution_arn(started.executions()[0].execution_arn()).send().await.unwrap();
    let event: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(event["detail"]["executionArn"], json!(arn));
    assert_eq!(event["detail"]["status"], "FAILED");
    assert!(event["detail"].get("input").is_none(), "read from the execution by the clean-up: {event}");
    // Started under the run's own clean-up name: a second pass starts nothing more.
    w.sfn.stop_execution().execution_arn(started.executions()[0].execution_arn()).send().await.unwrap();
    assert_eq!(pass(&deps).await, Vec::<String>::new());
    let again = w.sfn.list_executions().state_machine_arn(cleanup.state_machine_arn()).send().await.unwrap();
    assert_eq!(again.executions().len(), 1);
}
