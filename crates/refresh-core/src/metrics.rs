//! The run's metrics as CloudWatch embedded-metric-format lines: one JSON line on standard
//! output, which Lambda sends to CloudWatch Logs as its own event, where it becomes
//! metrics. One alarm on `MAX(Stale)` watches every target.

use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::fleet::TargetState;
use crate::row::RunSummary;

/// Where metric lines go: standard output in Lambda, or a list a test reads.
#[derive(Debug)]
pub struct Sink {
    collected: Option<Mutex<Vec<Value>>>,
}

impl Sink {
    pub fn stdout() -> Self {
        Self { collected: None }
    }

    pub fn collecting() -> Self {
        Self { collected: Some(Mutex::default()) }
    }

    pub fn emit(&self, line: &Value) {
        match &self.collected {
            None => println!("{line}"),
            Some(lines) => lines.lock().unwrap_or_else(PoisonError::into_inner).push(line.clone()),
        }
    }

    /// The lines collected so far (none for standard output).
    pub fn lines(&self) -> Vec<Value> {
        self.collected.as_ref().map(|l| l.lock().unwrap_or_else(PoisonError::into_inner).clone()).unwrap_or_default()
    }
}

/// The CloudWatch embedded-metric-format line for one target's freshness: `DataAgeSeconds`,
/// `Stale` (1 past its threshold) and `LastRunFailed`, by `Target`. Lambda's log
/// ingestion turns it into metrics; one alarm on `MAX(Stale)` watches every target.
pub fn freshness(namespace: &str, state: &TargetState, now: OffsetDateTime) -> Value {
    let metrics = json!([
        {"Name": "DataAgeSeconds", "Unit": "Seconds"},
        {"Name": "Stale", "Unit": "Count"},
        {"Name": "LastRunFailed", "Unit": "Count"}
    ]);
    let values = json!({
        "DataAgeSeconds": state.data_age(now).whole_seconds().max(0),
        "Stale": u8::from(state.stale(now)),
        "LastRunFailed": u8::from(state.last_run_failed()),
        "FreshnessMaxAgeSeconds": state.freshness_max_age_seconds,
    });
    line(namespace, &state.target, metrics, values, now)
}

/// The line of one hourly freshness pass, by no dimension: `FreshnessPasses` 1. Its
/// absence for hours is what the freshness-silent alarm hears (the stale alarm sees only
/// points that are emitted).
pub fn freshness_pass(namespace: &str, now: OffsetDateTime) -> Value {
    json!({
        "_aws": {
            "Timestamp": i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default(),
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [[]], "Metrics": [{"Name": "FreshnessPasses", "Unit": "Count"}]}]
        },
        "FreshnessPasses": 1,
    })
}

/// The embedded-metric-format line for a finished run's clone-hours (what RDS bills).
pub fn clone_hours(namespace: &str, summary: &RunSummary, now: OffsetDateTime) -> Option<Value> {
    let hours = summary.cost.as_ref()?.clone_hours;
    let metrics = json!([{"Name": "CloneHours", "Unit": "None"}]);
    Some(line(namespace, summary.target.as_deref()?, metrics, json!({"CloneHours": hours}), now))
}

/// One target's line: the metric declarations, then the target and the values.
fn line(namespace: &str, target: &str, metrics: Value, values: Value, now: OffsetDateTime) -> Value {
    let mut line = json!({
        "_aws": {
            "Timestamp": i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default(),
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [["Target"]], "Metrics": metrics}]
        },
        "Target": target,
    });
    if let (Value::Object(line), Value::Object(values)) = (&mut line, values) {
        line.extend(values);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::LastRun;
    use crate::fleet::tests::state;
    use crate::row::Outcome;
    use time::macros::datetime;

    #[test]
    fn a_freshness_pass_is_one_dimensionless_count() {
        let line = freshness_pass("dblab-refresh/prod", datetime!(2026-12-02 16:00 UTC));
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "dblab-refresh/prod");
        assert_eq!(declared["Dimensions"], json!([[]]));
        assert_eq!(declared["Metrics"], json!([{"Name": "FreshnessPasses", "Unit": "Count"}]));
        assert_eq!(line["FreshnessPasses"], 1);
        assert_eq!(line["_aws"]["Timestamp"], 1_796_227_200_000_i64);
    }

    #[test]
    fn the_freshness_line_is_embedded_metric_format() {
        let mut s = state();
        s.last_run = Some(LastRun {
            execution_name: "run-2".into(),
            outcome: Outcome::Failed,
            started_at: datetime!(2026-12-02 03:00 UTC),
            finished_at: Some(datetime!(2026-12-02 03:40 UTC)),
            error: Some("RefreshFailed".into()),
            ignored_errors: None,
        });
        let line = freshness("dblab-refresh/prod", &s, datetime!(2026-12-02 16:00 UTC));
        assert_eq!(
            line,
            json!({
                "_aws": {
                    "Timestamp": 1_796_227_200_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "dblab-refresh/prod",
                        "Dimensions": [["Target"]],
                        "Metrics": [
                            {"Name": "DataAgeSeconds", "Unit": "Seconds"},
                            {"Name": "Stale", "Unit": "Count"},
                            {"Name": "LastRunFailed", "Unit": "Count"}
                        ]
                    }]
                },
                "Target": "staging",
                "DataAgeSeconds": 133_200,
                "Stale": 1,
                "LastRunFailed": 1,
                "FreshnessMaxAgeSeconds": 129_600
            })
        );
    }

    #[test]
    fn a_finished_runs_clone_hours_are_one_line_by_its_target() {
        let mut summary = crate::summary::running(
            &crate::run::RunState { request: json!({"target": "staging"}), ..Default::default() },
            datetime!(2026-12-02 03:00 UTC),
        );
        let now = datetime!(2026-12-02 16:00 UTC);
        assert_eq!(clone_hours("ns", &summary, now), None, "not priced: no line");
        summary.clone_identifier = Some("dblab-refresh-staging-20261202-030000".into());
        summary.clone_billed_seconds = Some(5_400);
        summary.estimate_cost("us-east-1", None);
        let line = clone_hours("ns", &summary, now).unwrap();
        assert_eq!(line["CloneHours"], 1.5);
        assert_eq!(line["Target"], "staging");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"], json!([{"Name": "CloneHours", "Unit": "None"}]));
        summary.target = None;
        assert_eq!(clone_hours("ns", &summary, now), None, "no target: no dimension to put it under");
    }

    #[test]
    fn a_collecting_sink_keeps_what_standard_output_would_get() {
        let sink = Sink::collecting();
        sink.emit(&json!({"CloneHours": 1}));
        assert_eq!(sink.lines(), vec![json!({"CloneHours": 1})]);
        assert!(Sink::stdout().lines().is_empty());
    }
}
