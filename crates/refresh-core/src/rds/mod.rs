//! RDS and Aurora operations, one file a phase: `source` (read the source, choose what to
//! restore from), `copy` (a shared encrypted snapshot copied in first), `create` (the clone), `poll` (is it available) and `delete` (only what
//! this project made). The production source is only ever DESCRIBED; every mutating call
//! names a clone identifier, and deletion first proves the resource is ours
//! (`tags::check_managed`). `publish` is the publisher's, in production's own account: it
//! reads snapshots and changes only the copies it made (`publish::Held::is_our_copy`, by its publisher's name).

mod copy;
mod create;
mod delete;
mod poll;
pub mod publish;
mod source;

pub use copy::{CopyState, copy_finished, needs_local_key};
pub use create::ClonePlan;
pub use delete::{DeleteGuard, DeleteStep, ManagedClone};
pub use poll::{LONGEST_CHECK, MOST_CALLS_PER_CHECK, classify_status};
pub use source::{Candidate, RestorableWindow, newest_available, restorable, window_start};

use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbInstance, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::naming;
use crate::poll::PollStatus;
use crate::request::{CloneSpec, SourceMode, SourceSpec, SourceType};
use crate::run::{CloneInstance, CloneKind, Endpoint, RestoreSource};
use crate::tags;

pub struct Rds {
    client: Client,
}

pub(super) fn tag_pairs(list: &[Tag]) -> Vec<(String, String)> {
    list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

pub(super) fn sdk_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub(super) fn has_code<E: ProvideErrorMetadata>(err: &E, codes: &[&str]) -> bool {
    err.code().is_some_and(|c| codes.contains(&c))
}

pub(super) const INSTANCE_NOT_FOUND: &[&str] = &["DBInstanceNotFound", "DBInstanceNotFoundFault"];
pub(super) const CLUSTER_NOT_FOUND: &[&str] = &["DBClusterNotFoundFault", "DBClusterNotFound"];
pub(super) const INSTANCE_EXISTS: &[&str] = &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"];
pub(super) const CLUSTER_EXISTS: &[&str] = &["DBClusterAlreadyExistsFault", "DBClusterAlreadyExists"];
pub(super) const SNAPSHOT_NOT_FOUND: &[&str] = &["DBSnapshotNotFound", "DBSnapshotNotFoundFault"];
pub(super) const CLUSTER_SNAPSHOT_NOT_FOUND: &[&str] = &["DBClusterSnapshotNotFoundFault", "DBClusterSnapshotNotFound"];
pub(super) const SNAPSHOT_EXISTS: &[&str] = &["DBSnapshotAlreadyExists", "DBSnapshotAlreadyExistsFault"];
pub(super) const CLUSTER_SNAPSHOT_EXISTS: &[&str] =
    &["DBClusterSnapshotAlreadyExistsFault", "DBClusterSnapshotAlreadyExists"];
/// Refused in the resource's current state: an instance, a cluster or a snapshot.
pub(super) const INVALID_STATE: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBClusterStateFault",
    "InvalidDBClusterState",
    "InvalidDBSnapshotState",
    "InvalidDBSnapshotStateFault",
];

pub(super) fn opt_vec(v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() { None } else { Some(v.to_vec()) }
}

impl Rds {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub(super) async fn instance(&self, id: &str) -> Result<Option<DbInstance>, RefreshError> {
        match self.client.describe_db_instances().db_instance_identifier(id).send().await {
            Ok(out) => Ok(out.db_instances().first().cloned()),
            Err(e) if has_code(&e, INSTANCE_NOT_FOUND) => Ok(None),
            Err(e) => Err(RefreshError::from_aws("DescribeDBInstances", e)),
        }
    }

    pub(super) async fn cluster(&self, id: &str) -> Result<Option<DbCluster>, RefreshError> {
        match self.client.describe_db_clusters().db_cluster_identifier(id).send().await {
            Ok(out) => Ok(out.db_clusters().first().cloned()),
            Err(e) if has_code(&e, CLUSTER_NOT_FOUND) => Ok(None),
            Err(e) => Err(RefreshError::from_aws("DescribeDBClusters", e)),
        }
    }
}
