//! An emulator of the DBLab Engine API calls a refresh makes, behaving as the real engine
//! does in versions 4.1 and 4.2 (`docs/dblab-engine.md`): token check, the seven retrieval
//! statuses moving through a refresh in timed phases, the alerts map, `lastRefresh` set
//! when the jobs start and lost on a restart, a `server.yml` whose config POST silently
//! skips keys the file lacks, a `/admin/config` projection that hides `immediateRestore`
//! and (4.2) a `connectionString` that overrides the discrete source fields, failures to
//! start that show only in the engine's log, and 400 when a refresh is already running.
//!
//! Faults for tests and demos are switched by `Settings` (at start, or later through
//! `POST /_emulator/settings`); `GET /_emulator/state` shows what the engine was told.

mod server_yml;

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
use serde_json::{Value, json};
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
    /// Restarts mid-dump with `skipStartRefresh`: `inactive`, `lastRefresh` null.
    GoInactive,
    /// Restarts mid-dump: `finished` (the single pool is skipped), `lastRefresh` null.
    Restart,
}

/// Which engine release to behave as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Version {
    #[default]
    #[serde(rename = "4.1")]
    V41,
    #[serde(rename = "4.2")]
    V42,
}

impl Version {
    pub fn version_string(self) -> &'static str {
        match self {
            Self::V41 => "v4.1.3-20260507-0905",
            Self::V42 => "v4.2.0-rc.3-20260721-1410",
        }
    }
}

/// Why an accepted `/full-refresh` may never start, with no trace in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StartFailure {
    #[default]
    None,
    /// An error before the jobs are built (pool not ready, control-container clean-up,
    /// billing, job build): written to the engine's log only.
    Silent,
    /// Lost a race or found no free pool: a `refresh_skipped` warning is raised or bumped.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    pub token: String,
    pub version: Version,
    /// `logical` or `physical`.
    pub mode: String,
    /// The retrieval status at start (`inactive`, `finished`, `pending`, `refreshing`...).
    pub status: String,
    /// `null` until a refresh ran since the engine process started.
    pub last_refresh: Option<String>,
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
    /// A `source.connectionString` in `server.yml` (4.2 dumps through it; 4.1 ignores it).
    pub connection_string: Option<String>,
    /// `retrieval.refresh.timetable`: the engine's own refresh schedule ("" for none).
    pub timetable: String,
    pub start_failure: StartFailure,
    /// The next N accepted `/full-refresh` calls answer 502, as a proxy whose upstream
    /// timed out: the engine took the refresh, the caller never heard.
    pub lose_refresh_replies: u32,
    /// A config POST leaves the file's `connectionString` as it was (a file whose source
    /// section the engine's writer does not reach, e.g. through a YAML merge key).
    pub keep_connection_string: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token: "emulator-token".into(),
            version: Version::V41,
            mode: "logical".into(),
            status: "finished".into(),
            last_refresh: Some("2026-01-01T00:00:00Z".into()),
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
            connection_string: None,
            timetable: String::new(),
            start_failure: StartFailure::None,
            lose_refresh_replies: 0,
            keep_connection_string: false,
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
    /// The 4.2 connection string the dump went through, if any.
    pub connection_string: Option<String>,
}

#[derive(Debug)]
struct Engine {
    settings: Settings,
    status: String,
    last_refresh: Option<String>,
    alerts: BTreeMap<String, Value>,
    /// The engine's `server.yml`, password excluded.
    config: Value,
    /// What the engine wrote to its log that `/status` does not show.
    log: Vec<String>,
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

impl Engine {
    fn new(settings: Settings) -> Self {
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

    /// A failure before the jobs are built: the status, `lastRefresh` and alerts stay.
    fn not_started(&mut self, why: &str) {
        self.log.push(format!("failed to initiate full refresh: {why}"));
    }

    fn skipped(&mut self, message: &str) {
        let count = self.alerts.get("refresh_skipped").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_skipped".into(),
            json!({"level": "warning", "message": message, "lastSeen": now_text(), "count": count}),
        );
    }

    /// A new engine process: what lived only in memory is gone.
    fn restarted(&mut self, status: &str) {
        self.generation += 1;
        self.status = status.into();
        self.mark(status);
        self.last_refresh = None;
        self.phase = None;
        self.alerts.clear();
        self.log.push("engine restarted".into());
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
    let version = engine.settings.version.version_string();
    Json(json!({"version": version, "edition": "community", "instanceID": "dblab-emulator"})).into_response()
}

async fn status(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    Json(json!({
        "status": {"code": "OK", "message": "Instance is ready"},
        "engine": {
            "version": engine.settings.version.version_string(),
            "edition": "community",
            "disableConfigModification": !engine.settings.config_modification,
        },
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
    Json(server_yml::projection(&engine.config, engine.settings.version, &engine.settings.mode)).into_response()
}

async fn get_config_yaml(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    let body = server_yml::yaml(&engine.config, engine.password.is_some());
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], body).into_response()
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
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "configuration management via UI/API disabled by admin");
    }
    if engine.settings.mode != "logical" {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "config is only available in logical mode");
    }
    let version = engine.settings.version;
    if version == Version::V41 && engine.config.pointer("/retrieval/spec/logicalDump").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "logicalDump job is not enabled. Consider editing DLE config manually",
        );
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
    // 4.1 reads only projection fields: a connectionString is ignored without a word.
    let connection_string = body
        .pointer("/retrieval/spec/logicalDump/options/source/connectionString")
        .filter(|_| version == Version::V42)
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(text) = &connection_string
        && let Err(message) = server_yml::check_connection_string(text)
    {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message);
    }
    if let Some(password) = server_yml::merge(&mut engine.config, &body) {
        engine.password = Some(password);
    }
    if let Some(text) = connection_string
        && !engine.settings.keep_connection_string
    {
        server_yml::set_connection_string(&mut engine.config, &text);
    }
    if version == Version::V42 {
        server_yml::ensure_logical_pipeline(&mut engine.config);
    }
    engine.config_updates += 1;
    if engine.status == "pending" {
        // A config update removes the pending marker and starts a refresh.
        start_refresh(&shared, &mut engine);
    }
    Json(server_yml::projection(&engine.config, version, &engine.settings.mode)).into_response()
}

async fn full_refresh(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let shared = s.clone();
    let mut engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    match engine.status.as_str() {
        "refreshing" | "snapshotting" => {
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
                "Data retrieving suspended because Retrieval state is pending",
            );
        }
        _ => {}
    }
    if engine.settings.mode != "logical" {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Pool to perform full refresh not found. Skip refreshing",
        );
    }
    start_refresh(&shared, &mut engine);
    if engine.settings.lose_refresh_replies > 0 {
        engine.settings.lose_refresh_replies -= 1;
        return (StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    Json(json!({"status": "OK", "message": "Full refresh started"})).into_response()
}

/// `FullRefresh` in the background: the failures before the jobs are built leave the
/// status alone; once built, the status and `lastRefresh` move.
fn start_refresh(shared: &Shared, engine: &mut Engine) {
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
    engine.dump_sources.push(DumpSource {
        host: field("host"),
        port: field("port"),
        dbname: field("dbname"),
        username: field("username"),
        parallel_jobs: jobs,
        connection_string,
    });

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
        "log": e.log,
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
        .route("/admin/config.yaml", get(get_config_yaml))
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
    pub last_refresh: Option<String>,
    pub refreshes_started: u32,
    pub config_updates: u32,
    pub password: Option<String>,
    pub dump_sources: Vec<DumpSource>,
    /// The engine's `server.yml` (password excluded).
    pub config: Value,
    /// What the engine logged and `/status` does not show.
    pub log: Vec<String>,
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
            log: e.log.clone(),
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
    fn merge_skips_keys_the_file_lacks_and_keeps_the_password_out() {
        let settings = Settings { missing_keys: vec!["port".into()], ..Settings::default() };
        let mut config = server_yml::initial(&settings);
        let patch = json!({"retrieval": {"spec": {"logicalDump": {"options": {
            "source": {"connection": {"host": "clone", "port": 6543, "password": "pw", "dbname": null},
                       "rdsIam": {"dbInstanceIdentifier": "x"}},
            "immediateRestore": {"enabled": true},
            "parallelJobs": 4}}}}});
        let password = server_yml::merge(&mut config, &patch);
        let conn = &config["retrieval"]["spec"]["logicalDump"]["options"]["source"]["connection"];
        assert_eq!(conn["host"], "clone");
        assert!(conn.get("port").is_none(), "port was absent and must stay absent");
        assert!(conn.get("password").is_none());
        assert_eq!(conn["dbname"], "postgres", "null leaves the value");
        assert!(config.pointer("/retrieval/spec/logicalDump/options/source/rdsIam").is_none());
        assert_eq!(config["retrieval"]["spec"]["logicalDump"]["options"]["parallelJobs"], 4);
        assert_eq!(
            config["retrieval"]["spec"]["logicalDump"]["options"]["immediateRestore"]["enabled"], false,
            "not a projection field: ignored"
        );
        assert_eq!(password.as_deref(), Some("pw"));
    }

    #[test]
    fn the_projection_hides_immediate_restore_and_the_connection_string() {
        let settings = Settings {
            immediate_restore: true,
            connection_string: Some("host=prod sslmode=require".into()),
            ..Settings::default()
        };
        let config = server_yml::initial(&settings);
        for version in [Version::V41, Version::V42] {
            let shown = server_yml::projection(&config, version, "logical");
            let text = shown.to_string();
            assert!(!text.contains("immediateRestore") && !text.contains("connectionString"), "{text}");
            assert_eq!(shown.get("retrievalMode").is_some(), version == Version::V42);
        }
        let yaml = server_yml::yaml(&config, true);
        assert!(yaml.contains("immediateRestore") && yaml.contains("connectionString: host=prod sslmode=require"));
        assert!(yaml.contains("password: '********'"), "{yaml}");
    }

    #[test]
    fn a_42_connection_string_decides_where_the_dump_goes() {
        let settings = Settings {
            connection_string: Some("postgresql://u@prod.example:6000/orders?sslmode=require".into()),
            ..Settings::default()
        };
        let config = server_yml::initial(&settings);
        let (source, via) = server_yml::effective_source(&config, Version::V42);
        assert_eq!((source["host"].as_str(), source["port"].as_str()), ("prod.example", "6000"));
        assert!(via.is_some());
        let (source, via) = server_yml::effective_source(&config, Version::V41);
        assert_eq!(source["host"], "old-source.internal");
        assert!(via.is_none());
    }

    #[test]
    fn a_42_connection_string_is_checked_as_the_engine_does() {
        assert!(server_yml::check_connection_string("").is_ok());
        assert!(server_yml::check_connection_string("host=a sslmode=require").is_ok());
        assert!(server_yml::check_connection_string("postgresql://u:pw@a/db").is_err());
        assert!(server_yml::check_connection_string("host=a,b").is_err());
        assert!(server_yml::check_connection_string("port=x").is_err());
    }
}
