//! A run's one notification, marked by its execution name: claimed before it is sent, with
//! its message id once it is. The run's own machine and the clean-up machine both notify
//! through it, so whichever of record or notify failed, the run's email goes out once.

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{History, PK, SK, is_conditional_failure, text};
use crate::clock::rfc3339;
use crate::error::RefreshError;

const PREFIX: &str = "notification#";
const CLAIMED_AT: &str = "claimedAt";
/// The claim's time in epoch seconds, for the condition that takes a stale claim over.
const CLAIMED_EPOCH: &str = "claimedEpoch";
const MESSAGE_ID: &str = "messageId";

/// A claim without a message id older than this belongs to a call that is over (notify's
/// Lambda timeout is 30 s): it died between the claim and the publish, and is taken over.
pub const CLAIM_OUTLIVES: time::Duration = time::Duration::seconds(90);

/// What a claim of a run's notification came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call sends it.
    Ours,
    /// Another call sent it, as this message: not sent again.
    Sent(String),
    /// Another call claimed it this recently and may be sending it now.
    InFlight,
}

fn sort_key(execution_name: &str) -> String {
    format!("{PREFIX}{execution_name}")
}

impl History {
    /// Claims the notification of the run `execution_name` (in its row's partition): free,
    /// or claimed over `CLAIM_OUTLIVES` ago by a call that never said it was sent.
    pub async fn claim_notification(
        &self,
        partition: &str,
        execution_name: &str,
        now: OffsetDateTime,
    ) -> Result<Claim, RefreshError> {
        let key = sort_key(execution_name);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(partition.into()))
            .item(SK, AttributeValue::S(key.clone()))
            .item("executionName", AttributeValue::S(execution_name.into()))
            .item(CLAIMED_AT, AttributeValue::S(rfc3339(now)))
            .item(CLAIMED_EPOCH, AttributeValue::N(now.unix_timestamp().to_string()))
            .condition_expression("attribute_not_exists(#sk) OR (attribute_not_exists(#id) AND #epoch < :stale)")
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#id", MESSAGE_ID)
            .expression_attribute_names("#epoch", CLAIMED_EPOCH)
            .expression_attribute_values(
                ":stale",
                AttributeValue::N((now - CLAIM_OUTLIVES).unix_timestamp().to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Ours),
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => {
                let item = self.item(partition, &key).await?;
                Ok(item.and_then(|i| text(&i, MESSAGE_ID)).map_or(Claim::InFlight, Claim::Sent))
            }
            Err(e) => Err(RefreshError::from_aws("PutItem", e)),
        }
    }

    /// The claimed notification went out as `message_id`.
    pub async fn notification_sent(
        &self,
        partition: &str,
        execution_name: &str,
        message_id: &str,
    ) -> Result<(), RefreshError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(partition.into()))
            .key(SK, AttributeValue::S(sort_key(execution_name)))
            .update_expression("SET #id = :id")
            .expression_attribute_names("#id", MESSAGE_ID)
            .expression_attribute_values(":id", AttributeValue::S(message_id.into()))
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("UpdateItem", e))?;
        Ok(())
    }

    /// Gives up a claim whose message could not be sent, so that a later call sends it; a
    /// claim whose message went out is kept.
    pub async fn release_notification(&self, partition: &str, execution_name: &str) -> Result<(), RefreshError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(partition.into()))
            .key(SK, AttributeValue::S(sort_key(execution_name)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", MESSAGE_ID)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => Ok(()),
            Err(e) => Err(RefreshError::from_aws("DeleteItem", e)),
        }
    }

    /// Whether the run's notification went out (its claim holds a message id).
    pub async fn notification_sent_already(&self, partition: &str, execution_name: &str) -> Result<bool, RefreshError> {
        let item = self.item(partition, &sort_key(execution_name)).await?;
        Ok(item.is_some_and(|i| text(&i, MESSAGE_ID).is_some()))
    }
}
