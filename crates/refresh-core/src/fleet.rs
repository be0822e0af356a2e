//! The fleet: one item per target with its latest state, in the history table's partition
//! `fleet#` (sort key: the target), written by `record` at each run's start and end. "How
//! fresh is each engine, and which is in trouble?" is then one Query, however long the
//! history grows, and so is the freshness metric.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::history::{History, PK, SK, from_attribute, to_attribute};
use crate::summary::{Outcome, RunSummary};

/// Targets cannot contain `#`: this partition never meets a target's own rows.
pub const FLEET_PK: &str = "fleet#";

/// A target's latest state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetState {
    pub target: String,
    /// When a run of it was first seen: until one succeeds, its data's age counts from here.
    #[serde(with = "time::serde::rfc3339")]
    pub tracked_since: OffsetDateTime,
    /// `freshness.maxAge` of its latest run, or the stack's default.
    pub freshness_max_age_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// The data-as-of time of its latest successful refresh.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub data_as_of: Option<OffsetDateTime>,
    /// The run under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub execution_name: String,
    pub outcome: Outcome,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    /// The error's name, for a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the engine was configured to ignore restore errors: tables may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_errors: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub execution_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl TargetState {
    /// How old the engine's data is: since its data-as-of time, or, never refreshed, since
    /// the fleet first saw it.
    pub fn data_age(&self, now: OffsetDateTime) -> time::Duration {
        now - self.data_as_of.unwrap_or(self.tracked_since)
    }

    /// Older than its threshold: the alarm's verdict.
    pub fn stale(&self, now: OffsetDateTime) -> bool {
        self.data_age(now) > time::Duration::seconds(i64::try_from(self.freshness_max_age_seconds).unwrap_or(i64::MAX))
    }

    pub fn last_run_failed(&self) -> bool {
        self.last_run.as_ref().is_some_and(|r| r.outcome == Outcome::Failed)
    }
}

fn attr(value: Value) -> AttributeValue {
    to_attribute(value)
}

fn key(target: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(FLEET_PK.into())),
        (SK.to_string(), AttributeValue::S(target.into())),
    ])
}

/// What retiring a target came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    Retired,
    NotInFleet,
    /// A run of it is under way (this execution): it stays.
    Running(String),
}

impl History {
    /// A run started: it is the target's run under way, with its freshness threshold.
    pub async fn fleet_started(
        &self,
        target: &str,
        running: &Running,
        freshness_max_age: Duration,
        now: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        let running = serde_json::to_value(running).map_err(|e| RefreshError::Internal(e.to_string()))?;
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(target)))
            .update_expression("SET #running = :running, #max = :max, #since = if_not_exists(#since, :now)")
            .expression_attribute_names("#running", "running")
            .expression_attribute_names("#max", "freshnessMaxAgeSeconds")
            .expression_attribute_names("#since", "trackedSince")
            .expression_attribute_values(":running", attr(running))
            .expression_attribute_values(":max", AttributeValue::N(freshness_max_age.as_secs().to_string()))
            .expression_attribute_values(":now", AttributeValue::S(rfc3339(now)))
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("UpdateItem", e))?;
        Ok(())
    }

    /// A run ended: its outcome is the target's last run, its data-as-of time the target's
    /// if it succeeded; it is no longer under way (unless another run is, by then).
    /// Returns the target's state as written, for its freshness metrics.
    pub async fn fleet_finished(
        &self,
        summary: &RunSummary,
        freshness_max_age: Duration,
        now: OffsetDateTime,
    ) -> Result<Option<TargetState>, RefreshError> {
        // A request without a target has no place in the fleet.
        let Some(target) = summary.target.as_deref() else { return Ok(None) };
        let last = LastRun {
            execution_name: summary.execution_name.clone(),
            outcome: summary.outcome,
            started_at: summary.started_at,
            finished_at: summary.finished_at,
            error: summary.error.as_ref().map(|e| e.name.clone()),
            ignored_errors: summary.ignored_errors.clone(),
        };
        let last = serde_json::to_value(&last).map_err(|e| RefreshError::Internal(e.to_string()))?;
        let succeeded = summary.outcome == Outcome::Succeeded;
        let update = format!(
            "SET #last = :last, #since = if_not_exists(#since, :since), #max = if_not_exists(#max, :max){}",
            if succeeded { ", #asof = :asof" } else { "" }
        );
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(target)))
            .update_expression(update)
            .expression_attribute_names("#last", "lastRun")
            .expression_attribute_names("#since", "trackedSince")
            .expression_attribute_names("#max", "freshnessMaxAgeSeconds")
            .expression_attribute_values(":last", attr(last))
            .expression_attribute_values(":since", AttributeValue::S(rfc3339(summary.started_at.min(now))))
            .expression_attribute_values(":max", AttributeValue::N(freshness_max_age.as_secs().to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if succeeded {
            let as_of = summary.data_as_of.unwrap_or(summary.started_at);
            request = request
                .expression_attribute_names("#asof", "dataAsOf")
                .expression_attribute_values(":asof", AttributeValue::S(rfc3339(as_of)));
        }
        let written = request.send().await.map_err(|e| RefreshError::from_aws("UpdateItem", e))?;
        let ours_cleared = self.fleet_clear_running(target, &summary.execution_name).await?;
        let mut state = written.attributes().map(state_of).transpose()?;
        if let Some(state) = state.as_mut().filter(|_| ours_cleared) {
            state.running = None;
        }
        Ok(state)
    }

    /// The target has no run under way any more, if the one it names is this execution's;
    /// returns whether it was.
    pub async fn fleet_clear_running(&self, target: &str, execution_name: &str) -> Result<bool, RefreshError> {
        let cleared = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(target)))
            .update_expression("REMOVE #running")
            .condition_expression("#running.#name = :me")
            .expression_attribute_names("#running", "running")
            .expression_attribute_names("#name", "executionName")
            .expression_attribute_values(":me", AttributeValue::S(execution_name.into()))
            .send()
            .await;
        match cleared {
            Ok(_) => Ok(true),
            // Another run is under way by now, or none was recorded as running.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(RefreshError::from_aws("UpdateItem", e)),
        }
    }

    /// Takes a target out of the fleet (and so out of the freshness metrics and the stale
    /// alarm), keeping its history rows. Refused while a run of it is under way: that run
    /// would put it back.
    pub async fn fleet_retire(&self, target: &str) -> Result<Retired, RefreshError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key(target)))
            .condition_expression("attribute_exists(#sk) AND attribute_not_exists(#running)")
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#running", "running")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Retired::Retired),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                let item = self
                    .client()
                    .get_item()
                    .table_name(self.table())
                    .set_key(Some(key(target)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| RefreshError::from_aws("GetItem", e))?;
                Ok(match item.item() {
                    None => Retired::NotInFleet,
                    Some(item) => Retired::Running(
                        item.get("running")
                            .and_then(|r| r.as_m().ok())
                            .and_then(|r| r.get("executionName"))
                            .and_then(|n| n.as_s().ok())
                            .cloned()
                            .unwrap_or_default(),
                    ),
                })
            }
            Err(e) => Err(RefreshError::from_aws("DeleteItem", e)),
        }
    }

    /// Every target's latest state, by target name.
    pub async fn fleet(&self) -> Result<Vec<TargetState>, RefreshError> {
        let mut out = Vec::new();
        let mut pages = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("#pk = :fleet")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":fleet", AttributeValue::S(FLEET_PK.into()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("Query", e))?;
            for item in page.items() {
                out.push(state_of(item)?);
            }
        }
        Ok(out)
    }
}

/// A fleet item as a target's state.
fn state_of(item: &HashMap<String, AttributeValue>) -> Result<TargetState, RefreshError> {
    let mut value: serde_json::Map<String, Value> = item.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect();
    // The target is the sort key; `target` (the partition key) is `fleet#`.
    let target = value.remove(SK).unwrap_or(Value::Null);
    value.insert("target".into(), target);
    serde_json::from_value(Value::Object(value))
        .map_err(|e| RefreshError::Internal(format!("unreadable fleet item: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn state() -> TargetState {
        TargetState {
            target: "staging".into(),
            tracked_since: datetime!(2026-11-01 00:00 UTC),
            freshness_max_age_seconds: 36 * 3_600,
            last_run: None,
            data_as_of: Some(datetime!(2026-12-01 03:00 UTC)),
            running: None,
        }
    }

    #[test]
    fn age_counts_from_the_data_or_from_when_the_target_was_first_seen() {
        let s = state();
        assert_eq!(s.data_age(datetime!(2026-12-01 05:00 UTC)), time::Duration::hours(2));
        assert!(!s.stale(datetime!(2026-12-02 15:00 UTC)), "36 h exactly is not yet stale");
        assert!(s.stale(datetime!(2026-12-02 15:00:01 UTC)));
        let never = TargetState { data_as_of: None, ..state() };
        assert_eq!(never.data_age(datetime!(2026-11-02 00:00 UTC)), time::Duration::days(1));
    }
}
