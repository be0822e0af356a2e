//! What a valid request is: the types handlers work with once the document was read.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub struct RefreshRequest {
    /// Names the DBLab instance in history, locks and clone names.
    pub target: String,
    pub source: SourceSpec,
    pub clone: CloneSpec,
    pub dblab: DblabSpec,
    /// `freshness.maxAge`: the target's data is stale once older than this; unset, the
    /// stack's default.
    pub freshness_max_age: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourceType {
    #[serde(rename = "rds")]
    Rds,
    #[serde(rename = "aurora-cluster")]
    AuroraCluster,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rds => "rds",
            Self::AuroraCluster => "aurora-cluster",
        }
    }

    /// How a person names it: "RDS instance" / "Aurora cluster".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Rds => "RDS instance",
            Self::AuroraCluster => "Aurora cluster",
        }
    }
}

/// What the clone is restored from (`source.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceMode {
    /// The newest automated snapshot, or `source.snapshotIdentifier`.
    #[default]
    Snapshot,
    /// The source's latest restorable time (minutes old).
    LatestPoint,
    /// `source.restoreTime`, inside the source's restorable window.
    PointInTime,
    /// Aurora only: a copy-on-write clone of the live cluster.
    FastClone,
}

impl SourceMode {
    pub const ALL: [SourceMode; 4] = [Self::Snapshot, Self::LatestPoint, Self::PointInTime, Self::FastClone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::LatestPoint => "latest-point",
            Self::PointInTime => "point-in-time",
            Self::FastClone => "fast-clone",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub kind: SourceType,
    pub identifier: String,
    pub mode: SourceMode,
    /// The account production lives in, when not this one: its shared snapshots are the
    /// only thing of it this stack reads (mode `snapshot` only).
    pub account: Option<String>,
    /// Only with mode `snapshot`.
    pub snapshot_identifier: Option<String>,
    /// Only with mode `snapshot`: a snapshot whose data is older is refused.
    pub max_snapshot_age: Option<Duration>,
    /// Only with mode `point-in-time` (required there).
    pub restore_time: Option<OffsetDateTime>,
    pub db_name: String,
    pub username: String,
    pub password_secret_arn: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloneSpec {
    pub instance_class: String,
    /// Aurora Serverless v2 (`db.serverless`) capacity; unset copies the source cluster's.
    pub serverless_capacity: Option<ServerlessCapacity>,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub publicly_accessible: bool,
    pub tags: BTreeMap<String, String>,
    pub parameter_group: Option<String>,
    pub option_group: Option<String>,
    pub cluster_parameter_group: Option<String>,
    pub port: Option<u16>,
    pub storage_type: Option<String>,
    /// Provisioned IOPS: given exactly when `storage_type` is io1, io2 or gp3.
    pub iops: Option<u32>,
    pub enable_iam_auth: bool,
    pub deletion_protection: bool,
    /// Delete the clone as soon as DBLab has dumped from it, while DBLab restores.
    pub delete_after_dump: bool,
    pub max_age: Duration,
    pub restore_timeout: Duration,
    pub poll_interval: Duration,
    /// How long the deletion of the clone is followed before the run goes on without it.
    pub deletion_timeout: Duration,
}

/// An Aurora Serverless v2 capacity range, in ACUs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessCapacity {
    pub min_capacity: f64,
    pub max_capacity: f64,
}

/// Time a run may need beyond its two timeouts for the preflight, the config patch and
/// their retries.
pub(crate) const PREFLIGHT_AND_PATCH_ALLOWANCE: Duration = Duration::from_secs(15 * 60);

/// The longest a run can last, part by part: what `clone.maxAge` and the target's lock
/// must outlast.
pub(crate) fn longest_run(clone: &CloneSpec, dblab: &DblabSpec) -> (Duration, String) {
    let deletion = clone.deletion_timeout + clone.poll_interval;
    let total = clone.restore_timeout
        + dblab.timeout
        + clone.poll_interval
        + dblab.poll_interval
        + PREFLIGHT_AND_PATCH_ALLOWANCE
        + deletion;
    let parts = format!(
        "clone.restoreTimeout {} + dblab.timeout {} + one clone.pollInterval {} and one dblab.pollInterval {} (a loop may look once more) + {} for the preflight and the patch + {} for the deletion (clone.deletionTimeout and one more look)",
        crate::duration::format(clone.restore_timeout),
        crate::duration::format(dblab.timeout),
        crate::duration::format(clone.poll_interval),
        crate::duration::format(dblab.poll_interval),
        crate::duration::format(PREFLIGHT_AND_PATCH_ALLOWANCE),
        crate::duration::format(deletion),
    );
    (total, parts)
}

/// The instance class of an Aurora Serverless v2 writer.
pub(crate) const SERVERLESS_CLASS: &str = "db.serverless";

#[derive(Debug, Clone, PartialEq)]
pub struct DblabSpec {
    /// The engine by its name in the stack's list (`dblab::engines`), which gives its
    /// address, its token secret and its transport.
    pub engine: Option<String>,
    /// Or by its address (without a trailing slash): one of the list's.
    pub api_endpoint: Option<String>,
    /// If given, the listed engine's own.
    pub token_secret_arn: Option<String>,
    pub ca_certificate: Option<String>,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// How long an accepted refresh may take to be seen running before the run gives up:
    /// the engine reports a failure to start only in its log.
    pub start_timeout: Duration,
    /// pg_restore jobs on the engine host (its CPUs); unset leaves the engine's own value.
    pub restore_parallel_jobs: Option<u32>,
    /// The engine may be configured to ignore restore (or dump) errors, and so to finish a
    /// refresh with tables missing; without this the run refuses such an engine.
    pub allow_ignored_errors: bool,
    /// The engine's pools may be on LVM, where no snapshot can prove a refresh; without
    /// this the run refuses such an engine.
    pub allow_lvm: bool,
}

/// Each poll loop iteration writes about nine history events; Step Functions stops an
/// execution at 25,000. This keeps both loops together well below that.
pub const MAX_POLLS_PER_RUN: u64 = 2_000;

/// The refresh state machine's `TimeoutSeconds`: the longest a run may be planned to last.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(72 * 3_600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_type_reads_as_its_request_word_and_as_people_name_it() {
        assert_eq!((SourceType::Rds.as_str(), SourceType::Rds.describe()), ("rds", "RDS instance"));
        assert_eq!(
            (SourceType::AuroraCluster.as_str(), SourceType::AuroraCluster.describe()),
            ("aurora-cluster", "Aurora cluster")
        );
    }
}
