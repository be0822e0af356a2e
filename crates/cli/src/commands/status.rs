//! `status`: one line per target.

use std::collections::BTreeMap;

use refresh_core::aws;
use refresh_core::fleet::TargetState;
use refresh_core::history::History;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::schedule::schedules;
use super::watch::execution_view;
use crate::failure::Failure;
use crate::output::{print_json, rfc, stamp};
use crate::stack::{Stack, StackArgs};

/// One target's line: a target that has run has a state; one only scheduled so far has
/// its next run alone.
struct Line {
    target: String,
    state: Option<TargetState>,
    phase: Option<String>,
    next: Option<OffsetDateTime>,
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

fn line_json(l: &Line, now: OffsetDateTime) -> Value {
    let Some(s) = &l.state else {
        return json!({"target": l.target, "lastRun": null, "dataAsOf": null, "dataAgeSeconds": null,
                      "freshnessMaxAgeSeconds": null, "stale": false, "running": null, "nextRun": rfc(l.next)});
    };
    json!({
        "target": l.target,
        "lastRun": s.last_run.as_ref().map(|r| json!({
            "execution": r.execution_name, "outcome": r.outcome.as_str(),
            "startedAt": rfc(Some(r.started_at)), "finishedAt": rfc(r.finished_at), "error": r.error,
            "ignoredErrors": r.ignored_errors})),
        "dataAsOf": rfc(s.data_as_of),
        // Data it never had has no age; `stale` still counts from when the fleet first saw it.
        "dataAgeSeconds": s.data_as_of.map(|_| s.data_age(now).whole_seconds().max(0)),
        "trackedSince": rfc(Some(s.tracked_since)),
        "freshnessMaxAgeSeconds": s.freshness_max_age_seconds,
        "stale": s.stale(now),
        "running": s.running.as_ref().map(|r| json!({"execution": r.execution_name,
            "startedAt": rfc(Some(r.started_at)), "phase": l.phase})),
        "nextRun": rfc(l.next),
    })
}

fn line_text(l: &Line, now: OffsetDateTime) -> String {
    let columns = |outcome: &str, ran: String, as_of: String, age: String, running: String, marks: &str| {
        format!(
            "{:<24} {:<10} {:<17} {:<17} {:>8}  {:<24} {:<17}{marks}",
            l.target,
            outcome,
            ran,
            as_of,
            age,
            running,
            stamp(l.next)
        )
    };
    let Some(s) = &l.state else {
        return columns("never", "-".into(), "-".into(), "-".into(), "-".into(), "");
    };
    let running = s.running.as_ref().map_or_else(
        || "-".to_string(),
        |r| format!("{} ({})", l.phase.as_deref().unwrap_or("running"), stamp(Some(r.started_at))),
    );
    // Never refreshed: no age to show; it goes stale its threshold after the fleet first saw it.
    let (data_age, stale) = match (s.data_as_of, s.stale(now)) {
        (Some(_), stale) => (age(s.data_age(now).whole_seconds().max(0)), if stale { "  STALE" } else { "" }),
        (None, true) => ("no data".to_string(), "  STALE (never refreshed)"),
        (None, false) => ("no data".to_string(), "  (never refreshed; not stale yet)"),
    };
    columns(
        s.last_run.as_ref().map_or("-", |r| r.outcome.as_str()),
        stamp(s.last_run.as_ref().map(|r| r.finished_at.unwrap_or(r.started_at))),
        stamp(s.data_as_of),
        data_age,
        running,
        &format!(
            "{stale}{}",
            // The engine finished with whatever pg_restore managed: tables may be missing.
            if s.last_run.as_ref().is_some_and(|r| r.ignored_errors.is_some()) {
                "  RESTORE ERRORS IGNORED"
            } else {
                ""
            }
        ),
    )
}

/// One line per target: last run, data as of and its age, a run in progress, the next
/// scheduled run, and STALE past the target's freshness threshold.
#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: StatusArgs) -> Result<(), Failure> {
    let StatusArgs { stack, json } = args;
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let fleet = History::new(refresh_core::clients::DynamoDb::new(&config), stack.table()?).fleet().await?;
    let mut next: BTreeMap<String, Option<OffsetDateTime>> = match stack.schedule_group.as_deref() {
        Some(group) => schedules(&aws_sdk_scheduler::Client::new(&config), group)
            .await?
            .into_iter()
            .map(|r| (r.target, r.next))
            .collect(),
        None => BTreeMap::new(),
    };
    let sfn = refresh_core::clients::StepFunctions::new(&config);
    let mut lines = Vec::new();
    for state in fleet {
        let phase = match state.running.as_ref().and_then(|r| r.execution_arn.as_deref()) {
            Some(arn) => execution_view(&sfn, arn)
                .await
                .ok()
                .and_then(|v| v.current_state.map(|s| dblab_refresh::view::phase_of(&s).to_string())),
            None => None,
        };
        let next = next.remove(&state.target).flatten();
        lines.push(Line { target: state.target.clone(), state: Some(state), phase, next });
    }
    // Scheduled, but never run yet.
    lines.extend(next.into_iter().map(|(target, next)| Line { target, state: None, phase: None, next }));
    lines.sort_by(|a, b| a.target.cmp(&b.target));
    let now = OffsetDateTime::now_utc();
    if json {
        print_json(&Value::Array(lines.iter().map(|l| line_json(l, now)).collect()));
        return Ok(());
    }
    if lines.is_empty() {
        println!("no target has run or is scheduled yet");
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:<17} {:<17} {:>8}  {:<24} {:<17}",
        "TARGET", "LAST RUN", "RAN AT (UTC)", "DATA AS OF (UTC)", "AGE", "IN PROGRESS", "NEXT RUN (UTC)"
    );
    for l in &lines {
        println!("{}", line_text(l, now));
    }
    Ok(())
}
