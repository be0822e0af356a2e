//! The DBLab Engine API as a refresh uses it (see shared/reference/dblab-api.md), and the
//! rules for reading a refresh's progress from it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::debug;

use crate::error::RefreshError;
use crate::request::DblabSpec;
use crate::run::{PollStatus, Refresh};
use crate::secrets::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Statuses in which the engine will not take a new refresh.
pub const BUSY_STATUSES: &[&str] = &["refreshing", "snapshotting", "renewed", "pending"];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub edition: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstanceStatus {
    pub retrieving: Retrieving,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retrieving {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub last_refresh: Option<String>,
    /// A map keyed by alert type (the OpenAPI spec's array is wrong).
    #[serde(default)]
    pub alerts: Option<BTreeMap<String, Alert>>,
    /// Filled only by `GET /instance/retrieval`, and only while a job runs.
    #[serde(default)]
    pub activity: Option<Activity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Activity {
    #[serde(default)]
    pub source: Option<Vec<Value>>,
    #[serde(default)]
    pub target: Option<Vec<Value>>,
}

impl Retrieving {
    pub fn last_refresh(&self) -> &str {
        self.last_refresh.as_deref().unwrap_or_default()
    }

    /// The failure alert's message, else any error-level one.
    pub fn failure_message(&self) -> Option<String> {
        let alerts = self.alerts.as_ref()?;
        alerts.get("refresh_failed").or_else(|| alerts.values().find(|a| a.level == "error")).map(|a| a.message.clone())
    }
}

pub struct DblabClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl DblabClient {
    fn build_http(spec: &DblabSpec) -> Result<reqwest::Client, RefreshError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("dblab-refresh/", env!("CARGO_PKG_VERSION")));
        if spec.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &spec.ca_certificate {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| RefreshError::Internal(format!("dblab.caCertificate: {e}")))?;
            builder = builder.tls_certs_merge(certs);
        }
        builder.build().map_err(|e| RefreshError::Internal(format!("building the HTTP client: {e}")))
    }

    /// One API call; an error never carries the token, even if the engine echoes it.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        with_token: bool,
    ) -> Result<Value, RefreshError> {
        self.call_raw(method, path, body, with_token).await.map_err(|e| e.redact(self.token.expose()))
    }

    async fn call_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        with_token: bool,
    ) -> Result<Value, RefreshError> {
        let call = format!("{method} {path}");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if with_token {
            req = req.header("Verification-Token", self.token.expose());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| RefreshError::DblabUnavailable {
            endpoint: self.base.clone(),
            message: describe_reqwest_error(&e),
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| RefreshError::DblabUnavailable {
            endpoint: self.base.clone(),
            message: describe_reqwest_error(&e),
        })?;
        debug!(%call, status = status.as_u16(), "DBLab answered");
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return parsed.ok_or_else(|| RefreshError::DblabProtocol {
                call,
                message: format!("the body is not JSON: {}", clip(&text)),
            });
        }
        let message = parsed
            .as_ref()
            .and_then(|v| {
                let code = v.get("code").and_then(Value::as_str).unwrap_or_default();
                let msg = v.get("message").and_then(Value::as_str)?;
                Some(if code.is_empty() { msg.to_string() } else { format!("{code}: {msg}") })
            })
            .unwrap_or_else(|| format!("HTTP {}: {}", status.as_u16(), clip(&text)));
        Err(match status.as_u16() {
            401 | 403 => RefreshError::DblabUnauthorized(message),
            400 | 409 | 422 => RefreshError::DblabRejected { call, message },
            429 | 500..=599 => {
                RefreshError::DblabUnavailable { endpoint: self.base.clone(), message: format!("{call}: {message}") }
            }
            404 => RefreshError::DblabProtocol {
                call,
                message: format!("not found ({message}); is dblab.apiEndpoint the engine's API address?"),
            },
            _ => RefreshError::DblabProtocol { call, message },
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(call: &str, value: Value) -> Result<T, RefreshError> {
        serde_json::from_value(value)
            .map_err(|e| RefreshError::DblabProtocol { call: call.into(), message: e.to_string() })
    }

    /// `GET /healthz`: reachable at all (no token needed).
    pub async fn health(&self) -> Result<Health, RefreshError> {
        let v = self.call(reqwest::Method::GET, "/healthz", None, false).await?;
        Self::decode("GET /healthz", v)
    }

    pub async fn status(&self) -> Result<Retrieving, RefreshError> {
        let v = self.call(reqwest::Method::GET, "/status", None, true).await?;
        Ok(Self::decode::<InstanceStatus>("GET /status", v)?.retrieving)
    }

    /// `GET /instance/retrieval`: like `status` plus the activity lists.
    pub async fn retrieval(&self) -> Result<Retrieving, RefreshError> {
        let v = self.call(reqwest::Method::GET, "/instance/retrieval", None, true).await?;
        Self::decode("GET /instance/retrieval", v)
    }

    pub async fn config(&self) -> Result<Value, RefreshError> {
        self.call(reqwest::Method::GET, "/admin/config", None, true).await
    }

    /// The body holds the password: it is neither logged nor returned.
    pub async fn update_config(&self, body: &Value) -> Result<(), RefreshError> {
        self.call(reqwest::Method::POST, "/admin/config", Some(body), true).await.map(drop)
    }

    pub async fn full_refresh(&self) -> Result<(), RefreshError> {
        self.call(reqwest::Method::POST, "/full-refresh", None, true).await.map(drop)
    }
}

/// Builds DBLab clients, keeping one HTTP client per TLS setting for the life of the
/// process: building one loads the system's root certificates, a cost a warm invocation
/// should not pay again. The token is read on every connect, so a rotation takes effect
/// at once.
#[derive(Default)]
pub struct Connector {
    built: Mutex<Vec<(TlsSetting, reqwest::Client)>>,
}

#[derive(PartialEq, Eq)]
struct TlsSetting {
    insecure: bool,
    ca_certificate: Option<String>,
}

impl Connector {
    /// Reads the token from Secrets Manager and gives the client for the request's engine.
    pub async fn connect(
        &self,
        secrets: &crate::secrets::SecretReader,
        spec: &DblabSpec,
    ) -> Result<DblabClient, RefreshError> {
        let token = secrets.read(&spec.token_secret_arn, "token").await?;
        Ok(DblabClient { http: self.http_for(spec)?, base: spec.api_endpoint.clone(), token })
    }

    fn http_for(&self, spec: &DblabSpec) -> Result<reqwest::Client, RefreshError> {
        let setting = TlsSetting { insecure: spec.insecure, ca_certificate: spec.ca_certificate.clone() };
        // A poisoned lock only means another invocation panicked mid-push: the list is intact.
        let mut built = self.built.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, http)) = built.iter().find(|(s, _)| *s == setting) {
            return Ok(http.clone());
        }
        let http = DblabClient::build_http(spec)?;
        built.push((setting, http.clone()));
        Ok(http)
    }
}

/// What the preflight learnt about the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineReport {
    pub version: String,
    pub retrieval_status: String,
    pub last_refresh: String,
}

/// Before anything costs money: the engine answers, takes the token, is in logical mode
/// and is not already refreshing.
pub async fn preflight(client: &DblabClient) -> Result<EngineReport, RefreshError> {
    let health = client.health().await?;
    let retrieving = client.status().await?;
    if retrieving.mode != "logical" {
        return Err(RefreshError::DblabNotLogical { mode: retrieving.mode });
    }
    if BUSY_STATUSES.contains(&retrieving.status.as_str()) {
        return Err(RefreshError::DblabBusy { status: retrieving.status });
    }
    Ok(EngineReport {
        version: health.version,
        retrieval_status: retrieving.status.clone(),
        last_refresh: retrieving.last_refresh().to_string(),
    })
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn clip(text: &str) -> String {
    let mut s: String = text.chars().take(300).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
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

/// The partial config body pointing the logical dump at the clone.
/// `restore_parallel_jobs` is set only when the request asks: the engine host's CPUs are
/// what matter, and only the request (or the engine's own config) knows them.
pub fn config_patch(
    conn: &SourceConnection,
    password: &Secret,
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
            "rdsIam": {"dbInstanceIdentifier": conn.instance_id},
        },
        "parallelJobs": dump_parallel_jobs,
    }}}}});
    if let Some(jobs) = restore_parallel_jobs {
        patch["retrieval"]["spec"]["logicalRestore"] = json!({"options": {"parallelJobs": jobs}});
    }
    patch
}

/// Fields of the engine's config that differ from what was sent. The engine silently
/// ignores keys its `server.yml` lacks, so only a re-read shows what took.
pub fn config_mismatches(config: &Value, conn: &SourceConnection, restore_parallel_jobs: Option<u32>) -> Vec<String> {
    let base = "/retrieval/spec/logicalDump/options/source/connection";
    let text_at = |field: &str| -> Option<String> {
        match config.pointer(&format!("{base}/{field}"))? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for (field, want) in [
        ("host", conn.host.clone()),
        ("port", conn.port.to_string()),
        ("dbname", conn.dbname.clone()),
        ("username", conn.username.clone()),
    ] {
        match text_at(field) {
            Some(got) if got == want => {}
            Some(got) => out.push(format!("{field} is {got:?}, expected {want:?}")),
            None => {
                out.push(format!("{field} is missing from the engine's config (add it to server.yml so it can be set)"))
            }
        }
    }
    let restore_jobs = "/retrieval/spec/logicalRestore/options/parallelJobs";
    match (restore_parallel_jobs, config.pointer(restore_jobs).and_then(Value::as_u64)) {
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

/// With immediateRestore the engine rejects dump parallelism above one.
pub fn immediate_restore_enabled(config: &Value) -> bool {
    config.pointer("/retrieval/spec/logicalDump/options/immediateRestore/enabled") == Some(&Value::Bool(true))
}

/// The job running now, inferred from the activity lists; `None` when it cannot be told.
pub fn phase_of(retrieving: &Retrieving) -> Option<&'static str> {
    match retrieving.status.as_str() {
        "snapshotting" | "renewed" => return Some("snapshot"),
        "refreshing" => {}
        _ => return None,
    }
    let activity = retrieving.activity.as_ref()?;
    let source = activity.source.as_ref().is_some_and(|s| !s.is_empty());
    let target = activity.target.as_ref().is_some_and(|t| !t.is_empty());
    match (source, target) {
        (true, false) => Some("dump"),
        (false, true) => Some("restore"),
        (true, true) => Some("dump+restore"),
        (false, false) => None,
    }
}

/// The next state of a refresh after one look at the engine (dblab-api.md, "Starting a
/// refresh"): `finished`/`failed` count only once this refresh has been seen to start,
/// by its status or by a `lastRefresh` different from the one read before the trigger.
pub fn advance(prev: &Refresh, seen: &Retrieving, now: OffsetDateTime) -> Refresh {
    let mut next = prev.clone();
    next.polls += 1;
    next.retrieval_status = seen.status.clone();
    next.last_refresh = seen.last_refresh().to_string();
    next.seen_start = prev.seen_start
        || BUSY_STATUSES.contains(&seen.status.as_str())
        || seen.last_refresh() != prev.previous_last_refresh;
    let phase = phase_of(seen);
    if let Some(phase) = phase {
        next.phase = Some(phase.to_string());
    }
    // dblab-api.md: the dump is over when restore sessions run and no dump session does,
    // seen on consecutive looks; or once the engine is past its jobs. Never inferred from
    // a `dump+restore` look (immediateRestore), nor from a look without activity.
    next.restore_looks = if phase == Some("restore") { prev.restore_looks + 1 } else { 0 };
    next.dump_over = prev.dump_over
        || next.restore_looks >= DUMP_OVER_LOOKS
        || (next.seen_start && matches!(seen.status.as_str(), "renewed" | "snapshotting"));
    next.status = match (next.seen_start, seen.status.as_str()) {
        (true, "finished") => PollStatus::Ready,
        (true, "failed") => {
            next.alert = Some(
                seen.failure_message()
                    .unwrap_or_else(|| "the engine reported the refresh failed without an alert".into()),
            );
            PollStatus::Failed
        }
        (true, "inactive") => {
            next.alert = Some("the refresh stopped unexpectedly: retrieval went back to \"inactive\"".into());
            PollStatus::Failed
        }
        _ => PollStatus::Pending,
    };
    if next.status == PollStatus::Pending && now > prev.deadline {
        next.status = PollStatus::TimedOut;
        next.alert = Some(format!(
            "no outcome by the deadline; last status {:?}{}",
            seen.status,
            if next.seen_start { "" } else { " and the refresh was never seen to start" }
        ));
    }
    if next.status != PollStatus::Pending {
        next.finished_at = Some(now);
    }
    next.release_clone =
        prev.release_after_dump && next.dump_over && !prev.dump_over && next.status == PollStatus::Pending;
    next
}

/// Consecutive looks at a restore without a dump before the dump counts as over.
pub const DUMP_OVER_LOOKS: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 05:00 UTC);

    fn spec(insecure: bool) -> DblabSpec {
        DblabSpec {
            api_endpoint: "https://dblab.internal:2345".into(),
            token_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:t".into(),
            insecure,
            ca_certificate: None,
            poll_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3_600),
            restore_parallel_jobs: None,
        }
    }

    #[test]
    fn one_http_client_per_tls_setting_for_the_process() {
        let connector = Connector::default();
        connector.http_for(&spec(false)).unwrap();
        connector.http_for(&spec(false)).unwrap();
        assert_eq!(connector.built.lock().unwrap().len(), 1);
        connector.http_for(&spec(true)).unwrap();
        connector.http_for(&spec(false)).unwrap();
        assert_eq!(connector.built.lock().unwrap().len(), 2);
    }

    fn started(previous: &str) -> Refresh {
        Refresh {
            previous_last_refresh: previous.into(),
            triggered_at: NOW,
            deadline: datetime!(2026-11-22 09:00 UTC),
            dump_parallel_jobs: 2,
            status: PollStatus::Pending,
            retrieval_status: "finished".into(),
            last_refresh: previous.into(),
            seen_start: false,
            phase: None,
            alert: None,
            polls: 0,
            finished_at: None,
            release_after_dump: true,
            restore_looks: 0,
            dump_over: false,
            release_clone: false,
        }
    }

    fn with_activity(source: usize, target: usize) -> Retrieving {
        let mut s = seen("refreshing", "new");
        s.activity = Some(Activity { source: Some(vec![json!({}); source]), target: Some(vec![json!({}); target]) });
        s
    }

    #[test]
    fn the_dump_is_over_after_two_restore_looks_and_the_clone_is_released_once() {
        let r = advance(&started("old"), &with_activity(2, 0), NOW);
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(!r.dump_over && !r.release_clone, "one look is not enough");
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(r.dump_over && r.release_clone);
        let r = advance(&r, &with_activity(0, 3), NOW);
        assert!(r.dump_over && !r.release_clone, "released on one poll only");
    }

    #[test]
    fn an_interrupted_or_overlapping_restore_is_not_the_end_of_the_dump() {
        let r = advance(&started("old"), &with_activity(0, 1), NOW);
        let r = advance(&r, &seen("refreshing", "new"), NOW);
        let r = advance(&r, &with_activity(0, 1), NOW);
        assert!(!r.dump_over, "a look without activity breaks the run of restore looks");
        let mut r = started("old");
        for _ in 0..5 {
            r = advance(&r, &with_activity(1, 1), NOW);
        }
        assert!(!r.dump_over, "immediateRestore: dump and restore at once say nothing");
    }

    #[test]
    fn snapshotting_means_the_dump_is_over_and_finishing_releases_nothing_early() {
        let r = advance(&started("old"), &with_activity(1, 0), NOW);
        let r = advance(&r, &seen("snapshotting", "new"), NOW);
        assert!(r.dump_over && r.release_clone);
        let r = advance(&advance(&started("old"), &with_activity(1, 0), NOW), &seen("finished", "new"), NOW);
        assert!(!r.release_clone, "done: the normal deletion follows");
        let mut keep = started("old");
        keep.release_after_dump = false;
        let r = advance(&advance(&keep, &with_activity(0, 1), NOW), &with_activity(0, 1), NOW);
        assert!(r.dump_over && !r.release_clone, "not asked for");
    }

    fn seen(status: &str, last_refresh: &str) -> Retrieving {
        Retrieving {
            mode: "logical".into(),
            status: status.into(),
            last_refresh: Some(last_refresh.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_stale_finished_is_not_this_runs_outcome() {
        let next = advance(&started("2026-11-21T05:00:00Z"), &seen("finished", "2026-11-21T05:00:00Z"), NOW);
        assert_eq!(next.status, PollStatus::Pending);
        assert!(!next.seen_start);
    }

    #[test]
    fn refreshing_then_finished_is_done() {
        let r = advance(&started("old"), &seen("refreshing", "new"), NOW);
        assert_eq!((r.status, r.seen_start), (PollStatus::Pending, true));
        let r = advance(&r, &seen("snapshotting", "new"), NOW);
        let r = advance(&r, &seen("finished", "new"), NOW);
        assert_eq!(r.status, PollStatus::Ready);
        assert_eq!(r.finished_at, Some(NOW));
        assert_eq!(r.polls, 3);
    }

    #[test]
    fn a_failure_before_the_first_poll_is_caught_by_last_refresh() {
        let mut s = seen("failed", "new");
        s.alerts = Some(BTreeMap::from([(
            "refresh_failed".to_string(),
            Alert { level: "error".into(), message: "pg_dump: connection refused".into() },
        )]));
        let r = advance(&started("old"), &s, NOW);
        assert_eq!(r.status, PollStatus::Failed);
        assert_eq!(r.alert.as_deref(), Some("pg_dump: connection refused"));
    }

    #[test]
    fn a_stale_failure_with_unchanged_last_refresh_waits() {
        let r = advance(&started("old"), &seen("failed", "old"), NOW);
        assert_eq!(r.status, PollStatus::Pending);
    }

    #[test]
    fn inactive_after_start_is_a_failure() {
        let r = advance(&started("old"), &seen("refreshing", "new"), NOW);
        let r = advance(&r, &seen("inactive", "new"), NOW);
        assert_eq!(r.status, PollStatus::Failed);
        assert!(r.alert.unwrap().contains("inactive"));
    }

    #[test]
    fn past_the_deadline_is_timed_out_but_an_outcome_wins() {
        let late = datetime!(2026-11-22 09:00:01 UTC);
        let r = advance(&started("old"), &seen("refreshing", "new"), late);
        assert_eq!(r.status, PollStatus::TimedOut);
        let r = advance(&started("old"), &seen("finished", "new"), late);
        assert_eq!(r.status, PollStatus::Ready);
        let never = advance(&started("old"), &seen("finished", "old"), late);
        assert!(never.alert.unwrap().contains("never seen to start"));
    }

    #[test]
    fn phases_come_from_activity() {
        let mut s = seen("refreshing", "x");
        assert_eq!(phase_of(&s), None);
        s.activity = Some(Activity { source: Some(vec![json!({})]), target: Some(vec![]) });
        assert_eq!(phase_of(&s), Some("dump"));
        s.activity = Some(Activity { source: Some(vec![]), target: Some(vec![json!({})]) });
        assert_eq!(phase_of(&s), Some("restore"));
        s.activity = Some(Activity { source: Some(vec![json!({})]), target: Some(vec![json!({})]) });
        assert_eq!(phase_of(&s), Some("dump+restore"));
        assert_eq!(phase_of(&seen("snapshotting", "x")), Some("snapshot"));
    }

    fn conn() -> SourceConnection {
        SourceConnection {
            host: "clone.abc.rds.amazonaws.com".into(),
            port: 5432,
            dbname: "app".into(),
            username: "dblab".into(),
            instance_id: "dblab-refresh-x-writer".into(),
        }
    }

    #[test]
    fn config_check_names_what_did_not_take() {
        let applied = json!({"retrieval": {"spec": {"logicalDump": {"options": {"source": {"connection": {
            "host": "clone.abc.rds.amazonaws.com", "port": 5432, "dbname": "app", "username": "dblab"}}}}}}});
        assert!(config_mismatches(&applied, &conn(), None).is_empty());
        let partial = json!({"retrieval": {"spec": {"logicalDump": {"options": {"source": {"connection": {
            "host": "old-host", "dbname": "app", "username": "dblab"}}}}}}});
        let diff = config_mismatches(&partial, &conn(), None);
        assert_eq!(diff.len(), 2);
        assert!(diff[0].starts_with("host"));
        assert!(diff[1].starts_with("port is missing"));
    }

    #[test]
    fn patch_carries_the_instance_id_and_jobs() {
        let body = config_patch(&conn(), &Secret::new("pw".into()), 4, None);
        let opts = &body["retrieval"]["spec"]["logicalDump"]["options"];
        assert_eq!(opts["source"]["rdsIam"]["dbInstanceIdentifier"], "dblab-refresh-x-writer");
        assert_eq!(opts["parallelJobs"], 4);
        assert_eq!(opts["source"]["connection"]["port"], 5432);
    }

    #[test]
    fn alerts_map_is_read() {
        let v: InstanceStatus = serde_json::from_value(json!({"retrieving": {
            "mode": "logical", "status": "failed", "lastRefresh": "",
            "alerts": {"refresh_skipped": {"level": "warning", "message": "skipped"},
                       "refresh_failed": {"level": "error", "message": "boom", "lastSeen": "x", "count": 2}}}}))
        .unwrap();
        assert_eq!(v.retrieving.failure_message().as_deref(), Some("boom"));
        assert_eq!(v.retrieving.last_refresh(), "");
    }
}
