//! The `dblab-refresh` binary as an operator runs it, against the local stack: exit codes,
//! `--json` output, and each command the README shows.
// A test fails by panicking: unwrapping is how these helpers report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use dblab_emulator::{Outcome, Settings};
use refresh_tests::stack::stack;
use refresh_tests::{World, moto, repo_root};
use serde_json::{Value, json};

/// Runs the CLI without blocking the runtime: the DBLab emulator it talks to lives on it.
async fn run(args: &[&str]) -> Output {
    let stack = stack().await;
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dblab-refresh"))
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("DBLAB_REFRESH_STATE_MACHINE", &stack.state_machine_arn)
        .env("DBLAB_REFRESH_TABLE", &stack.table)
        .output()
        .await
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn write_request(w: &World, request: &Value) -> String {
    let path = repo_root().join(format!("target/cli-{}.json", w.id));
    std::fs::write(&path, request.to_string()).unwrap();
    path.to_string_lossy().to_string()
}

#[tokio::test]
async fn validate_reports_every_problem_and_exits_1() {
    let w = World::new().await;
    let mut request = w.request("rds", "prod");
    request["source"]["password"] = json!("hunter2-value");
    request["clone"]["instanceClas"] = json!("db.t3.micro");
    let out = run(&["validate", &write_request(&w, &request)]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("source.password") && stderr.contains("clone.instanceClas"), "{stderr}");
    assert!(!stderr.contains("hunter2-value"), "{stderr}");

    let valid = write_request(&w, &w.request("rds", "prod"));
    let out = run(&["validate", &valid, "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["valid"], true);
    assert_eq!(stdout_json(&out)["warnings"], json!([]), "plain HTTP allowed by the request");

    // Plain http:// without dblab.allowPlaintext: valid, with a warning.
    let mut plain = w.request("rds", "prod");
    plain["dblab"].as_object_mut().unwrap().remove("allowPlaintext");
    let out = run(&["validate", &write_request(&w, &plain)]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("WARN") && text.contains("in clear") && text.contains("dblab.allowPlaintext"), "{text}");
}

#[tokio::test]
async fn preflight_checks_without_creating_anything() {
    let w = World::with_engine(Settings { mode: "physical".into(), ..Settings::default() }).await;
    let source = w.rds_source().await;
    let file = write_request(&w, &w.request("rds", &source));
    let out = run(&["validate", &file, "--preflight", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let report = stdout_json(&out);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["DBLab Engine"], "{report}");
    assert!(w.rds_names("dblab-refresh-").await.iter().all(|n| !n.contains(&w.id)));
}

#[tokio::test]
async fn preflight_is_the_one_find_snapshot_runs() {
    // What find-snapshot refuses, the CLI's preflight shows: the engine's configuration too.
    let w = World::with_engine(Settings {
        version: dblab_emulator::Version::V42,
        immediate_restore: true,
        timetable: "0 0 * * 1".into(),
        ..Settings::default()
    })
    .await;
    let source = w.rds_source().await;
    let mut request = w.request("rds", &source);
    request["clone"]["deleteAfterDump"] = json!(true);
    let out = run(&["validate", &write_request(&w, &request), "--preflight"]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok    DBLab configuration: server.yml readable, 4.2 API"), "{text}");
    assert!(text.contains("FAIL  engine timetable") && text.contains("retrieval.refresh.timetable"), "{text}");
    assert!(text.contains("FAIL  immediateRestore") && text.contains("clone.deleteAfterDump"), "{text}");
    assert!(text.contains("ok    restore from"), "the rest still runs: {text}");
}

#[tokio::test]
async fn preflight_checks_the_security_groups() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let ec2 = aws_sdk_ec2::Client::new(&w.config);
    let group = ec2
        .create_security_group()
        .group_name(format!("dblab-{}", w.id))
        .description("DBLab to clone")
        .send()
        .await
        .unwrap();
    let mut request = w.request("rds", &source);
    request["clone"]["securityGroups"] = json!([group.group_id().unwrap()]);
    let out = run(&["validate", &write_request(&w, &request), "--preflight"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    request["clone"]["securityGroups"] = json!([group.group_id().unwrap(), "sg-0000000000deadbee"]);
    let out = run(&["validate", &write_request(&w, &request), "--preflight"]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL  security groups") && text.contains("sg-0000000000deadbee"), "{text}");
}

#[tokio::test]
async fn start_wait_history_and_exit_codes() {
    let w = World::with_engine(Settings { dump_ms: 1_500, ..Settings::default() }).await;
    let source = w.rds_source().await;
    let file = write_request(&w, &w.request("rds", &source));
    let out = run(&["start", &file, "--wait", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run_view = stdout_json(&out);
    assert_eq!(run_view["status"], "SUCCEEDED");
    let phases: Vec<&str> =
        run_view["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert!(phases.contains(&"refresh") && phases.contains(&"delete clone"), "{phases:?}");

    let arn = run_view["executionArn"].as_str().unwrap();
    let watched = run(&["watch", arn]).await;
    assert_eq!(watched.status.code(), Some(0));
    let text = String::from_utf8_lossy(&watched.stdout);
    assert!(text.contains("status: SUCCEEDED") && text.contains("polls)"), "{text}");

    let out = run(&["history", &w.target(), "--json"]).await;
    let rows = stdout_json(&out);
    assert_eq!(rows[0]["outcome"], "succeeded", "{rows}");
    let table = run(&["history", &w.target()]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("STARTED (UTC)") && text.contains("succeeded"), "{text}");
    let row = text.lines().nth(1).unwrap();
    let cost = rows[0]["cost"]["totalUsd"].as_f64().unwrap_or_else(|| panic!("no cost in {rows}"));
    assert!(row.contains(&format!("${cost:.2}")) && row.contains("rds:"), "cost and snapshot shown: {row}");
}

#[tokio::test]
async fn a_failed_run_exits_1_and_says_why() {
    let w = World::with_engine(Settings { outcome: Outcome::FailRestore, ..Settings::default() }).await;
    let source = w.rds_source().await;
    let file = write_request(&w, &w.request("rds", &source));
    let out = run(&["start", &file, "--wait"]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RefreshFailed") && text.contains("failed in: PollRefresh") && text.contains("postgis"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour when not on a terminal");
}

#[tokio::test]
async fn cleanup_dry_run_reports_as_json() {
    let out = run(&["cleanup", "--dry-run", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = stdout_json(&out);
    assert_eq!(report["dryRun"], true);
    assert!(report["examined"].is_u64());
    assert_eq!(run(&["cleanup", "--max-age", "soon"]).await.status.code(), Some(2), "a bad duration is a usage error");
}

#[tokio::test]
async fn import_refuses_plain_secrets_and_converts_with_arns() {
    let config = repo_root().join("examples/rds-refresh.yaml").to_string_lossy().to_string();
    let out = run(&["import-rds-refresh", &config]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--password-secret") && stderr.contains("--token-secret"), "{stderr}");
    assert!(!stderr.contains("not-carried-over"));
    let pw = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pw-AbCdEf";
    let token = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tok-AbCdEf";
    let out = run(&["import-rds-refresh", &config, "--password-secret", pw, "--token-secret", token]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let request = stdout_json(&out);
    assert_eq!(request["target"], "prod-orders");
    assert!(!request.to_string().contains("not-carried-over"));
    refresh_core::RefreshRequest::from_document(&request).unwrap();
}

#[tokio::test]
async fn every_command_has_help() {
    for command in ["validate", "import-rds-refresh", "start", "watch", "history", "cleanup"] {
        let out = run(&[command, "--help"]).await;
        assert_eq!(out.status.code(), Some(0), "{command}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: dblab-refresh"), "{command}");
    }
    assert_eq!(run(&["no-such-command"]).await.status.code(), Some(2));
}
