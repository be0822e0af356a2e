//! `dblab-refresh`: validate, import, start, watch, history, status, schedule and cleanup, against real AWS
//! or the local stack (the AWS endpoint, region and credentials come from the usual AWS
//! environment).
//!
//! Exit codes: 0 done; 1 what was checked or run failed (invalid request, failed
//! preflight, failed run); 2 wrong usage; 3 AWS or DBLab could not be reached or refused.
//!
//! This file parses and dispatches; each command's arguments and work are in its file
//! under `commands/`.

mod commands;
mod failure;
mod output;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{cleanup, history, import, schedule, start, status, target, validate, watch};
use failure::Failure;
use output::{Colour, colour};

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

// `--help` lists the commands in this order.
#[derive(Subcommand)]
enum Command {
    Validate(validate::ValidateArgs),
    ImportRdsRefresh(import::ImportArgs),
    Start(start::StartArgs),
    Watch(watch::WatchArgs),
    History(history::HistoryArgs),
    Schedule(schedule::ScheduleArgs),
    Target(target::TargetArgs),
    Status(status::StatusArgs),
    Cleanup(cleanup::CleanupArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let colour = colour(cli.colour);
    let result = match cli.command {
        Command::Validate(args) => validate::run(args).await,
        Command::ImportRdsRefresh(args) => import::run(args),
        Command::Start(args) => start::run(args, colour).await,
        Command::Watch(args) => watch::run(args, colour).await,
        Command::History(args) => history::run(args).await,
        Command::Schedule(args) => schedule::run(args).await,
        Command::Target(args) => target::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Cleanup(args) => cleanup::run(args).await,
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
