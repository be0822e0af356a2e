//! What the engine answers a refresh's calls with: `/healthz`, `/status` (its retrieval
//! state, pools and alerts), `/instance/retrieval` and `/snapshots`, read in every shape
//! versions 4.1 and 4.2 send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::RefreshError;

/// The engine's retrieval status (models/retrieval.go `RetrievalStatus`). A value this
/// code does not know is kept as the engine wrote it, to be shown and never taken for one
/// it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RetrievalStatus {
    Inactive,
    Pending,
    Failed,
    Refreshing,
    Renewed,
    Snapshotting,
    Finished,
    Other(String),
}

impl RetrievalStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Refreshing => "refreshing",
            Self::Renewed => "renewed",
            Self::Snapshotting => "snapshotting",
            Self::Finished => "finished",
            Self::Other(other) => other,
        }
    }

    /// A refresh is really running: its jobs were built (retrieval.go `RefreshData` sets
    /// `refreshing` once they are and `renewed` after the restore; `SnapshotData`
    /// `snapshotting`).
    pub(crate) fn is_running(&self) -> bool {
        matches!(self, Self::Refreshing | Self::Renewed | Self::Snapshotting)
    }

    /// The engine takes no new refresh: the engine refuses one while a refresh or snapshot
    /// runs and while `pending` (srv/routes.go `refresh`, retrieval.go `CanStartRefresh`);
    /// `renewed`, between the restore and the snapshot job, is taken as running too.
    pub(crate) fn is_busy(&self) -> bool {
        self.is_running() || *self == Self::Pending
    }
}

impl From<String> for RetrievalStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "inactive" => Self::Inactive,
            "pending" => Self::Pending,
            "failed" => Self::Failed,
            "refreshing" => Self::Refreshing,
            "renewed" => Self::Renewed,
            "snapshotting" => Self::Snapshotting,
            "finished" => Self::Finished,
            _ => Self::Other(s),
        }
    }
}

impl From<RetrievalStatus> for String {
    fn from(s: RetrievalStatus) -> Self {
        s.as_str().to_string()
    }
}

/// Absent from an answer: not one the engine sends, so none this code acts on.
impl Default for RetrievalStatus {
    fn default() -> Self {
        Self::Other(String::new())
    }
}

impl std::fmt::Display for RetrievalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool's status (resources/pool.go `PoolStatus`); an unknown value is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum PoolStatus {
    Active,
    /// The pool a refresh under way restores into (retrieval.go `RefreshData`).
    Refreshing,
    Empty,
    Other(String),
}

impl From<String> for PoolStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "active" => Self::Active,
            "refreshing" => Self::Refreshing,
            "empty" => Self::Empty,
            _ => Self::Other(s),
        }
    }
}

/// Absent from an answer: not one the engine sends.
impl Default for PoolStatus {
    fn default() -> Self {
        Self::Other(String::new())
    }
}

impl std::fmt::Display for PoolStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Refreshing => "refreshing",
            Self::Empty => "empty",
            Self::Other(other) => other,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub edition: String,
    /// The engine's own identity, the same on every address it answers on.
    #[serde(default, rename = "instanceID")]
    pub instance_id: Option<String>,
}

/// The answer of `POST /admin/test-db-source` (models.DBSource, admin.go): `status` is
/// `ok`, `notice`, `warning` or `error`; `result` names what was found (`connection_error`,
/// `missing_extension`, `missing_locale`, `unexplored_image`, `unverified_database`...).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCheck {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub message: String,
    /// The source's major version; absent when the engine could not connect.
    #[serde(default)]
    pub db_version: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstanceStatus {
    pub retrieving: Retrieving,
    #[serde(default)]
    pub engine: EngineInfo,
    /// `null` or absent reads as none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub pools: Vec<PoolEntry>,
}

impl InstanceStatus {
    /// The pool a refresh under way restores into: the engine marks it `refreshing`
    /// (retrieval.go `RefreshData`).
    pub fn refreshing_pool(&self) -> Option<String> {
        self.pools.iter().find(|p| p.status == PoolStatus::Refreshing).map(|p| p.name.clone())
    }

    /// The pool a refresh would take: the engine refreshes only a pool without clones, the
    /// last such one in its list. With every pool in use, `POST /full-refresh` answers 400,
    /// so this is refused before a clone costs money, naming each pool and its clones.
    pub fn free_pool(&self) -> Result<String, RefreshError> {
        // As the engine walks (pool_manager.go `GetPoolToUpdate`): from the back, the first
        // pool without clones; a pool whose clones it cannot list ends the walk with none.
        for pool in self.pools.iter().rev() {
            match &pool.clone_list {
                Some(clones) if clones.is_empty() => return Ok(pool.name.clone()),
                Some(_) => {}
                None => {
                    return Err(RefreshError::DblabNoFreePool(format!(
                        "the engine could not list the clones of pool {} (its cloneList is null), and then refreshes no \
                         pool at all: its log says why (\"failed to list clones\")",
                        pool.name
                    )));
                }
            }
        }
        let pools = if self.pools.is_empty() {
            "it lists no pool".to_string()
        } else {
            self.pools
                .iter()
                .map(|p| {
                    format!("pool {} has clones {}", p.name, p.clone_list.as_deref().unwrap_or_default().join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        Err(RefreshError::DblabNoFreePool(format!(
            "the engine refreshes only a pool without clones, and {pools}: destroy those clones (or add a pool to the \
             engine) and run again"
        )))
    }

    /// The engine's pools and their clones, as the preflight shows them. With one pool, what a
    /// failed refresh does to the engine's users: it empties that pool (retrieval.go
    /// `RefreshData`), whose snapshots then leave `/snapshots`, so no clone can be made.
    pub(crate) fn pools_described(&self) -> String {
        let pools: Vec<String> = self
            .pools
            .iter()
            .map(|p| {
                let clones = match p.clone_list.as_deref() {
                    None => "clones unlisted".to_string(),
                    Some([]) => "no clones".to_string(),
                    Some(clones) => format!("clones {}", clones.join(", ")),
                };
                format!("{} ({}, {clones})", p.name, p.status)
            })
            .collect();
        let mut said = format!("{}: {}", pools.len(), pools.join("; "));
        if pools.len() == 1 {
            said.push_str(
                "; with one pool, a failed refresh leaves the engine with no data its users can clone until its next \
                 config change (the next run), and then with what the failure left on disk (the old data if the dump \
                 failed, part of the new or none if the restore had begun): only a successful refresh is sure to bring \
                 data back",
            );
        }
        said
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    #[serde(default)]
    pub version: String,
    /// POST /admin/config answers 400 when this is set.
    #[serde(default)]
    pub disable_config_modification: bool,
    /// When the engine process started: it changes with every restart.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The engine's own identity, kept across restarts.
    #[serde(default, rename = "instanceID")]
    pub instance_id: Option<String>,
}

/// One of the engine's pools, and the clones on it. The engine refreshes only a pool
/// without clones: the last one in this list that has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolEntry {
    #[serde(default)]
    pub name: String,
    /// `zfs` or `lvm` (the pool manager's mode).
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub status: PoolStatus,
    /// `None` (`null`) when the engine could not list the pool's clones: its listing gives
    /// a non-nil slice whenever it works (zfs.go and lvmanager.go `ListClonesNames`), and
    /// `/status` shows nil on its error (mode_local.go `buildPoolEntry`).
    #[serde(default)]
    pub clone_list: Option<Vec<String>>,
}

/// A snapshot as `GET /snapshots` lists it. In logical mode the snapshot job makes one
/// at the end of each refresh: `createdAt` is when it was made (the engine's clock), and
/// `dataStateAt` when pg_dump started reading the source (its archive time).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineSnapshot {
    pub id: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub data_state_at: Option<String>,
    #[serde(default)]
    pub pool: String,
}

/// A time the engine did not give: `null`, or `""` (what its `LocalTime` writes for a zero
/// time, local_time.go `MarshalJSON`, and what an execution state written before these times
/// were optional says for `null`).
pub(super) fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retrieving {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub status: RetrievalStatus,
    /// `null` until the first refresh since the engine process started.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub last_refresh: Option<String>,
    /// A map keyed by alert type (the OpenAPI spec's array is wrong).
    #[serde(default)]
    pub alerts: Option<BTreeMap<String, Alert>>,
    /// Filled only by `GET /instance/retrieval`, and only while a job runs.
    #[serde(default)]
    pub activity: Option<Activity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub message: String,
    /// A repeat of the same alert type bumps this and `lastSeen`.
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub last_seen: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Activity {
    #[serde(default)]
    pub source: Option<Vec<Value>>,
    #[serde(default)]
    pub target: Option<Vec<Value>>,
}

impl Retrieving {
    /// The failure alert's message, else any error-level one.
    pub(crate) fn failure_message(&self) -> Option<String> {
        let alerts = self.alerts.as_ref()?;
        alerts.get("refresh_failed").or_else(|| alerts.values().find(|a| a.level == "error")).map(|a| a.message.clone())
    }

    /// Where the `refresh_skipped` warning stands: a new or bumped one means the engine
    /// declined to start a refresh.
    pub(crate) fn skipped_mark(&self) -> Option<AlertMark> {
        let alert = self.alerts.as_ref()?.get("refresh_skipped")?;
        Some(AlertMark { count: alert.count, last_seen: alert.last_seen.clone(), message: alert.message.clone() })
    }
}

/// One alert as it stood at a moment, to tell later whether it was raised again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertMark {
    pub count: u64,
    pub last_seen: String,
    pub message: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alerts_map_is_read() {
        let v: InstanceStatus = serde_json::from_value(json!({"retrieving": {
            "mode": "logical", "status": "failed", "lastRefresh": null,
            "alerts": {"refresh_skipped": {"level": "warning", "message": "skipped", "lastSeen": "t1", "count": 3},
                       "refresh_failed": {"level": "error", "message": "boom", "lastSeen": "x", "count": 2}}},
            "engine": {"version": "v4.2.0", "disableConfigModification": true}}))
        .unwrap();
        assert_eq!(v.retrieving.failure_message().as_deref(), Some("boom"));
        assert_eq!(v.retrieving.last_refresh, None);
        assert_eq!(v.retrieving.skipped_mark().unwrap().count, 3);
        assert!(v.engine.disable_config_modification);
    }

    #[test]
    fn a_last_refresh_the_engine_did_not_give_is_none_whether_null_or_empty() {
        for absent in [json!({"status": "finished", "lastRefresh": ""}), json!({"status": "finished"})] {
            let seen: Retrieving = serde_json::from_value(absent).unwrap();
            assert_eq!((seen.last_refresh, seen.status), (None, RetrievalStatus::Finished));
        }
        let seen: Retrieving = serde_json::from_value(json!({"lastRefresh": "2026-12-05T10:00:00+02:00"})).unwrap();
        assert_eq!(seen.last_refresh.as_deref(), Some("2026-12-05T10:00:00+02:00"));
        let unknown: Retrieving = serde_json::from_value(json!({"status": "paused"})).unwrap();
        assert_eq!(
            (unknown.status.as_str(), unknown.status.is_busy()),
            ("paused", false),
            "kept, never taken for another"
        );
    }

    #[test]
    fn pools_with_their_clones_and_the_start_time_are_read_in_any_shape() {
        let v: InstanceStatus = serde_json::from_value(json!({
            "retrieving": {"mode": "logical", "status": "finished"},
            "engine": {"version": "v4.1.3", "instanceID": "abc", "startedAt": "2026-12-05T10:00:00+02:00"},
            "pools": [{"name": "a", "status": "active", "cloneList": ["c1"]}, {"name": "b", "cloneList": null}]}))
        .unwrap();
        assert_eq!(v.engine.started_at.as_deref(), Some("2026-12-05T10:00:00+02:00"));
        assert_eq!(v.pools[0].clone_list.as_deref(), Some(&["c1".to_string()][..]));
        assert_eq!(v.pools[1].clone_list, None, "unlisted, not free");
        let bare: InstanceStatus = serde_json::from_value(json!({"retrieving": {}, "pools": null})).unwrap();
        assert!(bare.pools.is_empty() && bare.engine.started_at.is_none());
        let health: Health = serde_json::from_value(json!({"version": "v4.2.0", "instanceID": "d1"})).unwrap();
        assert_eq!(health.instance_id.as_deref(), Some("d1"));
    }

    pub(crate) fn with_pools(pools: &[(&str, &[&str])]) -> InstanceStatus {
        InstanceStatus {
            retrieving: Default::default(),
            engine: Default::default(),
            pools: pools
                .iter()
                .map(|(name, clones)| PoolEntry {
                    name: (*name).into(),
                    mode: "zfs".into(),
                    status: PoolStatus::Active,
                    clone_list: Some(clones.iter().map(|c| (*c).into()).collect()),
                })
                .collect(),
        }
    }

    #[test]
    fn a_pool_whose_clones_cannot_be_listed_ends_the_walk() {
        let mut status = with_pools(&[("a", &[]), ("b", &[]), ("c", &["c1"])]);
        status.pools[1].clone_list = None;
        let err = status.free_pool().unwrap_err();
        assert_eq!(err.name(), "DblabNoFreePool");
        assert!(err.to_string().contains("could not list the clones of pool b"), "{err}");
        status.pools[2].clone_list = Some(Vec::new());
        assert_eq!(status.free_pool().unwrap(), "c", "a free pool before it in the walk is taken");
    }

    #[test]
    fn the_pool_refreshed_is_the_last_without_clones() {
        assert_eq!(with_pools(&[("a", &[]), ("b", &[])]).free_pool().unwrap(), "b");
        assert_eq!(with_pools(&[("a", &[]), ("b", &["c1"])]).free_pool().unwrap(), "a");
        let err = with_pools(&[("a", &["c1", "c2"]), ("b", &["c3"])]).free_pool().unwrap_err();
        assert_eq!(err.name(), "DblabNoFreePool");
        let text = err.to_string();
        assert!(text.contains("pool a has clones c1, c2; pool b has clones c3"), "{text}");
        assert!(with_pools(&[]).free_pool().unwrap_err().to_string().contains("it lists no pool"));
    }

    #[test]
    fn pools_are_described_with_their_clones_and_one_pool_with_what_a_failure_does() {
        let one = with_pools(&[("p", &[])]);
        assert!(one.pools_described().starts_with("1: p (active, no clones); with one pool, a failed refresh"));
        let mut two = with_pools(&[("a", &["c1"]), ("b", &[])]);
        assert_eq!(two.pools_described(), "2: a (active, clones c1); b (active, no clones)");
        two.pools[1].clone_list = None;
        assert_eq!(two.pools_described(), "2: a (active, clones c1); b (active, clones unlisted)");
    }
}
