//! Emulated AWS: the moto server this test process shares (started once, through
//! `tests/fixtures/moto_launcher.py`), SDK configuration for it, its fixture endpoints, and
//! an interceptor that records the requests a client sends.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::config::Credentials;
use serde_json::Value;
use time::OffsetDateTime;

/// Page size the launcher gives RDS describes: small, so a dozen resources span pages.
pub const RDS_PAGE_SIZE: usize = 5;

pub struct Moto {
    pub endpoint: String,
    _child: Child,
}

pub fn repo_root() -> PathBuf {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    tests.parent().map_or(tests.clone(), PathBuf::from)
}

/// The python of the project's tool folder, where the Makefile installs moto (pinned).
pub fn tools_python() -> PathBuf {
    let python = repo_root().join(".tools/venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make tools` (or `make test`) first", python.display());
    python
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("no free port: {e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

/// Where this process's local Lambda runtime listens (see `lambda_runtime`); moto's Step
/// Functions interpreter sends its Lambda invocations there.
pub fn lambda_runtime_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| format!("http://127.0.0.1:{}", free_port()))
}

/// moto's own log, kept for reading after a failure: `target/moto-<test binary>.log`.
fn moto_log() -> Stdio {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().split('-').next().unwrap_or_default().to_string()))
        .unwrap_or_default();
    let path = repo_root().join(format!("target/moto-{binary}.log"));
    std::fs::File::create(&path).map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

/// The moto server of this test process.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let mut child = Command::new(tools_python())
            .arg(repo_root().join("tests/fixtures/moto_launcher.py"))
            .args(["--parent-pid", &std::process::id().to_string()])
            .args(["--rds-page-size", &RDS_PAGE_SIZE.to_string()])
            .args(["--lambda-bridge", lambda_runtime_url()])
            .stdout(Stdio::piped())
            .stderr(moto_log())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the moto launcher: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("moto launcher has no stdout"));
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap_or_else(|e| panic!("reading the moto launcher: {e}"));
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("moto launcher said {line:?} instead of its address"))
            .to_string();
        Moto { endpoint, _child: child }
    })
}

/// An AWS configuration aimed at the test moto server. Tests that look at every resource
/// of an account (the sweep) use a region of their own, so parallel tests stay apart.
pub async fn aws_config(region: &'static str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto().endpoint)
        .region(Region::new(region))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// SDK configuration acting in another account of the emulated AWS: moto keeps one
/// backend per account, and credentials from `sts:AssumeRole` select the role's account
/// (as AWS does). Production in its own account is played this way.
pub async fn account_config(account: &str, region: &'static str) -> SdkConfig {
    // moto reads the service from the signature's scope and verifies nothing else.
    let scope = "AWS4-HMAC-SHA256 Credential=test/20261205/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0";
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleSessionName=tests&RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2Fdblab-refresh-tests"
    );
    let answer = reqwest::Client::new()
        .post(&moto().endpoint)
        .header("Authorization", scope)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    let text = match answer {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => panic!("AssumeRole into {account}: {e}"),
    };
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open).map(|i| i + open.len()).unwrap_or_else(|| panic!("no {name} in {text}"));
        let end = text[start..].find('<').map_or(text.len(), |i| start + i);
        text[start..end].to_string()
    };
    let credentials =
        Credentials::new(field("AccessKeyId"), field("SecretAccessKey"), Some(field("SessionToken")), None, "assumed");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto().endpoint)
        .region(Region::new(region))
        .credentials_provider(credentials)
        .load()
        .await
}

/// A name no other test uses: lowercase letters and digits after `prefix`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    // The pid keeps two test processes on one moto server apart; the counter, tests within one.
    format!("{prefix}{:x}{:x}x{n}", std::process::id() % 0xfff, (nanos / 1_000) % 0xff_ffff)
}

/// POSTs to a `/_fixtures` route whose failure the caller expects (a session cut off).
pub async fn fixture_result(path: &'static str, body: Value) -> Result<Value, String> {
    let response = reqwest::Client::new()
        .post(format!("{}/_fixtures/{path}", moto().endpoint))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let ok = response.status().is_success();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if ok { Ok(value) } else { Err(value.to_string()) }
}

/// POSTs to one of the launcher's `/_fixtures` routes.
pub async fn fixture(path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/_fixtures/{path}", moto().endpoint))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "fixture {path} failed: {value}");
    value
}

/// How many GetSecretValue calls named a SecretId containing `arn`, as moto received them
/// from any handler (the launcher's `requests/secret-reads`).
pub async fn secret_reads(arn: &str) -> usize {
    let found = fixture("requests/secret-reads", serde_json::json!({"match": arn})).await;
    found["reads"].as_array().map_or(0, Vec::len)
}

/// Every request a client built with it sends, as `operation body` (the JSON protocols
/// name the operation in `X-Amz-Target`, the query protocol in the body): for tests that
/// check what a handler asked AWS, and how often.
#[derive(Debug, Clone, Default)]
pub struct Requests(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Requests {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request();
        let operation = request.headers().get("x-amz-target").unwrap_or_default().to_string();
        let body = request.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(format!("{operation} {body}"));
        Ok(())
    }
}
