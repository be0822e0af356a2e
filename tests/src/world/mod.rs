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
    /// The engine's name in the stack's list (`engines`); `{engine}-alias` names it at
    /// `localhost`, and `engines::DOWN` an engine that never answers.
    pub engine: String,
    /// The list the world's handlers read (its engine, and the unreachable one).
    pub engines_list: String,
    /// Its own history table (the stack's is `stack::Stack::table`).
    table: String,
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
        let slot = crate::engines::pool().await.take();
        let emulator = Emulator::start_on(slot.listener, settings).unwrap_or_else(|e| panic!("emulator: {e}"));
        // The slot's secret is in the stack's region, whatever this world's is.
        aws_sdk_secretsmanager::Client::new(&aws_config("us-east-1").await)
            .put_secret_value()
            .secret_id(&slot.token_arn)
            .secret_string(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("writing the token: {e:?}"));
        let config = aws_config(region).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let password_arn = create_secret(
            &secrets,
            &format!("pw-{id}"),
            &json!({"username": "dblab", "password": password}).to_string(),
        )
        .await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let table = format!("history-{id}");
        create_table(&dynamodb, &table).await;
        Self {
            rds: aws_sdk_rds::Client::new(&config),
            dynamodb,
            table,
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            secrets,
            config,
            emulator,
            password,
            token,
            password_arn,
            token_arn: slot.token_arn,
            engine: slot.name,
            engines_list: slot.list,
            id,
            pool: None,
        }
    }

    /// The engines this world's handlers may drive.
    pub fn engines(&self) -> refresh_core::dblab::EngineList {
        refresh_core::dblab::EngineList::parse(&self.engines_list).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Its engine's other name, at `localhost`: one engine, two addresses.
    pub fn engine_alias(&self) -> String {
        format!("{}-alias", self.engine)
    }

    pub fn target(&self) -> String {
        format!("target-{}", self.id)
    }

    /// The world's history table, as its handlers' `HISTORY_TABLE`.
    pub fn history_table(&self) -> String {
        self.table.clone()
    }

    /// Gives these locks (a target's, an engine's) to `execution` in the world's table,
    /// whoever held them, as record's start and lockEngine would have: what restore and
    /// patch-dblab check a run still holds before they create or change anything.
    pub async fn hold_locks(&self, execution: &refresh_core::run::Execution, keys: &[&str]) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let expires = (time::OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp();
        for key in keys {
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .item(refresh_core::history::PK, AttributeValue::S(key.to_string()))
                .item(refresh_core::history::SK, AttributeValue::S(refresh_core::history::LOCK_SK.into()))
                .item("owner", AttributeValue::S(execution.name.clone()))
                .item(refresh_core::history::TTL_ATTRIBUTE, AttributeValue::N(expires.to_string()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("giving the lock {key}: {e:?}"));
        }
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
