//! `dblab-refresh`: validate, import, start, watch, history, status, schedule and cleanup, against real AWS
//! or the local stack (the AWS endpoint, region and credentials come from the usual AWS
//! environment).
//!
//! Exit codes: 0 done; 1 what was checked or run failed (invalid request, failed
//! preflight, failed run); 2 wrong usage; 3 AWS or DBLab could not be reached or refused.

mod fleet;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use dblab_refresh::document::{self, SecretArns};
use dblab_refresh::{execution_name, view};
use refresh_core::clients::{DynamoDb, Ec2, Kms, Rds as RdsClient, SecretsManager, StepFunctions};
use refresh_core::history::History;
use refresh_core::rds::Rds;
use refresh_core::request::RefreshRequest;
use refresh_core::secrets::SecretReader;
use refresh_core::{RefreshError, aws, dblab, preflight};
use serde_json::{Value, json};
use time::OffsetDateTime;

#[derive(Parser)]
#[command(
    name = "dblab-refresh",
    version,
    about = "Refresh DBLab Engines from RDS/Aurora snapshot clones: the operator's tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour in the output: on a terminal only (auto), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Colour::Auto)]
    colour: Colour,
}

#[derive(Clone, Copy, ValueEnum)]
enum Colour {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Check a request (JSON or YAML) and print every problem with its path.
    Validate {
        file: String,
        /// Also check, creating nothing, what would fail later: the DBLab Engine (healthy,
        /// logical, idle, configurable, no timetable, immediateRestore), secrets, source,
        /// restore point, encryption key, security groups and subnet group.
        #[arg(long)]
        preflight: bool,
        /// The stack's SourceKmsKeyArns (comma-separated), to check the source's encryption
        /// key against; unset, the key is only shown.
        #[arg(long, env = "DBLAB_REFRESH_SOURCE_KMS_KEYS")]
        source_kms_keys: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Turn a DBLab rds-refresh config into a request; plain secrets are never carried over.
    ImportRdsRefresh {
        config: String,
        /// Secrets Manager ARN holding the source password.
        #[arg(long)]
        password_secret: Option<String>,
        /// Secrets Manager ARN holding the DBLab token.
        #[arg(long)]
        token_secret: Option<String>,
        /// The target name (default: the source identifier).
        #[arg(long)]
        target: Option<String>,
        /// Write the request here instead of standard output.
        #[arg(long, short)]
        output: Option<String>,
    },
    /// Start a refresh with a readable, unique execution name.
    Start {
        file: String,
        #[arg(long, env = "DBLAB_REFRESH_STATE_MACHINE")]
        state_machine: String,
        /// Follow the run until it ends, as `watch` does.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Follow a run live: phase, time per phase, polls, and on failure the error and state.
    Watch {
        /// The execution ARN.
        execution: String,
        #[arg(long)]
        json: bool,
    },
    /// Past refreshes of a target, newest first.
    History {
        target: String,
        #[arg(long, env = "DBLAB_REFRESH_TABLE")]
        table: String,
        #[arg(long, default_value_t = 10)]
        limit: i32,
        #[arg(long)]
        json: bool,
    },
    /// Each target's schedule, in the stack's Scheduler group.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// A target's place in the fleet.
    Target {
        #[command(subcommand)]
        action: TargetAction,
    },
    /// One line per target: last run, data as of and its age, a run in progress, the next
    /// scheduled run, and STALE past the target's freshness threshold.
    Status {
        #[command(flatten)]
        stack: fleet::StackArgs,
        #[arg(long)]
        json: bool,
    },
    /// The orphan sweep on demand: delete managed clones whose run is confirmed ended.
    Cleanup {
        /// Show what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only clones older than this (e.g. 12h). A clone whose run is running, or cannot
        /// be checked, is never deleted.
        #[arg(long)]
        max_age: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Create or update TARGET's schedule with the request (validated first).
    Set {
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
        stack: fleet::StackArgs,
    },
    /// Every schedule: target, expression, time zone, next run, state, last outcome.
    List {
        #[command(flatten)]
        stack: fleet::StackArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop TARGET's schedule from starting runs, keeping it.
    Pause {
        target: String,
        #[command(flatten)]
        stack: fleet::StackArgs,
    },
    /// Start TARGET's paused schedule again.
    Resume {
        target: String,
        #[command(flatten)]
        stack: fleet::StackArgs,
    },
    /// Delete TARGET's schedule.
    Remove {
        target: String,
        #[command(flatten)]
        stack: fleet::StackArgs,
    },
}

#[derive(Subcommand)]
enum TargetAction {
    /// Take TARGET out of the fleet for good: out of `status`, the freshness metrics and
    /// the stale alarm, and its schedule removed; its history is kept. Refused while a run
    /// of it is under way.
    Retire {
        target: String,
        #[command(flatten)]
        stack: fleet::StackArgs,
    },
}

/// A failure and the exit code it maps to.
struct Failure(u8, String);

impl From<RefreshError> for Failure {
    fn from(e: RefreshError) -> Self {
        let code = if matches!(e, RefreshError::InvalidRequest(_)) { 1 } else { 3 };
        Failure(code, format!("{}: {e}", e.name()))
    }
}

fn colour(choice: Colour) -> bool {
    match choice {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let colour = colour(cli.colour);
    let result = match cli.command {
        Command::Validate { file, preflight, json, source_kms_keys } => {
            validate(&file, preflight, json, source_kms_keys.map(|k| aws::list(&k))).await
        }
        Command::ImportRdsRefresh { config, password_secret, token_secret, target, output } => {
            import(&config, password_secret.as_deref(), token_secret.as_deref(), target, output)
        }
        Command::Start { file, state_machine, wait, json } => start(&file, &state_machine, wait, json, colour).await,
        Command::Watch { execution, json } => {
            watch(&StepFunctions::new(&aws::config().await), &execution, json, colour).await
        }
        Command::History { target, table, limit, json } => history(&target, &table, limit, json).await,
        Command::Cleanup { dry_run, max_age, json } => cleanup(dry_run, max_age, json).await,
        Command::Status { stack, json } => fleet::status(stack, json).await,
        Command::Schedule { action } => match action {
            ScheduleAction::Set { target, file, cron, timezone, preflight, stack } => {
                fleet::set(stack, &target, &file, &cron, timezone, preflight).await
            }
            ScheduleAction::List { stack, json } => fleet::list(stack, json).await,
            ScheduleAction::Pause { target, stack } => fleet::change_state(stack, &target, false).await,
            ScheduleAction::Resume { target, stack } => fleet::change_state(stack, &target, true).await,
            ScheduleAction::Remove { target, stack } => fleet::remove(stack, &target).await,
        },
        Command::Target { action: TargetAction::Retire { target, stack } } => fleet::retire(stack, &target).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            if !message.is_empty() {
                eprintln!("dblab-refresh: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn load_request(file: &str) -> Result<(Value, RefreshRequest), Failure> {
    let doc = document::read(file).map_err(|e| Failure(1, e))?;
    match RefreshRequest::from_document(&doc) {
        Ok(request) => Ok((doc, request)),
        Err(errors) => {
            let lines: Vec<String> = errors.0.iter().map(|e| format!("  {}: {}", e.path, e.message)).collect();
            Err(Failure(1, format!("{file} is not a valid request:\n{}", lines.join("\n"))))
        }
    }
}

async fn validate(file: &str, preflight: bool, json: bool, kms_keys: Option<Vec<String>>) -> Result<(), Failure> {
    let (_, request) = match load_request(file) {
        Ok(ok) => ok,
        Err(f) if json => {
            print_json(&json!({"valid": false, "problems": f.1}));
            return Err(Failure(f.0, String::new()));
        }
        Err(f) => return Err(f),
    };
    let warnings: Vec<String> = request.dblab.plaintext_warning().into_iter().collect();
    if !preflight {
        if json {
            print_json(&json!({"valid": true, "target": request.target, "warnings": warnings}));
        } else {
            println!("{file}: valid request for target {:?}", request.target);
            warnings.iter().for_each(|w| println!("WARN  {w}"));
        }
        return Ok(());
    }
    let checks = run_preflight(&request, kms_keys.as_deref()).await;
    let ok = checks.iter().all(|(_, result)| result.is_ok());
    if json {
        let items: Vec<Value> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(detail) => json!({"check": name, "ok": true, "detail": detail}),
                Err(e) => json!({"check": name, "ok": false, "error": e}),
            })
            .collect();
        print_json(&json!({"valid": true, "preflight": ok, "checks": items, "warnings": warnings}));
    } else {
        for (name, result) in &checks {
            match result {
                Ok(detail) => println!("ok    {name}: {detail}"),
                Err(e) => println!("FAIL  {name}: {e}"),
            }
        }
        warnings.iter().for_each(|w| println!("WARN  {w}"));
    }
    if ok { Ok(()) } else { Err(Failure(1, "the preflight failed; nothing was created".into())) }
}

/// Every check that can fail a run before a clone exists, each on its own: the same
/// preflight `find-snapshot` runs, so the two cannot disagree.
async fn run_preflight(
    request: &RefreshRequest,
    allowed_kms_keys: Option<&[String]>,
) -> Vec<(&'static str, Result<String, String>)> {
    let config = aws::config().await;
    let secrets = SecretReader::new(SecretsManager::new(&config));
    let rds = Rds::new(RdsClient::new(&config));
    let ec2 = Ec2::new(&config);
    let kms = Kms::new(&config);
    let connector = dblab::Connector::default();
    let deps =
        preflight::Deps { rds: &rds, allowed_kms_keys, ec2: &ec2, kms: &kms, secrets: &secrets, dblab: &connector };
    let report = preflight::run(&deps, request, OffsetDateTime::now_utc(), preflight::Stop::Never, None).await;
    report.checks.into_iter().map(|c| (c.name, c.outcome.map_err(|e| e.to_string()))).collect()
}

fn import(
    config: &str,
    password: Option<&str>,
    token: Option<&str>,
    target: Option<String>,
    output: Option<String>,
) -> Result<(), Failure> {
    let doc = document::read(config).map_err(|e| Failure(1, e))?;
    let target = target
        .or_else(|| doc.pointer("/source/identifier").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| Failure(1, "no --target and no source.identifier to name the target after".into()))?;
    let request = document::from_rds_refresh(&doc, &target, &SecretArns { password, token })
        .map_err(|problems| Failure(1, problems.join("\n")))?;
    if let Err(errors) = RefreshRequest::from_document(&request) {
        return Err(Failure(1, format!("the converted request is not valid: {errors}")));
    }
    let text = serde_json::to_string_pretty(&request).unwrap_or_default();
    match output {
        Some(path) => std::fs::write(&path, text + "\n").map_err(|e| Failure(3, format!("{path}: {e}")))?,
        None => println!("{text}"),
    }
    Ok(())
}

async fn start(file: &str, state_machine: &str, wait: bool, json: bool, colour: bool) -> Result<(), Failure> {
    let (doc, request) = load_request(file)?;
    let sfn = StepFunctions::new(&aws::config().await);
    let name = execution_name(&request.target, OffsetDateTime::now_utc());
    let out = sfn
        .start_execution()
        .state_machine_arn(state_machine)
        .name(&name)
        .input(doc.to_string())
        .send()
        .await
        .map_err(|e| Failure::from(RefreshError::from_aws("StartExecution", e)))?;
    let arn = out.execution_arn().to_string();
    if json && !wait {
        print_json(&json!({"executionArn": arn, "name": name}));
    } else if !json {
        println!("started {name}\n  {arn}");
    }
    if wait { watch(&sfn, &arn, json, colour).await } else { Ok(()) }
}

async fn execution_view(sfn: &StepFunctions, arn: &str) -> Result<view::View, Failure> {
    let described = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| Failure::from(RefreshError::from_aws("DescribeExecution", e)))?;
    let mut steps = Vec::new();
    let mut pages = sfn.get_execution_history().execution_arn(arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Failure::from(RefreshError::from_aws("GetExecutionHistory", e)))?;
        for event in page.events() {
            if let (Some(details), Some(at)) =
                (event.state_entered_event_details(), refresh_core::rds::to_offset(event.timestamp()))
            {
                steps.push(view::Step { state: details.name().to_string(), at });
            }
        }
    }
    let ended = described.stop_date().and_then(refresh_core::rds::to_offset);
    Ok(view::build(
        &steps,
        described.status().as_str(),
        described.error().map(str::to_string),
        described.cause().map(str::to_string),
        ended,
    ))
}

async fn watch(sfn: &StepFunctions, arn: &str, json: bool, colour: bool) -> Result<(), Failure> {
    let live = !json && std::io::stdout().is_terminal();
    let mut drawn_lines = 0;
    let mut last_phase = None;
    let mut tick = 0;
    let final_view = loop {
        let current = execution_view(sfn, arn).await?;
        let now = OffsetDateTime::now_utc();
        if live {
            let text = view::render(&current, now, tick, colour);
            let mut out = std::io::stdout().lock();
            if drawn_lines > 0 {
                let _ = write!(out, "\x1b[{drawn_lines}A\x1b[J");
            }
            let _ = write!(out, "{text}");
            let _ = out.flush();
            drawn_lines = text.lines().count();
        } else if !json {
            // Not a terminal: one line per phase change, so logs stay readable.
            let phase = current.phases.last().map(|p| p.name);
            if phase != last_phase && current.status == "RUNNING" {
                if let Some(p) = phase {
                    println!("-> {p}");
                }
                last_phase = phase;
            }
        }
        if current.status != "RUNNING" {
            break current;
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if json {
        let phases: Vec<Value> = final_view
            .phases
            .iter()
            .map(|p| json!({"phase": p.name, "seconds": p.ended.map(|e| (e - p.started).whole_seconds()), "polls": p.polls}))
            .collect();
        print_json(&json!({
            "executionArn": arn, "status": final_view.status, "error": final_view.error,
            "failedState": final_view.failed_state, "cause": final_view.cause, "phases": phases,
        }));
    } else if !live {
        print!("{}", view::render(&final_view, OffsetDateTime::now_utc(), 0, colour));
    }
    if final_view.status == "SUCCEEDED" { Ok(()) } else { Err(Failure(1, String::new())) }
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")).ok())
        .unwrap_or_else(|| "-".into())
}

async fn history(target: &str, table: &str, limit: i32, json: bool) -> Result<(), Failure> {
    let store = History::new(DynamoDb::new(&aws::config().await), table);
    let rows = store.recent(target, limit).await?;
    if json {
        print_json(&serde_json::to_value(&rows).unwrap_or_default());
        return Ok(());
    }
    if rows.is_empty() {
        println!("no refreshes of {target} recorded in {table}");
        return Ok(());
    }
    println!(
        "{:<17} {:<10} {:<17} {:>9} {:>8}  {:<40} ERROR",
        "STARTED (UTC)", "OUTCOME", "DATA AS OF", "DURATION", "COST", "RESTORED FROM"
    );
    for row in rows {
        let duration = row.duration_seconds().map_or_else(|| "-".to_string(), |s| format!("{}m{:02}s", s / 60, s % 60));
        let error = match (&row.error, &row.duplicate_of) {
            (Some(e), _) => format!("{} in {}", e.name, e.state.as_deref().unwrap_or("?")),
            (None, Some(original)) => format!("duplicate of {original}"),
            (None, None) => String::new(),
        };
        // "?" when part of it is unknown (an unlisted class, an unreadable execution history).
        let cost = row.cost.as_ref().map_or_else(
            || "-".to_string(),
            |c| c.total_usd.map_or_else(|| "?".to_string(), |usd| format!("${usd:.2}")),
        );
        let from = row.snapshot_identifier.as_deref().or(row.source_mode.as_deref()).unwrap_or("-");
        println!(
            "{:<17} {:<10} {:<17} {:>9} {cost:>8}  {from:<40} {error}",
            when(Some(row.started_at)),
            row.outcome.as_str(),
            when(row.data_as_of),
            duration,
        );
    }
    Ok(())
}

async fn cleanup(dry_run: bool, max_age: Option<String>, json: bool) -> Result<(), Failure> {
    let max_age = max_age
        .map(|text| refresh_core::duration::parse(&text).map_err(|e| Failure(2, format!("--max-age {e}"))))
        .transpose()?;
    let config = aws::config().await;
    let rds = Rds::new(RdsClient::new(&config));
    let executions = refresh_core::executions::Executions::new(StepFunctions::new(&config));
    let report =
        refresh_core::sweep::sweep(&rds, &executions, dry_run, None, max_age, OffsetDateTime::now_utc()).await?;
    if json {
        print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        let verb = if dry_run { "would delete" } else { "deleted" };
        println!("{} managed clone(s) examined", report.examined);
        for item in &report.deleted {
            println!("  {verb:<12} {}  ({})", item.identifier, item.reason);
        }
        for item in &report.kept {
            println!("  {:<12} {}  ({})", "kept", item.identifier, item.reason);
        }
        for item in &report.errors {
            println!("  {:<12} {}  ({})", "ERROR", item.identifier, item.reason);
        }
    }
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(Failure(3, format!("{} clone(s) could not be deleted", report.errors.len())))
    }
}
