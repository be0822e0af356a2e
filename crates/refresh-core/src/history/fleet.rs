//! The fleet items: each target's latest state, its run in progress, its retirement.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use time::OffsetDateTime;

use super::{FLEET_PK, History, PK, SK, from_attribute, to_attribute};
use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::fleet::{LastRun, Retired, Running, TargetState};
use crate::row::{Outcome, RunSummary};

fn key(target: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(FLEET_PK.into())),
        (SK.to_string(), AttributeValue::S(target.into())),
    ])
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
            .expression_attribute_values(":running", to_attribute(running))
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
        let started = last.get("startedAt").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let as_of = data_as_of(summary);
        let update = format!(
            "SET #last = :last, #since = if_not_exists(#since, :since), #max = if_not_exists(#max, :max){}",
            if as_of.is_some() { ", #asof = :asof" } else { "" }
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
            .expression_attribute_values(":last", to_attribute(last))
            .expression_attribute_values(":since", AttributeValue::S(rfc3339(summary.started_at.min(now))))
            .expression_attribute_values(":max", AttributeValue::N(freshness_max_age.as_secs().to_string()))
            // A run's end never replaces a later run's (a redriven execution's record).
            .condition_expression("attribute_not_exists(#last) OR #last.#started <= :started")
            .expression_attribute_names("#started", "startedAt")
            .expression_attribute_values(":started", AttributeValue::S(started))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if let Some(as_of) = as_of {
            request = request
                .expression_attribute_names("#asof", "dataAsOf")
                .expression_attribute_values(":asof", AttributeValue::S(rfc3339(as_of)));
        }
        let written = match request.send().await {
            Ok(written) => written,
            Err(e) if e.as_service_error().is_some_and(super::is_conditional_failure) => {
                self.fleet_clear_running(target, &summary.execution_name).await?;
                return Ok(None);
            }
            Err(e) => return Err(RefreshError::from_aws("UpdateItem", e)),
        };
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
                Ok(match self.item(FLEET_PK, target).await? {
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

/// The time a finished run leaves its target's data as of: a successful run's data time
/// (its start when it has none); nothing for any other run, which leaves the data as it was.
fn data_as_of(summary: &RunSummary) -> Option<OffsetDateTime> {
    (summary.outcome == Outcome::Succeeded).then(|| summary.data_as_of.unwrap_or(summary.started_at))
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
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-12-02 03:00 UTC);

    #[test]
    fn only_a_successful_run_sets_the_targets_data_time() {
        let mut s = crate::summary::running(&crate::run::RunState { request: json!({}), ..Default::default() }, T0);
        s.data_as_of = Some(datetime!(2026-12-02 01:10 UTC));
        for outcome in [Outcome::Running, Outcome::Failed, Outcome::Skipped] {
            s.outcome = outcome;
            assert_eq!(data_as_of(&s), None, "{outcome:?}");
        }
        s.outcome = Outcome::Succeeded;
        assert_eq!(data_as_of(&s), Some(datetime!(2026-12-02 01:10 UTC)));
        s.data_as_of = None;
        assert_eq!(data_as_of(&s), Some(T0), "no data time: its start");
    }

    #[test]
    fn a_targets_fleet_item_is_keyed_by_the_fleet_and_reads_back_as_its_state() {
        let key = key("staging");
        assert_eq!(key.get(PK), Some(&AttributeValue::S(FLEET_PK.into())));
        assert_eq!(key.get(SK), Some(&AttributeValue::S("staging".into())));
        let mut item = key;
        item.insert("trackedSince".into(), AttributeValue::S("2026-11-01T00:00:00Z".into()));
        item.insert("freshnessMaxAgeSeconds".into(), AttributeValue::N("129600".into()));
        item.insert("dataAsOf".into(), AttributeValue::S("2026-12-01T03:00:00Z".into()));
        assert_eq!(state_of(&item).unwrap(), crate::fleet::tests::state());
        item.remove("trackedSince");
        assert!(state_of(&item).is_err(), "an item without its tracking start is unreadable");
    }
}
