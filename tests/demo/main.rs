//! `make demo`: a complete refresh on the local emulated stack, with no AWS account.
//!
//! Emulated AWS (moto) executes the real state machine, whose Lambda calls reach the real
//! handler binaries (`cargo lambda watch`); a DBLab emulator plays the engine. The demo
//! seeds a "production" database, then drives the real `dblab-refresh` CLI: validate with
//! preflight, start (as the schedule would) and watch live, history, the notification,
//! a last sweep showing nothing was left behind, what moved, and a second target with
//! both schedules and the fleet's status. Everything it started stops with it.
//!
//! `demo aurora` refreshes from an Aurora cluster; `demo failure` shows a refresh that
//! fails mid-dump being cleaned up; `demo cross-account` keeps production in an account of
//! its own, whose publisher shares snapshot copies with the refresh stack's account.
// A demo stops at the first thing that goes wrong, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use dblab_emulator::{Settings, Version};
use refresh_tests::stack::stack;
use refresh_tests::{World, fixture, moto, repo_root};
use serde_json::json;
use time::OffsetDateTime;

/// A row production receives after its snapshot.
const LATE_ROW: &str = "insert into public.customers (email, name, profile, created_at) \
                        values ('late@example.com', 'Late', '{}', now())";

fn snapshot_of(aurora: bool, source: &str) -> serde_json::Value {
    if aurora { json!({"cluster": source}) } else { json!({"instance": source}) }
}

/// 105500 -> "105,500".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The CLI's environment: the refresh stack's account (moto's default) and its stack.
fn cli_env(stack: &refresh_tests::stack::Stack, w: &World) -> Vec<(&'static str, String)> {
    vec![
        // The stack's DblabEngines, as the operator's shell would hold them.
        ("DBLAB_REFRESH_ENGINES", w.engines_list.clone()),
        ("AWS_ENDPOINT_URL", moto().endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("DBLAB_REFRESH_STATE_MACHINE", stack.state_machine_arn.clone()),
        ("DBLAB_REFRESH_TABLE", stack.table.clone()),
    ]
}

fn heading(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn cli_path() -> PathBuf {
    // target/<profile>/examples/demo -> target/<profile>/dblab-refresh
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|p| p.parent()).map(|p| p.join("dblab-refresh")).unwrap()
}

/// Runs the CLI as an operator would, showing the command first.
fn cli(args: &[&str], env: &[(&str, String)]) -> bool {
    println!("\x1b[2m$ dblab-refresh {}\x1b[0m", args.join(" "));
    let status = Command::new(cli_path())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e} (make demo builds it)", cli_path().display()));
    status.success()
}

#[tokio::main]
async fn main() {
    let variant = std::env::args().nth(1).unwrap_or_default();
    if variant == "cross-account" {
        return cross_account().await;
    }
    let (aurora, failure) = (variant == "aurora", variant == "failure");

    heading("1. Starting the local stack: emulated AWS, the eight handlers, a DBLab Engine emulator");
    let stack = stack().await;
    let engine = Settings { version: Version::V42, snapshot_ms: 1_500, ..Settings::default() };
    let w = World::with_real_data(engine).await;
    println!(
        "emulated AWS at {}; DBLab Engine at {}, restoring into its own PostgreSQL pool",
        moto().endpoint,
        w.emulator.url()
    );

    heading("2. A \"production\" PostgreSQL server with its nightly automated snapshot, and the secrets");
    let source = if aurora { w.real_aurora_source().await } else { w.real_rds_source().await };
    if failure {
        // A permission lost on production before last night's snapshot: pg_dump will say so.
        w.sql(&source.server, "app", "revoke select on sales.orders from dblab").await;
        fixture("postgres/snapshot", snapshot_of(aurora, &source.id)).await;
    }
    let at_snapshot = w.checksums(&source.server, "app").await;
    // Written after the snapshot: it must not reach the engine.
    w.sql(&source.server, "app", LATE_ROW).await;
    println!(
        "{} {} on 127.0.0.1:{} (PostgreSQL 18, log_connections on): {} rows in {} tables; its snapshot is a base \
         backup; one row was written after it. The DB password and the DBLab token are in Secrets Manager",
        if aurora { "Aurora cluster" } else { "RDS instance" },
        source.id,
        source.port,
        group(at_snapshot.values().map(|(rows, _)| rows).sum()),
        at_snapshot.len()
    );
    // What `dblab local-install` writes for a source URL with options: it names production,
    // and on 4.2 it decides where pg_dump connects unless the refresh re-addresses it.
    let mut settings = w.emulator.settings();
    settings.connection_string =
        Some(format!("host=127.0.0.1 port={} dbname=app user=dblab sslmode=disable", source.port));
    w.emulator.restart(settings);
    println!("the engine's server.yml still holds a connectionString naming production, as local-install leaves it");
    let target = "staging";
    let queue = w.subscribe_queue(&stack.topic_arn, Some(target)).await;

    heading("3. The refresh request: ARNs of secrets, never their values");
    let mut request = w.request(if aurora { "aurora-cluster" } else { "rds" }, &source.id);
    request["target"] = json!(target);
    // The clone takes a few polls to become available, as a real restore does.
    request["clone"]["tags"] = json!({"team": "data-platform", "test:creating-polls": "3"});
    let file = repo_root().join("target/demo-request.json");
    std::fs::write(&file, serde_json::to_string_pretty(&request).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&request).unwrap());
    let file = file.to_string_lossy().to_string();
    let env = cli_env(stack, &w);

    heading("4. Preflight: everything that could fail before a clone costs money");
    assert!(cli(&["validate", &file, "--preflight"], &env), "the preflight failed");

    heading("5. Start the refresh, as the schedule would, and watch it live");
    let from = OffsetDateTime::now_utc();
    let succeeded = cli(&["start", &file, "--wait"], &env);
    let to = OffsetDateTime::now_utc();
    assert_eq!(succeeded, !failure, "the run did not end as this demo expects");
    for dumped in w.emulator.view().dump_sources {
        println!(
            "the engine dumped from {}:{} (database {}, user {}) through the connection string {:?}: the clone; \
             production is on port {}",
            dumped.host,
            dumped.port,
            dumped.dbname,
            dumped.username,
            dumped.connection_string.unwrap_or_default(),
            source.port
        );
        assert_ne!(dumped.port, source.port.to_string(), "the dump read production");
    }

    heading("6. The history row");
    assert!(cli(&["history", target], &env));

    heading("7. The notification that was sent");
    for message in w.messages(&queue).await {
        let attributes: Vec<String> = message
            .message_attributes()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.string_value().unwrap_or_default()))
            .collect();
        println!("message attributes (for subscription filters): {}", attributes.join(", "));
        println!("{}", message.body().unwrap_or_default());
    }

    heading("8. Nothing left behind: the orphan sweep finds no clone");
    assert!(cli(&["cleanup", "--dry-run"], &env));
    let left = w.rds_names(&format!("dblab-refresh-{target}")).await;
    assert!(left.is_empty(), "clones left: {left:?}");

    heading("9. Moving from rds-refresh: its config becomes a request, without its plain secrets");
    let config = repo_root().join("examples/rds-refresh.yaml").to_string_lossy().to_string();
    assert!(cli(
        &[
            "import-rds-refresh",
            &config,
            "--target",
            "staging",
            "--password-secret",
            &w.password_arn,
            "--token-secret",
            &w.token_arn
        ],
        &env
    ));

    heading("10. What moved");
    let seen = w.connections(&source.server, from, to).await;
    assert!(seen.is_empty(), "production received connections during the refresh: {seen:#?}");
    if failure {
        println!("the refresh failed with pg_dump's own error (above); production received 0 connections during it");
    } else {
        let pool = w.checksums(w.pool(), "app").await;
        assert_eq!(pool, at_snapshot, "the engine's data differs from the snapshot's");
        let late =
            w.sql(w.pool(), "app", "select count(*) from public.customers where email = 'late@example.com'").await;
        assert_eq!(late, "0", "a row written after the snapshot reached the engine");
        let data_as_of = source.snapshots.last().map(|(_, at)| *at).unwrap();
        println!(
            "DBLab now holds {} rows in {} tables, every table equal to the snapshot's (row counts and md5), data \
             as of {} UTC; the row written after it is absent; production received 0 connections during the refresh",
            group(pool.values().map(|(rows, _)| rows).sum()),
            pool.len(),
            data_as_of.format(time::macros::format_description!("[hour]:[minute]:[second]")).unwrap()
        );
    }

    heading("11. Many targets: a schedule for each, and the fleet at a glance");
    // What the stack creates, and its outputs name (`--stack NAME` finds them there).
    let group_name = "dblab-refresh-demo-refresh";
    aws_sdk_scheduler::Client::new(&w.config).create_schedule_group().name(group_name).send().await.unwrap();
    let mut env = env;
    env.push(("DBLAB_REFRESH_SCHEDULE_GROUP", group_name.to_string()));
    env.push(("DBLAB_REFRESH_SCHEDULER_ROLE", "arn:aws:iam::123456789012:role/dblab-refresh-SchedulerRole".into()));
    let mut qa = request.clone();
    qa["target"] = json!("qa");
    qa["freshness"] = json!({"maxAge": "12h"});
    let qa_file = repo_root().join("target/demo-request-qa.json").to_string_lossy().to_string();
    std::fs::write(&qa_file, serde_json::to_string_pretty(&qa).unwrap()).unwrap();
    let berlin = ["schedule", "set", target, &file, "--cron", "cron(0 3 * * ? *)", "--timezone", "Europe/Berlin"];
    assert!(cli(&berlin, &env));
    assert!(cli(&["schedule", "set", "qa", &qa_file, "--cron", "cron(30 5 ? * MON-FRI *)"], &env));
    assert_eq!(cli(&["start", &qa_file, "--wait"], &env), !failure, "the qa run did not end as this demo expects");
    assert!(cli(&["schedule", "list"], &env));
    assert!(cli(&["status"], &env));

    println!("\ndone: everything the demo started stops with it.");
}

/// Production in its own account: the publisher there copies and shares; the refresh stack,
/// in another account, restores only from the shared copy.
async fn cross_account() {
    use refresh_core::request::SourceType;
    use refresh_tests::production::{PRODUCTION_ACCOUNT, Production, REFRESH_ACCOUNT, beyond_reading_shares};

    heading("1. Two emulated AWS accounts: production's, and the refresh stack's");
    let stack = stack().await;
    let w = World::with_real_data(Settings { version: Version::V42, snapshot_ms: 1_500, ..Settings::default() }).await;
    println!(
        "emulated AWS at {} with account {PRODUCTION_ACCOUNT} (production) and {REFRESH_ACCOUNT} (the refresh stack, \
         the handlers and the DBLab Engine at {})",
        moto().endpoint,
        w.emulator.url()
    );

    heading("2. Production's account: an RDS instance under the AWS managed key aws/rds, and its nightly snapshot");
    let production = Production::new().await;
    let copy_key = production.copy_key().await;
    let id = production.instance(&format!("prod-{}", w.id)).await;
    let source = w.back_with_postgres(Some(PRODUCTION_ACCOUNT), "instance", id).await;
    let at_snapshot = w.checksums(&source.server, "app").await;
    w.sql(&source.server, "app", LATE_ROW).await;
    println!(
        "RDS instance {} on 127.0.0.1:{} (log_connections on): {} rows in {} tables; its automated snapshot {} cannot be \
         shared as it is (automated, and under aws/rds); one row was written after it",
        source.id,
        source.port,
        group(at_snapshot.values().map(|(rows, _)| rows).sum()),
        at_snapshot.len(),
        source.snapshots.first().map(|(s, _)| s.as_str()).unwrap_or("-")
    );

    heading(
        "3. The publisher, in production's account (infra/publisher.yaml): RDS's snapshot event, then its hourly pass",
    );
    let settings = production.settings(SourceType::Rds, &[&source.id], &copy_key, 2);
    let first = production.publish(&settings).await.unwrap();
    println!("on RDS-EVENT-0091: {}", serde_json::to_string(&first.sources).unwrap());
    let second = production.publish(&settings).await.unwrap();
    println!("next pass:         {}", serde_json::to_string(&second.sources).unwrap());
    for (snapshot, shared_with) in production.manual_snapshots(&source.id).await {
        println!(
            "production's manual snapshot {snapshot}: restorable by {shared_with:?}, encrypted with the copy key {copy_key}"
        );
    }

    heading("4. The refresh request names production's account; preflight in the refresh account");
    let mut request = w.request("rds", &source.id);
    request["target"] = json!("staging");
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request["source"]["maxSnapshotAge"] = json!("26h");
    let file = repo_root().join("target/demo-request-cross-account.json");
    std::fs::write(&file, serde_json::to_string_pretty(&request).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&request["source"]).unwrap());
    let file = file.to_string_lossy().to_string();
    let mut env = cli_env(stack, &w);
    // The stack's CopyKmsKeyArn: the shared copy is encrypted, so it is copied in first.
    env.push(("DBLAB_REFRESH_COPY_KMS_KEY", refresh_tests::stack::copy_in_key_arn()));
    assert!(cli(&["validate", &file, "--preflight"], &env), "the preflight failed");

    heading(
        "5. Start the refresh and watch it: the shared copy is copied into this account, the clone restored from it",
    );
    let from = OffsetDateTime::now_utc();
    assert!(cli(&["start", &file, "--wait"], &env), "the refresh failed");
    let to = OffsetDateTime::now_utc();
    assert!(cli(&["history", "staging"], &env));

    heading("6. What moved, and what the refresh account asked of production's");
    let pool = w.checksums(w.pool(), "app").await;
    assert_eq!(pool, at_snapshot, "the engine's data differs from production's snapshot");
    let late = w.sql(w.pool(), "app", "select count(*) from public.customers where email = 'late@example.com'").await;
    assert_eq!(late, "0", "a row written after the snapshot reached the engine");
    let seen = w.connections(&source.server, from, to).await;
    assert!(seen.is_empty(), "production received connections: {seen:#?}");
    let asked = production.requests_from_elsewhere(&w.id).await;
    assert!(beyond_reading_shares(&asked).is_empty(), "the refresh account did more than read the share: {asked:?}");
    println!(
        "DBLab now holds {} rows in {} tables, every table equal to production's snapshot; the late row is absent; \
         production's server received 0 connections",
        group(pool.values().map(|(rows, _)| rows).sum()),
        pool.len()
    );
    println!(
        "the refresh account's calls naming production's account: {asked:?} (reads of the shared copy and its key only)"
    );
    let rows =
        refresh_core::history::History::new(w.dynamodb.clone(), &stack.table).recent("staging", 1).await.unwrap();
    let row = rows.first().expect("the run's history row");
    let copy = row.copy_identifier.as_deref().expect("the shared encrypted snapshot was copied in");
    let phase = row.phases.iter().find(|p| p.name == "copy").and_then(|p| p.seconds());
    println!(
        "copied in as {copy} under {} ({} s), the clone restored from it; clean-up: {}",
        refresh_tests::stack::copy_in_key_arn(),
        phase.map_or_else(|| "-".to_string(), |s| s.to_string()),
        row.cleanup
    );
    let left = w.rds_names("dblab-refresh-staging").await;
    assert!(left.is_empty(), "clones or copies left: {left:?}");
    println!("no clone and no snapshot copy left in the refresh account");
    println!("\ndone: everything the demo started stops with it.");
}
