//! `history TARGET`: past runs, newest first.

use refresh_core::aws;
use refresh_core::clients::DynamoDb;
use refresh_core::history::History;

use super::target_arg;
use crate::failure::Failure;
use crate::output::{print_json, stamp};
use crate::stack::{Stack, StackArgs};

/// Past refreshes of a target, newest first.
#[derive(clap::Args)]
pub(crate) struct HistoryArgs {
    #[arg(value_parser = target_arg)]
    target: String,
    #[command(flatten)]
    stack: StackArgs,
    /// How many runs, newest first (1 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=1000))]
    limit: i32,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: HistoryArgs) -> Result<(), Failure> {
    let HistoryArgs { target, stack, limit, json } = args;
    let config = aws::config().await;
    let stack = Stack::resolve(stack, &config).await?;
    let table = stack.table()?;
    let rows = History::new(DynamoDb::new(&config), table).recent(&target, limit).await?;
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
            stamp(Some(row.started_at)),
            row.outcome.as_str(),
            stamp(row.data_as_of),
            duration,
        );
    }
    Ok(())
}
