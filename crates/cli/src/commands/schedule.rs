//! `schedule set|list|pause|resume|remove`: each target's schedule in the stack's
//! Scheduler group.

use std::collections::BTreeMap;

use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use dblab_refresh::next_run::next_run;
use refresh_core::fleet::TargetState;
use refresh_core::history::History;
use refresh_core::request::Labels;
use refresh_core::{RefreshError, aws};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::validate::{StackKeys, run_preflight};
use super::{engine_of, load_request, target_arg};
use crate::failure::Failure;
use crate::output::{print_json, rfc, stamp};
use crate::stack::{Stack, StackArgs};

/// Each target's schedule, in the stack's Scheduler group.
#[derive(clap::Args)]
pub(crate) struct ScheduleArgs {
    #[command(subcommand)]
    action: ScheduleAction,
}

#[derive(clap::Subcommand)]
enum ScheduleAction {
    /// Create or update TARGET's schedule with the request (validated first).
    Set {
        #[arg(value_parser = target_arg)]
        target: String,
        file: String,
        /// The Scheduler expression: cron(0 3 * * ? *), rate(12 hours) or at(...).
        #[arg(long)]
        cron: String,
        /// An IANA time zone for the expression (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// Run the preflight first, and set nothing if it fails.
        #[arg(long)]
        preflight: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Every schedule: target, expression, time zone, next run, state, last outcome.
    List {
        #[command(flatten)]
        stack: StackArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop TARGET's schedule from starting runs, keeping it.
    Pause {
        #[arg(value_parser = target_arg)]
        target: String,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Start TARGET's paused schedule again.
    Resume {
        #[arg(value_parser = target_arg)]
        target: String,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Delete TARGET's schedule.
    Remove {
        #[arg(value_parser = target_arg)]
        target: String,
        #[command(flatten)]
        stack: StackArgs,
    },
}

pub(crate) async fn run(args: ScheduleArgs) -> Result<(), Failure> {
    match args.action {
        ScheduleAction::Set { target, file, cron, timezone, preflight, stack } => {
            set(stack, &target, &file, &cron, timezone, preflight).await
        }
        ScheduleAction::List { stack, json } => list(stack, json).await,
        ScheduleAction::Pause { target, stack } => change_state(stack, &target, false).await,
        ScheduleAction::Resume { target, stack } => change_state(stack, &target, true).await,
        ScheduleAction::Remove { target, stack } => remove(stack, &target).await,
    }
}

/// One schedule as `list` and `status` show it.
#[derive(Debug, Clone)]
pub(crate) struct ScheduleRow {
    name: String,
    pub(crate) target: String,
    expression: String,
    timezone: Option<String>,
    enabled: bool,
    pub(crate) next: Option<OffsetDateTime>,
}

fn to_time(zoned: &jiff::Zoned) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).ok()
}

pub(crate) async fn schedules(client: &aws_sdk_scheduler::Client, group: &str) -> Result<Vec<ScheduleRow>, Failure> {
    let mut names = Vec::new();
    let mut pages = client.list_schedules().group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Failure::from(RefreshError::from_aws("ListSchedules", e)))?;
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
            .map_err(|e| Failure::from(RefreshError::from_aws("GetSchedule", e)))?;
        let input = s.target().and_then(|t| t.input()).unwrap_or_default();
        // The target a schedule refreshes is its request's; a schedule set by this CLI is
        // also named after it.
        let target = serde_json::from_str::<Value>(input)
            .ok()
            .and_then(|v| Labels::of(&v).target().map(str::to_string))
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

async fn set(
    stack: StackArgs,
    target: &str,
    file: &str,
    cron: &str,
    timezone: Option<String>,
    preflight: bool,
) -> Result<(), Failure> {
    let (doc, request) = load_request(file)?;
    if request.target != target {
        return Err(Failure::failed(format!("{file} refreshes target {:?}, not {target:?}", request.target)));
    }
    if next_run(cron, timezone.as_deref(), None, jiff::Timestamp::now()).is_none()
        && !(cron.starts_with("cron(") || cron.starts_with("rate(") || cron.starts_with("at("))
    {
        return Err(Failure::usage(format!("--cron {cron:?}: expected cron(...), rate(...) or at(...)")));
    }
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    // A schedule starts runs with this request: one naming an engine the stack does not
    // list would fail every time.
    let engines = stack.engines()?;
    let engine = engine_of(file, &request, &engines)?;
    if preflight {
        let checks = run_preflight(&request, engine, &StackKeys::default()).await;
        for (name, result) in &checks {
            if let Err(e) = result {
                return Err(Failure::failed(format!("preflight {name}: {e}; the schedule was not set")));
            }
        }
        println!("preflight passed ({} checks)", checks.len());
    }
    let group = stack.group()?;
    let machine = stack.state_machine()?;
    let role = stack.scheduler_role()?;
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
        .map_err(|e| Failure::unreachable(e.to_string()))?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| Failure::unreachable(e.to_string()))?;
    let existing = match client.get_schedule().group_name(group).name(target).send().await {
        Ok(found) => Some(found),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
        Err(e) => return Err(Failure::from(RefreshError::from_aws("GetSchedule", e))),
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
            .map_err(|e| Failure::from(RefreshError::from_aws("UpdateSchedule", e)))
    } else {
        schedule!(client.create_schedule())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure::from(RefreshError::from_aws("CreateSchedule", e)))
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

async fn list(stack: StackArgs, json: bool) -> Result<(), Failure> {
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

async fn change_state(stack: StackArgs, target: &str, enable: bool) -> Result<(), Failure> {
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
        .map_err(|e| Failure::from(RefreshError::from_aws("GetSchedule", e)))?;
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
        .map_err(|e| Failure::from(RefreshError::from_aws("UpdateSchedule", e)))?;
    println!("schedule {target} {}", if enable { "resumed" } else { "paused" });
    Ok(())
}

async fn remove(stack: StackArgs, target: &str) -> Result<(), Failure> {
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    aws_sdk_scheduler::Client::new(&config)
        .delete_schedule()
        .group_name(stack.group()?)
        .name(target)
        .send()
        .await
        .map_err(|e| Failure::from(RefreshError::from_aws("DeleteSchedule", e)))?;
    println!("schedule {target} removed");
    println!(
        "{target} stays in the fleet (status, freshness metrics, stale alarm): `dblab-refresh target retire {target}` \
         takes it out"
    );
    Ok(())
}
