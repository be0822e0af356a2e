//! `target retire`: a target's place in the fleet given up, its history kept.

use refresh_core::fleet::Retired;
use refresh_core::history::History;
use refresh_core::{RefreshError, aws};

use super::target_arg;
use crate::failure::Failure;
use crate::stack::{Stack, StackArgs};

/// A target's place in the fleet.
#[derive(clap::Args)]
pub(crate) struct TargetArgs {
    #[command(subcommand)]
    action: TargetAction,
}

#[derive(clap::Subcommand)]
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

pub(crate) async fn run(args: TargetArgs) -> Result<(), Failure> {
    match args.action {
        TargetAction::Retire { target, stack } => retire(stack, &target).await,
    }
}

/// Takes a target out of the fleet and removes its schedule, keeping its history.
async fn retire(stack: StackArgs, target: &str) -> Result<(), Failure> {
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let history = History::new(refresh_core::clients::DynamoDb::new(&config), stack.table()?);
    let retired = history.fleet_retire(target).await?;
    if let Retired::Running(execution) = &retired {
        return Err(Failure::failed(format!(
            "{target} has a run under way ({execution}): retire it once that run has ended"
        )));
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
                Err(e) => return Err(Failure::from(RefreshError::from_aws("DeleteSchedule", e))),
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
