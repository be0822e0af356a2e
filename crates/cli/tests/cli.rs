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
    run_with(args, &[]).await
}

async fn run_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).await.output().await.unwrap()
}

/// The CLI told the stack's parts, its engines (`DBLAB_REFRESH_ENGINES`) included, unless
/// `env` says otherwise.
async fn command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let stack = stack().await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dblab-refresh"));
    command
        .args(args)
        .env("DBLAB_REFRESH_ENGINES", refresh_tests::engines::pool().await.list())
        .envs(env.iter().copied())
        .env("AWS_ENDPOINT_URL", &moto().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("DBLAB_REFRESH_STATE_MACHINE", &stack.state_machine_arn)
        .env("DBLAB_REFRESH_TABLE", &stack.table);
    command
}

/// The CLI told no state machine and no history table: only `--stack`, if given, names them.
async fn run_without_parts(args: &[&str]) -> Output {
    let mut command = command(args, &[]).await;
    command.env_remove("DBLAB_REFRESH_STATE_MACHINE").env_remove("DBLAB_REFRESH_TABLE").output().await.unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
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
    assert_eq!(stdout_json(&out)["engine"], json!(w.engine), "named from the stack's list");
}

#[tokio::test]
async fn validate_refuses_an_engine_the_stack_does_not_list() {
    let w = World::new().await;
    let mut request = w.request("rds", "prod");
    request["dblab"].as_object_mut().unwrap().remove("engine");
    request["dblab"]["apiEndpoint"] = json!("https://attacker.example:2345");
    let file = write_request(&w, &request);
    let out = run(&["validate", &file]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dblab.apiEndpoint") && stderr.contains("DblabEngines"), "{stderr}");
    // Unlisted, the preflight reads no secret at all: it does not start.
    let out = run(&["validate", &file, "--preflight"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));

    // Without the list, a request is checked alone and the preflight is wrong usage.
    let mut bare = command(&["validate", &file], &[]).await;
    let out = bare.env_remove("DBLAB_REFRESH_ENGINES").output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not checked against the stack's list"));
    let mut bare = command(&["validate", &file, "--preflight"], &[]).await;
    let out = bare.env_remove("DBLAB_REFRESH_ENGINES").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
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
async fn preflight_shows_the_pools_and_what_a_restart_of_the_engine_would_do() {
    let check = |report: &Value, name: &str| -> String {
        let found = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == name);
        let found = found.unwrap_or_else(|| panic!("no {name} check: {report}"));
        assert_eq!(found["ok"], true, "{found}");
        found["detail"].as_str().unwrap_or_else(|| panic!("{found}")).to_string()
    };
    let w = World::with_engine(Settings::default()).await;
    let source = w.rds_source().await;
    let out = run(&["validate", &write_request(&w, &w.request("rds", &source)), "--preflight", "--json"]).await;
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let pools = check(&report, "pools");
    assert!(pools.starts_with("1: dblab_pool (active, no clones); with one pool, a failed refresh"), "{pools}");
    let restart = check(&report, "engine restart");
    assert!(restart.starts_with("skipStartRefresh is off: a restart of the engine after this run"), "{restart}");
    assert!(restart.contains("its users can make no clone until then"), "{restart}");

    let pools = vec![
        dblab_emulator::PoolSetting { clones: vec!["dev-1".into()], ..dblab_emulator::PoolSetting::free("pool_a") },
        dblab_emulator::PoolSetting::free("pool_b"),
    ];
    let w = World::with_engine(Settings { pools, skip_start_refresh: true, ..Settings::default() }).await;
    let source = w.rds_source().await;
    let out = run(&["validate", &write_request(&w, &w.request("rds", &source)), "--preflight", "--json"]).await;
    let report = stdout_json(&out);
    assert_eq!(check(&report, "pools"), "2: pool_a (active, clones dev-1); pool_b (active, no clones)");
    assert!(check(&report, "engine restart").starts_with("skipStartRefresh is on"), "{report}");
}

#[tokio::test]
async fn preflight_reports_production_accounts_shared_snapshot_and_its_key() {
    use refresh_core::request::SourceType;
    use refresh_tests::production::{PRODUCTION_ACCOUNT, Production, copy_key_arn};
    let w = World::with_engine(Settings::default()).await;
    let production = Production::new().await;
    let key = production.copy_key().await;
    let source = production.instance(&format!("prod-{}", w.id)).await;
    let settings = production.settings(SourceType::Rds, &[&source], &key, 2);
    let copy = production.publish(&settings).await.unwrap().sources[0].copy_started.clone().unwrap();
    let mut request = w.request("rds", &source);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    let file = write_request(&w, &request);
    // Not shared yet: the preflight says what production's account must do.
    let out = run(&["validate", &file, "--preflight", "--source-kms-keys", &copy_key_arn()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  restore from") && text.contains("publisher"), "{text}");

    production.publish(&settings).await.unwrap();
    // Shared, but encrypted: without the stack's copy key it cannot be copied in.
    let out = run(&["validate", &file, "--preflight", "--source-kms-keys", &copy_key_arn()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  copy into this account") && text.contains("--copy-kms-key"), "{text}");
    let copy_in = refresh_tests::stack::copy_in_key_arn();
    let keys = ["--source-kms-keys", &copy_key_arn(), "--copy-kms-key", &copy_in];
    let out = run(&[&["validate", &file, "--preflight"][..], &keys[..]].concat()).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "ok    copy into this account: encrypted and shared from another account: copied here under {copy_in} first"
        )),
        "{text}"
    );
    let shared = format!(
        "ok    restore from: snapshot arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:snapshot:{copy} of account {PRODUCTION_ACCOUNT}"
    );
    assert!(text.contains(&shared), "names the shared snapshot and whose it is: {text}");
    assert!(
        text.contains(&format!("ok    encryption key: encrypted with {key}, which the stack allows; account {PRODUCTION_ACCOUNT}'s key policy lets this account use it")),
        "{text}"
    );
    assert!(text.contains("not described (only the snapshots it shares are read)"), "{text}");
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
    // How many polls a phase took depends on timing: one, or several, is shown either way.
    assert!(text.contains("status: SUCCEEDED") && (text.contains("(1 poll)") || text.contains(" polls)")), "{text}");

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
    for command in ["validate", "import-rds-refresh", "start", "watch", "history", "cleanup", "target"] {
        let out = run(&[command, "--help"]).await;
        assert_eq!(out.status.code(), Some(0), "{command}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: dblab-refresh"), "{command}");
    }
    assert_eq!(run(&["no-such-command"]).await.status.code(), Some(2));
}

#[tokio::test]
async fn a_target_or_limit_no_run_could_have_is_wrong_usage() {
    for args in [
        &["history", "", "--json"][..],
        &["history", "_bad", "--json"],
        &["history", "has space"],
        &["history", "fine", "--limit", "0"],
        &["history", "fine", "--limit=-3"],
        &["target", "retire", "a/b"],
        &["schedule", "pause", ""],
    ] {
        let out = run(args).await;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains("invalid value"), "{args:?}: {said}");
    }
    let out = run(&["history", "staging.db_1", "--limit", "1", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A schedule group of its own for one test, and the environment that names it.
async fn schedule_group(w: &World) -> (aws_sdk_scheduler::Client, String) {
    let scheduler = aws_sdk_scheduler::Client::new(&w.config);
    let group = format!("group-{}", w.id);
    scheduler.create_schedule_group().name(&group).send().await.unwrap();
    (scheduler, group)
}

const ROLE: &str = "arn:aws:iam::123456789012:role/scheduler";

#[tokio::test]
async fn schedules_are_set_listed_paused_resumed_and_removed() {
    let w = World::new().await;
    let (scheduler, group) = schedule_group(&w).await;
    let dlq = "arn:aws:sqs:us-east-1:123456789012:schedules-dlq";
    let env = [
        ("DBLAB_REFRESH_SCHEDULE_GROUP", group.as_str()),
        ("DBLAB_REFRESH_SCHEDULER_ROLE", ROLE),
        ("DBLAB_REFRESH_SCHEDULE_DLQ", dlq),
    ];
    let request = w.request("rds", "prod");
    let file = write_request(&w, &request);
    let target = w.target();

    let other = run_with(&["schedule", "set", "someone-else", &file, "--cron", "cron(0 3 * * ? *)"], &env).await;
    assert_eq!(other.status.code(), Some(1), "the request's target must be the schedule's");
    let out = run_with(
        &["schedule", "set", &target, &file, "--cron", "cron(0 3 * * ? *)", "--timezone", "Europe/Berlin"],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created"), "{}", String::from_utf8_lossy(&out.stdout));
    // What Scheduler holds: the stack's state machine, its role, the request as input.
    let held = scheduler.get_schedule().group_name(&group).name(&target).send().await.unwrap();
    let t = held.target().unwrap();
    assert_eq!(t.arn(), stack().await.state_machine_arn);
    assert_eq!(t.role_arn(), ROLE);
    assert_eq!(serde_json::from_str::<Value>(t.input().unwrap()).unwrap(), request);
    assert_eq!(held.schedule_expression_timezone(), Some("Europe/Berlin"));
    // Given up within the hour, into the dead-letter queue: never begun a day late.
    let retry = t.retry_policy().unwrap();
    assert_eq!((retry.maximum_event_age_in_seconds(), retry.maximum_retry_attempts()), (Some(3_600), Some(3)));
    assert_eq!(t.dead_letter_config().and_then(|d| d.arn()), Some(dlq));

    let listed = stdout_json(&run_with(&["schedule", "list", "--json"], &env).await);
    let row = &listed[0];
    assert_eq!((row["target"].as_str(), row["state"].as_str()), (Some(target.as_str()), Some("ENABLED")), "{listed}");
    assert_eq!(row["expression"], "cron(0 3 * * ? *)");
    assert!(row["nextRun"].as_str().is_some_and(|t| t.ends_with(":00:00Z")), "{row}");

    assert_eq!(run_with(&["schedule", "pause", &target], &env).await.status.code(), Some(0));
    let listed = stdout_json(&run_with(&["schedule", "list", "--json"], &env).await);
    assert_eq!((listed[0]["state"].as_str(), &listed[0]["nextRun"]), (Some("DISABLED"), &Value::Null));
    // Setting it again keeps it paused, with the new expression.
    let again = run_with(&["schedule", "set", &target, &file, "--cron", "rate(12 hours)"], &env).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("updated"));
    let listed = stdout_json(&run_with(&["schedule", "list", "--json"], &env).await);
    assert_eq!(
        (listed[0]["state"].as_str(), listed[0]["expression"].as_str()),
        (Some("DISABLED"), Some("rate(12 hours)"))
    );
    assert_eq!(run_with(&["schedule", "resume", &target], &env).await.status.code(), Some(0));
    let text = String::from_utf8_lossy(&run_with(&["schedule", "list"], &env).await.stdout).to_string();
    assert!(text.starts_with("TARGET") && text.contains(&target) && text.contains("enabled"), "{text}");

    assert_eq!(run_with(&["schedule", "remove", &target], &env).await.status.code(), Some(0));
    assert_eq!(stdout_json(&run_with(&["schedule", "list", "--json"], &env).await), json!([]));
}

#[tokio::test]
async fn the_stack_is_found_from_its_outputs() {
    let w = World::new().await;
    let (_, group) = schedule_group(&w).await;
    // A stack whose outputs name the parts, as the deployed template's do.
    let stack_name = format!("stack-{}", w.id);
    let template = json!({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "ScheduleGroupName": {"Value": group},
            "SchedulerRoleArn": {"Value": ROLE},
            "RefreshStateMachineArn": {"Value": stack().await.state_machine_arn},
            "HistoryTableName": {"Value": stack().await.table},
        }
    });
    aws_sdk_cloudformation::Client::new(&w.config)
        .create_stack()
        .stack_name(&stack_name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    let file = write_request(&w, &w.request("rds", "prod"));
    let out =
        run(&["schedule", "set", &w.target(), &file, "--cron", "cron(15 2 * * ? *)", "--stack", &stack_name]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = stdout_json(&run(&["schedule", "list", "--json", "--stack", &stack_name]).await);
    assert_eq!(listed[0]["target"], w.target());
    // Without the stack or the group, the error says how to name them.
    let lost = run(&["schedule", "list"]).await;
    assert_eq!(lost.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&lost.stderr).contains("--stack NAME"));

    // `start` and `history` find the state machine and the table there too.
    let started = run_without_parts(&["start", &file, "--json", "--stack", &stack_name]).await;
    assert_eq!(started.status.code(), Some(0), "{}", String::from_utf8_lossy(&started.stderr));
    let arn = stdout_json(&started)["executionArn"].as_str().unwrap().to_string();
    let machine = stack().await.state_machine_arn.replace(":stateMachine:", ":execution:");
    assert!(arn.starts_with(&format!("{machine}:")), "{arn} is not a run of {machine}");
    // Only the start is tested here: the run is stopped.
    refresh_core::clients::StepFunctions::new(&w.config).stop_execution().execution_arn(&arn).send().await.unwrap();
    let history = run_without_parts(&["history", &w.target(), "--json", "--stack", &stack_name]).await;
    assert_eq!(history.status.code(), Some(0), "{}", String::from_utf8_lossy(&history.stderr));
    assert!(stdout_json(&history).is_array());
    for args in [&["start", &file][..], &["history", &w.target()]] {
        let lost = run_without_parts(args).await;
        assert_eq!(lost.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&lost.stderr).contains("--stack NAME"), "{args:?}");
    }
}

#[tokio::test]
async fn status_shows_every_target_in_its_state() {
    // done: refreshed; broken: its last run failed; busy: a run in progress.
    let done = World::with_engine(Settings { dump_ms: 500, ..Settings::default() }).await;
    let broken = World::with_engine(Settings { outcome: Outcome::FailDump, ..Settings::default() }).await;
    let busy = World::with_engine(Settings { outcome: Outcome::Hang, ..Settings::default() }).await;
    // partial: the engine ignores restore errors (accepted), and its pg_restore failed.
    let partial = World::with_engine(Settings {
        restore_ignore_errors: true,
        outcome: Outcome::FailRestore,
        dump_ms: 500,
        ..Settings::default()
    })
    .await;
    let (scheduler, group) = schedule_group(&done).await;
    let env = [("DBLAB_REFRESH_SCHEDULE_GROUP", group.as_str()), ("DBLAB_REFRESH_SCHEDULER_ROLE", ROLE)];
    let mut files = Vec::new();
    for w in [&done, &broken, &busy, &partial] {
        let source = w.rds_source().await;
        let mut request = w.request("rds", &source);
        request["dblab"]["allowIgnoredErrors"] = json!(true);
        files.push(write_request(w, &request));
    }
    let set = run_with(&["schedule", "set", &done.target(), &files[0], "--cron", "cron(0 3 * * ? *)"], &env).await;
    assert_eq!(set.status.code(), Some(0));
    // A fourth target, scheduled but never run.
    let mut planned = done.request("rds", "prod");
    planned["target"] = json!(format!("planned-{}", done.id));
    let planned_file = repo_root().join(format!("target/cli-planned-{}.json", done.id)).to_string_lossy().to_string();
    std::fs::write(&planned_file, planned.to_string()).unwrap();
    let set =
        run_with(&["schedule", "set", &format!("planned-{}", done.id), &planned_file, "--cron", "rate(1 day)"], &env)
            .await;
    assert_eq!(set.status.code(), Some(0));
    assert_eq!(run(&["start", &files[0], "--wait"]).await.status.code(), Some(0));
    assert_eq!(run(&["start", &files[1], "--wait"]).await.status.code(), Some(1));
    assert_eq!(run(&["start", &files[3], "--wait"]).await.status.code(), Some(0));
    let started = stdout_json(&run(&["start", &files[2], "--json"]).await);
    for _ in 0..100 {
        if busy.emulator.view().refreshes_started == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let all = stdout_json(&run_with(&["status", "--json"], &env).await);
    let line = |w: &World| all.as_array().unwrap().iter().find(|l| l["target"] == w.target()).cloned().unwrap();
    let d = line(&done);
    assert_eq!((d["lastRun"]["outcome"].as_str(), d["stale"].as_bool()), (Some("succeeded"), Some(false)), "{d}");
    assert!(d["dataAsOf"].is_string() && d["dataAgeSeconds"].as_i64().unwrap() < 600, "{d}");
    assert!(d["nextRun"].as_str().is_some_and(|t| t.ends_with("T03:00:00Z")), "{d}");
    let b = line(&broken);
    assert_eq!(
        (b["lastRun"]["outcome"].as_str(), b["lastRun"]["error"].as_str()),
        (Some("failed"), Some("RefreshFailed"))
    );
    assert_eq!(b["dataAsOf"], Value::Null, "never refreshed");
    assert_eq!(b["dataAgeSeconds"], Value::Null, "data it never had has no age: {b}");
    assert!(b["trackedSince"].is_string() && b["stale"] == false, "{b}");
    assert_eq!(d["lastRun"]["ignoredErrors"], Value::Null);
    let partly = line(&partial);
    assert_eq!(partly["lastRun"]["outcome"], "succeeded");
    assert!(
        partly["lastRun"]["ignoredErrors"].as_str().is_some_and(|s| s.contains("tables may be missing")),
        "{partly}"
    );
    let r = line(&busy);
    assert_eq!(r["running"]["phase"], "refresh", "{r}");
    assert_eq!(r["lastRun"], Value::Null);
    let p = all.as_array().unwrap().iter().find(|l| l["target"] == format!("planned-{}", done.id)).unwrap();
    assert!(p["lastRun"].is_null() && p["nextRun"].is_string() && p["stale"] == false, "{p}");

    let text = String::from_utf8_lossy(&run_with(&["status"], &env).await.stdout).to_string();
    assert!(text.starts_with("TARGET"), "{text}");
    let row = text.lines().find(|l| l.starts_with(&busy.target())).unwrap();
    assert!(row.contains("refresh ("), "{row}");
    let row = text.lines().find(|l| l.starts_with(&partial.target())).unwrap();
    assert!(row.ends_with("RESTORE ERRORS IGNORED"), "{row}");
    let row = text.lines().find(|l| l.starts_with(&done.target())).unwrap();
    assert!(!row.contains("IGNORED"), "{row}");
    let row = text.lines().find(|l| l.starts_with(&broken.target())).unwrap();
    assert!(row.contains("no data") && row.ends_with("(never refreshed; not stale yet)"), "{row}");

    // The run in progress is stopped, and its clone swept as an ended run's.
    let arn = started["executionArn"].as_str().unwrap().to_string();
    refresh_core::clients::StepFunctions::new(&busy.config).stop_execution().execution_arn(&arn).send().await.unwrap();
    assert_eq!(run(&["cleanup"]).await.status.code(), Some(0));
    for name in [done.target(), format!("planned-{}", done.id)] {
        scheduler.delete_schedule().group_name(&group).name(name).send().await.unwrap();
    }
}

#[tokio::test]
async fn a_retired_target_leaves_the_fleet_and_keeps_its_history() {
    use refresh_core::fleet::Running;
    use refresh_core::history::History;
    let w = World::new().await;
    let (scheduler, group) = schedule_group(&w).await;
    let table = stack().await.table.clone();
    let env = [
        ("DBLAB_REFRESH_SCHEDULE_GROUP", group.as_str()),
        ("DBLAB_REFRESH_SCHEDULER_ROLE", ROLE),
        ("DBLAB_REFRESH_TABLE", table.as_str()),
    ];
    let history = History::new(w.dynamodb.clone(), &table);
    let now = time::OffsetDateTime::now_utc();
    let day = std::time::Duration::from_secs(86_400);
    let (old, busy) = (format!("old-{}", w.id), format!("busy-{}", w.id));
    for target in [&old, &busy] {
        let running = Running { execution_name: format!("run-{target}"), execution_arn: None, started_at: now };
        history.fleet_started(target, &running, day, now).await.unwrap();
    }
    // old's run ended long ago (its row stays); busy's is under way.
    history.fleet_clear_running(&old, &format!("run-{old}")).await.unwrap();
    let row: refresh_core::row::RunSummary = serde_json::from_value(json!({
        "target": old, "executionName": format!("run-{old}"), "outcome": "failed",
        "startedAt": "2026-11-01T03:00:00Z", "finishedAt": "2026-11-01T04:00:00Z", "cleanup": "nothing to clean up"
    }))
    .unwrap();
    history.put_run(&refresh_core::history::run_key(row.started_at, &row.execution_name), &row).await.unwrap();
    let mut request = w.request("rds", "prod");
    request["target"] = json!(old);
    let file = write_request(&w, &request);
    assert_eq!(run_with(&["schedule", "set", &old, &file, "--cron", "rate(1 day)"], &env).await.status.code(), Some(0));

    let refused = run_with(&["target", "retire", &busy], &env).await;
    assert_eq!(refused.status.code(), Some(1), "a run under way would put it back");
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&format!("run-{busy}")));
    let retired = run_with(&["target", "retire", &old], &env).await;
    assert_eq!(retired.status.code(), Some(0), "{}", String::from_utf8_lossy(&retired.stderr));
    assert!(String::from_utf8_lossy(&retired.stdout).contains("its schedule removed"));

    let fleet: Vec<String> = history.fleet().await.unwrap().into_iter().map(|t| t.target).collect();
    assert!(!fleet.contains(&old) && fleet.contains(&busy), "{fleet:?}");
    assert_eq!(history.recent(&old, 10).await.unwrap().len(), 1, "its history is kept");
    let schedule = scheduler.get_schedule().group_name(&group).name(&old).send().await;
    assert!(schedule.is_err(), "its schedule is gone");
}
