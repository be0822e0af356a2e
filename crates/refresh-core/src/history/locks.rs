//! The target's and the engine's locks: conditional writes, one owner each, taken over
//! only from an execution that has ended or a lock that expired.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::{History, LOCK_SK, PK, SK, TTL_ATTRIBUTE, is_conditional_failure, text};
use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::executions::{ExecutionState, Executions, Started};
use crate::request::{RefreshRequest, longest_run};
use crate::run::{EngineLock, Execution};

/// Time beyond the longest run before its locks expire by themselves (to record, notify).
pub(crate) const LOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(3_600);

/// When a run's locks expire by themselves, should nothing release them: once it has
/// lasted as long as it can, and a margin.
pub fn lock_expiry(request: &RefreshRequest, now: OffsetDateTime) -> OffsetDateTime {
    now + longest_run(&request.clone, &request.dblab).0 + LOCK_MARGIN
}

/// A start this close to a running execution of the same request is a duplicate of it
/// (EventBridge Scheduler retries a start whose answer it lost; a person clicks twice).
pub(crate) const DUPLICATE_WINDOW: time::Duration = time::Duration::minutes(15);

/// Whether a start is a duplicate of `holder`, the execution `owner` that holds the
/// target's lock: another execution, still running, started with the same request within
/// `DUPLICATE_WINDOW` of this one.
pub(crate) fn is_duplicate(owner: &str, holder: &Started, execution: &Execution, document: &serde_json::Value) -> bool {
    let same_request = holder
        .input
        .as_deref()
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
        .is_some_and(|input| &input == document);
    let close = execution.started_at.is_some_and(|at| (at - holder.started_at).abs() <= DUPLICATE_WINDOW);
    owner != execution.name && holder.running && same_request && close
}

/// Whether a lock may be taken over from its holder, by the state of the holder's
/// execution: only once it is known to run no more; a state that cannot be read leaves
/// the lock where it is.
fn holder_ended(target: &str, owner: &str, state: Result<ExecutionState, RefreshError>) -> bool {
    match state {
        Ok(ExecutionState::Running) => false,
        Ok(state) => {
            warn!(target, %owner, ?state, "lock held by an execution that is no longer running; taking it over");
            true
        }
        Err(e) => {
            warn!(target, %owner, error = %e, "cannot tell whether the lock holder still runs; leaving the lock");
            false
        }
    }
}

/// Why `execution_name` no longer holds the lock `key`, whose item is `item`: held by
/// another execution, expired, or gone; `None` while it holds it.
fn lost_lock(
    key: &str,
    item: Option<&HashMap<String, AttributeValue>>,
    execution_name: &str,
    now: OffsetDateTime,
) -> Option<RefreshError> {
    let holder = item.and_then(|i| text(i, "owner"));
    let expires =
        item.and_then(|i| i.get(TTL_ATTRIBUTE)).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
    let held = holder.as_deref() == Some(execution_name) && expires.is_none_or(|at| at > now.unix_timestamp());
    (!held).then(|| RefreshError::LockLost {
        execution: execution_name.to_string(),
        lock: if key.starts_with("engine#") {
            format!("the engine lock {key}")
        } else {
            format!("target {key}'s lock")
        },
        holder,
    })
}

impl History {
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
            Some(arn) => holder_ended(target, &owner, executions.state(arn).await),
            None => false,
        };
        if ended && self.put_lock(target, execution, expires_at, now, "#owner = :old", Some(&owner)).await? {
            return Ok(());
        }
        Err(RefreshError::TargetLocked { target: target.into(), owner })
    }

    /// The running execution that holds the target's lock, and when it started, when this
    /// start is a duplicate of it (`is_duplicate`). Any doubt (an unreadable holder) is no
    /// duplicate: the start then fails as `TargetLocked`.
    pub async fn duplicate_of(
        &self,
        target: &str,
        execution: &Execution,
        document: &serde_json::Value,
        executions: &Executions,
    ) -> Option<(String, OffsetDateTime)> {
        let (owner, arn) = self.lock_holder(target).await.ok().flatten()?;
        let holder = executions
            .started(arn.as_deref()?)
            .await
            .inspect_err(|e| warn!(error = %e, %owner, "cannot read the lock holder's start: not taken as a duplicate"))
            .ok()
            .flatten()?;
        is_duplicate(&owner, &holder, execution, document).then_some((owner, holder.started_at))
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
    pub(crate) async fn lock_holder(&self, target: &str) -> Result<Option<(String, Option<String>)>, RefreshError> {
        Ok(self
            .item(target, LOCK_SK)
            .await?
            .map(|item| (text(&item, "owner").unwrap_or_else(|| "unknown".into()), text(&item, "ownerArn"))))
    }

    /// Fails unless `execution_name` still holds each of these locks (the target's, the
    /// engine's), unexpired: checked before anything is created or changed, so that a
    /// redriven execution whose run was cleaned up, or one whose lock expired (taken over or
    /// about to be), does nothing.
    pub async fn still_holds(
        &self,
        locks: &[&str],
        execution_name: &str,
        now: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        for key in locks {
            let item = self.item(key, LOCK_SK).await?;
            if let Some(lost) = lost_lock(key, item.as_ref(), execution_name, now) {
                return Err(lost);
            }
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-12-05 03:00 UTC);

    fn holder(running: bool, input: &str, started_at: OffsetDateTime) -> Started {
        Started { running, input: Some(input.to_string()), started_at }
    }

    fn start(name: &str, at: OffsetDateTime) -> Execution {
        Execution { name: name.into(), arn: None, started_at: Some(at) }
    }

    #[test]
    fn a_duplicate_is_another_running_execution_of_the_same_request_close_in_time() {
        let doc = json!({"target": "t", "clone": {"instanceClass": "db.r6g.large"}});
        let same = doc.to_string();
        let now = T0 + time::Duration::minutes(15);
        assert!(is_duplicate("first", &holder(true, &same, T0), &start("second", now), &doc), "15 min: still close");
        assert!(is_duplicate("first", &holder(true, &same, now), &start("second", T0), &doc), "either order");
        let later = T0 + time::Duration::minutes(15) + time::Duration::seconds(1);
        assert!(!is_duplicate("first", &holder(true, &same, T0), &start("second", later), &doc), "too far apart");
        assert!(!is_duplicate("first", &holder(false, &same, T0), &start("second", T0), &doc), "over");
        assert!(!is_duplicate("first", &holder(true, &same, T0), &start("first", T0), &doc), "itself");
        let other = json!({"target": "t", "clone": {"instanceClass": "db.r6g.xlarge"}}).to_string();
        assert!(!is_duplicate("first", &holder(true, &other, T0), &start("second", T0), &doc), "another request");
        assert!(!is_duplicate("first", &holder(true, "not json", T0), &start("second", T0), &doc));
        let unknown_start = Execution { started_at: None, ..start("second", T0) };
        assert!(
            !is_duplicate("first", &holder(true, &same, T0), &unknown_start, &doc),
            "no start time: no doubt allowed"
        );
    }

    #[test]
    fn a_lock_is_taken_over_only_from_an_execution_known_to_have_ended() {
        assert!(!holder_ended("t", "first", Ok(ExecutionState::Running)));
        assert!(holder_ended("t", "first", Ok(ExecutionState::Ended("FAILED".into()))));
        assert!(holder_ended("t", "first", Ok(ExecutionState::Missing)));
        let unreadable = Err(RefreshError::AwsTransient { operation: "DescribeExecution".into(), message: "m".into() });
        assert!(!holder_ended("t", "first", unreadable), "doubt leaves the lock");
    }

    fn lock_item(owner: &str, ttl: Option<OffsetDateTime>) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([("owner".to_string(), AttributeValue::S(owner.into()))]);
        if let Some(ttl) = ttl {
            item.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(ttl.unix_timestamp().to_string()));
        }
        item
    }

    #[test]
    fn a_lock_is_held_by_its_owner_until_it_expires() {
        let later = T0 + time::Duration::seconds(1);
        assert!(lost_lock("t", Some(&lock_item("run-1", Some(later))), "run-1", T0).is_none());
        assert!(lost_lock("t", Some(&lock_item("run-1", None)), "run-1", T0).is_none(), "no expiry: held");
        let expired = lost_lock("t", Some(&lock_item("run-1", Some(T0))), "run-1", T0);
        assert!(matches!(expired, Some(RefreshError::LockLost { .. })), "expired at the very second");
        let Some(RefreshError::LockLost { execution, lock, holder }) =
            lost_lock("t", Some(&lock_item("run-2", Some(later))), "run-1", T0)
        else {
            panic!("taken over: lost")
        };
        assert_eq!((execution.as_str(), lock.as_str(), holder.as_deref()), ("run-1", "target t's lock", Some("run-2")));
        let Some(RefreshError::LockLost { lock, holder, .. }) = lost_lock("engine#id#abc", None, "run-1", T0) else {
            panic!("gone: lost")
        };
        assert_eq!((lock.as_str(), holder), ("the engine lock engine#id#abc", None));
    }

    #[test]
    fn a_lock_outlasts_the_longest_run_by_the_margin() {
        let request = RefreshRequest::from_document(&json!({
            "target": "t",
            "source": {"type": "rds", "identifier": "prod", "dbName": "app", "username": "u",
                "passwordSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:p-AbCdEf"},
            "clone": {"instanceClass": "db.r6g.large"},
            "dblab": {"apiEndpoint": "https://dblab:2345", "tokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbCdEf"}
        }))
        .unwrap();
        let longest = longest_run(&request.clone, &request.dblab).0;
        assert_eq!(lock_expiry(&request, T0), T0 + longest + LOCK_MARGIN);
    }
}
