//! Snapshots of instances and clusters: listed, copied, deleted and shared.

use aws_sdk_rds::types::{DbClusterSnapshot, DbSnapshot};

use super::*;

/// A snapshot as listed, with its tags and (an instance snapshot's) copy progress.
#[derive(Debug, Clone)]
pub(in crate::rds) struct Snapshot {
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
fn cluster_data_time(tag_list: &[(String, String)], created: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    tags::get(tag_list, tags::DATA_AS_OF_KEY)
        .and_then(|v| OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok())
        .or(created)
}

/// Which snapshots to list.
#[derive(Debug, Clone, Copy)]
pub(in crate::rds) enum Listing<'a> {
    /// Every snapshot another account shares with this one.
    Shared,
    /// Of one type (`automated`, `manual`), of one instance or cluster or of all.
    Of { db: Option<&'a str>, snapshot_type: &'a str },
    /// The one of that identifier (or ARN).
    Named(&'a str),
}

/// The snapshot type a describe by identifier must name: RDS finds an automated snapshot
/// (`rds:...`) by its identifier only with `SnapshotType=automated`.
pub(in crate::rds) fn type_to_name(identifier: &str) -> Option<String> {
    identifier.starts_with("rds:").then(|| "automated".to_string())
}

impl Rds {
    /// The snapshots `listing` names, all pages; none when RDS knows no such snapshot.
    pub(in crate::rds) async fn snapshots(
        &self,
        shape: Shape,
        listing: Listing<'_>,
    ) -> Result<Vec<Snapshot>, RefreshError> {
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
    pub(in crate::rds) async fn snapshot(&self, shape: Shape, id: &str) -> Result<Option<Snapshot>, RefreshError> {
        Ok(self.snapshots(shape, Listing::Named(id)).await?.into_iter().next())
    }

    /// Copies snapshot `from` to `to`, under `key` (none: as it is), with `tag_list` only.
    pub(in crate::rds) async fn copy(
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

    pub(in crate::rds) async fn delete_snapshot(&self, shape: Shape, id: &str) -> Result<Verdict, RefreshError> {
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
    pub(in crate::rds) async fn restore_accounts(&self, shape: Shape, id: &str) -> Result<Vec<String>, RefreshError> {
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
    pub(in crate::rds) async fn change_restore_accounts(
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
    use aws_smithy_types::DateTime;

    use super::*;

    fn at(secs: i64) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp(secs).ok()
    }

    #[test]
    fn an_instance_snapshot_holds_its_database_times_data_and_its_key_only_when_encrypted() {
        let made = DbSnapshot::builder()
            .db_snapshot_identifier("s")
            .status("available")
            .snapshot_create_time(DateTime::from_secs(3_000))
            .original_snapshot_create_time(DateTime::from_secs(2_000))
            .snapshot_database_time(DateTime::from_secs(1_000))
            .kms_key_id("k")
            .encrypted(true)
            .allocated_storage(20)
            .percent_progress(40)
            .build();
        let s = Snapshot::instance(&made);
        assert_eq!((s.candidate.created_at, s.candidate.data_at), (at(3_000), at(1_000)));
        assert_eq!(
            (s.candidate.kms_key_id.as_deref(), s.candidate.storage_gb, s.percent),
            (Some("k"), Some(20), Some(40))
        );
        let plain =
            Snapshot::instance(&DbSnapshot::builder().kms_key_id("k").encrypted(false).allocated_storage(0).build());
        assert_eq!((plain.candidate.kms_key_id, plain.candidate.storage_gb), (None, None));
    }

    #[test]
    fn a_cluster_snapshot_holds_the_data_its_tag_says_and_its_key_only_when_encrypted() {
        let tag = |v: &str| aws_sdk_rds::types::Tag::builder().key(tags::DATA_AS_OF_KEY).value(v).build();
        let copy = DbClusterSnapshot::builder()
            .snapshot_create_time(DateTime::from_secs(3_000))
            .tag_list(tag("1970-01-01T00:16:40Z"))
            .kms_key_id("k")
            .storage_encrypted(true)
            .build();
        let s = Snapshot::cluster(&copy);
        assert_eq!((s.candidate.data_at, s.candidate.kms_key_id.as_deref()), (at(1_000), Some("k")));
        let own = DbClusterSnapshot::builder()
            .snapshot_create_time(DateTime::from_secs(3_000))
            .tag_list(tag("not a time"))
            .kms_key_id("k")
            .storage_encrypted(false)
            .build();
        let s = Snapshot::cluster(&own);
        assert_eq!((s.candidate.data_at, s.candidate.kms_key_id), (at(3_000), None));
    }

    #[test]
    fn an_automated_snapshot_is_described_with_its_type() {
        assert_eq!(type_to_name("rds:prod-2026-12-05-03-10").as_deref(), Some("automated"));
        assert_eq!(type_to_name("manual-before-upgrade"), None);
    }
}
