//! Creating the clone: an instance, or an Aurora cluster and its writer; a retry finds
//! what this execution already made.

use super::sdk::{Created, Db, INSTANCE_EXISTS, INVALID_STATE, Shape};
use super::*;
use crate::run::LocalCopy;

/// Everything `restore` decided before calling RDS.
pub struct ClonePlan<'a> {
    pub name: String,
    pub spec: &'a CloneSpec,
    pub snapshot: &'a RestoreSource,
    pub tags: Vec<(String, String)>,
    pub requested_at: OffsetDateTime,
    pub deadline: OffsetDateTime,
}

/// The clone while its snapshot is still being copied in: not asked for yet. The copy has
/// its own deadline, as long as the restore's, from when the copy was asked for.
fn waiting_for_copy(plan: &ClonePlan<'_>, copy: LocalCopy) -> CloneInstance {
    CloneInstance {
        identifier: plan.name.clone(),
        kind: CloneKind::Instance,
        writer_instance_id: None,
        instance_class: plan.spec.instance_class.clone(),
        engine: plan.snapshot.engine.clone(),
        requested_at: plan.requested_at,
        deadline: copy.requested_at + (plan.deadline - plan.requested_at),
        status: PollStatus::Pending,
        rds_status: format!("copy:{}", copy.status),
        endpoint: None,
        checks: 0,
        ready_at: None,
        storage_type: None,
        copy: Some(copy),
    }
}

/// What a restore call left: the clone's status, and, when an earlier attempt had made
/// it, when RDS created it.
#[derive(Debug)]
struct Made {
    status: String,
    created_at: Option<OffsetDateTime>,
}

impl Made {
    fn requested(status: Option<String>) -> Self {
        Self { status: status.unwrap_or_else(|| "creating".into()), created_at: None }
    }
}

impl Rds {
    /// Creates the clone, or adopts the one this execution already created (a retry). A
    /// snapshot that must be copied in first (`RestoreSource::local_key`) gives, until its
    /// copy is available, the clone still waiting for it (`rds_status` `copy:...`): the
    /// state machine polls the copy as it polls a clone, and asks again once it is there.
    pub async fn restore(&self, plan: &ClonePlan<'_>) -> Result<CloneInstance, RefreshError> {
        let copy_key = plan.snapshot.local_key.as_deref().filter(|_| plan.snapshot.mode == SourceMode::Snapshot);
        let Some(key) = copy_key else { return self.restore_directly(plan).await };
        let copy = match self.copy_in(plan, key).await? {
            CopyState::Available(copy) => copy,
            CopyState::Making(copy) | CopyState::Failed(copy) => return Ok(waiting_for_copy(plan, copy)),
        };
        let local = RestoreSource { identifier: copy.identifier.clone(), local_key: None, ..plan.snapshot.clone() };
        let from_copy = ClonePlan { snapshot: &local, tags: plan.tags.clone(), name: plan.name.clone(), ..*plan };
        let mut clone = self.restore_directly(&from_copy).await?;
        clone.copy = Some(LocalCopy { ready_at: Some(copy.ready_at.unwrap_or(plan.requested_at)), ..copy });
        Ok(clone)
    }

    async fn restore_directly(&self, plan: &ClonePlan<'_>) -> Result<CloneInstance, RefreshError> {
        let shape = Shape::from(plan.snapshot.source_type);
        let kind = shape.clone_kind();
        let Made { status, created_at } = self.make(shape, plan).await?;
        // A retry keeps the first attempt's request time: it is when a copy-on-write
        // clone's data is from, and when the clone began to cost.
        let requested_at = created_at.map_or(plan.requested_at, |made| made.min(plan.requested_at));
        let clone = CloneInstance {
            identifier: plan.name.clone(),
            kind,
            writer_instance_id: (kind == CloneKind::Cluster).then(|| naming::writer_instance_name(&plan.name)),
            instance_class: plan.spec.instance_class.clone(),
            engine: plan.snapshot.engine.clone(),
            requested_at,
            deadline: plan.deadline,
            status: PollStatus::Pending,
            rds_status: match shape {
                Shape::Instance => status.clone(),
                Shape::Cluster => format!("cluster:{status}"),
            },
            endpoint: None,
            checks: 0,
            ready_at: None,
            storage_type: None,
            copy: None,
        };
        if kind == CloneKind::Cluster && status == "available" {
            // The cluster may take its writer at once; otherwise check-available adds it.
            self.ensure_writer(&clone, plan.spec, &plan.tags).await?;
        }
        Ok(clone)
    }

    /// Asks RDS for the clone, or adopts the one an earlier attempt of this execution made.
    async fn make(&self, shape: Shape, plan: &ClonePlan<'_>) -> Result<Made, RefreshError> {
        // Look first: a retried restore must find its clone whatever error a second create
        // would give; AlreadyExists below still covers a race.
        if let Some(existing) = self.describe(shape, &plan.name).await? {
            return adopt_found(&plan.name, Some(existing), &plan.tags);
        }
        let from = plan.snapshot;
        // A clone of another account's cluster (by its ARN) carries that ARN: one such
        // clone per shared cluster may exist in an account.
        let mut clone_tags = plan.tags.clone();
        if from.mode != SourceMode::Snapshot && from.source_identifier.starts_with("arn:") {
            clone_tags.push((tags::CLONE_OF_KEY.to_string(), from.source_identifier.clone()));
        }
        match self.request_restore(shape, plan, &clone_tags).await? {
            Created::Requested(status) => {
                info!(clone = %plan.name, from = %from.describe(), ?shape, "restore requested");
                Ok(Made::requested(status))
            }
            // A race with an earlier attempt of this restore: adopt what it made.
            Created::AlreadyExists => {
                let found = self.describe(shape, &plan.name).await?;
                adopt_found(&plan.name, found, &plan.tags)
            }
        }
    }

    /// Creates the Aurora writer instance unless this execution already did.
    pub(super) async fn ensure_writer(
        &self,
        clone: &CloneInstance,
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
                let found = self.describe(Shape::Instance, writer).await?;
                adopt_found(writer, found, tag_list).map(drop)
            }
            // A state that passes (the cluster is not ready yet: next poll), except this one,
            // which no wait cures.
            Err(e)
                if has_code(&e, INVALID_STATE) && e.message().is_some_and(|m| m.contains("Serverless v2 scaling")) =>
            {
                Err(RefreshError::at(
                    "clone.minCapacity",
                    format!(
                        "RDS refuses the db.serverless writer of {}: {}; set clone.minCapacity and clone.maxCapacity",
                        clone.identifier,
                        e.message().unwrap_or_default()
                    ),
                ))
            }
            Err(e) if has_code(&e, INVALID_STATE) => Ok(()),
            Err(e) => Err(RefreshError::from_aws("CreateDBInstance", e)),
        }
    }
}

/// A resource found under one of our names, reused if this execution made it.
fn adopt_found(id: &str, found: Option<Db>, ours: &[(String, String)]) -> Result<Made, RefreshError> {
    let found = found
        .ok_or_else(|| RefreshError::CloneConflict(format!("{id} was reported to exist but cannot be described")))?;
    adopt(id, &found.tags, ours)?;
    Ok(Made { status: found.status.unwrap_or_else(|| "creating".into()), created_at: found.created_at })
}

/// An existing resource under our name is reused only if this execution made it:
/// `ours` are the tags this execution writes.
pub(super) fn adopt(id: &str, existing: &[(String, String)], ours: &[(String, String)]) -> Result<(), RefreshError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::tests::{NAME, tagged};

    #[test]
    fn a_clone_waiting_for_its_copy_has_the_copys_deadline_and_status() {
        let request = crate::RefreshRequest::from_document(&serde_json::json!({
            "target": "staging",
            "source": {"type": "rds", "identifier": "prod", "dbName": "app", "username": "u",
                       "passwordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pw-AbCdEf"},
            "clone": {"instanceClass": "db.r6g.large"},
            "dblab": {"engine": "e"}
        }))
        .unwrap();
        let t0 = time::macros::datetime!(2026-12-07 04:00 UTC);
        let snapshot =
            RestoreSource { encrypted: true, local_key: Some("k".into()), ..crate::run::tests::restore_source() };
        let plan = ClonePlan {
            name: NAME.into(),
            spec: &request.clone,
            snapshot: &snapshot,
            tags: Vec::new(),
            requested_at: t0,
            deadline: t0 + time::Duration::hours(1),
        };
        let copy = LocalCopy {
            identifier: NAME.into(),
            copy_of: "arn:s".into(),
            requested_at: t0 - time::Duration::minutes(10),
            ready_at: None,
            status: "copying".into(),
            percent: None,
            allocated_gb: None,
        };
        let waiting = waiting_for_copy(&plan, copy);
        assert_eq!((waiting.rds_status.as_str(), waiting.status), ("copy:copying", PollStatus::Pending));
        assert_eq!(waiting.deadline, t0 + time::Duration::minutes(50), "an hour from the copy's request");
        assert_eq!((waiting.kind, waiting.instance_class.as_str()), (CloneKind::Instance, "db.r6g.large"));
        assert_eq!(Made::requested(None).status, "creating");
        assert_eq!(Made::requested(Some("backing-up".into())).status, "backing-up");
    }

    #[test]
    fn only_what_this_execution_made_is_adopted() {
        assert!(adopt(NAME, &tagged("run-1"), &tagged("run-1")).is_ok());
        let other = adopt(NAME, &tagged("run-2"), &tagged("run-1")).unwrap_err();
        assert_eq!(other.name(), "CloneConflict");
        assert!(other.to_string().contains("belongs to execution \"run-2\""), "{other}");
        let unmanaged = adopt(NAME, &[], &tagged("run-1")).unwrap_err();
        assert!(unmanaged.to_string().contains("already exists and"), "{unmanaged}");
        assert!(adopt("prod-db", &tagged("run-1"), &tagged("run-1")).is_err(), "not one of our names");
    }

    #[test]
    fn an_adopted_resource_keeps_its_status_and_creation_or_is_creating() {
        let at = time::macros::datetime!(2026-11-22 05:00 UTC);
        let found =
            Db { tags: tagged("run-1"), status: Some("available".into()), created_at: Some(at), ..Db::default() };
        let made = adopt_found(NAME, Some(found), &tagged("run-1")).unwrap();
        assert_eq!((made.status.as_str(), made.created_at), ("available", Some(at)));
        let bare = adopt_found(NAME, Some(Db { tags: tagged("run-1"), ..Db::default() }), &tagged("run-1")).unwrap();
        assert_eq!((bare.status.as_str(), bare.created_at), ("creating", None));
        let gone = adopt_found(NAME, None, &tagged("run-1")).unwrap_err();
        assert!(gone.to_string().contains("reported to exist but cannot be described"), "{gone}");
    }
}
