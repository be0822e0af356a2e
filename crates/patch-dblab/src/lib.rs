//! `patch-dblab`: points the engine's logical dump at the clone, proves from the engine's
//! whole `server.yml` that the dump can read nothing else, and starts the refresh.
//! Secrets are read here and go only to the engine; the output carries none.
//!
//! The decisions are `refresh_core::dblab::trigger`'s. Safe to retry: each attempt records
//! durably when it posts the engine's config (before, and once answered), and a retry that
//! finds the engine refreshing from this run's clone adopts that refresh only if the
//! engine built it after that recorded answer and shows its pool; one over already is
//! started again. A refresh nothing proves this run's is never adopted: its jobs may read
//! whatever source was configured before. Nothing is changed on the engine unless the run
//! still holds its target's and its engine's locks (a redriven execution after its
//! clean-up changes nothing).

use refresh_core::RefreshError;
use refresh_core::dblab::engine::{self, EngineIdentity};
use refresh_core::dblab::progress::Trigger;
use refresh_core::dblab::trigger::{self, Found};
use refresh_core::dblab::{self, Api, BUSY_STATUSES, DblabClient, SourceConnection};
use refresh_core::history::{ConfigPost, History};
use refresh_core::request::RefreshRequest;
use refresh_core::run::{CloneInstance, EngineLock, Execution, PollStatus, Refresh};
use refresh_core::secrets::SecretReader;
use refresh_core::watch::Watch;
use serde::Deserialize;
use std::time::Instant;
use time::OffsetDateTime;
use tracing::{info, warn};

pub struct Deps {
    pub secrets: SecretReader,
    pub dblab: dblab::Connector,
    /// The engines the stack may drive (`DblabEngines`).
    pub engines: dblab::EngineList,
    /// The run's locks, and when it changed the engine's config.
    pub history: History,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: RefreshRequest,
    pub clone: CloneInstance,
    /// The run's engine lock: the engine answering must be the one it holds. Absent only
    /// for an execution started by an earlier state machine (deployed mid-run).
    #[serde(default)]
    pub engine_lock: Option<EngineLock>,
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
    // The password goes only to an engine the stack lists.
    let engine = deps.engines.resolve(request)?;
    // A redriven execution whose run was cleaned up (or whose lock was taken over after it
    // expired) neither changes the engine nor adopts what it runs.
    let execution = input.execution.name.as_str();
    let mut locks = vec![request.target.as_str()];
    locks.extend(input.engine_lock.as_ref().map(|l| l.key.as_str()));
    deps.history.still_holds(&locks, execution, OffsetDateTime::now_utc()).await?;
    let password = deps.secrets.read(&request.source.password_secret_arn, "password").await?;
    // The engine may echo what it was sent: nothing it says carries the password on.
    let client =
        deps.dblab.connect(&deps.secrets, engine, &request.dblab).await?.within(budget.deadline()).hiding(&password);
    let connection = SourceConnection {
        host: endpoint.address.clone(),
        port: endpoint.port,
        dbname: request.source.db_name.clone(),
        username: request.source.username.clone(),
        instance_id: clone.instance_id().to_string(),
    };

    // The engine may have changed since the preflight, while the clone was being made.
    // Busy is decided below: a busy engine may be running this run's own refresh.
    let engine::EngineState { version, status: before, instance_id } = engine::logical_engine(&client).await?;
    let locked_instance = input.engine_lock.as_ref().and_then(|lock| lock.instance_id.clone());
    engine::same_engine(locked_instance.as_deref(), instance_id.as_deref(), client.endpoint())?;
    let (api, config) = engine::engine_config(&client).await?;
    let identity = EngineIdentity { version, api };
    info!(engine = %identity.describe(), "DBLab Engine identified");
    let ignored_errors = engine::ignored_errors_allowed(&config, request.dblab.allow_ignored_errors)?;
    let unproven = engine::lvm_allowed(&before, request.dblab.allow_lvm)?;
    let config_is_ours = config.effective_source(api).is_ok_and(|s| s.is(&connection));
    let plan = trigger::dump_plan(&clone.instance_class, config.immediate_restore(), request.clone.delete_after_dump);
    let clock = client.clock();
    let earlier = deps.history.config_post(&request.target, execution).await?;
    match trigger::found(&before.retrieving, before.refreshing_pool().is_some(), config_is_ours, earlier.posted_by) {
        Found::OursUnderWay => {
            warn!(status = %before.retrieving.status, "the engine runs a refresh from this run's clone, built after its recorded config change: adopting it");
            let trigger = Trigger {
                spec: &request.dblab,
                before: &before,
                engine: identity,
                clock,
                dump_parallel_jobs: config.dump_jobs_in_effect(),
                release_after_dump: plan.release_after_dump,
                pool: before.refreshing_pool(),
                ignored_errors,
                unproven,
                locked_instance: locked_instance.clone(),
            };
            return Ok(dblab::progress::adopted(OffsetDateTime::now_utc(), trigger));
        }
        Found::Busy => {
            let detail = match (config_is_ours, earlier) {
                (true, ConfigPost { posted_by: None, posting_at: Some(at) }) => format!(
                    "; an earlier attempt of this run posted the engine's config at about {} and its answer never came \
                     back: nothing proves the refresh under way was built after that change, so it is not taken as \
                     this run's",
                    refresh_core::clock::rfc3339(at)
                ),
                (true, ConfigPost { posted_by: Some(by), .. }) => format!(
                    "; the refresh under way cannot be proven this run's: it must have been built after this run's \
                     config change was answered ({}, engine clock) and the engine must show its pool",
                    refresh_core::clock::rfc3339(by)
                ),
                _ => String::new(),
            };
            return Err(RefreshError::DblabBusy { status: before.retrieving.status.clone(), detail });
        }
        Found::Free => {}
    }
    engine::config_modifiable(&before)?;
    engine::no_timetable(&config)?;
    engine::snapshot_job(&config, api)?;
    // Checked again: a clone opened on the engine since the preflight would make it refuse.
    engine::free_pool(&before)?;
    if config.immediate_restore() {
        // With deleteAfterDump the preflight refused this; the engine's config changed since.
        info!(
            delete_after_dump = request.clone.delete_after_dump,
            "immediateRestore is on: dumping with one job, as the engine requires, and the clone stays to the end"
        );
    }
    check_source(&client, &config, api, &connection, &password).await?;
    let jobs = plan.jobs;
    let connection_string = dblab::connection_string_for(api, config.connection_string().as_deref(), &connection)
        .map_err(RefreshError::DblabMisconfigured)?;
    let patch =
        dblab::config_patch(&connection, &password, &connection_string, jobs, request.dblab.restore_parallel_jobs);
    // Durably, before the change: what a retry needs to tell this run's refresh from another.
    deps.history.config_posting(&request.target, execution, client.clock().earliest(OffsetDateTime::now_utc())).await?;
    client.update_config(&patch).await?;
    // The engine answers once it has reloaded: a refresh built after this reads the clone.
    let answered = Instant::now();
    let config_posted_at = OffsetDateTime::now_utc();
    // The engine's own stamp of that answer (its Date, to the second), free of any
    // conversion's error; without one, the latest our clock allows.
    let posted_clock = client.clock();
    let posted_by = posted_clock.answered.unwrap_or_else(|| posted_clock.latest(config_posted_at));
    deps.history.config_posted(&request.target, execution, posted_by).await?;
    let applied = verify_source(&client, api, &connection, jobs, request.dblab.restore_parallel_jobs).await?;
    // The POST reloaded the engine's pool list (pool_manager.go `ReloadPools`), which
    // reorders it: the pool the refresh takes is read from the list as it is now.
    let pool = engine::free_pool(&engine::logical_engine(&client).await?.status)?;
    // A file without the key keeps the engine's default, whatever was sent.
    let jobs_used = applied.dump_jobs_in_effect();
    if jobs_used != jobs {
        warn!(
            sent = jobs,
            used = jobs_used,
            "server.yml has no dump parallelJobs to set: the engine dumps with its default"
        );
    }
    info!(host = %connection.host, port = connection.port, dump_jobs = jobs_used, %pool, connection_string = !connection_string.is_empty(), "the engine's dump source is the clone");

    let trigger = Trigger {
        spec: &request.dblab,
        before: &before,
        engine: identity,
        clock: client.clock(),
        dump_parallel_jobs: jobs_used,
        release_after_dump: plan.release_after_dump,
        pool: Some(pool),
        ignored_errors,
        unproven,
        locked_instance: locked_instance.clone(),
    };
    // Long enough after the answer that the refresh this trigger starts is stamped past the
    // proof's gap: what a retry whose answer was lost needs to prove it this run's.
    tokio::time::sleep(trigger::PROOF_GAP.unsigned_abs().saturating_sub(answered.elapsed())).await;
    let triggered_at = OffsetDateTime::now_utc();
    let Err(err) = client.full_refresh().await else {
        let clock = client.clock();
        info!(engine_clock = %clock.describe(), "full refresh accepted");
        return Ok(dblab::progress::triggered(triggered_at, Trigger { clock, ..trigger }));
    };
    let RefreshError::DblabRejected { .. } = err else { return Err(err) };
    // Refused: someone else's refresh may have started since the status was read, its jobs
    // built with the source configured before (often production), or a clone was opened.
    let now = client.instance_status().await?;
    let status = now.retrieving.status.clone();
    if !BUSY_STATUSES.contains(&status.as_str()) {
        engine::free_pool(&now)?;
        return Err(err);
    }
    let last_refresh = now.retrieving.last_refresh().to_string();
    let ours_now = client.config_file().await?.effective_source(api).is_ok_and(|s| s.is(&connection));
    if trigger::is_ours(&last_refresh, now.refreshing_pool().is_some(), ours_now, Some(posted_by)) {
        // Only a config change on a `pending` engine starts a refresh by itself: built
        // after this run's change, it reads this run's clone.
        warn!(%status, %last_refresh, "the engine started the refresh on the config change; following it");
        return Ok(dblab::progress::adopted(OffsetDateTime::now_utc(), Trigger { before: &now, ..trigger }));
    }
    Err(RefreshError::DblabBusy {
        status,
        detail: format!(
            "; a refresh this run did not start is running (lastRefresh {}, this run changed the engine's config at \
             {}): its jobs may have been built with the source configured before, so it is not taken as this run's \
             refresh; run again once it is over",
            if last_refresh.is_empty() { "null".to_string() } else { last_refresh },
            refresh_core::clock::rfc3339(config_posted_at)
        ),
    })
}

/// The engine's own check that it can reach and read the clone, before anything of the
/// engine changes: a bad clone, password or extension then touches no pool. An `rdsIam`
/// source signs in with IAM, not the password: the check would test another way in, so it
/// is left to the dump.
async fn check_source(
    client: &DblabClient,
    config: &dblab::EngineConfig,
    api: Api,
    connection: &SourceConnection,
    password: &refresh_core::secrets::Secret,
) -> Result<(), RefreshError> {
    if config.effective_source(api).is_ok_and(|s| s.source_type == "rdsIam") {
        info!("the engine signs in to the source with IAM: its password check of the clone is skipped");
        return Ok(());
    }
    let check = client.test_db_source(connection, password, &config.dump_databases()).await?;
    match engine::source_readable(&check)? {
        Some(notice) => warn!(%notice, "the engine's check of the clone passed with a notice"),
        None => info!(db_version = ?check.db_version, "the engine reaches and reads the clone"),
    }
    Ok(())
}

/// Re-reads the whole `server.yml`: the next dump must connect to the clone and nowhere
/// else, whatever the `/admin/config` projection says.
async fn verify_source(
    client: &DblabClient,
    api: Api,
    connection: &SourceConnection,
    dump_jobs: u32,
    restore_jobs: Option<u32>,
) -> Result<dblab::EngineConfig, RefreshError> {
    let applied = client.config_file().await?;
    let mismatches = dblab::mismatches(&applied, api, connection, dump_jobs, restore_jobs);
    if mismatches.is_empty() { Ok(applied) } else { Err(RefreshError::DblabConfigNotApplied(mismatches.join("; "))) }
}
