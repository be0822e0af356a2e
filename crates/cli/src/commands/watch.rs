//! `watch`: a run followed phase by phase (`start --wait` follows the run it starts).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use dblab_refresh::view;
use refresh_core::clients::StepFunctions;
use refresh_core::executions::Executions;
use refresh_core::{RefreshError, aws};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::failure::Failure;
use crate::output::print_json;

/// Follow a run live: phase, time per phase, polls, and on failure the error and state.
#[derive(clap::Args)]
pub(crate) struct WatchArgs {
    /// The execution ARN.
    execution: String,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: WatchArgs, colour: bool) -> Result<(), Failure> {
    follow(&StepFunctions::new(&aws::config().await), &args.execution, args.json, colour).await
}

/// A run as the live view and `status` show it.
pub(crate) async fn execution_view(sfn: &StepFunctions, arn: &str) -> Result<view::View, Failure> {
    let described = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| Failure::from(RefreshError::from_aws("DescribeExecution", e)))?;
    // Which state was entered when, and what the clone's polls said of a snapshot being
    // copied in (the history's data holds no secret: the leak checks read it too).
    let events = Executions::new(sfn.clone()).history(arn, true).await?;
    let mut copy = None;
    let mut steps = Vec::new();
    for event in &events {
        if let Some(exited) = event.state_exited_event_details()
            && matches!(exited.name(), "Restore" | "CheckClone")
        {
            copy = exited.output().and_then(copy_progress);
            // A Restore that asked for the copy (or restored from it) is in that phase by
            // what it did, not by what came before it.
            if let Some(step) = steps.last_mut().filter(|s: &&mut view::Step| s.state == "Restore") {
                step.copy = copy.clone();
            }
        }
        let (Some(at), Some(entered)) =
            (refresh_core::clock::from_aws(event.timestamp()), event.state_entered_event_details())
        else {
            continue;
        };
        steps.push(view::Step { state: entered.name().to_string(), at, copy: copy.clone() });
    }
    let ended = described.stop_date().and_then(refresh_core::clock::from_aws);
    Ok(view::build(
        &steps,
        described.status().as_str(),
        described.error().map(str::to_string),
        described.cause().map(str::to_string),
        ended,
    ))
}

/// The copy's status and progress while the clone waits for it (`rdsStatus` `copy:...`).
fn copy_progress(output: &str) -> Option<String> {
    let state: serde_json::Value = serde_json::from_str(output).ok()?;
    let status = state.pointer("/clone/rdsStatus")?.as_str()?.strip_prefix("copy:")?;
    Some(match state.pointer("/clone/copy/percent").and_then(serde_json::Value::as_i64) {
        Some(percent) => format!("{status} {percent}%"),
        None => status.to_string(),
    })
}

/// Shows the run until it ends: one that did not succeed is a failure (exit 1).
pub(crate) async fn follow(sfn: &StepFunctions, arn: &str, json: bool, colour: bool) -> Result<(), Failure> {
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
    if final_view.status == "SUCCEEDED" { Ok(()) } else { Err(Failure::failed(String::new())) }
}
