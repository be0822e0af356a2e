//! The emulated engine's state, and a refresh's life in it: accepted, maybe never
//! started, then the jobs' statuses in timed phases, or a failure or a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::server_yml;
use crate::settings::Settings;

/// The source a refresh dumped from, as the engine's config said when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpSource {
    pub host: String,
    pub port: String,
    pub dbname: String,
    pub username: String,
    pub parallel_jobs: String,
    /// The 4.2 connection string the dump went through, if any.
    pub connection_string: Option<String>,
    /// `rdsIam`: the RDS instance whose endpoint the dump connected to.
    pub rds_instance: Option<String>,
    /// The pool the refresh restores into.
    pub pool: String,
    /// Started by someone other than the client under test (`foreignRefreshOnConfig`).
    pub foreign: bool,
}

/// A pool as `/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolState {
    pub name: String,
    pub mode: &'static str,
    pub status: String,
    pub data_state_at: Option<String>,
    /// `None` (`null`) when the clones cannot be listed (the engine's listing failed).
    pub clone_list: Option<Vec<String>>,
}

/// A snapshot as `GET /snapshots` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotState {
    pub id: String,
    pub created_at: String,
    pub data_state_at: String,
    pub pool: String,
    pub num_clones: usize,
    pub clones: Vec<String>,
    pub branch: &'static str,
    pub message: String,
    pub physical_size: u64,
    pub logical_size: u64,
}

/// What the engine's snapshot name carries: `dataStateAt` as `YYYYMMDDhhmmss`.
fn snapshot_id(pool: &str, data_state_at: OffsetDateTime) -> String {
    let t = data_state_at.to_offset(time::UtcOffset::UTC);
    format!(
        "{pool}@snapshot_{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) settings: Settings,
    pub(crate) status: String,
    pub(crate) last_refresh: Option<String>,
    pub(crate) alerts: BTreeMap<String, Value>,
    /// The engine's `server.yml`, password excluded.
    pub(crate) config: Value,
    /// What the engine wrote to its log that `/status` does not show.
    pub(crate) log: Vec<String>,
    pub(crate) password: Option<String>,
    pub(crate) phase: Option<&'static str>,
    /// Bumped by each refresh, so a superseded background task stops.
    pub(crate) generation: u64,
    pub(crate) refreshes_started: u32,
    pub(crate) config_updates: u32,
    pub(crate) dump_sources: Vec<DumpSource>,
    /// Each phase or status the refresh entered, and when (for the benchmark's timings).
    pub(crate) timeline: Vec<(String, SystemTime)>,
    /// When each authorised `/status` and `/instance/retrieval` was answered (for the
    /// benchmark: the looks that read the refresh's state).
    pub(crate) state_reads: Vec<SystemTime>,
    /// When this engine process started (`/status` `engine.startedAt`).
    pub(crate) started_at: String,
    /// The active pool first.
    pub(crate) pools: Vec<PoolState>,
    pub(crate) snapshots: Vec<SnapshotState>,
}

impl Engine {
    pub(crate) fn new(settings: Settings) -> Self {
        const FIRST_DATA: &str = "2026-01-01T00:00:00Z";
        let first = OffsetDateTime::parse(FIRST_DATA, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let pools = settings
            .pools
            .iter()
            .map(|p| PoolState {
                name: p.name.clone(),
                mode: if p.lvm { "lvm" } else { "zfs" },
                status: "active".into(),
                data_state_at: Some(FIRST_DATA.into()),
                clone_list: (!p.unlistable).then(|| p.clones.clone()),
            })
            .collect();
        let snapshots = settings
            .pools
            .iter()
            .filter(|p| !p.lvm)
            .map(|p| SnapshotState {
                id: snapshot_id(&p.name, first),
                created_at: FIRST_DATA.into(),
                data_state_at: FIRST_DATA.into(),
                pool: p.name.clone(),
                num_clones: p.clones.len(),
                clones: p.clones.clone(),
                branch: "main",
                message: String::new(),
                physical_size: 0,
                logical_size: 0,
            })
            .collect();
        Self {
            started_at: stamp(engine_clock(&settings)),
            pools,
            snapshots,
            status: settings.status.clone(),
            last_refresh: settings.last_refresh.clone(),
            alerts: BTreeMap::new(),
            config: server_yml::initial(&settings),
            log: Vec::new(),
            password: None,
            phase: None,
            generation: 0,
            refreshes_started: 0,
            config_updates: 0,
            dump_sources: Vec::new(),
            timeline: Vec::new(),
            state_reads: Vec::new(),
            settings,
        }
    }

    pub(crate) fn retrieving(&self, with_activity: bool) -> Value {
        let session = |app: &str| json!({"user": "postgres", "query": format!("COPY ... -- {app}"), "duration": 1.5, "waitEventType": "", "waitEvent": ""});
        let activity = if !with_activity || self.status != "refreshing" {
            Value::Null
        } else {
            match self.phase {
                Some("dump") if self.settings.immediate_restore => {
                    json!({"source": [session("dle_retrieval")], "target": [session("pg_restore")]})
                }
                Some("dump") => json!({"source": [session("dle_retrieval")], "target": []}),
                Some("restore") => json!({"source": [], "target": [session("pg_restore")]}),
                _ => Value::Null,
            }
        };
        let mut r = json!({
            "mode": self.settings.mode,
            "status": self.status,
            "lastRefresh": self.last_refresh,
            "nextRefresh": Value::Null,
            "alerts": self.alerts,
        });
        if with_activity {
            r["activity"] = activity;
        }
        r
    }

    pub(crate) fn mark(&mut self, what: &str) {
        self.timeline.push((what.to_string(), SystemTime::now()));
    }

    pub(crate) fn fail(&mut self, message: &str) {
        self.mark("failed");
        self.status = "failed".into();
        // A restore has already cleaned the pool's data directory (restore.go `Run`,
        // `CleanupDir`), marker included: the next reload finds no data there. A failed
        // dump leaves both, and the reload makes the pool active again; so does one under
        // immediateRestore, which writes over the data without cleaning it (dump.go `Run`).
        let immediate =
            server_yml::truthy(self.config.pointer("/retrieval/spec/logicalDump/options/immediateRestore/enabled"));
        let restoring = self.phase == Some("restore") && !immediate;
        self.phase = None;
        // A failed job empties the pool it was refreshing (retrieval.go `RefreshData`), found
        // by name: a reload since the start has made it `active` again in the list.
        let refreshed = self.dump_sources.last().map(|d| d.pool.clone());
        for pool in self.pools.iter_mut().filter(|p| p.status == "refreshing" || Some(&p.name) == refreshed.as_ref()) {
            pool.status = "empty".into();
            if restoring {
                pool.data_state_at = None;
            }
        }
        self.failed_alert(message);
    }

    /// `failed` with a `refresh_failed` alert, the pools as they are.
    pub(crate) fn failed_alert(&mut self, message: &str) {
        self.status = "failed".into();
        let count = self.alerts.get("refresh_failed").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_failed".into(),
            json!({"level": "error", "message": message, "lastSeen": self.now_text(), "count": count}),
        );
    }

    /// A failure before the jobs are built: the status, `lastRefresh` and alerts stay.
    pub(crate) fn not_started(&mut self, why: &str) {
        self.log.push(format!("failed to initiate full refresh: {why}"));
    }

    pub(crate) fn skipped(&mut self, message: &str) {
        let count = self.alerts.get("refresh_skipped").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_skipped".into(),
            json!({"level": "warning", "message": message, "lastSeen": self.now_text(), "count": count}),
        );
    }

    /// The restore marks the pool's data as of the dump (restore.go `markDatabase`,
    /// `updateDataStateAt`) before the snapshot job: a reload from here on sees the new data
    /// even when no snapshot follows.
    pub(crate) fn restored(&mut self, pool: &str, dumped_at: OffsetDateTime) {
        if let Some(p) = self.pools.iter_mut().find(|p| p.name == pool) {
            p.data_state_at = Some(stamp(dumped_at));
        }
    }

    /// The jobs are done: `renewed`, every alert cleared.
    pub(crate) fn renewed(&mut self) {
        self.status = "renewed".into();
        self.mark("renewed");
        self.phase = None;
        self.alerts.clear();
    }

    /// The snapshot job: the pool's old snapshots without clones go, a new one is made
    /// whose `dataStateAt` is the dump's time, the pool becomes the active one, and every
    /// alert is cleared. A snapshot of that name already there ends it `finished` all the
    /// same, with no new snapshot and the pool left where it was (as the engine does).
    pub(crate) fn finished(&mut self, pool: &str, dumped_at: OffsetDateTime) {
        self.status = "finished".into();
        self.mark("finished");
        self.alerts.clear();
        let id = snapshot_id(pool, dumped_at);
        if self.pools.iter().any(|p| p.name == pool && p.mode == "lvm") {
            // lvmanager.go `CreateSnapshot` makes none and returns no error: the job ends well
            // and the pool is made active (`MakeActive`).
            self.log.push("Creating a snapshot is not supported in LVM mode. Skip the operation.".into());
            self.make_active(pool, dumped_at);
            return;
        }
        if self.settings.snapshot_exists {
            self.log.push(format!("Skip snapshotting: snapshot {id} already exists"));
            if let Some(p) = self.pools.iter_mut().find(|p| p.name == pool) {
                p.status = "active".into();
            }
            return;
        }
        self.snapshots.retain(|s| s.pool != pool || !s.clones.is_empty());
        self.snapshots.push(SnapshotState {
            id,
            created_at: self.now_text(),
            data_state_at: stamp(dumped_at),
            pool: pool.to_string(),
            num_clones: 0,
            clones: Vec::new(),
            branch: "main",
            message: String::new(),
            physical_size: 0,
            logical_size: 0,
        });
        self.make_active(pool, dumped_at);
    }

    /// pool_manager.go `MakeActive`: the pool to the front of the list, `active`.
    fn make_active(&mut self, pool: &str, dumped_at: OffsetDateTime) {
        if let Some(at) = self.pools.iter().position(|p| p.name == pool) {
            let mut active = self.pools.remove(at);
            active.status = "active".into();
            active.data_state_at = Some(stamp(dumped_at));
            self.pools.insert(0, active);
        }
    }

    /// A config reload, as every config POST that changes `server.yml` makes one
    /// (srv/config.go `applyProjectedAdminConfig` -> cmd/database-lab/main.go `reloadConfig`
    /// -> pool_manager.go `Manager.Reload` -> `ReloadPools`): the pool list is rebuilt from
    /// scratch by `examineEntries`, pools walked in name order, each to the front when its
    /// `dataStateAt` is strictly newer than the front's and to the back otherwise; every pool
    /// with data is `active` again, one without is `empty`. The order the refreshes made
    /// (`MakeActive`) is lost: the pool the next refresh takes may not be the one the list
    /// showed before the POST.
    pub(crate) fn reload_pools(&mut self) {
        let mut by_name = std::mem::take(&mut self.pools);
        by_name.sort_by(|a, b| a.name.cmp(&b.name));
        let data_time =
            |p: &PoolState| p.data_state_at.as_deref().and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        let mut list: std::collections::VecDeque<PoolState> = std::collections::VecDeque::new();
        for mut pool in by_name {
            pool.status = if pool.data_state_at.is_some() { "active" } else { "empty" }.into();
            let newer = match (list.front().and_then(data_time), data_time(&pool)) {
                (_, None) => list.is_empty(),
                (None, Some(_)) => true,
                (Some(front), Some(this)) => front < this,
            };
            if newer {
                list.push_front(pool);
            } else {
                list.push_back(pool);
            }
        }
        self.pools = list.into();
    }

    /// The pool a refresh would take: the last one in the list without clones.
    pub(crate) fn pool_to_refresh(&self) -> Option<String> {
        // pool_manager.go `GetPoolToUpdate`: a pool whose clones cannot be listed ends the walk.
        for pool in self.pools.iter().rev() {
            match &pool.clone_list {
                Some(clones) if clones.is_empty() => return Some(pool.name.clone()),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// A new engine process: what lived only in memory is gone.
    pub(crate) fn restarted(&mut self, status: &str) {
        self.started_at = later_than(&self.started_at, self.now());
        self.generation += 1;
        self.status = status.into();
        self.mark(status);
        self.last_refresh = None;
        self.phase = None;
        self.alerts.clear();
        self.log.push("engine restarted".into());
        // A new process builds its pool list as a reload does (cmd/database-lab/main.go).
        self.reload_pools();
    }
}

/// A value as Go's `json.Marshal` writes it, HTML-safe (`<`, `>`, `&` as `\u` escapes,
/// encoding/json `encodeState.string`): how the engine quotes JSON in its messages.
pub(crate) fn go_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// Percent-encoding of everything but RFC 3986's unreserved characters, as a DSN's
/// userinfo carries a password.
pub(crate) fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A time as the engine writes one: RFC 3339, truncated to the second.
pub(crate) fn stamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

/// The engine host's clock: ours, `clockAheadSeconds` off.
fn engine_clock(settings: &Settings) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(settings.clock_ahead_seconds)
}

/// `http.TimeFormat`, as Go's `net/http` writes every answer's `Date` header.
const HTTP_DATE: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

impl Engine {
    /// Now, on the engine host's clock: every time the engine stamps is on it.
    pub(crate) fn now(&self) -> OffsetDateTime {
        engine_clock(&self.settings)
    }

    pub(crate) fn now_text(&self) -> String {
        stamp(self.now())
    }

    /// The `Date` header of an answer sent now.
    pub(crate) fn http_date(&self) -> String {
        self.now().to_offset(time::UtcOffset::UTC).format(HTTP_DATE).unwrap_or_default()
    }
}

/// Now (`now`), or a second after `before` if that is not later: a restarted process never
/// shows the start time of the one before (a real restart takes longer than a second).
pub(crate) fn later_than(before: &str, now: OffsetDateTime) -> String {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    match OffsetDateTime::parse(before, &Rfc3339) {
        Ok(b) if b >= now => stamp(b + time::Duration::seconds(1)),
        _ => stamp(now),
    }
}

#[derive(Clone)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Engine>>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic elsewhere must not wedge the emulator: the state stays usable.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::PoolSetting;

    fn engine_with(pools: &[(&str, Option<&str>, &str)]) -> Engine {
        let settings =
            Settings { pools: pools.iter().map(|(n, _, _)| PoolSetting::free(n)).collect(), ..Settings::default() };
        let mut engine = Engine::new(settings);
        engine.pools = pools
            .iter()
            .map(|(name, at, status)| PoolState {
                name: (*name).into(),
                mode: "zfs",
                status: (*status).into(),
                data_state_at: at.map(str::to_string),
                clone_list: Some(Vec::new()),
            })
            .collect();
        engine
    }

    fn order(engine: &Engine) -> Vec<(&str, &str)> {
        engine.pools.iter().map(|p| (p.name.as_str(), p.status.as_str())).collect()
    }

    #[test]
    fn a_reload_rebuilds_the_list_as_examine_entries_does() {
        // Refreshed c, then b: the list the refreshes made is [b, c, a], and the next
        // refresh would take a. The reload walks a, b, c by name: a to the front, b newer to
        // the front, c not newer than b to the back: [b, a, c], and the refresh takes c.
        let mut e = engine_with(&[
            ("b", Some("2026-12-03T03:00:00Z"), "active"),
            ("c", Some("2026-12-02T03:00:00Z"), "active"),
            ("a", Some("2026-12-01T03:00:00Z"), "active"),
        ]);
        assert_eq!(e.pool_to_refresh().as_deref(), Some("a"));
        e.reload_pools();
        assert_eq!(order(&e), [("b", "active"), ("a", "active"), ("c", "active")]);
        assert_eq!(e.pool_to_refresh().as_deref(), Some("c"));
    }

    #[test]
    fn a_restored_pool_whose_snapshot_failed_comes_first_at_the_next_reload() {
        let mut e = engine_with(&[
            ("a", Some("2026-12-02T03:00:00Z"), "active"),
            ("b", Some("2026-12-01T03:00:00Z"), "active"),
            ("c", Some("2026-12-01T03:00:00Z"), "refreshing"),
        ]);
        e.restored("c", OffsetDateTime::parse("2026-12-03T03:00:00Z", &Rfc3339).unwrap());
        e.phase = Some("snapshot");
        e.fail("failed to create a snapshot");
        assert_eq!(order(&e), [("a", "active"), ("b", "active"), ("c", "empty")]);
        e.restarted("inactive");
        assert_eq!(order(&e), [("c", "active"), ("a", "active"), ("b", "active")], "a restart reloads");
    }

    #[test]
    fn a_pool_whose_clones_cannot_be_listed_stops_the_search_for_a_pool() {
        let mut e = engine_with(&[("a", None, "active"), ("b", None, "active")]);
        e.pools[1].clone_list = None;
        assert_eq!(e.pool_to_refresh(), None, "pool_manager.go GetPoolToUpdate returns nil");
        e.pools.swap(0, 1);
        assert_eq!(e.pool_to_refresh().as_deref(), Some("a"));
    }

    #[test]
    fn a_failed_restore_leaves_its_pool_empty_after_a_reload_and_a_failed_dump_does_not() {
        for (phase, after_reload) in [("restore", "empty"), ("dump", "active")] {
            let mut e = engine_with(&[("a", Some("2026-12-01T03:00:00Z"), "refreshing")]);
            e.phase = Some(phase);
            e.fail("boom");
            assert_eq!(order(&e), [("a", "empty")], "{phase}");
            e.reload_pools();
            assert_eq!(order(&e), [("a", after_reload)], "{phase}");
        }
    }

    #[test]
    fn under_immediate_restore_a_failed_restore_leaves_the_data_it_overwrote() {
        let mut e = engine_with(&[("a", Some("2026-12-01T03:00:00Z"), "refreshing")]);
        e.config["retrieval"]["spec"]["logicalDump"]["options"]["immediateRestore"] = json!({"enabled": true});
        e.phase = Some("restore");
        e.fail("boom");
        e.reload_pools();
        assert_eq!(order(&e), [("a", "active")], "nothing cleaned the directory: the old marker stays");
    }

    #[test]
    fn an_lvm_refresh_ends_well_with_its_pool_active_in_front_and_no_snapshot() {
        let mut e = engine_with(&[("a", Some("2026-12-02T03:00:00Z"), "active"), ("b", None, "refreshing")]);
        e.pools[1].mode = "lvm";
        let before = e.snapshots.len();
        e.finished("b", OffsetDateTime::parse("2026-12-03T03:00:00Z", &Rfc3339).unwrap());
        assert_eq!(order(&e), [("b", "active"), ("a", "active")], "MakeActive");
        assert_eq!(e.snapshots.len(), before, "LVM makes no snapshot");
        assert_eq!(e.status, "finished");
    }

    // pool_manager_test.go `TestManager_GetPoolToUpdate`, on the emulator's pool list.
    #[test]
    fn the_pool_to_update_is_found_as_the_engines_own_tests_find_it() {
        let mut e = engine_with(&[("pool1", None, "active"), ("pool2", None, "active")]);
        e.pools[0].clone_list = Some(vec!["clone1".into()]);
        assert_eq!(e.pool_to_refresh().as_deref(), Some("pool2"), "returns pool with no clones from back");
        e.pools[1].clone_list = Some(vec!["c2".into()]);
        assert_eq!(e.pool_to_refresh(), None, "returns nil when all pools have clones");
        let mut one = engine_with(&[("pool1", None, "active")]);
        one.pools[0].clone_list = None;
        assert_eq!(one.pool_to_refresh(), None, "returns nil when list clone fails");
        one.pools.clear();
        assert_eq!(one.pool_to_refresh(), None, "returns nil on empty list");
    }

    #[test]
    fn a_reload_makes_pools_with_data_active_and_keeps_name_order_among_equals() {
        let same = Some("2026-12-01T03:00:00Z");
        let mut e = engine_with(&[("c", same, "refreshing"), ("a", same, "empty"), ("b", None, "active")]);
        e.reload_pools();
        // a first (the first seen); b, without data, and c, not newer than a: to the back.
        assert_eq!(order(&e), [("a", "active"), ("b", "empty"), ("c", "active")]);
        let mut none = engine_with(&[("b", None, "active"), ("a", None, "active")]);
        none.reload_pools();
        assert_eq!(order(&none), [("a", "empty"), ("b", "empty")]);
    }
}
