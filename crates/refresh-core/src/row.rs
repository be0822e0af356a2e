//! The history row of a run, as stored in DynamoDB and told in its notification.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cost::{CloneUse, Engine, Estimate, Usage};
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Succeeded,
    Failed,
    /// A duplicate start of a run already under way: nothing was done.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl Phase {
    pub fn seconds(&self) -> Option<i64> {
        self.ended_at.map(|end| (end - self.started_at).whole_seconds())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorSummary {
    pub name: String,
    pub message: String,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// `None` for a request without a valid target (its row is kept apart, under
    /// `history::NO_TARGET`, which no target can be named).
    #[serde(default)]
    pub target: Option<String>,
    /// The target a request asked for when it is not a valid one, as it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_target: Option<String>,
    pub execution_name: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
    pub outcome: Outcome,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source_identifier: Option<String>,
    /// `snapshot`, `latest-point`, `point-in-time` or `fast-clone`.
    #[serde(default)]
    pub source_mode: Option<String>,
    #[serde(default)]
    pub snapshot_identifier: Option<String>,
    /// What the clone was made from, in words.
    #[serde(default)]
    pub restored_from: Option<String>,
    /// The time the data in the refreshed engine is from.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub data_as_of: Option<OffsetDateTime>,
    #[serde(default)]
    pub clone_identifier: Option<String>,
    #[serde(default)]
    pub clone_class: Option<String>,
    /// Aurora's storage configuration (`aurora`, `aurora-iopt1`): it decides the price list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_storage_type: Option<String>,
    /// The DBLab Engine's version and API generation, as the run found them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// What the run's engine lock was keyed by: the engine's identity, or its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_lock: Option<String>,
    /// The snapshot the engine made of the refreshed pool: its own evidence of the refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_snapshot: Option<String>,
    /// That snapshot's `dataStateAt`: when the engine's pg_dump read the clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_data_state_at: Option<String>,
    /// Set when the engine was configured to ignore restore errors (and the request
    /// accepted it): tables may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_errors: Option<String>,
    /// Set when the engine's pools are on LVM (and the request accepted it): no snapshot
    /// proves the refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unproven: Option<String>,
    /// The pool the engine's failed refresh emptied, and what its users cannot do until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_pool_emptied: Option<String>,
    /// From the restore request until its deletion started: what the clone cost.
    #[serde(default)]
    pub clone_lifetime_seconds: Option<i64>,
    /// From `available` until its deletion started: what RDS bills (it bills from
    /// `available`, at least ten minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_billed_seconds: Option<i64>,
    /// The local copy of a shared encrypted snapshot the clone was restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_identifier: Option<String>,
    /// The copy's size, which its storage is billed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_gb: Option<i32>,
    /// From the copy's request until its deletion started (or the run's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_lifetime_seconds: Option<i64>,
    /// The clone was deleted once DBLab had dumped from it (`clone.deleteAfterDump`).
    #[serde(default)]
    pub clone_deleted_after_dump: bool,
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub error: Option<ErrorSummary>,
    /// What happened to the clone, in words.
    pub cleanup: String,
    /// True when a clone may still exist: the orphan sweep must remove it.
    #[serde(default)]
    pub clone_left_behind: bool,
    /// Written by `record` when the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Estimate>,
    /// A skipped run: the execution it duplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}

impl RunSummary {
    /// The target as people read it.
    pub fn target_label(&self) -> &str {
        self.target.as_deref().unwrap_or("(no target)")
    }

    pub fn duration_seconds(&self) -> Option<i64> {
        self.finished_at.map(|end| (end - self.started_at).whole_seconds())
    }

    /// Prices the run: the clone for what RDS bills of it (or, when its deletion is not
    /// confirmed, for the whole run: it may still be running), and what the execution used.
    pub fn estimate_cost(&mut self, region: &str, usage: Option<Usage>) {
        let engine = match self.source_type.as_deref() {
            Some("aurora-cluster") => Engine::aurora(self.clone_storage_type.as_deref()),
            _ => Engine::RdsPostgres,
        };
        let clone = match &self.clone_identifier {
            None => CloneUse::None,
            Some(_) => CloneUse::Billed {
                class: self.clone_class.as_deref(),
                seconds: self
                    .clone_billed_seconds
                    .or(self.clone_lifetime_seconds)
                    .unwrap_or_else(|| self.duration_seconds().unwrap_or_default()),
            },
        };
        let copy = self.copy_identifier.as_ref().map(|_| crate::cost::CopyUse {
            gb: self.copy_gb,
            seconds: self.copy_lifetime_seconds.unwrap_or_else(|| self.duration_seconds().unwrap_or_default()),
        });
        self.cost = Some(Estimate::new(engine, clone, region, usage).with_copy(copy));
    }
}
