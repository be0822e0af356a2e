//! The emulator as the README runs it: `dblab-emulator --port N --settings JSON`.
// A test fails by panicking: unwrapping is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn serves_the_api_with_the_given_settings() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dblab-emulator"))
        .args(["--port", "0", "--settings", r#"{"dumpMs": 5000, "token": "t0k"}"#])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap().to_string();
    let http = reqwest::Client::new();
    let health: serde_json::Value = http.get(format!("{url}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["edition"], "community");
    let refused = http.get(format!("{url}/status")).header("Verification-Token", "wrong").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let state: serde_json::Value =
        http.get(format!("{url}/_emulator/state")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["settings"]["dumpMs"], 5000);
    let changed: serde_json::Value = http
        .post(format!("{url}/_emulator/settings"))
        .json(&serde_json::json!({"token": "t0k", "mode": "physical"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["settings"]["mode"], "physical");
    let status: serde_json::Value = http
        .get(format!("{url}/status"))
        .header("Verification-Token", "t0k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["retrieving"]["mode"], "physical");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dblab-emulator")).args(["--settings", "{nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
