//! The DynamoDB history: one row per run (never overwritten by another run) and one lock
//! item per target.
//!
//! Table: partition key `target` (S), sort key `sk` (S).
//! - run rows: `sk = run#<started at, RFC 3339 UTC, millis>#<execution name>`: sorted by time;
//! - the lock: `sk = lock`, owned by one execution, with a `ttl` (epoch seconds) so that
//!   DynamoDB removes it even if nothing else does.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Number, Value};
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::{info, warn};

use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::executions::{ExecutionState, Executions};
use crate::run::{EngineLock, Execution};
use crate::summary::{Outcome, RunSummary};

pub const PK: &str = "target";
pub const SK: &str = "sk";
pub const LOCK_SK: &str = "lock";
pub const RUN_PREFIX: &str = "run#";
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Where the row of a request without a valid target goes: no target can be named so
/// (targets cannot contain `#`), so a target called "unknown" keeps its own history.
pub const NO_TARGET: &str = "#no-target";
/// The attribute a run's row holds once its notification was sent.
pub const NOTIFIED_AT: &str = "notifiedAt";
const NOTIFICATION_ID: &str = "notificationId";

/// What a row write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowWrite {
    Written,
    /// The row already held the run's outcome and was left as it was.
    AlreadyEnded,
}

/// The partition a run's row lives in.
pub fn partition_of(summary: &RunSummary) -> &str {
    summary.target.as_deref().unwrap_or(NO_TARGET)
}

pub struct History {
    client: Client,
    table: String,
}

/// The sort key of a run row. Fixed-width time first, so rows sort by start time.
pub fn run_key(started_at: OffsetDateTime, execution_name: &str) -> String {
    let utc = started_at.to_offset(time::UtcOffset::UTC);
    let stamp = utc
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_else(|_| utc.unix_timestamp().to_string());
    format!("{RUN_PREFIX}{stamp}#{execution_name}")
}

/// The partition key of an engine's lock by its API endpoint, normalised so that two
/// spellings of one address (case, default port, trailing slash) take the same lock: the
/// fallback for an engine that gives no `instanceID`. Targets cannot contain `#`, so this
/// never meets a target's rows.
pub fn engine_lock_key(api_endpoint: &str) -> Option<String> {
    let url = reqwest::Url::parse(api_endpoint.trim()).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let path = url.path().trim_end_matches('/');
    Some(format!("engine#{}://{host}:{port}{path}", url.scheme()))
}

/// The lock of the engine the preflight checked: keyed by its own `instanceID`, the same
/// on every address it answers on (a host name, an IP, an alias); by its normalised
/// address only when it gives none.
pub fn engine_lock(instance_id: Option<&str>, api_endpoint: &str) -> Option<EngineLock> {
    match instance_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => Some(EngineLock { key: format!("engine#id#{id}"), instance_id: Some(id.to_string()) }),
        None => engine_lock_key(api_endpoint).map(|key| EngineLock { key, instance_id: None }),
    }
}

fn is_conditional_failure<E: ProvideErrorMetadata>(err: &E) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

impl History {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Takes the target's lock for this execution. A retry by the owner succeeds; an
    /// expired lock, or one whose execution has ended, is taken over.
    pub async fn acquire_lock(
        &self,
        target: &str,
        execution: &Execution,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        executions: &Executions,
    ) -> Result<(), RefreshError> {
        let condition = "attribute_not_exists(#sk) OR #owner = :me OR #ttl < :now";
        if self.put_lock(target, execution, expires_at, now, condition, None).await? {
            return Ok(());
        }
        let holder = self.lock_holder(target).await?;
        let Some((owner, owner_arn)) = holder else {
            // Released between the two calls: try once more.
            return if self.put_lock(target, execution, expires_at, now, condition, None).await? {
                Ok(())
            } else {
                Err(RefreshError::TargetLocked { target: target.into(), owner: "unknown".into() })
            };
        };
        let ended = match owner_arn.as_deref() {
            Some(arn) => match executions.state(arn).await {
                Ok(ExecutionState::Running) => false,
                Ok(state) => {
                    warn!(target, %owner, ?state, "lock held by an execution that is no longer running; taking it over");
                    true
                }
                Err(e) => {
                    warn!(target, %owner, error = %e, "cannot tell whether the lock holder still runs; leaving the lock");
                    false
                }
            },
            None => false,
        };
        if ended && self.put_lock(target, execution, expires_at, now, "#owner = :old", Some(&owner)).await? {
            return Ok(());
        }
        Err(RefreshError::TargetLocked { target: target.into(), owner })
    }

    /// Returns false when the condition failed.
    async fn put_lock(
        &self,
        target: &str,
        execution: &Execution,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        condition: &str,
        old_owner: Option<&str>,
    ) -> Result<bool, RefreshError> {
        let mut item = HashMap::from([
            (PK.to_string(), AttributeValue::S(target.into())),
            (SK.to_string(), AttributeValue::S(LOCK_SK.into())),
            ("owner".to_string(), AttributeValue::S(execution.name.clone())),
            ("acquiredAt".to_string(), AttributeValue::S(rfc3339(now))),
            (TTL_ATTRIBUTE.to_string(), AttributeValue::N(expires_at.unix_timestamp().to_string())),
        ]);
        if let Some(arn) = &execution.arn {
            item.insert("ownerArn".into(), AttributeValue::S(arn.clone()));
        }
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#owner", "owner");
        if old_owner.is_none() {
            req = req
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":me", AttributeValue::S(execution.name.clone()))
                .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()));
        }
        if let Some(old) = old_owner {
            req = req.expression_attribute_values(":old", AttributeValue::S(old.into()));
        }
        match req.send().await {
            Ok(_) => {
                info!(target, "lock taken");
                Ok(true)
            }
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => Ok(false),
            Err(e) => Err(RefreshError::from_aws("PutItem", e)),
        }
    }

    /// The execution holding a lock: its name, and its ARN when it wrote one.
    pub async fn lock_holder(&self, target: &str) -> Result<Option<(String, Option<String>)>, RefreshError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(target.into()))
            .key(SK, AttributeValue::S(LOCK_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("GetItem", e))?;
        Ok(out.item().map(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            (text("owner").unwrap_or_else(|| "unknown".into()), text("ownerArn"))
        }))
    }

    /// Takes the engine's lock as well as the target's: two targets that name one engine
    /// would otherwise change its config over each other and follow each other's refresh.
    /// The engine lock follows the same take-over rules; a refusal names the holder.
    pub async fn acquire_engine_lock(
        &self,
        lock: &EngineLock,
        execution: &Execution,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        executions: &Executions,
    ) -> Result<(), RefreshError> {
        match self.acquire_lock(&lock.key, execution, expires_at, now, executions).await {
            Err(RefreshError::TargetLocked { owner, .. }) => {
                Err(RefreshError::EngineLocked { engine: lock.describe(), owner })
            }
            other => other,
        }
    }

    /// Releases the lock if this execution holds it; returns whether it did.
    pub async fn release_lock(&self, target: &str, execution_name: &str) -> Result<bool, RefreshError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(target.into()))
            .key(SK, AttributeValue::S(LOCK_SK.into()))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(execution_name.into()))
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(target, "lock released");
                Ok(true)
            }
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => Ok(false),
            Err(e) => Err(RefreshError::from_aws("DeleteItem", e)),
        }
    }

    /// Writes a run row. A row of another execution under the same key is never replaced,
    /// and neither is a row that already holds an outcome (the run ended and was recorded:
    /// a late write of a call that was in flight, or a retry whose first answer was lost,
    /// must not bring it back to `running` or record it twice).
    pub async fn put_run(&self, run_key: &str, summary: &RunSummary) -> Result<RowWrite, RefreshError> {
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
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
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
                if owner.as_deref() == Some(summary.execution_name.as_str()) {
                    info!(run_key, "the run's row already holds its outcome: left as it is");
                    Ok(RowWrite::AlreadyEnded)
                } else {
                    Err(RefreshError::Internal(format!("history row {run_key} belongs to another execution")))
                }
            }
            Err(e) => Err(RefreshError::from_aws("PutItem", e)),
        }
    }

    /// One text attribute of the row at this key, read consistently.
    async fn row_text(&self, partition: &str, sort_key: &str, attribute: &str) -> Result<Option<String>, RefreshError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(partition.into()))
            .key(SK, AttributeValue::S(sort_key.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("GetItem", e))?;
        Ok(out.item().and_then(|i| i.get(attribute)).and_then(|v| v.as_s().ok()).cloned())
    }

    /// The outcome the row at this key holds, if there is one.
    pub async fn outcome_at(&self, target: &str, run_key: &str) -> Result<Option<String>, RefreshError> {
        self.row_text(target, run_key, "outcome").await
    }

    /// The id of the run's notification, if it was sent already (a retried notify after a
    /// lost answer).
    pub async fn notified(&self, partition: &str, run_key: &str) -> Result<Option<String>, RefreshError> {
        if self.row_text(partition, run_key, NOTIFIED_AT).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.row_text(partition, run_key, NOTIFICATION_ID).await?.unwrap_or_default()))
    }

    /// Marks the run's row as notified, if it exists (a run whose row could not be written
    /// has nothing to mark).
    pub async fn mark_notified(
        &self,
        partition: &str,
        run_key: &str,
        message_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(partition.into()))
            .key(SK, AttributeValue::S(run_key.into()))
            .update_expression("SET #at = :now, #id = :id")
            .condition_expression("attribute_exists(#sk)")
            .expression_attribute_names("#at", NOTIFIED_AT)
            .expression_attribute_names("#id", NOTIFICATION_ID)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":now", AttributeValue::S(rfc3339(now)))
            .expression_attribute_values(":id", AttributeValue::S(message_id.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => Ok(()),
            Err(e) => Err(RefreshError::from_aws("UpdateItem", e)),
        }
    }

    /// The row of a run, found by its execution name near its start time (a run without
    /// its row key: a stopped run finished by the clean-up machine, or one refused at its start).
    async fn find_run(
        &self,
        target: &str,
        execution_name: &str,
        started_at: OffsetDateTime,
    ) -> Result<Option<HashMap<String, AttributeValue>>, RefreshError> {
        let window = time::Duration::minutes(1);
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
            .expression_attribute_values(":from", AttributeValue::S(run_key(started_at - window, "")))
            .expression_attribute_values(":to", AttributeValue::S(run_key(started_at + window, "~")))
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
        out.items()
            .iter()
            .map(|item| {
                let mut fields: Map<String, Value> = item.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect();
                if fields.get(PK).and_then(Value::as_str) == Some(NO_TARGET) {
                    fields.remove(PK);
                }
                let value = Value::Object(fields);
                serde_json::from_value(value)
                    .map_err(|e| RefreshError::Internal(format!("unreadable history row: {e}")))
            })
            .collect()
    }
}

pub(crate) fn to_attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(map.into_iter().map(|(k, v)| (k, to_attribute(v))).collect()),
    }
}

pub(crate) fn from_attribute(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| n.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number))
            .unwrap_or(Value::Null),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(items) => Value::Array(items.iter().map(from_attribute).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect::<Map<_, _>>())
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn a_row_without_a_valid_target_lives_apart() {
        let mut summary = crate::summary::running(
            &crate::run::RunState { request: json!({"target": "staging"}), ..Default::default() },
            datetime!(2026-11-22 05:00 UTC),
        );
        assert_eq!(partition_of(&summary), "staging");
        summary.target = None;
        assert_eq!(partition_of(&summary), NO_TARGET);
    }

    #[test]
    fn one_engine_has_one_lock_key_however_it_is_spelt() {
        let key = engine_lock_key("https://DBLab.Internal:443/").unwrap();
        assert_eq!(key, "engine#https://dblab.internal:443");
        assert_eq!(engine_lock_key("https://dblab.internal").unwrap(), key);
        assert_ne!(engine_lock_key("https://dblab.internal:2345").unwrap(), key);
        assert_eq!(engine_lock_key("http://10.0.0.5:2345/api/").unwrap(), "engine#http://10.0.0.5:2345/api");
        assert_eq!(engine_lock_key("not a url"), None);
    }

    #[test]
    fn an_engine_is_locked_by_its_own_identity_whatever_address_names_it() {
        let by_name = engine_lock(Some("abc123"), "https://dblab.internal:2345").unwrap();
        let by_ip = engine_lock(Some("abc123"), "https://10.0.0.5:2345").unwrap();
        assert_eq!(by_name, by_ip);
        assert_eq!(by_name.key, "engine#id#abc123");
        assert_eq!(by_name.describe(), "engine instance abc123");
        // Without an identity, the address: and the row says what that does not cover.
        let fallback = engine_lock(Some(" "), "https://DBLab.internal:2345/").unwrap();
        assert_eq!(
            (fallback.key.as_str(), fallback.instance_id.as_deref()),
            ("engine#https://dblab.internal:2345", None)
        );
        assert!(fallback.describe().contains("gives no instanceID"), "{}", fallback.describe());
        assert_eq!(engine_lock(None, "not a url"), None);
    }

    #[test]
    fn run_keys_sort_by_time() {
        let a = run_key(datetime!(2026-11-22 04:56:52.1 UTC), "zz");
        let b = run_key(datetime!(2026-11-22 04:56:52.12 UTC), "aa");
        let c = run_key(datetime!(2026-11-22 06:56:52 +2), "aa");
        assert_eq!(a, "run#2026-11-22T04:56:52.100Z#zz");
        assert!(a < b);
        assert_eq!(c, "run#2026-11-22T04:56:52.000Z#aa");
    }

    #[test]
    fn attributes_round_trip() {
        let v = json!({"s": "x", "n": 3, "f": 1.5, "b": true, "l": [1, "a"], "m": {"k": [false]}});
        let Value::Object(map) = v.clone() else { unreachable!() };
        let back: Map<String, Value> = map.into_iter().map(|(k, v)| (k, from_attribute(&to_attribute(v)))).collect();
        assert_eq!(Value::Object(back), v);
    }
}
