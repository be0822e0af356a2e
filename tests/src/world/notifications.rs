//! The notifications a run sends: an SNS topic read through an SQS queue.

use super::World;
use crate::*;
use serde_json::json;

impl World {
    /// An SNS topic with an SQS queue subscribed (raw delivery keeps the attributes).
    pub async fn topic_with_queue(&self) -> (String, String) {
        let topic =
            self.sns.create_topic().name(format!("topic-{}", self.id)).send().await.unwrap_or_else(|e| panic!("{e:?}"));
        let topic_arn = topic.topic_arn().unwrap_or_default().to_string();
        let queue_url = self.subscribe_queue(&topic_arn, None).await;
        (topic_arn, queue_url)
    }

    /// A queue subscribed to a topic; with a target, only that target's messages reach it.
    pub async fn subscribe_queue(&self, topic_arn: &str, only_target: Option<&str>) -> String {
        let queue = self
            .sqs
            .create_queue()
            .queue_name(unique(&format!("queue-{}", self.id)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let queue_url = queue.queue_url().unwrap_or_default().to_string();
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        let mut subscribe = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true);
        if let Some(target) = only_target {
            subscribe = subscribe.attributes("FilterPolicy", json!({"target": [target]}).to_string());
        }
        subscribe.send().await.unwrap_or_else(|e| panic!("{e:?}"));
        queue_url
    }

    /// Every message waiting in the queue (body and attributes): received until the queue
    /// answers none, since one receive gives at most ten (and SQS may give fewer), so that
    /// "exactly one notification" counts them all.
    pub async fn messages(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            if out.messages().is_empty() {
                return all;
            }
            all.extend(out.messages().iter().cloned());
        }
    }
}
