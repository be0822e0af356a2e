//! Each handler's environment, from one definition: the function's `Environment.Variables`
//! in `infra/template.yaml` (which `infra/check_template.py` holds to what each `main.rs`
//! reads). Everything here that starts a handler (the test stack, the demo, the benchmark)
//! takes the variable names from the template and only the values from here, so a variable
//! added to a handler and its template cannot be missing locally: a name without a local
//! value stops the start with that name.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_norway::Value;

use crate::repo_root;

/// The local stand-ins for what the template gives each variable.
#[derive(Debug, Clone)]
pub struct LocalValues {
    pub history_table: String,
    pub topic_arn: String,
    /// `SourceKmsKeyArns`, comma-separated.
    pub source_kms_key_arns: String,
    /// `SharedSnapshotArns`, comma-separated.
    pub shared_snapshot_arns: String,
    /// `CopyKmsKeyArn`: the refresh account's key shared encrypted snapshots are copied in under.
    pub copy_kms_key_arn: String,
    pub metrics_namespace: String,
    /// `LONGEST_CALL`: how long a stopped run's purge waits for its calls in flight.
    pub longest_call: String,
    /// `CLEANUP_STATE_MACHINE_ARN`: what record's hourly pass starts for a run whose
    /// ended event never came.
    pub cleanup_machine_arn: String,
    /// `DBLAB_ENGINES`: the engines the stack may drive (`crate::engines`).
    pub dblab_engines: String,
}

impl LocalValues {
    /// The local value of one template variable, if this file knows it.
    fn value(&self, variable: &str) -> Option<String> {
        Some(match variable {
            "HISTORY_TABLE" => self.history_table.clone(),
            "TOPIC_ARN" => self.topic_arn.clone(),
            "SOURCE_KMS_KEY_ARNS" => self.source_kms_key_arns.clone(),
            "COPY_KMS_KEY_ARN" => self.copy_kms_key_arn.clone(),
            "SHARED_SNAPSHOT_ARNS" => self.shared_snapshot_arns.clone(),
            "METRICS_NAMESPACE" => self.metrics_namespace.clone(),
            "LONGEST_CALL" => self.longest_call.clone(),
            "CLEANUP_STATE_MACHINE_ARN" => self.cleanup_machine_arn.clone(),
            "DBLAB_ENGINES" => self.dblab_engines.clone(),
            // The template's StaleAfterHours default.
            "FRESHNESS_MAX_AGE" => "36h".to_string(),
            _ => return None,
        })
    }
}

/// Every handler binary's template variables: binary -> variable names (read once: the
/// benchmark starts processes inside its timed window).
pub fn template_variables() -> &'static BTreeMap<String, Vec<String>> {
    static VARIABLES: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    VARIABLES.get_or_init(|| {
        let path = repo_root().join("infra/template.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        variables_of(&text)
    })
}

/// The `Environment.Variables` names of every function of a template, by the binary it builds.
fn variables_of(template: &str) -> BTreeMap<String, Vec<String>> {
    let doc: Value = serde_norway::from_str(template).unwrap_or_else(|e| panic!("infra/template.yaml: {e}"));
    let resources = doc.get("Resources").and_then(Value::as_mapping).cloned().unwrap_or_default();
    let mut functions = BTreeMap::new();
    for resource in resources.values() {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(binary) =
            resource.get("Metadata").and_then(|m| m.get("BuildProperties")).and_then(|b| b.get("Binary"))
        else {
            continue;
        };
        let variables = resource
            .get("Properties")
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        functions.insert(binary.as_str().unwrap_or_default().to_string(), variables);
    }
    functions
}

/// What `binary` gets from its template, with local values; panics naming a variable this
/// file has no value for.
pub fn of(binary: &str, values: &LocalValues) -> Vec<(String, String)> {
    let names = template_variables()
        .get(binary)
        .unwrap_or_else(|| panic!("infra/template.yaml has no function building {binary}"));
    with_values(binary, names, values)
}

/// The variables of every function at once (one local runtime serves them all).
pub fn of_all(values: &LocalValues) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> =
        template_variables().iter().flat_map(|(binary, names)| with_values(binary, names, values)).collect();
    all.sort();
    all.dedup();
    all
}

fn with_values(binary: &str, names: &[String], values: &LocalValues) -> Vec<(String, String)> {
    names
        .iter()
        .map(|name| {
            let value = values.value(name).unwrap_or_else(|| {
                panic!(
                    "{binary} reads {name} (infra/template.yaml), which has no local value in tests/src/environment.rs"
                )
            });
            (name.clone(), value)
        })
        .collect()
}

/// What Lambda and the local stack give every function besides its own variables: the
/// emulated AWS endpoint, test credentials, the region and the log level.
pub fn platform(aws_endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", aws_endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> LocalValues {
        LocalValues {
            history_table: "t".into(),
            topic_arn: "arn:topic".into(),
            source_kms_key_arns: String::new(),
            copy_kms_key_arn: String::new(),
            shared_snapshot_arns: String::new(),
            metrics_namespace: "ns".into(),
            longest_call: "1s".into(),
            cleanup_machine_arn: "arn:cleanup".into(),
            dblab_engines: "e https://e arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf".into(),
        }
    }

    #[test]
    fn every_handler_of_the_template_has_a_local_value_for_each_variable() {
        let all = template_variables();
        assert_eq!(all.len(), crate::stack::FUNCTIONS.len(), "{all:?}");
        for (_, binary) in crate::stack::FUNCTIONS {
            of(binary, &values());
        }
        let record: Vec<String> = of("record", &values()).into_iter().map(|(k, _)| k).collect();
        assert!(record.contains(&"FRESHNESS_MAX_AGE".to_string()), "{record:?}");
    }

    #[test]
    #[should_panic(expected = "record reads NEW_SETTING")]
    fn a_variable_without_a_local_value_stops_the_start_naming_it() {
        let template = "Resources:\n  RecordFunction:\n    Type: AWS::Serverless::Function\n    Metadata:\n      \
                        BuildProperties:\n        Binary: record\n    Properties:\n      Environment:\n        \
                        Variables:\n          HISTORY_TABLE: !Ref HistoryTable\n          NEW_SETTING: !Ref X\n";
        let found = variables_of(template);
        assert_eq!(found["record"], ["HISTORY_TABLE", "NEW_SETTING"]);
        with_values("record", &found["record"], &values());
    }
}
