//! A refresh's life in the emulated engine: accepted, maybe never started, then either the
//! jobs' statuses in timed phases (with the faults `Settings` asks for), or the real jobs
//! (`real`) on real data.

use std::sync::MutexGuard;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use crate::engine::{DumpSource, Engine, Shared, url_encoded};
use crate::server_yml;
use crate::settings::{Outcome, RealData, Settings, StartFailure};

/// `FullRefresh` in the background: the failures before the jobs are built leave the
/// status alone; once built, the status and `lastRefresh` move. `foreign` marks a refresh
/// someone else started.
pub(crate) fn start_refresh(shared: &Shared, engine: &mut Engine, foreign: bool) {
    match engine.settings.start_failure {
        StartFailure::Silent => return engine.not_started("failed to clean up the control containers"),
        StartFailure::Skipped => return engine.skipped("Pool to perform full refresh not found. Skip refreshing"),
        StartFailure::None => {}
    }
    let Some(pool) = engine.pool_to_refresh() else {
        return engine.skipped("Pool to perform full refresh not found. Skip refreshing");
    };
    run_jobs(shared, engine, pool, foreign);
}

/// A new engine process (cmd/database-lab/main.go): what lived in memory is gone, the pool
/// list is rebuilt from what is on disk (`ReloadPools`), then retrieval.go `Run`: nothing
/// more with `skipStartRefresh`; else the pool `getNextPoolToDataRetrieving` gives (the
/// first pool if it is empty, else the last one without clones) is refreshed from the
/// source `server.yml` names, whatever it is now; with none and the first pool active,
/// `finished`; with none at all, `failed`.
pub(crate) fn start_process(shared: &Shared, engine: &mut Engine) {
    engine.restarted("inactive");
    if server_yml::truthy(engine.config.pointer("/retrieval/refresh/skipStartRefresh")) {
        engine.log.push(
            "Continue without performing initial data refresh because the `skipStartRefresh` option is enabled".into(),
        );
        return;
    }
    let first = engine.pools.first().map(|p| (p.name.clone(), p.status == "empty"));
    let pool = match first {
        Some((name, true)) => Some(name),
        Some(_) => engine.pool_to_refresh(),
        None => None,
    };
    match pool {
        Some(pool) => {
            engine.log.push(format!("Pool to perform data retrieving: {pool}"));
            run_jobs(shared, engine, pool, false);
        }
        None if engine.pools.first().is_some_and(|p| p.status == "active") => {
            engine.status = "finished".into();
            engine.log.push(
                "Continue without performing a full refresh: pool to refresh not found, but the current pool is active"
                    .into(),
            );
        }
        None => engine.failed_alert("Pool to perform data refresh not found"),
    }
}

/// The jobs of a refresh of `pool`, from the source the config names now.
fn run_jobs(shared: &Shared, engine: &mut Engine, pool: String, foreign: bool) {
    let jobs = match build_jobs(engine, pool, foreign) {
        Ok(jobs) => jobs,
        Err(why) => return engine.not_started(&why),
    };
    let run = start_jobs(engine, jobs);
    if let Some(why) = &run.jobs.run_error {
        return engine.fail(why);
    }
    match engine.settings.data.clone() {
        Some(data) => run_real_jobs(shared, engine, data, run),
        None => play_jobs(shared, engine, run),
    }
}

/// The jobs as built from the config.
struct Jobs {
    source: DumpSource,
    /// Why the dump cannot connect once it runs.
    run_error: Option<String>,
    ignore_restore_errors: bool,
}

/// A refresh's jobs once started.
struct Run {
    jobs: Jobs,
    /// A newer refresh (or a restart) bumps the engine's generation past it: this one stops.
    generation: u64,
    /// When the dump began: the restored data's time.
    dumped_at: OffsetDateTime,
}

/// retrieval.go `Retrieval.buildJobs`: the dump job from the config as it is now (dump.go
/// `NewDumpJob`: `validate`, `setDefaults`, `setupDumper`); an error here means the refresh
/// never starts.
fn build_jobs(engine: &Engine, pool: String, foreign: bool) -> Result<Jobs, String> {
    let jobs = server_yml::text_at(&engine.config, "/retrieval/spec/logicalDump/options/parallelJobs");
    let immediate =
        server_yml::truthy(engine.config.pointer("/retrieval/spec/logicalDump/options/immediateRestore/enabled"));
    if immediate && jobs.parse::<u32>().is_ok_and(|n| n > 1) {
        return Err("failed to build jobs: parallel dump is not supported with immediate restore".into());
    }
    let effective =
        server_yml::effective_source(&engine.config, engine.settings.version, &engine.settings.rds_endpoints);
    if let Some(why) = effective.build_error {
        return Err(why);
    }
    let source = DumpSource {
        host: effective.host,
        port: effective.port,
        dbname: effective.dbname,
        username: effective.username,
        // Unset, the engine dumps with one job.
        parallel_jobs: if jobs.is_empty() { "1".into() } else { jobs },
        connection_string: effective.connection_string,
        rds_instance: effective.rds_instance,
        pool,
        foreign,
    };
    let ignore_restore_errors =
        server_yml::truthy(engine.config.pointer("/retrieval/spec/logicalRestore/options/ignoreErrors"));
    Ok(Jobs { source, run_error: effective.run_error, ignore_restore_errors })
}

/// retrieval.go `Retrieval.RefreshData`: the pool and the engine `refreshing`, `lastRefresh`
/// now, and the dump job runs first.
fn start_jobs(engine: &mut Engine, jobs: Jobs) -> Run {
    engine.generation += 1;
    engine.refreshes_started += 1;
    engine.last_refresh = Some(engine.now_text());
    engine.status = "refreshing".into();
    engine.phase = Some("dump");
    engine.mark("dump");
    if let Some(p) = engine.pools.iter_mut().find(|p| p.name == jobs.source.pool) {
        p.status = "refreshing".into();
    }
    let dumped_at = engine.now();
    engine.dump_sources.push(jobs.source.clone());
    if jobs.source.foreign {
        engine.log.push(format!("full refresh started by another client, dumping from {}", jobs.source.host));
    }
    Run { jobs, generation: engine.generation, dumped_at }
}

/// Real data: pg_dump and pg_restore really run (`real`).
fn run_real_jobs(shared: &Shared, engine: &Engine, data: RealData, run: Run) {
    let job = crate::real::Job {
        data,
        source: run.jobs.source,
        password: engine.password.clone(),
        restore_jobs: server_yml::text_at(&engine.config, "/retrieval/spec/logicalRestore/options/parallelJobs"),
        ignore_restore_errors: run.jobs.ignore_restore_errors,
        restore_ms: engine.settings.restore_ms,
        snapshot_ms: engine.settings.snapshot_ms,
        generation: run.generation,
        dumped_at: run.dumped_at,
    };
    tokio::spawn(crate::real::refresh(shared.clone(), job));
}

/// No real data: the jobs' statuses in timed phases, with the faults `Settings` asks for
/// (those at the dump's start fail it at once).
fn play_jobs(shared: &Shared, engine: &mut Engine, run: Run) {
    let settings = engine.settings.clone();
    if settings.fail_echoing_password {
        let message = password_echoing_error(engine, &run.jobs.source);
        return engine.fail(&message);
    }
    if settings.outcome == Outcome::FailImmediately {
        return engine.fail("pg_dump: error: connection to server failed: could not translate host name");
    }
    tokio::spawn(play_phases(shared.clone(), settings, run));
}

/// pg_dump's connection error naming the DSN, password included, and the options as JSON.
fn password_echoing_error(engine: &Engine, source: &DumpSource) -> String {
    let password = engine.password.clone().unwrap_or_default();
    let dsn = format!(
        "postgres://{}:{}@{}:{}/{}",
        source.username,
        url_encoded(&password),
        source.host,
        source.port,
        source.dbname
    );
    format!(
        "pg_dump: error: connection to server failed for {dsn}; options {}",
        crate::engine::go_json(&json!({"password": password}))
    )
}

/// Each phase: a sleep, then its end, with the fault `settings` asks for, if any.
async fn play_phases(shared: Shared, settings: Settings, run: Run) {
    let sleep = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    sleep(settings.dump_ms).await;
    if !end_dump(&shared, settings.outcome, run.generation) {
        return;
    }
    sleep(settings.restore_ms).await;
    if !end_restore(&shared, settings.outcome, &run) {
        return;
    }
    sleep(20).await;
    if !start_snapshot(&shared, run.generation) {
        return;
    }
    sleep(settings.snapshot_ms).await;
    end_snapshot(&shared, settings.outcome, &run);
}

/// The engine, unless a newer refresh replaced the one of `generation`: a phase of a
/// replaced refresh does nothing.
fn lock_current(shared: &Shared, generation: u64) -> Option<MutexGuard<'_, Engine>> {
    let engine = shared.lock();
    (engine.generation == generation).then_some(engine)
}

/// dump.go `DumpJob.Run` ends: failed, hung, cut by a restart, or done and the restore
/// begins (then true).
fn end_dump(shared: &Shared, outcome: Outcome, generation: u64) -> bool {
    let Some(mut e) = lock_current(shared, generation) else {
        return false;
    };
    // The source is what it is when the dump connects, not when the jobs were built.
    let wrong_password = e.settings.expected_password.as_ref().is_some_and(|want| e.password.as_ref() != Some(want));
    let host = e.dump_sources.last().map(|d| d.host.clone()).unwrap_or_default();
    match outcome {
        Outcome::Hang => {}
        Outcome::FailDump => e.fail("pg_dump: error: query failed: ERROR: permission denied for table accounts"),
        _ if e.settings.dead_sources.contains(&host) => e.fail(&format!(
            "failed to extract the list of databases for dumping: failed to connect to `host={host}`: dial error: \
             connect: connection refused"
        )),
        _ if wrong_password => {
            e.fail("pg_dump: error: connection to server failed: FATAL: password authentication failed")
        }
        Outcome::GoInactive => e.restarted("inactive"),
        Outcome::Restart => e.restarted("finished"),
        Outcome::RestartAndRefresh => {
            e.restarted("inactive");
            e.settings.outcome = Outcome::Succeed;
            start_refresh(shared, &mut e, false);
        }
        _ => {
            e.phase = Some("restore");
            e.mark("restore");
            return true;
        }
    }
    false
}

/// restore.go `RestoreJob.Run` ends (a failure ignored under `ignoreErrors`, `restoreDB`),
/// and with it the refresh jobs: `renewed`. True when a snapshot job follows.
fn end_restore(shared: &Shared, outcome: Outcome, run: &Run) -> bool {
    let Some(mut e) = lock_current(shared, run.generation) else {
        return false;
    };
    if outcome == Outcome::FailRestore {
        let error = "pg_restore: error: could not execute query: ERROR: extension \"postgis\" is not available";
        if !run.jobs.ignore_restore_errors {
            e.fail(error);
            return false;
        }
        e.log.push(format!("restore command failed, ignored (ignoreErrors): {error}"));
    }
    e.restored(&run.jobs.source.pool, run.dumped_at);
    e.renewed();
    server_yml::has_snapshot_job(&e.config)
}

/// retrieval.go `Retrieval.SnapshotData`: `snapshotting` while the snapshot job runs.
fn start_snapshot(shared: &Shared, generation: u64) -> bool {
    let Some(mut e) = lock_current(shared, generation) else {
        return false;
    };
    e.status = "snapshotting".into();
    e.mark("snapshotting");
    true
}

/// The snapshot job ends: failed, or `finished`.
fn end_snapshot(shared: &Shared, outcome: Outcome, run: &Run) {
    let Some(mut e) = lock_current(shared, run.generation) else {
        return;
    };
    if outcome == Outcome::FailSnapshot {
        return e.fail("failed to create a snapshot: zfs: out of space");
    }
    e.finished(&run.jobs.source.pool, run.dumped_at);
}
