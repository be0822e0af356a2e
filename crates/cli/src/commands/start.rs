//! `start [--wait]`: a run started under a readable, unique name.

use dblab_refresh::execution_name;
use refresh_core::clients::StepFunctions;
use refresh_core::{RefreshError, aws};
use serde_json::json;
use time::OffsetDateTime;

use super::load_request;
use super::watch::follow;
use crate::failure::Failure;
use crate::output::print_json;
use crate::stack::{Stack, StackArgs};

/// Start a refresh with a readable, unique execution name.
#[derive(clap::Args)]
pub(crate) struct StartArgs {
    file: String,
    #[command(flatten)]
    stack: StackArgs,
    /// Follow the run until it ends, as `watch` does.
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: StartArgs, colour: bool) -> Result<(), Failure> {
    let config = aws::config().await;
    // No state machine is wrong usage, told before the request is read.
    let stack = Stack::resolve(args.stack, &config).await?;
    let state_machine = stack.state_machine()?;
    let (doc, request) = load_request(&args.file)?;
    let sfn = StepFunctions::new(&config);
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
    if args.json && !args.wait {
        print_json(&json!({"executionArn": arn, "name": name}));
    } else if !args.json {
        println!("started {name}\n  {arn}");
    }
    if args.wait { follow(&sfn, &arn, args.json, colour).await } else { Ok(()) }
}
