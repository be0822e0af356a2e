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
}

impl Engine {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
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

    /// A new engine process: what lived only in memory is gone.
    pub(crate) fn restarted(&mut self, status: &str) {
        self.generation += 1;
        self.status = status.into();
        self.mark(status);
        self.last_refresh = None;
        self.phase = None;
        self.alerts.clear();
        self.log.push("engine restarted".into());
    }
}

pub(crate) fn now_text() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
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
/// status alone; once built, the status and `lastRefresh` move.
pub(crate) fn start_refresh(shared: &Shared, engine: &mut Engine) {
    match engine.settings.start_failure {
        StartFailure::Silent => return engine.not_started("failed to clean up the control containers"),
        StartFailure::Skipped => return engine.skipped("Pool to perform full refresh not found. Skip refreshing"),
        StartFailure::None => {}
    }
    let jobs = server_yml::text_at(&engine.config, "/retrieval/spec/logicalDump/options/parallelJobs");
    let immediate =
        server_yml::truthy(engine.config.pointer("/retrieval/spec/logicalDump/options/immediateRestore/enabled"));
    if immediate && jobs.parse::<u32>().is_ok_and(|n| n > 1) {
        return engine.not_started("failed to build jobs: parallel dump is not supported with immediate restore");
    }
    let (source, connection_string) = server_yml::effective_source(&engine.config, engine.settings.version);
    engine.generation += 1;
    engine.refreshes_started += 1;
    engine.last_refresh = Some(now_text());
    engine.status = "refreshing".into();
    engine.phase = Some("dump");
    engine.mark("dump");
    let field = |k: &str| source.get(k).cloned().unwrap_or_default();
    let dump_source = DumpSource {
        host: field("host"),
        port: field("port"),
        dbname: field("dbname"),
        username: field("username"),
        parallel_jobs: jobs,
        connection_string,
    };
    engine.dump_sources.push(dump_source.clone());

    let generation = engine.generation;
    if let Some(data) = engine.settings.data.clone() {
        let job = crate::real::Job {
            data,
            source: dump_source,
            password: engine.password.clone(),
            restore_jobs: server_yml::text_at(&engine.config, "/retrieval/spec/logicalRestore/options/parallelJobs"),
            restore_ms: engine.settings.restore_ms,
            snapshot_ms: engine.settings.snapshot_ms,
            generation,
        };
        tokio::spawn(crate::real::refresh(shared.clone(), job));
        return;
    }
    let settings = engine.settings.clone();
    let wrong_password = settings.expected_password.as_ref().is_some_and(|want| engine.password.as_ref() != Some(want));
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
                return e
                    .fail("pg_restore: error: could not execute query: ERROR: extension \"postgis\" is not available");
            }
            e.status = "renewed".into();
            e.mark("renewed");
            e.phase = None;
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
        e.status = "finished".into();
        e.mark("finished");
        e.alerts.remove("refresh_failed");
    });
}
