//! The emulated engine's state, and a refresh's life in it: accepted, maybe never
//! started, then the jobs' statuses in timed phases, or a failure or a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::server_yml;
use crate::settings::{Outcome, Settings, StartFailure};

/// The source a refresh dumped from, as the engine's config said when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpSource {
    pub host: String,
    pub port: String,
    pub dbname: String,
    pub username: String,
    pub parallel_jobs: String,
    /// The 4.2 connection string the dump went through, if any.
    pub connection_string: Option<String>,
    /// `rdsIam`: the RDS instance whose endpoint the dump connected to.
    pub rds_instance: Option<String>,
    /// The pool the refresh restores into.
    pub pool: String,
    /// Started by someone other than the client under test (`foreignRefreshOnConfig`).
    pub foreign: bool,
}

/// A pool as `/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolState {
    pub name: String,
    pub mode: &'static str,
    pub status: String,
    pub data_state_at: Option<String>,
    pub clone_list: Vec<String>,
}

/// A snapshot as `GET /snapshots` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotState {
    pub id: String,
    pub created_at: String,
    pub data_state_at: String,
    pub pool: String,
    pub num_clones: usize,
    pub clones: Vec<String>,
    pub branch: &'static str,
    pub message: String,
    pub physical_size: u64,
    pub logical_size: u64,
}

/// What the engine's snapshot name carries: `dataStateAt` as `YYYYMMDDhhmmss`.
fn snapshot_id(pool: &str, data_state_at: OffsetDateTime) -> String {
    let t = data_state_at.to_offset(time::UtcOffset::UTC);
    format!(
        "{pool}@snapshot_{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) settings: Settings,
    pub(crate) status: String,
    pub(crate) last_refresh: Option<String>,
    pub(crate) alerts: BTreeMap<String, Value>,
    /// The engine's `server.yml`, password excluded.
    pub(crate) config: Value,
    /// What the engine wrote to its log that `/status` does not show.
    pub(crate) log: Vec<String>,
    pub(crate) password: Option<String>,
    pub(crate) phase: Option<&'static str>,
    /// Bumped by each refresh, so a superseded background task stops.
    pub(crate) generation: u64,
    pub(crate) refreshes_started: u32,
    pub(crate) config_updates: u32,
    pub(crate) dump_sources: Vec<DumpSource>,
    /// Each phase or status the refresh entered, and when (for the benchmark's timings).
    pub(crate) timeline: Vec<(String, SystemTime)>,
    /// When this engine process started (`/status` `engine.startedAt`).
    pub(crate) started_at: String,
    /// The active pool first.
    pub(crate) pools: Vec<PoolState>,
    pub(crate) snapshots: Vec<SnapshotState>,
}

impl Engine {
    pub(crate) fn new(settings: Settings) -> Self {
        const FIRST_DATA: &str = "2026-01-01T00:00:00Z";
        let first = OffsetDateTime::parse(FIRST_DATA, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let pools = settings
            .pools
            .iter()
            .map(|p| PoolState {
                name: p.name.clone(),
                mode: "zfs",
                status: "active".into(),
                data_state_at: Some(FIRST_DATA.into()),
                clone_list: p.clones.clone(),
            })
            .collect();
        let snapshots = settings
            .pools
            .iter()
            .map(|p| SnapshotState {
                id: snapshot_id(&p.name, first),
                created_at: FIRST_DATA.into(),
                data_state_at: FIRST_DATA.into(),
                pool: p.name.clone(),
                num_clones: p.clones.len(),
                clones: p.clones.clone(),
                branch: "main",
                message: String::new(),
                physical_size: 0,
                logical_size: 0,
            })
            .collect();
        Self {
            started_at: now_text(),
            pools,
            snapshots,
            status: settings.status.clone(),
            last_refresh: settings.last_refresh.clone(),
            alerts: BTreeMap::new(),
            config: server_yml::initial(&settings),
            log: Vec::new(),
            password: None,
            phase: None,
            generation: 0,
            refreshes_started: 0,
            config_updates: 0,
            dump_sources: Vec::new(),
            timeline: Vec::new(),
            settings,
        }
    }

    pub(crate) fn retrieving(&self, with_activity: bool) -> Value {
        let session = |app: &str| json!({"user": "postgres", "query": format!("COPY ... -- {app}"), "duration": 1.5, "waitEventType": "", "waitEvent": ""});
        let activity = if !with_activity || self.status != "refreshing" {
            Value::Null
        } else {
            match self.phase {
                Some("dump") if self.settings.immediate_restore => {
                    json!({"source": [session("dle_retrieval")], "target": [session("pg_restore")]})
                }
                Some("dump") => json!({"source": [session("dle_retrieval")], "target": []}),
                Some("restore") => json!({"source": [], "target": [session("pg_restore")]}),
                _ => Value::Null,
            }
        };
        let mut r = json!({
            "mode": self.settings.mode,
            "status": self.status,
            "lastRefresh": self.last_refresh,
            "nextRefresh": Value::Null,
            "alerts": self.alerts,
        });
        if with_activity {
            r["activity"] = activity;
        }
        r
    }

    pub(crate) fn mark(&mut self, what: &str) {
        self.timeline.push((what.to_string(), SystemTime::now()));
    }

    pub(crate) fn fail(&mut self, message: &str) {
        self.mark("failed");
        self.status = "failed".into();
        self.phase = None;
        // A failed job empties the pool it was restoring into.
        for pool in self.pools.iter_mut().filter(|p| p.status == "refreshing") {
            pool.status = "empty".into();
        }
        let count = self.alerts.get("refresh_failed").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_failed".into(),
            json!({"level": "error", "message": message, "lastSeen": now_text(), "count": count}),
        );
    }

    /// A failure before the jobs are built: the status, `lastRefresh` and alerts stay.
    pub(crate) fn not_started(&mut self, why: &str) {
        self.log.push(format!("failed to initiate full refresh: {why}"));
    }

    pub(crate) fn skipped(&mut self, message: &str) {
        let count = self.alerts.get("refresh_skipped").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_skipped".into(),
            json!({"level": "warning", "message": message, "lastSeen": now_text(), "count": count}),
        );
    }

    /// The jobs are done: `renewed`, every alert cleared.
    pub(crate) fn renewed(&mut self) {
        self.status = "renewed".into();
        self.mark("renewed");
        self.phase = None;
        self.alerts.clear();
    }

    /// The snapshot job: the pool's old snapshots without clones go, a new one is made
    /// whose `dataStateAt` is the dump's time, the pool becomes the active one, and every
    /// alert is cleared. A snapshot of that name already there ends it `finished` all the
    /// same, with no new snapshot and the pool left where it was (as the engine does).
    pub(crate) fn finished(&mut self, pool: &str, dumped_at: OffsetDateTime) {
        self.status = "finished".into();
        self.mark("finished");
        self.alerts.clear();
        let id = snapshot_id(pool, dumped_at);
        if self.settings.snapshot_exists {
            self.log.push(format!("Skip snapshotting: snapshot {id} already exists"));
            if let Some(p) = self.pools.iter_mut().find(|p| p.name == pool) {
                p.status = "active".into();
            }
            return;
        }
        self.snapshots.retain(|s| s.pool != pool || !s.clones.is_empty());
        self.snapshots.push(SnapshotState {
            id,
            created_at: now_text(),
            data_state_at: stamp(dumped_at),
            pool: pool.to_string(),
            num_clones: 0,
            clones: Vec::new(),
            branch: "main",
            message: String::new(),
            physical_size: 0,
            logical_size: 0,
        });
        if let Some(at) = self.pools.iter().position(|p| p.name == pool) {
            let mut active = self.pools.remove(at);
            active.status = "active".into();
            active.data_state_at = Some(stamp(dumped_at));
            self.pools.insert(0, active);
        }
    }

    /// The pool a refresh would take: the last one in the list without clones.
    pub(crate) fn pool_to_refresh(&self) -> Option<String> {
        self.pools.iter().rev().find(|p| p.clone_list.is_empty()).map(|p| p.name.clone())
    }

    /// A new engine process: what lived only in memory is gone.
    pub(crate) fn restarted(&mut self, status: &str) {
        self.started_at = later_than(&self.started_at);
        self.generation += 1;
        self.status = status.into();
        self.mark(status);
        self.last_refresh = None;
        self.phase = None;
        self.alerts.clear();
        self.log.push("engine restarted".into());
    }
}

/// Percent-encoding of everything but RFC 3986's unreserved characters, as a DSN's
/// userinfo carries a password.
pub(crate) fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A time as the engine writes one: RFC 3339, truncated to the second.
pub(crate) fn stamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

pub(crate) fn now_text() -> String {
    stamp(OffsetDateTime::now_utc())
}

/// Now, or a second after `before` if that is not later: a restarted process never shows
/// the start time of the one before (a real restart takes longer than a second).
pub(crate) fn later_than(before: &str) -> String {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    match OffsetDateTime::parse(before, &Rfc3339) {
        Ok(b) if b >= now => stamp(b + time::Duration::seconds(1)),
        _ => stamp(now),
    }
}

#[derive(Clone)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Engine>>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic elsewhere must not wedge the emulator: the state stays usable.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

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
    engine.last_refresh = Some(now_text());
    engine.status = "refreshing".into();
    engine.phase = Some("dump");
    engine.mark("dump");
    if let Some(p) = engine.pools.iter_mut().find(|p| p.name == pool) {
        p.status = "refreshing".into();
    }
    let dumped_at = OffsetDateTime::now_utc();
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
    let wrong_password = settings.expected_password.as_ref().is_some_and(|want| engine.password.as_ref() != Some(want));
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
            json!({"password": password})
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
            match settings.outcome {
                Outcome::Hang => return,
                Outcome::FailDump => {
                    return e.fail("pg_dump: error: query failed: ERROR: permission denied for table accounts");
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
            e.renewed();
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
