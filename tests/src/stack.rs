//! The end-to-end stack of one test process: moto with its Step Functions interpreter on,
//! the eight handler binaries under `cargo lambda watch` (moto's Lambda invocations are
//! forwarded to it), one history table, one topic, and the state machine created through
//! the Step Functions API from `statemachine/refresh.asl.json` itself.

use std::fs::File;
use std::process::{Child, Command};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::environment::{self, LocalValues};
use crate::{aws_config, lambda_runtime_url, moto, repo_root, tools_python, unique};

/// Each definition substitution of the state machine and the handler binary behind it.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("RecordFunctionArn", "record"),
    ("FindSnapshotFunctionArn", "find-snapshot"),
    ("RestoreFunctionArn", "restore"),
    ("CheckAvailableFunctionArn", "check-available"),
    ("PatchDblabFunctionArn", "patch-dblab"),
    ("PollRefreshFunctionArn", "poll-refresh"),
    ("DeleteCloneFunctionArn", "delete-clone"),
    ("NotifyFunctionArn", "notify"),
];

pub const ACCOUNT: &str = "123456789012";

/// The one source key the test stack allows (its `SourceKmsKeyArns`).
pub const ALLOWED_KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-allowed-by-the-stack";

/// The test stack's `CopyKmsKeyArn`: a customer-managed key of the refresh account, with a
/// fixed id because the stack names it before it exists (`Production::new` makes it).
pub const COPY_IN_KEY_ID: &str = "c0b1e5e5-0000-4000-8000-0000000c0b1e";
pub fn copy_in_key_arn() -> String {
    format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{COPY_IN_KEY_ID}")
}

pub fn function_arn(binary: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{binary}")
}

/// The refresh workflow, and the clean-up of executions stopped before their Catch ran.
pub const DEFINITIONS: &[&str] = &["statemachine/refresh.asl.json", "statemachine/cleanup.asl.json"];

/// An ASL file with every `${...FunctionArn}` replaced, as SAM's substitutions would.
pub fn definition(file: &str) -> String {
    let path = repo_root().join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    for (key, binary) in FUNCTIONS {
        text = text.replace(&format!("${{{key}}}"), &function_arn(binary));
    }
    assert!(!text.contains("${"), "a substitution is left in the definition");
    text
}

pub struct Stack {
    pub table: String,
    pub topic_arn: String,
    pub state_machine_arn: String,
    /// What the EventBridge rule starts for an ABORTED or TIMED_OUT execution.
    pub cleanup_machine_arn: String,
    _runtime: Child,
}

/// Invokes a function through the local Lambda runtime, as a Lambda target would: the
/// status and the answer (an error's `errorType` and `errorMessage`).
pub async fn invoke(binary: &str, payload: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .post(format!("{}/2015-03-31/functions/{binary}/invocations", lambda_runtime_url()))
        .json(payload)
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoking {binary}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

pub async fn stack() -> &'static Stack {
    static STACK: OnceCell<Stack> = OnceCell::const_new();
    STACK.get_or_init(|| start(Watching { seconds: 3, time_scale: 1 }, Handlers::TESTS)).await
}

/// The local `LONGEST_CALL`: no handler call here takes longer (a test that holds a call
/// in flight holds it for less).
pub const LONGEST_CALL_SECONDS: u64 = 8;

/// How the check handlers of a stack watch: up to `seconds` per invocation, in a world
/// whose durations are `time_scale` times shorter than in AWS (1: not scaled).
#[derive(Debug, Clone, Copy)]
pub struct Watching {
    pub seconds: u64,
    pub time_scale: u32,
}

impl Watching {
    /// The handlers' variables that say so (`refresh_core::watch`).
    pub fn environment(self) -> Vec<(String, String)> {
        vec![
            (lambda_adapter::WATCH_SECONDS_ENV.to_string(), self.seconds.to_string()),
            (lambda_adapter::TIME_SCALE_ENV.to_string(), self.time_scale.to_string()),
        ]
    }
}

/// How `cargo lambda watch` runs the handlers.
#[derive(Debug, Clone, Copy)]
pub struct Handlers {
    /// Processes per function at most: as many as invocations of one function may overlap
    /// (a check handler watches for seconds), so none waits for another.
    pub instances: u32,
    /// The release build (`make bench`), or the debug build the tests share.
    pub release: bool,
}

impl Handlers {
    /// Parallel scenarios need more than one instance per function.
    pub const TESTS: Handlers = Handlers { instances: 4, release: false };
}

/// A stack whose check handlers watch as `watching` says, run as `handlers` says.
pub async fn start(watching: Watching, handlers: Handlers) -> Stack {
    let moto = moto();
    let config = aws_config("us-east-1").await;
    let id = unique("e2e");
    let table = format!("history-{id}");
    crate::create_table(&aws_sdk_dynamodb::Client::new(&config), &table).await;
    let topic = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name(format!("refresh-{id}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let topic_arn = topic.topic_arn().unwrap_or_default().to_string();

    let values = LocalValues {
        history_table: table.clone(),
        topic_arn: topic_arn.clone(),
        // The publisher's copy key in production's account (tests/src/production.rs) too.
        source_kms_key_arns: format!("{ALLOWED_KMS_KEY},{}", crate::production::copy_key_arn()),
        copy_kms_key_arn: copy_in_key_arn(),
        shared_snapshot_arns: crate::production::shared_snapshot_arns().join(","),
        metrics_namespace: "dblab-refresh/e2e".to_string(),
        longest_call: format!("{LONGEST_CALL_SECONDS}s"),
        // Created below, under this name.
        cleanup_machine_arn: format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:cleanup-{id}"),
        dblab_engines: crate::engines::pool().await.list().to_string(),
    };
    let mut environment = environment::platform(&moto.endpoint);
    environment.extend(watching.environment());
    environment.extend(environment::of_all(&values));

    std::fs::create_dir_all(repo_root().join("target")).unwrap_or_else(|e| panic!("{e}"));
    let log = File::create(repo_root().join("target/e2e-lambda-runtime.log")).unwrap_or_else(|e| panic!("{e}"));
    let port = lambda_runtime_url().rsplit(':').next().unwrap_or_default().to_string();
    let tools_bin = repo_root().join(".tools/venv/bin");
    let path = format!("{}:{}", tools_bin.display(), std::env::var("PATH").unwrap_or_default());
    let env_file = repo_root().join(format!("target/e2e-lambda-{}.env", std::process::id()));
    // Single-quoted: taken literally by the env file's reader (the engine list has spaces).
    let lines: String = environment
        .iter()
        .map(|(k, v)| {
            assert!(!v.contains('\''), "{k}: a quote in an environment value");
            format!("{k}='{v}'\n")
        })
        .collect();
    std::fs::write(&env_file, lines).unwrap_or_else(|e| panic!("{}: {e}", env_file.display()));
    let mut command = Command::new(tools_python());
    command
        .arg(repo_root().join("tests/fixtures/supervise.py"))
        .arg(std::process::id().to_string())
        .arg(tools_bin.join("cargo-lambda"))
        .args(["lambda", "watch", "--quiet", "--ignore-changes", "-A", "127.0.0.1", "-P", &port])
        .args(["--concurrency", &handlers.instances.to_string()])
        .args(handlers.release.then_some("--release"))
        // A file, not --env-var: that splits a value at its commas (SourceKmsKeyArns has some).
        .arg("--env-file")
        .arg(&env_file)
        .current_dir(repo_root())
        .env("PATH", path)
        .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(log);
    let runtime = command.spawn().unwrap_or_else(|e| panic!("cannot start cargo lambda watch: {e}"));

    // The first invocation of each function builds it: do that now, not inside a test's
    // timing. Malformed input answers at once with InvalidInput.
    wait_for_runtime().await;
    for (_, binary) in FUNCTIONS {
        let (status, body) = invoke(binary, &serde_json::json!({"warm-up": true})).await;
        assert_eq!(status, 500, "{binary} answered {body}");
        assert_eq!(body["errorType"], "InvalidInput", "{binary} answered {body}");
    }

    let sfn = aws_sdk_sfn::Client::new(&config);
    let mut arns = Vec::new();
    for (file, name) in DEFINITIONS.iter().zip(["refresh", "cleanup"]) {
        let machine = sfn
            .create_state_machine()
            .name(format!("{name}-{id}"))
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/refresh"))
            .definition(definition(file))
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating the state machine from {file}: {e:?}"));
        arns.push(machine.state_machine_arn().to_string());
    }
    let [state_machine_arn, cleanup_machine_arn] = <[String; 2]>::try_from(arns).unwrap_or_else(|_| unreachable!());
    Stack { table, topic_arn, state_machine_arn, cleanup_machine_arn, _runtime: runtime }
}

async fn wait_for_runtime() {
    let address = lambda_runtime_url().trim_start_matches("http://").to_string();
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cargo lambda watch did not listen on {address}; see target/e2e-lambda-runtime.log");
}
