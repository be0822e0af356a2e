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
use refresh_core::dblab::refresh::{adopted, triggered};
use refresh_core::dblab::status::InstanceStatus;
use refresh_core::dblab::trigger::{self, Found};
use refresh_core::dblab::{self, Api, DblabClient, Refresh, SourceConnection, Trigger};
use refresh_core::history::History;
use refresh_core::poll::PollStatus;
use refresh_core::request::RefreshRequest;
use refresh_core::run::{CloneInstance, EngineLock, Execution};
use refresh_core::secrets::{Secret, SecretReader};
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
    let earlier = deps.history.config_post(&request.target, execution).await?;
    let found = Trigger {
        spec: &request.dblab,
        before: &before,
        engine: identity,
        clock: client.clock(),
        dump_parallel_jobs: config.dump_jobs_in_effect(),
        release_after_dump: plan.release_after_dump,
        pool: before.refreshing_pool(),
        ignored_errors,
        unproven,
        locked_instance,
    };
    match trigger::found(&before.retrieving, found.pool.is_some(), config_is_ours, earlier.posted_by) {
        Found::OursUnderWay => {
            warn!(status = %before.retrieving.status, "the engine runs a refresh from this run's clone, built after its recorded config change: adopting it");
            return Ok(adopted(OffsetDateTime::now_utc(), found));
        }
        Found::Busy => {
            return Err(RefreshError::DblabBusy {
                status: before.retrieving.status.to_string(),
                detail: trigger::busy_detail(config_is_ours, earlier.posting_at, earlier.posted_by),
            });
        }
        Found::Free => {}
    }
    let run = Run { deps, request, execution, client: &client, api, connection: &connection };
    let posted = point_at_clone(&run, &before, &config, &password, plan.jobs).await?;
    let trigger = Trigger {
        clock: client.clock(),
        dump_parallel_jobs: posted.dump_jobs,
        pool: Some(posted.pool.clone()),
        ..found
    };
    start(&run, trigger, &posted).await
}

/// What one attempt works with once the engine is known.
struct Run<'a> {
    deps: &'a Deps,
    request: &'a RefreshRequest,
    execution: &'a str,
    client: &'a DblabClient,
    api: Api,
    connection: &'a SourceConnection,
}

/// The engine's config change, as answered.
struct Posted {
    /// When the answer came (ours, monotonic): the trigger waits the proof's gap from it.
    answered: Instant,
    at: OffsetDateTime,
    /// The latest the engine's clock read at the answer, as recorded for a retry.
    by: OffsetDateTime,
    /// The dump jobs the engine will use: the file's value as it now is.
    dump_jobs: u32,
    /// The pool the refresh takes, read after the change.
    pool: String,
}

/// Points the engine's dump at the clone, once the engine and the clone pass the last
/// checks, and proves from the whole `server.yml` that it took; when the change was asked
/// and answered is recorded durably on either side of it.
async fn point_at_clone(
    run: &Run<'_>,
    before: &InstanceStatus,
    config: &dblab::EngineConfig,
    password: &Secret,
    jobs: u32,
) -> Result<Posted, RefreshError> {
    let Run { deps, request, execution, client, api, connection } = *run;
    engine::config_modifiable(before)?;
    engine::no_timetable(config)?;
    engine::snapshot_job(config, api)?;
    // Checked again: a clone opened on the engine since the preflight would make it refuse.
    before.free_pool()?;
    if config.immediate_restore() {
        // With deleteAfterDump the preflight refused this; the engine's config changed since.
        info!(
            delete_after_dump = request.clone.delete_after_dump,
            "immediateRestore is on: dumping with one job, as the engine requires, and the clone stays to the end"
        );
    }
    check_source(client, config, api, connection, password).await?;
    let connection_string = dblab::connection_string_for(api, config.connection_string().as_deref(), connection)
        .map_err(RefreshError::DblabMisconfigured)?;
    let patch =
        dblab::config_patch(connection, password, &connection_string, jobs, request.dblab.restore_parallel_jobs);
    // Durably, before the change: what a retry needs to tell this run's refresh from another.
    deps.history.config_posting(&request.target, execution, client.clock().earliest(OffsetDateTime::now_utc())).await?;
    client.update_config(&patch).await?;
    // The engine answers once it has reloaded: a refresh built after this reads the clone.
    let answered = Instant::now();
    let at = OffsetDateTime::now_utc();
    // The engine's own stamp of that answer (its Date, to the second), free of any
    // conversion's error; without one, the latest our clock allows.
    let posted_clock = client.clock();
    let by = posted_clock.answered.unwrap_or_else(|| posted_clock.latest(at));
    deps.history.config_posted(&request.target, execution, by).await?;
    let applied = verify_source(client, api, connection, jobs, request.dblab.restore_parallel_jobs).await?;
    // The POST reloaded the engine's pool list (pool_manager.go `ReloadPools`), which
    // reorders it: the pool the refresh takes is read from the list as it is now.
    let pool = engine::logical_engine(client).await?.status.free_pool()?;
    // A file without the key keeps the engine's default, whatever was sent.
    let dump_jobs = applied.dump_jobs_in_effect();
    if dump_jobs != jobs {
        warn!(
            sent = jobs,
            used = dump_jobs,
            "server.yml has no dump parallelJobs to set: the engine dumps with its default"
        );
    }
    info!(host = %connection.host, port = connection.port, dump_jobs, %pool, connection_string = !connection_string.is_empty(), "the engine's dump source is the clone");
    Ok(Posted { answered, at, by, dump_jobs, pool })
}

/// Triggers the refresh, long enough after the config change's answer that the refresh it
/// starts is stamped past the proof's gap (what a retry whose answer was lost needs to
/// prove it this run's). A refusal may hide this run's refresh, started by the engine on
/// the change itself: `trigger::after_refusal` tells.
async fn start(run: &Run<'_>, trigger: Trigger<'_>, posted: &Posted) -> Result<Refresh, RefreshError> {
    tokio::time::sleep(trigger::PROOF_GAP.unsigned_abs().saturating_sub(posted.answered.elapsed())).await;
    let triggered_at = OffsetDateTime::now_utc();
    let Err(err) = run.client.full_refresh().await else {
        let clock = run.client.clock();
        info!(engine_clock = %clock.describe(), "full refresh accepted");
        return Ok(triggered(triggered_at, Trigger { clock, ..trigger }));
    };
    let RefreshError::DblabRejected { .. } = err else { return Err(err) };
    let now = trigger::after_refusal(run.client, err, run.api, run.connection, posted.by, posted.at).await?;
    Ok(adopted(OffsetDateTime::now_utc(), Trigger { before: &now, ..trigger }))
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
    password: &Secret,
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
