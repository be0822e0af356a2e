//! `patch-dblab`: points the engine's logical dump at the clone and starts the refresh.
//! Secrets are read here and go only to the engine; the output carries none.

use refresh_core::RefreshError;
use refresh_core::dblab::{self, BUSY_STATUSES, SourceConnection};
use refresh_core::rds::dump_parallel_jobs;
use refresh_core::request::RefreshRequest;
use refresh_core::run::{Clone, Execution, PollStatus, Refresh};
use refresh_core::secrets::SecretReader;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

pub struct Deps {
    pub secrets: SecretReader,
    pub dblab: dblab::Connector,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: Value,
    pub clone: Clone,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Refresh, RefreshError> {
    let request = RefreshRequest::from_document(&input.request)?;
    let clone = &input.clone;
    let endpoint = match (&clone.status, &clone.endpoint) {
        (PollStatus::Ready, Some(endpoint)) => endpoint,
        _ => {
            return Err(RefreshError::InvalidInput(format!(
                "clone {} is not ready (status {:?})",
                clone.identifier, clone.status
            )));
        }
    };
    let client = deps.dblab.connect(&deps.secrets, &request.dblab).await?;
    let password = deps.secrets.read(&request.source.password_secret_arn, "password").await?;

    // The engine may have changed since the preflight, while the clone was being made.
    let before = client.status().await?;
    if before.mode != "logical" {
        return Err(RefreshError::DblabNotLogical { mode: before.mode });
    }
    if BUSY_STATUSES.contains(&before.status.as_str()) {
        return Err(RefreshError::DblabBusy { status: before.status });
    }
    let previous_last_refresh = before.last_refresh().to_string();

    let config = client.config().await?;
    let immediate_restore = dblab::immediate_restore_enabled(&config);
    let jobs = if immediate_restore {
        info!("immediateRestore is on: dumping with one job, as the engine requires");
        1
    } else {
        dump_parallel_jobs(&clone.instance_class)
    };
    let release_after_dump = request.clone.delete_after_dump && !immediate_restore;
    if request.clone.delete_after_dump && immediate_restore {
        // The preflight refuses this; the engine's config changed since.
        warn!("immediateRestore is on: the end of the dump cannot be told, so the clone stays to the end");
    }
    let connection = SourceConnection {
        host: endpoint.address.clone(),
        port: endpoint.port,
        dbname: request.source.db_name.clone(),
        username: request.source.username.clone(),
        instance_id: clone.instance_id().to_string(),
    };
    // The engine may echo what it was sent; nothing it says may carry the password on.
    let hide = |e: RefreshError| e.redact(password.expose());
    client
        .update_config(&dblab::config_patch(&connection, &password, jobs, request.dblab.restore_parallel_jobs))
        .await
        .map_err(hide)?;
    let applied = client.config().await.map_err(hide)?;
    let mismatches = dblab::config_mismatches(&applied, &connection, request.dblab.restore_parallel_jobs);
    if !mismatches.is_empty() {
        return Err(RefreshError::DblabConfigNotApplied(mismatches.join("; ")));
    }
    info!(host = %connection.host, port = connection.port, dump_jobs = jobs, "engine now points at the clone");

    let triggered_at = OffsetDateTime::now_utc();
    if let Err(err) = client.full_refresh().await.map_err(hide) {
        // A config update on a `pending` engine starts a refresh by itself; that refresh
        // already uses the new source, so it is this run's refresh.
        let RefreshError::DblabRejected { .. } = err else { return Err(err) };
        let now = client.status().await?;
        if BUSY_STATUSES.contains(&now.status.as_str()) && now.last_refresh() != previous_last_refresh {
            warn!(status = %now.status, "refresh already started by the config update; following it");
        } else {
            return Err(err);
        }
    }
    info!("full refresh started");
    Ok(Refresh {
        previous_last_refresh: previous_last_refresh.clone(),
        triggered_at,
        deadline: triggered_at + request.dblab.timeout,
        dump_parallel_jobs: jobs,
        status: PollStatus::Pending,
        retrieval_status: before.status,
        last_refresh: previous_last_refresh,
        seen_start: false,
        phase: None,
        alert: None,
        polls: 0,
        finished_at: None,
        release_after_dump,
        restore_looks: 0,
        dump_over: false,
        release_clone: false,
    })
}
