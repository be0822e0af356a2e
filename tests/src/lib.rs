//! The test stack: a real moto server (started once per test process through
//! `tests/moto_launcher.py`, which exits with the process), a DBLab emulator per test, and
//! helpers that seed sources, secrets, the history table and an SNS topic read via SQS.
//!
//! Tests run in parallel on one moto server, so every resource name is unique per test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_rds::config::Credentials;
use dblab_emulator::{Emulator, Settings};
use refresh_core::run::Execution;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub mod bench;
pub mod environment;
pub mod leaks;
pub mod stack;

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
            .arg(repo_root().join("tests/moto_launcher.py"))
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

/// One test's world: clients, an emulator, secrets, and a unique id for its names.
pub struct World {
    pub id: String,
    pub config: SdkConfig,
    pub rds: aws_sdk_rds::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub emulator: Emulator,
    pub password: String,
    pub token: String,
    pub password_arn: String,
    pub token_arn: String,
    /// The engine's pool when it refreshes on real data: the launcher's server name.
    pub pool: Option<String>,
}

/// A production RDS instance backed by a real, seeded PostgreSQL server.
pub struct RealSource {
    pub id: String,
    /// The launcher's name for its server.
    pub server: String,
    /// Its server's port on 127.0.0.1.
    pub port: u16,
    /// Its automated snapshot(s), each a base backup: `(identifier, taken at)`.
    pub snapshots: Vec<(String, OffsetDateTime)>,
}

/// A table's row count and the md5 of its rows in order.
pub type Checksums = std::collections::BTreeMap<String, (u64, String)>;

impl World {
    pub async fn new() -> Self {
        Self::with_engine(Settings::default()).await
    }

    pub async fn with_engine(settings: Settings) -> Self {
        Self::build(settings, "us-east-1").await
    }

    pub async fn build(mut settings: Settings, region: &'static str) -> Self {
        let id = unique("t");
        // `$`, quotes and a backslash: a secret must arrive byte for byte.
        let password = format!("p$ss\"w0rd\\{id}");
        settings.token = format!("tok-$HOME-{id}");
        let token = settings.token.clone();
        let emulator = Emulator::start_local(settings).await.unwrap_or_else(|e| panic!("emulator: {e}"));
        let config = aws_config(region).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let password_arn = create_secret(
            &secrets,
            &format!("pw-{id}"),
            &json!({"username": "dblab", "password": password}).to_string(),
        )
        .await;
        let token_arn = create_secret(&secrets, &format!("token-{id}"), &token).await;
        Self {
            rds: aws_sdk_rds::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            secrets,
            config,
            emulator,
            password,
            token,
            password_arn,
            token_arn,
            id,
            pool: None,
        }
    }

    /// A world whose engine refreshes on real data: real pg_dump from the source it is
    /// configured with, real pg_restore into a pool server of its own.
    pub async fn with_real_data(mut settings: Settings) -> Self {
        let pool = fixture(
            "postgres/pool",
            json!({"name": unique("pool"), "username": "dblab_pool", "password": "pool-secret"}),
        )
        .await;
        let text = |k: &str| pool[k].as_str().unwrap_or_default().to_string();
        settings.data = Some(dblab_emulator::RealData {
            bin_dir: text("binDir"),
            pool: dblab_emulator::Pool {
                host: text("host"),
                port: pool["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_default(),
                username: "dblab_pool".into(),
                password: "pool-secret".into(),
            },
        });
        let mut w = Self::build(settings, "us-east-1").await;
        w.pool = Some(text("server"));
        w
    }

    /// The pool's server name (a world made by `with_real_data`).
    pub fn pool(&self) -> &str {
        self.pool.as_deref().unwrap_or_else(|| panic!("this world's engine has no real pool"))
    }

    /// A production RDS instance on a real server, seeded (database `app`, readable by the
    /// request's user with this world's password); its automated snapshot holds that data.
    pub async fn real_rds_source(&self) -> RealSource {
        let id = self.rds_source().await;
        self.back_with_postgres("instance", id).await
    }

    /// An Aurora cluster on a real server, as `real_rds_source`.
    pub async fn real_aurora_source(&self) -> RealSource {
        let id = self.aurora_source().await;
        self.back_with_postgres("cluster", id).await
    }

    async fn back_with_postgres(&self, kind: &str, id: String) -> RealSource {
        let out = fixture(
            "postgres/source",
            json!({
                kind: id, "masterUsername": "admin", "masterPassword": "production-password",
                "database": "app", "reader": "dblab", "readerPassword": self.password,
            }),
        )
        .await;
        let snapshots = out["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let at = s["createdAt"].as_str().unwrap_or_default();
                let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("snapshot time {at}: {e}"));
                (s["snapshot"].as_str().unwrap_or_default().to_string(), at)
            })
            .collect();
        RealSource {
            id,
            server: out["server"].as_str().unwrap_or_default().to_string(),
            port: out["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_default(),
            snapshots,
        }
    }

    /// Runs SQL on one of the launcher's servers, as its superuser.
    pub async fn sql(&self, server: &str, database: &str, sql: &str) -> String {
        let out = fixture("postgres/sql", json!({"server": server, "database": database, "sql": sql})).await;
        out["output"].as_str().unwrap_or_default().trim().to_string()
    }

    pub async fn checksums(&self, server: &str, database: &str) -> Checksums {
        let out = fixture("postgres/checksums", json!({"server": server, "database": database})).await;
        out["tables"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, sum)| {
                (
                    table.clone(),
                    (sum["rows"].as_u64().unwrap_or_default(), sum["md5"].as_str().unwrap_or_default().into()),
                )
            })
            .collect()
    }

    /// The connections a server received between two times, as its log lines.
    pub async fn connections(&self, server: &str, since: OffsetDateTime, until: OffsetDateTime) -> Vec<String> {
        let fmt = &time::format_description::well_known::Rfc3339;
        let out = fixture(
            "postgres/connections",
            json!({"server": server, "since": since.format(fmt).unwrap_or_default(), "until": until.format(fmt).unwrap_or_default()}),
        )
        .await;
        out["lines"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect()
    }

    /// The launcher's running PostgreSQL servers.
    pub async fn pg_servers(&self) -> Vec<String> {
        let out = fixture("postgres/servers", json!({})).await;
        out["servers"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect()
    }

    pub fn target(&self) -> String {
        format!("target-{}", self.id)
    }

    /// A valid request for a source, with test-sized intervals and this world's secrets.
    pub fn request(&self, source_type: &str, source: &str) -> Value {
        json!({
            "target": self.target(),
            "source": {
                "type": source_type,
                "identifier": source,
                "dbName": "app",
                "username": "dblab",
                "passwordSecretArn": self.password_arn,
            },
            "clone": {
                "instanceClass": "db.r6g.xlarge",
                "pollInterval": "1s",
                "restoreTimeout": "1m",
                "deletionTimeout": "1m",
                "maxAge": "1h",
                "tags": {"team": "data"},
            },
            "dblab": {
                "apiEndpoint": self.emulator.url(),
                // The emulator listens on loopback only.
                "allowPlaintext": true,
                "tokenSecretArn": self.token_arn,
                "pollInterval": "1s",
                "timeout": "1m",
            }
        })
    }

    pub fn execution(&self) -> Execution {
        let name = format!("exec-{}", self.id);
        Execution {
            arn: Some(format!("arn:aws:states:us-east-1:123456789012:execution:refresh:{name}")),
            name,
            started_at: Some(OffsetDateTime::now_utc()),
        }
    }

    /// An execution that stays RUNNING (a state machine that waits ten minutes).
    pub async fn running_execution(&self, label: &str) -> Execution {
        self.running_execution_of(label, None).await
    }

    /// A running execution started with `input`, as a refresh is started with its request.
    pub async fn running_execution_of(&self, label: &str, input: Option<&Value>) -> Execution {
        let definition = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#;
        self.execution_of(label, definition, input).await
    }

    /// An execution that fails after a few seconds with `States.Runtime`, the error no Catch
    /// of the refresh machine handles.
    pub async fn failing_execution(&self, label: &str) -> Execution {
        self.execution_of(
            label,
            r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":2,"Next":"P"},
                "P":{"Type":"Pass","Parameters":{"x.$":"$.missing"},"End":true}}}"#,
            None,
        )
        .await
    }

    async fn execution_of(&self, label: &str, definition: &str, input: Option<&Value>) -> Execution {
        let machine = self
            .sfn
            .create_state_machine()
            .name(format!("machine-{label}-{}", self.id))
            .role_arn("arn:aws:iam::123456789012:role/sfn")
            .definition(definition)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let name = format!("{label}-{}", self.id);
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(machine.state_machine_arn())
            .name(&name)
            .set_input(input.map(Value::to_string))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        Execution { name, arn: Some(started.execution_arn().to_string()), started_at: None }
    }

    /// A production RDS instance (moto gives it one automated snapshot).
    pub async fn rds_source(&self) -> String {
        let id = format!("prod-{}", self.id);
        self.rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .engine_version("16.3")
            .master_username("admin")
            .master_user_password("production-password")
            .allocated_storage(20)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create source instance: {e:?}"));
        id
    }

    /// Where most handler tests start: a production RDS instance, a valid request for it,
    /// and this world's execution.
    pub async fn rds_case(&self) -> (String, Value, Execution) {
        let source = self.rds_source().await;
        let request = self.request("rds", &source);
        (source, request, self.execution())
    }

    /// A production Aurora PostgreSQL cluster (with one automated cluster snapshot).
    pub async fn aurora_source(&self) -> String {
        let id = format!("prod-{}", self.id);
        self.rds
            .create_db_cluster()
            .db_cluster_identifier(&id)
            .engine("aurora-postgresql")
            .engine_version("16.3")
            .master_username("admin")
            .master_user_password("production-password")
            .send()
            .await
            .unwrap_or_else(|e| panic!("create source cluster: {e:?}"));
        id
    }

    pub async fn history_table(&self) -> String {
        let name = format!("history-{}", self.id);
        create_table(&self.dynamodb, &name).await;
        name
    }

    /// An SNS topic with an SQS queue subscribed (raw delivery keeps the attributes).
    pub async fn topic_with_queue(&self) -> (String, String) {
        let topic =
            self.sns.create_topic().name(format!("topic-{}", self.id)).send().await.unwrap_or_else(|e| panic!("{e:?}"));
        let topic_arn = topic.topic_arn().unwrap_or_default().to_string();
        let queue_url = self.subscribe_queue(&topic_arn, None).await;
        (topic_arn, queue_url)
    }

    /// A queue subscribed to a topic; with a target, only that target's messages reach it.
    pub async fn subscribe_queue(&self, topic_arn: &str, only_target: Option<&str>) -> String {
        let queue = self
            .sqs
            .create_queue()
            .queue_name(unique(&format!("queue-{}", self.id)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let queue_url = queue.queue_url().unwrap_or_default().to_string();
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        let mut subscribe = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true);
        if let Some(target) = only_target {
            subscribe = subscribe.attributes("FilterPolicy", json!({"target": [target]}).to_string());
        }
        subscribe.send().await.unwrap_or_else(|e| panic!("{e:?}"));
        queue_url
    }

    /// Every message waiting in the queue (body and attributes): received until the queue
    /// answers none, since one receive gives at most ten (and SQS may give fewer), so that
    /// "exactly one notification" counts them all.
    pub async fn messages(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            if out.messages().is_empty() {
                return all;
            }
            all.extend(out.messages().iter().cloned());
        }
    }

    /// The world's secrets (the source password and the DBLab token), in every form.
    pub fn scanner(&self) -> leaks::Scanner {
        leaks::Scanner::new(&[("the DB password", &self.password), ("the DBLab token", &self.token)])
    }

    /// Fails the test if a secret, in any form, appears in `text`.
    pub fn assert_no_secret(&self, text: &str) {
        assert_no_leak(&self.scanner().text("the text", text), text);
    }

    /// The identifiers of instances and clusters whose names start with `prefix`.
    pub async fn rds_names(&self, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut pages = self.rds.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("{e:?}"));
            names.extend(
                page.db_instances()
                    .iter()
                    .filter_map(|i| i.db_instance_identifier())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_string),
            );
        }
        let mut pages = self.rds.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("{e:?}"));
            names.extend(
                page.db_clusters()
                    .iter()
                    .filter_map(|c| c.db_cluster_identifier())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_string),
            );
        }
        names
    }
}

/// The history table, keyed as `refresh_core::history` expects.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(refresh_core::history::PK))
        .attribute_definitions(attr(refresh_core::history::SK))
        .key_schema(key(refresh_core::history::PK, KeyType::Hash))
        .key_schema(key(refresh_core::history::SK, KeyType::Range))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table: {e:?}"));
}

async fn create_secret(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) -> String {
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create secret: {e:?}"));
    out.arn().unwrap_or_default().to_string()
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap_or_else(|e| panic!("{e}"))
}

/// Calls `step` until `done` says so, sleeping between calls; panics after `max` calls.
pub async fn poll_until<T, F, Fut>(max: u32, every: Duration, mut step: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..max {
        let value = step().await;
        if done(&value) {
            return value;
        }
        tokio::time::sleep(every).await;
    }
    panic!("no outcome after {max} polls");
}

/// Fails the test, naming each secret, form and place, if anything leaked.
pub fn assert_no_leak(found: &[leaks::Leak], context: &str) {
    assert!(found.is_empty(), "secrets leaked: {found:#?}\n{context}");
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
