//! The execution state: what the handlers hand one another through the state machine.
//!
//! The state machine keeps one JSON document per run; each handler reads the parts it
//! needs and its result replaces one part (`$.clone`, `$.refresh`...). Poll handlers take
//! their previous result and return the next one, so a loop carries its own memory.
//! Only ARNs of secrets ever appear here, never values.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::dblab::Refresh;
use crate::poll::PollStatus;
use crate::request::{SourceMode, SourceType};

/// Who is running: from the Step Functions context object, or from the status-change
/// event of an execution that was stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// RFC 3339 (`$$.Execution.StartTime`) or epoch milliseconds (an event's `startDate`).
    #[serde(
        default,
        serialize_with = "time::serde::rfc3339::option::serialize",
        deserialize_with = "start_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<OffsetDateTime>,
}

fn start_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("startedAt {text:?}: {e}"))),
        Some(Value::Number(n)) => {
            let millis = n.as_i64().ok_or_else(|| D::Error::custom("startedAt: not whole milliseconds"))?;
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
                .map(Some)
                .map_err(|e| D::Error::custom(format!("startedAt {millis}: {e}")))
        }
        Some(other) => Err(D::Error::custom(format!("startedAt must be a time, not {other}"))),
    }
}

/// Written by `record` when the run starts: the history row's key and the loops' waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStart {
    pub target: String,
    pub run_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub lock_expires_at: OffsetDateTime,
    /// Seconds to wait between polls, for the state machine's Wait states.
    pub poll_seconds: PollSeconds,
    /// `clone.deletionTimeout`, for the deletion steps.
    #[serde(default)]
    pub deletion_seconds: Option<u64>,
    /// Set when this start duplicates a run already under way: the state machine ends at
    /// once, successfully (a duplicate is not a failure), and its row says `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSeconds {
    pub clone: u64,
}

/// What `find-snapshot` chose to restore the clone from: a snapshot, or (the point
/// modes) a time in the source's backup window, or (fast-clone) the live Aurora cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSource {
    #[serde(default)]
    pub mode: SourceMode,
    /// The snapshot's identifier; in the other modes, the source's.
    pub identifier: String,
    /// The snapshot's ARN; in the other modes, the source's.
    pub arn: String,
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// When the data is from: the snapshot's creation, or the restore time. A fast clone's
    /// data is from the moment it is made, which `CloneInstance::requested_at` records.
    #[serde(with = "time::serde::rfc3339")]
    pub data_as_of: OffsetDateTime,
    /// `automated`, `manual`, `shared`...; in the other modes, the mode.
    pub snapshot_type: String,
    pub source_type: SourceType,
    pub source_identifier: String,
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: OffsetDateTime,
    /// The KMS key the snapshot or source is encrypted with: the clone will be too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// An Aurora Serverless v2 clone's capacity: the request's, or the source cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless_capacity: Option<crate::request::ServerlessCapacity>,
    /// The DBLab Engine the preflight checked, by its own `instanceID` (`/healthz`): the
    /// run's engine lock is keyed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_instance_id: Option<String>,
    /// Whether the snapshot or source is encrypted. Its key may be unknown here: a cluster
    /// shared through AWS RAM is listed without one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// This account's key (the stack's `CopyKmsKeyArn`) for what is taken, encrypted, from
    /// another account: RDS restores such an instance snapshot only from a copy in this
    /// account, made under this key; a cluster shared through RAM is cloned under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_key: Option<String>,
    /// An RDS instance clone's storage, in GiB, as the snapshot or source has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<i32>,
}

impl RestoreSource {
    /// What the clone was made from, in words.
    pub fn describe(&self) -> String {
        let at = crate::clock::rfc3339(self.data_as_of);
        match self.mode {
            // Another account's snapshot is named by its ARN, which names that account.
            SourceMode::Snapshot => {
                match self.identifier.split(':').nth(4).filter(|_| self.identifier.starts_with("arn:")) {
                    Some(account) => format!("snapshot {} of account {account}", self.identifier),
                    None => format!("snapshot {}", self.identifier),
                }
            }
            SourceMode::LatestPoint => format!("{} at its latest restorable time ({at})", self.source_identifier),
            SourceMode::PointInTime => format!("{} at {at}", self.source_identifier),
            SourceMode::FastClone => format!("copy-on-write clone of {}", self.source_identifier),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloneKind {
    Instance,
    Cluster,
    /// A manual snapshot this account copied in from a shared encrypted one, for a clone to
    /// be restored from. Never a `CloneInstance`'s kind: only the purge and the sweep meet
    /// it, among the resources a run leaves to delete.
    SnapshotCopy,
}

/// The engine lock a run holds, from before its clone is made to its end: one engine,
/// however its API address is spelt, is refreshed by one run at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineLock {
    /// The lock item's partition key.
    pub key: String,
    /// The engine's `instanceID`; `None` when it gives none and the lock falls back to the
    /// normalised API address (then two spellings of one address are two locks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl EngineLock {
    /// What the lock is keyed by, in words, for the row and the notification.
    pub fn describe(&self) -> String {
        match &self.instance_id {
            Some(id) => format!("engine instance {id}"),
            None => format!(
                "API address {} (the engine gives no instanceID, so other spellings of its address are not covered)",
                self.key.trim_start_matches("engine#")
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// The temporary clone, as `restore` made it and `check-available` last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloneInstance {
    /// The instance id (RDS) or the cluster id (Aurora).
    pub identifier: String,
    pub kind: CloneKind,
    /// Aurora only: the writer instance, which DBLab's `rdsIam` needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_instance_id: Option<String>,
    pub instance_class: String,
    pub engine: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Past this, a clone that is not available is given up on.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    pub status: PollStatus,
    /// The RDS status last seen (of the writer instance once the Aurora cluster is up).
    pub rds_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub checks: u32,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<OffsetDateTime>,
    /// Aurora's storage configuration as RDS reports it (`aurora`, `aurora-iopt1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<String>,
    /// The local copy of a shared encrypted snapshot the clone is restored from, when it
    /// needs one; until the copy is available, the clone is not yet asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<LocalCopy>,
}

/// A shared encrypted snapshot copied into this account, named as the clone is (snapshot
/// and instance names do not collide) and tagged as it is, so that every deletion path
/// knows it as this run's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalCopy {
    pub identifier: String,
    /// The shared snapshot's ARN.
    pub copy_of: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// When the copy was seen available.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<OffsetDateTime>,
    /// The copy's RDS status last seen.
    pub status: String,
    /// RDS's `PercentProgress` of the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// Its size, which its storage is billed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_gb: Option<i32>,
}

impl CloneInstance {
    /// Whether the clone is still waiting for its snapshot to be copied in: not asked for yet.
    pub fn waiting_for_copy(&self) -> bool {
        self.rds_status.starts_with("copy:")
    }

    /// The INSTANCE the engine's `rdsIam` must name: never the cluster.
    pub fn instance_id(&self) -> &str {
        self.writer_instance_id.as_deref().unwrap_or(&self.identifier)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionStatus {
    Deleting,
    Deleted,
    /// Still deleting when `clone.deletionTimeout` ran out: the sweep finishes it.
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    pub identifier: String,
    pub status: DeletionStatus,
    /// Resources that are gone, instances before their cluster.
    pub deleted: Vec<String>,
    #[serde(default)]
    pub checks: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// The first step's time: when the clone stopped being needed.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<OffsetDateTime>,
}

impl Deletion {
    pub fn started_at(&self) -> OffsetDateTime {
        self.requested_at.unwrap_or(self.checked_at)
    }
}

/// An error as a Step Functions Catch hands it over (`ResultPath: $.error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

impl CaughtError {
    /// A Lambda error's Cause is JSON carrying `errorMessage`; other causes are plain text.
    pub fn message(&self) -> String {
        let Some(cause) = &self.cause else { return String::new() };
        serde_json::from_str::<Value>(cause)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| cause.clone())
    }
}

/// The whole execution state, as `record` (finish) and `notify` receive it. Every part is
/// optional: a run can fail before any of them exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// The request as the user wrote it, possibly invalid.
    #[serde(default)]
    pub request: Value,
    #[serde(default)]
    pub execution: Option<Execution>,
    #[serde(default)]
    pub run: Option<RunStart>,
    #[serde(default)]
    pub snapshot: Option<RestoreSource>,
    #[serde(default)]
    pub engine_lock: Option<EngineLock>,
    #[serde(default)]
    pub clone: Option<CloneInstance>,
    #[serde(default)]
    pub refresh: Option<Refresh>,
    #[serde(default)]
    pub deletion: Option<Deletion>,
    /// The deletion after a finished refresh failed: the refresh stands, the clone is left
    /// to the sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_error: Option<CaughtError>,
    /// The deletion started once the dump was over (`clone.deleteAfterDump`), and its error
    /// if it could not start (the deletion after the refresh then does it all).
    #[serde(default)]
    pub early_deletion: Option<Deletion>,
    #[serde(default)]
    pub early_deletion_error: Option<CaughtError>,
    #[serde(default)]
    pub error: Option<CaughtError>,
    #[serde(default)]
    pub failed_state: Option<String>,
    /// Set when the failure path's clean-up itself failed.
    #[serde(default)]
    pub cleanup_error: Option<CaughtError>,
    /// Set when the history row could not be written, so the notification still goes out
    /// and says so.
    #[serde(default)]
    pub record_error: Option<CaughtError>,
    #[serde(default)]
    pub record: Option<crate::row::RunSummary>,
    /// The clean-up machine's: when the run it cleans up was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// When a stopped run ended (its event's time), and whether a Lambda call of it may still
/// have been running then (`None`: not known, so it may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<bool>,
}

impl Stop {
    /// From when nothing the stopped run started can still act: a call in flight lasts at
    /// most `longest_call` (the longest function timeout, and a margin).
    pub fn quiet_from(&self, longest_call: std::time::Duration) -> OffsetDateTime {
        if self.in_flight == Some(false) { self.at } else { self.at + longest_call }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An automated snapshot of instance `prod`, with data of 03:10, found at 04:00.
    pub(crate) fn restore_source() -> RestoreSource {
        RestoreSource {
            mode: SourceMode::Snapshot,
            identifier: "rds:prod-2026-12-07-03-10".into(),
            arn: "arn:aws:rds:us-east-1:123456789012:snapshot:rds:prod-2026-12-07-03-10".into(),
            engine: "postgres".into(),
            engine_version: None,
            data_as_of: time::macros::datetime!(2026-12-07 03:10 UTC),
            snapshot_type: "automated".into(),
            source_type: SourceType::Rds,
            source_identifier: "prod".into(),
            found_at: time::macros::datetime!(2026-12-07 04:00 UTC),
            kms_key_id: None,
            storage_gb: None,
            encrypted: false,
            serverless_capacity: None,
            engine_instance_id: None,
            local_key: None,
        }
    }

    #[test]
    fn a_restore_source_says_what_the_clone_is_made_from() {
        let source = restore_source();
        assert_eq!(source.describe(), "snapshot rds:prod-2026-12-07-03-10");
        let shared = "arn:aws:rds:us-east-1:111111111111:snapshot:dblab-share-prod";
        let from_shared = RestoreSource { identifier: shared.into(), ..source.clone() };
        assert_eq!(from_shared.describe(), format!("snapshot {shared} of account 111111111111"));
        let latest = RestoreSource { mode: SourceMode::LatestPoint, ..source.clone() };
        assert_eq!(latest.describe(), "prod at its latest restorable time (2026-12-07T03:10:00Z)");
        let at = RestoreSource { mode: SourceMode::PointInTime, ..source.clone() };
        assert_eq!(at.describe(), "prod at 2026-12-07T03:10:00Z");
        let fast = RestoreSource { mode: SourceMode::FastClone, ..source };
        assert_eq!(fast.describe(), "copy-on-write clone of prod");
    }

    #[test]
    fn the_engine_names_the_writer_of_a_cluster_clone_and_an_instance_clone_itself() {
        let clone: CloneInstance = serde_json::from_value(serde_json::json!({
            "identifier": "dblab-refresh-x", "kind": "instance", "instanceClass": "db.r6g.large",
            "engine": "postgres", "requestedAt": "2026-12-07T04:00:00Z", "deadline": "2026-12-07T05:00:00Z",
            "status": "pending", "rdsStatus": "creating", "checks": 0
        }))
        .unwrap();
        assert_eq!(clone.instance_id(), "dblab-refresh-x");
        let cluster = CloneInstance { writer_instance_id: Some("dblab-refresh-x-writer".into()), ..clone };
        assert_eq!(cluster.instance_id(), "dblab-refresh-x-writer");
    }

    #[test]
    fn a_stopped_runs_calls_are_over_a_longest_call_after_the_stop_unless_none_was_in_flight() {
        let at = time::macros::datetime!(2026-12-01 04:30 UTC);
        let longest = std::time::Duration::from_secs(660);
        let stop = |in_flight| Stop { at, in_flight };
        assert_eq!(stop(Some(false)).quiet_from(longest), at);
        assert_eq!(stop(Some(true)).quiet_from(longest), at + longest);
        assert_eq!(stop(None).quiet_from(longest), at + longest, "not known: it may be");
    }

    #[test]
    fn lambda_cause_yields_its_message() {
        let e = CaughtError {
            error: "DblabBusy".into(),
            cause: Some(r#"{"errorType":"DblabBusy","errorMessage":"DBLab Engine is busy"}"#.into()),
        };
        assert_eq!(e.message(), "DBLab Engine is busy");
        let t = CaughtError { error: "States.Timeout".into(), cause: Some("took too long".into()) };
        assert_eq!(t.message(), "took too long");
    }

    #[test]
    fn an_empty_state_is_readable() {
        let s: RunState = serde_json::from_value(serde_json::json!({"request": {"target": "x"}})).unwrap();
        assert!(s.clone.is_none() && s.error.is_none());
    }

    #[test]
    fn an_events_start_date_in_millis_is_the_same_instant() {
        let from_event: Execution =
            serde_json::from_value(serde_json::json!({"name": "n", "startedAt": 1_795_323_412_123_i64})).unwrap();
        let from_context: Execution =
            serde_json::from_value(serde_json::json!({"name": "n", "startedAt": "2026-11-22T04:56:52.123Z"})).unwrap();
        assert_eq!(from_event.started_at, from_context.started_at);
        assert!(serde_json::from_value::<Execution>(serde_json::json!({"name": "n", "startedAt": true})).is_err());
    }

    #[test]
    fn step_functions_start_time_parses() {
        let e: Execution =
            serde_json::from_value(serde_json::json!({"name": "n", "startedAt": "2026-11-22T04:56:52.123Z"})).unwrap();
        assert_eq!(e.started_at.unwrap().unix_timestamp(), 1_795_323_412);
    }
}
