//! Deleting clones: only resources named and tagged as this project's, and (outside the
//! sweep) only those this execution made; instances before their cluster.

use super::sdk::{Listing, Shape, Snapshot, Verdict};
use super::*;

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
    fn if_managed(
        identifier: String,
        kind: CloneKind,
        status: Option<String>,
        created_at: Option<OffsetDateTime>,
        tags: Vec<(String, String)>,
    ) -> Option<Self> {
        tags::check_managed(&identifier, &tags).ok()?;
        Some(Self { identifier, kind, status: status.unwrap_or_default(), created_at, tags })
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
            CloneKind::Instance => self.delete_db(Shape::Instance, identifier, guard, &mut deleted).await?,
            CloneKind::Cluster => self.delete_db(Shape::Cluster, identifier, guard, &mut deleted).await?,
            CloneKind::SnapshotCopy => self.delete_local_copy(identifier, guard, &mut deleted).await?,
        };
        Ok(DeleteStep { deleted, gone })
    }

    /// An instance, or a cluster and its member instances first. Whether nothing is left.
    async fn delete_db(
        &self,
        shape: Shape,
        id: &str,
        guard: DeleteGuard<'_>,
        deleted: &mut Vec<String>,
    ) -> Result<bool, RefreshError> {
        let Some(db) = self.describe(shape, id).await? else {
            // A cluster gone may leave its writer behind (ours by its name and tags).
            return match shape {
                Shape::Instance => Ok(true),
                Shape::Cluster => {
                    let writer = naming::writer_instance_name(id);
                    Box::pin(self.delete_db(Shape::Instance, &writer, guard, deleted)).await
                }
            };
        };
        check_ours(id, &db.tags, guard)?;
        let mut remaining = false;
        for member in &db.members {
            if !Box::pin(self.delete_db(Shape::Instance, member, guard, deleted)).await? {
                remaining = true;
            }
        }
        if remaining || db.status.as_deref() == Some("deleting") {
            return Ok(false);
        }
        if db.deletion_protection {
            match self.unprotect(shape, id).await? {
                Verdict::Done => info!(?shape, id, "deletion protection turned off"),
                Verdict::Gone => return Ok(true),
                Verdict::NotYet => return Ok(false),
            }
        }
        match self.request_delete(shape, id).await? {
            Verdict::Done => {
                info!(?shape, id, "deletion requested");
                deleted.push(id.to_string());
            }
            Verdict::Gone => return Ok(true),
            Verdict::NotYet => {
                warn!(?shape, id, "not deletable yet");
                return Ok(false);
            }
        }
        Ok(self.describe(shape, id).await?.is_none())
    }

    async fn delete_local_copy(
        &self,
        id: &str,
        guard: DeleteGuard<'_>,
        deleted: &mut Vec<String>,
    ) -> Result<bool, RefreshError> {
        let Some(found) = self.snapshot(Shape::Instance, id).await? else { return Ok(true) };
        check_ours(id, &found.tags, guard)?;
        if found.candidate.status == "deleting" {
            return Ok(false);
        }
        match self.delete_snapshot(Shape::Instance, id).await? {
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
        Ok(self.snapshot(Shape::Instance, id).await?.is_none())
    }

    pub async fn managed_clones(&self) -> Result<Vec<ManagedClone>, RefreshError> {
        let mut found = Vec::new();
        for shape in [Shape::Instance, Shape::Cluster] {
            // An Aurora member is deleted with its cluster.
            let dbs = self.list(shape).await?.into_iter().filter(|db| db.cluster.is_none());
            found.extend(dbs.filter_map(|db| {
                ManagedClone::if_managed(db.identifier, shape.clone_kind(), db.status, db.created_at, db.tags)
            }));
        }
        // The snapshots this account copied in, for clones of shared encrypted ones.
        let copies = self.snapshots(Shape::Instance, Listing::Of { db: None, snapshot_type: "manual" }).await?;
        found.extend(copies.into_iter().filter_map(|s| {
            let Snapshot { candidate: c, tags, .. } = s;
            ManagedClone::if_managed(c.identifier, CloneKind::SnapshotCopy, Some(c.status), c.created_at, tags)
        }));
        Ok(found)
    }
}

/// A resource is deleted only when it is ours (name and tags), and, with an owner, that
/// execution's.
fn check_ours(id: &str, tag_list: &[(String, String)], guard: DeleteGuard<'_>) -> Result<(), RefreshError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::tests::{NAME, tagged};

    #[test]
    fn the_sweep_lists_only_what_is_provably_ours() {
        let listed = ManagedClone::if_managed(NAME.into(), CloneKind::Cluster, None, None, tagged("run-1")).unwrap();
        assert_eq!((listed.identifier.as_str(), listed.kind, listed.status.as_str()), (NAME, CloneKind::Cluster, ""));
        assert!(ManagedClone::if_managed("prod-db".into(), CloneKind::Instance, None, None, tagged("run-1")).is_none());
        assert!(ManagedClone::if_managed(NAME.into(), CloneKind::Instance, None, None, Vec::new()).is_none());
    }

    #[test]
    fn only_ours_is_deleted_and_with_an_owner_only_that_executions() {
        let anyone = DeleteGuard { owner: None };
        let run1 = DeleteGuard { owner: Some(("run-1", None)) };
        assert!(check_ours(NAME, &tagged("run-2"), anyone).is_ok(), "the sweep deletes any run's clone");
        assert!(check_ours(NAME, &tagged("run-1"), run1).is_ok());
        let other = check_ours(NAME, &tagged("run-2"), run1).unwrap_err();
        assert_eq!(other.name(), "DeleteRefused");
        assert!(other.to_string().contains("belongs to execution \"run-2\", not \"run-1\""), "{other}");
        assert!(check_ours(NAME, &[], anyone).is_err(), "no ManagedBy tag");
        assert!(check_ours("prod-db", &tagged("run-1"), run1).is_err(), "not one of our names");
    }
}
