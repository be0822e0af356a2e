//! The orchestration cost of one refresh: the real state machine on the local stack, with
//! the phases of a refresh scaled down 60 times (one second stands for one minute), and
//! everything that decides how often the state machine turns scaled alike: the poll
//! intervals, the watch of one invocation and the time a look may take.

use std::time::{Duration, SystemTime};

use aws_sdk_sfn::types::HistoryEvent;
use dblab_emulator::Settings;
use refresh_core::cost;
use refresh_core::executions::usage_of;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Plan, median, spread, verdict};
use crate::World;
use crate::stack::Watching;

/// One second here is one minute of a real refresh.
const SCALE: f64 = 60.0;
/// A check invocation watches for 10 minutes in AWS (its 600 s timeout less a margin).
const WATCH_SECONDS: u64 = 10;

/// The phases of the refresh measured, in real minutes (= scaled seconds).
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub clone_restore: u64,
    pub dump: u64,
    pub dblab_restore: u64,
    pub snapshot: u64,
}

impl Phases {
    pub const FOUR_HOURS: Phases = Phases { clone_restore: 20, dump: 90, dblab_restore: 120, snapshot: 10 };
    /// The smoke pass's: long enough for every phase to be seen, short enough for `make test`.
    pub const SHORT: Phases = Phases { clone_restore: 3, dump: 4, dblab_restore: 4, snapshot: 1 };

    fn hours(&self) -> f64 {
        (self.clone_restore + self.dump + self.dblab_restore + self.snapshot) as f64 / 60.0
    }
}

struct Measured {
    transitions: usize,
    invocations: usize,
    lambda_seconds: f64,
    /// Restore requested to deletion requested, and the part RDS bills (available to deletion).
    lifetime: f64,
    billed: f64,
    /// What the clone had to exist for: restore (creating) and the engine's refresh.
    needed: f64,
    /// From the end of the clone's use (the dump's end, or the engine's refresh's) to the
    /// deletion request.
    after_use: f64,
}

pub async fn report(plan: &Plan) {
    let p = plan.refresh;
    let runs = plan.refreshes;
    let hours = p.hours();
    println!("## Orchestration of one {hours:.1}-hour refresh\n");
    println!(
        "The real `statemachine/refresh.asl.json` in moto's interpreter against the real handlers (`cargo lambda \
         watch`), with phases scaled 1:{SCALE:.0}: clone restore {} min, dump {} min, restore into DBLab {} min, \
         snapshot {} min. Polls every 1 s (= 60 s; the default is 30 s); a check invocation watches \
         {WATCH_SECONDS} s (= 10 min, as in AWS) and plans its looks with their longest AWS time scaled alike \
         (`WATCH_TIME_SCALE`), so it holds as many looks as in AWS. {runs} refreshes at once, then {runs} more \
         with `clone.deleteAfterDump`. Times are real-equivalent (scaled back up).\n",
        p.clone_restore, p.dump, p.dblab_restore, p.snapshot
    );
    let stack = crate::stack::start(Watching { seconds: WATCH_SECONDS, time_scale: SCALE as u32 }).await;
    let whole = side_by_side(&stack.state_machine_arn, p, runs, false).await;
    let early = side_by_side(&stack.state_machine_arn, p, runs, true).await;
    let col = |runs: &[Measured], f: fn(&Measured) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let rows: [Row; 8] = [
        ("state transitions", |m| m.transitions as f64, 0, ""),
        ("Lambda invocations", |m| m.invocations as f64, 0, ""),
        ("Lambda time", |m| m.lambda_seconds * SCALE, 0, " s"),
        ("clone must exist for (restore + dump, or + whole engine refresh)", |m| m.needed * SCALE / 60.0, 1, " min"),
        ("clone lifetime beyond that", |m| (m.lifetime - m.needed) * SCALE, 0, " s"),
        ("the same, share of what it must exist for", |m| (m.lifetime - m.needed) / m.needed * 100.0, 2, " %"),
        ("end of its use (dump, or whole refresh) to its deletion", |m| m.after_use * SCALE, 0, " s"),
        ("clone instance-hours billed (available to deletion)", |m| m.billed * SCALE / 3_600.0, 2, " h"),
    ];
    println!("| measure, median [min-max] | clone kept to the end | `clone.deleteAfterDump` |");
    println!("|---|---|---|");
    for (label, f, decimals, unit) in rows {
        println!(
            "| {label} | {}{unit} | {}{unit} |",
            spread(&col(&whole, f), decimals),
            spread(&col(&early, f), decimals)
        );
    }

    let class = "db.r6g.xlarge";
    let hourly = cost::instance_hour(cost::Engine::RdsPostgres, class, "us-east-1").unwrap_or(f64::NAN);
    let bill = |runs: &[Measured]| {
        let transitions = median(&col(runs, |m| m.transitions as f64));
        let invocations = median(&col(runs, |m| m.invocations as f64));
        let lambda = median(&col(runs, |m| m.lambda_seconds * SCALE));
        let hours = median(&col(runs, |m| m.billed * SCALE / 3_600.0));
        let orchestration = cost::orchestration(transitions as u64, invocations as u64, lambda);
        let step_functions = transitions * cost::STEP_FUNCTIONS_PER_TRANSITION;
        format!(
            "Step Functions {step_functions:.4} $ + Lambda {:.4} $ (128 MB arm64) + clone {class} {hours:.2} h x \
             {hourly} $/h = {:.2} $",
            orchestration - step_functions,
            orchestration + hours * hourly
        )
    };
    println!("\nBill of one {hours:.1}-hour refresh at the list prices of {} (us-east-1):\n", cost::PRICES_AS_OF);
    println!("- clone kept to the end: {}", bill(&whole));
    println!("- `clone.deleteAfterDump`: {}", bill(&early));
    let saved = median(&col(&whole, |m| m.billed)) - median(&col(&early, |m| m.billed));
    println!(
        "\nClone-hours saved by `clone.deleteAfterDump`: {:.2} h per refresh ({:.0} % of the clone's bill).",
        saved * SCALE / 3_600.0,
        saved / median(&col(&whole, |m| m.billed)) * 100.0
    );
    let all: Vec<&Measured> = whole.iter().chain(&early).collect();
    let worst_overhead = all.iter().map(|m| (m.lifetime - m.needed) * SCALE).fold(0.0, f64::max);
    let worst_share = all.iter().map(|m| (m.lifetime - m.needed) / m.needed * 100.0).fold(0.0, f64::max);
    let worst_transitions = all.iter().map(|m| m.transitions).max().unwrap_or(0);
    let worst_after_dump = early.iter().map(|m| m.after_use * SCALE).fold(0.0, f64::max);
    println!(
        "\nTargets: clone lifetime within 2 % or 60 s of what it must exist for (worst run: {worst_overhead:.0} s, \
         {worst_share:.2} %: {}); with `clone.deleteAfterDump`, deleted within one poll interval (60 s) of the \
         dump's end (worst run: {worst_after_dump:.0} s: {}); fewer than 200 transitions (worst run: \
         {worst_transitions}: {}).\n",
        verdict(worst_overhead <= 60.0 || worst_share <= 2.0),
        verdict(worst_after_dump <= 60.0),
        verdict(worst_transitions < 200),
    );
}

/// A table row: label, the figure of one run, decimals, unit.
type Row = (&'static str, fn(&Measured) -> f64, usize, &'static str);

/// `runs` refreshes at once, each with its own target and engine.
async fn side_by_side(state_machine_arn: &str, phases: Phases, runs: usize, delete_after_dump: bool) -> Vec<Measured> {
    let handles: Vec<_> = (0..runs)
        .map(|_| tokio::spawn(one_refresh(state_machine_arn.to_string(), phases, delete_after_dump)))
        .collect();
    let mut runs = Vec::new();
    for handle in handles {
        runs.push(handle.await.expect("a benchmark refresh"));
    }
    runs
}

async fn one_refresh(state_machine_arn: String, phases: Phases, delete_after_dump: bool) -> Measured {
    let ms = |minutes: u64| minutes * 1_000;
    let w = World::with_engine(Settings {
        dump_ms: ms(phases.dump),
        restore_ms: ms(phases.dblab_restore),
        snapshot_ms: ms(phases.snapshot),
        ..Settings::default()
    })
    .await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    // Each look at a creating clone is one scripted describe, one per second.
    request["clone"]["tags"] = json!({"test:creating-polls": phases.clone_restore.to_string()});
    // Generous for the scaled phases, and within the request's limits at 1 s polls.
    request["clone"]["restoreTimeout"] = json!("10m");
    request["dblab"]["timeout"] = json!("15m");
    request["clone"]["maxAge"] = json!("1h");
    request["clone"]["deleteAfterDump"] = json!(delete_after_dump);
    let name = format!("bench-{}", crate::unique("o"));
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
    if status != "SUCCEEDED" {
        let ended = w.sfn.describe_execution().execution_arn(&arn).send().await.expect("describe");
        panic!("the benchmark refresh {name} ended {status}: {:?} {:?}", ended.error(), ended.cause());
    }
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
    // Kept to the end, the clone serves the whole engine refresh; deleted early, the dump.
    let used_until = engine(if delete_after_dump { "restore" } else { "finished" });
    let engine_needs = seconds_between(engine("dump"), used_until);
    let clone = exited(&events, "CheckClone").last().map(|(_, out)| out["clone"].clone()).expect("CheckClone ran");
    let requested = rfc3339(&clone["requestedAt"]);
    let ready = rfc3339(&clone["readyAt"]);
    let deletion = if delete_after_dump { "DeleteCloneAfterDump" } else { "DeleteClone" };
    // Deletion requested: the delete call has returned.
    let deleted = exited(&events, deletion)
        .first()
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("{deletion} never ran in {name}"));
    // The same count `record` prices every run with.
    let usage = usage_of(&events);
    Measured {
        transitions: usage.transitions as usize,
        invocations: usage.lambda_invocations as usize,
        lambda_seconds: usage.lambda_seconds,
        lifetime: seconds_between(requested, deleted),
        billed: seconds_between(ready, deleted),
        needed: seconds_between(requested, ready) + engine_needs,
        after_use: seconds_between(used_until, deleted),
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
