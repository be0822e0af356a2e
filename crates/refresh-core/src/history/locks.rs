//! The target's and the engine's locks: conditional writes, one owner each, taken over
//! only from an execution that has ended or a lock that expired.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::{History, LOCK_SK, PK, SK, TTL_ATTRIBUTE, is_conditional_failure, text};
use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::executions::{ExecutionState, Executions};
use crate::run::{EngineLock, Execution};

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
        Ok(self
            .item(target, LOCK_SK)
            .await?
            .map(|item| (text(&item, "owner").unwrap_or_else(|| "unknown".into()), text(&item, "ownerArn"))))
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
