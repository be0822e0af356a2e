//! `make demo`: a complete refresh on the local emulated stack, with no AWS account.
//!
//! Emulated AWS (moto) executes the real state machine, whose Lambda calls reach the real
//! handler binaries (`cargo lambda watch`); a DBLab emulator plays the engine. The demo
//! seeds a "production" database, then drives the real `dblab-refresh` CLI: validate with
//! preflight, start (as the schedule would) and watch live, history, the notification,
//! and a last sweep showing nothing was left behind. Everything it started stops with it.
//!
//! `demo aurora` refreshes from an Aurora cluster; `demo failure` shows a refresh that
//! fails mid-dump being cleaned up.
// A demo stops at the first thing that goes wrong, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use dblab_emulator::{Outcome, Settings, Version};
use refresh_tests::stack::stack;
use refresh_tests::{World, moto, repo_root};
use serde_json::json;

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
    let (aurora, failure) = (variant == "aurora", variant == "failure");

    heading("1. Starting the local stack: emulated AWS, the eight handlers, a DBLab Engine emulator");
    let stack = stack().await;
    let engine = Settings {
        version: Version::V42,
        // What `dblab local-install` writes for a source URL with options: it names
        // production, and on 4.2 it would decide where pg_dump connects.
        connection_string: Some("host=production.internal port=5432 dbname=app user=dblab sslmode=require".into()),
        dump_ms: 4_000,
        restore_ms: 3_000,
        snapshot_ms: 1_500,
        outcome: if failure { Outcome::FailDump } else { Outcome::Succeed },
        ..Settings::default()
    };
    let w = World::with_engine(engine).await;
    println!("emulated AWS at {}; DBLab Engine at {}", moto().endpoint, w.emulator.url());

    heading("2. A \"production\" database with its nightly automated snapshot, and the secrets");
    let source = if aurora { w.aurora_source().await } else { w.rds_source().await };
    println!(
        "{} {source}; the DB password and the DBLab token are in Secrets Manager",
        if aurora { "Aurora cluster" } else { "RDS instance" }
    );
    let target = "staging";
    let queue = w.subscribe_queue(&stack.topic_arn, Some(target)).await;

    heading("3. The refresh request: ARNs of secrets, never their values");
    let mut request = w.request(if aurora { "aurora-cluster" } else { "rds" }, &source);
    request["target"] = json!(target);
    // The clone takes a few polls to become available, as a real restore does.
    request["clone"]["tags"] = json!({"team": "data-platform", "test:creating-polls": "3"});
    let file = repo_root().join("target/demo-request.json");
    std::fs::write(&file, serde_json::to_string_pretty(&request).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&request).unwrap());
    let file = file.to_string_lossy().to_string();
    let env = vec![
        ("AWS_ENDPOINT_URL", moto().endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("DBLAB_REFRESH_STATE_MACHINE", stack.state_machine_arn.clone()),
        ("DBLAB_REFRESH_TABLE", stack.table.clone()),
    ];

    heading("4. Preflight: everything that could fail before a clone costs money");
    assert!(cli(&["validate", &file, "--preflight"], &env), "the preflight failed");

    heading("5. Start the refresh, as the schedule would, and watch it live");
    let succeeded = cli(&["start", &file, "--wait"], &env);
    assert_eq!(succeeded, !failure, "the run did not end as this demo expects");
    for dumped in w.emulator.view().dump_sources {
        println!(
            "the engine dumped from {}:{} (database {}, user {}) through the connection string {:?}: the clone, never production",
            dumped.host,
            dumped.port,
            dumped.dbname,
            dumped.username,
            dumped.connection_string.unwrap_or_default()
        );
        assert!(!dumped.host.contains("production"), "the dump read production");
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

    println!("\ndone: everything the demo started stops with it.");
}
