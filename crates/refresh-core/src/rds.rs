//! RDS and Aurora operations: read the source, pick the snapshot, create, poll and delete
//! the clone. The production source is only ever DESCRIBED; every mutating call names a
//! clone identifier, and deletion first proves the resource is ours (`tags::check_managed`).

use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbInstance, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::error::RefreshError;
use crate::naming;
use crate::request::{CloneSpec, SourceMode, SourceSpec, SourceType};
use crate::run::{Clone, CloneKind, Endpoint, PollStatus, Snapshot, rfc3339};
use crate::tags;

pub struct Rds {
    client: Client,
}

/// Everything `restore` decided before calling RDS.
pub struct ClonePlan<'a> {
    pub name: String,
    pub spec: &'a CloneSpec,
    pub snapshot: &'a Snapshot,
    pub tags: Vec<(String, String)>,
    pub requested_at: OffsetDateTime,
    pub deadline: OffsetDateTime,
}

/// A snapshot as listed, before choosing.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub identifier: String,
    pub arn: String,
    pub status: String,
    pub created_at: Option<OffsetDateTime>,
    pub engine: String,
    pub engine_version: Option<String>,
    pub snapshot_type: String,
}

/// A clone found by the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedClone {
    pub identifier: String,
    pub kind: CloneKind,
    pub status: String,
    pub created_at: Option<OffsetDateTime>,
    pub tags: Vec<(String, String)>,
}

/// One deletion step: what was deleted by this call, and whether nothing is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteStep {
    pub deleted: Vec<String>,
    pub gone: bool,
}

/// Who may delete: `None` for the sweep, which decides from the tags itself.
#[derive(Debug, Clone, Copy)]
pub struct DeleteGuard<'a> {
    /// The execution whose clone this must be (name, and ARN when known).
    pub owner: Option<(&'a str, Option<&'a str>)>,
}

/// The newest available snapshot; ties go to the larger identifier, so the choice is stable.
pub fn newest_available(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates
        .into_iter()
        .filter(|c| c.status == "available" && c.created_at.is_some())
        .max_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.identifier.cmp(&b.identifier)))
}

/// What an RDS status means to the clone poller.
pub fn classify_status(status: &str) -> PollStatus {
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

/// Dump jobs for a clone class: half its vCPUs, at least one (docs/dblab-engine.md).
pub fn dump_parallel_jobs(instance_class: &str) -> u32 {
    let size = instance_class.rsplit('.').next().unwrap_or_default();
    let vcpus = match size {
        "micro" | "small" | "medium" | "large" => 2,
        "xlarge" => 4,
        s => s.strip_suffix("xlarge").and_then(|n| n.parse::<u32>().ok()).map_or(2, |n| n * 4),
    };
    (vcpus / 2).max(1)
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
    pub engine: String,
    pub engine_version: Option<String>,
    pub earliest: OffsetDateTime,
    pub latest: OffsetDateTime,
}

fn to_sdk_time(t: OffsetDateTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_nanos(t.unix_timestamp_nanos())
        .unwrap_or(aws_smithy_types::DateTime::from_secs(t.unix_timestamp()))
}

pub fn to_offset(dt: &aws_smithy_types::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(dt.as_nanos()).ok()
}

fn tag_pairs(list: &[Tag]) -> Vec<(String, String)> {
    list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn sdk_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn has_code<E: ProvideErrorMetadata>(err: &E, codes: &[&str]) -> bool {
    err.code().is_some_and(|c| codes.contains(&c))
}

const INSTANCE_NOT_FOUND: &[&str] = &["DBInstanceNotFound", "DBInstanceNotFoundFault"];
const CLUSTER_NOT_FOUND: &[&str] = &["DBClusterNotFoundFault", "DBClusterNotFound"];
const INSTANCE_EXISTS: &[&str] = &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"];
const CLUSTER_EXISTS: &[&str] = &["DBClusterAlreadyExistsFault", "DBClusterAlreadyExists"];
const INVALID_STATE: &[&str] =
    &["InvalidDBInstanceState", "InvalidDBInstanceStateFault", "InvalidDBClusterStateFault", "InvalidDBClusterState"];

fn opt_vec(v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() { None } else { Some(v.to_vec()) }
}

impl Rds {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn instance(&self, id: &str) -> Result<Option<DbInstance>, RefreshError> {
        match self.client.describe_db_instances().db_instance_identifier(id).send().await {
            Ok(out) => Ok(out.db_instances().first().cloned()),
            Err(e) if has_code(&e, INSTANCE_NOT_FOUND) => Ok(None),
            Err(e) => Err(RefreshError::from_aws("DescribeDBInstances", e)),
        }
    }

    async fn cluster(&self, id: &str) -> Result<Option<DbCluster>, RefreshError> {
        match self.client.describe_db_clusters().db_cluster_identifier(id).send().await {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e) if has_code(&e, CLUSTER_NOT_FOUND) => Ok(None),
            Err(e) => Err(RefreshError::from_aws("DescribeDBClusters", e)),
        }
    }

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

    /// What the clone is restored from, as `source.mode` says.
    pub async fn choose_source(&self, source: &SourceSpec, now: OffsetDateTime) -> Result<Snapshot, RefreshError> {
        if source.mode == SourceMode::Snapshot {
            return self.find_snapshot(source, now).await;
        }
        let window = self.restorable_window(source).await?;
        let data_as_of = match (source.mode, source.restore_time) {
            (SourceMode::PointInTime, Some(t)) if t < window.earliest || t > window.latest => {
                return Err(RefreshError::at(
                    "source.restoreTime",
                    format!(
                        "{} is outside the restorable window of {} {:?}: from {} to {}",
                        rfc3339(t),
                        source.kind.describe(),
                        source.identifier,
                        rfc3339(window.earliest),
                        rfc3339(window.latest)
                    ),
                ));
            }
            (SourceMode::PointInTime, Some(t)) => t,
            // Pinned to the time read now, so the data-as-of time is exact rather than "latest".
            (SourceMode::LatestPoint, _) => window.latest,
            // The clone holds the data of the moment it is made: `Clone::requested_at`.
            (SourceMode::FastClone, _) => window.latest,
            (mode, _) => {
                return Err(RefreshError::Internal(format!("no restore time for source.mode {:?}", mode.as_str())));
            }
        };
        Ok(Snapshot {
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
        })
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
                    .and_then(to_offset)
                    .ok_or_else(|| no_window("no latest restorable time yet"))?;
                let earliest = match self.recorded_window_start(&source.identifier).await? {
                    Some(earliest) => earliest,
                    None => window_start(latest, retention, instance.instance_create_time().and_then(to_offset)),
                };
                Ok(RestorableWindow {
                    arn: instance.db_instance_arn().unwrap_or_default().to_string(),
                    engine: instance.engine().unwrap_or_default().to_string(),
                    engine_version: instance.engine_version().map(str::to_string),
                    earliest,
                    latest,
                })
            }
            SourceType::AuroraCluster => {
                let cluster = self.cluster(&source.identifier).await?.ok_or_else(not_found)?;
                let latest = cluster.latest_restorable_time().and_then(to_offset);
                let earliest = cluster.earliest_restorable_time().and_then(to_offset);
                let (Some(earliest), Some(latest)) = (earliest, latest) else {
                    return Err(no_window("no restorable times reported yet"));
                };
                Ok(RestorableWindow {
                    arn: cluster.db_cluster_arn().unwrap_or_default().to_string(),
                    engine: cluster.engine().unwrap_or_default().to_string(),
                    engine_version: cluster.engine_version().map(str::to_string),
                    earliest,
                    latest,
                })
            }
        }
    }

    /// The start of an instance's restore window as its automated-backup record gives it.
    async fn recorded_window_start(&self, instance: &str) -> Result<Option<OffsetDateTime>, RefreshError> {
        let out = self
            .client
            .describe_db_instance_automated_backups()
            .db_instance_identifier(instance)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("DescribeDBInstanceAutomatedBackups", e))?;
        Ok(out
            .db_instance_automated_backups()
            .iter()
            .filter(|b| b.status() == Some("active"))
            .filter_map(|b| b.restore_window()?.earliest_time().and_then(to_offset))
            .min())
    }

    /// The explicit snapshot (which must be available) or the newest available automated one.
    pub async fn find_snapshot(&self, source: &SourceSpec, now: OffsetDateTime) -> Result<Snapshot, RefreshError> {
        let candidate = match &source.snapshot_identifier {
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
        let created_at = candidate
            .created_at
            .ok_or_else(|| RefreshError::Internal("chosen snapshot has no creation time".into()))?;
        Ok(Snapshot {
            mode: SourceMode::Snapshot,
            identifier: candidate.identifier,
            arn: candidate.arn,
            engine: candidate.engine,
            engine_version: candidate.engine_version,
            data_as_of: created_at,
            snapshot_type: candidate.snapshot_type,
            source_type: source.kind,
            source_identifier: source.identifier.clone(),
            found_at: now,
        })
    }

    /// All pages: with an id, that one snapshot; without, the source's automated snapshots.
    async fn list_snapshots(&self, source: &SourceSpec, id: Option<&str>) -> Result<Vec<Candidate>, RefreshError> {
        let mut out = Vec::new();
        match source.kind {
            SourceType::Rds => {
                let mut req = self.client.describe_db_snapshots();
                req = match id {
                    Some(id) => req.db_snapshot_identifier(id),
                    None => req.db_instance_identifier(&source.identifier).snapshot_type("automated"),
                };
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = match page {
                        Ok(p) => p,
                        Err(e) if has_code(&e, &["DBSnapshotNotFound", "DBSnapshotNotFoundFault"]) => return Ok(out),
                        Err(e) => return Err(RefreshError::from_aws("DescribeDBSnapshots", e)),
                    };
                    out.extend(page.db_snapshots().iter().map(|s| Candidate {
                        identifier: s.db_snapshot_identifier().unwrap_or_default().to_string(),
                        arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
                        status: s.status().unwrap_or_default().to_string(),
                        created_at: s.snapshot_create_time().and_then(to_offset),
                        engine: s.engine().unwrap_or_default().to_string(),
                        engine_version: s.engine_version().map(str::to_string),
                        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
                    }));
                }
            }
            SourceType::AuroraCluster => {
                let mut req = self.client.describe_db_cluster_snapshots();
                req = match id {
                    Some(id) => req.db_cluster_snapshot_identifier(id),
                    None => req.db_cluster_identifier(&source.identifier).snapshot_type("automated"),
                };
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = match page {
                        Ok(p) => p,
                        Err(e) if has_code(&e, &["DBClusterSnapshotNotFoundFault", "DBClusterSnapshotNotFound"]) => {
                            return Ok(out);
                        }
                        Err(e) => return Err(RefreshError::from_aws("DescribeDBClusterSnapshots", e)),
                    };
                    out.extend(page.db_cluster_snapshots().iter().map(|s| Candidate {
                        identifier: s.db_cluster_snapshot_identifier().unwrap_or_default().to_string(),
                        arn: s.db_cluster_snapshot_arn().unwrap_or_default().to_string(),
                        status: s.status().unwrap_or_default().to_string(),
                        created_at: s.snapshot_create_time().and_then(to_offset),
                        engine: s.engine().unwrap_or_default().to_string(),
                        engine_version: s.engine_version().map(str::to_string),
                        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
                    }));
                }
            }
        }
        Ok(out)
    }

    /// Creates the clone, or adopts the one this execution already created (a retry).
    pub async fn restore(&self, plan: &ClonePlan<'_>) -> Result<Clone, RefreshError> {
        let kind = match plan.snapshot.source_type {
            SourceType::Rds => CloneKind::Instance,
            SourceType::AuroraCluster => CloneKind::Cluster,
        };
        let status = match kind {
            CloneKind::Instance => self.restore_instance(plan).await?,
            CloneKind::Cluster => self.restore_cluster(plan).await?,
        };
        let clone = Clone {
            identifier: plan.name.clone(),
            kind,
            writer_instance_id: (kind == CloneKind::Cluster).then(|| naming::writer_instance_name(&plan.name)),
            instance_class: plan.spec.instance_class.clone(),
            engine: plan.snapshot.engine.clone(),
            requested_at: plan.requested_at,
            deadline: plan.deadline,
            status: PollStatus::Pending,
            rds_status: match kind {
                CloneKind::Instance => status.clone(),
                CloneKind::Cluster => format!("cluster:{status}"),
            },
            endpoint: None,
            checks: 0,
            ready_at: None,
        };
        if kind == CloneKind::Cluster && status == "available" {
            // The cluster may take its writer at once; otherwise check-available adds it.
            self.ensure_writer(&clone, plan.spec, &plan.tags).await?;
        }
        Ok(clone)
    }

    async fn restore_instance(&self, plan: &ClonePlan<'_>) -> Result<String, RefreshError> {
        // Look first: a retried restore must find its clone whatever error a second create
        // would give; AlreadyExists below still covers a race.
        if let Some(existing) = self.instance(&plan.name).await? {
            self.adopt(&plan.name, &tag_pairs(existing.tag_list()), &plan.tags)?;
            return Ok(existing.db_instance_status().unwrap_or("creating").to_string());
        }
        let spec = plan.spec;
        let from = plan.snapshot;
        // The same clone settings whatever it is restored from; only the request type differs.
        macro_rules! with_clone_settings {
            ($request:expr) => {
                $request
                    .db_instance_class(&spec.instance_class)
                    .publicly_accessible(spec.publicly_accessible)
                    .deletion_protection(spec.deletion_protection)
                    .multi_az(false)
                    .auto_minor_version_upgrade(false)
                    .copy_tags_to_snapshot(false)
                    .enable_iam_database_authentication(spec.enable_iam_auth)
                    .set_db_subnet_group_name(spec.subnet_group.clone())
                    .set_vpc_security_group_ids(opt_vec(&spec.security_groups))
                    .set_db_parameter_group_name(spec.parameter_group.clone())
                    .set_option_group_name(spec.option_group.clone())
                    .set_port(spec.port.map(i32::from))
                    .set_storage_type(spec.storage_type.clone())
                    .set_tags(Some(sdk_tags(&plan.tags)))
            };
        }
        let created = match from.mode {
            SourceMode::Snapshot => {
                let request = self
                    .client
                    .restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(&plan.name)
                    .db_snapshot_identifier(&from.identifier);
                match with_clone_settings!(request).send().await {
                    Ok(out) => Ok(out.db_instance().and_then(|i| i.db_instance_status()).map(str::to_string)),
                    Err(e) if has_code(&e, INSTANCE_EXISTS) => Err(None),
                    Err(e) => Err(Some(RefreshError::from_aws("RestoreDBInstanceFromDBSnapshot", e))),
                }
            }
            SourceMode::LatestPoint | SourceMode::PointInTime => {
                let request = self
                    .client
                    .restore_db_instance_to_point_in_time()
                    .target_db_instance_identifier(&plan.name)
                    .source_db_instance_identifier(&from.source_identifier)
                    .restore_time(to_sdk_time(from.data_as_of));
                match with_clone_settings!(request).send().await {
                    Ok(out) => Ok(out.db_instance().and_then(|i| i.db_instance_status()).map(str::to_string)),
                    Err(e) if has_code(&e, INSTANCE_EXISTS) => Err(None),
                    Err(e) => Err(Some(RefreshError::from_aws("RestoreDBInstanceToPointInTime", e))),
                }
            }
            SourceMode::FastClone => {
                return Err(RefreshError::Internal("fast-clone exists only for Aurora clusters".into()));
            }
        };
        match created {
            Ok(status) => {
                info!(clone = %plan.name, from = %from.describe(), "restore requested");
                Ok(status.unwrap_or_else(|| "creating".into()))
            }
            // A race with an earlier attempt of this restore: adopt what it made.
            Err(None) => {
                let existing = self.instance(&plan.name).await?.ok_or_else(|| {
                    RefreshError::CloneConflict(format!("{} was reported to exist but cannot be described", plan.name))
                })?;
                self.adopt(&plan.name, &tag_pairs(existing.tag_list()), &plan.tags)?;
                Ok(existing.db_instance_status().unwrap_or("creating").to_string())
            }
            Err(Some(e)) => Err(e),
        }
    }

    async fn restore_cluster(&self, plan: &ClonePlan<'_>) -> Result<String, RefreshError> {
        if let Some(existing) = self.cluster(&plan.name).await? {
            self.adopt(&plan.name, &tag_pairs(existing.tag_list()), &plan.tags)?;
            return Ok(existing.status().unwrap_or("creating").to_string());
        }
        let spec = plan.spec;
        let from = plan.snapshot;
        macro_rules! with_clone_settings {
            ($request:expr) => {
                $request
                    .deletion_protection(spec.deletion_protection)
                    .enable_iam_database_authentication(spec.enable_iam_auth)
                    .copy_tags_to_snapshot(false)
                    .set_db_subnet_group_name(spec.subnet_group.clone())
                    .set_vpc_security_group_ids(opt_vec(&spec.security_groups))
                    .set_db_cluster_parameter_group_name(spec.cluster_parameter_group.clone())
                    .set_port(spec.port.map(i32::from))
                    .set_storage_type(spec.storage_type.clone())
                    .set_tags(Some(sdk_tags(&plan.tags)))
            };
        }
        let created = if from.mode == SourceMode::Snapshot {
            let request = self
                .client
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(&plan.name)
                .snapshot_identifier(&from.identifier)
                .engine(&from.engine)
                .set_engine_version(from.engine_version.clone());
            match with_clone_settings!(request).send().await {
                Ok(out) => Ok(out.db_cluster().and_then(|c| c.status()).map(str::to_string)),
                Err(e) if has_code(&e, CLUSTER_EXISTS) => Err(None),
                Err(e) => Err(Some(RefreshError::from_aws("RestoreDBClusterFromSnapshot", e))),
            }
        } else {
            let request = self
                .client
                .restore_db_cluster_to_point_in_time()
                .db_cluster_identifier(&plan.name)
                .source_db_cluster_identifier(&from.source_identifier);
            // A copy-on-write clone can only be of the latest point: its data is of the moment it is made.
            let request = match from.mode {
                SourceMode::FastClone => request.restore_type("copy-on-write").use_latest_restorable_time(true),
                _ => request.restore_type("full-copy").restore_to_time(to_sdk_time(from.data_as_of)),
            };
            match with_clone_settings!(request).send().await {
                Ok(out) => Ok(out.db_cluster().and_then(|c| c.status()).map(str::to_string)),
                Err(e) if has_code(&e, CLUSTER_EXISTS) => Err(None),
                Err(e) => Err(Some(RefreshError::from_aws("RestoreDBClusterToPointInTime", e))),
            }
        };
        match created {
            Ok(status) => {
                info!(clone = %plan.name, from = %from.describe(), "cluster restore requested");
                Ok(status.unwrap_or_else(|| "creating".into()))
            }
            Err(None) => {
                let existing = self.cluster(&plan.name).await?.ok_or_else(|| {
                    RefreshError::CloneConflict(format!("{} was reported to exist but cannot be described", plan.name))
                })?;
                self.adopt(&plan.name, &tag_pairs(existing.tag_list()), &plan.tags)?;
                Ok(existing.status().unwrap_or("creating").to_string())
            }
            Err(Some(e)) => Err(e),
        }
    }

    /// An existing resource under our name is reused only if this execution made it:
    /// `ours` are the tags this execution writes.
    fn adopt(&self, id: &str, existing: &[(String, String)], ours: &[(String, String)]) -> Result<(), RefreshError> {
        tags::check_managed(id, existing)
            .map_err(|why| RefreshError::CloneConflict(format!("{id} already exists and {why}")))?;
        let name = tags::get(ours, tags::EXECUTION_KEY).unwrap_or_default();
        if tags::made_by(existing, name, tags::get(ours, tags::EXECUTION_ARN_KEY)) {
            info!(clone = %id, "clone already created by this execution; reusing it");
            return Ok(());
        }
        let owner = tags::get(existing, tags::EXECUTION_ARN_KEY).or(tags::get(existing, tags::EXECUTION_KEY));
        Err(RefreshError::CloneConflict(format!(
            "{id} already exists and belongs to execution {:?}",
            owner.unwrap_or("unknown")
        )))
    }

    /// Creates the Aurora writer instance unless this execution already did.
    async fn ensure_writer(
        &self,
        clone: &Clone,
        spec: &CloneSpec,
        tag_list: &[(String, String)],
    ) -> Result<(), RefreshError> {
        let writer = clone.instance_id();
        let result = self
            .client
            .create_db_instance()
            .db_instance_identifier(writer)
            .db_cluster_identifier(&clone.identifier)
            .engine(&clone.engine)
            .db_instance_class(&spec.instance_class)
            .publicly_accessible(spec.publicly_accessible)
            .auto_minor_version_upgrade(false)
            .set_db_parameter_group_name(spec.parameter_group.clone())
            .set_tags(Some(sdk_tags(tag_list)))
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(clone = %clone.identifier, writer, "writer instance requested");
                Ok(())
            }
            Err(e) if has_code(&e, INSTANCE_EXISTS) => {
                let existing = self.instance(writer).await?.ok_or_else(|| {
                    RefreshError::CloneConflict(format!("{writer} was reported to exist but cannot be described"))
                })?;
                self.adopt(writer, &tag_pairs(existing.tag_list()), tag_list)
            }
            Err(e) if has_code(&e, INVALID_STATE) => Ok(()), // cluster not ready yet: next poll
            Err(e) => Err(RefreshError::from_aws("CreateDBInstance", e)),
        }
    }

    /// One poll of the clone: the next state of `clone`.
    pub async fn check(&self, clone: &Clone, spec: &CloneSpec, now: OffsetDateTime) -> Result<Clone, RefreshError> {
        let mut next = clone.clone();
        next.checks += 1;
        match clone.kind {
            CloneKind::Instance => match self.instance(&clone.identifier).await? {
                None => next.rds_status = "not-found".into(),
                Some(instance) => {
                    next.rds_status = instance.db_instance_status().unwrap_or("unknown").to_string();
                    next.endpoint = instance.endpoint().and_then(|e| {
                        Some(Endpoint { address: e.address()?.to_string(), port: u16::try_from(e.port()?).ok()? })
                    });
                }
            },
            CloneKind::Cluster => match self.cluster(&clone.identifier).await? {
                None => next.rds_status = "cluster:not-found".into(),
                Some(cluster) => {
                    let cluster_status = cluster.status().unwrap_or("unknown").to_string();
                    next.rds_status = format!("cluster:{cluster_status}");
                    if cluster_status == "available" {
                        match self.instance(clone.instance_id()).await? {
                            None => {
                                let tag_list = tag_pairs(cluster.tag_list());
                                self.ensure_writer(clone, spec, &tag_list).await?;
                                next.rds_status = "writer:creating".into();
                            }
                            Some(writer) => {
                                next.rds_status = writer.db_instance_status().unwrap_or("unknown").to_string();
                                next.endpoint = cluster.endpoint().zip(cluster.port()).and_then(|(address, port)| {
                                    Some(Endpoint { address: address.to_string(), port: u16::try_from(port).ok()? })
                                });
                            }
                        }
                    }
                }
            },
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

    /// One step of deleting a clone; `gone` once nothing of it is left.
    pub async fn delete(
        &self,
        identifier: &str,
        kind: CloneKind,
        guard: DeleteGuard<'_>,
    ) -> Result<DeleteStep, RefreshError> {
        let mut deleted = Vec::new();
        let gone = match kind {
            CloneKind::Instance => self.delete_instance(identifier, guard, &mut deleted).await?,
            CloneKind::Cluster => self.delete_cluster(identifier, guard, &mut deleted).await?,
        };
        Ok(DeleteStep { deleted, gone })
    }

    fn guard(&self, id: &str, tag_list: &[(String, String)], guard: DeleteGuard<'_>) -> Result<(), RefreshError> {
        tags::check_managed(id, tag_list)
            .map_err(|reason| RefreshError::DeleteRefused { identifier: id.into(), reason })?;
        if let Some((name, arn)) = guard.owner
            && !tags::made_by(tag_list, name, arn)
        {
            let owner = tags::get(tag_list, tags::EXECUTION_ARN_KEY).or(tags::get(tag_list, tags::EXECUTION_KEY));
            return Err(RefreshError::DeleteRefused {
                identifier: id.into(),
                reason: format!("it belongs to execution {:?}, not {name:?}", owner.unwrap_or("unknown")),
            });
        }
        Ok(())
    }

    /// Returns whether the instance is gone.
    async fn delete_instance(
        &self,
        id: &str,
        guard: DeleteGuard<'_>,
        deleted: &mut Vec<String>,
    ) -> Result<bool, RefreshError> {
        let Some(instance) = self.instance(id).await? else { return Ok(true) };
        self.guard(id, &tag_pairs(instance.tag_list()), guard)?;
        if instance.db_instance_status() == Some("deleting") {
            return Ok(false);
        }
        if instance.deletion_protection() == Some(true) {
            let modified = self
                .client
                .modify_db_instance()
                .db_instance_identifier(id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await;
            match modified {
                Ok(_) => info!(instance = id, "deletion protection turned off"),
                Err(e) if has_code(&e, INVALID_STATE) => return Ok(false),
                Err(e) if has_code(&e, INSTANCE_NOT_FOUND) => return Ok(true),
                Err(e) => return Err(RefreshError::from_aws("ModifyDBInstance", e)),
            }
        }
        let result = self
            .client
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(instance = id, "instance deletion requested");
                deleted.push(id.to_string());
            }
            Err(e) if has_code(&e, INSTANCE_NOT_FOUND) => return Ok(true),
            Err(e) if has_code(&e, INVALID_STATE) => return Ok(false),
            Err(e) => return Err(RefreshError::from_aws("DeleteDBInstance", e)),
        }
        Ok(self.instance(id).await?.is_none())
    }

    /// Member instances first; the cluster once none is left (RDS refuses otherwise).
    async fn delete_cluster(
        &self,
        id: &str,
        guard: DeleteGuard<'_>,
        deleted: &mut Vec<String>,
    ) -> Result<bool, RefreshError> {
        let Some(cluster) = self.cluster(id).await? else {
            // A writer whose cluster restore failed may still exist on its own.
            let writer = naming::writer_instance_name(id);
            return self.delete_instance(&writer, guard, deleted).await;
        };
        self.guard(id, &tag_pairs(cluster.tag_list()), guard)?;
        let members: Vec<String> = cluster
            .db_cluster_members()
            .iter()
            .filter_map(|m| m.db_instance_identifier().map(str::to_string))
            .collect();
        let mut remaining = false;
        for member in &members {
            if !self.delete_instance(member, guard, deleted).await? {
                remaining = true;
            }
        }
        if remaining {
            return Ok(false);
        }
        if cluster.status() == Some("deleting") {
            return Ok(false);
        }
        if cluster.deletion_protection() == Some(true) {
            let modified = self
                .client
                .modify_db_cluster()
                .db_cluster_identifier(id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await;
            match modified {
                Ok(_) => info!(cluster = id, "deletion protection turned off"),
                Err(e) if has_code(&e, INVALID_STATE) => return Ok(false),
                Err(e) if has_code(&e, CLUSTER_NOT_FOUND) => return Ok(true),
                Err(e) => return Err(RefreshError::from_aws("ModifyDBCluster", e)),
            }
        }
        let result = self
            .client
            .delete_db_cluster()
            .db_cluster_identifier(id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(cluster = id, "cluster deletion requested");
                deleted.push(id.to_string());
            }
            Err(e) if has_code(&e, CLUSTER_NOT_FOUND) => return Ok(true),
            // Members still detaching: try again on the next poll.
            Err(e) if has_code(&e, INVALID_STATE) => {
                warn!(cluster = id, "cluster not deletable yet");
                return Ok(false);
            }
            Err(e) => return Err(RefreshError::from_aws("DeleteDBCluster", e)),
        }
        Ok(self.cluster(id).await?.is_none())
    }

    /// Every clone this orchestrator manages, across all pages: standalone instances and
    /// clusters (their writer instances are deleted with the cluster).
    pub async fn managed_clones(&self) -> Result<Vec<ManagedClone>, RefreshError> {
        let mut found = Vec::new();
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("DescribeDBInstances", e))?;
            for i in page.db_instances() {
                let id = i.db_instance_identifier().unwrap_or_default();
                let tag_list = tag_pairs(i.tag_list());
                if i.db_cluster_identifier().is_none() && tags::check_managed(id, &tag_list).is_ok() {
                    found.push(ManagedClone {
                        identifier: id.to_string(),
                        kind: CloneKind::Instance,
                        status: i.db_instance_status().unwrap_or_default().to_string(),
                        created_at: i.instance_create_time().and_then(to_offset),
                        tags: tag_list,
                    });
                }
            }
        }
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("DescribeDBClusters", e))?;
            for c in page.db_clusters() {
                let id = c.db_cluster_identifier().unwrap_or_default();
                let tag_list = tag_pairs(c.tag_list());
                if tags::check_managed(id, &tag_list).is_ok() {
                    found.push(ManagedClone {
                        identifier: id.to_string(),
                        kind: CloneKind::Cluster,
                        status: c.status().unwrap_or_default().to_string(),
                        created_at: c.cluster_create_time().and_then(to_offset),
                        tags: tag_list,
                    });
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_unrecorded_window_starts_a_retention_period_back_but_not_before_the_instance() {
        let latest = datetime!(2026-11-22 08:55 UTC);
        assert_eq!(window_start(latest, 7, None), datetime!(2026-11-15 08:55 UTC));
        assert_eq!(window_start(latest, 7, Some(datetime!(2026-11-01 00:00 UTC))), datetime!(2026-11-15 08:55 UTC));
        assert_eq!(window_start(latest, 7, Some(datetime!(2026-11-20 12:00 UTC))), datetime!(2026-11-20 12:00 UTC));
    }

    fn cand(id: &str, status: &str, at: Option<OffsetDateTime>) -> Candidate {
        Candidate {
            identifier: id.into(),
            arn: format!("arn:{id}"),
            status: status.into(),
            created_at: at,
            engine: "postgres".into(),
            engine_version: None,
            snapshot_type: "automated".into(),
        }
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

    #[test]
    fn dump_jobs_follow_the_class() {
        assert_eq!(dump_parallel_jobs("db.t3.medium"), 1);
        assert_eq!(dump_parallel_jobs("db.r6g.large"), 1);
        assert_eq!(dump_parallel_jobs("db.r6g.xlarge"), 2);
        assert_eq!(dump_parallel_jobs("db.r6g.2xlarge"), 4);
        assert_eq!(dump_parallel_jobs("db.r6g.16xlarge"), 32);
        assert_eq!(dump_parallel_jobs("db.serverless"), 1);
    }
}
