//! The one place that tells an RDS instance from an Aurora cluster. RDS names each call,
//! type and error code twice (`DescribeDBInstances`, `DescribeDBClusters`...); the rest of
//! `rds/` asks through these functions with a [`Shape`] and reads one [`Db`] or
//! [`Snapshot`] whatever the shape. A new kind of source is added here.

use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, DbInstance, DbSnapshot};

use super::*;
use crate::request::ServerlessCapacity;

/// An RDS instance, or an Aurora cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Instance,
    Cluster,
}

impl From<SourceType> for Shape {
    fn from(kind: SourceType) -> Self {
        match kind {
            SourceType::Rds => Self::Instance,
            SourceType::AuroraCluster => Self::Cluster,
        }
    }
}

impl Shape {
    pub(super) fn clone_kind(self) -> CloneKind {
        match self {
            Self::Instance => CloneKind::Instance,
            Self::Cluster => CloneKind::Cluster,
        }
    }

    fn not_found(self) -> &'static [&'static str] {
        match self {
            Self::Instance => &["DBInstanceNotFound", "DBInstanceNotFoundFault"],
            Self::Cluster => &["DBClusterNotFoundFault", "DBClusterNotFound"],
        }
    }

    fn exists(self) -> &'static [&'static str] {
        match self {
            Self::Instance => INSTANCE_EXISTS,
            Self::Cluster => &["DBClusterAlreadyExistsFault", "DBClusterAlreadyExists"],
        }
    }

    fn snapshot_not_found(self) -> &'static [&'static str] {
        match self {
            Self::Instance => &["DBSnapshotNotFound", "DBSnapshotNotFoundFault"],
            Self::Cluster => &["DBClusterSnapshotNotFoundFault", "DBClusterSnapshotNotFound"],
        }
    }

    fn snapshot_exists(self) -> &'static [&'static str] {
        match self {
            Self::Instance => &["DBSnapshotAlreadyExists", "DBSnapshotAlreadyExistsFault"],
            Self::Cluster => &["DBClusterSnapshotAlreadyExistsFault", "DBClusterSnapshotAlreadyExists"],
        }
    }
}

/// A create call's code when the name is taken: the Aurora writer is an instance.
pub(super) const INSTANCE_EXISTS: &[&str] = &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"];

/// Refused in the resource's current state: an instance, a cluster or a snapshot.
pub(super) const INVALID_STATE: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBClusterState",
    "InvalidDBClusterStateFault",
    "InvalidDBSnapshotState",
    "InvalidDBSnapshotStateFault",
    "InvalidDBClusterSnapshotStateFault",
];

/// An instance or a cluster, as described: what the rest of `rds/` reads of either.
#[derive(Debug, Clone, Default)]
pub(super) struct Db {
    pub identifier: String,
    pub arn: String,
    pub status: Option<String>,
    pub created_at: Option<OffsetDateTime>,
    pub tags: Vec<(String, String)>,
    pub engine: String,
    pub engine_version: Option<String>,
    /// Only for an encrypted one: a key id on an unencrypted one means nothing.
    pub kms_key_id: Option<String>,
    pub encrypted: bool,
    pub deletion_protection: bool,
    pub latest_restorable: Option<OffsetDateTime>,
    /// A cluster's; an instance's comes from its automated-backup record.
    pub earliest_restorable: Option<OffsetDateTime>,
    pub backup_retention_days: i32,
    /// An instance's Aurora cluster, when it is a member of one.
    pub cluster: Option<String>,
    /// A cluster's member instances.
    pub members: Vec<String>,
    /// An instance's storage, in GiB (Aurora's is not chosen).
    pub storage_gb: Option<i32>,
    pub storage_type: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub serverless: Option<ServerlessCapacity>,
}

fn endpoint(address: Option<&str>, port: Option<i32>) -> Option<Endpoint> {
    Some(Endpoint { address: address?.to_string(), port: u16::try_from(port?).ok()? })
}

impl Db {
    fn instance(i: &DbInstance) -> Self {
        let encrypted = i.storage_encrypted() == Some(true);
        Self {
            identifier: i.db_instance_identifier().unwrap_or_default().to_string(),
            arn: i.db_instance_arn().unwrap_or_default().to_string(),
            status: i.db_instance_status().map(str::to_string),
            created_at: i.instance_create_time().and_then(crate::clock::from_aws),
            tags: tag_pairs(i.tag_list()),
            engine: i.engine().unwrap_or_default().to_string(),
            engine_version: i.engine_version().map(str::to_string),
            kms_key_id: i.kms_key_id().filter(|_| encrypted).map(str::to_string),
            encrypted,
            deletion_protection: i.deletion_protection() == Some(true),
            latest_restorable: i.latest_restorable_time().and_then(crate::clock::from_aws),
            earliest_restorable: None,
            backup_retention_days: i.backup_retention_period().unwrap_or(0),
            cluster: i.db_cluster_identifier().map(str::to_string),
            members: Vec::new(),
            storage_gb: i.allocated_storage().filter(|gb| *gb > 0),
            storage_type: i.storage_type().map(str::to_string),
            endpoint: i.endpoint().and_then(|e| endpoint(e.address(), e.port())),
            serverless: None,
        }
    }

    fn cluster(c: &DbCluster) -> Self {
        let encrypted = c.storage_encrypted() == Some(true);
        Self {
            identifier: c.db_cluster_identifier().unwrap_or_default().to_string(),
            arn: c.db_cluster_arn().unwrap_or_default().to_string(),
            status: c.status().map(str::to_string),
            created_at: c.cluster_create_time().and_then(crate::clock::from_aws),
            tags: tag_pairs(c.tag_list()),
            engine: c.engine().unwrap_or_default().to_string(),
            engine_version: c.engine_version().map(str::to_string),
            kms_key_id: c.kms_key_id().filter(|_| encrypted).map(str::to_string),
            encrypted,
            deletion_protection: c.deletion_protection() == Some(true),
            latest_restorable: c.latest_restorable_time().and_then(crate::clock::from_aws),
            earliest_restorable: c.earliest_restorable_time().and_then(crate::clock::from_aws),
            backup_retention_days: c.backup_retention_period().unwrap_or(0),
            cluster: None,
            members: c
                .db_cluster_members()
                .iter()
                .filter_map(|m| m.db_instance_identifier().map(str::to_string))
                .collect(),
            storage_gb: None,
            storage_type: c.storage_type().map(str::to_string),
            endpoint: endpoint(c.endpoint(), c.port()),
            serverless: c.serverless_v2_scaling_configuration().and_then(|s| {
                Some(ServerlessCapacity { min_capacity: s.min_capacity()?, max_capacity: s.max_capacity()? })
            }),
        }
    }
}

/// A snapshot as listed, with its tags and (an instance snapshot's) copy progress.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub candidate: Candidate,
    pub tags: Vec<(String, String)>,
    pub percent: Option<i32>,
}

impl Snapshot {
    fn instance(s: &DbSnapshot) -> Self {
        let created = s.snapshot_create_time().and_then(crate::clock::from_aws);
        let candidate = Candidate {
            identifier: s.db_snapshot_identifier().unwrap_or_default().to_string(),
            arn: s.db_snapshot_arn().unwrap_or_default().to_string(),
            status: s.status().unwrap_or_default().to_string(),
            created_at: created,
            data_at: data_time(
                s.snapshot_database_time().and_then(crate::clock::from_aws),
                s.original_snapshot_create_time().and_then(crate::clock::from_aws),
                created,
            ),
            source_id: s.db_instance_identifier().map(str::to_string),
            engine: s.engine().unwrap_or_default().to_string(),
            engine_version: s.engine_version().map(str::to_string),
            snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
            kms_key_id: s.kms_key_id().filter(|_| s.encrypted() == Some(true)).map(str::to_string),
            storage_gb: s.allocated_storage().filter(|gb| *gb > 0),
        };
        Self { candidate, tags: tag_pairs(s.tag_list()), percent: s.percent_progress() }
    }

    fn cluster(s: &DbClusterSnapshot) -> Self {
        let tags = tag_pairs(s.tag_list());
        let created = s.snapshot_create_time().and_then(crate::clock::from_aws);
        let candidate = Candidate {
            identifier: s.db_cluster_snapshot_identifier().unwrap_or_default().to_string(),
            arn: s.db_cluster_snapshot_arn().unwrap_or_default().to_string(),
            status: s.status().unwrap_or_default().to_string(),
            created_at: created,
            data_at: cluster_data_time(&tags, created),
            source_id: s.db_cluster_identifier().map(str::to_string),
            engine: s.engine().unwrap_or_default().to_string(),
            engine_version: s.engine_version().map(str::to_string),
            snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
            kms_key_id: s.kms_key_id().filter(|_| s.storage_encrypted() == Some(true)).map(str::to_string),
            storage_gb: None,
        };
        Self { candidate, tags, percent: s.percent_progress() }
    }
}

/// When a cluster snapshot's data is from: it has no original or database time to give, so
/// a copy the publisher made says in a tag ([`tags::DATA_AS_OF_KEY`]); anything else, its
/// own creation.
pub(super) fn cluster_data_time(
    tag_list: &[(String, String)],
    created: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    tags::get(tag_list, tags::DATA_AS_OF_KEY)
        .and_then(|v| OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok())
        .or(created)
}

/// Which snapshots to list.
#[derive(Debug, Clone, Copy)]
pub(super) enum Listing<'a> {
    /// Every snapshot another account shares with this one.
    Shared,
    /// Of one type (`automated`, `manual`), of one instance or cluster or of all.
    Of { db: Option<&'a str>, snapshot_type: &'a str },
    /// The one of that identifier (or ARN).
    Named(&'a str),
}

/// The snapshot type a describe by identifier must name: RDS finds an automated snapshot
/// (`rds:...`) by its identifier only with `SnapshotType=automated`.
pub(super) fn type_to_name(identifier: &str) -> Option<String> {
    identifier.starts_with("rds:").then(|| "automated".to_string())
}

/// What a create or copy call came to.
pub(super) enum Created {
    /// RDS took the request; the status it gave, if any.
    Requested(Option<String>),
    /// A resource of that name exists already: an earlier attempt's, or not ours.
    AlreadyExists,
}

/// What a deletion step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Done,
    Gone,
    /// Refused in the resource's present state (or its protection still applying): later.
    NotYet,
}

fn verdict<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    not_found: &[&str],
    operation: &str,
) -> Result<Verdict, RefreshError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(Verdict::Done),
        Err(e) if has_code(&e, not_found) => Ok(Verdict::Gone),
        Err(e) if has_code(&e, INVALID_STATE) || protection_still_applies(&e) => Ok(Verdict::NotYet),
        Err(e) => Err(RefreshError::from_aws(operation, e)),
    }
}

/// Deletion protection just turned off can still refuse a delete for a moment.
fn protection_still_applies<E: ProvideErrorMetadata>(err: &E) -> bool {
    has_code(err, &["InvalidParameterCombination"])
        && err.message().is_some_and(|m| m.to_ascii_lowercase().contains("deletion protection"))
}

/// A call's answer, `None` when RDS says there is no such resource.
fn found<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    not_found: &[&str],
    operation: &str,
) -> Result<Option<O>, RefreshError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if has_code(&e, not_found) => Ok(None),
        Err(e) => Err(RefreshError::from_aws(operation, e)),
    }
}

fn created<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    status: impl FnOnce(&O) -> Option<String>,
    exists: &[&str],
    operation: &str,
) -> Result<Created, RefreshError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Created::Requested(status(&out))),
        Err(e) if has_code(&e, exists) => Ok(Created::AlreadyExists),
        Err(e) => Err(RefreshError::from_aws(operation, e)),
    }
}

impl Rds {
    pub(super) async fn describe(&self, shape: Shape, id: &str) -> Result<Option<Db>, RefreshError> {
        Ok(match shape {
            Shape::Instance => {
                let result = self.client.describe_db_instances().db_instance_identifier(id).send().await;
                found(result, shape.not_found(), "DescribeDBInstances")?
                    .and_then(|out| out.db_instances().first().map(Db::instance))
            }
            Shape::Cluster => {
                let result = self.client.describe_db_clusters().db_cluster_identifier(id).send().await;
                found(result, shape.not_found(), "DescribeDBClusters")?
                    .and_then(|out| out.db_clusters().first().map(Db::cluster))
            }
        })
    }

    /// Every instance (Aurora members among them) or every cluster of this account, all pages.
    pub(super) async fn list(&self, shape: Shape) -> Result<Vec<Db>, RefreshError> {
        let mut all = Vec::new();
        match shape {
            Shape::Instance => {
                let mut pages = self.client.describe_db_instances().into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| RefreshError::from_aws("DescribeDBInstances", e))?;
                    all.extend(page.db_instances().iter().map(Db::instance));
                }
            }
            Shape::Cluster => {
                let mut pages = self.client.describe_db_clusters().into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| RefreshError::from_aws("DescribeDBClusters", e))?;
                    all.extend(page.db_clusters().iter().map(Db::cluster));
                }
            }
        }
        Ok(all)
    }

    /// Every Aurora cluster another account shares with this one through AWS RAM
    /// (DescribeDBClusters with IncludeShared), all pages.
    pub(super) async fn shared_clusters(&self) -> Result<Vec<Db>, RefreshError> {
        let mut all = Vec::new();
        let mut pages = self.client.describe_db_clusters().include_shared(true).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("DescribeDBClusters", e))?;
            all.extend(page.db_clusters().iter().map(Db::cluster));
        }
        Ok(all)
    }

    /// Asks for the clone: from a snapshot, to a point in time, or (a cluster) as a
    /// copy-on-write clone. The same clone settings whatever it is made from.
    pub(super) async fn request_restore(
        &self,
        shape: Shape,
        plan: &ClonePlan<'_>,
        tag_list: &[(String, String)],
    ) -> Result<Created, RefreshError> {
        let (spec, from) = (plan.spec, plan.snapshot);
        let tag_list = Some(sdk_tags(tag_list));
        match (shape, from.mode) {
            (Shape::Instance, SourceMode::FastClone) => {
                Err(RefreshError::Internal("fast-clone exists only for Aurora clusters".into()))
            }
            (Shape::Instance, mode) => {
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
                            .set_iops(spec.iops.and_then(|i| i32::try_from(i).ok()))
                            .set_tags(tag_list)
                    };
                }
                let status = |i: Option<&DbInstance>| i.and_then(|i| i.db_instance_status()).map(str::to_string);
                if mode == SourceMode::Snapshot {
                    let request = self
                        .client
                        .restore_db_instance_from_db_snapshot()
                        .db_instance_identifier(&plan.name)
                        .db_snapshot_identifier(&from.identifier);
                    let result = with_clone_settings!(request).send().await;
                    created(result, |o| status(o.db_instance()), shape.exists(), "RestoreDBInstanceFromDBSnapshot")
                } else {
                    let request = self
                        .client
                        .restore_db_instance_to_point_in_time()
                        .target_db_instance_identifier(&plan.name)
                        .source_db_instance_identifier(&from.source_identifier)
                        .restore_time(crate::clock::to_aws(from.data_as_of));
                    let result = with_clone_settings!(request).send().await;
                    created(result, |o| status(o.db_instance()), shape.exists(), "RestoreDBInstanceToPointInTime")
                }
            }
            (Shape::Cluster, mode) => {
                let scaling = from.serverless_capacity.map(|c| {
                    aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder()
                        .min_capacity(c.min_capacity)
                        .max_capacity(c.max_capacity)
                        .build()
                });
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
                            .set_serverless_v2_scaling_configuration(scaling)
                            .set_tags(tag_list)
                    };
                }
                let status = |c: Option<&DbCluster>| c.and_then(|c| c.status()).map(str::to_string);
                if mode == SourceMode::Snapshot {
                    let request = self
                        .client
                        .restore_db_cluster_from_snapshot()
                        .db_cluster_identifier(&plan.name)
                        .snapshot_identifier(&from.identifier)
                        .engine(&from.engine)
                        .set_engine_version(from.engine_version.clone());
                    let result = with_clone_settings!(request).send().await;
                    return created(result, |o| status(o.db_cluster()), shape.exists(), "RestoreDBClusterFromSnapshot");
                }
                // Another account's cluster (by its ARN) is cloned under this account's key
                // when it is encrypted: RDS makes no unencrypted clone of it.
                let shared = from.source_identifier.starts_with("arn:");
                let request = self
                    .client
                    .restore_db_cluster_to_point_in_time()
                    .db_cluster_identifier(&plan.name)
                    .source_db_cluster_identifier(&from.source_identifier)
                    .set_kms_key_id(from.local_key.clone().filter(|_| shared));
                // A copy-on-write clone can only be of the latest point: its data is of the
                // moment it is made.
                let request = match mode {
                    SourceMode::FastClone => request.restore_type("copy-on-write").use_latest_restorable_time(true),
                    _ => request.restore_type("full-copy").restore_to_time(crate::clock::to_aws(from.data_as_of)),
                };
                let result = with_clone_settings!(request).send().await;
                created(result, |o| status(o.db_cluster()), shape.exists(), "RestoreDBClusterToPointInTime")
            }
        }
    }

    /// Turns deletion protection off, at once.
    pub(super) async fn unprotect(&self, shape: Shape, id: &str) -> Result<Verdict, RefreshError> {
        match shape {
            Shape::Instance => {
                let modify = self.client.modify_db_instance().db_instance_identifier(id).deletion_protection(false);
                verdict(modify.apply_immediately(true).send().await, shape.not_found(), "ModifyDBInstance")
            }
            Shape::Cluster => {
                let modify = self.client.modify_db_cluster().db_cluster_identifier(id).deletion_protection(false);
                verdict(modify.apply_immediately(true).send().await, shape.not_found(), "ModifyDBCluster")
            }
        }
    }

    /// Asks for the deletion, with no final snapshot and no backups kept.
    pub(super) async fn request_delete(&self, shape: Shape, id: &str) -> Result<Verdict, RefreshError> {
        match shape {
            Shape::Instance => {
                let delete = self.client.delete_db_instance().db_instance_identifier(id).skip_final_snapshot(true);
                verdict(delete.delete_automated_backups(true).send().await, shape.not_found(), "DeleteDBInstance")
            }
            Shape::Cluster => {
                let delete = self.client.delete_db_cluster().db_cluster_identifier(id).skip_final_snapshot(true);
                verdict(delete.delete_automated_backups(true).send().await, shape.not_found(), "DeleteDBCluster")
            }
        }
    }

    /// The snapshots `listing` names, all pages; none when RDS knows no such snapshot.
    pub(super) async fn snapshots(&self, shape: Shape, listing: Listing<'_>) -> Result<Vec<Snapshot>, RefreshError> {
        let mut all = Vec::new();
        match shape {
            Shape::Instance => {
                let request = self.client.describe_db_snapshots();
                let request = match listing {
                    Listing::Shared => request.snapshot_type("shared").include_shared(true),
                    Listing::Of { db, snapshot_type } => {
                        request.set_db_instance_identifier(db.map(str::to_string)).snapshot_type(snapshot_type)
                    }
                    Listing::Named(id) => request.db_snapshot_identifier(id).set_snapshot_type(type_to_name(id)),
                };
                let mut pages = request.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let Some(page) = found(page, shape.snapshot_not_found(), "DescribeDBSnapshots")? else { break };
                    all.extend(page.db_snapshots().iter().map(Snapshot::instance));
                }
            }
            Shape::Cluster => {
                let request = self.client.describe_db_cluster_snapshots();
                let request = match listing {
                    Listing::Shared => request.snapshot_type("shared").include_shared(true),
                    Listing::Of { db, snapshot_type } => {
                        request.set_db_cluster_identifier(db.map(str::to_string)).snapshot_type(snapshot_type)
                    }
                    Listing::Named(id) => {
                        request.db_cluster_snapshot_identifier(id).set_snapshot_type(type_to_name(id))
                    }
                };
                let mut pages = request.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let Some(page) = found(page, shape.snapshot_not_found(), "DescribeDBClusterSnapshots")? else {
                        break;
                    };
                    all.extend(page.db_cluster_snapshots().iter().map(Snapshot::cluster));
                }
            }
        }
        Ok(all)
    }

    /// One snapshot of this account by identifier.
    pub(super) async fn snapshot(&self, shape: Shape, id: &str) -> Result<Option<Snapshot>, RefreshError> {
        Ok(self.snapshots(shape, Listing::Named(id)).await?.into_iter().next())
    }

    /// Copies snapshot `from` to `to`, under `key` (none: as it is), with `tag_list` only.
    pub(super) async fn copy(
        &self,
        shape: Shape,
        from: &str,
        to: &str,
        key: Option<&str>,
        tag_list: &[(String, String)],
    ) -> Result<(Created, Option<Snapshot>), RefreshError> {
        let tag_list = Some(sdk_tags(tag_list));
        let key = key.map(str::to_string);
        let result = match shape {
            Shape::Instance => {
                let request = self.client.copy_db_snapshot().source_db_snapshot_identifier(from);
                let result = request.target_db_snapshot_identifier(to).set_kms_key_id(key);
                let result = result.copy_tags(false).set_tags(tag_list).send().await;
                let made = result.as_ref().ok().and_then(|o| o.db_snapshot()).map(Snapshot::instance);
                (created(result, |_| None, shape.snapshot_exists(), "CopyDBSnapshot")?, made)
            }
            Shape::Cluster => {
                let request = self.client.copy_db_cluster_snapshot().source_db_cluster_snapshot_identifier(from);
                let result = request.target_db_cluster_snapshot_identifier(to).set_kms_key_id(key);
                let result = result.copy_tags(false).set_tags(tag_list).send().await;
                let made = result.as_ref().ok().and_then(|o| o.db_cluster_snapshot()).map(Snapshot::cluster);
                (created(result, |_| None, shape.snapshot_exists(), "CopyDBClusterSnapshot")?, made)
            }
        };
        Ok(result)
    }

    pub(super) async fn delete_snapshot(&self, shape: Shape, id: &str) -> Result<Verdict, RefreshError> {
        match shape {
            Shape::Instance => {
                let result = self.client.delete_db_snapshot().db_snapshot_identifier(id).send().await;
                verdict(result, shape.snapshot_not_found(), "DeleteDBSnapshot")
            }
            Shape::Cluster => {
                let result = self.client.delete_db_cluster_snapshot().db_cluster_snapshot_identifier(id).send().await;
                verdict(result, shape.snapshot_not_found(), "DeleteDBClusterSnapshot")
            }
        }
    }

    /// The accounts a snapshot's `restore` attribute names (`all` = public).
    pub(super) async fn restore_accounts(&self, shape: Shape, id: &str) -> Result<Vec<String>, RefreshError> {
        // The two attribute types differ in the SDK; each is read as (name, values).
        let attributes: Vec<(Option<String>, Vec<String>)> = match shape {
            Shape::Instance => {
                let out = self.client.describe_db_snapshot_attributes().db_snapshot_identifier(id).send().await;
                let out = out.map_err(|e| RefreshError::from_aws("DescribeDBSnapshotAttributes", e))?;
                let listed = out.db_snapshot_attributes_result().map(|r| r.db_snapshot_attributes());
                let listed = listed.unwrap_or_default().iter();
                listed.map(|a| (a.attribute_name().map(str::to_string), a.attribute_values().to_vec())).collect()
            }
            Shape::Cluster => {
                let out = self.client.describe_db_cluster_snapshot_attributes();
                let out = out.db_cluster_snapshot_identifier(id).send().await;
                let out = out.map_err(|e| RefreshError::from_aws("DescribeDBClusterSnapshotAttributes", e))?;
                let listed = out.db_cluster_snapshot_attributes_result().map(|r| r.db_cluster_snapshot_attributes());
                let listed = listed.unwrap_or_default().iter();
                listed.map(|a| (a.attribute_name().map(str::to_string), a.attribute_values().to_vec())).collect()
            }
        };
        Ok(attributes.into_iter().filter(|(name, _)| name.as_deref() == Some("restore")).flat_map(|(_, v)| v).collect())
    }

    /// Adds and removes accounts of a snapshot's `restore` attribute.
    pub(super) async fn change_restore_accounts(
        &self,
        shape: Shape,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), RefreshError> {
        let (add, remove) = (opt_vec(add), opt_vec(remove));
        match shape {
            Shape::Instance => {
                let modify = self.client.modify_db_snapshot_attribute().db_snapshot_identifier(id);
                let modify = modify.attribute_name("restore").set_values_to_add(add).set_values_to_remove(remove);
                modify.send().await.map_err(|e| RefreshError::from_aws("ModifyDBSnapshotAttribute", e))?;
            }
            Shape::Cluster => {
                let modify = self.client.modify_db_cluster_snapshot_attribute().db_cluster_snapshot_identifier(id);
                let modify = modify.attribute_name("restore").set_values_to_add(add).set_values_to_remove(remove);
                modify.send().await.map_err(|e| RefreshError::from_aws("ModifyDBClusterSnapshotAttribute", e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_automated_snapshot_is_described_with_its_type() {
        assert_eq!(type_to_name("rds:prod-2026-12-05-03-10").as_deref(), Some("automated"));
        assert_eq!(type_to_name("manual-before-upgrade"), None);
    }
}
