//! The emulated engine's `server.yml`, and what the real engine's config API does with it
//! (`docs/dblab-engine.md`): the `/admin/config` projection, the partial merge of a config
//! POST, the whole file as `/admin/config.yaml` shows it, and a 4.2 connection string.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{Settings, Version};

const DUMP: &str = "/retrieval/spec/logicalDump/options";
const RESTORE: &str = "/retrieval/spec/logicalRestore/options";

/// The fields `GET /admin/config` shows (and a POST may set), group `default`. The
/// password and a 4.2 `connectionString` are `sensitive`: set, never shown.
fn projection_fields() -> Vec<String> {
    let mut fields = vec!["/retrieval/refresh/timetable".to_string()];
    for f in ["host", "port", "dbname", "username"] {
        fields.push(format!("{DUMP}/source/connection/{f}"));
    }
    fields.push(format!("{DUMP}/source/rdsIam/dbInstanceIdentifier"));
    for f in ["databases", "parallelJobs", "customOptions", "ignoreErrors"] {
        fields.push(format!("{DUMP}/{f}"));
    }
    for f in ["parallelJobs", "configs", "customOptions", "ignoreErrors"] {
        fields.push(format!("{RESTORE}/{f}"));
    }
    fields
}

pub fn initial(settings: &Settings) -> Value {
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
    let mut source = json!({"type": settings.source_type, "connection": connection});
    if let Some(text) = &settings.connection_string {
        source["connectionString"] = json!(text);
    }
    if settings.source_type == "rdsIam" {
        let mut rds = json!({"awsRegion": "us-east-1"});
        if !settings.missing_keys.iter().any(|k| k == "dbInstanceIdentifier") {
            rds["dbInstanceIdentifier"] = json!("old-source-instance");
        }
        source["rdsIam"] = rds;
    }
    let mut dump = json!({
        "source": source,
        "parallelJobs": 2,
        "immediateRestore": {"enabled": settings.immediate_restore}
    });
    if settings.missing_keys.iter().any(|k| k == "parallelJobs")
        && let Some(options) = dump.as_object_mut()
    {
        options.remove("parallelJobs");
    }
    if settings.dump_ignore_errors {
        dump["ignoreErrors"] = json!(true);
    }
    let mut restore = json!({"parallelJobs": 2});
    if settings.restore_ignore_errors {
        restore["ignoreErrors"] = json!(true);
    }
    let mut doc = json!({
        "server": {"verificationToken": "****", "disableConfigModification": !settings.config_modification},
        "retrieval": {
            "refresh": {"timetable": settings.timetable, "skipStartRefresh": settings.skip_start_refresh},
            "jobs": ["logicalDump", "logicalRestore", "logicalSnapshot"],
            "spec": {
                "logicalDump": {"options": dump},
                "logicalRestore": {"options": restore},
                "logicalSnapshot": {"options": {"dataPatching": {}}}
            }
        }
    });
    if settings.no_snapshot_job {
        doc["retrieval"]["jobs"] = json!(["logicalDump", "logicalRestore"]);
        if let Some(spec) = doc["retrieval"]["spec"].as_object_mut() {
            spec.remove("logicalSnapshot");
        }
    }
    doc
}

fn set_at(doc: &mut Value, pointer: &str, value: Value) {
    let mut here = doc;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !here.is_object() {
            *here = json!({});
        }
        let Value::Object(map) = here else { return };
        if i == parts.len() - 1 {
            map.insert((*part).to_string(), value);
            return;
        }
        here = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

/// `GET /admin/config`: the projection of what the file holds (absent keys stay absent);
/// 4.2 adds a top-level `retrievalMode`.
pub fn projection(doc: &Value, version: Version, mode: &str) -> Value {
    let mut out = json!({});
    for field in projection_fields() {
        if let Some(v) = doc.pointer(&field) {
            set_at(&mut out, &field, v.clone());
        }
    }
    if version == Version::V42 {
        out["retrievalMode"] = json!(mode);
    }
    out
}

/// A POST's effect on the file: each projection field sent is written where the file
/// already has it and skipped silently otherwise. Returns the password, if one was sent.
pub fn merge(doc: &mut Value, body: &Value) -> Option<String> {
    for field in projection_fields() {
        let Some(value) = body.pointer(&field).filter(|v| !v.is_null()) else { continue };
        if let Some(slot) = doc.pointer_mut(&field) {
            *slot = value.clone();
        }
    }
    body.pointer(&format!("{DUMP}/source/connection/password"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// 4.2's check of a `connectionString` in a config POST; the string is never echoed.
pub fn check_connection_string(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Ok(());
    }
    let parsed = parse_dsn(text).ok_or("invalid source connection string")?;
    if parsed.contains_key("password") {
        return Err("password must not be embedded in the connection string");
    }
    if parsed.get("host").is_some_and(|h| h.contains(',')) {
        return Err("the source connection string must name exactly one host");
    }
    Ok(())
}

pub fn set_connection_string(doc: &mut Value, text: &str) {
    // A key the file lacks is created, as long as the `source` section exists.
    if let Some(Value::Object(source)) = doc.pointer_mut(&format!("{DUMP}/source")) {
        source.insert("connectionString".into(), json!(text));
    }
}

/// 4.2 rewrites `retrieval.jobs` on each logical config POST (srv/config_seed.go
/// `ensureLogicalPipeline`): the jobs whose spec is there, `logicalRestore` left out when
/// immediateRestore is on.
pub fn ensure_logical_pipeline(doc: &mut Value) {
    let immediate = truthy(doc.pointer(&format!("{DUMP}/immediateRestore/enabled")));
    let jobs: Vec<Value> = ["logicalDump", "logicalRestore", "logicalSnapshot"]
        .into_iter()
        .filter(|job| !(immediate && *job == "logicalRestore"))
        .filter(|job| doc.pointer(&format!("/retrieval/spec/{job}")).is_some())
        .map(Value::from)
        .collect();
    set_at(doc, "/retrieval/jobs", Value::Array(jobs));
}

/// Whether the engine would run its snapshot job after a refresh.
pub fn has_snapshot_job(doc: &Value) -> bool {
    doc.pointer("/retrieval/jobs")
        .and_then(Value::as_array)
        .is_some_and(|jobs| jobs.iter().any(|j| j.as_str() == Some("logicalSnapshot")))
}

pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "y" | "yes" | "on" | "true"),
        _ => false,
    }
}

/// `GET /admin/config.yaml`: the whole file, the password masked.
pub fn yaml(doc: &Value, password_set: bool) -> String {
    let mut shown = doc.clone();
    if password_set {
        set_at(&mut shown, &format!("{DUMP}/source/connection/password"), json!("********"));
    }
    serde_norway::to_string(&shown).unwrap_or_default()
}

pub fn text_at(doc: &Value, pointer: &str) -> String {
    match doc.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Number(_)) => v.to_string(),
        _ => String::new(),
    }
}

/// Where a dump connects, as the engine's dump job works it out when it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub host: String,
    pub port: String,
    pub dbname: String,
    pub username: String,
    /// The 4.2 connection string pg_dump is given instead of the discrete fields.
    pub connection_string: Option<String>,
    /// `rdsIam`: the instance whose endpoint the engine looked up.
    pub rds_instance: Option<String>,
    /// Why the jobs cannot even be built (an unknown source type): the refresh never starts.
    pub build_error: Option<String>,
    /// Why the dump cannot connect once it runs (an instance RDS does not know).
    pub run_error: Option<String>,
}

/// The engine's OS user in its container: what libpq/pgx fall back to without a user.
const ENGINE_OS_USER: &str = "root";

/// The discrete fields (port 5432 and user `postgres` when absent), replaced whole on 4.2
/// by a non-empty connection string (pgx's defaults for what it lacks); with `rdsIam`, the
/// host and port of the named instance's endpoint, unless a 4.2 string names the host.
pub fn effective_source(doc: &Value, version: Version, rds_endpoints: &BTreeMap<String, String>) -> Effective {
    let field = |f: &str| text_at(doc, &format!("{DUMP}/source/connection/{f}"));
    let or = |v: String, default: &str| if v.is_empty() || v == "0" { default.to_string() } else { v };
    let mut out = Effective {
        host: field("host"),
        port: or(field("port"), "5432"),
        dbname: field("dbname"),
        username: or(field("username"), "postgres"),
        connection_string: None,
        rds_instance: None,
        build_error: None,
        run_error: None,
    };
    let string = text_at(doc, &format!("{DUMP}/source/connectionString"));
    if version == Version::V42
        && !string.is_empty()
        && let Some(parsed) = parse_dsn(&string)
    {
        let get = |k: &str| parsed.get(k).cloned().unwrap_or_default();
        out.host = or(get("host"), "/var/run/postgresql");
        out.port = or(get("port"), "5432");
        out.dbname = get("dbname");
        out.username = or(get("user"), ENGINE_OS_USER);
        out.connection_string = Some(string);
    }
    match text_at(doc, &format!("{DUMP}/source/type")).as_str() {
        "" | "remote" | "local" => {}
        "rdsIam" => {
            let id = text_at(doc, &format!("{DUMP}/source/rdsIam/dbInstanceIdentifier"));
            out.rds_instance = Some(id.clone());
            match rds_endpoints.get(&id) {
                Some(endpoint) if out.connection_string.is_none() => {
                    let (host, port) = endpoint.rsplit_once(':').unwrap_or((endpoint, "5432"));
                    (out.host, out.port) = (host.to_string(), port.to_string());
                }
                Some(_) => {}
                None => {
                    out.run_error = Some(format!(
                        "failed to set connection options: DBInstanceNotFound: DBInstance {id} not found"
                    ));
                }
            }
        }
        other => out.build_error = Some(format!("failed to set up a dump helper: unknown source type given: {other}")),
    }
    out
}

fn unescape(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's two forms, as far as the engine needs them (no quoted spaces in key/value).
pub fn parse_dsn(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if let Some(rest) = text.strip_prefix("postgresql://").or_else(|| text.strip_prefix("postgres://")) {
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, db) = main.split_once('/').unwrap_or((main, ""));
        let hosts = match authority.rsplit_once('@') {
            Some((user, hosts)) => {
                match user.split_once(':') {
                    Some((u, p)) => {
                        out.insert("user".into(), unescape(u));
                        out.insert("password".into(), unescape(p));
                    }
                    None => {
                        out.insert("user".into(), unescape(user));
                    }
                }
                hosts
            }
            None => authority,
        };
        let mut names = Vec::new();
        for spec in hosts.split(',') {
            let (h, p) = spec.rsplit_once(':').unwrap_or((spec, ""));
            names.push(unescape(h));
            if !p.is_empty() {
                p.parse::<u16>().ok()?;
                out.insert("port".into(), p.into());
            }
        }
        out.insert("host".into(), names.join(","));
        if !db.is_empty() {
            out.insert("dbname".into(), unescape(db));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=')?;
            out.insert(unescape(k), unescape(v));
        }
        return Some(out);
    }
    for word in text.split_whitespace() {
        let (k, v) = word.split_once('=')?;
        out.insert(k.to_string(), v.trim_matches('\'').to_string());
    }
    if out.get("port").is_some_and(|p| p.parse::<u16>().is_err()) {
        return None;
    }
    Some(out)
}
