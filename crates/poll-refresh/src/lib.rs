//! `poll-refresh`: one look at the engine; returns the refresh with a status the Choice
//! state routes on (`pending`, `ready` = done, `failed` with the engine's alert,
//! `timed_out`). The rules are `refresh_core::dblab::advance`.

use refresh_core::RefreshError;
use refresh_core::dblab;
use refresh_core::request::RefreshRequest;
use refresh_core::run::{Execution, Refresh};
use refresh_core::secrets::SecretReader;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

pub struct Deps {
    pub secrets: SecretReader,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: Value,
    pub refresh: Refresh,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Refresh, RefreshError> {
    let request = RefreshRequest::from_document(&input.request)?;
    let client = dblab::connect(&deps.secrets, &request.dblab).await?;
    let mut seen = client.status().await?;
    if seen.status == "refreshing" {
        // Only the retrieval endpoint lists the sessions that tell dump from restore.
        match client.retrieval().await {
            Ok(detail) => seen.activity = detail.activity,
            Err(e) => warn!(error = %e, "activity unavailable; phase unknown"),
        }
    }
    let next = dblab::advance(&input.refresh, &seen, OffsetDateTime::now_utc());
    info!(status = ?next.status, retrieval = %next.retrieval_status, phase = ?next.phase, seen_start = next.seen_start, polls = next.polls, "refresh polled");
    Ok(next)
}
