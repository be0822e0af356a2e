//! The engine's configuration as a refresh must see it: the patch that points the logical
//! dump at the clone, and the check, on the engine's whole `server.yml`
//! (`GET /admin/config.yaml`), that the dump can read nothing but the clone.
//!
//! `GET /admin/config` cannot be trusted for that: it never shows `immediateRestore` nor a
//! 4.2 `source.connectionString`, and the latter overrides host, port, dbname and user.

use serde_json::{Map, Value, json};

use super::connstr::ConnString;
use crate::secrets::Secret;

const DUMP: &str = "/retrieval/spec/logicalDump/options";
const CONNECTION: &str = "/retrieval/spec/logicalDump/options/source/connection";

/// The API generation of an engine. They differ, for a refresh, in whether
/// `source.connectionString` exists (4.2) or is ignored (4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Api {
    #[serde(rename = "4.1")]
    V41,
    #[serde(rename = "4.2")]
    V42,
}

impl Api {
    /// Only a 4.2 engine puts a top-level `retrievalMode` in its `/admin/config` answer;
    /// the version string can be a bare commit id and says nothing then.
    pub fn of_projection(projection: &Value) -> Self {
        if projection.get("retrievalMode").is_some() { Self::V42 } else { Self::V41 }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V41 => "4.1",
            Self::V42 => "4.2",
        }
    }
}

/// The source connection the engine must dump from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConnection {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub username: String,
    /// The clone's INSTANCE id, for `rdsIam` (never an Aurora cluster id).
    pub instance_id: String,
}

/// The engine's `server.yml`, as `GET /admin/config.yaml` returns it (tokens and passwords
/// masked by the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    doc: Value,
}

impl EngineConfig {
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let doc: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
        Ok(Self { doc: to_json(doc) })
    }

    fn text(&self, pointer: &str) -> Option<String> {
        match self.doc.pointer(pointer)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `immediateRestore.enabled`, read as the engine's YAML library reads a boolean.
    pub fn immediate_restore(&self) -> bool {
        self.doc.pointer(&format!("{DUMP}/immediateRestore/enabled")).is_some_and(truthy)
    }

    /// The engine's own refresh schedule, if it has one.
    pub fn timetable(&self) -> Option<String> {
        self.text("/retrieval/refresh/timetable").map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// A non-empty `source.connectionString` (only a 4.2 engine acts on it).
    pub fn connection_string(&self) -> Option<String> {
        self.text(&format!("{DUMP}/source/connectionString")).filter(|s| !s.trim().is_empty())
    }

    fn connection(&self, field: &str) -> Option<String> {
        self.text(&format!("{CONNECTION}/{field}"))
    }

    /// The dump's `parallelJobs`, if `server.yml` sets it.
    pub fn dump_parallel_jobs(&self) -> Option<u32> {
        self.number(&format!("{DUMP}/parallelJobs")).and_then(|n| u32::try_from(n).ok())
    }

    fn number(&self, pointer: &str) -> Option<u64> {
        self.text(pointer).and_then(|t| t.trim().parse().ok())
    }

    /// Where a dump started now would connect: host, port, dbname, user, with a 4.2
    /// connection string overriding the discrete fields as the engine does.
    pub fn effective_source(&self, api: Api) -> Result<EffectiveSource, String> {
        let mut source = EffectiveSource {
            hosts: self.connection("host").into_iter().collect(),
            hostaddr: None,
            port: self.connection("port"),
            dbname: self.connection("dbname"),
            username: self.connection("username"),
            via_connection_string: false,
        };
        if api == Api::V42
            && let Some(text) = self.connection_string()
        {
            let parsed = ConnString::parse(&text).map_err(|e| format!("source.connectionString is unreadable: {e}"))?;
            source.via_connection_string = true;
            let hosts = parsed.hosts();
            if !hosts.is_empty() {
                source.hosts = hosts.into_iter().map(str::to_string).collect();
            }
            source.hostaddr = parsed.get("hostaddr").map(str::to_string);
            for (field, key) in
                [(&mut source.port, "port"), (&mut source.dbname, "dbname"), (&mut source.username, "user")]
            {
                if let Some(v) = parsed.get(key) {
                    *field = Some(v.to_string());
                }
            }
        }
        Ok(source)
    }
}

/// Where the engine's next dump connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveSource {
    pub hosts: Vec<String>,
    pub hostaddr: Option<String>,
    pub port: Option<String>,
    pub dbname: Option<String>,
    pub username: Option<String>,
    pub via_connection_string: bool,
}

impl EffectiveSource {
    /// Every way this differs from the clone's connection, each naming its field.
    pub fn differences(&self, conn: &SourceConnection) -> Vec<String> {
        let origin = if self.via_connection_string { "source.connectionString" } else { "source.connection" };
        let mut out = Vec::new();
        if self.hosts.is_empty() {
            out.push("host is missing from the engine's config (add it to server.yml so it can be set)".into());
        } else if self.hosts != [conn.host.as_str()] {
            out.push(format!("{origin} host is {:?}, expected {:?}", self.hosts.join(","), conn.host));
        }
        if let Some(addr) = &self.hostaddr {
            out.push(format!("{origin} hostaddr is {addr:?}, which would bypass the clone's host name"));
        }
        let port = conn.port.to_string();
        for (field, got, want) in [
            ("port", &self.port, &port),
            ("dbname", &self.dbname, &conn.dbname),
            ("username", &self.username, &conn.username),
        ] {
            match got {
                Some(got) if got == want => {}
                Some(got) => out.push(format!("{origin} {field} is {got:?}, expected {want:?}")),
                None => out.push(format!(
                    "{field} is missing from the engine's config (add it to server.yml so it can be set)"
                )),
            }
        }
        out
    }

    /// Whether a dump would read the clone and nothing else.
    pub fn is(&self, conn: &SourceConnection) -> bool {
        self.differences(conn).is_empty()
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        // YAML 1.1, as the engine reads it: y, yes, on and true in any common case.
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "y" | "yes" | "on" | "true"),
        _ => false,
    }
}

fn to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                n.as_f64().map_or(Value::Null, |f| json!(f))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => to_json(tagged.value),
    }
}

/// Dump jobs for a clone class: half its vCPUs, at least one .
pub fn dump_parallel_jobs(instance_class: &str) -> u32 {
    let size = instance_class.rsplit('.').next().unwrap_or_default();
    let vcpus = match size {
        "micro" | "small" | "medium" | "large" => 2,
        "xlarge" => 4,
        s => s.strip_suffix("xlarge").and_then(|n| n.parse::<u32>().ok()).map_or(2, |n| n * 4),
    };
    (vcpus / 2).max(1)
}

/// The `connectionString` to send. A 4.1 engine ignores the key, and on 4.2 an empty one
/// lets the discrete fields apply. A string that carries libpq options (TLS settings...)
/// is kept, pointed at the clone and without a password, rather than dropping them.
pub fn connection_string_for(api: Api, current: Option<&str>, conn: &SourceConnection) -> Result<String, String> {
    let Some(current) = current.filter(|_| api == Api::V42) else { return Ok(String::new()) };
    let parsed = ConnString::parse(current).map_err(|e| {
        format!("the engine's source.connectionString is unreadable ({e}); fix or remove it in server.yml")
    })?;
    if parsed.options().next().is_none() {
        return Ok(String::new());
    }
    Ok(parsed.readdressed(&conn.host, conn.port, &conn.dbname, &conn.username).render())
}

/// The partial config body pointing the logical dump at the clone.
/// `restore_parallel_jobs` is set only when the request asks: the engine host's CPUs are
/// what matter, and only the request (or the engine's own config) knows them.
pub fn config_patch(
    conn: &SourceConnection,
    password: &Secret,
    connection_string: &str,
    dump_parallel_jobs: u32,
    restore_parallel_jobs: Option<u32>,
) -> Value {
    let mut patch = json!({"retrieval": {"spec": {"logicalDump": {"options": {
        "source": {
            "connection": {
                "host": conn.host,
                "port": conn.port,
                "dbname": conn.dbname,
                "username": conn.username,
                "password": password.expose(),
            },
            "connectionString": connection_string,
            "rdsIam": {"dbInstanceIdentifier": conn.instance_id},
        },
        "parallelJobs": dump_parallel_jobs,
    }}}}});
    if let Some(jobs) = restore_parallel_jobs {
        patch["retrieval"]["spec"]["logicalRestore"] = json!({"options": {"parallelJobs": jobs}});
    }
    patch
}

/// What the engine's `server.yml` says that differs from what was sent. The engine
/// silently skips keys its file lacks, and a 4.2 connection string overrides the
/// discrete fields: only the whole file shows where the next dump will connect.
pub fn mismatches(
    config: &EngineConfig,
    api: Api,
    conn: &SourceConnection,
    dump_parallel_jobs: u32,
    restore_parallel_jobs: Option<u32>,
) -> Vec<String> {
    let mut out = match config.effective_source(api) {
        Ok(source) => source.differences(conn),
        Err(e) => vec![e],
    };
    // A 4.1 engine ignores the key, so only a 4.2 string needs checking in its own right.
    if api == Api::V42
        && let Some(text) = config.connection_string()
        && let Ok(parsed) = ConnString::parse(&text)
        && parsed.get("password").is_some()
    {
        out.push("source.connectionString still carries a password".into());
    }
    if let Some(got) = config.number(&format!("{DUMP}/parallelJobs"))
        && got != u64::from(dump_parallel_jobs)
    {
        out.push(format!("logicalDump parallelJobs is {got}, expected {dump_parallel_jobs}"));
    }
    let restore_jobs = "/retrieval/spec/logicalRestore/options/parallelJobs";
    match (restore_parallel_jobs, config.number(restore_jobs)) {
        (Some(want), Some(got)) if got != u64::from(want) => {
            out.push(format!("logicalRestore parallelJobs is {got}, expected {want}"));
        }
        (Some(_), None) => out.push(
            "logicalRestore parallelJobs is missing from the engine's config (add it to server.yml so it can be set)"
                .into(),
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> SourceConnection {
        SourceConnection {
            host: "clone.abc.rds.amazonaws.com".into(),
            port: 5432,
            dbname: "app".into(),
            username: "dblab".into(),
            instance_id: "dblab-refresh-x-writer".into(),
        }
    }

    fn yaml(connection_string: &str, immediate: &str) -> EngineConfig {
        EngineConfig::parse(&format!(
            r#"
server:
  verificationToken: "****"
retrieval:
  refresh:
    timetable: ""
  jobs: [logicalDump, logicalRestore, logicalSnapshot]
  spec:
    logicalDump:
      options:
        source:
          type: remote
          connection:
            host: clone.abc.rds.amazonaws.com
            port: 5432
            dbname: app
            username: dblab
            password: "****"
          connectionString: "{connection_string}"
        parallelJobs: 1
        immediateRestore:
          enabled: {immediate}
    logicalRestore:
      options:
        parallelJobs: 4
"#
        ))
        .unwrap()
    }

    #[test]
    fn immediate_restore_is_read_as_yaml_1_1_reads_it() {
        for on in ["true", "yes", "On", "y", "TRUE"] {
            assert!(yaml("", on).immediate_restore(), "{on}");
        }
        for off in ["false", "no", "off", "n", "''"] {
            assert!(!yaml("", off).immediate_restore(), "{off}");
        }
    }

    #[test]
    fn a_stale_connection_string_is_where_a_42_engine_dumps_from() {
        let stale = yaml("host=prod.abc.rds.amazonaws.com port=5432 dbname=app user=dblab sslmode=require", "false");
        let diff = mismatches(&stale, Api::V42, &conn(), 1, None);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].starts_with("source.connectionString host is \"prod.abc.rds.amazonaws.com\""), "{diff:?}");
        assert!(mismatches(&stale, Api::V41, &conn(), 1, None).is_empty(), "4.1 ignores the string");
        assert!(mismatches(&yaml("", "false"), Api::V42, &conn(), 1, None).is_empty());
        let pointed = yaml("host=clone.abc.rds.amazonaws.com port=5432 dbname=app user=dblab sslmode=require", "false");
        assert!(mismatches(&pointed, Api::V42, &conn(), 1, None).is_empty());
    }

    #[test]
    fn the_string_to_send_keeps_options_only_on_42() {
        let c = conn();
        assert_eq!(connection_string_for(Api::V41, Some("host=prod sslmode=require"), &c).unwrap(), "");
        assert_eq!(connection_string_for(Api::V42, None, &c).unwrap(), "");
        assert_eq!(connection_string_for(Api::V42, Some("host=prod port=5432 user=u"), &c).unwrap(), "");
        let kept = connection_string_for(Api::V42, Some("postgresql://u:pw@prod/app?sslmode=verify-full"), &c).unwrap();
        assert_eq!(kept, "postgresql://dblab@clone.abc.rds.amazonaws.com:5432/app?sslmode=verify-full");
        assert!(connection_string_for(Api::V42, Some("host='x"), &c).is_err());
    }

    #[test]
    fn dump_jobs_follow_the_class() {
        assert_eq!(dump_parallel_jobs("db.t3.medium"), 1);
        assert_eq!(dump_parallel_jobs("db.r6g.large"), 1);
        assert_eq!(dump_parallel_jobs("db.r6g.xlarge"), 2);
        assert_eq!(dump_parallel_jobs("db.r6g.2xlarge"), 4);
        assert_eq!(dump_parallel_jobs("db.r6g.16xlarge"), 32);
        assert_eq!(dump_parallel_jobs("db.serverless"), 1);
    }

    #[test]
    fn the_version_probe_is_the_retrieval_mode_key() {
        assert_eq!(Api::of_projection(&json!({"retrievalMode": "logical", "retrieval": {}})), Api::V42);
        assert_eq!(Api::of_projection(&json!({"retrieval": {}})), Api::V41);
    }

    #[test]
    fn jobs_that_did_not_take_are_named() {
        let diff = mismatches(&yaml("", "true"), Api::V42, &conn(), 2, Some(8));
        assert_eq!(diff, ["logicalDump parallelJobs is 1, expected 2", "logicalRestore parallelJobs is 4, expected 8"]);
    }

    #[test]
    fn missing_keys_are_reported() {
        let partial = EngineConfig::parse(
            "retrieval: {spec: {logicalDump: {options: {source: {connection: {host: old, dbname: app, username: dblab}}}}}}",
        )
        .unwrap();
        let diff = mismatches(&partial, Api::V41, &conn(), 1, None);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("source.connection host"));
        assert!(diff[1].starts_with("port is missing"));
    }

    #[test]
    fn patch_carries_the_instance_id_jobs_and_the_connection_string() {
        let body = config_patch(&conn(), &Secret::new("pw".into()), "", 4, None);
        let opts = &body["retrieval"]["spec"]["logicalDump"]["options"];
        assert_eq!(opts["source"]["rdsIam"]["dbInstanceIdentifier"], "dblab-refresh-x-writer");
        assert_eq!(opts["source"]["connectionString"], "");
        assert_eq!(opts["parallelJobs"], 4);
        assert_eq!(opts["source"]["connection"]["port"], 5432);
    }
}
