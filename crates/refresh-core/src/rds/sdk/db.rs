//! Instances and clusters: described, listed, restored and deleted.

use aws_sdk_rds::types::{DbCluster, DbInstance};

use super::*;
use crate::request::ServerlessCapacity;

/// An instance or a cluster, as described: what the rest of `rds/` reads of either.
#[derive(Debug, Clone, Default)]
pub(in crate::rds) struct Db {
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

impl Rds {
    pub(in crate::rds) async fn describe(&self, shape: Shape, id: &str) -> Result<Option<Db>, RefreshError> {
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
    pub(in crate::rds) async fn list(&self, shape: Shape) -> Result<Vec<Db>, RefreshError> {
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
    pub(in crate::rds) async fn shared_clusters(&self) -> Result<Vec<Db>, RefreshError> {
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
    pub(in crate::rds) async fn request_restore(
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
    pub(in crate::rds) async fn unprotect(&self, shape: Shape, id: &str) -> Result<Verdict, RefreshError> {
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
    pub(in crate::rds) async fn request_delete(&self, shape: Shape, id: &str) -> Result<Verdict, RefreshError> {
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
}

#[cfg(test)]
mod tests {
    use aws_sdk_rds::types::{DbClusterMember, Endpoint as Address, ServerlessV2ScalingConfigurationInfo};
    use aws_smithy_types::DateTime;

    use super::*;

    #[test]
    fn an_instance_is_read_with_its_key_only_when_encrypted() {
        let encrypted = DbInstance::builder()
            .db_instance_identifier("i")
            .db_instance_arn("arn:i")
            .db_instance_status("available")
            .instance_create_time(DateTime::from_secs(1_795_000_000))
            .kms_key_id("k")
            .storage_encrypted(true)
            .deletion_protection(true)
            .backup_retention_period(7)
            .db_cluster_identifier("c")
            .allocated_storage(100)
            .endpoint(Address::builder().address("h").port(5432).build())
            .build();
        let db = Db::instance(&encrypted);
        assert_eq!((db.identifier.as_str(), db.arn.as_str(), db.status.as_deref()), ("i", "arn:i", Some("available")));
        assert_eq!((db.kms_key_id.as_deref(), db.encrypted, db.deletion_protection), (Some("k"), true, true));
        assert_eq!((db.backup_retention_days, db.cluster.as_deref(), db.storage_gb), (7, Some("c"), Some(100)));
        assert_eq!(db.endpoint, Some(Endpoint { address: "h".into(), port: 5432 }));
        assert!(db.created_at.is_some());
        let plain = Db::instance(
            &DbInstance::builder()
                .kms_key_id("k")
                .storage_encrypted(false)
                .allocated_storage(0)
                .endpoint(Address::builder().address("h").port(70_000).build())
                .build(),
        );
        assert_eq!((plain.kms_key_id, plain.encrypted, plain.deletion_protection), (None, false, false));
        assert_eq!((plain.storage_gb, plain.endpoint, plain.backup_retention_days), (None, None, 0));
    }

    #[test]
    fn a_cluster_is_read_with_its_members_window_and_capacity() {
        let cluster = DbCluster::builder()
            .db_cluster_identifier("c")
            .status("available")
            .kms_key_id("k")
            .storage_encrypted(true)
            .earliest_restorable_time(DateTime::from_secs(1_795_000_000))
            .latest_restorable_time(DateTime::from_secs(1_795_003_600))
            .db_cluster_members(DbClusterMember::builder().db_instance_identifier("c-writer").build())
            .endpoint("c.cluster")
            .port(5432)
            .serverless_v2_scaling_configuration(
                ServerlessV2ScalingConfigurationInfo::builder().min_capacity(0.5).max_capacity(4.0).build(),
            )
            .build();
        let db = Db::cluster(&cluster);
        assert_eq!(
            (db.kms_key_id.as_deref(), db.encrypted, db.members.as_slice()),
            (Some("k"), true, &["c-writer".to_string()][..])
        );
        assert_eq!(db.endpoint, Some(Endpoint { address: "c.cluster".into(), port: 5432 }));
        assert_eq!(db.serverless, Some(ServerlessCapacity { min_capacity: 0.5, max_capacity: 4.0 }));
        assert!(db.earliest_restorable.is_some() && db.latest_restorable > db.earliest_restorable);
        let plain = Db::cluster(&DbCluster::builder().kms_key_id("k").endpoint("c.cluster").build());
        assert_eq!((plain.kms_key_id, plain.encrypted, plain.endpoint, plain.serverless), (None, false, None, None));
    }
}
