//! The orchestration cost of one refresh: the real state machine on the local stack, with
//! the phases of a refresh scaled down 60 times (one second stands for one minute), and
//! everything that decides how often the state machine turns scaled alike: the poll
//! intervals, the watch of one invocation and the time a look may take.

use std::time::{Duration, SystemTime};

use aws_sdk_sfn::types::HistoryEvent;
use dblab_emulator::Settings;
use refresh_core::cost;

use refresh_core::executions::usage_of;
use refresh_core::request::SourceType;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::steps::{Step, steps};
use super::{Plan, median, spread, verdict};
use crate::World;
use crate::production::{PRODUCTION_ACCOUNT, Production};
use crate::stack::{Handlers, Watching};

/// One second here is one minute of a real refresh.
pub(super) const SCALE: f64 = 60.0;
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

/// The three kinds of refresh measured, side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// From the source's own snapshot, the clone kept until the engine's refresh is over.
    Kept,
    /// The same with `clone.deleteAfterDump`.
    DeleteAfterDump,
    /// From an encrypted snapshot shared by production's account: copied in first.
    CopyIn,
}

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::Kept, Kind::DeleteAfterDump, Kind::CopyIn];

    pub(super) fn heading(self) -> &'static str {
        match self {
            Kind::Kept => "clone kept to the end",
            Kind::DeleteAfterDump => "`clone.deleteAfterDump`",
            Kind::CopyIn => "shared encrypted snapshot, copied in",
        }
    }
}

pub(super) struct Measured {
    pub(super) transitions: usize,
    pub(super) invocations: usize,
    pub(super) lambda_seconds: f64,
    /// Each step of the run, in order: what AWS or the engine took, and what the
    /// orchestration added.
    pub(super) steps: Vec<Step>,
}

/// The clone's figures, in AWS's time (seconds), from the steps it lives through.
impl Measured {
    pub(super) fn clone_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.clone_alive)
    }

    /// What the clone had to exist for: its restore and the engine's use of it.
    pub(super) fn needed(&self) -> f64 {
        self.clone_steps().map(|s| s.physical * SCALE).sum()
    }

    /// Its lifetime (restore requested to deletion requested) beyond `needed`.
    pub(super) fn beyond(&self) -> f64 {
        self.clone_steps().map(|s| s.seen_after_real() + s.handed_on).sum()
    }

    /// From the end of its use (the dump's, or the engine's refresh's) to its deletion request.
    pub(super) fn after_use(&self) -> f64 {
        self.clone_steps().last().map_or(0.0, |s| s.seen_after_real() + s.handed_on)
    }

    /// What RDS bills: from available to the deletion request.
    pub(super) fn billed(&self) -> f64 {
        let restore = self.clone_steps().next().map_or(0.0, |s| s.physical * SCALE);
        self.needed() + self.beyond() - restore
    }
}

/// A table row: label, the figure of one run, decimals, unit.
type Row = (&'static str, fn(&Measured) -> f64, usize, &'static str);

pub async fn report(plan: &Plan) {
    let p = plan.refresh;
    let runs = plan.refreshes;
    let hours = p.hours();
    println!("## Orchestration of one {hours:.1}-hour refresh\n");
    println!(
        "The real `statemachine/refresh.asl.json` in moto's interpreter against the real handlers (`cargo lambda \
         watch`, the {} build), with phases scaled 1:{SCALE:.0}: clone restore {} min, dump {} min, restore into \
         DBLab {} min, snapshot {} min, and for a shared encrypted snapshot a copy-in of {} min before the clone. \
         RDS and the engine end each phase at a known time (`test:creating-seconds`, the emulator's timeline). Polls \
         every 1 s (= 60 s; the default is 30 s); a check invocation watches {WATCH_SECONDS} s (= 10 min, as in \
         AWS) and plans its looks with their longest AWS time scaled alike (`WATCH_TIME_SCALE`), so it holds as \
         many looks as in AWS. {runs} refreshes of each kind at once. Times are real-equivalent (scaled back up) \
         unless said.\n",
        plan.build(),
        p.clone_restore,
        p.dump,
        p.dblab_restore,
        p.snapshot,
        p.clone_restore
    );
    let handlers =
        Handlers { instances: u32::try_from(runs * Kind::ALL.len()).unwrap_or(u32::MAX), release: plan.release };
    let stack = crate::stack::start(Watching { seconds: WATCH_SECONDS, time_scale: SCALE as u32 }, handlers).await;
    let measured = all_at_once(&stack.state_machine_arn, p, runs).await;
    let of = |kind: Kind| measured.iter().filter(|(k, _)| *k == kind).map(|(_, m)| m).collect::<Vec<_>>();
    let col = |runs: &[&Measured], f: fn(&Measured) -> f64| runs.iter().map(|m| f(m)).collect::<Vec<_>>();
    let rows: [Row; 8] = [
        ("state transitions", |m| m.transitions as f64, 0, ""),
        ("Lambda invocations", |m| m.invocations as f64, 0, ""),
        ("Lambda time", |m| m.lambda_seconds * SCALE, 0, " s"),
        ("clone must exist for (restore + dump, or + whole engine refresh)", |m| m.needed() / 60.0, 1, " min"),
        ("clone lifetime beyond that", Measured::beyond, 0, " s"),
        ("the same, share of what it must exist for", |m| m.beyond() / m.needed() * 100.0, 2, " %"),
        ("end of its use (dump, or whole refresh) to its deletion", Measured::after_use, 0, " s"),
        ("clone instance-hours billed (available to deletion)", |m| m.billed() / 3_600.0, 2, " h"),
    ];
    println!("| measure, median [min-max] | {} |", Kind::ALL.map(Kind::heading).join(" | "));
    println!("|---|---|---|---|");
    for (label, f, decimals, unit) in rows {
        let cells = Kind::ALL.map(|kind| format!("{}{unit}", spread(&col(&of(kind), f), decimals)));
        println!("| {label} | {} |", cells.join(" | "));
    }

    let class = "db.r6g.xlarge";
    let hourly = cost::instance_hour(cost::Engine::RdsPostgres, class, "us-east-1").unwrap_or(f64::NAN);
    let bill = |runs: &[&Measured]| {
        let transitions = median(&col(runs, |m| m.transitions as f64));
        let invocations = median(&col(runs, |m| m.invocations as f64));
        let lambda = median(&col(runs, |m| m.lambda_seconds * SCALE));
        let hours = median(&col(runs, |m| m.billed() / 3_600.0));
        let orchestration = cost::orchestration(transitions as u64, invocations as u64, lambda);
        let step_functions = transitions * cost::STEP_FUNCTIONS_PER_TRANSITION;
        format!(
            "Step Functions {step_functions:.4} $ + Lambda {:.4} $ (128 MB arm64) + clone {class} {hours:.2} h x \
             {hourly} $/h = {:.2} $",
            orchestration - step_functions,
            orchestration + hours * hourly
        )
    };
    println!(
        "\nBill of one {hours:.1}-hour refresh at the list prices of {} (us-east-1; the copy's storage aside):\n",
        cost::PRICES_AS_OF
    );
    for kind in Kind::ALL {
        println!("- {}: {}", kind.heading(), bill(&of(kind)));
    }
    let (whole, early) = (of(Kind::Kept), of(Kind::DeleteAfterDump));
    let saved = median(&col(&whole, Measured::billed)) - median(&col(&early, Measured::billed));
    println!(
        "\nClone-hours saved by `clone.deleteAfterDump`: {:.2} h per refresh ({:.0} % of the clone's bill).",
        saved / 3_600.0,
        saved / median(&col(&whole, Measured::billed)) * 100.0
    );
    let all: Vec<&Measured> = measured.iter().map(|(_, m)| m).collect();
    let worst_overhead = all.iter().map(|m| m.beyond()).fold(0.0, f64::max);
    let worst_share = all.iter().map(|m| m.beyond() / m.needed() * 100.0).fold(0.0, f64::max);
    let worst_transitions = all.iter().map(|m| m.transitions).max().unwrap_or(0);
    let worst_after_dump = early.iter().map(|m| m.after_use()).fold(0.0, f64::max);
    println!(
        "\nTargets: clone lifetime within 2 % or 60 s of what it must exist for (worst run: {worst_overhead:.0} s, \
         {worst_share:.2} %: {}); with `clone.deleteAfterDump`, deleted within one poll interval (60 s) of the \
         dump's end (worst run: {worst_after_dump:.0} s: {}); fewer than 200 transitions (worst run: \
         {worst_transitions}: {}).\n",
        verdict(worst_overhead <= 60.0 || worst_share <= 2.0),
        verdict(worst_after_dump <= 60.0),
        verdict(worst_transitions < 200),
    );
    steps(&measured);
}

/// `runs` refreshes of each kind, all at once, each with its own target and engine.
async fn all_at_once(state_machine_arn: &str, phases: Phases, runs: usize) -> Vec<(Kind, Measured)> {
    let handles: Vec<_> = Kind::ALL
        .into_iter()
        .flat_map(|kind| std::iter::repeat_n(kind, runs))
        .map(|kind| (kind, tokio::spawn(one_refresh(state_machine_arn.to_string(), phases, kind))))
        .collect();
    let mut measured = Vec::new();
    for (kind, handle) in handles {
        measured.push((kind, handle.await.expect("a benchmark refresh")));
    }
    measured
}

/// A source in production's account whose newest snapshot the publisher has copied under
/// its key and shared with the refresh account: the request restores it by copying it in.
async fn shared_source(w: &World) -> Value {
    let production = Production::new().await;
    let key = production.copy_key().await;
    let id = production.instance(&format!("prod-{}", w.id)).await;
    let settings = production.settings(SourceType::Rds, &[&id], &key, 2);
    // The first pass copies, the second shares the finished copy.
    for _ in 0..2 {
        production.publish(&settings).await.expect("the publisher's pass");
    }
    let mut request = w.request("rds", &id);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request
}

async fn one_refresh(state_machine_arn: String, phases: Phases, kind: Kind) -> Measured {
    let ms = |minutes: u64| minutes * 1_000;
    let w = World::with_engine(Settings {
        dump_ms: ms(phases.dump),
        restore_ms: ms(phases.dblab_restore),
        snapshot_ms: ms(phases.snapshot),
        ..Settings::default()
    })
    .await;
    let mut request =
        if kind == Kind::CopyIn { shared_source(&w).await } else { w.request("rds", &w.rds_source().await) };
    let creating = phases.clone_restore as f64;
    // RDS ends the clone's restore (and the copy) this long after creating it.
    request["clone"]["tags"] = json!({"test:creating-seconds": creating.to_string()});
    // Generous for the scaled phases, and within the request's limits at 1 s polls.
    request["clone"]["restoreTimeout"] = json!("10m");
    request["dblab"]["timeout"] = json!("15m");
    request["clone"]["maxAge"] = json!("1h");
    request["clone"]["deleteAfterDump"] = json!(kind == Kind::DeleteAfterDump);
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
    for _ in 0..2_400 {
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

    let view = w.emulator.view();
    let engine = |what: &str| {
        view.timeline
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, at)| epoch(*at))
            .unwrap_or_else(|| panic!("the engine never went {what}"))
    };
    let state_reads: Vec<f64> = view.state_reads.iter().copied().map(epoch).collect();
    let clone = exited(&events, "CheckClone").last().map(|(_, out)| out["clone"].clone()).expect("CheckClone ran");
    let requested = epoch(rfc3339(&clone["requestedAt"]));
    let (clone_created, clone_looks) = looks("instance", clone["identifier"].as_str().unwrap_or_default()).await;
    let refresh = exited(&events, "PatchDblab").last().map(|(_, out)| out["refresh"].clone()).expect("PatchDblab ran");
    let triggered = epoch(rfc3339(&refresh["triggeredAt"]));
    let deletion = if kind == Kind::DeleteAfterDump { "DeleteCloneAfterDump" } else { "DeleteClone" };
    // Deletion requested: delete-clone asked RDS and answered (the state's exit).
    let deleted = exited(&events, deletion)
        .first()
        .map(|(at, _)| epoch(*at))
        .unwrap_or_else(|| panic!("{deletion} never ran in {name}"));
    let run_started = events.first().map_or(0.0, |e| epoch(at(e)));
    let run_ended = events.last().map_or(0.0, |e| epoch(at(e)));
    let recorded = entered(&events, "RecordSuccess").unwrap_or_else(|| panic!("RecordSuccess never ran in {name}"));
    let interval = 1.0;

    let mut steps = Vec::new();
    let copy = &clone["copy"];
    let first_request = if copy.is_object() { epoch(rfc3339(&copy["requestedAt"])) } else { requested };
    steps.push(Step::hand_off("start to the first request to RDS", run_started, first_request));
    if copy.is_object() {
        let (created, copy_looks) = looks("snapshot", copy["identifier"].as_str().unwrap_or_default()).await;
        steps.push(Step::wait("snapshot copied in", created, created + creating, &copy_looks, interval, requested));
    }
    let configuring = entered(&events, "PatchDblab").unwrap_or_else(|| panic!("PatchDblab never ran in {name}"));
    steps.push(
        Step::wait("clone restored", requested, clone_created + creating, &clone_looks, interval, configuring)
            .with_clone(),
    );
    steps.push(Step::hand_off("engine configured, refresh triggered", configuring, triggered).with_clone());
    if kind == Kind::DeleteAfterDump {
        // While it dumps, such a run looks every half interval.
        let dumped = engine("restore");
        steps.push(
            Step::wait("dump, then the clone's deletion", triggered, dumped, &state_reads, interval / 2.0, deleted)
                .with_clone(),
        );
        steps.push(Step::wait(
            "rest of the engine's refresh",
            dumped,
            engine("finished"),
            &state_reads,
            interval,
            recorded,
        ));
    } else {
        let finished = engine("finished");
        steps.push(
            Step::wait(
                "engine's refresh, then the clone's deletion",
                triggered,
                finished,
                &state_reads,
                interval,
                deleted,
            )
            .with_clone(),
        );
    }
    let last = if kind == Kind::DeleteAfterDump { recorded } else { deleted };
    steps.push(Step::hand_off("to the run's end (deletion confirmed, recorded, notified)", last, run_ended));

    let usage = usage_of(&events);
    Measured {
        transitions: usage.transitions as usize,
        invocations: usage.lambda_invocations as usize,
        lambda_seconds: usage.lambda_seconds,
        steps,
    }
}

/// When moto created a scripted resource, and each describe by identifier it answered.
async fn looks(kind: &str, identifier: &str) -> (f64, Vec<f64>) {
    let found = crate::fixture("rds/looks", json!({"kind": kind, "identifier": identifier})).await;
    let created = found["created"].as_f64().unwrap_or_else(|| panic!("moto never showed {kind} {identifier}: {found}"));
    let looks = found["looks"].as_array().map(|l| l.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    (created, looks)
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// When `state` was first entered.
fn entered(events: &[HistoryEvent], state: &str) -> Option<f64> {
    events.iter().find(|e| e.state_entered_event_details().is_some_and(|d| d.name() == state)).map(|e| epoch(at(e)))
}

fn rfc3339(v: &Value) -> SystemTime {
    let t = OffsetDateTime::parse(v.as_str().unwrap_or_default(), &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{v}: {e}"));
    SystemTime::from(t)
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
