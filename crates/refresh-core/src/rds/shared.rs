//! Another account's data: the snapshots production's account shares with this one, and
//! its Aurora clusters shared through AWS RAM for a fast clone.

use super::sdk::{Db, Listing, Shape};
use super::*;

/// Whether `arn` matches one of the stack's `SharedSnapshotArns` patterns, as IAM matches
/// a policy's resource: `*` any run of characters, `?` any one.
pub fn restorable(arn: &str, patterns: &[String]) -> bool {
    fn matches(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&pattern[1..], text) || (!text.is_empty() && matches(pattern, &text[1..])),
            (Some(b'?'), Some(_)) => matches(&pattern[1..], &text[1..]),
            (Some(p), Some(t)) if p == t => matches(&pattern[1..], &text[1..]),
            _ => false,
        }
    }
    patterns.iter().any(|p| matches(p.as_bytes(), arn.as_bytes()))
}

/// Whether a shared snapshot is one `account` made of its instance or cluster `identifier`
/// (its ARN names the account that owns it).
pub(crate) fn shared_by(candidate: &Candidate, account: &str, identifier: &str) -> bool {
    candidate.arn.split(':').nth(4) == Some(account) && candidate.source_id.as_deref() == Some(identifier)
}

impl Rds {
    /// The snapshot production's account (`source.account`) shares with this one: the one
    /// `source.snapshotIdentifier` names (an ARN), else the one with the newest data among
    /// those the stack may restore (`allowed`, its `SharedSnapshotArns`, when known).
    pub(super) async fn shared_snapshot(
        &self,
        source: &SourceSpec,
        allowed: Option<&[String]>,
    ) -> Result<Candidate, RefreshError> {
        let account = source.account.as_deref().unwrap_or_default();
        let (shared, outside): (Vec<Candidate>, Vec<Candidate>) = self
            .snapshots(Shape::from(source.kind), Listing::Shared)
            .await?
            .into_iter()
            .map(|s| s.candidate)
            .filter(|c| shared_by(c, account, &source.identifier))
            .partition(|c| allowed.is_none_or(|patterns| restorable(&c.arn, patterns)));
        info!(count = shared.len(), outside = outside.len(), %account, "listed snapshots shared with this account");
        let what = format!("{} {:?} of account {account}", source.kind.describe(), source.identifier);
        if shared.is_empty()
            && let Some(first) = outside.first()
        {
            return Err(RefreshError::NoSuitableSnapshot(format!(
                "{} snapshot(s) of {what} are shared with this account, but none is among the stack's \
                 SharedSnapshotArns ({}), which the restore may read: {} for one; add its ARN (or a pattern) to \
                 SharedSnapshotArns and update the stack",
                outside.len(),
                allowed.unwrap_or_default().join(", "),
                first.arn
            )));
        }
        match &source.snapshot_identifier {
            Some(arn) => {
                let found = shared.into_iter().find(|c| &c.arn == arn).ok_or_else(|| {
                    RefreshError::NoSuitableSnapshot(format!(
                        "snapshot {arn} of {what} is not shared with this account (or does not exist)"
                    ))
                })?;
                if found.status != "available" {
                    return Err(RefreshError::SnapshotNotAvailable { identifier: arn.clone(), status: found.status });
                }
                // Restored, and recorded, by its ARN: it names the account that shares it.
                Ok(Candidate { identifier: arn.clone(), ..found })
            }
            None => {
                // A copy on its way is worth naming: the run can simply be started again later.
                let on_its_way = shared
                    .iter()
                    .filter(|c| c.status != "available")
                    .max_by(|a, b| a.data_at.cmp(&b.data_at))
                    .map(|c| format!("; the newest, {}, is still being made ({})", c.arn, c.status));
                newest_available(shared).map(|c| Candidate { identifier: c.arn.clone(), ..c }).ok_or_else(|| {
                    RefreshError::NoSuitableSnapshot(match on_its_way {
                        Some(newest) => format!("no available snapshot of {what} is shared with this account{newest}"),
                        None => format!(
                            "no snapshot of {what} is shared with this account: production's account must share manual copies of its automated snapshots (its publisher: docs/deploying.md, \"Production in another account\")"
                        ),
                    })
                })
            }
        }
    }

    /// A fast clone of another account's cluster shared through AWS RAM, from what its
    /// listing gives: its ARN (the clone names it), engine, version and whether it is
    /// encrypted; no restorable window and no key (Aurora User Guide, "Cross-account cloning
    /// with AWS RAM and Amazon Aurora"). Its data is of the moment the clone is made.
    pub(super) async fn ram_clone_source(
        &self,
        source: &SourceSpec,
        account: &str,
        now: OffsetDateTime,
    ) -> Result<RestoreSource, RefreshError> {
        let cluster = self.ram_shared_cluster(account, &source.identifier).await?;
        let arn = cluster.arn.clone();
        Ok(RestoreSource {
            mode: SourceMode::FastClone,
            identifier: source.identifier.clone(),
            arn: arn.clone(),
            engine: cluster.engine,
            engine_version: cluster.engine_version,
            data_as_of: now,
            snapshot_type: SourceMode::FastClone.as_str().into(),
            source_type: SourceType::AuroraCluster,
            // Cloned by its ARN, which names the account that shares it.
            source_identifier: arn,
            found_at: now,
            kms_key_id: None,
            encrypted: cluster.encrypted,
            serverless_capacity: None,
            engine_instance_id: None,
            local_key: None,
            storage_gb: None,
        })
    }

    /// Another account's Aurora cluster, as shared with this one through AWS RAM: listed by
    /// DescribeDBClusters with IncludeShared, its ARN naming that account. All that is read
    /// of it is that description.
    async fn ram_shared_cluster(&self, account: &str, identifier: &str) -> Result<Db, RefreshError> {
        let wanted = format!(":{account}:cluster:{identifier}");
        if let Some(found) = self.shared_clusters().await?.into_iter().find(|c| c.arn.ends_with(&wanted)) {
            return Ok(found);
        }
        Err(RefreshError::at(
            "source.account",
            format!(
                "Aurora cluster {identifier:?} of account {account} is not shared with this account through AWS RAM: \
                 share it there (a RAM resource share of the cluster, accepted here), or have that account publish its \
                 snapshots and use source.mode \"snapshot\""
            ),
        ))
    }

    /// This account's clone of a cluster another account shares through RAM, if one of
    /// ours exists: AWS allows one cross-account clone of a shared cluster per account
    /// (Aurora User Guide, cross-account cloning, limitations). Ours carry the cluster's ARN
    /// ([`tags::CLONE_OF_KEY`]); a clone made by hand is refused by RDS at the restore.
    pub(crate) async fn clone_of_shared(&self, cluster_arn: &str) -> Result<Option<ManagedClone>, RefreshError> {
        Ok(self
            .managed_clones()
            .await?
            .into_iter()
            .find(|c| c.kind == CloneKind::Cluster && tags::get(&c.tags, tags::CLONE_OF_KEY) == Some(cluster_arn)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::snapshots::tests::cand;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-05 06:00 UTC);

    #[test]
    fn a_shared_snapshot_counts_only_when_that_account_made_it_of_that_source() {
        let shared = |arn: &str, source: &str| Candidate {
            arn: arn.into(),
            source_id: Some(source.into()),
            ..cand("copy", "available", Some(NOW))
        };
        let ours = shared("arn:aws:rds:us-east-1:111111111111:snapshot:copy", "prod");
        assert!(shared_by(&ours, "111111111111", "prod"));
        assert!(!shared_by(&ours, "222222222222", "prod"), "another account's");
        assert!(!shared_by(&ours, "111111111111", "prod2"), "another source's");
        assert!(!shared_by(&shared("copy", "prod"), "111111111111", "prod"), "no ARN");
    }

    #[test]
    fn only_snapshots_the_stack_lists_are_restorable() {
        let listed = vec![
            "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-*".to_string(),
            "arn:aws:rds:us-east-1:111111111111:snapshot:exact-one".to_string(),
            "arn:aws:rds:us-east-1:111111111111:snapshot:day-??".to_string(),
            "arn:aws:rds:us-east-1:111111111111:snapshot:*-final".to_string(),
        ];
        for arn in [
            "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-prod-2026-12-05",
            "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-",
            "arn:aws:rds:us-east-1:111111111111:snapshot:exact-one",
            "arn:aws:rds:us-east-1:111111111111:snapshot:day-07",
            "arn:aws:rds:us-east-1:111111111111:snapshot:prod-final",
        ] {
            assert!(restorable(arn, &listed), "{arn}");
        }
        for arn in [
            "arn:aws:rds:us-east-1:111111111111:snapshot:before-upgrade",
            "arn:aws:rds:us-east-1:222222222222:snapshot:dblab-share-prod",
            "arn:aws:rds:us-east-1:111111111111:snapshot:exact-one-more",
            "arn:aws:rds:us-east-1:111111111111:snapshot:day-7",
            "arn:aws:rds:us-east-1:111111111111:cluster-snapshot:dblab-share-prod",
            "arn:aws:rds:us-east-1:111111111111:snapshot:prod-final-not",
        ] {
            assert!(!restorable(arn, &listed), "{arn}");
        }
        assert!(
            !restorable("arn:aws:rds:us-east-1:111111111111:snapshot:x", &[]),
            "nothing listed, nothing restorable"
        );
    }
}
