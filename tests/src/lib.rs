//! The test stack: a real moto server (started once per test process through
//! `tests/fixtures/moto_launcher.py`, which exits with the process), a DBLab emulator per test, and
//! helpers that seed sources, secrets, the history table and an SNS topic read via SQS.
//!
//! Tests run in parallel on one moto server, so every resource name is unique per test.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};

pub mod bench;
pub mod engines;
pub mod environment;
pub mod leaks;
mod moto;
pub mod production;
pub mod stack;
mod world;

pub use moto::{
    Moto, RDS_PAGE_SIZE, Requests, account_config, aws_config, fixture, fixture_result, lambda_runtime_url, moto,
    repo_root, secret_reads, tools_python, unique,
};
pub use world::{Checksums, RealSource, World, create_source_instance};

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
