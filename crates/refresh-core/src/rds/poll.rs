//! Polling the clone until it is available, has failed, or is out of time.

use super::sdk::Shape;
use super::*;

/// What an RDS status means to the clone poller.
pub(crate) fn classify_status(status: &str) -> PollStatus {
    match status {
        "available" => PollStatus::Ready,
        "failed"
        | "incompatible-restore"
        | "incompatible-parameters"
        | "incompatible-network"
        | "incompatible-option-group"
        | "incompatible-credentials"
        | "inaccessible-encryption-credentials"
        | "inaccessible-encryption-credentials-recoverable"
        | "restore-error"
        | "storage-full"
        | "stopped"
        | "stopping"
        | "deleting"
        | "deleted"
        | "not-found" => PollStatus::Failed,
        // creating, backing-up, modifying, configuring-*, rebooting, upgrading... and any
        // status this code does not know yet: wait, within the deadline.
        _ => PollStatus::Pending,
    }
}

/// The most AWS calls one `check` makes: an Aurora look describes the cluster and its
/// writer, creates the writer once the cluster allows it, and describes it again when the
/// creation finds it made already. A watch plans each look for this many calls.
pub const MOST_CALLS_PER_CHECK: u32 = 4;

/// The longest one check can take: each of its calls its whole bound.
pub const LONGEST_CHECK: std::time::Duration =
    std::time::Duration::from_secs(MOST_CALLS_PER_CHECK as u64 * crate::aws::AWS_CALL_TIME.as_secs());

impl Rds {
    /// One poll of the clone: the next state of `clone`.
    pub async fn check(
        &self,
        clone: &CloneInstance,
        spec: &CloneSpec,
        now: OffsetDateTime,
    ) -> Result<CloneInstance, RefreshError> {
        if let Some(copy) = clone.copy.as_ref().filter(|c| c.ready_at.is_none()) {
            return self.check_copy(clone, copy, now).await;
        }
        let mut next = clone.clone();
        next.checks += 1;
        let shape = match clone.kind {
            CloneKind::Instance => Shape::Instance,
            CloneKind::Cluster => Shape::Cluster,
            CloneKind::SnapshotCopy => {
                return Err(RefreshError::Internal(format!("{} is a snapshot copy, not a clone", clone.identifier)));
            }
        };
        match (shape, self.describe(shape, &clone.identifier).await?) {
            (Shape::Instance, None) => next.rds_status = "not-found".into(),
            (Shape::Cluster, None) => next.rds_status = "cluster:not-found".into(),
            (Shape::Instance, Some(instance)) => {
                next.rds_status = instance.status.unwrap_or_else(|| "unknown".into());
                next.endpoint = instance.endpoint;
            }
            // A cluster is ready once its writer is: it is created once the cluster is available.
            (Shape::Cluster, Some(cluster)) => {
                let cluster_status = cluster.status.unwrap_or_else(|| "unknown".into());
                next.storage_type = cluster.storage_type;
                next.rds_status = format!("cluster:{cluster_status}");
                if cluster_status == "available" {
                    match self.describe(Shape::Instance, clone.instance_id()).await? {
                        None => {
                            // The clone's own tags, but not the shared cluster it is a clone of.
                            let tag_list: Vec<_> =
                                cluster.tags.into_iter().filter(|(k, _)| k != tags::CLONE_OF_KEY).collect();
                            self.ensure_writer(clone, spec, &tag_list).await?;
                            next.rds_status = "writer:creating".into();
                        }
                        Some(writer) => {
                            next.rds_status = writer.status.unwrap_or_else(|| "unknown".into());
                            next.endpoint = cluster.endpoint;
                        }
                    }
                }
            }
        }
        let status_word = next.rds_status.rsplit(':').next().unwrap_or_default().to_string();
        next.status = match classify_status(&status_word) {
            // "available" on the cluster alone is not ready: the writer must be up too.
            PollStatus::Ready if next.rds_status.starts_with("cluster:") => PollStatus::Pending,
            PollStatus::Ready if next.endpoint.is_none() => PollStatus::Pending,
            other => other,
        };
        if next.status == PollStatus::Ready {
            next.ready_at = Some(now);
        } else if next.status == PollStatus::Pending && now > clone.deadline {
            next.status = PollStatus::TimedOut;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(classify_status("available"), PollStatus::Ready);
        for s in ["creating", "backing-up", "modifying", "configuring-enhanced-monitoring", "something-new"] {
            assert_eq!(classify_status(s), PollStatus::Pending, "{s}");
        }
        for s in [
            "failed",
            "incompatible-restore",
            "incompatible-parameters",
            "storage-full",
            "deleting",
            "deleted",
            "not-found",
        ] {
            assert_eq!(classify_status(s), PollStatus::Failed, "{s}");
        }
    }
}
