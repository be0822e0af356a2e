//! `check-available`: watches the clone (one look per poll interval, for as long as the
//! invocation may) and returns it as soon as its status is no longer `pending`, with the
//! status the Choice state routes on: `pending`, `ready` (with its endpoint), `failed` (with the RDS
//! status) or `timed_out` past the restore deadline; while a shared snapshot is still being
//! copied in, it watches the copy, and `copied` sends the run back to `restore`. Adds the Aurora writer instance once
//! the cluster allows it, and only while the run still holds its target's lock.

use refresh_core::RefreshError;
use refresh_core::history::History;
use refresh_core::poll::PollStatus;
use refresh_core::rds::Rds;
use refresh_core::request::RefreshRequest;
use refresh_core::run::{CloneInstance, Execution};
use refresh_core::watch::Watch;
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub rds: Rds,
    /// Where the run's locks are: it must still hold its target's to add a writer.
    pub history: History,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: RefreshRequest,
    pub clone: CloneInstance,
}

pub async fn handle(deps: &Deps, input: Input, watch: Watch) -> Result<CloneInstance, RefreshError> {
    let request = &input.request;
    // A look may add the Aurora writer: a redriven execution whose run was cleaned up (its
    // cluster left behind) adds nothing.
    deps.history.still_holds(&[&request.target], &input.execution.name, OffsetDateTime::now_utc()).await?;
    let look = |prev: CloneInstance| {
        let spec = &request.clone;
        async move {
            let next = deps.rds.check(&prev, spec, OffsetDateTime::now_utc()).await?;
            info!(clone = %next.identifier, status = ?next.status, rds_status = %next.rds_status, checks = next.checks, "clone checked");
            Ok(next)
        }
    };
    // Each call may take its whole bound under throttling: a look that could outlast the
    // invocation is not started.
    let look_time = refresh_core::rds::LONGEST_CHECK;
    watch.run(input.clone, |_| request.clone.poll_interval, look_time, look, |c| c.status != PollStatus::Pending).await
}
