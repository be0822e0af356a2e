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
    pub(crate) fn of_projection(projection: &Value) -> Self {
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

    /// The databases the dump is limited to (`logicalDump.options.databases`); empty: every
    /// database the user may connect to.
    pub fn dump_databases(&self) -> Vec<String> {
        self.doc
            .pointer("/retrieval/spec/logicalDump/options/databases")
            .and_then(Value::as_object)
            .map(|dbs| dbs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `immediateRestore.enabled`, read as the engine's YAML library reads a boolean.
    pub fn immediate_restore(&self) -> bool {
        self.doc.pointer(&format!("{DUMP}/immediateRestore/enabled")).is_some_and(truthy)
    }

    /// `retrieval.refresh.skipStartRefresh`: a new engine process runs no refresh of its own.
    pub fn skip_start_refresh(&self) -> bool {
        self.doc.pointer("/retrieval/refresh/skipStartRefresh").is_some_and(truthy)
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
    fn dump_parallel_jobs(&self) -> Option<u32> {
        self.number(&format!("{DUMP}/parallelJobs")).and_then(|n| u32::try_from(n).ok())
    }

    fn number(&self, pointer: &str) -> Option<u64> {
        self.text(pointer).and_then(|t| t.trim().parse().ok())
    }

    /// The dump's `parallelJobs` as the engine will use it: unset (or 0), one job.
    pub fn dump_jobs_in_effect(&self) -> u32 {
        self.dump_parallel_jobs().filter(|n| *n > 0).unwrap_or(1)
    }

    /// Why the engine would make no snapshot after a refresh, if it would not: its logical
    /// snapshot job is not among the jobs it builds. 4.1 builds `retrieval.jobs` as listed;
    /// 4.2 rewrites that list on each config POST from the specs present
    /// (srv/config_seed.go `ensureLogicalPipeline`). Without the job the refresh stops at
    /// `renewed` for good (internal/retrieval/retrieval.go `SnapshotData`: no jobs).
    pub(crate) fn snapshot_job_missing(&self, api: Api) -> Option<String> {
        if self.doc.pointer("/retrieval/spec/logicalSnapshot").is_none() {
            return Some("retrieval.spec.logicalSnapshot is missing".into());
        }
        let listed = self
            .doc
            .pointer("/retrieval/jobs")
            .and_then(Value::as_array)
            .is_some_and(|jobs| jobs.iter().any(|j| j.as_str() == Some("logicalSnapshot")));
        (api == Api::V41 && !listed).then(|| "retrieval.jobs does not list logicalSnapshot".into())
    }

    /// The `ignoreErrors` keys set true: with the restore's, a failing pg_restore does not
    /// stop the refresh, which then ends `finished` with tables missing. The dump's is a
    /// projection field the engine's dump job does not read today, but says the same.
    pub fn ignored_errors(&self) -> Vec<&'static str> {
        [
            ("/retrieval/spec/logicalRestore/options/ignoreErrors", "logicalRestore.options.ignoreErrors"),
            ("/retrieval/spec/logicalDump/options/ignoreErrors", "logicalDump.options.ignoreErrors"),
        ]
        .into_iter()
        .filter(|(pointer, _)| self.doc.pointer(pointer).is_some_and(truthy))
        .map(|(_, key)| key)
        .collect()
    }

    /// Where a dump started now would connect, worked out as the engine's dump job does:
    /// - the discrete `connection` fields, port 5432 and user `postgres` when unset;
    /// - on 4.2, a non-empty `connectionString` replaces all four (libpq's defaults for
    ///   what it lacks: port 5432, the engine's own OS user, no host = its local socket);
    /// - with `type: rdsIam`, host and port are the endpoint RDS gives for
    ///   `rdsIam.dbInstanceIdentifier`, unless a 4.2 string names where to connect.
    pub fn effective_source(&self, api: Api) -> Result<EffectiveSource, String> {
        let source_type = self.text(&format!("{DUMP}/source/type")).unwrap_or_default();
        let mut source = EffectiveSource {
            source_type: source_type.clone(),
            hosts: self.connection("host").filter(|h| !h.is_empty()).into_iter().collect(),
            hostaddr: None,
            port: Some(self.connection("port").filter(|p| !p.is_empty() && p != "0").unwrap_or_else(default_port)),
            dbname: self.connection("dbname"),
            username: Some(self.connection("username").filter(|u| !u.is_empty()).unwrap_or_else(|| "postgres".into())),
            via_connection_string: false,
            rds_instance: None,
        };
        if api == Api::V42
            && let Some(text) = self.connection_string()
        {
            let parsed = ConnString::parse(&text).map_err(|e| format!("source.connectionString is unreadable: {e}"))?;
            source.via_connection_string = true;
            source.hosts = parsed.hosts().into_iter().map(str::to_string).collect();
            source.hostaddr = parsed.get("hostaddr").map(str::to_string);
            source.port = Some(parsed.get("port").map_or_else(default_port, str::to_string));
            source.dbname = parsed.get("dbname").map(str::to_string);
            // Without one, libpq and pgx connect as the engine process's OS user.
            source.username = parsed.get("user").map(str::to_string);
        }
        if source_type == "rdsIam" {
            source.rds_instance =
                Some(self.text(&format!("{DUMP}/source/rdsIam/dbInstanceIdentifier")).unwrap_or_default());
        }
        Ok(source)
    }
}

fn default_port() -> String {
    "5432".into()
}

/// Where the engine's next dump connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveSource {
    /// `source.type`: `remote` (or unset), `local`, `rdsIam`.
    pub source_type: String,
    pub hosts: Vec<String>,
    pub hostaddr: Option<String>,
    pub port: Option<String>,
    pub dbname: Option<String>,
    pub username: Option<String>,
    pub via_connection_string: bool,
    /// `rdsIam`: the instance whose endpoint the engine looks up (empty when unset).
    pub rds_instance: Option<String>,
}

impl EffectiveSource {
    /// Every way this differs from the clone's connection, each naming its field.
    pub(crate) fn differences(&self, conn: &SourceConnection) -> Vec<String> {
        let origin = if self.via_connection_string { "source.connectionString" } else { "source.connection" };
        let mut out = Vec::new();
        match self.source_type.as_str() {
            "" | "remote" | "rdsIam" => {}
            "local" => out.push(
                "source.type is \"local\": the engine dumps a database on its own host (and moves port 5432 to \
                 9999); set source.type to \"remote\" in the engine's server.yml"
                    .into(),
            ),
            other => out.push(format!(
                "source.type is {other:?}, which the engine does not know (remote, local or rdsIam): its refresh \
                 would never start"
            )),
        }
        // With rdsIam the address is the named instance's endpoint, unless a string says where.
        let address_from_rds = self.rds_instance.is_some() && !self.via_connection_string;
        if let Some(instance) = &self.rds_instance {
            if instance.is_empty() {
                out.push(
                    "source.rdsIam.dbInstanceIdentifier is missing from the engine's config (add it to server.yml \
                     so it can be set)"
                        .into(),
                );
            } else if instance != &conn.instance_id {
                out.push(format!(
                    "source.rdsIam.dbInstanceIdentifier is {instance:?}, expected {:?}: with source.type rdsIam the \
                     engine dumps from that instance's endpoint",
                    conn.instance_id
                ));
            }
        }
        if !address_from_rds {
            if self.hosts.is_empty() {
                out.push(if self.via_connection_string {
                    "source.connectionString names no host: the engine would connect to its own local socket".into()
                } else {
                    "host is missing from the engine's config (add it to server.yml so it can be set)".into()
                });
            } else if self.hosts != [conn.host.as_str()] {
                out.push(format!("{origin} host is {:?}, expected {:?}", self.hosts.join(","), conn.host));
            }
            if let Some(addr) = &self.hostaddr {
                out.push(format!("{origin} hostaddr is {addr:?}, which would bypass the clone's host name"));
            }
            let port = conn.port.to_string();
            if self.port.as_deref() != Some(port.as_str()) {
                out.push(format!("{origin} port is {}, expected {port:?}", shown(self.port.as_deref())));
            }
        }
        for (field, got, want) in [("dbname", &self.dbname, &conn.dbname), ("username", &self.username, &conn.username)]
        {
            match got {
                Some(got) if got == want => {}
                Some(got) => out.push(format!("{origin} {field} is {got:?}, expected {want:?}")),
                None if self.via_connection_string => out.push(format!(
                    "source.connectionString has no {}: libpq would use its default, not {want:?}",
                    if field == "username" { "user (the engine's OS user)" } else { "dbname" }
                )),
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

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "unset".to_string(), |v| format!("{v:?}"))
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
    fn the_databases_the_dump_is_limited_to_are_read_by_name() {
        assert_eq!(yaml("", "false").dump_databases(), Vec::<String>::new(), "none: every database");
        let limited = EngineConfig::parse(
            "retrieval:\n  spec:\n    logicalDump:\n      options:\n        databases:\n          app: {}\n          billing:\n            tables: [a]\n",
        )
        .unwrap();
        assert_eq!(limited.dump_databases(), ["app", "billing"]);
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
    fn the_version_probe_is_the_retrieval_mode_key() {
        assert_eq!(Api::of_projection(&json!({"retrievalMode": "logical", "retrieval": {}})), Api::V42);
        assert_eq!(Api::of_projection(&json!({"retrieval": {}})), Api::V41);
    }

    #[test]
    fn a_password_left_in_a_42_connection_string_is_named() {
        let with_password =
            yaml("host=clone.abc.rds.amazonaws.com port=5432 dbname=app user=dblab password=pw", "false");
        assert_eq!(
            mismatches(&with_password, Api::V42, &conn(), 1, None),
            ["source.connectionString still carries a password"]
        );
        assert!(mismatches(&with_password, Api::V41, &conn(), 1, None).is_empty(), "4.1 never reads the string");
    }

    #[test]
    fn restore_jobs_are_checked_only_when_the_request_sets_them() {
        let c = yaml("", "false");
        assert!(mismatches(&c, Api::V42, &conn(), 1, Some(4)).is_empty(), "as sent");
        assert!(mismatches(&c, Api::V42, &conn(), 1, None).is_empty(), "not asked: the engine's own stays");
        let without = EngineConfig::parse(
            "retrieval: {spec: {logicalDump: {options: {source: {connection: {host: clone.abc.rds.amazonaws.com, \
             port: 5432, dbname: app, username: dblab}}}}}}",
        )
        .unwrap();
        let diff = mismatches(&without, Api::V42, &conn(), 1, Some(4));
        assert_eq!(
            diff,
            ["logicalRestore parallelJobs is missing from the engine's config (add it to server.yml so it can be set)"]
        );
    }

    #[test]
    fn jobs_that_did_not_take_are_named() {
        let diff = mismatches(&yaml("", "true"), Api::V42, &conn(), 2, Some(8));
        assert_eq!(diff, ["logicalDump parallelJobs is 1, expected 2", "logicalRestore parallelJobs is 4, expected 8"]);
    }

    #[test]
    fn missing_keys_are_reported_and_the_engines_defaults_count() {
        let partial = EngineConfig::parse(
            "retrieval: {spec: {logicalDump: {options: {source: {connection: {host: old, dbname: app, username: dblab}}}}}}",
        )
        .unwrap();
        // No port: the engine uses 5432, which is the clone's.
        let diff = mismatches(&partial, Api::V41, &conn(), 1, None);
        assert_eq!(diff, ["source.connection host is \"old\", expected \"clone.abc.rds.amazonaws.com\""]);
        let elsewhere = SourceConnection { port: 6543, ..conn() };
        let diff = mismatches(&partial, Api::V41, &elsewhere, 1, None);
        assert!(diff.iter().any(|d| d == "source.connection port is \"5432\", expected \"6543\""), "{diff:?}");
        // No username: the engine connects as postgres.
        let no_user = EngineConfig::parse(
            "retrieval: {spec: {logicalDump: {options: {source: {connection: {host: h, dbname: app}}}}}}",
        )
        .unwrap();
        let source = no_user.effective_source(Api::V41).unwrap();
        assert_eq!(source.username.as_deref(), Some("postgres"));
        let no_db =
            EngineConfig::parse("retrieval: {spec: {logicalDump: {options: {source: {connection: {host: h}}}}}}")
                .unwrap();
        let diff = no_db.effective_source(Api::V41).unwrap().differences(&conn());
        assert!(diff.iter().any(|d| d.starts_with("dbname is missing")), "{diff:?}");
    }

    fn source_yaml(source: &str) -> EngineConfig {
        EngineConfig::parse(&format!("retrieval: {{spec: {{logicalDump: {{options: {{source: {source}}}}}}}}}"))
            .unwrap()
    }

    #[test]
    fn a_42_connection_string_replaces_every_field_with_libpqs_defaults() {
        // Port from nowhere is 5432, not the discrete field's.
        let c = source_yaml(
            "{connection: {host: clone.abc.rds.amazonaws.com, port: 6000, dbname: app, username: dblab}, \
             connectionString: 'host=clone.abc.rds.amazonaws.com dbname=app user=dblab sslmode=require'}",
        );
        let s = c.effective_source(Api::V42).unwrap();
        assert_eq!((s.port.as_deref(), s.via_connection_string), (Some("5432"), true));
        assert!(s.is(&conn()), "{:?}", s.differences(&conn()));
        // No user in the string: the engine's OS user, not the discrete username.
        let c = source_yaml(
            "{connection: {host: clone.abc.rds.amazonaws.com, port: 5432, dbname: app, username: dblab}, \
             connectionString: 'host=clone.abc.rds.amazonaws.com dbname=app sslmode=require'}",
        );
        let diff = c.effective_source(Api::V42).unwrap().differences(&conn());
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].contains("has no user (the engine's OS user)"), "{diff:?}");
        // No host: the engine host's own socket.
        let c =
            source_yaml("{connection: {host: clone.abc.rds.amazonaws.com}, connectionString: 'dbname=app user=dblab'}");
        let diff = c.effective_source(Api::V42).unwrap().differences(&conn());
        assert!(diff.iter().any(|d| d.contains("names no host")), "{diff:?}");
        // 4.1 ignores the string whole.
        assert!(c.effective_source(Api::V41).unwrap().hosts == ["clone.abc.rds.amazonaws.com"]);
    }

    #[test]
    fn rds_iam_dumps_from_the_named_instance_whatever_the_host_says() {
        let c = source_yaml(
            "{type: rdsIam, connection: {host: prod.abc.rds.amazonaws.com, port: 5432, dbname: app, username: dblab}, \
             rdsIam: {awsRegion: us-east-1, dbInstanceIdentifier: dblab-refresh-x-writer}}",
        );
        assert!(mismatches(&c, Api::V41, &conn(), 1, None).is_empty(), "the host field is not where it connects");
        let other = source_yaml(
            "{type: rdsIam, connection: {host: clone.abc.rds.amazonaws.com, port: 5432, dbname: app, username: dblab}, \
             rdsIam: {dbInstanceIdentifier: prod-db}}",
        );
        let diff = mismatches(&other, Api::V42, &conn(), 1, None);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].starts_with("source.rdsIam.dbInstanceIdentifier is \"prod-db\""), "{diff:?}");
        let unset = source_yaml(
            "{type: rdsIam, connection: {host: clone.abc.rds.amazonaws.com, dbname: app, username: dblab}, rdsIam: {}}",
        );
        let diff = mismatches(&unset, Api::V41, &conn(), 1, None);
        assert!(diff.iter().any(|d| d.starts_with("source.rdsIam.dbInstanceIdentifier is missing")), "{diff:?}");
        // A 4.2 string decides the address even with rdsIam: both must be the clone's.
        let via = source_yaml(
            "{type: rdsIam, connection: {dbname: app, username: dblab}, rdsIam: {dbInstanceIdentifier: \
             dblab-refresh-x-writer}, connectionString: 'host=prod port=5432 dbname=app user=dblab sslmode=require'}",
        );
        let diff = mismatches(&via, Api::V42, &conn(), 1, None);
        assert_eq!(diff, ["source.connectionString host is \"prod\", expected \"clone.abc.rds.amazonaws.com\""]);
    }

    #[test]
    fn only_a_remote_or_rds_iam_source_is_a_clone() {
        for (kind, says) in [("local", "source.type is \"local\""), ("s3", "source.type is \"s3\"")] {
            let c = source_yaml(&format!(
                "{{type: {kind}, connection: {{host: clone.abc.rds.amazonaws.com, port: 5432, dbname: app, username: dblab}}}}"
            ));
            let diff = mismatches(&c, Api::V41, &conn(), 1, None);
            assert!(diff.len() == 1 && diff[0].starts_with(says), "{diff:?}");
        }
    }

    #[test]
    fn unset_dump_jobs_are_one_and_ignored_errors_are_named() {
        let c = EngineConfig::parse("retrieval: {spec: {logicalDump: {options: {}}}}").unwrap();
        assert_eq!(c.dump_jobs_in_effect(), 1);
        assert!(c.ignored_errors().is_empty());
        assert_eq!(yaml("", "false").dump_jobs_in_effect(), 1);
        let c = EngineConfig::parse(
            "retrieval: {spec: {logicalDump: {options: {parallelJobs: 0, ignoreErrors: 'yes'}}, \
             logicalRestore: {options: {ignoreErrors: true}}}}",
        )
        .unwrap();
        assert_eq!(c.dump_jobs_in_effect(), 1);
        assert_eq!(c.ignored_errors(), ["logicalRestore.options.ignoreErrors", "logicalDump.options.ignoreErrors"]);
        let off = EngineConfig::parse("retrieval: {spec: {logicalRestore: {options: {ignoreErrors: false}}}}").unwrap();
        assert!(off.ignored_errors().is_empty());
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

    #[test]
    fn values_are_read_as_text_whatever_their_yaml_type() {
        let c = EngineConfig::parse("a: true\nb: 7\nc: x\nd: [1]\n").unwrap();
        assert_eq!(
            (c.text("/a"), c.text("/b"), c.text("/c"), c.text("/d")),
            (Some("true".into()), Some("7".into()), Some("x".into()), None)
        );
    }

    #[test]
    fn dump_jobs_are_read_as_set_and_used_as_the_engine_uses_them() {
        let jobs = |yaml: &str| EngineConfig::parse(yaml).unwrap();
        let four = jobs("retrieval: {spec: {logicalDump: {options: {parallelJobs: 4}}}}");
        assert_eq!((four.dump_parallel_jobs(), four.dump_jobs_in_effect()), (Some(4), 4));
        let unset = jobs("retrieval: {spec: {logicalDump: {options: {}}}}");
        assert_eq!((unset.dump_parallel_jobs(), unset.dump_jobs_in_effect()), (None, 1));
        let zero = jobs("retrieval: {spec: {logicalDump: {options: {parallelJobs: 0}}}}");
        assert_eq!((zero.dump_parallel_jobs(), zero.dump_jobs_in_effect()), (Some(0), 1));
    }

    #[test]
    fn an_empty_or_zero_port_is_the_engines_default() {
        for port in ["''", "0", "6543"] {
            let c = source_yaml(&format!("{{connection: {{host: h, port: {port}, dbname: app, username: dblab}}}}"));
            let expected = if port == "6543" { "6543" } else { "5432" };
            assert_eq!(c.effective_source(Api::V41).unwrap().port.as_deref(), Some(expected), "{port}");
        }
    }

    #[test]
    fn every_field_that_differs_is_named_and_the_source_is_not_the_clone() {
        let c = source_yaml(
            "{connection: {host: clone.abc.rds.amazonaws.com, port: 5432, dbname: other, username: admin}}",
        );
        let source = c.effective_source(Api::V41).unwrap();
        assert_eq!(
            source.differences(&conn()),
            [
                "source.connection dbname is \"other\", expected \"app\"",
                "source.connection username is \"admin\", expected \"dblab\""
            ]
        );
        assert!(!source.is(&conn()));
        let right =
            source_yaml("{connection: {host: clone.abc.rds.amazonaws.com, port: 5432, dbname: app, username: dblab}}");
        assert!(right.effective_source(Api::V41).unwrap().is(&conn()));
    }
}
