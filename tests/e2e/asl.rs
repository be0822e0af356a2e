//! Structural rules of the state machine files that no validator checks.

use std::collections::{BTreeSet, HashSet};

use refresh_core::error::names;
use refresh_tests::repo_root;
use refresh_tests::stack::{DEFINITIONS, FUNCTIONS};
use serde_json::{Map, Value};

fn documents() -> Vec<(&'static str, Value)> {
    DEFINITIONS
        .iter()
        .map(|file| (*file, serde_json::from_str(&std::fs::read_to_string(repo_root().join(file)).unwrap()).unwrap()))
        .collect()
}

fn states(doc: &Value) -> &Map<String, Value> {
    doc["States"].as_object().unwrap()
}

/// Every Task of every file, named `file: state`.
fn tasks() -> Vec<(String, Value)> {
    documents()
        .into_iter()
        .flat_map(|(file, doc)| {
            states(&doc)
                .iter()
                .filter(|(_, s)| s["Type"] == "Task")
                .map(|(name, s)| (format!("{file}: {name}"), s.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn retried(state: &Value) -> Vec<String> {
    state["Retry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["ErrorEquals"].as_array().unwrap().iter().filter_map(Value::as_str).map(str::to_string))
        .collect()
}

/// Lambda's own service errors, worth retrying whatever the handler.
const LAMBDA_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
];

#[test]
fn every_task_catches_everything_and_retries_only_real_transient_errors() {
    for (name, state) in tasks() {
        let catches = state["Catch"].as_array().unwrap_or_else(|| panic!("{name} has no Catch"));
        assert!(
            catches.iter().any(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"])),
            "{name} does not catch States.ALL"
        );
        assert!(state["Retry"].is_array(), "{name} has no Retry");
        for error in retried(&state) {
            let known = names::ALL.contains(&error.as_str()) || LAMBDA_ERRORS.contains(&error.as_str());
            assert!(known, "{name} retries {error}, which nothing returns");
            assert!(
                !names::ALL.contains(&error.as_str()) || names::TRANSIENT.contains(&error.as_str()),
                "{name} retries the terminal {error}"
            );
        }
    }
}

#[test]
fn every_transient_error_is_retried_by_every_task() {
    for (name, state) in tasks() {
        let retried = retried(&state);
        for wanted in names::TRANSIENT.iter().chain(LAMBDA_ERRORS) {
            assert!(retried.iter().any(|e| e == wanted), "{name} does not retry {wanted}");
        }
    }
}

#[test]
fn resources_are_substitutions_of_the_eight_functions() {
    let allowed: HashSet<String> = FUNCTIONS.iter().map(|(key, _)| format!("${{{key}}}")).collect();
    let mut used = BTreeSet::new();
    for (name, state) in tasks() {
        let resource = state["Resource"].as_str().unwrap().to_string();
        assert!(allowed.contains(&resource), "{name} uses {resource}");
        used.insert(resource);
    }
    assert_eq!(used.len(), FUNCTIONS.len(), "every function is used");
}

#[test]
fn every_state_is_reachable_and_every_target_exists() {
    for (file, doc) in documents() {
        let all = states(&doc);
        let mut reachable = BTreeSet::new();
        let mut todo = vec![doc["StartAt"].as_str().unwrap().to_string()];
        while let Some(name) = todo.pop() {
            let state = all.get(&name).unwrap_or_else(|| panic!("{file}: {name} is a target but not a state"));
            if !reachable.insert(name.clone()) {
                continue;
            }
            let mut next: Vec<&Value> = vec![&state["Next"], &state["Default"]];
            next.extend(state["Catch"].as_array().into_iter().flatten().map(|c| &c["Next"]));
            next.extend(state["Choices"].as_array().into_iter().flatten().map(|c| &c["Next"]));
            todo.extend(next.into_iter().filter_map(Value::as_str).map(str::to_string));
        }
        let unreachable: Vec<_> = all.keys().filter(|k| !reachable.contains(*k)).collect();
        assert!(unreachable.is_empty(), "{file}: unreachable states: {unreachable:?}");
    }
}

#[test]
fn every_execution_is_bounded_and_waits_come_from_the_input() {
    for (file, doc) in documents() {
        assert!(doc["TimeoutSeconds"].is_u64(), "{file} has no overall timeout");
    }
    let (_, refresh) = &documents()[0];
    assert_eq!(
        refresh["TimeoutSeconds"].as_u64(),
        Some(refresh_core::request::EXECUTION_TIMEOUT.as_secs()),
        "the validator refuses a request whose longest run would outlast the execution"
    );
    for (name, state) in states(refresh).iter().filter(|(_, s)| s["Type"] == "Wait") {
        // The refresh poll's wait is the last poll's answer (half the interval while a
        // deleteAfterDump run dumps); every other wait is the request's interval.
        let from_input = state["SecondsPath"].as_str().is_some_and(|p| {
            p.starts_with("$.run.pollSeconds.") || (name == "WaitForRefresh" && p == "$.refresh.waitSeconds")
        });
        assert!(from_input || name == "WaitForCleanupDefault", "{name} does not wait for the requested interval");
    }
}

/// Every `Error` a state sets and every name an `ErrorEquals` lists, in all files.
fn names_in(value: &Value, set: &mut BTreeSet<String>, matched: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Error") {
                set.insert(name.clone());
            }
            if let Some(Value::Array(names)) = map.get("ErrorEquals") {
                matched.extend(names.iter().filter_map(Value::as_str).map(str::to_string));
            }
            map.values().for_each(|v| names_in(v, set, matched));
        }
        Value::Array(items) => items.iter().for_each(|v| names_in(v, set, matched)),
        _ => {}
    }
}

#[test]
fn the_state_machines_set_and_match_only_registered_names() {
    let (mut set, mut matched) = (BTreeSet::new(), BTreeSet::new());
    for (_, doc) in documents() {
        names_in(&doc, &mut set, &mut matched);
    }
    let registered: BTreeSet<String> = names::SET_BY_STATE_MACHINES.iter().map(|n| n.to_string()).collect();
    assert_eq!(set, registered, "the names the files set are exactly error::names::SET_BY_STATE_MACHINES");
    for name in &set {
        assert!(names::OUTCOMES.contains(&name.as_str()), "{name} is set but is not an outcome name");
    }
    for name in matched {
        let service = name.starts_with("States.") || LAMBDA_ERRORS.contains(&name.as_str());
        assert!(service || names::ALL.contains(&name.as_str()), "{name} is matched but nothing returns it");
    }
}

/// The node ids of the workflow diagram (docs/workflow.md): each word written just before its
/// label's `[`, `{` or `((`.
fn diagram_nodes() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("docs/workflow.md")).unwrap();
    let start = readme.find("```mermaid\nflowchart TD").expect("the workflow diagram");
    let block = &readme[start + 3..];
    let block = &block[..block.find("```").unwrap()];
    let mut nodes = BTreeSet::new();
    for line in block.lines().skip(2) {
        let chars: Vec<char> = line.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if matches!(c, '[' | '{' | '(') && i > 0 && chars[i - 1].is_ascii_alphanumeric() {
                let word: String = chars[..i].iter().rev().take_while(|c| c.is_ascii_alphanumeric()).collect();
                nodes.insert(word.chars().rev().collect());
            }
        }
    }
    nodes
}

#[test]
fn the_workflow_diagram_shows_every_state_by_its_asl_name() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("statemachine/refresh.asl.json")).unwrap())
            .unwrap();
    let states: BTreeSet<String> = states(&doc).keys().cloned().collect();
    assert_eq!(diagram_nodes(), states);
}
