//! The source: that it exists and is what the request says, and what the clone is
//! restored from (a snapshot, a time in the restorable window, or the live cluster).

use super::*;
use crate::request::ServerlessCapacity;

/// A snapshot as listed, before choosing.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub identifier: String,
    pub arn: String,
    pub status: String,
    /// When this snapshot (or copy) was made: it orders the candidates.
    pub created_at: Option<OffsetDateTime>,
    /// When its data is from (`data_time`).
    pub data_at: Option<OffsetDateTime>,
    /// The instance or cluster it is a snapshot of.
    pub source_id: Option<String>,
    pub engine: String,
    pub engine_version: Option<String>,
    pub snapshot_type: String,
    /// Only for an encrypted snapshot: a key id on an unencrypted one means nothing.
    pub kms_key_id: Option<String>,
    /// An instance snapshot's storage, in GiB (what the clone gets).
    pub storage_gb: Option<i32>,
}

/// When a snapshot's data is from: the most recent transaction it holds
/// (`SnapshotDatabaseTime`), else when the original snapshot was made
/// (`OriginalSnapshotCreateTime`, kept through copies and shares), else its own creation.
/// A copy made today of last week's snapshot holds last week's data.
pub fn data_time(
    database_time: Option<OffsetDateTime>,
    original_created: Option<OffsetDateTime>,
    created: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    database_time.or(original_created).or(created)
}

/// The available snapshot with the newest data (`data_at`): a copy made today of last
/// week's snapshot loses to one made yesterday of yesterday's. Ties go to the larger
/// identifier, so the choice is stable.
pub fn newest_available(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates
        .into_iter()
        .filter(|c| c.status == "available" && c.data_at.is_some())
        .max_by(|a, b| a.data_at.cmp(&b.data_at).then_with(|| a.identifier.cmp(&b.identifier)))
}

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
pub fn shared_by(candidate: &Candidate, account: &str, identifier: &str) -> bool {
    candidate.arn.split(':').nth(4) == Some(account) && candidate.source_id.as_deref() == Some(identifier)
}

/// Whether data from `data_as_of` is older than `max` at `now`.
pub fn too_old(data_as_of: OffsetDateTime, max: std::time::Duration, now: OffsetDateTime) -> bool {
    now - data_as_of > max
}

/// The whole second before `t`: a restore time RDS takes as "before the latest restorable time".
pub fn just_before(t: OffsetDateTime) -> OffsetDateTime {
    let whole = t.replace_nanosecond(0).unwrap_or(t);
    whole - time::Duration::seconds(1)
}

/// Where the restorable window of an RDS instance starts when AWS does not say (no
/// automated-backup record): its retention period back from the latest restorable time,
/// but never before the instance existed.
pub fn window_start(latest: OffsetDateTime, retention_days: i32, created: Option<OffsetDateTime>) -> OffsetDateTime {
    let by_retention = latest - time::Duration::days(i64::from(retention_days));
    created.map_or(by_retention, |c| c.max(by_retention))
}

/// The times a source can be restored to, and what the restore needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorableWindow {
    pub arn: String,
    /// The key the source is encrypted with, which a restore from it uses too.
    pub kms_key_id: Option<String>,
    pub engine: String,
    pub engine_version: Option<String>,
    pub earliest: OffsetDateTime,
    pub latest: OffsetDateTime,
    /// An instance's storage, in GiB (what its point-in-time clone gets).
    pub storage_gb: Option<i32>,
}

impl Rds {
    /// Fails early when the source is missing, or is not what `source.type` says.
    pub async fn check_source(&self, source: &SourceSpec) -> Result<(), RefreshError> {
        let not_found = || RefreshError::SourceNotFound {
            kind: source.kind.describe().into(),
            identifier: source.identifier.clone(),
        };
        match source.kind {
            SourceType::Rds => {
                let instance = self.instance(&source.identifier).await?.ok_or_else(not_found)?;
                if let Some(cluster) = instance.db_cluster_identifier() {
                    return Err(RefreshError::at(
                        "source.type",
                        format!(
                            "{:?} is a member of Aurora cluster {cluster:?}: use source.type \"aurora-cluster\" with source.identifier {cluster:?}",
                            source.identifier
                        ),
                    ));
                }
            }
            SourceType::AuroraCluster => {
                self.cluster(&source.identifier).await?.ok_or_else(not_found)?;
            }
        }
        Ok(())
    }

    /// Whether a DB subnet group exists (the preflight of `dblab-refresh validate`).
    pub async fn check_subnet_group(&self, name: &str) -> Result<(), RefreshError> {
        match self.client.describe_db_subnet_groups().db_subnet_group_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, &["DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"]) => {
                Err(RefreshError::at("clone.subnetGroup", format!("DB subnet group {name:?} does not exist")))
            }
            Err(e) => Err(RefreshError::from_aws("DescribeDBSubnetGroups", e)),
        }
    }

    /// What the clone is restored from, as `source.mode` says. `shared` is the stack's
    /// `SharedSnapshotArns` (when known): another account's snapshots outside it are not
    /// considered, as the stack could not restore them.
    pub async fn choose_source(
        &self,
        source: &SourceSpec,
        shared: Option<&[String]>,
        now: OffsetDateTime,
    ) -> Result<RestoreSource, RefreshError> {
        if source.mode == SourceMode::Snapshot {
            return self.find_snapshot(source, shared, now).await;
        }
        if let (Some(account), SourceMode::FastClone) = (&source.account, source.mode) {
            return self.ram_clone_source(source, account, now).await;
        }
        let window = self.restorable_window(source).await?;
        let data_as_of = match (source.mode, source.restore_time) {
            // RDS wants a restore time strictly before the latest restorable time.
            (SourceMode::PointInTime, Some(t)) if t < window.earliest || t >= window.latest => {
                return Err(RefreshError::at(
                    "source.restoreTime",
                    format!(
                        "{} is outside the restorable window of {} {:?}: from {} to before {}",
                        rfc3339(t),
                        source.kind.describe(),
                        source.identifier,
                        rfc3339(window.earliest),
                        rfc3339(window.latest)
                    ),
                ));
            }
            (SourceMode::PointInTime, Some(t)) => t,
            // Pinned to the time read now, so the data-as-of time is exact rather than
            // "latest"; a second before it (on a whole second), since RDS refuses a restore
            // time that is not before its latest restorable time.
            (SourceMode::LatestPoint, _) => just_before(window.latest),
            // The clone holds the data of the moment it is made: `CloneInstance::requested_at`.
            (SourceMode::FastClone, _) => window.latest,
            (mode, _) => {
                return Err(RefreshError::Internal(format!("no restore time for source.mode {:?}", mode.as_str())));
            }
        };
        Ok(RestoreSource {
            mode: source.mode,
            identifier: source.identifier.clone(),
            arn: window.arn,
            engine: window.engine,
            engine_version: window.engine_version,
            data_as_of,
            snapshot_type: source.mode.as_str().into(),
            source_type: source.kind,
            source_identifier: source.identifier.clone(),
            found_at: now,
            engine_instance_id: None,
            local_key: None,
            serverless_capacity: None,
            encrypted: window.kms_key_id.is_some(),
            kms_key_id: window.kms_key_id,
            storage_gb: window.storage_gb,
        })
    }

    /// A fast clone of another account's cluster shared through AWS RAM, from what its
    /// listing gives: its ARN (the clone names it), engine, version and whether it is
    /// encrypted; no restorable window and no key (Aurora User Guide, "Cross-account cloning
    /// with AWS RAM and Amazon Aurora"). Its data is of the moment the clone is made.
    async fn ram_clone_source(
        &self,
        source: &SourceSpec,
        account: &str,
        now: OffsetDateTime,
    ) -> Result<RestoreSource, RefreshError> {
        let cluster = self.ram_shared_cluster(account, &source.identifier).await?;
        let arn = cluster.db_cluster_arn().unwrap_or_default().to_string();
        Ok(RestoreSource {
            mode: SourceMode::FastClone,
            identifier: source.identifier.clone(),
            arn: arn.clone(),
            engine: cluster.engine().unwrap_or_default().to_string(),
            engine_version: cluster.engine_version().map(str::to_string),
            data_as_of: now,
            snapshot_type: SourceMode::FastClone.as_str().into(),
            source_type: SourceType::AuroraCluster,
            // Cloned by its ARN, which names the account that shares it.
            source_identifier: arn,
            found_at: now,
            kms_key_id: None,
            encrypted: cluster.storage_encrypted() == Some(true),
            serverless_capacity: None,
            engine_instance_id: None,
            local_key: None,
            storage_gb: None,
        })
    }

    /// Another account's Aurora cluster, as shared with this one through AWS RAM: listed by
    /// DescribeDBClusters with IncludeShared, its ARN naming that account. All that is read
    /// of it is that description.
    async fn ram_shared_cluster(&self, account: &str, identifier: &str) -> Result<DbCluster, RefreshError> {
        let mut pages = self.client.describe_db_clusters().include_shared(true).into_paginator().send();
        let wanted = format!(":{account}:cluster:{identifier}");
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("DescribeDBClusters", e))?;
            if let Some(found) =
                page.db_clusters().iter().find(|c| c.db_cluster_arn().is_some_and(|a| a.ends_with(&wanted)))
            {
                return Ok(found.clone());
            }
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

    /// The source's restorable window; an error naming `source.mode` when it has none.
    pub async fn restorable_window(&self, source: &SourceSpec) -> Result<RestorableWindow, RefreshError> {
        let not_found = || RefreshError::SourceNotFound {
            kind: source.kind.describe().into(),
            identifier: source.identifier.clone(),
        };
        let no_window = |why: &str| {
            RefreshError::at(
                "source.mode",
                format!(
                    "{:?} needs a restorable window, and {} {:?} has none ({why}); use \"snapshot\" or turn on automated backups",
                    source.mode.as_str(),
                    source.kind.describe(),
                    source.identifier
                ),
            )
        };
        match source.kind {
            SourceType::Rds => {
                let instance = self.instance(&source.identifier).await?.ok_or_else(not_found)?;
                let retention = instance.backup_retention_period().unwrap_or(0);
                if retention == 0 {
                    return Err(no_window("automated backups are off: backup retention 0 days"));
                }
                let latest = instance
                    .latest_restorable_time()
                    .and_then(crate::clock::from_aws)
                    .ok_or_else(|| no_window("no latest restorable time yet"))?;
                let earliest = match self.recorded_window_start(&source.identifier).await? {
                    Some(earliest) => earliest,
                    None => window_start(
                        latest,
                        retention,
                        instance.instance_create_time().and_then(crate::clock::from_aws),
                    ),
                };
                Ok(RestorableWindow {
                    arn: instance.db_instance_arn().unwrap_or_default().to_string(),
                    kms_key_id: instance
                        .kms_key_id()
                        .filter(|_| instance.storage_encrypted() == Some(true))
                        .map(str::to_string),
                    engine: instance.engine().unwrap_or_default().to_string(),
                    engine_version: instance.engine_version().map(str::to_string),
                    earliest,
                    latest,
                    storage_gb: instance.allocated_storage().filter(|gb| *gb > 0),
                })
            }
            SourceType::AuroraCluster => {
                let cluster = self.cluster(&source.identifier).await?.ok_or_else(not_found)?;
                let latest = cluster.latest_restorable_time().and_then(crate::clock::from_aws);
                let earliest = cluster.earliest_restorable_time().and_then(crate::clock::from_aws);
                let (Some(earliest), Some(latest)) = (earliest, latest) else {
                    return Err(no_window("no restorable times reported yet"));
                };
                Ok(RestorableWindow {
                    arn: cluster.db_cluster_arn().unwrap_or_default().to_string(),
                    kms_key_id: cluster
                        .kms_key_id()
                        .filter(|_| cluster.storage_encrypted() == Some(true))
                        .map(str::to_string),
                    engine: cluster.engine().unwrap_or_default().to_string(),
                    engine_version: cluster.engine_version().map(str::to_string),
                    earliest,
                    latest,
                    storage_gb: None,
                })
            }
        }
    }

    /// This account's clone of a cluster another account shares through RAM, if one of
    /// ours exists: AWS allows one cross-account clone of a shared cluster per account
    /// (Aurora User Guide, cross-account cloning, limitations). Ours carry the cluster's ARN
    /// ([`tags::CLONE_OF_KEY`]); a clone made by hand is refused by RDS at the restore.
    pub async fn clone_of_shared(&self, cluster_arn: &str) -> Result<Option<ManagedClone>, RefreshError> {
        Ok(self
            .managed_clones()
            .await?
            .into_iter()
            .find(|c| c.kind == CloneKind::Cluster && tags::get(&c.tags, tags::CLONE_OF_KEY) == Some(cluster_arn)))
    }

    /// The start of an instance's restore window as its automated-backup record gives it.
    pub(super) async fn recorded_window_start(&self, instance: &str) -> Result<Option<OffsetDateTime>, RefreshError> {
        let out = self.client.describe_db_instance_automated_backups().db_instance_identifier(instance).send().await;
        let out = match out {
            Ok(out) => out,
            // No automated-backup record: the documented rule (retention back from the
            // latest restorable time) decides, as when the record lists no window.
            Err(e)
                if has_code(&e, &["DBInstanceAutomatedBackupNotFound", "DBInstanceAutomatedBackupNotFoundFault"]) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(RefreshError::from_aws("DescribeDBInstanceAutomatedBackups", e)),
        };
        Ok(out
            .db_instance_automated_backups()
            .iter()
            .filter(|b| b.status() == Some("active"))
            .filter_map(|b| b.restore_window()?.earliest_time().and_then(crate::clock::from_aws))
            .min())
    }

    /// An Aurora cluster's Serverless v2 scaling configuration, if it has one.
    pub async fn serverless_capacity(&self, cluster: &str) -> Result<Option<ServerlessCapacity>, RefreshError> {
        let Some(found) = self.cluster(cluster).await? else { return Ok(None) };
        Ok(found.serverless_v2_scaling_configuration().and_then(|c| {
            Some(ServerlessCapacity { min_capacity: c.min_capacity()?, max_capacity: c.max_capacity()? })
        }))
    }

    /// The Serverless v2 capacity an engine version supports (DescribeDBEngineVersions'
    /// `ServerlessV2FeaturesSupport`): `None` when it supports none.
    pub async fn serverless_v2_range(
        &self,
        engine: &str,
        version: &str,
    ) -> Result<Option<ServerlessCapacity>, RefreshError> {
        let out = self
            .client
            .describe_db_engine_versions()
            .engine(engine)
            .engine_version(version)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("DescribeDBEngineVersions", e))?;
        Ok(out.db_engine_versions().iter().find_map(|v| {
            let support = v.serverless_v2_features_support()?;
            Some(ServerlessCapacity { min_capacity: support.min_capacity()?, max_capacity: support.max_capacity()? })
        }))
    }

    /// The explicit snapshot (which must be available) or the newest available automated one.
    pub async fn find_snapshot(
        &self,
        source: &SourceSpec,
        shared: Option<&[String]>,
        now: OffsetDateTime,
    ) -> Result<RestoreSource, RefreshError> {
        let candidate = match &source.snapshot_identifier {
            _ if source.account.is_some() => self.shared_snapshot(source, shared).await?,
            Some(id) => {
                let found = self.list_snapshots(source, Some(id)).await?;
                let snap = found
                    .into_iter()
                    .next()
                    .ok_or_else(|| RefreshError::SnapshotNotFound { identifier: id.clone() })?;
                if snap.status != "available" {
                    return Err(RefreshError::SnapshotNotAvailable { identifier: id.clone(), status: snap.status });
                }
                if snap.created_at.is_none() {
                    return Err(RefreshError::SnapshotNotAvailable {
                        identifier: id.clone(),
                        status: "without a creation time".into(),
                    });
                }
                // Another database's snapshot would be recorded as this source's data.
                if snap.source_id.as_deref() != Some(source.identifier.as_str()) {
                    return Err(RefreshError::at(
                        "source.snapshotIdentifier",
                        format!(
                            "snapshot {id:?} is of {} {:?}, not of source.identifier {:?}",
                            source.kind.describe(),
                            snap.source_id.as_deref().unwrap_or("(unknown)"),
                            source.identifier
                        ),
                    ));
                }
                snap
            }
            None => {
                let all = self.list_snapshots(source, None).await?;
                info!(count = all.len(), "listed automated snapshots");
                newest_available(all).ok_or_else(|| RefreshError::NoSnapshotAvailable {
                    kind: source.kind.describe().into(),
                    identifier: source.identifier.clone(),
                })?
            }
        };
        let data_as_of =
            candidate.data_at.ok_or_else(|| RefreshError::Internal("chosen snapshot has no creation time".into()))?;
        if let Some(max) = source.max_snapshot_age
            && too_old(data_as_of, max, now)
        {
            return Err(RefreshError::NoSuitableSnapshot(format!(
                "snapshot {} holds data from {}, older than source.maxSnapshotAge ({}){}",
                candidate.identifier,
                rfc3339(data_as_of),
                crate::duration::format(max),
                if source.account.is_some() { ": is production's account still sharing new snapshots?" } else { "" }
            )));
        }
        Ok(RestoreSource {
            mode: SourceMode::Snapshot,
            identifier: candidate.identifier,
            arn: candidate.arn,
            engine: candidate.engine,
            engine_version: candidate.engine_version,
            data_as_of,
            snapshot_type: candidate.snapshot_type,
            source_type: source.kind,
            source_identifier: source.identifier.clone(),
            found_at: now,
            engine_instance_id: None,
            local_key: None,
            serverless_capacity: None,
            encrypted: candidate.kms_key_id.is_some(),
            kms_key_id: candidate.kms_key_id,
            storage_gb: candidate.storage_gb,
        })
    }

    /// The snapshot production's account (`source.account`) shares with this one: the one
    /// `source.snapshotIdentifier` names (an ARN), else the one with the newest data among
    /// those the stack may restore (`allowed`, its `SharedSnapshotArns`, when known).
    async fn shared_snapshot(
        &self,
        source: &SourceSpec,
        allowed: Option<&[String]>,
    ) -> Result<Candidate, RefreshError> {
        let account = source.account.as_deref().unwrap_or_default();
        let (shared, outside): (Vec<Candidate>, Vec<Candidate>) = self
            .list_shared(source.kind)
            .await?
            .into_iter()
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

    /// Every snapshot shared with this account, of instances or of clusters, all pages.
    async fn list_shared(&self, kind: SourceType) -> Result<Vec<Candidate>, RefreshError> {
        let mut out = Vec::new();
        match kind {
            SourceType::Rds => {
                let req = self.client.describe_db_snapshots().snapshot_type("shared").include_shared(true);
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| RefreshError::from_aws("DescribeDBSnapshots", e))?;
                    out.extend(page.db_snapshots().iter().map(instance_candidate));
                }
            }
            SourceType::AuroraCluster => {
                let req = self.client.describe_db_cluster_snapshots().snapshot_type("shared").include_shared(true);
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| RefreshError::from_aws("DescribeDBClusterSnapshots", e))?;
                    out.extend(page.db_cluster_snapshots().iter().map(cluster_candidate));
                }
            }
        }
        Ok(out)
    }

    /// All pages: with an id, that one snapshot; without, the source's automated snapshots.
    pub(super) async fn list_snapshots(
        &self,
        source: &SourceSpec,
        id: Option<&str>,
    ) -> Result<Vec<Candidate>, RefreshError> {
        let mut out = Vec::new();
        match source.kind {
            SourceType::Rds => {
                let mut req = self.client.describe_db_snapshots();
                req = match id {
                    Some(id) => req.db_snapshot_identifier(id).set_snapshot_type(type_to_name(id)),
                    None => req.db_instance_identifier(&source.identifier).snapshot_type("automated"),
                };
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = match page {
                        Ok(p) => p,
                        Err(e) if has_code(&e, SNAPSHOT_NOT_FOUND) => return Ok(out),
                        Err(e) => return Err(RefreshError::from_aws("DescribeDBSnapshots", e)),
                    };
                    out.extend(page.db_snapshots().iter().map(instance_candidate));
                }
            }
            SourceType::AuroraCluster => {
                let mut req = self.client.describe_db_cluster_snapshots();
                req = match id {
                    Some(id) => req.db_cluster_snapshot_identifier(id).set_snapshot_type(type_to_name(id)),
                    None => req.db_cluster_identifier(&source.identifier).snapshot_type("automated"),
                };
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = match page {
                        Ok(p) => p,
                        Err(e) if has_code(&e, CLUSTER_SNAPSHOT_NOT_FOUND) => {
                            return Ok(out);
                        }
                        Err(e) => return Err(RefreshError::from_aws("DescribeDBClusterSnapshots", e)),
                    };
                    out.extend(page.db_cluster_snapshots().iter().map(cluster_candidate));
                }
            }
        }
        Ok(out)
    }
}

pub(super) fn instance_candidate(s: &aws_sdk_rds::types::DbSnapshot) -> Candidate {
    Candidate {
        identifier: s.db_snapshot_identifier().unwrap_or_default().to_string(),
        arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        created_at: s.snapshot_create_time().and_then(crate::clock::from_aws),
        data_at: data_time(
            s.snapshot_database_time().and_then(crate::clock::from_aws),
            s.original_snapshot_create_time().and_then(crate::clock::from_aws),
            s.snapshot_create_time().and_then(crate::clock::from_aws),
        ),
        source_id: s.db_instance_identifier().map(str::to_string),
        engine: s.engine().unwrap_or_default().to_string(),
        engine_version: s.engine_version().map(str::to_string),
        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
        kms_key_id: s.kms_key_id().filter(|_| s.encrypted() == Some(true)).map(str::to_string),
        storage_gb: s.allocated_storage().filter(|gb| *gb > 0),
    }
}

pub(super) fn cluster_candidate(s: &aws_sdk_rds::types::DbClusterSnapshot) -> Candidate {
    Candidate {
        identifier: s.db_cluster_snapshot_identifier().unwrap_or_default().to_string(),
        arn: s.db_cluster_snapshot_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        created_at: s.snapshot_create_time().and_then(crate::clock::from_aws),
        // A cluster snapshot has no original or database time to give: a copy the publisher
        // made says in a tag when its data is from; anything else, its own creation.
        data_at: tag_pairs(s.tag_list())
            .iter()
            .find(|(k, _)| k == tags::DATA_AS_OF_KEY)
            .and_then(|(_, v)| OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok())
            .or_else(|| s.snapshot_create_time().and_then(crate::clock::from_aws)),
        source_id: s.db_cluster_identifier().map(str::to_string),
        engine: s.engine().unwrap_or_default().to_string(),
        engine_version: s.engine_version().map(str::to_string),
        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
        kms_key_id: s.kms_key_id().filter(|_| s.storage_encrypted() == Some(true)).map(str::to_string),
        storage_gb: None,
    }
}

/// The snapshot type a describe by identifier must name: RDS finds an automated snapshot
/// (`rds:...`) by its identifier only with `SnapshotType=automated`.
fn type_to_name(identifier: &str) -> Option<String> {
    identifier.starts_with("rds:").then(|| "automated".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_automated_snapshot_is_described_with_its_type() {
        assert_eq!(type_to_name("rds:prod-2026-12-05-03-10").as_deref(), Some("automated"));
        assert_eq!(type_to_name("manual-before-upgrade"), None);
    }

    #[test]
    fn latest_point_is_a_whole_second_before_the_latest_restorable_time() {
        assert_eq!(just_before(datetime!(2026-11-22 08:55:10.750 UTC)), datetime!(2026-11-22 08:55:09 UTC));
        assert_eq!(just_before(datetime!(2026-11-22 08:55:10 UTC)), datetime!(2026-11-22 08:55:09 UTC));
    }

    #[test]
    fn an_unrecorded_window_starts_a_retention_period_back_but_not_before_the_instance() {
        let latest = datetime!(2026-11-22 08:55 UTC);
        assert_eq!(window_start(latest, 7, None), datetime!(2026-11-15 08:55 UTC));
        assert_eq!(window_start(latest, 7, Some(datetime!(2026-11-01 00:00 UTC))), datetime!(2026-11-15 08:55 UTC));
        assert_eq!(window_start(latest, 7, Some(datetime!(2026-11-20 12:00 UTC))), datetime!(2026-11-20 12:00 UTC));
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-05 06:00 UTC);

    fn cand(id: &str, status: &str, at: Option<OffsetDateTime>) -> Candidate {
        Candidate {
            identifier: id.into(),
            arn: format!("arn:{id}"),
            status: status.into(),
            created_at: at,
            data_at: at,
            source_id: Some("prod".into()),
            engine: "postgres".into(),
            engine_version: None,
            snapshot_type: "automated".into(),
            kms_key_id: None,
            storage_gb: None,
        }
    }

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
        let old = NOW - time::Duration::hours(26);
        assert!(!too_old(old, std::time::Duration::from_secs(26 * 3_600), NOW), "exactly the bound");
        assert!(too_old(old - time::Duration::seconds(1), std::time::Duration::from_secs(26 * 3_600), NOW));
    }

    #[test]
    fn a_snapshots_data_is_from_its_database_time_then_its_original_then_itself() {
        let (db, original, copy) =
            (datetime!(2026-11-20 02:59 UTC), datetime!(2026-11-20 03:00 UTC), datetime!(2026-11-22 09:00 UTC));
        assert_eq!(data_time(Some(db), Some(original), Some(copy)), Some(db));
        assert_eq!(data_time(None, Some(original), Some(copy)), Some(original), "a copy keeps the original's time");
        assert_eq!(data_time(None, None, Some(copy)), Some(copy));
        assert_eq!(data_time(None, None, None), None);
    }

    #[test]
    fn the_newest_data_wins_not_the_newest_copy() {
        let copy = |id: &str, made: OffsetDateTime, data: OffsetDateTime| Candidate {
            created_at: Some(made),
            data_at: Some(data),
            ..cand(id, "available", Some(made))
        };
        let picked = newest_available(vec![
            // Copied today, of last week's snapshot.
            copy("late-copy-of-old-data", datetime!(2026-12-05 05:00 UTC), datetime!(2026-11-28 03:00 UTC)),
            copy("early-copy-of-new-data", datetime!(2026-12-04 04:00 UTC), datetime!(2026-12-04 03:00 UTC)),
        ]);
        assert_eq!(picked.unwrap().identifier, "early-copy-of-new-data");
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

    #[test]
    fn newest_available_skips_unusable_snapshots() {
        let picked = newest_available(vec![
            cand("rds:a", "available", Some(datetime!(2026-11-20 03:00 UTC))),
            cand("rds:b", "creating", Some(datetime!(2026-11-22 03:00 UTC))),
            cand("rds:c", "available", Some(datetime!(2026-11-21 03:00 UTC))),
            cand("rds:d", "available", None),
        ]);
        assert_eq!(picked.unwrap().identifier, "rds:c");
        assert!(newest_available(vec![cand("x", "failed", Some(datetime!(2026-11-20 03:00 UTC)))]).is_none());
    }
}
