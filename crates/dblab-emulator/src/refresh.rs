//! A refresh's life in the emulated engine: accepted, maybe never started, then either the
//! jobs' statuses in timed phases (with the faults `Settings` asks for), or the real jobs
//! (`real`) on real data.

use std::time::Duration;

use serde_json::json;

use crate::engine::{DumpSource, Engine, Shared, url_encoded};
use crate::server_yml;
use crate::settings::{Outcome, StartFailure};

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
    let jobs = server_yml::text_at(&engine.config, "/retrieval/spec/logicalDump/options/parallelJobs");
    let immediate =
        server_yml::truthy(engine.config.pointer("/retrieval/spec/logicalDump/options/immediateRestore/enabled"));
    if immediate && jobs.parse::<u32>().is_ok_and(|n| n > 1) {
        return engine.not_started("failed to build jobs: parallel dump is not supported with immediate restore");
    }
    let effective =
        server_yml::effective_source(&engine.config, engine.settings.version, &engine.settings.rds_endpoints);
    if let Some(why) = &effective.build_error {
        return engine.not_started(why);
    }
    let ignore_restore_errors =
        server_yml::truthy(engine.config.pointer("/retrieval/spec/logicalRestore/options/ignoreErrors"));
    engine.generation += 1;
    engine.refreshes_started += 1;
    engine.last_refresh = Some(engine.now_text());
    engine.status = "refreshing".into();
    engine.phase = Some("dump");
    engine.mark("dump");
    if let Some(p) = engine.pools.iter_mut().find(|p| p.name == pool) {
        p.status = "refreshing".into();
    }
    let dumped_at = engine.now();
    let dump_source = DumpSource {
        host: effective.host,
        port: effective.port,
        dbname: effective.dbname,
        username: effective.username,
        // Unset, the engine dumps with one job.
        parallel_jobs: if jobs.is_empty() { "1".into() } else { jobs },
        connection_string: effective.connection_string,
        rds_instance: effective.rds_instance,
        pool: pool.clone(),
        foreign,
    };
    engine.dump_sources.push(dump_source.clone());
    if foreign {
        engine.log.push(format!("full refresh started by another client, dumping from {}", dump_source.host));
    }

    let generation = engine.generation;
    if let Some(why) = effective.run_error {
        engine.fail(&why);
        return;
    }
    if let Some(data) = engine.settings.data.clone() {
        let job = crate::real::Job {
            data,
            source: dump_source,
            password: engine.password.clone(),
            restore_jobs: server_yml::text_at(&engine.config, "/retrieval/spec/logicalRestore/options/parallelJobs"),
            ignore_restore_errors,
            restore_ms: engine.settings.restore_ms,
            snapshot_ms: engine.settings.snapshot_ms,
            generation,
            dumped_at,
        };
        tokio::spawn(crate::real::refresh(shared.clone(), job));
        return;
    }
    let settings = engine.settings.clone();
    if settings.fail_echoing_password {
        let password = engine.password.clone().unwrap_or_default();
        let dsn = format!(
            "postgres://{}:{}@{}:{}/{}",
            dump_source.username,
            url_encoded(&password),
            dump_source.host,
            dump_source.port,
            dump_source.dbname
        );
        engine.fail(&format!(
            "pg_dump: error: connection to server failed for {dsn}; options {}",
            crate::engine::go_json(&json!({"password": password}))
        ));
        return;
    }
    if settings.outcome == Outcome::FailImmediately {
        engine.fail("pg_dump: error: connection to server failed: could not translate host name");
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        // Each step: sleep, then act only if no newer refresh replaced this one.
        let step = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
        let current = |e: &Engine| e.generation == generation;
        step(settings.dump_ms).await;
        {
            let mut e = shared.lock();
            if !current(&e) {
                return;
            }
            // The source is what it is when the dump connects, not when the jobs were built.
            let wrong_password =
                e.settings.expected_password.as_ref().is_some_and(|want| e.password.as_ref() != Some(want));
            let host = e.dump_sources.last().map(|d| d.host.clone()).unwrap_or_default();
            match settings.outcome {
                Outcome::Hang => return,
                Outcome::FailDump => {
                    return e.fail("pg_dump: error: query failed: ERROR: permission denied for table accounts");
                }
                _ if e.settings.dead_sources.contains(&host) => {
                    return e.fail(&format!(
                        "failed to extract the list of databases for dumping: failed to connect to `host={host}`: \
                         dial error: connect: connection refused"
                    ));
                }
                _ if wrong_password => {
                    return e
                        .fail("pg_dump: error: connection to server failed: FATAL: password authentication failed");
                }
                Outcome::GoInactive => return e.restarted("inactive"),
                Outcome::Restart => return e.restarted("finished"),
                Outcome::RestartAndRefresh => {
                    e.restarted("inactive");
                    e.settings.outcome = Outcome::Succeed;
                    return start_refresh(&shared, &mut e, false);
                }
                _ => {
                    e.phase = Some("restore");
                    e.mark("restore");
                }
            }
        }
        step(settings.restore_ms).await;
        {
            let mut e = shared.lock();
            if !current(&e) {
                return;
            }
            if settings.outcome == Outcome::FailRestore {
                let error = "pg_restore: error: could not execute query: ERROR: extension \"postgis\" is not available";
                if !ignore_restore_errors {
                    return e.fail(error);
                }
                e.log.push(format!("restore command failed, ignored (ignoreErrors): {error}"));
            }
            e.restored(&pool, dumped_at);
            e.renewed();
            if !server_yml::has_snapshot_job(&e.config) {
                return;
            }
        }
        step(20).await;
        {
            let mut e = shared.lock();
            if !current(&e) {
                return;
            }
            e.status = "snapshotting".into();
            e.mark("snapshotting");
        }
        step(settings.snapshot_ms).await;
        let mut e = shared.lock();
        if !current(&e) {
            return;
        }
        if settings.outcome == Outcome::FailSnapshot {
            return e.fail("failed to create a snapshot: zfs: out of space");
        }
        e.finished(&pool, dumped_at);
    });
}
