//! The engine's HTTP API, and the emulator's own routes beside it.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::engine::{Engine, Shared, SnapshotState};
use crate::refresh::start_refresh;
use crate::server_yml;
use crate::settings::{Settings, Version};

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
    let mut health = json!({"version": engine.settings.version.version_string(), "edition": "community"});
    if let Some(id) = &engine.settings.instance_id {
        health["instanceID"] = json!(id);
    }
    Json(health).into_response()
}

async fn status(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    engine.state_reads.push(SystemTime::now());
    let clones: usize = engine.pools.iter().map(|p| p.clone_list.as_ref().map_or(0, Vec::len)).sum();
    Json(json!({
        "status": {"code": "OK", "message": "Instance is ready"},
        "engine": {
            "version": engine.settings.version.version_string(),
            "edition": "community",
            "instanceID": engine.settings.instance_id.clone().unwrap_or_default(),
            "startedAt": engine.started_at,
            "disableConfigModification": !engine.settings.config_modification,
        },
        "pools": engine.pools,
        "cloning": {"numClones": clones, "clones": []},
        "retrieving": engine.retrieving(false),
    }))
    .into_response()
}

async fn retrieval(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    engine.state_reads.push(SystemTime::now());
    Json(engine.retrieving(true)).into_response()
}

/// `GET /snapshots`: newest first, of the pools that are not `empty` (mode_local.go
/// `GetSnapshots` over pool_manager.go `GetAvailableFSManagers`).
async fn snapshots(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let engine = s.lock();
    if let Some(r) = gate(&engine, &headers, true) {
        return r;
    }
    let empty: Vec<&str> = engine.pools.iter().filter(|p| p.status == "empty").map(|p| p.name.as_str()).collect();
    let mut list: Vec<_> = engine.snapshots.iter().filter(|s| !empty.contains(&s.pool.as_str())).cloned().collect();
    // lvmanager.go `SnapshotList`: one technical snapshot per LVM pool, made "now".
    let now = engine.now_text();
    for pool in engine.pools.iter().filter(|p| p.mode == "lvm" && p.status != "empty") {
        list.push(SnapshotState {
            id: "TechnicalSnapshot".into(),
            created_at: now.clone(),
            data_state_at: now.clone(),
            pool: pool.name.clone(),
            num_clones: pool.clone_list.as_ref().map_or(0, Vec::len),
            clones: Vec::new(),
            branch: "",
            message: String::new(),
            physical_size: 0,
            logical_size: 0,
        });
    }
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Json(list).into_response()
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
        let password = conn("password").as_str().unwrap_or_default().to_string();
        let dsn = |password: &str| {
            format!(
                "postgres://{}:{password}@{}:{}/{}",
                conn("username").as_str().unwrap_or_default(),
                conn("host").as_str().unwrap_or_default(),
                conn("port"),
                conn("dbname").as_str().unwrap_or_default()
            )
        };
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!(
                "cannot connect to the source {}: connection refused (as a URL: {}; the request was {})",
                dsn(&password),
                dsn(&crate::engine::url_encoded(&password)),
                crate::engine::go_json(&json!({"connection": {"password": password}})),
            ),
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
    if engine.settings.foreign_refresh_on_config {
        // Someone else's refresh, its jobs built with the source configured until now.
        engine.settings.foreign_refresh_on_config = false;
        start_refresh(&shared, &mut engine, true);
    }
    let file_before = (engine.config.clone(), engine.password.clone());
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
    // The engine reloads when the file changed; every run's POST names a new clone.
    if (&engine.config, &engine.password) != (&file_before.0, &file_before.1) {
        engine.reload_pools();
    }
    engine.config_updates += 1;
    if engine.status == "pending" {
        // A config update removes the pending marker and starts a refresh.
        start_refresh(&shared, &mut engine, false);
    }
    Json(server_yml::projection(&engine.config, version, &engine.settings.mode)).into_response()
}

/// `POST /admin/test-db-source` (srv/config.go `testDBSource` -> db.go `CheckSource`): 400
/// when the API may not change the config or the mode is not logical, or for a body that
/// is not a `models.ConnectionTest` (its port is a string); else 200 with what the check
/// found: `error` / `connection_error` (no `dbVersion`, `tuningParams` null) for a source it
/// cannot reach, `warning` / `missing_extension` for extensions its image lacks, `ok`.
async fn test_db_source(State(s): State<Shared>, headers: HeaderMap, body: Option<Json<Value>>) -> Response {
    let (settings, password_in_file) = {
        let engine = s.lock();
        if let Some(r) = gate(&engine, &headers, true) {
            return r;
        }
        (engine.settings.clone(), engine.password.clone())
    };
    if !settings.config_modification {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "configuration management via UI/API disabled by admin");
    }
    if settings.mode != "logical" {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the endpoint is only available in the Logical mode of the data retrieval",
        );
    }
    let Some(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "request body must be JSON");
    };
    // models.ConnectionTest: a missing field is the empty string; one of another type fails
    // the decoding, whose error repeats the whole body (api.ReadJSON), password included.
    let mut fields = Vec::new();
    for key in ["host", "port", "dbname", "username", "password"] {
        match body.get(key) {
            None | Some(Value::Null) => fields.push(String::new()),
            Some(Value::String(text)) => fields.push(text.clone()),
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    &format!(
                        "failed to unmarshal json: {body}: json: cannot unmarshal into Go struct field ConnectionTest.{key} of type string"
                    ),
                );
            }
        }
    }
    let [host, port, dbname, username, password] = <[String; 5]>::try_from(fields).unwrap_or_default();
    // connectionPassword: an empty password is read from server.yml.
    let password = Some(password).filter(|p| !p.is_empty()).or(password_in_file).unwrap_or_default();
    let unreachable = |message: String| {
        Json(json!({"status": "error", "result": "connection_error", "message": message, "tuningParams": null}))
            .into_response()
    };
    if settings.dead_sources.contains(&host) {
        return unreachable(format!(
            "failed to connect to `user={username} database={dbname}`: {host}:{port}: dial error: connect: connection refused"
        ));
    }
    match &settings.data {
        Some(data) => {
            if let Err(e) = crate::real::check_connection(data, &host, &port, &username, &dbname, &password).await {
                return unreachable(e);
            }
        }
        None if settings.expected_password.as_ref().is_some_and(|want| *want != password) => {
            return unreachable(format!(
                "failed to connect to `user={username} database={dbname}`: {host}:{port}: server error: FATAL: \
                 password authentication failed for user \"{username}\" (SQLSTATE 28P01)"
            ));
        }
        None => {}
    }
    if !settings.missing_extensions.is_empty() {
        return Json(json!({
            "status": "warning",
            "result": "missing_extension",
            "message": format!(
                "Image configured in \"databaseContainer\" missing extensions installed in source databases: {dbname} ({})",
                settings.missing_extensions.join(", ")
            ),
            "dbVersion": 16,
            "tuningParams": {},
        }))
        .into_response();
    }
    Json(json!({
        "status": "ok",
        "result": "ok",
        "message": "Database ready for dump and restore",
        "dbVersion": 16,
        "tuningParams": {},
    }))
    .into_response()
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
    if engine.settings.mode != "logical" || engine.pool_to_refresh().is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Pool to perform full refresh not found. Skip refreshing",
        );
    }
    start_refresh(&shared, &mut engine, false);
    if engine.settings.lose_refresh_replies > 0 {
        engine.settings.lose_refresh_replies -= 1;
        return (StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    Json(json!({"status": "OK", "message": "Full refresh started"})).into_response()
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
        "pools": e.pools,
        "snapshots": e.snapshots,
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

/// Every answer's `Date` on the engine host's clock, as Go's `net/http` writes it (hyper
/// writes its own only when the answer has none).
async fn engine_date(State(s): State<Shared>, mut response: Response) -> Response {
    let date = s.lock().http_date();
    if let Ok(value) = axum::http::HeaderValue::from_str(&date) {
        response.headers_mut().insert(axum::http::header::DATE, value);
    }
    response
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/instance/retrieval", get(retrieval))
        .route("/admin/config", get(get_config).post(post_config))
        .route("/admin/config.yaml", get(get_config_yaml))
        .route("/admin/test-db-source", post(test_db_source))
        .route("/full-refresh", post(full_refresh))
        .route("/snapshots", get(snapshots))
        .route("/_emulator/state", get(get_state))
        .route("/_emulator/settings", post(post_settings))
        .layer(axum::middleware::map_response_with_state(shared.clone(), engine_date))
        .with_state(shared)
}
