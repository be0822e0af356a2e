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

#[cfg(test)]
mod tests {
    use aws_sdk_rds::operation::delete_db_instance::DeleteDBInstanceError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    type Refusal = SdkError<DeleteDBInstanceError, HttpResponse>;

    fn refusal(code: &str, message: &str) -> Refusal {
        let err = DeleteDBInstanceError::generic(ErrorMetadata::builder().code(code).message(message).build());
        let status = aws_smithy_runtime_api::http::StatusCode::try_from(400).expect("a status");
        SdkError::service_error(err, HttpResponse::new(status, SdkBody::empty()))
    }

    #[test]
    fn a_source_type_is_a_shape_and_a_clone_kind() {
        assert_eq!(Shape::from(SourceType::Rds).clone_kind(), CloneKind::Instance);
        assert_eq!(Shape::from(SourceType::AuroraCluster).clone_kind(), CloneKind::Cluster);
    }

    #[test]
    fn each_shape_knows_its_own_codes() {
        assert!(Shape::Instance.not_found().contains(&"DBInstanceNotFound"));
        assert!(Shape::Cluster.not_found().contains(&"DBClusterNotFoundFault"));
        assert!(Shape::Instance.exists().contains(&"DBInstanceAlreadyExists"));
        assert!(Shape::Cluster.exists().contains(&"DBClusterAlreadyExistsFault"));
        assert!(Shape::Instance.snapshot_not_found().contains(&"DBSnapshotNotFound"));
        assert!(Shape::Cluster.snapshot_not_found().contains(&"DBClusterSnapshotNotFoundFault"));
        assert!(Shape::Instance.snapshot_exists().contains(&"DBSnapshotAlreadyExists"));
        assert!(Shape::Cluster.snapshot_exists().contains(&"DBClusterSnapshotAlreadyExistsFault"));
        for codes in [Shape::Instance.not_found(), Shape::Cluster.exists(), Shape::Instance.snapshot_exists()] {
            assert!(!codes.contains(&"DBClusterSnapshotNotFoundFault"), "{codes:?}");
        }
    }

    #[test]
    fn a_deletion_is_done_gone_not_yet_or_an_error() {
        let not_found = Shape::Instance.not_found();
        assert_eq!(verdict(Ok::<_, Refusal>(()), not_found, "op").unwrap(), Verdict::Done);
        assert_eq!(
            verdict(Err::<(), Refusal>(refusal("DBInstanceNotFound", "gone")), not_found, "op").unwrap(),
            Verdict::Gone
        );
        assert_eq!(
            verdict(Err::<(), Refusal>(refusal("InvalidDBInstanceState", "busy")), not_found, "op").unwrap(),
            Verdict::NotYet
        );
        let protected = Err::<(), Refusal>(refusal(
            "InvalidParameterCombination",
            "Cannot delete protected Cluster, please disable Deletion Protection",
        ));
        assert_eq!(verdict(protected, not_found, "op").unwrap(), Verdict::NotYet);
        let other = verdict(
            Err::<(), Refusal>(refusal("InvalidParameterCombination", "something else")),
            not_found,
            "DeleteDBInstance",
        );
        assert!(other.unwrap_err().to_string().contains("DeleteDBInstance"));
    }

    #[test]
    fn not_found_is_none_and_a_taken_name_is_already_exists() {
        let found = found(Ok::<_, Refusal>(7), &["Gone"], "op").unwrap();
        assert_eq!(found, Some(7));
        assert_eq!(super::found(Err::<(), Refusal>(refusal("Gone", "")), &["Gone"], "op").unwrap(), None);
        assert!(super::found(Err::<(), Refusal>(refusal("AccessDenied", "")), &["Gone"], "op").is_err());
        let requested = created(Ok::<_, Refusal>(()), |_| Some("creating".into()), &["Taken"], "op");
        assert!(matches!(requested.unwrap(), Created::Requested(Some(s)) if s == "creating"));
        assert!(matches!(
            created(Err::<(), Refusal>(refusal("Taken", "")), |_| None, &["Taken"], "op").unwrap(),
            Created::AlreadyExists
        ));
        assert!(created(Err::<(), Refusal>(refusal("AccessDenied", "")), |_| None, &["Taken"], "op").is_err());
    }
}
