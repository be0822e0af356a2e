//! Run rows: written once with an outcome, found by their execution, read newest first.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tracing::info;

use super::{
    History, NO_TARGET, PK, RUN_PREFIX, RowWrite, SK, from_attribute, is_conditional_failure, partition_of, run_key,
    text, to_attribute,
};
use crate::error::RefreshError;
use crate::row::{Outcome, RunSummary};

impl History {
    /// Writes a run row. A row of another execution under the same key is never replaced,
    /// and neither is a row that already holds an outcome (the run ended and was recorded:
    /// a late write of a call that was in flight, or a retry whose first answer was lost,
    /// must not bring it back to `running` or record it twice).
    pub async fn put_run(&self, run_key: &str, summary: &RunSummary) -> Result<RowWrite, RefreshError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(run_item(run_key, summary)?))
            .condition_expression("attribute_not_exists(#sk) OR (#exec = :me AND #outcome = :running)")
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#exec", "executionName")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_values(":me", AttributeValue::S(summary.execution_name.clone()))
            .expression_attribute_values(":running", AttributeValue::S(Outcome::Running.as_str().into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(RowWrite::Written),
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => {
                let owner = self.row_text(partition_of(summary), run_key, "executionName").await?;
                refused_write(run_key, owner.as_deref(), &summary.execution_name)
            }
            Err(e) => Err(RefreshError::from_aws("PutItem", e)),
        }
    }

    /// One text attribute of the row at this key, read consistently.
    async fn row_text(&self, partition: &str, sort_key: &str, attribute: &str) -> Result<Option<String>, RefreshError> {
        Ok(self.item(partition, sort_key).await?.and_then(|item| text(&item, attribute)))
    }

    /// The outcome the row at this key holds, if there is one.
    pub async fn outcome_at(&self, target: &str, run_key: &str) -> Result<Option<String>, RefreshError> {
        self.row_text(target, run_key, "outcome").await
    }

    /// The row of a run, found by its execution name near its start time (a run without
    /// its row key: a stopped run finished by the clean-up machine, or one refused at its start).
    async fn find_run(
        &self,
        target: &str,
        execution_name: &str,
        started_at: OffsetDateTime,
    ) -> Result<Option<HashMap<String, AttributeValue>>, RefreshError> {
        let (from, to) = keys_near(started_at);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :t AND #sk BETWEEN :from AND :to")
            .filter_expression("#exec = :name")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#exec", "executionName")
            .expression_attribute_values(":t", AttributeValue::S(target.into()))
            .expression_attribute_values(":from", AttributeValue::S(from))
            .expression_attribute_values(":to", AttributeValue::S(to))
            .expression_attribute_values(":name", AttributeValue::S(execution_name.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("Query", e))?;
        Ok(out.items().first().cloned())
    }

    /// One text attribute of a run's row, if it has a row.
    async fn run_text(
        &self,
        target: &str,
        execution_name: &str,
        started_at: OffsetDateTime,
        attribute: &str,
    ) -> Result<Option<String>, RefreshError> {
        let item = self.find_run(target, execution_name, started_at).await?;
        Ok(item.and_then(|i| i.get(attribute).and_then(|v| v.as_s().ok()).cloned()))
    }

    /// The key of a run's row, if it wrote one.
    pub async fn find_run_key(
        &self,
        target: &str,
        execution_name: &str,
        started_at: OffsetDateTime,
    ) -> Result<Option<String>, RefreshError> {
        self.run_text(target, execution_name, started_at, SK).await
    }

    /// The outcome a run's row holds (`running`, `succeeded`, `failed`, `skipped`), if it has a row.
    pub async fn run_outcome(
        &self,
        target: &str,
        execution_name: &str,
        started_at: OffsetDateTime,
    ) -> Result<Option<String>, RefreshError> {
        self.run_text(target, execution_name, started_at, "outcome").await
    }

    /// The newest runs of a target, newest first.
    pub async fn recent(&self, target: &str, limit: i32) -> Result<Vec<RunSummary>, RefreshError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :t AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":t", AttributeValue::S(target.into()))
            .expression_attribute_values(":prefix", AttributeValue::S(RUN_PREFIX.into()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("Query", e))?;
        out.items().iter().map(summary_of).collect()
    }

    /// A run's row as its summary, found by its execution near its start time, if it has
    /// one: what the clean-up machine notifies from when the run recorded itself but its
    /// notification failed.
    pub async fn run_summary(
        &self,
        target: &str,
        execution_name: &str,
        started_at: OffsetDateTime,
    ) -> Result<Option<RunSummary>, RefreshError> {
        self.find_run(target, execution_name, started_at).await?.as_ref().map(summary_of).transpose()
    }
}

/// A run row's item: the summary's fields but the empty ones, its keys, and its duration.
fn run_item(run_key: &str, summary: &RunSummary) -> Result<HashMap<String, AttributeValue>, RefreshError> {
    let Value::Object(fields) = serde_json::to_value(summary).map_err(|e| RefreshError::Internal(e.to_string()))?
    else {
        return Err(RefreshError::Internal("a run summary is not a JSON object".into()));
    };
    let mut item: HashMap<String, AttributeValue> =
        fields.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, to_attribute(v))).collect();
    item.insert(PK.into(), AttributeValue::S(partition_of(summary).to_string()));
    item.insert(SK.into(), AttributeValue::S(run_key.into()));
    if let Some(seconds) = summary.duration_seconds() {
        item.insert("durationSeconds".into(), AttributeValue::N(seconds.to_string()));
    }
    Ok(item)
}

/// What a row write refused by the row already at its key comes to, by that row's
/// execution: the run's own row holds its outcome and is left as it is; another
/// execution's row is never replaced.
fn refused_write(run_key: &str, owner: Option<&str>, execution_name: &str) -> Result<RowWrite, RefreshError> {
    if owner == Some(execution_name) {
        info!(run_key, "the run's row already holds its outcome: left as it is");
        Ok(RowWrite::AlreadyEnded)
    } else {
        Err(RefreshError::Internal(format!("history row {run_key} belongs to another execution")))
    }
}

/// The run keys between which a run's row is looked for by its start: a minute either side
/// of it, any execution name.
fn keys_near(started_at: OffsetDateTime) -> (String, String) {
    let window = time::Duration::minutes(1);
    (run_key(started_at - window, ""), run_key(started_at + window, "~"))
}

fn summary_of(item: &HashMap<String, AttributeValue>) -> Result<RunSummary, RefreshError> {
    let mut fields: Map<String, Value> = item.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect();
    if fields.get(PK).and_then(Value::as_str) == Some(NO_TARGET) {
        fields.remove(PK);
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| RefreshError::Internal(format!("unreadable history row: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-22 05:00 UTC);

    fn summary(target: Option<&str>) -> RunSummary {
        let mut summary =
            crate::summary::running(&crate::run::RunState { request: json!({}), ..Default::default() }, T0);
        summary.target = target.map(str::to_string);
        summary.execution_name = "run-1".into();
        summary
    }

    #[test]
    fn a_run_row_holds_the_summary_but_its_empty_fields_with_its_keys_and_duration() {
        let mut s = summary(Some("staging"));
        let key = run_key(T0, "run-1");
        let running = run_item(&key, &s).unwrap();
        assert_eq!(running.get(PK), Some(&AttributeValue::S("staging".into())));
        assert_eq!(running.get(SK), Some(&AttributeValue::S(key.clone())));
        assert_eq!(running.get("outcome"), Some(&AttributeValue::S("running".into())));
        assert!(!running.contains_key("finishedAt"), "no null attribute: {running:?}");
        assert!(!running.contains_key("durationSeconds"), "a run under way has no duration yet");
        s.finished_at = Some(T0 + time::Duration::minutes(81));
        let ended = run_item(&key, &s).unwrap();
        assert_eq!(ended.get("durationSeconds"), Some(&AttributeValue::N("4860".into())));
        // Read back, it is the same summary.
        assert_eq!(summary_of(&ended).unwrap(), s);
    }

    #[test]
    fn a_row_without_a_target_is_kept_apart_and_reads_back_without_one() {
        let s = summary(None);
        let item = run_item(&run_key(T0, "run-1"), &s).unwrap();
        assert_eq!(item.get(PK), Some(&AttributeValue::S(NO_TARGET.into())));
        assert_eq!(summary_of(&item).unwrap().target, None);
    }

    #[test]
    fn a_refused_row_write_is_the_runs_own_ended_row_or_an_error() {
        assert_eq!(refused_write("run#k", Some("run-1"), "run-1").unwrap(), RowWrite::AlreadyEnded);
        for owner in [Some("run-2"), None] {
            let err = refused_write("run#k", owner, "run-1").unwrap_err();
            assert!(err.to_string().contains("belongs to another execution"), "{err}");
        }
    }

    #[test]
    fn a_runs_row_is_looked_for_within_a_minute_of_its_start() {
        let (from, to) = keys_near(T0);
        assert_eq!((from.as_str(), to.as_str()), ("run#2026-11-22T04:59:00.000Z#", "run#2026-11-22T05:01:00.000Z#~"));
        for at in [T0 - time::Duration::minutes(1), T0, T0 + time::Duration::seconds(59)] {
            let key = run_key(at, "run-1");
            assert!(from <= key && key <= to, "{key}");
        }
        assert!(run_key(T0 + time::Duration::minutes(2), "run-1") > to);
    }
}
