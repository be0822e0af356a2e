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
    pub clone_list: Vec<String>,
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
                mode: "zfs",
                status: "active".into(),
                data_state_at: Some(FIRST_DATA.into()),
                clone_list: p.clones.clone(),
            })
            .collect();
        let snapshots = settings
            .pools
            .iter()
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
            started_at: now_text(),
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
        self.phase = None;
        // A failed job empties the pool it was restoring into.
        for pool in self.pools.iter_mut().filter(|p| p.status == "refreshing") {
            pool.status = "empty".into();
        }
        let count = self.alerts.get("refresh_failed").and_then(|a| a["count"].as_u64()).unwrap_or(0) + 1;
        self.alerts.insert(
            "refresh_failed".into(),
            json!({"level": "error", "message": message, "lastSeen": now_text(), "count": count}),
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
            json!({"level": "warning", "message": message, "lastSeen": now_text(), "count": count}),
        );
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
            created_at: now_text(),
            data_state_at: stamp(dumped_at),
            pool: pool.to_string(),
            num_clones: 0,
            clones: Vec::new(),
            branch: "main",
            message: String::new(),
            physical_size: 0,
            logical_size: 0,
        });
        if let Some(at) = self.pools.iter().position(|p| p.name == pool) {
            let mut active = self.pools.remove(at);
            active.status = "active".into();
            active.data_state_at = Some(stamp(dumped_at));
            self.pools.insert(0, active);
        }
    }

    /// The pool a refresh would take: the last one in the list without clones.
    pub(crate) fn pool_to_refresh(&self) -> Option<String> {
        self.pools.iter().rev().find(|p| p.clone_list.is_empty()).map(|p| p.name.clone())
    }

    /// A new engine process: what lived only in memory is gone.
    pub(crate) fn restarted(&mut self, status: &str) {
        self.started_at = later_than(&self.started_at);
        self.generation += 1;
        self.status = status.into();
        self.mark(status);
        self.last_refresh = None;
        self.phase = None;
        self.alerts.clear();
        self.log.push("engine restarted".into());
    }
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

pub(crate) fn now_text() -> String {
    stamp(OffsetDateTime::now_utc())
}

/// Now, or a second after `before` if that is not later: a restarted process never shows
/// the start time of the one before (a real restart takes longer than a second).
pub(crate) fn later_than(before: &str) -> String {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
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
