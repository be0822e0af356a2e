//! An emulator of the DBLab Engine API calls a refresh makes, behaving as
//! `shared/reference/dblab-api.md` describes the real engine: token check, the seven
//! retrieval statuses moving through a refresh in timed phases, the alerts map,
//! `lastRefresh` set when a refresh starts, the config merge that silently ignores keys the
//! engine's own config lacks, and 400 when a refresh is already running.
//!
//! Faults for tests and demos are switched by `Settings` (at start, or later through
//! `POST /_emulator/settings`); `GET /_emulator/state` shows what the engine was told.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How the next refresh ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    #[default]
    Succeed,
    FailDump,
    FailRestore,
    FailSnapshot,
    /// Fails at once, before any poller can see it running.
    FailImmediately,
    /// Stays in the dump phase forever.
    Hang,
    /// Goes back to `inactive` mid-refresh, as when the engine restarts.
    GoInactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    pub token: String,
    /// `logical` or `physical`.
    pub mode: String,
    /// The retrieval status at start (`inactive`, `finished`, `pending`, `refreshing`...).
    pub status: String,
    pub last_refresh: String,
    pub dump_ms: u64,
    pub restore_ms: u64,
    pub snapshot_ms: u64,
    pub outcome: Outcome,
    /// Every call, health included, answers 500.
    pub http500: bool,
    /// Every token is refused.
    pub reject_token: bool,
    /// Connection keys absent from the engine's `server.yml`: updates to them are ignored.
    pub missing_keys: Vec<String>,
    pub config_modification: bool,
    pub immediate_restore: bool,
    /// When set, a refresh whose source password differs fails in the dump phase.
    pub expected_password: Option<String>,
    /// Config updates are refused with an error that echoes the connection string sent,
    /// password included, as an engine that cannot connect may answer.
    pub reject_config_echoing_dsn: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token: "emulator-token".into(),
            mode: "logical".into(),
            status: "finished".into(),
            last_refresh: "2026-01-01T00:00:00Z".into(),
            dump_ms: 300,
            restore_ms: 300,
            snapshot_ms: 200,
            outcome: Outcome::Succeed,
            http500: false,
            reject_token: false,
            missing_keys: Vec::new(),
            config_modification: true,
            immediate_restore: false,
            expected_password: None,
            reject_config_echoing_dsn: false,
        }
    }
}

/// The source a refresh dumped from, as the engine's config said when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpSource {
    pub host: String,
    pub port: String,
    pub dbname: String,
    pub username: String,
    pub parallel_jobs: String,
}

#[derive(Debug)]
struct Engine {
    settings: Settings,
    status: String,
    last_refresh: String,
    alerts: BTreeMap<String, Value>,
    /// The engine's `server.yml` projection, password excluded.
    config: Value,
    password: Option<String>,
    phase: Option<&'static str>,
    /// Bumped by each refresh, so a superseded background task stops.
    generation: u64,
    refreshes_started: u32,
    config_updates: u32,
    dump_sources: Vec<DumpSource>,
    /// Each phase or status the refresh entered, and when (for the benchmark's timings).
    timeline: Vec<(String, SystemTime)>,
}

fn initial_config(settings: &Settings) -> Value {
    let mut connection = Map::new();
    for (key, value) in [
        ("host", json!("old-source.internal")),
        ("port", json!(5432)),
        ("dbname", json!("postgres")),
        ("username", json!("postgres")),
    ] {
        if !settings.missing_keys.iter().any(|k| k == key) {
            connection.insert(key.into(), value);
        }
    }
    json!({"retrieval": {"spec": {
        "logicalDump": {"options": {
            "source": {"type": "remote", "connection": connection},
            "parallelJobs": 2,
            "immediateRestore": {"enabled": settings.immediate_restore}
        }},
        "logicalRestore": {"options": {"parallelJobs": 2}},
        "logicalSnapshot": {"options": {"dataPatching": {}}}
    }}})
}

impl Engine {
    fn new(settings: Settings) -> Self {
        Self {
            status: settings.status.clone(),
            last_refresh: settings.last_refresh.clone(),
            alerts: BTreeMap::new(),
            config: initial_config(&settings),
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

    fn retrieving(&self, with_activity: bool) -> Value {
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

    fn mark(&mut self, what: &str) {
        self.timeline.push((what.to_string(), SystemTime::now()));
    }

    fn fail(&mut self, message: &str) {
        self.mark("failed");
        self.status = "failed".into();
        self.phase = None;
        let count = self.alerts.get("refresh_failed").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_failed".into(),
            json!({"level": "error", "message": message, "lastSeen": now_text(), "count": count}),
        );
    }

    fn connection_field(&self, key: &str) -> String {
        match self.config.pointer(&format!("/retrieval/spec/logicalDump/options/source/connection/{key}")) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => String::new(),
        }
    }
}

fn now_text() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Engine>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic elsewhere must not wedge the emulator: the state stays usable.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// Faults and the token check shared by every API route; `None` means go on.
fn gate(engine: &Engine, headers: &HeaderMap, needs_token: bool) -> Option<Response> {
    if engine.settings.http500 {
        return Some(error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "emulated server failure"));
    }
    if needs_token {
        let sent = headers.get("Verification-Token").and_then(|v| v.to_str().ok());
        if engine.settings.reject_token || sent != Some(engine.settings.token.as_str()) {
            return Some(error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Check your verification token."));
        }
    }
    None
}

async fn healthz(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, false) {
        return r;
    }
    Json(json!({"version": "4.1.0-emulator", "edition": "community", "instanceID": "dblab-emulator"})).into_response()
}

async fn status(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    Json(json!({
        "status": {"code": "OK", "message": "Instance is ready"},
        "engine": {"version": "4.1.0-emulator", "edition": "community"},
        "pools": [],
        "cloning": {"numClones": 0, "clones": []},
        "retrieving": engine.retrieving(false),
    }))
    .into_response()
}

async fn retrieval(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    Json(engine.retrieving(true)).into_response()
}

async fn get_config(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    Json(engine.config.clone()).into_response()
}

/// Sets each leaf of `patch` whose path already exists in `config`; reports the password.
fn merge(config: &mut Value, patch: &Value, path: &str, password: &mut Option<String>) {
    let Value::Object(fields) = patch else { return };
    for (key, value) in fields {
        let here = format!("{path}/{key}");
        if here == "/retrieval/spec/logicalDump/options/source/connection/password" {
            // Never returned by GET; an empty password leaves the old one.
            if let Some(p) = value.as_str().filter(|p| !p.is_empty()) {
                *password = Some(p.to_string());
            }
            continue;
        }
        let Some(existing) = config.get_mut(key) else { continue };
        match value {
            Value::Null => {}
            Value::Object(_) => merge(existing, value, &here, password),
            other => *existing = other.clone(),
        }
    }
}

async fn post_config(State(s): State<Shared>, headers: HeaderMap, body: Option<Json<Value>>) -> Response {
    let shared = s.clone();
    let mut engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    let Some(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "request body must be JSON");
    };
    if !engine.settings.config_modification {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "config modification is disabled");
    }
    if engine.settings.mode != "logical" {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "config can be changed only in logical mode");
    }
    if engine.config.pointer("/retrieval/spec/logicalDump").is_none() {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "logicalDump job is not configured");
    }
    if engine.settings.reject_config_echoing_dsn {
        let conn = |k: &str| {
            body.pointer(&format!("/retrieval/spec/logicalDump/options/source/connection/{k}"))
                .cloned()
                .unwrap_or_default()
        };
        let dsn = format!(
            "postgres://{}:{}@{}:{}/{}",
            conn("username").as_str().unwrap_or_default(),
            conn("password").as_str().unwrap_or_default(),
            conn("host").as_str().unwrap_or_default(),
            conn("port"),
            conn("dbname").as_str().unwrap_or_default()
        );
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!("cannot connect to the source {dsn}: connection refused"),
        );
    }
    let mut password = engine.password.clone();
    merge(&mut engine.config, &body, "", &mut password);
    engine.password = password;
    engine.config_updates += 1;
    if engine.status == "pending" {
        // A config update removes the pending marker and starts a refresh.
        start_refresh(&shared, &mut engine);
    }
    Json(engine.config.clone()).into_response()
}

async fn full_refresh(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let shared = s.clone();
    let mut engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    match engine.status.as_str() {
        "refreshing" | "snapshotting" | "renewed" => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The data refresh/snapshot is currently in progress. Skip a new data refresh iteration",
            );
        }
        "pending" => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Retrieval is pending: waiting for the configuration",
            );
        }
        _ => {}
    }
    if engine.settings.mode != "logical" {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "full refresh is not supported in physical mode");
    }
    start_refresh(&shared, &mut engine);
    Json(json!({"status": "OK", "message": "Full refresh started"})).into_response()
}

fn start_refresh(shared: &Shared, engine: &mut Engine) {
    engine.generation += 1;
    engine.refreshes_started += 1;
    engine.last_refresh = now_text();
    engine.status = "refreshing".into();
    engine.phase = Some("dump");
    engine.mark("dump");
    let source = DumpSource {
        host: engine.connection_field("host"),
        port: engine.connection_field("port"),
        dbname: engine.connection_field("dbname"),
        username: engine.connection_field("username"),
        parallel_jobs: engine
            .config
            .pointer("/retrieval/spec/logicalDump/options/parallelJobs")
            .map(Value::to_string)
            .unwrap_or_default(),
    };
    engine.dump_sources.push(source);
    let generation = engine.generation;
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
                Outcome::GoInactive => {
                    e.status = "inactive".into();
                    e.mark("inactive");
                    e.phase = None;
                    return;
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

async fn get_state(State(s): State<Shared>) -> Json<Value> {
    let e = s.lock();
    Json(json!({
        "status": e.status,
        "lastRefresh": e.last_refresh,
        "refreshesStarted": e.refreshes_started,
        "configUpdates": e.config_updates,
        "passwordSet": e.password.is_some(),
        "dumpSources": e.dump_sources,
        "config": e.config,
        "settings": e.settings,
    }))
}

/// Replaces the fault switches; `status`/`lastRefresh`/`missingKeys` reset the engine.
async fn post_settings(State(s): State<Shared>, Json(settings): Json<Settings>) -> Json<Value> {
    {
        let mut e = s.lock();
        *e = Engine::new(settings);
    }
    get_state(State(s)).await
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/instance/retrieval", get(retrieval))
        .route("/admin/config", get(get_config).post(post_config))
        .route("/full-refresh", post(full_refresh))
        .route("/_emulator/state", get(get_state))
        .route("/_emulator/settings", post(post_settings))
        .with_state(shared)
}

/// A running emulator; it stops when dropped.
pub struct Emulator {
    addr: SocketAddr,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

/// What the emulated engine has been told, for assertions.
#[derive(Debug, Clone)]
pub struct EngineView {
    pub status: String,
    pub last_refresh: String,
    pub refreshes_started: u32,
    pub config_updates: u32,
    pub password: Option<String>,
    pub dump_sources: Vec<DumpSource>,
    pub config: Value,
    /// Each phase or status the refreshes entered (`dump`, `restore`, `renewed`,
    /// `snapshotting`, `finished`, `failed`, `inactive`), and when.
    pub timeline: Vec<(String, SystemTime)>,
}

impl Emulator {
    /// Listens on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr, settings: Settings) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared(Arc::new(Mutex::new(Engine::new(settings))));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { addr, shared, _stop: stop })
    }

    /// On a free loopback port.
    pub async fn start_local(settings: Settings) -> std::io::Result<Self> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn view(&self) -> EngineView {
        let e = self.shared.lock();
        EngineView {
            status: e.status.clone(),
            last_refresh: e.last_refresh.clone(),
            refreshes_started: e.refreshes_started,
            config_updates: e.config_updates,
            password: e.password.clone(),
            dump_sources: e.dump_sources.clone(),
            config: e.config.clone(),
            timeline: e.timeline.clone(),
        }
    }

    /// A fresh engine with these settings, as after a restart; the token stays the same.
    pub fn restart(&self, settings: Settings) {
        let mut engine = self.shared.lock();
        let token = engine.settings.token.clone();
        *engine = Engine::new(Settings { token, ..settings });
    }

    /// Changes the fault switches without resetting the engine's state.
    pub fn configure(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.shared.lock().settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_ignores_keys_the_engine_lacks_and_keeps_the_password_out() {
        let settings = Settings { missing_keys: vec!["port".into()], ..Settings::default() };
        let mut config = initial_config(&settings);
        let mut password = None;
        let patch = json!({"retrieval": {"spec": {"logicalDump": {"options": {
            "source": {"connection": {"host": "clone", "port": 6543, "password": "pw", "dbname": null},
                       "rdsIam": {"dbInstanceIdentifier": "x"}},
            "parallelJobs": 4}}}}});
        merge(&mut config, &patch, "", &mut password);
        let conn = &config["retrieval"]["spec"]["logicalDump"]["options"]["source"]["connection"];
        assert_eq!(conn["host"], "clone");
        assert!(conn.get("port").is_none(), "port was absent and must stay absent");
        assert!(conn.get("password").is_none());
        assert_eq!(conn["dbname"], "postgres", "null leaves the value");
        assert!(config.pointer("/retrieval/spec/logicalDump/options/source/rdsIam").is_none());
        assert_eq!(config["retrieval"]["spec"]["logicalDump"]["options"]["parallelJobs"], 4);
        assert_eq!(password.as_deref(), Some("pw"));
    }

    #[test]
    fn an_empty_password_leaves_the_old_one() {
        let mut config = initial_config(&Settings::default());
        let mut password = Some("old".to_string());
        let patch =
            json!({"retrieval": {"spec": {"logicalDump": {"options": {"source": {"connection": {"password": ""}}}}}}});
        merge(&mut config, &patch, "", &mut password);
        assert_eq!(password.as_deref(), Some("old"));
    }
}
