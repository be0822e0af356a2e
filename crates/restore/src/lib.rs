//! `restore`: creates the temporary clone from the snapshot, tagged as ours. Its name
//! comes from the target and the execution's start time, so a retried invocation finds
//! the clone it already made instead of making a second one. An encrypted snapshot shared
//! from another account is first copied into this account under the same name (RDS
//! restores such a snapshot only from a copy): until the copy is available the clone is
//! returned waiting for it, and the state machine calls again once check-available says
//! `copied`.

use refresh_core::RefreshError;
use refresh_core::history::History;
use refresh_core::naming;
use refresh_core::rds::{ClonePlan, Rds};
use refresh_core::request::RefreshRequest;
use refresh_core::run::{CloneInstance, Execution, RestoreSource};
use refresh_core::tags::{self, Ownership};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Deps {
    pub rds: Rds,
    /// Where the run's locks are: it must still hold its target's before it creates.
    pub history: History,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: RefreshRequest,
    pub snapshot: RestoreSource,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<CloneInstance, RefreshError> {
    let request = &input.request;
    let now = OffsetDateTime::now_utc();
    let name = naming::clone_name(&request.target, input.execution.started_at.unwrap_or(now));
    let delete_after = (now + request.clone.max_age)
        .format(&Rfc3339)
        .map_err(|e| RefreshError::Internal(format!("formatting DeleteAfter: {e}")))?;
    let clone_tags = tags::clone_tags(
        &request.clone.tags,
        &Ownership {
            target: &request.target,
            execution_name: &input.execution.name,
            execution_arn: input.execution.arn.as_deref(),
            delete_after: &delete_after,
        },
    );
    let plan = ClonePlan {
        name,
        spec: &request.clone,
        snapshot: &input.snapshot,
        tags: clone_tags,
        requested_at: now,
        deadline: now + request.clone.restore_timeout,
    };
    // A redriven execution whose run was cleaned up (or whose lock was taken over after it
    // expired) creates nothing.
    deps.history.still_holds(&[&request.target], &input.execution.name, now).await?;
    deps.rds.restore(&plan).await
}
