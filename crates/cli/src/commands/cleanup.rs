//! `cleanup`: the orphan sweep on demand.

use refresh_core::aws;
use refresh_core::clients::{Rds as RdsClient, StepFunctions};
use refresh_core::rds::Rds;
use time::OffsetDateTime;

use crate::failure::Failure;
use crate::output::print_json;

/// The orphan sweep on demand: delete managed clones whose run is confirmed ended.
#[derive(clap::Args)]
pub(crate) struct CleanupArgs {
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only clones older than this (e.g. 12h). A clone whose run is running, or cannot
    /// be checked, is never deleted.
    #[arg(long)]
    max_age: Option<String>,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: CleanupArgs) -> Result<(), Failure> {
    let CleanupArgs { dry_run, max_age, json } = args;
    let max_age = max_age
        .map(|text| refresh_core::duration::parse(&text).map_err(|e| Failure::usage(format!("--max-age {e}"))))
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
        Err(Failure::unreachable(format!("{} clone(s) could not be deleted", report.errors.len())))
    }
}
