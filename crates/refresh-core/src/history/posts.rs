//! When a run changed the engine's config, on the engine's own clock: recorded before the
//! change is posted (when it posts) and once the engine answered (the latest its clock may
//! have read then). A retried `patch-dblab` adopts a refresh only if the engine built it
//! after that answer (`dblab::trigger::is_ours`): without the record there is no proof.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{History, PK, SK, text};
use crate::clock::rfc3339;
use crate::error::RefreshError;

const PREFIX: &str = "config#";
const POSTING_AT: &str = "postingAt";
const POSTED_BY: &str = "postedBy";

/// What an earlier attempt of the run recorded of its config change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigPost {
    /// The earliest the engine's clock read when the change was about to be posted.
    pub posting_at: Option<OffsetDateTime>,
    /// The latest it may have read when the engine answered: absent if that answer never
    /// came back (the attempt ended inside the call).
    pub posted_by: Option<OffsetDateTime>,
}

fn sort_key(execution_name: &str) -> String {
    format!("{PREFIX}{execution_name}")
}

impl History {
    /// Before the change is posted: a new attempt forgets what an earlier one was answered.
    pub async fn config_posting(
        &self,
        target: &str,
        execution_name: &str,
        posting_at: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(target.into()))
            .item(SK, AttributeValue::S(sort_key(execution_name)))
            .item("executionName", AttributeValue::S(execution_name.into()))
            .item(POSTING_AT, AttributeValue::S(rfc3339(posting_at)))
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("PutItem", e))?;
        Ok(())
    }

    /// Once the engine answered the change.
    pub async fn config_posted(
        &self,
        target: &str,
        execution_name: &str,
        posted_by: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        self.set_text(target, &sort_key(execution_name), POSTED_BY, &rfc3339(posted_by)).await
    }

    /// What the run's earlier attempts recorded (nothing if none posted).
    pub async fn config_post(&self, target: &str, execution_name: &str) -> Result<ConfigPost, RefreshError> {
        Ok(config_post_of(self.item(target, &sort_key(execution_name)).await?.as_ref()))
    }
}

/// What a run's config item recorded: each time that is there and readable.
fn config_post_of(item: Option<&HashMap<String, AttributeValue>>) -> ConfigPost {
    let time =
        |attribute: &str| item.and_then(|i| text(i, attribute)).and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok());
    ConfigPost { posting_at: time(POSTING_AT), posted_by: time(POSTED_BY) }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_config_post_reads_back_the_times_it_recorded() {
        let posting = datetime!(2026-12-05 03:00:00.250 UTC);
        let mut item = HashMap::from([
            (SK.to_string(), AttributeValue::S(sort_key("run-1"))),
            (POSTING_AT.to_string(), AttributeValue::S(rfc3339(posting))),
        ]);
        assert_eq!(item[SK], AttributeValue::S("config#run-1".into()));
        let unanswered = ConfigPost { posting_at: Some(posting), posted_by: None };
        assert_eq!(config_post_of(Some(&item)), unanswered, "the answer never came back");
        let posted = datetime!(2026-12-05 03:00:01 UTC);
        item.insert(POSTED_BY.into(), AttributeValue::S(rfc3339(posted)));
        assert_eq!(config_post_of(Some(&item)), ConfigPost { posting_at: Some(posting), posted_by: Some(posted) });
        item.insert(POSTED_BY.into(), AttributeValue::S("yesterday".into()));
        assert_eq!(config_post_of(Some(&item)), unanswered, "an unreadable time is no proof");
        assert_eq!(config_post_of(None), ConfigPost::default());
    }
}
