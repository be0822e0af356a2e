//! Many targets, one stack: each target's schedule in the stack's Scheduler group
//! (`schedule set|list|pause|resume|remove`), and one line per target (`status`).

use std::collections::BTreeMap;

use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use dblab_refresh::next_run::next_run;
use refresh_core::clients::SdkConfig;
use refresh_core::fleet::{Retired, TargetState};
use refresh_core::history::History;
use refresh_core::{RefreshError, aws};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Failure, execution_view, load_request, print_json, run_preflight};

/// Where the stack's parts are: from `--stack` (its outputs), or named one by one.
#[derive(clap::Args, Clone, Default)]
pub struct StackArgs {
    /// The deployed stack, whose outputs name the state machine, history table, schedule
    /// group and scheduler role.
    #[arg(long, env = "DBLAB_REFRESH_STACK")]
    stack: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_STATE_MACHINE")]
    state_machine: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_TABLE")]
    table: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_SCHEDULE_GROUP")]
    schedule_group: Option<String>,
    #[arg(long, env = "DBLAB_REFRESH_SCHEDULER_ROLE")]
    scheduler_role: Option<String>,
    /// Where a schedule puts a start it could not deliver within the hour.
    #[arg(long, env = "DBLAB_REFRESH_SCHEDULE_DLQ")]
    schedule_dlq: Option<String>,
}

pub struct Stack {
    state_machine: Option<String>,
    table: Option<String>,
    schedule_group: Option<String>,
    scheduler_role: Option<String>,
    schedule_dlq: Option<String>,
}

impl Stack {
    /// A part named explicitly (its flag or its variable) wins over the stack's output.
    pub async fn resolve(args: StackArgs, config: &SdkConfig) -> Result<Self, Failure> {
        let mut outputs = BTreeMap::new();
        if let Some(name) = &args.stack {
            let out = aws_sdk_cloudformation::Client::new(config)
                .describe_stacks()
                .stack_name(name)
                .send()
                .await
                .map_err(|e| Failure::from(RefreshError::from_aws("DescribeStacks", e)))?;
            for stack in out.stacks() {
                for o in stack.outputs() {
                    if let (Some(k), Some(v)) = (o.output_key(), o.output_value()) {
                        outputs.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        let take = |given: Option<String>, key: &str| given.or_else(|| outputs.get(key).cloned());
        Ok(Self {
            state_machine: take(args.state_machine, "RefreshStateMachineArn"),
            table: take(args.table, "HistoryTableName"),
            schedule_group: take(args.schedule_group, "ScheduleGroupName"),
            scheduler_role: take(args.scheduler_role, "SchedulerRoleArn"),
            schedule_dlq: take(args.schedule_dlq, "ScheduleDeadLetterQueueArn"),
        })
    }

    fn need<'a>(value: &'a Option<String>, what: &str, flag: &str, variable: &str) -> Result<&'a str, Failure> {
        value
            .as_deref()
            .ok_or_else(|| Failure(2, format!("the {what} is unknown: pass --stack NAME, or {flag} ({variable})")))
    }

    fn group(&self) -> Result<&str, Failure> {
        Self::need(&self.schedule_group, "schedule group", "--schedule-group", "DBLAB_REFRESH_SCHEDULE_GROUP")
    }

    fn table(&self) -> Result<&str, Failure> {
        Self::need(&self.table, "history table", "--table", "DBLAB_REFRESH_TABLE")
    }
}

fn aws(e: RefreshError) -> Failure {
    Failure::from(e)
}

/// One schedule as `list` and `status` show it.
#[derive(Debug, Clone)]
struct ScheduleRow {
    name: String,
    target: String,
    expression: String,
    timezone: Option<String>,
    enabled: bool,
    next: Option<OffsetDateTime>,
}

fn to_time(zoned: &jiff::Zoned) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).ok()
}

fn stamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")).ok())
        .unwrap_or_else(|| "-".into())
}

fn rfc(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| json!(refresh_core::run::rfc3339(t)))
}

async fn schedules(client: &aws_sdk_scheduler::Client, group: &str) -> Result<Vec<ScheduleRow>, Failure> {
    let mut names = Vec::new();
    let mut pages = client.list_schedules().group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws(RefreshError::from_aws("ListSchedules", e)))?;
        names.extend(page.schedules().iter().filter_map(|s| s.name().map(str::to_string)));
    }
    let now = jiff::Timestamp::now();
    let mut rows = Vec::new();
    for name in names {
        let s = client
            .get_schedule()
            .group_name(group)
            .name(&name)
            .send()
            .await
            .map_err(|e| aws(RefreshError::from_aws("GetSchedule", e)))?;
        let input = s.target().and_then(|t| t.input()).unwrap_or_default();
        // The target a schedule refreshes is its request's; a schedule set by this CLI is
        // also named after it.
        let target = serde_json::from_str::<Value>(input)
            .ok()
            .and_then(|v| v.get("target").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| name.clone());
        let expression = s.schedule_expression().unwrap_or_default().to_string();
        let timezone = s.schedule_expression_timezone().map(str::to_string);
        let start = s.start_date().and_then(|d| jiff::Timestamp::from_second(d.secs()).ok());
        let next = next_run(&expression, timezone.as_deref(), start, now).as_ref().and_then(to_time);
        let enabled = s.state() != Some(&ScheduleState::Disabled);
        rows.push(ScheduleRow { name, target, expression, timezone, enabled, next: next.filter(|_| enabled) });
    }
    rows.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(rows)
}

pub async fn set(
    stack: StackArgs,
    target: &str,
    file: &str,
    cron: &str,
    timezone: Option<String>,
    preflight: bool,
) -> Result<(), Failure> {
    let (doc, request) = load_request(file)?;
    if request.target != target {
        return Err(Failure(1, format!("{file} refreshes target {:?}, not {target:?}", request.target)));
    }
    if next_run(cron, timezone.as_deref(), None, jiff::Timestamp::now()).is_none()
        && !(cron.starts_with("cron(") || cron.starts_with("rate(") || cron.starts_with("at("))
    {
        return Err(Failure(2, format!("--cron {cron:?}: expected cron(...), rate(...) or at(...)")));
    }
    if preflight {
        let checks = run_preflight(&request, None).await;
        for (name, result) in &checks {
            if let Err(e) = result {
                return Err(Failure(1, format!("preflight {name}: {e}; the schedule was not set")));
            }
        }
        println!("preflight passed ({} checks)", checks.len());
    }
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let group = stack.group()?;
    let machine = Stack::need(&stack.state_machine, "state machine", "--state-machine", "DBLAB_REFRESH_STATE_MACHINE")?;
    let role =
        Stack::need(&stack.scheduler_role, "scheduler role", "--scheduler-role", "DBLAB_REFRESH_SCHEDULER_ROLE")?;
    let client = aws_sdk_scheduler::Client::new(&config);
    if stack.schedule_dlq.is_none() {
        eprintln!(
            "warning: no dead-letter queue (--stack NAME, or --schedule-dlq): a start Scheduler cannot deliver \
             within the hour is dropped without a trace"
        );
    }
    let spec = Target::builder()
        .arn(machine)
        .role_arn(role)
        .input(serde_json::to_string(&doc).unwrap_or_default())
        // A retried start of a run already under way is recorded as a skipped duplicate;
        // one not delivered within the hour is given up (not begun up to a day late).
        .retry_policy(RetryPolicy::builder().maximum_retry_attempts(3).maximum_event_age_in_seconds(3_600).build())
        .set_dead_letter_config(
            stack.schedule_dlq.as_ref().map(|arn| DeadLetterConfig::builder().arn(arn.as_str()).build()),
        )
        .build()
        .map_err(|e| Failure(3, e.to_string()))?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| Failure(3, e.to_string()))?;
    let existing = match client.get_schedule().group_name(group).name(target).send().await {
        Ok(found) => Some(found),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
        Err(e) => return Err(aws(RefreshError::from_aws("GetSchedule", e))),
    };
    // Updating keeps a paused schedule paused.
    let state = existing.as_ref().and_then(|s| s.state().cloned()).unwrap_or(ScheduleState::Enabled);
    let description = format!("dblab-refresh: refresh {target}");
    // Create and update take the same fields, on builders of different types.
    macro_rules! schedule {
        ($builder:expr) => {
            $builder
                .group_name(group)
                .name(target)
                .description(&description)
                .schedule_expression(cron)
                .set_schedule_expression_timezone(timezone.clone())
                .flexible_time_window(window)
                .target(spec)
                .state(state.clone())
        };
    }
    let result = if existing.is_some() {
        schedule!(client.update_schedule())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws(RefreshError::from_aws("UpdateSchedule", e)))
    } else {
        schedule!(client.create_schedule())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws(RefreshError::from_aws("CreateSchedule", e)))
    };
    result?;
    let next = next_run(cron, timezone.as_deref(), None, jiff::Timestamp::now()).as_ref().and_then(to_time);
    println!(
        "schedule {target} {}: {cron}{} in group {group}; next run {} UTC{}",
        if existing.is_some() { "updated" } else { "created" },
        timezone.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
        stamp(next),
        if state == ScheduleState::Disabled { " (paused)" } else { "" }
    );
    Ok(())
}

pub async fn list(stack: StackArgs, json: bool) -> Result<(), Failure> {
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let rows = schedules(&aws_sdk_scheduler::Client::new(&config), stack.group()?).await?;
    // The last run's outcome, when the history table is known.
    let fleet: BTreeMap<String, TargetState> = match stack.table.as_deref() {
        Some(table) => History::new(refresh_core::clients::DynamoDb::new(&config), table)
            .fleet()
            .await?
            .into_iter()
            .map(|s| (s.target.clone(), s))
            .collect(),
        None => BTreeMap::new(),
    };
    let last =
        |target: &str| fleet.get(target).and_then(|s| s.last_run.as_ref()).map(|r| r.outcome.as_str()).unwrap_or("-");
    if json {
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"target": r.target, "schedule": r.name, "expression": r.expression, "timezone": r.timezone,
                       "state": if r.enabled { "ENABLED" } else { "DISABLED" }, "nextRun": rfc(r.next),
                       "lastOutcome": fleet.get(&r.target).and_then(|s| s.last_run.as_ref()).map(|l| l.outcome.as_str())})
            })
            .collect();
        print_json(&Value::Array(items));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no schedules in {}", stack.group()?);
        return Ok(());
    }
    println!(
        "{:<24} {:<28} {:<16} {:<17} {:<9} LAST RUN",
        "TARGET", "EXPRESSION", "TIMEZONE", "NEXT RUN (UTC)", "STATE"
    );
    for r in &rows {
        println!(
            "{:<24} {:<28} {:<16} {:<17} {:<9} {}",
            r.target,
            r.expression,
            r.timezone.as_deref().unwrap_or("UTC"),
            stamp(r.next),
            if r.enabled { "enabled" } else { "PAUSED" },
            last(&r.target)
        );
    }
    Ok(())
}

pub async fn change_state(stack: StackArgs, target: &str, enable: bool) -> Result<(), Failure> {
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let group = stack.group()?;
    let client = aws_sdk_scheduler::Client::new(&config);
    let s = client
        .get_schedule()
        .group_name(group)
        .name(target)
        .send()
        .await
        .map_err(|e| aws(RefreshError::from_aws("GetSchedule", e)))?;
    // UpdateSchedule replaces the whole schedule: everything else is sent back as it was.
    client
        .update_schedule()
        .group_name(group)
        .name(target)
        .set_description(s.description().map(str::to_string))
        .set_schedule_expression(s.schedule_expression().map(str::to_string))
        .set_schedule_expression_timezone(s.schedule_expression_timezone().map(str::to_string))
        .set_flexible_time_window(s.flexible_time_window().cloned())
        .set_target(s.target().cloned())
        .set_start_date(s.start_date().cloned())
        .set_end_date(s.end_date().cloned())
        .state(if enable { ScheduleState::Enabled } else { ScheduleState::Disabled })
        .send()
        .await
        .map_err(|e| aws(RefreshError::from_aws("UpdateSchedule", e)))?;
    println!("schedule {target} {}", if enable { "resumed" } else { "paused" });
    Ok(())
}

pub async fn remove(stack: StackArgs, target: &str) -> Result<(), Failure> {
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    aws_sdk_scheduler::Client::new(&config)
        .delete_schedule()
        .group_name(stack.group()?)
        .name(target)
        .send()
        .await
        .map_err(|e| aws(RefreshError::from_aws("DeleteSchedule", e)))?;
    println!("schedule {target} removed");
    println!(
        "{target} stays in the fleet (status, freshness metrics, stale alarm): `dblab-refresh target retire {target}` \
         takes it out"
    );
    Ok(())
}

/// Takes a target out of the fleet and removes its schedule, keeping its history.
pub async fn retire(stack: StackArgs, target: &str) -> Result<(), Failure> {
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let history = History::new(refresh_core::clients::DynamoDb::new(&config), stack.table()?);
    let retired = history.fleet_retire(target).await?;
    if let Retired::Running(execution) = &retired {
        return Err(Failure(
            1,
            format!("{target} has a run under way ({execution}): retire it once that run has ended"),
        ));
    }
    // Its schedule would start a run that puts it back.
    let schedule = match stack.schedule_group.as_deref() {
        None => "its schedule (if any) was not looked for: no schedule group known",
        Some(group) => {
            match aws_sdk_scheduler::Client::new(&config).delete_schedule().group_name(group).name(target).send().await
            {
                Ok(_) => "its schedule removed",
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                    "it had no schedule"
                }
                Err(e) => return Err(aws(RefreshError::from_aws("DeleteSchedule", e))),
            }
        }
    };
    let fleet = match retired {
        Retired::NotInFleet => "it was not in the fleet",
        _ => "out of the fleet, its freshness metrics and the stale alarm",
    };
    println!("{target} retired: {fleet}; {schedule}; its history is kept");
    Ok(())
}

/// One target's line.
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

pub async fn status(stack: StackArgs, json: bool) -> Result<(), Failure> {
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
