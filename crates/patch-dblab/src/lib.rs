//! `patch-dblab`: points the engine's logical dump at the clone, proves from the engine's
//! whole `server.yml` that the dump can read nothing else, and starts the refresh.
//! Secrets are read here and go only to the engine; the output carries none.
//!
//! Safe to retry: when the engine already runs, or has run since the clone existed, a
//! refresh whose source is this run's clone (the answer to an earlier attempt was lost),
//! that refresh is adopted, not refused or started twice.

use refresh_core::RefreshError;
use refresh_core::dblab::engine::{self, EngineIdentity};
use refresh_core::dblab::{self, Api, BUSY_STATUSES, DblabClient, RUNNING_STATUSES, SourceConnection};
use refresh_core::request::RefreshRequest;
use refresh_core::run::{CloneInstance, Execution, PollStatus, Refresh};
use refresh_core::secrets::SecretReader;
use refresh_core::watch::Watch;
use serde::Deserialize;
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
    pub request: RefreshRequest,
    pub clone: CloneInstance,
}

pub async fn handle(deps: &Deps, input: Input, budget: Watch) -> Result<Refresh, RefreshError> {
    let request = &input.request;
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
    let client = deps.dblab.connect(&deps.secrets, &request.dblab).await?.within(budget.deadline());
    let password = deps.secrets.read(&request.source.password_secret_arn, "password").await?;
    let connection = SourceConnection {
        host: endpoint.address.clone(),
        port: endpoint.port,
        dbname: request.source.db_name.clone(),
        username: request.source.username.clone(),
        instance_id: clone.instance_id().to_string(),
    };

    // The engine may have changed since the preflight, while the clone was being made.
    // Busy is decided below: a busy engine may be running this run's own refresh.
    let engine::EngineState { version, status: before } = engine::logical_engine(&client).await?;
    let (api, config) = engine::engine_config(&client).await?;
    let identity = EngineIdentity { version, api };
    info!(engine = %identity.describe(), "DBLab Engine identified");
    let retrieving = before.retrieving.clone();
    // Only an attempt of this run can have pointed the engine at this run's clone (its
    // host is unique to the execution): a refresh from it is this run's refresh, whose
    // trigger's answer was lost. It is running, or it already ended after the clone existed.
    let ours = config.effective_source(api).is_ok_and(|s| s.is(&connection));
    let since_clone = clone.ready_at.unwrap_or(clone.requested_at);
    let running = RUNNING_STATUSES.contains(&retrieving.status.as_str());
    if ours && (running || dblab::progress::started_after(retrieving.last_refresh(), since_clone)) {
        warn!(status = %retrieving.status, "the engine already refreshed from this run's clone: adopting that refresh");
        let jobs = config.dump_parallel_jobs().unwrap_or(1);
        let release_after_dump = request.clone.delete_after_dump && !config.immediate_restore();
        let now = OffsetDateTime::now_utc();
        return Ok(dblab::progress::adopted(now, &request.dblab, &retrieving, identity, jobs, release_after_dump));
    }
    if BUSY_STATUSES.contains(&retrieving.status.as_str()) {
        return Err(RefreshError::DblabBusy { status: retrieving.status });
    }
    engine::config_modifiable(&before)?;
    engine::no_timetable(&config)?;

    let immediate_restore = config.immediate_restore();
    let jobs = if immediate_restore {
        info!("immediateRestore is on: dumping with one job, as the engine requires");
        1
    } else {
        dblab::dump_parallel_jobs(&clone.instance_class)
    };
    let release_after_dump = request.clone.delete_after_dump && !immediate_restore;
    if request.clone.delete_after_dump && immediate_restore {
        // The preflight refuses this; the engine's config changed since.
        warn!("immediateRestore is on: the end of the dump cannot be told, so the clone stays to the end");
    }
    let connection_string = dblab::connection_string_for(api, config.connection_string().as_deref(), &connection)
        .map_err(RefreshError::DblabMisconfigured)?;
    // The engine may echo what it was sent; nothing it says may carry the password on.
    let hide = |e: RefreshError| e.redact(password.expose());
    let patch =
        dblab::config_patch(&connection, &password, &connection_string, jobs, request.dblab.restore_parallel_jobs);
    client.update_config(&patch).await.map_err(hide)?;
    verify_source(&client, api, &connection, jobs, request.dblab.restore_parallel_jobs).await.map_err(hide)?;
    info!(host = %connection.host, port = connection.port, dump_jobs = jobs, connection_string = !connection_string.is_empty(), "the engine's dump source is the clone");

    let previous_last_refresh = retrieving.last_refresh();
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
    info!("full refresh accepted");
    Ok(dblab::progress::triggered(triggered_at, &request.dblab, &retrieving, identity, jobs, release_after_dump))
}

/// Re-reads the whole `server.yml`: the next dump must connect to the clone and nowhere
/// else, whatever the `/admin/config` projection says.
async fn verify_source(
    client: &DblabClient,
    api: Api,
    connection: &SourceConnection,
    dump_jobs: u32,
    restore_jobs: Option<u32>,
) -> Result<(), RefreshError> {
    let applied = client.config_file().await?;
    let mismatches = dblab::mismatches(&applied, api, connection, dump_jobs, restore_jobs);
    if mismatches.is_empty() { Ok(()) } else { Err(RefreshError::DblabConfigNotApplied(mismatches.join("; "))) }
}
