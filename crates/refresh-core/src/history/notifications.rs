//! A run's one notification, marked by its execution name alone (not its target: a run
//! whose request could not be read is the same run): claimed before it is sent, marked
//! `publishing` just before the publish, with its message id once SNS took it. The run's
//! own machine and the clean-up machine both notify through it, so whichever of record or
//! notify failed, the run's email goes out once.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{History, PK, SK, is_conditional_failure, text};
use crate::clock::rfc3339;
use crate::error::RefreshError;

const PREFIX: &str = "notification#";
const ITEM: &str = "notification";
const CLAIMED_AT: &str = "claimedAt";
/// The claim's time in epoch seconds, for the condition that takes a stale claim over.
const CLAIMED_EPOCH: &str = "claimedEpoch";
const PUBLISHING_AT: &str = "publishingAt";
const MESSAGE_ID: &str = "messageId";

/// A claim that never reached its publish, older than this, belongs to a call that is over
/// (notify's Lambda timeout is 30 s): it died between the two writes, and is taken over.
pub const CLAIM_OUTLIVES: time::Duration = time::Duration::seconds(35);

/// What a claim of a run's notification came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call sends it.
    Ours,
    /// Another call sent it, as this message, or began its publish and may have (`None`,
    /// its answer never recorded): not sent again.
    Sent(Option<String>),
    /// Another call claimed it this recently and has not reached its publish yet.
    InFlight,
}

fn partition(execution_name: &str) -> String {
    format!("{PREFIX}{execution_name}")
}

fn key(execution_name: &str) -> (AttributeValue, AttributeValue) {
    (AttributeValue::S(partition(execution_name)), AttributeValue::S(ITEM.into()))
}

/// The claims made before this epoch second are stale (`CLAIM_OUTLIVES`).
fn stale_before(now: OffsetDateTime) -> i64 {
    (now - CLAIM_OUTLIVES).unix_timestamp()
}

/// What a claim refused because another call holds it comes to, by the notification's
/// item: sent (or perhaps sent) once its publish began, in flight until then.
fn claimed_by_another(item: Option<&HashMap<String, AttributeValue>>) -> Claim {
    match item {
        Some(i) if i.contains_key(PUBLISHING_AT) => Claim::Sent(text(i, MESSAGE_ID)),
        _ => Claim::InFlight,
    }
}

impl History {
    /// Claims the notification of the run `execution_name`: free, or claimed over
    /// `CLAIM_OUTLIVES` ago by a call that never reached its publish.
    pub async fn claim_notification(&self, execution_name: &str, now: OffsetDateTime) -> Result<Claim, RefreshError> {
        let (pk, sk) = key(execution_name);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, pk)
            .item(SK, sk)
            .item("executionName", AttributeValue::S(execution_name.into()))
            .item(CLAIMED_AT, AttributeValue::S(rfc3339(now)))
            .item(CLAIMED_EPOCH, AttributeValue::N(now.unix_timestamp().to_string()))
            .condition_expression(
                "attribute_not_exists(#sk) OR (attribute_not_exists(#publishing) AND #epoch < :stale)",
            )
            .expression_attribute_names("#sk", SK)
            .expression_attribute_names("#publishing", PUBLISHING_AT)
            .expression_attribute_names("#epoch", CLAIMED_EPOCH)
            .expression_attribute_values(":stale", AttributeValue::N(stale_before(now).to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Ours),
            Err(e) if e.as_service_error().is_some_and(is_conditional_failure) => {
                Ok(claimed_by_another(self.notification_item(execution_name).await?.as_ref()))
            }
            Err(e) => Err(RefreshError::from_aws("PutItem", e)),
        }
    }

    /// Just before the publish: from here on the message may be out, and is never sent again.
    pub async fn notification_publishing(&self, execution_name: &str, now: OffsetDateTime) -> Result<(), RefreshError> {
        self.set_text(&partition(execution_name), ITEM, PUBLISHING_AT, &rfc3339(now)).await
    }

    /// The claimed notification went out as `message_id`.
    pub async fn notification_sent(&self, execution_name: &str, message_id: &str) -> Result<(), RefreshError> {
        self.set_text(&partition(execution_name), ITEM, MESSAGE_ID, message_id).await
    }

    /// Gives up a claim whose publish SNS refused, so that a later call sends it; a claim
    /// whose message went out is kept.
    pub async fn release_notification(&self, execution_name: &str) -> Result<(), RefreshError> {
        let (pk, sk) = key(execution_name);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, pk)
            .key(SK, sk)
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

    /// Whether the run's notification went out, or began its publish (and may have).
    pub async fn notification_sent_already(&self, execution_name: &str) -> Result<bool, RefreshError> {
        Ok(self.notification_item(execution_name).await?.is_some_and(|i| i.contains_key(PUBLISHING_AT)))
    }

    async fn notification_item(
        &self,
        execution_name: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, RefreshError> {
        self.item(&partition(execution_name), ITEM).await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_claim_is_stale_35_seconds_after_it_was_made() {
        let now = datetime!(2026-12-05 03:00:35 UTC);
        assert_eq!(stale_before(now), datetime!(2026-12-05 03:00 UTC).unix_timestamp());
    }

    #[test]
    fn another_calls_claim_is_sent_once_its_publish_began_and_in_flight_before() {
        let claimed = HashMap::from([(CLAIMED_AT.to_string(), AttributeValue::S("2026-12-05T03:00:00Z".into()))]);
        assert_eq!(claimed_by_another(Some(&claimed)), Claim::InFlight);
        assert_eq!(claimed_by_another(None), Claim::InFlight, "released between the two calls");
        let mut publishing = claimed.clone();
        publishing.insert(PUBLISHING_AT.into(), AttributeValue::S("2026-12-05T03:00:01Z".into()));
        assert_eq!(claimed_by_another(Some(&publishing)), Claim::Sent(None), "its answer never recorded");
        publishing.insert(MESSAGE_ID.into(), AttributeValue::S("m-1".into()));
        assert_eq!(claimed_by_another(Some(&publishing)), Claim::Sent(Some("m-1".into())));
    }

    #[test]
    fn a_runs_notification_is_keyed_by_its_execution_alone() {
        assert_eq!(
            key("run-1"),
            (AttributeValue::S("notification#run-1".into()), AttributeValue::S("notification".into()))
        );
    }
}
