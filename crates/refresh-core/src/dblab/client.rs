//! The HTTP client of the engine's API (`docs/dblab-engine.md` lists the calls and how
//! 4.1 and 4.2 answer them): the token, timeouts that fit the invocation's budget, and
//! errors named for the state machine with any echoed secret removed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::debug;

use super::config::EngineConfig;
use super::config::SourceConnection;
use super::engine_clock::EngineClock;
use super::engines::Engine;
use super::status::{EngineSnapshot, Health, InstanceStatus, Retrieving, SourceCheck};
use crate::error::RefreshError;
use crate::request::DblabSpec;
use crate::secrets::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one call may take, connecting included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// A call is not started with less time than this left in the budget.
const MIN_CALL_TIME: Duration = Duration::from_secs(2);

/// One API call: what to send, and whether it carries the token.
struct Call<'a> {
    method: reqwest::Method,
    path: &'static str,
    body: Option<&'a Value>,
    with_token: bool,
}

impl<'a> Call<'a> {
    fn get(path: &'static str) -> Self {
        Self { method: reqwest::Method::GET, path, body: None, with_token: true }
    }

    fn post(path: &'static str, body: Option<&'a Value>) -> Self {
        Self { method: reqwest::Method::POST, path, body, with_token: true }
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

pub struct DblabClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    /// Other secrets the engine holds (the source password): nothing it says carries them on.
    hidden: Vec<Secret>,
    /// No call may run past this: the invocation's deadline, less its margin.
    until: Option<Instant>,
    /// The engine's clock, as its latest answer showed it.
    clock: Mutex<EngineClock>,
}

impl DblabClient {
    fn build_http(setting: &TlsSetting) -> Result<reqwest::Client, RefreshError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("dblab-refresh/", env!("CARGO_PKG_VERSION")))
            // Only the stack's listed address gets the token and the password: a redirect
            // would carry the Verification-Token header (reqwest strips only its own
            // credentials across hosts) and, for a 307/308, the POST's body elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if setting.plain_http {
            // Plain HTTP verifies no certificate: no trust store to load (the default loads
            // and parses every root of the system when the client is built). An engine that
            // redirects to HTTPS is then refused: name its HTTPS endpoint instead.
            builder = builder.tls_certs_only([]);
        } else if setting.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &setting.ca_certificate {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| RefreshError::Internal(format!("dblab.caCertificate: {e}")))?;
            builder = builder.tls_certs_merge(certs);
        }
        builder.build().map_err(|e| RefreshError::Internal(format!("building the HTTP client: {e}")))
    }

    /// The same client, whose calls never run past `until` (a Lambda invocation's budget).
    pub fn within(mut self, until: Option<Instant>) -> Self {
        self.until = until;
        self
    }

    /// The same client, which also removes `secret`, in every form, from whatever the
    /// engine says: its error messages and its alerts.
    pub fn hiding(mut self, secret: &Secret) -> Self {
        self.hidden.push(secret.clone());
        self
    }

    /// `text` without the token or any hidden secret, in any form.
    fn scrub(&self, text: &str) -> String {
        let mut out = crate::redaction::redact(text, self.token.expose());
        for secret in &self.hidden {
            out = crate::redaction::redact(&out, secret.expose());
        }
        out
    }

    /// The start of a body the engine sent, secrets removed first: cut first, a secret
    /// straddling the cut would leave its first part, which no redaction recognises.
    fn excerpt(&self, text: &str) -> String {
        clip(&self.scrub(text))
    }

    fn scrub_error(&self, error: RefreshError) -> RefreshError {
        self.hidden.iter().fold(error.redact(self.token.expose()), |e, secret| e.redact(secret.expose()))
    }

    /// The alerts' messages carry the tools' own words, which may quote a connection string.
    fn scrub_alerts(&self, mut retrieving: Retrieving) -> Retrieving {
        for alert in retrieving.alerts.iter_mut().flat_map(BTreeMap::values_mut) {
            alert.message = self.scrub(&alert.message);
        }
        retrieving
    }

    /// The engine's clock against ours, as its latest answer showed it.
    pub fn clock(&self) -> EngineClock {
        *self.clock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The engine's API address, as the request gave it.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// One API call's body; an error never carries a secret, even if the engine echoes it.
    async fn call_text(&self, call: Call<'_>) -> Result<String, RefreshError> {
        self.send(call).await.map_err(|e| self.scrub_error(e))
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, RefreshError> {
        let name = call.name();
        let text = self.call_text(call).await?;
        serde_json::from_str(&text).map_err(|_| {
            self.scrub_error(RefreshError::DblabProtocol {
                call: name,
                message: format!("the body is not JSON: {}", self.excerpt(&text)),
            })
        })
    }

    /// How long this call may take: the usual limit, or less when the budget is short.
    fn call_timeout(&self, call: &str) -> Result<Duration, RefreshError> {
        let Some(until) = self.until else { return Ok(REQUEST_TIMEOUT) };
        let left = until.saturating_duration_since(Instant::now());
        if left < MIN_CALL_TIME {
            return Err(RefreshError::DblabUnavailable {
                endpoint: self.base.clone(),
                message: format!("{call}: not started, this invocation has too little time left"),
            });
        }
        Ok(left.min(REQUEST_TIMEOUT))
    }

    async fn send(&self, call: Call<'_>) -> Result<String, RefreshError> {
        let Call { method, path, body, with_token } = call;
        let call = format!("{method} {path}");
        let timeout = self.call_timeout(&call)?;
        let mut req = self.http.request(method, format!("{}{path}", self.base)).timeout(timeout);
        if with_token {
            req = req.header("Verification-Token", self.token.expose());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let sent = time::OffsetDateTime::now_utc();
        let response = req.send().await.map_err(|e| RefreshError::DblabUnavailable {
            endpoint: self.base.clone(),
            message: format!("{call}: {}", describe_reqwest_error(&e)),
        })?;
        let date = response.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok());
        let clock = EngineClock::read(date, sent, time::OffsetDateTime::now_utc());
        *self.clock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = clock;
        let status = response.status();
        let location =
            response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
        let text = response.text().await.map_err(|e| RefreshError::DblabUnavailable {
            endpoint: self.base.clone(),
            message: format!("{call}: {}", describe_reqwest_error(&e)),
        })?;
        debug!(%call, status = status.as_u16(), "DBLab answered");
        if status.is_success() {
            return Ok(text);
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| {
                let code = v.get("code").and_then(Value::as_str).unwrap_or_default();
                let msg = v.get("message").and_then(Value::as_str)?;
                Some(if code.is_empty() { msg.to_string() } else { format!("{code}: {msg}") })
            })
            .unwrap_or_else(|| format!("HTTP {}: {}", status.as_u16(), self.excerpt(&text)));
        Err(match status.as_u16() {
            401 | 403 => RefreshError::DblabUnauthorized(message),
            400 | 409 | 422 => RefreshError::DblabRejected { call, message },
            429 | 500..=599 => {
                RefreshError::DblabUnavailable { endpoint: self.base.clone(), message: format!("{call}: {message}") }
            }
            404 => RefreshError::DblabProtocol {
                call,
                message: format!("not found ({message}); is the engine's address in DblabEngines its API address?"),
            },
            300..=399 => RefreshError::DblabProtocol {
                call,
                message: format!(
                    "redirected (HTTP {}) to {}: not followed, the token and the password go only to the address \
                     the stack lists; list the engine's final API address in DblabEngines",
                    status.as_u16(),
                    self.excerpt(location.as_deref().unwrap_or("nowhere"))
                ),
            },
            _ => RefreshError::DblabProtocol { call, message },
        })
    }

    /// A type error quotes the value it met: scrubbed like every other error.
    fn decode<T: serde::de::DeserializeOwned>(&self, call: &str, value: Value) -> Result<T, RefreshError> {
        serde_json::from_value(value)
            .map_err(|e| self.scrub_error(RefreshError::DblabProtocol { call: call.into(), message: e.to_string() }))
    }

    /// `GET /healthz`: reachable at all (no token needed).
    pub async fn health(&self) -> Result<Health, RefreshError> {
        let v = self.call(Call { with_token: false, ..Call::get("/healthz") }).await?;
        self.decode("GET /healthz", v)
    }

    /// `GET /status`: the retrieval state and the engine's own settings.
    pub(crate) async fn instance_status(&self) -> Result<InstanceStatus, RefreshError> {
        let v = self.call(Call::get("/status")).await?;
        let mut status: InstanceStatus = self.decode("GET /status", v)?;
        status.retrieving = self.scrub_alerts(status.retrieving);
        Ok(status)
    }

    /// `GET /instance/retrieval`: like `status` plus the activity lists.
    pub async fn retrieval(&self) -> Result<Retrieving, RefreshError> {
        let v = self.call(Call::get("/instance/retrieval")).await?;
        Ok(self.scrub_alerts(self.decode("GET /instance/retrieval", v)?))
    }

    /// `GET /admin/config`: the projection the engine exposes; its shape tells the API version.
    pub(crate) async fn config_projection(&self) -> Result<Value, RefreshError> {
        self.call(Call::get("/admin/config")).await
    }

    /// `GET /admin/config.yaml`: the whole `server.yml`, secrets masked by the engine.
    pub async fn config_file(&self) -> Result<EngineConfig, RefreshError> {
        let call = "GET /admin/config.yaml";
        let text = self.call_text(Call::get("/admin/config.yaml")).await?;
        EngineConfig::parse(&text)
            .map_err(|message| self.scrub_error(RefreshError::DblabProtocol { call: call.into(), message }))
    }

    /// The body holds the password: it is neither logged nor returned.
    pub async fn update_config(&self, body: &Value) -> Result<(), RefreshError> {
        self.call_text(Call::post("/admin/config", Some(body))).await.map(drop)
    }

    /// `GET /snapshots`: every snapshot of every pool.
    pub async fn snapshots(&self) -> Result<Vec<EngineSnapshot>, RefreshError> {
        let v = self.call(Call::get("/snapshots")).await?;
        self.decode("GET /snapshots", v)
    }

    /// `POST /admin/test-db-source` (4.1 and 4.2, srv/config.go `testDBSource`): the engine
    /// connects to `conn` as its dump would, then to each of `databases` (every database
    /// the user may connect to when empty, at most five), and compares their extensions and
    /// locales with its dump image's. A source it cannot reach is a 200 with status
    /// `error`; a failed query a 400. The body holds the password: never logged.
    pub async fn test_db_source(
        &self,
        conn: &SourceConnection,
        password: &Secret,
        databases: &[String],
    ) -> Result<SourceCheck, RefreshError> {
        // models.ConnectionTest: the port is a string there.
        let body = serde_json::json!({
            "host": conn.host,
            "port": conn.port.to_string(),
            "dbname": conn.dbname,
            "username": conn.username,
            "password": password.expose(),
            "db_list": databases,
        });
        let v = self.call(Call::post("/admin/test-db-source", Some(&body))).await?;
        let mut check: SourceCheck = self.decode("POST /admin/test-db-source", v)?;
        check.message = self.scrub(&check.message);
        Ok(check)
    }

    pub async fn full_refresh(&self) -> Result<(), RefreshError> {
        self.call_text(Call::post("/full-refresh", None)).await.map(drop)
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
    plain_http: bool,
    insecure: bool,
    ca_certificate: Option<String>,
}

impl Connector {
    /// Reads the engine's token from Secrets Manager and gives its client: only an engine
    /// of the stack's list can be reached (the request's CA certificate may be trusted too).
    pub async fn connect(
        &self,
        secrets: &crate::secrets::SecretReader,
        engine: &Engine,
        spec: &DblabSpec,
    ) -> Result<DblabClient, RefreshError> {
        let token = secrets.read(engine.token_secret_arn(), "token").await?;
        Ok(DblabClient {
            http: self.http_for(engine, spec)?,
            base: engine.endpoint().to_string(),
            token,
            hidden: Vec::new(),
            until: None,
            clock: Mutex::default(),
        })
    }

    fn http_for(&self, engine: &Engine, spec: &DblabSpec) -> Result<reqwest::Client, RefreshError> {
        let setting = TlsSetting {
            plain_http: engine.plaintext(),
            insecure: engine.insecure(),
            ca_certificate: spec.ca_certificate.clone(),
        };
        // A poisoned lock only means another invocation panicked mid-push: the list is intact.
        let mut built = self.built.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, http)) = built.iter().find(|(s, _)| *s == setting) {
            return Ok(http.clone());
        }
        let http = DblabClient::build_http(&setting)?;
        built.push((setting, http.clone()));
        Ok(http)
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_call_is_named_by_its_method_and_path() {
        assert_eq!(super::Call::get("/status").name(), "GET /status");
        assert_eq!(super::Call::post("/full-refresh", None).name(), "POST /full-refresh");
    }

    use super::*;

    fn engine(insecure: bool) -> Engine {
        let flag = if insecure { "insecure" } else { "" };
        let list = super::super::engines::EngineList::parse(&format!(
            "e https://dblab.internal:2345 arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf {flag}"
        ));
        list.unwrap().engines()[0].clone()
    }

    fn spec() -> DblabSpec {
        DblabSpec {
            engine: Some("e".into()),
            api_endpoint: None,
            token_secret_arn: None,
            ca_certificate: None,
            poll_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3_600),
            start_timeout: Duration::from_secs(300),
            restore_parallel_jobs: None,
            allow_ignored_errors: false,
            allow_lvm: false,
        }
    }

    #[test]
    fn one_http_client_per_tls_setting_for_the_process() {
        let connector = Connector::default();
        connector.http_for(&engine(false), &spec()).unwrap();
        connector.http_for(&engine(false), &spec()).unwrap();
        assert_eq!(connector.built.lock().unwrap().len(), 1);
        connector.http_for(&engine(true), &spec()).unwrap();
        connector.http_for(&engine(false), &spec()).unwrap();
        assert_eq!(connector.built.lock().unwrap().len(), 2);
    }

    /// A client of an address nothing answers on.
    fn client(token: &str) -> DblabClient {
        DblabClient {
            http: Connector::default().http_for(&engine(false), &spec()).unwrap(),
            base: "http://127.0.0.1:9".into(),
            token: Secret::new(token.into()),
            hidden: Vec::new(),
            until: None,
            clock: Mutex::default(),
        }
    }

    #[test]
    fn an_engines_answer_is_clipped_past_300_characters_and_says_so() {
        assert_eq!(super::clip("short"), "short");
        let exact = "é".repeat(300);
        assert_eq!(super::clip(&exact), exact, "300 characters, whatever their bytes, are kept whole");
        let long = format!("{exact}x");
        assert_eq!(super::clip(&long), format!("{exact}…"));
    }

    #[test]
    fn the_engines_alerts_lose_every_secret_the_client_hides() {
        let c = client("tok-secret").hiding(&Secret::new("pw-secret".into()));
        let retrieving: Retrieving = serde_json::from_value(serde_json::json!({"alerts": {"refresh_failed": {
            "level": "error", "message": "pg_dump: postgres://u:pw-secret@h/db failed (token tok-secret)"
        }}}))
        .unwrap();
        let said = c.scrub_alerts(retrieving).failure_message().unwrap();
        assert!(!said.contains("pw-secret") && !said.contains("tok-secret") && said.starts_with("pg_dump"), "{said}");
    }

    #[test]
    fn a_client_gives_its_address_and_the_clock_its_latest_answer_showed() {
        let c = client("t");
        assert_eq!(c.endpoint(), "http://127.0.0.1:9");
        let read = EngineClock { ahead_ms: Some(1_500), half_trip_ms: 20, answered: None };
        *c.clock.lock().unwrap() = read;
        assert_eq!(c.clock(), read);
    }

    /// A listed engine (or a proxy before it) that redirects: the token and the POST's body
    /// (the password) must not follow to the other address.
    #[tokio::test]
    async fn a_redirect_is_not_followed_with_the_token_or_the_body() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}/admin/config", elsewhere.local_addr().unwrap());
        let listed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listed.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listed.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let answer = format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let client = DblabClient { base, ..client("tok-secret") };
        let err = client.update_config(&serde_json::json!({"password": "pw-secret"})).await.unwrap_err();
        assert_eq!(err.name(), "DblabProtocolError", "{err}");
        assert!(err.to_string().contains("redirected (HTTP 307)") && err.to_string().contains("DblabEngines"), "{err}");
        let followed = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
        assert!(followed.is_err(), "the redirect was followed");
    }

    #[test]
    fn a_call_never_outlasts_the_budget() {
        let client = client("t");
        assert_eq!(client.call_timeout("GET /status").unwrap(), REQUEST_TIMEOUT);
        let client = client.within(Some(Instant::now() + Duration::from_secs(7)));
        let t = client.call_timeout("GET /status").unwrap();
        assert!(t <= Duration::from_secs(7) && t > Duration::from_secs(5), "{t:?}");
        let client = client.within(Some(Instant::now() + Duration::from_secs(1)));
        let err = client.call_timeout("GET /status").unwrap_err();
        assert_eq!(err.name(), "DblabUnavailable", "transient: the next invocation tries again");
    }

    #[test]
    fn a_secret_straddling_the_cut_of_an_engines_answer_is_removed_before_the_cut() {
        let password = Secret::new("straddling-password-0123456789".into());
        let client = client("t0ken-value").hiding(&password);
        // The cut falls in the middle of the password.
        let body = format!("{}{} and more", "x".repeat(290), password.expose());
        let excerpt = client.excerpt(&body);
        assert!(!excerpt.contains("straddling"), "{excerpt}");
        assert!(excerpt.contains(crate::redaction::REDACTED), "{excerpt}");
    }
}
