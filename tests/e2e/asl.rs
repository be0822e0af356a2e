//! Structural rules of the state machine file that no validator checks.

use std::collections::{BTreeSet, HashSet};

use refresh_core::error::names;
use refresh_tests::stack::{FUNCTIONS, definition_path};
use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(&std::fs::read_to_string(definition_path()).unwrap()).unwrap()
}

fn states(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["States"].as_object().unwrap()
}

/// The names a Retry may match: the handlers' own and Lambda's service errors.
fn known_errors() -> HashSet<&'static str> {
    let mut known: HashSet<&str> = names::ALL.iter().copied().collect();
    known.extend([
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ]);
    known
}

#[test]
fn every_task_catches_everything_and_retries_only_real_errors() {
    let doc = document();
    let known = known_errors();
    for (name, state) in states(&doc) {
        if state["Type"] != "Task" {
            continue;
        }
        let catches = state["Catch"].as_array().unwrap_or_else(|| panic!("{name} has no Catch"));
        assert!(
            catches.iter().any(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"])),
            "{name} does not catch States.ALL"
        );
        for retry in state["Retry"].as_array().unwrap_or_else(|| panic!("{name} has no Retry")) {
            for error in retry["ErrorEquals"].as_array().unwrap() {
                let error = error.as_str().unwrap();
                assert!(known.contains(error), "{name} retries {error}, which nothing returns");
                assert!(
                    !names::ALL.contains(&error) || names::TRANSIENT.contains(&error),
                    "{name} retries the terminal {error}"
                );
            }
        }
    }
}

#[test]
fn every_transient_error_is_retried_by_every_task() {
    let doc = document();
    for (name, state) in states(&doc).iter().filter(|(_, s)| s["Type"] == "Task") {
        let retried: HashSet<&str> = state["Retry"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap().iter().filter_map(Value::as_str))
            .collect();
        for transient in names::TRANSIENT {
            assert!(retried.contains(transient), "{name} does not retry {transient}");
        }
    }
}

#[test]
fn resources_are_substitutions_of_the_eight_functions() {
    let doc = document();
    let allowed: HashSet<String> = FUNCTIONS.iter().map(|(key, _)| format!("${{{key}}}")).collect();
    let mut used = BTreeSet::new();
    for (name, state) in states(&doc).iter().filter(|(_, s)| s["Type"] == "Task") {
        let resource = state["Resource"].as_str().unwrap();
        assert!(allowed.contains(resource), "{name} uses {resource}");
        used.insert(resource.to_string());
    }
    assert_eq!(used.len(), FUNCTIONS.len(), "every function is used");
}

#[test]
fn every_state_is_reachable_and_every_target_exists() {
    let doc = document();
    let all = states(&doc);
    let mut reachable = BTreeSet::new();
    let mut todo = vec![doc["StartAt"].as_str().unwrap().to_string()];
    while let Some(name) = todo.pop() {
        let state = all.get(&name).unwrap_or_else(|| panic!("{name} is a target but not a state"));
        if !reachable.insert(name.clone()) {
            continue;
        }
        let mut next: Vec<&Value> = vec![&state["Next"], &state["Default"]];
        next.extend(state["Catch"].as_array().into_iter().flatten().map(|c| &c["Next"]));
        next.extend(state["Choices"].as_array().into_iter().flatten().map(|c| &c["Next"]));
        todo.extend(next.into_iter().filter_map(Value::as_str).map(str::to_string));
    }
    let unreachable: Vec<_> = all.keys().filter(|k| !reachable.contains(*k)).collect();
    assert!(unreachable.is_empty(), "unreachable states: {unreachable:?}");
}

#[test]
fn poll_loops_are_bounded_and_waits_come_from_the_input() {
    let doc = document();
    assert!(doc["TimeoutSeconds"].as_u64().unwrap() >= 72 * 3_600, "the run may take 60 h of polling");
    for (name, state) in states(&doc).iter().filter(|(_, s)| s["Type"] == "Wait") {
        let path = state["SecondsPath"].as_str();
        assert!(path.is_some_and(|p| p.starts_with("$.run.pollSeconds.")) || name == "WaitForCleanupDefault", "{name}");
    }
    // Each Choice that loops back has a way out other than success.
    for (name, state) in states(&doc).iter().filter(|(_, s)| s["Type"] == "Choice") {
        let targets: Vec<&str> =
            state["Choices"].as_array().unwrap().iter().filter_map(|c| c["Next"].as_str()).collect();
        let loops = targets.iter().any(|t| t.starts_with("Wait"));
        if loops {
            assert!(state["Default"].is_string() || targets.len() > 2, "{name} has no exit");
        }
    }
}
