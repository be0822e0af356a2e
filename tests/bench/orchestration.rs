//! The orchestration cost of one refresh: the real state machine on the local stack, with
//! the phases of a 4-hour refresh scaled down 60 times (one second stands for one minute).

use std::time::{Duration, SystemTime};

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use dblab_emulator::Settings;
use refresh_core::cost;
use refresh_tests::World;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{median, spread, verdict};

/// One second here is one minute of a real refresh.
const SCALE: f64 = 60.0;
/// The phases of the 4-hour refresh, in scaled seconds (= real minutes).
const CLONE_RESTORE: u64 = 20;
const DUMP: u64 = 90;
const DBLAB_RESTORE: u64 = 120;
const SNAPSHOT: u64 = 10;
/// A check invocation watches for 10 minutes in AWS (its 600 s timeout less a margin).
const WATCH_SECONDS: u64 = 10;
/// Refreshes measured.
const RUNS: usize = 3;

struct Measured {
    transitions: usize,
    invocations: usize,
    lambda_seconds: f64,
    /// Restore requested to deletion requested, and the part RDS bills (available to deletion).
    lifetime: f64,
    billed: f64,
    /// What the clone had to exist for: restore (creating) and the engine's refresh.
    needed: f64,
}

pub async fn report() {
    println!("## Orchestration of one 4-hour refresh\n");
    println!(
        "The real `statemachine/refresh.asl.json` in moto's interpreter against the real handlers (`cargo lambda \
         watch`), with phases scaled 1:{SCALE:.0}: clone restore {CLONE_RESTORE} min, dump {DUMP} min, restore \
         into DBLab {DBLAB_RESTORE} min, snapshot {SNAPSHOT} min. Polls every 1 s (= 60 s; the default is 30 s); \
         a check invocation watches {WATCH_SECONDS} s (= 10 min, as in AWS). {RUNS} refreshes at once.\n"
    );
    let stack = refresh_tests::stack::start(WATCH_SECONDS).await;
    // Side by side: each refresh has its own target and engine.
    let handles: Vec<_> = (0..RUNS).map(|_| tokio::spawn(one_refresh(stack.state_machine_arn.clone()))).collect();
    let mut runs = Vec::new();
    for handle in handles {
        runs.push(handle.await.expect("a benchmark refresh"));
    }
    let col = |f: fn(&Measured) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let transitions = col(|m| m.transitions as f64);
    let invocations = col(|m| m.invocations as f64);
    let lambda = col(|m| m.lambda_seconds * SCALE);
    let overhead = col(|m| (m.lifetime - m.needed) * SCALE);
    let overhead_share = col(|m| (m.lifetime - m.needed) / m.needed * 100.0);
    let billed_hours = col(|m| m.billed * SCALE / 3_600.0);
    println!("| measure | median [min-max] |");
    println!("|---|---|");
    println!("| state transitions | {} |", spread(&transitions, 0));
    println!("| Lambda invocations | {} |", spread(&invocations, 0));
    println!("| Lambda time, real-equivalent | {} s |", spread(&lambda, 0));
    println!("| clone lifetime beyond its phases, real-equivalent | {} s |", spread(&overhead, 0));
    println!("| the same, share of the phases | {} % |", spread(&overhead_share, 2));
    println!("| clone instance-hours billed (available to deletion) | {} h |", spread(&billed_hours, 2));

    let class = "db.r6g.xlarge";
    let hourly = cost::instance_hour(cost::Engine::RdsPostgres, class, "us-east-1").unwrap_or(f64::NAN);
    let orchestration = cost::orchestration(median(&transitions) as u64, median(&invocations) as u64, median(&lambda));
    let clone = median(&billed_hours) * hourly;
    println!(
        "\nBill of one 4-hour refresh at list prices of {} (us-east-1): Step Functions {:.4} $ + Lambda {:.4} $ \
         (128 MB arm64) = orchestration {orchestration:.4} $; clone {class} {:.2} h x {hourly} $/h = {clone:.2} $; \
         total {:.2} $.",
        cost::PRICES_AS_OF,
        median(&transitions) * cost::STEP_FUNCTIONS_PER_TRANSITION,
        orchestration - median(&transitions) * cost::STEP_FUNCTIONS_PER_TRANSITION,
        median(&billed_hours),
        orchestration + clone,
    );
    let worst_overhead = overhead.iter().copied().fold(0.0, f64::max);
    let worst_share = overhead_share.iter().copied().fold(0.0, f64::max);
    println!(
        "\nTargets: clone lifetime within 2 % or 60 s of its phases (worst run: {worst_overhead:.0} s, \
         {worst_share:.2} %: {}); fewer than 200 transitions (worst run: {:.0}: {}).",
        verdict(worst_overhead <= 60.0 || worst_share <= 2.0),
        transitions.iter().copied().fold(0.0, f64::max),
        verdict(transitions.iter().all(|t| *t < 200.0)),
    );
}

async fn one_refresh(state_machine_arn: String) -> Measured {
    let ms = |minutes: u64| minutes * 1_000;
    let w = World::with_engine(Settings {
        dump_ms: ms(DUMP),
        restore_ms: ms(DBLAB_RESTORE),
        snapshot_ms: ms(SNAPSHOT),
        ..Settings::default()
    })
    .await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    // Each look at a creating clone is one scripted describe, one per second.
    request["clone"]["tags"] = json!({"test:creating-polls": CLONE_RESTORE.to_string()});
    request["clone"]["restoreTimeout"] = json!("1h");
    request["dblab"]["timeout"] = json!("1h");
    let name = format!("bench-{}", refresh_tests::unique("o"));
    let started = w
        .sfn
        .start_execution()
        .state_machine_arn(&state_machine_arn)
        .name(&name)
        .input(request.to_string())
        .send()
        .await
        .expect("the execution starts");
    let arn = started.execution_arn().to_string();
    let mut status = String::new();
    for _ in 0..1_200 {
        status =
            w.sfn.describe_execution().execution_arn(&arn).send().await.expect("describe").status().as_str().into();
        if status != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, "SUCCEEDED", "the benchmark refresh {name} ended {status}");
    let mut events = Vec::new();
    let mut pages = w.sfn.get_execution_history().execution_arn(&arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        events.extend(page.expect("history").events().to_vec());
    }

    let timeline = w.emulator.view().timeline;
    let engine = |what: &str| {
        timeline
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("the engine never went {what}"))
    };
    let engine_busy = seconds_between(engine("dump"), engine("finished"));
    let clone = exited(&events, "CheckClone").last().map(|(_, out)| out["clone"].clone()).expect("CheckClone ran");
    let requested = rfc3339(&clone["requestedAt"]);
    let ready = rfc3339(&clone["readyAt"]);
    let deleted = exited(&events, "DeleteClone").first().map(|(at, _)| *at).expect("DeleteClone ran");
    Measured {
        transitions: events.iter().filter(|e| e.state_entered_event_details().is_some()).count(),
        invocations: events.iter().filter(|e| e.r#type() == &HistoryEventType::LambdaFunctionScheduled).count(),
        lambda_seconds: task_seconds(&events),
        lifetime: seconds_between(requested, deleted),
        billed: seconds_between(ready, deleted),
        needed: seconds_between(requested, ready) + engine_busy,
    }
}

fn rfc3339(v: &Value) -> SystemTime {
    let t = OffsetDateTime::parse(v.as_str().unwrap_or_default(), &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{v}: {e}"));
    SystemTime::from(t)
}

fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64())
}

fn at(e: &HistoryEvent) -> SystemTime {
    SystemTime::try_from(*e.timestamp()).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// When each exit of `state` happened, with the state's output.
fn exited(events: &[HistoryEvent], state: &str) -> Vec<(SystemTime, Value)> {
    events
        .iter()
        .filter_map(|e| {
            let d = e.state_exited_event_details()?;
            (d.name() == state)
                .then(|| (at(e), d.output().and_then(|o| serde_json::from_str(o).ok()).unwrap_or_default()))
        })
        .collect()
}

/// Time inside Lambda functions: each function's start to its success or failure.
fn task_seconds(events: &[HistoryEvent]) -> f64 {
    let mut total = 0.0;
    let mut started: Option<SystemTime> = None;
    for e in events {
        match e.r#type() {
            HistoryEventType::LambdaFunctionStarted => started = Some(at(e)),
            HistoryEventType::LambdaFunctionSucceeded | HistoryEventType::LambdaFunctionFailed => {
                if let Some(s) = started.take() {
                    total += seconds_between(s, at(e));
                }
            }
            _ => {}
        }
    }
    total
}
