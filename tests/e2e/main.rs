//! The real state machine file executed by moto's Step Functions interpreter against the
//! real handler binaries (under `cargo lambda watch`), the DBLab emulator and emulated AWS.
//! Every scenario checks the aftermath: no clone left, the history row, exactly one
//! notification, the lock released, and no secret, in any form, anywhere the run left data
//! (its execution history read event by event, its rows and fleet item, its notification,
//! every handler's log).
// A test fails by panicking: unwrapping is how these helpers report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod asl;
mod cleanup;
mod clone;
mod concurrency;
mod cross_account;
mod early_deletion;
mod engine;
mod fleet;
mod guarantees;
mod happy_paths;
mod history;
mod leak_check;
mod preflight;
mod realdata;
mod refresh;
mod source_modes;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dblab_emulator::Settings;
use refresh_core::history::History;
use refresh_core::row::{Outcome, RunSummary};
use refresh_tests::World;
use refresh_tests::stack::{Stack, stack};
use serde_json::Value;

pub struct Run {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub error: Option<String>,
    /// The failure's cause, as DescribeExecution gives it.
    pub cause: Option<String>,
    pub events: Vec<aws_sdk_sfn::types::HistoryEvent>,
}

/// Every state name of both state machine files.
fn state_names() -> &'static std::collections::BTreeSet<String> {
    static NAMES: std::sync::OnceLock<std::collections::BTreeSet<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        refresh_tests::stack::DEFINITIONS
            .iter()
            .flat_map(|file| {
                let text = std::fs::read_to_string(refresh_tests::repo_root().join(file)).unwrap();
                let doc: Value = serde_json::from_str(&text).unwrap();
                doc["States"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
            })
            .collect()
    })
}

impl Run {
    /// How many times a state was entered. A name no state machine has fails the test:
    /// "entered X zero times" must be able to fail.
    pub fn entered(&self, state: &str) -> usize {
        assert!(state_names().contains(state), "no state machine has a state {state:?}");
        self.events.iter().filter_map(|e| e.state_entered_event_details()).filter(|d| d.name() == state).count()
    }

    /// When the execution first entered a state.
    pub fn entered_at(&self, state: &str) -> Option<std::time::SystemTime> {
        assert!(state_names().contains(state), "no state machine has a state {state:?}");
        self.events
            .iter()
            .find(|e| e.state_entered_event_details().is_some_and(|d| d.name() == state))
            .and_then(|e| std::time::SystemTime::try_from(*e.timestamp()).ok())
    }

    /// The last state the execution entered.
    pub fn last_entered(&self) -> Option<String> {
        self.events.iter().rev().find_map(|e| e.state_entered_event_details()).map(|d| d.name().to_string())
    }
}

pub struct Scenario {
    pub w: World,
    pub stack: &'static Stack,
    pub queue: String,
}

impl Scenario {
    pub async fn new(settings: Settings) -> Self {
        Self::with(World::with_engine(settings).await).await
    }

    /// An engine that refreshes on real data (real pg_dump, real pg_restore into its pool).
    pub async fn real(settings: Settings) -> Self {
        Self::with(World::with_real_data(settings).await).await
    }

    async fn with(w: World) -> Self {
        let stack = stack().await;
        let queue = w.subscribe_queue(&stack.topic_arn, Some(&w.target())).await;
        Self { w, stack, queue }
    }

    pub async fn start(&self, label: &str, request: &Value) -> (String, String) {
        let name = format!("{label}-{}", refresh_tests::unique("r"));
        let arn = self.start_on(&self.stack.state_machine_arn, &name, request).await;
        (name, arn)
    }

    /// Starts `machine` under `name` with `input`; the execution's ARN.
    async fn start_on(&self, machine: &str, name: &str, input: &Value) -> String {
        let out = self
            .w
            .sfn
            .start_execution()
            .state_machine_arn(machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .unwrap();
        out.execution_arn().to_string()
    }

    pub async fn wait(&self, name: &str, arn: &str) -> Run {
        let mut status = String::new();
        let mut error = None;
        let mut cause = None;
        for _ in 0..600 {
            let d = self.w.sfn.describe_execution().execution_arn(arn).send().await.unwrap();
            status = d.status().as_str().to_string();
            error = d.error().map(str::to_string);
            cause = d.cause().map(str::to_string);
            if status != "RUNNING" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_ne!(status, "RUNNING", "{name} did not finish");
        let mut events = Vec::new();
        let mut pages = self.w.sfn.get_execution_history().execution_arn(arn).into_paginator().send();
        while let Some(page) = pages.next().await {
            events.extend(page.unwrap().events().to_vec());
        }
        Run { name: name.into(), arn: arn.into(), status, error, cause, events }
    }

    pub async fn run(&self, label: &str, request: &Value) -> Run {
        let (name, arn) = self.start(label, request).await;
        self.wait(&name, &arn).await
    }

    /// Starts the clean-up machine with `event`, as the EventBridge rule (or record's hourly
    /// pass) does, and waits for it.
    pub async fn clean_up_with(&self, event: &Value) -> Run {
        let cleanup_name = format!("cleanup-{}", refresh_tests::unique("c"));
        let arn = self.start_on(&self.stack.cleanup_machine_arn, &cleanup_name, event).await;
        self.wait(&cleanup_name, &arn).await
    }

    /// Runs the clean-up state machine as the EventBridge rule would for an ended execution.
    pub async fn clean_up(&self, name: &str, arn: &str, status: &str, input: &str, start_millis: i64) -> Run {
        let event = serde_json::json!({
            "version": "0",
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            // EventBridge's time of the event: the run's stop, as the clean-up reads it.
            "time": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
            "resources": [arn],
            "detail": {
                "executionArn": arn,
                "stateMachineArn": self.stack.state_machine_arn,
                "name": name,
                "status": status,
                "startDate": start_millis,
                "input": input,
                "inputDetails": {"included": true},
            }
        });
        self.clean_up_with(&event).await
    }

    pub async fn rds_source(&self) -> (String, Value) {
        let source = self.w.rds_source().await;
        let request = self.w.request("rds", &source);
        (source, request)
    }

    /// The checks every scenario ends with; returns the run's history row.
    pub async fn aftermath(
        &self,
        run: &Run,
        outcome: Outcome,
        error: Option<&str>,
        failed_state: Option<&str>,
    ) -> RunSummary {
        let how = format!("{} ended {} ({:?}: {:?})", run.name, run.status, run.error, run.cause);
        if error == Some("ExecutionStopped") {
            // Ended outside every Catch (stopped by hand, timed out, an error no Catch can
            // handle): the clean-up machine finished the row.
            assert!(["ABORTED", "TIMED_OUT", "FAILED"].contains(&run.status.as_str()), "{how}");
        } else if outcome == Outcome::Succeeded {
            assert_eq!(run.status, "SUCCEEDED", "{how}");
        } else {
            assert_eq!(run.status, "FAILED", "{how}");
            assert_eq!(run.error.as_deref(), error, "the execution fails with the original error");
        }
        let clones = self.w.rds_names(&format!("dblab-refresh-{}", self.w.target())).await;
        assert!(clones.is_empty(), "clones left behind: {clones:?}");

        let rows = History::new(self.w.dynamodb.clone(), &self.stack.table).recent(&self.w.target(), 20).await.unwrap();
        let row = rows
            .iter()
            .find(|r| r.execution_name == run.name)
            .unwrap_or_else(|| panic!("no history row for {}", run.name));
        assert_eq!(row.outcome, outcome, "{row:?}");
        assert_eq!(row.error.as_ref().map(|e| e.name.as_str()), error, "{row:?}");
        assert_eq!(row.error.as_ref().and_then(|e| e.state.as_deref()), failed_state, "{row:?}");
        assert!(!row.clone_left_behind, "{row:?}");
        // A stopped run's row too: the clean-up machine reads what it had done from its history.
        if run.entered("Restore") > 0 {
            assert!(
                row.restored_from.is_some() && row.data_as_of.is_some(),
                "a run that restored records its data: {row:?}"
            );
        }
        // Priced from the run's own execution history, as far as the final record.
        let cost = row.cost.as_ref().unwrap_or_else(|| panic!("no cost estimate: {row:?}"));
        let usage = cost.usage.unwrap_or_else(|| panic!("the execution history was not read: {row:?}"));
        // Billed transitions: states entered, and each retry of a Task.
        let entered = run.events.iter().filter(|e| e.state_entered_event_details().is_some()).count() as u64;
        let tasks = run.events.iter().filter(|e| e.r#type().as_str() == "TaskStateEntered").count() as u64;
        let scheduled = run.events.iter().filter(|e| e.r#type().as_str() == "LambdaFunctionScheduled").count() as u64;
        let billed = entered + scheduled.saturating_sub(tasks);
        assert!(usage.transitions > 0 && usage.transitions <= billed, "{usage:?} of {billed} transitions");
        assert!(usage.lambda_invocations > 0 && usage.lambda_seconds > 0.0, "{usage:?}");
        if row.clone_identifier.is_some() {
            // Billed from `available` (a clone never available costs nothing), at a known price.
            assert!(cost.clone_hourly_usd.is_some() && cost.total_usd.is_some(), "a listed class is priced: {cost:?}");
        }

        let messages = self.w.messages(&self.queue).await;
        let mine: Vec<_> = messages.iter().filter(|m| m.body().unwrap_or_default().contains(&run.arn)).collect();
        assert_eq!(mine.len(), 1, "exactly one notification for {}", run.name);
        assert!(mine[0].body().unwrap_or_default().contains("Cost (est.):"), "the notification gives the cost");
        if outcome == Outcome::Succeeded {
            // A success is proven by the engine's own snapshot of the refreshed pool, made
            // after the trigger, and the run held the engine by its identity.
            let snapshot = row.engine_snapshot.as_deref().unwrap_or_else(|| panic!("no engine snapshot: {row:?}"));
            let made = self.w.emulator.view().snapshots;
            assert!(made.iter().any(|s| s.id == snapshot && s.created_at.as_str() > "2026-02"), "{snapshot}: {made:?}");
            assert!(mine[0].body().unwrap_or_default().contains(&format!("Pool snapshot: {snapshot}")));
            assert!(row.engine_lock.as_deref().is_some_and(|l| l.starts_with("engine instance ")), "{row:?}");
        }
        if let Some(emptied) = &row.engine_pool_emptied {
            let body = mine[0].body().unwrap_or_default();
            assert!(body.contains(&format!("Engine pool:   {emptied}")), "the notification says the pool: {body}");
        }
        let attributes = mine[0].message_attributes().unwrap();
        assert_eq!(attributes["outcome"].string_value(), Some(outcome.as_str()));

        self.assert_unlocked().await;
        let scanner = self.w.scanner();
        let mut leaks = self.leaks(&scanner, &[run]).await;
        leaks.extend(scanner.text("the notification", mine[0].body().unwrap_or_default()));
        refresh_tests::assert_no_leak(&leaks, &run.name);
        row.clone()
    }

    /// Every secret `scanner` looks for, in any form, wherever these runs left data: each
    /// event of their execution histories (through the SDK's accessors), every item of
    /// their target's partition and its fleet item, and every handler's log line.
    pub async fn leaks(
        &self,
        scanner: &refresh_tests::leaks::Scanner,
        runs: &[&Run],
    ) -> Vec<refresh_tests::leaks::Leak> {
        let mut out = Vec::new();
        for run in runs {
            out.extend(scanner.events(&format!("execution {}", run.name), &run.events));
        }
        let mut items = self
            .w
            .dynamodb
            .query()
            .table_name(&self.stack.table)
            .key_condition_expression("#pk = :target")
            .expression_attribute_names("#pk", "target")
            .expression_attribute_values(":target", AttributeValue::S(self.w.target()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.unwrap();
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            out.extend(scanner.item(&format!("history item {sk}"), &item));
        }
        let fleet = self
            .w
            .dynamodb
            .get_item()
            .table_name(&self.stack.table)
            .key("target", AttributeValue::S(refresh_core::history::FLEET_PK.into()))
            .key("sk", AttributeValue::S(self.w.target()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if let Some(item) = fleet.item() {
            out.extend(scanner.item("fleet item", item));
        }
        out.extend(scanner.file("handler log", &refresh_tests::repo_root().join("target/e2e-lambda-runtime.log")));
        out
    }

    /// Neither the target's lock nor the engine's is held any more.
    pub async fn assert_unlocked(&self) {
        let id = self.w.emulator.settings().instance_id;
        let engine = refresh_core::history::engine_lock(id.as_deref(), &self.w.emulator.url()).unwrap().key;
        for key in [self.w.target(), engine] {
            let lock = self
                .w
                .dynamodb
                .get_item()
                .table_name(&self.stack.table)
                .key("target", AttributeValue::S(key.clone()))
                .key("sk", AttributeValue::S("lock".into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            assert!(lock.item().is_none(), "the lock {key} is still held: {:?}", lock.item());
        }
    }
}

/// The run's history row.
pub async fn row_of(s: &Scenario, partition: &str, run: &crate::Run) -> refresh_core::row::RunSummary {
    let rows =
        refresh_core::history::History::new(s.w.dynamodb.clone(), &s.stack.table).recent(partition, 50).await.unwrap();
    rows.into_iter().find(|r| r.execution_name == run.name).unwrap_or_else(|| panic!("no row for {}", run.name))
}
