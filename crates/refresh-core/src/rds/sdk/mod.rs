//! The one place that tells an RDS instance from an Aurora cluster. RDS names each call,
//! type and error code twice (`DescribeDBInstances`, `DescribeDBClusters`...); the rest of
//! `rds/` asks through these functions with a [`Shape`] and reads one [`Db`] or
//! [`Snapshot`] whatever the shape (`db`: instances and clusters; `snapshot`: their
//! snapshots). A new kind of source is added here.

use super::*;

mod db;
mod snapshot;

pub(super) use db::Db;
pub(super) use snapshot::{Listing, Snapshot};

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
