//! One test's world: clients, a DBLab emulator, secrets, and a unique id for its names.
//! Its helpers are grouped by concern: the sources and requests it makes (`sources`), the
//! executions it registers (`executions`), real PostgreSQL data (`real_data`), and the
//! notifications it reads (`notifications`).

mod executions;
mod notifications;
mod real_data;
mod sources;

pub use real_data::{Checksums, RealSource};
pub use sources::create_source_instance;

use crate::*;
use aws_config::SdkConfig;
use dblab_emulator::{Emulator, Settings};
use serde_json::json;

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
        // Every character a quoting may change: JSON's `"` and `\`, a URL's `$`, and the `<`,
        // `&`, `>` Go's json.Marshal escapes.
        let password = format!("p$ss\"w0rd\\<&>{id}");
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

    pub fn target(&self) -> String {
        format!("target-{}", self.id)
    }

    pub async fn history_table(&self) -> String {
        let name = format!("history-{}", self.id);
        create_table(&self.dynamodb, &name).await;
        name
    }

    /// The world's secrets (the source password and the DBLab token), in every form.
    pub fn scanner(&self) -> leaks::Scanner {
        leaks::Scanner::new(&[("the DB password", &self.password), ("the DBLab token", &self.token)])
    }

    /// One call to the engine's API with the world's token, as an operator or the UI makes
    /// it; fails the test unless the engine answers 2xx. The answer's JSON (`Null` if none).
    pub async fn engine_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.emulator.url()))
            .header("Verification-Token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// Fails the test if a secret, in any form, appears in `text`.
    pub fn assert_no_secret(&self, text: &str) {
        assert_no_leak(&self.scanner().text("the text", text), text);
    }
}
