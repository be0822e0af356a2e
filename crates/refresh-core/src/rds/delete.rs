//! Deleting clones: only resources named and tagged as this project's, and (outside the
//! sweep) only those this execution made; instances before their cluster.

use super::*;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// A clone found by the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedClone {
    pub identifier: String,
    pub kind: CloneKind,
    pub status: String,
    pub created_at: Option<OffsetDateTime>,
    pub tags: Vec<(String, String)>,
}

impl ManagedClone {
    /// A resource the sweep lists, when it is provably ours (`tags::check_managed`).
    pub(super) fn if_managed(
        id: &str,
        kind: CloneKind,
        status: Option<&str>,
        created_at: Option<&aws_smithy_types::DateTime>,
        tag_list: &[Tag],
    ) -> Option<Self> {
        let tags = tag_pairs(tag_list);
        tags::check_managed(id, &tags).ok()?;
        Some(Self {
            identifier: id.to_string(),
            kind,
            status: status.unwrap_or_default().to_string(),
            created_at: created_at.and_then(crate::clock::from_aws),
            tags,
        })
    }
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

/// What one modify or delete call came to, for instances and clusters alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Done,
    /// Nothing of that name exists any more.
    Gone,
    /// Refused in the resource's current state: look again on the next poll.
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

/// Right after deletion protection was turned off, RDS may still refuse the deletion as
/// protected while the modification applies: that is "look again", not a failure.
fn protection_still_applies<E: ProvideErrorMetadata>(err: &E) -> bool {
    has_code(err, &["InvalidParameterCombination"])
        && err.message().is_some_and(|m| m.to_ascii_lowercase().contains("deletion protection"))
}

/// Turns deletion protection off when it is on, then asks for the deletion; either call
/// may find the resource gone or not ready.
async fn unprotect_and_delete<U, D>(
    what: &str,
    id: &str,
    protected: bool,
    unprotect: impl FnOnce() -> U,
    delete: impl FnOnce() -> D,
) -> Result<Verdict, RefreshError>
where
    U: Future<Output = Result<Verdict, RefreshError>>,
    D: Future<Output = Result<Verdict, RefreshError>>,
{
    if protected {
        match unprotect().await? {
            Verdict::Done => info!(what, id, "deletion protection turned off"),
            other => return Ok(other),
        }
    }
    let outcome = delete().await?;
    match outcome {
        Verdict::Done => info!(what, id, "deletion requested"),
        Verdict::NotYet => warn!(what, id, "not deletable yet"),
        Verdict::Gone => {}
    }
    Ok(outcome)
}

impl Rds {
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
            CloneKind::SnapshotCopy => self.delete_local_copy(identifier, guard, &mut deleted).await?,
        };
        Ok(DeleteStep { deleted, gone })
    }

    pub(super) fn guard(
        &self,
        id: &str,
        tag_list: &[(String, String)],
        guard: DeleteGuard<'_>,
    ) -> Result<(), RefreshError> {
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
    pub(super) async fn delete_instance(
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
        let protected = instance.deletion_protection() == Some(true);
        let unprotect = || async {
            let modify = self.client.modify_db_instance().db_instance_identifier(id).deletion_protection(false);
            verdict(modify.apply_immediately(true).send().await, INSTANCE_NOT_FOUND, "ModifyDBInstance")
        };
        let delete = || async {
            let delete = self.client.delete_db_instance().db_instance_identifier(id).skip_final_snapshot(true);
            verdict(delete.delete_automated_backups(true).send().await, INSTANCE_NOT_FOUND, "DeleteDBInstance")
        };
        // Boxed: the SDK's futures are large, and a cluster's deletion holds its members'.
        match Box::pin(unprotect_and_delete("instance", id, protected, unprotect, delete)).await? {
            Verdict::Done => deleted.push(id.to_string()),
            Verdict::Gone => return Ok(true),
            Verdict::NotYet => return Ok(false),
        }
        Ok(self.instance(id).await?.is_none())
    }

    /// Member instances first; the cluster once none is left (RDS refuses otherwise).
    pub(super) async fn delete_cluster(
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
        let protected = cluster.deletion_protection() == Some(true);
        let unprotect = || async {
            let modify = self.client.modify_db_cluster().db_cluster_identifier(id).deletion_protection(false);
            verdict(modify.apply_immediately(true).send().await, CLUSTER_NOT_FOUND, "ModifyDBCluster")
        };
        // Members still detaching make the cluster's deletion refused for a while.
        let delete = || async {
            let delete = self.client.delete_db_cluster().db_cluster_identifier(id).skip_final_snapshot(true);
            verdict(delete.delete_automated_backups(true).send().await, CLUSTER_NOT_FOUND, "DeleteDBCluster")
        };
        match Box::pin(unprotect_and_delete("cluster", id, protected, unprotect, delete)).await? {
            Verdict::Done => deleted.push(id.to_string()),
            Verdict::Gone => return Ok(true),
            Verdict::NotYet => return Ok(false),
        }
        Ok(self.cluster(id).await?.is_none())
    }

    /// One step of deleting a local snapshot copy (deleting a copy still being made ends it,
    /// per DeleteDBSnapshot); whether it is gone.
    pub(super) async fn delete_local_copy(
        &self,
        id: &str,
        guard: DeleteGuard<'_>,
        deleted: &mut Vec<String>,
    ) -> Result<bool, RefreshError> {
        let Some(found) = self.snapshot(id).await? else { return Ok(true) };
        self.guard(id, &tag_pairs(found.tag_list()), guard)?;
        if found.status() == Some("deleting") {
            return Ok(false);
        }
        let result = self.client.delete_db_snapshot().db_snapshot_identifier(id).send().await;
        match verdict(result, SNAPSHOT_NOT_FOUND, "DeleteDBSnapshot")? {
            Verdict::Done => {
                info!(what = "snapshot copy", id, "deletion requested");
                deleted.push(id.to_string());
            }
            Verdict::Gone => return Ok(true),
            Verdict::NotYet => {
                warn!(what = "snapshot copy", id, "not deletable yet");
                return Ok(false);
            }
        }
        Ok(self.snapshot(id).await?.is_none())
    }

    /// Every clone this orchestrator manages, across all pages: standalone instances and
    /// clusters (their writer instances are deleted with the cluster), and the local
    /// snapshot copies clones are restored from.
    pub async fn managed_clones(&self) -> Result<Vec<ManagedClone>, RefreshError> {
        let mut found = Vec::new();
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("DescribeDBInstances", e))?;
            // A cluster's writer goes with its cluster.
            found.extend(page.db_instances().iter().filter(|i| i.db_cluster_identifier().is_none()).filter_map(|i| {
                ManagedClone::if_managed(
                    i.db_instance_identifier().unwrap_or_default(),
                    CloneKind::Instance,
                    i.db_instance_status(),
                    i.instance_create_time(),
                    i.tag_list(),
                )
            }));
        }
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("DescribeDBClusters", e))?;
            found.extend(page.db_clusters().iter().filter_map(|c| {
                ManagedClone::if_managed(
                    c.db_cluster_identifier().unwrap_or_default(),
                    CloneKind::Cluster,
                    c.status(),
                    c.cluster_create_time(),
                    c.tag_list(),
                )
            }));
        }
        self.managed_copies(&mut found).await?;
        Ok(found)
    }
}
