//! An emulator of the DBLab Engine API calls a refresh makes, behaving as the real engine
//! does in versions 4.1 and 4.2 (`docs/dblab-engine.md`): token check, the seven retrieval
//! statuses moving through a refresh in timed phases, the alerts map, `lastRefresh` set
//! when the jobs start and lost on a restart, a `server.yml` whose config POST silently
//! skips keys the file lacks, a `/admin/config` projection that hides `immediateRestore`
//! and (4.2) a `connectionString` that overrides the discrete source fields, failures to
//! start that show only in the engine's log, and 400 when a refresh is already running.
//! Its pools follow the engine's pool manager: the list rebuilt on every config POST that
//! changes `server.yml`, as `examineEntries` builds it (pool_manager.go), the refresh taking
//! the last pool without clones, a failed refresh emptying its pool (and, past the dump,
//! its data), and `/snapshots` without the pools that are `empty`.
//!
//! Faults for tests and demos are switched by `Settings` (at start, or later through
//! `POST /_emulator/settings`); `GET /_emulator/state` shows what the engine was told.

mod api;
mod engine;
mod real;
mod refresh;
mod server_yml;
mod settings;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use engine::{DumpSource, PoolState, SnapshotState};
use engine::{Engine, Shared};
pub use settings::{Outcome, Pool, PoolSetting, RealData, Settings, StartFailure, Version};

/// A running emulator; it stops when dropped.
pub struct Emulator {
    addr: SocketAddr,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

/// What the emulated engine has been told, for assertions.
#[derive(Debug, Clone)]
pub struct EngineView {
    pub status: String,
    pub last_refresh: Option<String>,
    pub refreshes_started: u32,
    pub config_updates: u32,
    pub password: Option<String>,
    pub dump_sources: Vec<DumpSource>,
    /// The engine's `server.yml` (password excluded).
    pub config: Value,
    /// What the engine logged and `/status` does not show.
    pub log: Vec<String>,
    /// Each phase or status the refreshes entered (`dump`, `restore`, `renewed`,
    /// `snapshotting`, `finished`, `failed`, `inactive`), and when.
    pub timeline: Vec<(String, SystemTime)>,
    /// When each authorised `/status` and `/instance/retrieval` was answered.
    pub state_reads: Vec<SystemTime>,
    /// `engine.startedAt`: changes with every restart.
    pub started_at: String,
    pub pools: Vec<PoolState>,
    pub snapshots: Vec<SnapshotState>,
}

impl Emulator {
    /// Listens on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr, settings: Settings) -> std::io::Result<Self> {
        Self::serve(TcpListener::bind(addr).await?, settings)
    }

    /// Listens on a port bound before (one a test's stack already names).
    pub fn start_on(listener: std::net::TcpListener, settings: Settings) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Self::serve(TcpListener::from_std(listener)?, settings)
    }

    fn serve(listener: TcpListener, settings: Settings) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Shared(Arc::new(Mutex::new(Engine::new(settings))));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = api::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { addr, shared, _stop: stop })
    }

    /// On a free loopback port.
    pub async fn start_local(settings: Settings) -> std::io::Result<Self> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], 0)), settings).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn view(&self) -> EngineView {
        let e = self.shared.lock();
        EngineView {
            status: e.status.clone(),
            last_refresh: e.last_refresh.clone(),
            refreshes_started: e.refreshes_started,
            config_updates: e.config_updates,
            password: e.password.clone(),
            dump_sources: e.dump_sources.clone(),
            config: e.config.clone(),
            log: e.log.clone(),
            timeline: e.timeline.clone(),
            state_reads: e.state_reads.clone(),
            started_at: e.started_at.clone(),
            pools: e.pools.clone(),
            snapshots: e.snapshots.clone(),
        }
    }

    /// A fresh engine with these settings, as after a restart; the token and the
    /// `instanceID` stay the same, and `engine.startedAt` moves on.
    pub fn restart(&self, settings: Settings) {
        let mut engine = self.shared.lock();
        let token = engine.settings.token.clone();
        let instance_id = engine.settings.instance_id.clone();
        let before = engine.started_at.clone();
        *engine = Engine::new(Settings { token, instance_id, ..settings });
        engine.started_at = engine::later_than(&before, engine.now());
    }

    /// The engine process restarts: its `server.yml`, password, pools, their data and
    /// snapshots stay (they are on disk); what it held in memory goes; the new process
    /// rebuilds its pool list and runs its start-up refresh, unless `skipStartRefresh`
    /// (retrieval.go `Run`).
    pub fn restart_process(&self) {
        let mut engine = self.shared.lock();
        refresh::start_process(&self.shared, &mut engine);
    }

    /// Someone opens a clone on a pool (or closes all of them): the pool cannot be
    /// refreshed while it has one.
    pub fn set_pool_clones(&self, pool: &str, clones: &[&str]) {
        let mut engine = self.shared.lock();
        if let Some(p) = engine.pools.iter_mut().find(|p| p.name == pool) {
            p.clone_list = Some(clones.iter().map(|c| c.to_string()).collect());
        }
    }

    /// The settings the engine runs with.
    pub fn settings(&self) -> Settings {
        self.shared.lock().settings.clone()
    }

    /// Changes the fault switches without resetting the engine's state.
    pub fn configure(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.shared.lock().settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_skips_keys_the_file_lacks_and_keeps_the_password_out() {
        let settings = Settings { missing_keys: vec!["port".into()], ..Settings::default() };
        let mut config = server_yml::initial(&settings);
        let patch = json!({"retrieval": {"spec": {"logicalDump": {"options": {
            "source": {"connection": {"host": "clone", "port": 6543, "password": "pw", "dbname": null},
                       "rdsIam": {"dbInstanceIdentifier": "x"}},
            "immediateRestore": {"enabled": true},
            "parallelJobs": 4}}}}});
        let password = server_yml::merge(&mut config, &patch);
        let conn = &config["retrieval"]["spec"]["logicalDump"]["options"]["source"]["connection"];
        assert_eq!(conn["host"], "clone");
        assert!(conn.get("port").is_none(), "port was absent and must stay absent");
        assert!(conn.get("password").is_none());
        assert_eq!(conn["dbname"], "postgres", "null leaves the value");
        assert!(config.pointer("/retrieval/spec/logicalDump/options/source/rdsIam").is_none());
        assert_eq!(config["retrieval"]["spec"]["logicalDump"]["options"]["parallelJobs"], 4);
        assert_eq!(
            config["retrieval"]["spec"]["logicalDump"]["options"]["immediateRestore"]["enabled"], false,
            "not a projection field: ignored"
        );
        assert_eq!(password.as_deref(), Some("pw"));
    }

    #[test]
    fn the_projection_hides_immediate_restore_and_the_connection_string() {
        let settings = Settings {
            immediate_restore: true,
            connection_string: Some("host=prod sslmode=require".into()),
            ..Settings::default()
        };
        let config = server_yml::initial(&settings);
        for version in [Version::V41, Version::V42] {
            let shown = server_yml::projection(&config, version, "logical");
            let text = shown.to_string();
            assert!(!text.contains("immediateRestore") && !text.contains("connectionString"), "{text}");
            assert_eq!(shown.get("retrievalMode").is_some(), version == Version::V42);
        }
        let yaml = server_yml::yaml(&config, true);
        assert!(yaml.contains("immediateRestore") && yaml.contains("connectionString: host=prod sslmode=require"));
        assert!(yaml.contains("password: '********'"), "{yaml}");
    }

    #[test]
    fn a_42_connection_string_decides_where_the_dump_goes() {
        let settings = Settings {
            connection_string: Some("postgresql://u@prod.example:6000/orders?sslmode=require".into()),
            ..Settings::default()
        };
        let config = server_yml::initial(&settings);
        let none = Default::default();
        let source = server_yml::effective_source(&config, Version::V42, &none);
        assert_eq!((source.host.as_str(), source.port.as_str()), ("prod.example", "6000"));
        assert!(source.connection_string.is_some());
        let source = server_yml::effective_source(&config, Version::V41, &none);
        assert_eq!(source.host, "old-source.internal");
        assert!(source.connection_string.is_none());
    }

    #[test]
    fn a_42_connection_string_is_checked_as_the_engine_does() {
        assert!(server_yml::check_connection_string("").is_ok());
        assert!(server_yml::check_connection_string("host=a sslmode=require").is_ok());
        assert!(server_yml::check_connection_string("postgresql://u:pw@a/db").is_err());
        assert!(server_yml::check_connection_string("host=a,b").is_err());
        assert!(server_yml::check_connection_string("port=x").is_err());
    }

    #[test]
    fn the_dump_source_is_worked_out_as_the_engines_dump_job_does() {
        let endpoints = std::collections::BTreeMap::from([("clone-1".to_string(), "clone.internal:5433".to_string())]);
        // No port, no user: the job's defaults.
        let settings = Settings { missing_keys: vec!["port".into(), "username".into()], ..Settings::default() };
        let source = server_yml::effective_source(&server_yml::initial(&settings), Version::V41, &endpoints);
        assert_eq!((source.port.as_str(), source.username.as_str()), ("5432", "postgres"));
        // rdsIam: the instance's endpoint, whatever the host field says; an unknown one fails at run time.
        let mut config = server_yml::initial(&Settings { source_type: "rdsIam".into(), ..Settings::default() });
        let unknown = server_yml::effective_source(&config, Version::V42, &endpoints);
        assert!(unknown.run_error.is_some_and(|e| e.contains("old-source-instance")));
        config["retrieval"]["spec"]["logicalDump"]["options"]["source"]["rdsIam"]["dbInstanceIdentifier"] =
            json!("clone-1");
        let known = server_yml::effective_source(&config, Version::V42, &endpoints);
        assert_eq!(
            (known.host.as_str(), known.port.as_str(), known.rds_instance.as_deref()),
            ("clone.internal", "5433", Some("clone-1"))
        );
        // An unknown type: the jobs cannot be built.
        let odd = server_yml::initial(&Settings { source_type: "s3".into(), ..Settings::default() });
        assert!(server_yml::effective_source(&odd, Version::V41, &endpoints).build_error.is_some());
        // A 4.2 string without a user: the engine's OS user, not the field's.
        let string =
            Settings { connection_string: Some("host=clone.internal dbname=app".into()), ..Settings::default() };
        let via = server_yml::effective_source(&server_yml::initial(&string), Version::V42, &endpoints);
        assert_eq!((via.username.as_str(), via.port.as_str()), ("root", "5432"));
    }

    #[test]
    fn a_refresh_takes_the_last_pool_without_clones_and_its_snapshot_replaces_the_old_one() {
        let pools = vec![PoolSetting::free("a"), PoolSetting { clones: vec!["c1".into()], ..PoolSetting::free("b") }];
        let mut engine = Engine::new(Settings { pools, ..Settings::default() });
        assert_eq!(engine.pool_to_refresh().as_deref(), Some("a"));
        let dumped = time::macros::datetime!(2026-12-05 10:00:00 UTC);
        engine.finished("a", dumped);
        assert_eq!(engine.pools[0].name, "a", "the refreshed pool is the active one");
        let of_a: Vec<_> = engine.snapshots.iter().filter(|s| s.pool == "a").collect();
        assert_eq!(of_a.len(), 1, "the old snapshot without clones is gone");
        assert_eq!(
            (of_a[0].id.as_str(), of_a[0].data_state_at.as_str()),
            ("a@snapshot_20261205100000", "2026-12-05T10:00:00Z")
        );
        assert_eq!(engine.snapshots.iter().filter(|s| s.pool == "b").count(), 1, "a snapshot with clones stays");
        // A snapshot of the same name already there: finished all the same, nothing new.
        let mut again = Engine::new(Settings { snapshot_exists: true, ..Settings::default() });
        let before = again.snapshots.clone();
        again.finished("dblab_pool", dumped);
        assert_eq!((again.status.as_str(), &again.snapshots), ("finished", &before));
        assert!(again.log.iter().any(|l| l.starts_with("Skip snapshotting")));
        let all_taken = Engine::new(Settings {
            pools: vec![PoolSetting { clones: vec!["c".into()], ..PoolSetting::free("a") }],
            ..Settings::default()
        });
        assert_eq!(all_taken.pool_to_refresh(), None);
    }
}
