//! `dblab-refresh`: validate, import, start, watch, history, status, schedule and cleanup, against real AWS
//! or the local stack (the AWS endpoint, region and credentials come from the usual AWS
//! environment).
//!
//! Exit codes: 0 done; 1 what was checked or run failed (invalid request, failed
//! preflight, failed run); 2 wrong usage; 3 AWS or DBLab could not be reached or refused.

mod commands;
mod failure;
mod output;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use refresh_core::aws;
use refresh_core::clients::StepFunctions;

use failure::Failure;
use output::{Colour, colour};
use stack::StackArgs;

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
        /// The stack's DblabEngines (its entries, comma-separated): the request must name
        /// one of them; unset, its engine is not checked (and --preflight cannot run)
        #[arg(long, env = "DBLAB_REFRESH_ENGINES")]
        engines: Option<String>,
        /// The stack's SourceKmsKeyArns (comma-separated), to check the source's encryption
        /// key against; unset, the key is only shown.
        #[arg(long, env = "DBLAB_REFRESH_SOURCE_KMS_KEYS")]
        source_kms_keys: Option<String>,
        /// The stack's CopyKmsKeyArn: the key a snapshot shared encrypted from another
        /// account is copied in under before the restore
        #[arg(long, env = "DBLAB_REFRESH_COPY_KMS_KEY")]
        copy_kms_key: Option<String>,
        /// The stack's SharedSnapshotArns (comma-separated patterns): another account's
        /// snapshots outside them are not considered; unset, every shared one is
        #[arg(long, env = "DBLAB_REFRESH_SHARED_SNAPSHOT_ARNS")]
        shared_snapshot_arns: Option<String>,
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
        #[arg(long, value_parser = target_arg)]
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
        #[arg(value_parser = target_arg)]
        target: String,
        #[arg(long, env = "DBLAB_REFRESH_TABLE")]
        table: String,
        /// How many runs, newest first (1 to 1000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=1000))]
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
        stack: StackArgs,
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

#[derive(Subcommand)]
enum TargetAction {
    /// Take TARGET out of the fleet for good: out of `status`, the freshness metrics and
    /// the stale alarm, and its schedule removed; its history is kept. Refused while a run
    /// of it is under way.
    Retire {
        #[arg(value_parser = target_arg)]
        target: String,
        #[command(flatten)]
        stack: StackArgs,
    },
}

/// A target named on the command line, by the rule a request's `target` follows: a name no
/// run could have is refused as wrong usage, not searched for.
fn target_arg(text: &str) -> Result<String, String> {
    refresh_core::request::check_target(text).map(|()| text.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let colour = colour(cli.colour);
    let result = match cli.command {
        Command::Validate { file, preflight, engines, json, source_kms_keys, copy_kms_key, shared_snapshot_arns } => {
            match engines.as_deref().map(commands::validate::engines_arg).transpose() {
                Ok(engines) => {
                    let keys = commands::validate::StackKeys {
                        engines,
                        source: source_kms_keys.map(|k| aws::list(&k)),
                        shared_snapshots: shared_snapshot_arns.map(|a| aws::list(&a)),
                        copy: copy_kms_key,
                    };
                    commands::validate::validate(&file, preflight, json, keys).await
                }
                Err(f) => Err(f),
            }
        }
        Command::ImportRdsRefresh { config, password_secret, token_secret, target, output } => {
            commands::import::import(&config, password_secret.as_deref(), token_secret.as_deref(), target, output)
        }
        Command::Start { file, state_machine, wait, json } => {
            commands::run::start(&file, &state_machine, wait, json, colour).await
        }
        Command::Watch { execution, json } => {
            commands::run::watch(&StepFunctions::new(&aws::config().await), &execution, json, colour).await
        }
        Command::History { target, table, limit, json } => {
            commands::history::history(&target, &table, limit, json).await
        }
        Command::Cleanup { dry_run, max_age, json } => commands::cleanup::cleanup(dry_run, max_age, json).await,
        Command::Status { stack, json } => commands::status::status(stack, json).await,
        Command::Schedule { action } => match action {
            ScheduleAction::Set { target, file, cron, timezone, preflight, stack } => {
                commands::schedule::set(stack, &target, &file, &cron, timezone, preflight).await
            }
            ScheduleAction::List { stack, json } => commands::schedule::list(stack, json).await,
            ScheduleAction::Pause { target, stack } => commands::schedule::change_state(stack, &target, false).await,
            ScheduleAction::Resume { target, stack } => commands::schedule::change_state(stack, &target, true).await,
            ScheduleAction::Remove { target, stack } => commands::schedule::remove(stack, &target).await,
        },
        Command::Target { action: TargetAction::Retire { target, stack } } => {
            commands::target::retire(stack, &target).await
        }
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
