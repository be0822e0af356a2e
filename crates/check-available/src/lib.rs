//! `check-available`: one poll of the clone. Returns the clone with a status the Choice
//! state routes on: `pending`, `ready` (with its endpoint), `failed` (with the RDS
//! status) or `timed_out` past the restore deadline. Adds the Aurora writer instance once
//! the cluster allows it.

use refresh_core::RefreshError;
use refresh_core::rds::Rds;
use refresh_core::request::RefreshRequest;
use refresh_core::run::{Clone, Execution};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub rds: Rds,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: Value,
    pub clone: Clone,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Clone, RefreshError> {
    let request = RefreshRequest::from_document(&input.request)?;
    let next = deps.rds.check(&input.clone, &request.clone, OffsetDateTime::now_utc()).await?;
    info!(clone = %next.identifier, status = ?next.status, rds_status = %next.rds_status, checks = next.checks, "clone checked");
    Ok(next)
}
