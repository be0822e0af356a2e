//! `schedule set|list|pause|resume|remove`: each target's schedule in the stack's
//! Scheduler group.

use std::collections::BTreeMap;

use aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use dblab_refresh::next_run::next_run;
use refresh_core::dblab::Engine;
use refresh_core::fleet::TargetState;
use refresh_core::history::History;
use refresh_core::request::{Labels, RefreshRequest};
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
    let (doc, request) = read_request(file, target)?;
    check_expression(cron, timezone.as_deref())?;
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    // A schedule starts runs with this request: one naming an engine the stack does not
    // list would fail every time.
    let engines = stack.engines()?;
    let engine = engine_of(file, &request, &engines)?;
    if preflight {
        check_preflight(&request, engine).await?;
    }
    let definition = definition(&stack, target, &doc, cron, timezone)?;
    let client = aws_sdk_scheduler::Client::new(&config);
    let existing = existing_schedule(&client, &definition).await?;
    let state = state_to_set(existing.as_ref());
    put_schedule(&client, &definition, existing.is_some(), &state).await?;
    report(&definition, existing.is_some(), &state);
    Ok(())
}

/// The request in `file`, which must refresh the schedule's own target.
fn read_request(file: &str, target: &str) -> Result<(Value, RefreshRequest), Failure> {
    let (doc, request) = load_request(file)?;
    if request.target != target {
        return Err(Failure::failed(format!("{file} refreshes target {:?}, not {target:?}", request.target)));
    }
    Ok((doc, request))
}

/// Wrong usage unless the expression is one this CLI can read or at least has a Scheduler
/// form, which Scheduler itself then judges.
fn check_expression(cron: &str, timezone: Option<&str>) -> Result<(), Failure> {
    if next_run(cron, timezone, None, jiff::Timestamp::now()).is_none()
        && !(cron.starts_with("cron(") || cron.starts_with("rate(") || cron.starts_with("at("))
    {
        return Err(Failure::usage(format!("--cron {cron:?}: expected cron(...), rate(...) or at(...)")));
    }
    Ok(())
}

/// Any failed check stops `set` before anything is set.
async fn check_preflight(request: &RefreshRequest, engine: &Engine) -> Result<(), Failure> {
    let checks = run_preflight(request, engine, &StackKeys::default()).await;
    for (name, result) in &checks {
        if let Err(e) = result {
            return Err(Failure::failed(format!("preflight {name}: {e}; the schedule was not set")));
        }
    }
    println!("preflight passed ({} checks)", checks.len());
    Ok(())
}

/// What `set` sends for the schedule, on create and update alike, but its state.
struct Definition<'a> {
    group: &'a str,
    name: &'a str,
    description: String,
    expression: &'a str,
    timezone: Option<String>,
    target: Target,
    window: FlexibleTimeWindow,
}

/// The schedule, named after its target, from the stack's names and the request.
fn definition<'a>(
    stack: &'a Stack,
    target: &'a str,
    doc: &Value,
    cron: &'a str,
    timezone: Option<String>,
) -> Result<Definition<'a>, Failure> {
    let group = stack.group()?;
    let machine = stack.state_machine()?;
    let role = stack.scheduler_role()?;
    if stack.schedule_dlq.is_none() {
        eprintln!(
            "warning: no dead-letter queue (--stack NAME, or --schedule-dlq): a start Scheduler cannot deliver \
             within the hour is dropped without a trace"
        );
    }
    Ok(Definition {
        group,
        name: target,
        description: format!("dblab-refresh: refresh {target}"),
        expression: cron,
        timezone,
        target: start_target(machine, role, stack.schedule_dlq.as_deref(), doc)?,
        window: FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| Failure::unreachable(e.to_string()))?,
    })
}

/// The state machine's execution Scheduler starts, with the request document as its input.
fn start_target(machine: &str, role: &str, dlq: Option<&str>, doc: &Value) -> Result<Target, Failure> {
    Target::builder()
        .arn(machine)
        .role_arn(role)
        .input(serde_json::to_string(doc).unwrap_or_default())
        // A retried start of a run already under way is recorded as a skipped duplicate;
        // one not delivered within the hour is given up (not begun up to a day late).
        .retry_policy(RetryPolicy::builder().maximum_retry_attempts(3).maximum_event_age_in_seconds(3_600).build())
        .set_dead_letter_config(dlq.map(|arn| DeadLetterConfig::builder().arn(arn).build()))
        .build()
        .map_err(|e| Failure::unreachable(e.to_string()))
}

/// The schedule already set for the target, if any.
async fn existing_schedule(
    client: &aws_sdk_scheduler::Client,
    definition: &Definition<'_>,
) -> Result<Option<GetScheduleOutput>, Failure> {
    match client.get_schedule().group_name(definition.group).name(definition.name).send().await {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(Failure::from(RefreshError::from_aws("GetSchedule", e))),
    }
}

/// Updating keeps a paused schedule paused; a new one starts enabled.
fn state_to_set(existing: Option<&GetScheduleOutput>) -> ScheduleState {
    existing.and_then(|s| s.state().cloned()).unwrap_or(ScheduleState::Enabled)
}

/// Updates the schedule if it `exists`, else creates it.
async fn put_schedule(
    client: &aws_sdk_scheduler::Client,
    definition: &Definition<'_>,
    exists: bool,
    state: &ScheduleState,
) -> Result<(), Failure> {
    // Create and update take the same fields, on builders of different types.
    macro_rules! schedule {
        ($builder:expr) => {
            $builder
                .group_name(definition.group)
                .name(definition.name)
                .description(&definition.description)
                .schedule_expression(definition.expression)
                .set_schedule_expression_timezone(definition.timezone.clone())
                .flexible_time_window(definition.window.clone())
                .target(definition.target.clone())
                .state(state.clone())
        };
    }
    if exists {
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
    }
}

/// What was set, and when it next starts a run.
fn report(definition: &Definition<'_>, updated: bool, state: &ScheduleState) {
    let Definition { group, name: target, expression: cron, timezone, .. } = definition;
    let next = next_run(cron, timezone.as_deref(), None, jiff::Timestamp::now()).as_ref().and_then(to_time);
    println!(
        "schedule {target} {}: {cron}{} in group {group}; next run {} UTC{}",
        if updated { "updated" } else { "created" },
        timezone.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
        stamp(next),
        if *state == ScheduleState::Disabled { " (paused)" } else { "" }
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_needs_a_scheduler_form() {
        assert!(check_expression("cron(0 3 * * ? *)", Some("Europe/Berlin")).is_ok());
        assert!(check_expression("rate(12 hours)", None).is_ok());
        // Not readable here, but in Scheduler's form: Scheduler has the last word.
        assert!(check_expression("rate(1 fortnight)", None).is_ok());
        let bare = check_expression("0 3 * * *", None).err().map(|f| f.0);
        assert_eq!(bare, Some(2), "a bare crontab line is wrong usage");
    }

    #[test]
    fn the_target_starts_the_state_machine_with_the_request() {
        let doc = json!({"target": "orders", "engine": "main"});
        let target = start_target("arn:machine", "arn:role", None, &doc).ok().unwrap();
        assert_eq!((target.arn(), target.role_arn()), ("arn:machine", "arn:role"));
        assert_eq!(target.input().map(serde_json::from_str::<Value>).and_then(Result::ok), Some(doc.clone()));
        let retry = target.retry_policy().unwrap();
        assert_eq!((retry.maximum_retry_attempts(), retry.maximum_event_age_in_seconds()), (Some(3), Some(3_600)));
        assert!(target.dead_letter_config().is_none());
        let with_dlq = start_target("arn:machine", "arn:role", Some("arn:dlq"), &doc).ok().unwrap();
        assert_eq!(with_dlq.dead_letter_config().and_then(|d| d.arn()), Some("arn:dlq"));
    }

    #[test]
    fn an_update_keeps_a_paused_schedule_paused() {
        assert_eq!(state_to_set(None), ScheduleState::Enabled);
        let paused = GetScheduleOutput::builder().state(ScheduleState::Disabled).build();
        assert_eq!(state_to_set(Some(&paused)), ScheduleState::Disabled);
        let unstated = GetScheduleOutput::builder().build();
        assert_eq!(state_to_set(Some(&unstated)), ScheduleState::Enabled);
    }
}
