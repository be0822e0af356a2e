//! The source: that it exists and is what the request says, and what the clone is
//! restored from (a snapshot, a time in the restorable window, or the live cluster).

use super::sdk::Shape;
use super::*;
use crate::request::ServerlessCapacity;

/// The whole second before `t`: a restore time RDS takes as "before the latest restorable time".
pub(crate) fn just_before(t: OffsetDateTime) -> OffsetDateTime {
    let whole = t.replace_nanosecond(0).unwrap_or(t);
    whole - time::Duration::seconds(1)
}

/// Where the restorable window of an RDS instance starts when AWS does not say (no
/// automated-backup record): its retention period back from the latest restorable time,
/// but never before the instance existed.
pub(crate) fn window_start(
    latest: OffsetDateTime,
    retention_days: i32,
    created: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let by_retention = latest - time::Duration::days(i64::from(retention_days));
    created.map_or(by_retention, |c| c.max(by_retention))
}

/// The times a source can be restored to, and what the restore needs to know of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RestorableWindow {
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
        let found = self.describe(Shape::from(source.kind), &source.identifier).await?.ok_or_else(not_found)?;
        if let Some(cluster) = found.cluster {
            return Err(RefreshError::at(
                "source.type",
                format!(
                    "{:?} is a member of Aurora cluster {cluster:?}: use source.type \"aurora-cluster\" with source.identifier {cluster:?}",
                    source.identifier
                ),
            ));
        }
        Ok(())
    }

    /// Whether a DB subnet group exists (the preflight of `dblab-refresh validate`).
    pub(crate) async fn check_subnet_group(&self, name: &str) -> Result<(), RefreshError> {
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
    pub(crate) async fn choose_source(
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

    /// The source's restorable window; an error naming `source.mode` when it has none.
    pub(crate) async fn restorable_window(&self, source: &SourceSpec) -> Result<RestorableWindow, RefreshError> {
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
        let shape = Shape::from(source.kind);
        let db = self.describe(shape, &source.identifier).await?.ok_or_else(not_found)?;
        // An instance's window starts where its automated-backup record says (else a
        // retention period back); a cluster says where its own starts.
        let (earliest, latest) = match shape {
            Shape::Instance => {
                if db.backup_retention_days == 0 {
                    return Err(no_window("automated backups are off: backup retention 0 days"));
                }
                let latest = db.latest_restorable.ok_or_else(|| no_window("no latest restorable time yet"))?;
                let earliest = match self.recorded_window_start(&source.identifier).await? {
                    Some(earliest) => earliest,
                    None => window_start(latest, db.backup_retention_days, db.created_at),
                };
                (earliest, latest)
            }
            Shape::Cluster => {
                let (Some(earliest), Some(latest)) = (db.earliest_restorable, db.latest_restorable) else {
                    return Err(no_window("no restorable times reported yet"));
                };
                (earliest, latest)
            }
        };
        Ok(RestorableWindow {
            arn: db.arn,
            kms_key_id: db.kms_key_id,
            engine: db.engine,
            engine_version: db.engine_version,
            earliest,
            latest,
            storage_gb: db.storage_gb,
        })
    }

    /// The start of an instance's restore window as its automated-backup record gives it.
    async fn recorded_window_start(&self, instance: &str) -> Result<Option<OffsetDateTime>, RefreshError> {
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
        Ok(self.describe(Shape::Cluster, cluster).await?.and_then(|found| found.serverless))
    }

    /// The Serverless v2 capacity an engine version supports (DescribeDBEngineVersions'
    /// `ServerlessV2FeaturesSupport`): `None` when it supports none.
    pub(crate) async fn serverless_v2_range(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

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
}
