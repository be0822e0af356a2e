//! `cleanup`: the orphan sweep on demand.

use refresh_core::aws;
use refresh_core::clients::{Rds as RdsClient, StepFunctions};
use refresh_core::rds::Rds;
use time::OffsetDateTime;

use crate::failure::Failure;
use crate::output::print_json;

pub async fn cleanup(dry_run: bool, max_age: Option<String>, json: bool) -> Result<(), Failure> {
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
