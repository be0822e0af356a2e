//! What the engine answers a refresh's calls with: `/healthz`, `/status` (its retrieval
//! state, pools and alerts), `/instance/retrieval` and `/snapshots`, read in every shape
//! versions 4.1 and 4.2 send.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Statuses in which the engine will not take a new refresh.
pub const BUSY_STATUSES: &[&str] = &["refreshing", "snapshotting", "renewed", "pending"];
/// Statuses in which a refresh is really running (its jobs were built).
pub const RUNNING_STATUSES: &[&str] = &["refreshing", "renewed", "snapshotting"];

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
        self.pools.iter().find(|p| p.status == "refreshing").map(|p| p.name.clone())
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
    pub status: String,
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
    pub status: String,
    /// `null` until the first refresh since the engine process started.
    #[serde(default)]
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
    pub fn last_refresh(&self) -> &str {
        self.last_refresh.as_deref().unwrap_or_default()
    }

    /// The failure alert's message, else any error-level one.
    pub fn failure_message(&self) -> Option<String> {
        let alerts = self.alerts.as_ref()?;
        alerts.get("refresh_failed").or_else(|| alerts.values().find(|a| a.level == "error")).map(|a| a.message.clone())
    }

    /// Where the `refresh_skipped` warning stands: a new or bumped one means the engine
    /// declined to start a refresh.
    pub fn skipped_mark(&self) -> Option<AlertMark> {
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
mod tests {
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
        assert_eq!(v.retrieving.last_refresh(), "");
        assert_eq!(v.retrieving.skipped_mark().unwrap().count, 3);
        assert!(v.engine.disable_config_modification);
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
}
