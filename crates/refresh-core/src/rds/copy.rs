//! The copy-in of a shared encrypted instance snapshot. RDS restores an encrypted snapshot
//! shared from another account only from a copy in this account (RDS User Guide, "Sharing
//! a DB snapshot", encrypted snapshots), and that copy must name a `KmsKeyId` (RDS API,
//! `CopyDBSnapshot`). The copy is named as the clone and tagged as it is, so the run's
//! deletion, the purge and the sweep know it as this run's, and nothing else is ever
//! deleted: a snapshot without our name and `ManagedBy` tag is refused.

use super::sdk::{Created, Shape, Snapshot};
use super::*;
use crate::run::LocalCopy;

/// Whether what is taken from another account needs a key of this account: an encrypted
/// instance snapshot, restored only from a copy made here under it, and an encrypted
/// cluster shared through RAM, cloned under it (Aurora User Guide, cross-account cloning).
/// Aurora restores a shared encrypted cluster snapshot directly (Aurora User Guide,
/// "Sharing a DB cluster snapshot"); an unencrypted share needs nothing.
pub(crate) fn needs_local_key(source: &RestoreSource, production_account: Option<&str>) -> bool {
    let taken = match source.mode {
        SourceMode::Snapshot => source.source_type == SourceType::Rds,
        SourceMode::FastClone => true,
        SourceMode::LatestPoint | SourceMode::PointInTime => false,
    };
    taken && source.encrypted && production_account.is_some()
}

/// What a look at the local copy found.
pub enum CopyState {
    /// Still being made (or just asked for).
    Making(LocalCopy),
    Available(LocalCopy),
    /// In a status no wait cures.
    Failed(LocalCopy),
}

/// What a copy's RDS status means: `None` while it is still being made.
pub(crate) fn copy_finished(status: &str) -> Option<bool> {
    match status {
        "available" => Some(true),
        "failed" | "error" | "deleted" | "deleting" | "incompatible-restore" | "not-found" => Some(false),
        // creating, pending, copying... and any status not known yet: wait, within the deadline.
        _ => None,
    }
}

fn local_copy(s: &Snapshot, copy_of: &str, fallback_requested: OffsetDateTime) -> LocalCopy {
    LocalCopy {
        identifier: s.candidate.identifier.clone(),
        copy_of: copy_of.to_string(),
        requested_at: s.candidate.created_at.unwrap_or(fallback_requested),
        ready_at: None,
        status: if s.candidate.status.is_empty() { "unknown".into() } else { s.candidate.status.clone() },
        percent: s.percent,
        allocated_gb: s.candidate.storage_gb,
    }
}

fn state_of(copy: LocalCopy) -> CopyState {
    match copy_finished(&copy.status) {
        Some(true) => CopyState::Available(copy),
        Some(false) => CopyState::Failed(copy),
        None => CopyState::Making(copy),
    }
}

impl Rds {
    /// The run's local copy of the shared snapshot: asked for when it does not exist yet,
    /// adopted when this execution made it, refused when anything else holds its name.
    pub async fn copy_in(&self, plan: &ClonePlan<'_>, key: &str) -> Result<CopyState, RefreshError> {
        let from = &plan.snapshot.arn;
        if let Some(found) = self.snapshot(Shape::Instance, &plan.name).await? {
            super::create::adopt(&plan.name, &found.tags, &plan.tags)?;
            return Ok(state_of(local_copy(&found, from, plan.requested_at)));
        }
        let mut copy_tags = plan.tags.clone();
        copy_tags.push((tags::COPY_OF_KEY.to_string(), from.clone()));
        match self.copy(Shape::Instance, from, &plan.name, Some(key), &copy_tags).await? {
            (Created::Requested(_), made) => {
                info!(copy = %plan.name, from = %from, key, "copy into this account requested");
                let made = made.map(|s| local_copy(&s, from, plan.requested_at));
                Ok(CopyState::Making(made.unwrap_or_else(|| LocalCopy {
                    identifier: plan.name.clone(),
                    copy_of: from.clone(),
                    requested_at: plan.requested_at,
                    ready_at: None,
                    status: "creating".into(),
                    percent: None,
                    allocated_gb: None,
                })))
            }
            (Created::AlreadyExists, _) => {
                let found = self.snapshot(Shape::Instance, &plan.name).await?.ok_or_else(|| {
                    RefreshError::CloneConflict(format!("{} was reported to exist but cannot be described", plan.name))
                })?;
                super::create::adopt(&plan.name, &found.tags, &plan.tags)?;
                Ok(state_of(local_copy(&found, from, plan.requested_at)))
            }
        }
    }

    pub(super) async fn check_copy(
        &self,
        clone: &CloneInstance,
        copy: &LocalCopy,
        now: OffsetDateTime,
    ) -> Result<CloneInstance, RefreshError> {
        let mut next = clone.clone();
        next.checks += 1;
        let seen = match self.snapshot(Shape::Instance, &copy.identifier).await? {
            Some(found) => LocalCopy { requested_at: copy.requested_at, ..local_copy(&found, &copy.copy_of, now) },
            None => LocalCopy { status: "not-found".into(), ..copy.clone() },
        };
        next.rds_status = format!("copy:{}", seen.status);
        next.status = match copy_finished(&seen.status) {
            Some(true) => PollStatus::Copied,
            Some(false) => PollStatus::Failed,
            None if now > clone.deadline => PollStatus::TimedOut,
            None => PollStatus::Pending,
        };
        next.copy = Some(LocalCopy { ready_at: (next.status == PollStatus::Copied).then_some(now), ..seen });
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_read_from_its_snapshot_and_waited_for_until_it_ends() {
        let asked = time::macros::datetime!(2026-12-07 04:00 UTC);
        let mut s = Snapshot {
            candidate: crate::rds::snapshots::tests::cand("copy", "creating", None),
            tags: Vec::new(),
            percent: Some(30),
        };
        s.candidate.storage_gb = Some(50);
        let copy = local_copy(&s, "arn:shared", asked);
        assert_eq!((copy.identifier.as_str(), copy.copy_of.as_str()), ("copy", "arn:shared"));
        assert_eq!(
            (copy.requested_at, copy.status.as_str(), copy.percent, copy.allocated_gb),
            (asked, "creating", Some(30), Some(50))
        );
        assert!(matches!(state_of(copy.clone()), CopyState::Making(_)));
        let made = time::macros::datetime!(2026-12-07 04:01 UTC);
        s.candidate.created_at = Some(made);
        s.candidate.status = String::new();
        let copy = local_copy(&s, "arn:shared", asked);
        assert_eq!((copy.requested_at, copy.status.as_str()), (made, "unknown"), "RDS's own time wins");
        assert!(matches!(state_of(LocalCopy { status: "available".into(), ..copy.clone() }), CopyState::Available(_)));
        assert!(matches!(state_of(LocalCopy { status: "failed".into(), ..copy }), CopyState::Failed(_)));
    }

    #[test]
    fn an_encrypted_instance_share_or_ram_cluster_needs_this_accounts_key() {
        let shared = RestoreSource {
            identifier: "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-prod".into(),
            arn: "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-prod".into(),
            snapshot_type: "shared".into(),
            kms_key_id: Some("arn:aws:kms:us-east-1:111111111111:key/k".into()),
            encrypted: true,
            ..crate::run::tests::restore_source()
        };
        let production = Some("111111111111");
        assert!(needs_local_key(&shared, production));
        assert!(!needs_local_key(&shared, None), "this account's own snapshot restores directly");
        assert!(!needs_local_key(&RestoreSource { encrypted: false, ..shared.clone() }, production));
        let cluster = RestoreSource { source_type: SourceType::AuroraCluster, ..shared.clone() };
        assert!(!needs_local_key(&cluster, production), "Aurora restores a shared encrypted cluster snapshot");
        // A RAM-shared cluster is listed without its key: encrypted is all that is known.
        let ram = RestoreSource { mode: SourceMode::FastClone, kms_key_id: None, ..cluster };
        assert!(needs_local_key(&ram, production));
        assert!(!needs_local_key(&RestoreSource { encrypted: false, ..ram.clone() }, production));
        assert!(!needs_local_key(&ram, None), "this account's own cluster is cloned under its own key");
        for mode in [SourceMode::LatestPoint, SourceMode::PointInTime] {
            assert!(!needs_local_key(&RestoreSource { mode, ..shared.clone() }, production));
        }
    }

    #[test]
    fn a_copy_is_waited_for_until_available_or_failed() {
        assert_eq!(copy_finished("available"), Some(true));
        for s in ["creating", "pending", "copying", "something-new"] {
            assert_eq!(copy_finished(s), None, "{s}");
        }
        for s in ["failed", "error", "deleted", "deleting", "not-found"] {
            assert_eq!(copy_finished(s), Some(false), "{s}");
        }
    }
}
