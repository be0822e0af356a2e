//! The fault switches and personality of the emulated engine.

use serde::{Deserialize, Serialize};

/// How the next refresh ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    #[default]
    Succeed,
    FailDump,
    FailRestore,
    FailSnapshot,
    /// Fails at once, before any poller can see it running.
    FailImmediately,
    /// Stays in the dump phase forever.
    Hang,
    /// Restarts mid-dump with `skipStartRefresh`: `inactive`, `lastRefresh` null.
    GoInactive,
    /// Restarts mid-dump into `finished`, `lastRefresh` null: the new process found no pool
    /// a start-up refresh could take, its first pool active (retrieval.go `Run`,
    /// `SkipRefreshingError`).
    Restart,
    /// Restarts mid-dump, and the new process runs a startup refresh of its own with the
    /// config it has (a free pool): `lastRefresh` is set again and it ends `finished`.
    RestartAndRefresh,
}

/// Which engine release to behave as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Version {
    #[default]
    #[serde(rename = "4.1")]
    V41,
    #[serde(rename = "4.2")]
    V42,
}

impl Version {
    pub fn version_string(self) -> &'static str {
        match self {
            Self::V41 => "v4.1.3-20260507-0905",
            Self::V42 => "v4.2.0-rc.3-20260721-1410",
        }
    }
}

/// Why an accepted `/full-refresh` may never start, with no trace in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StartFailure {
    #[default]
    None,
    /// An error before the jobs are built (pool not ready, control-container clean-up,
    /// billing, job build): written to the engine's log only.
    Silent,
    /// Lost a race or found no free pool: a `refresh_skipped` warning is raised or bumped.
    Skipped,
}

/// One of the engine's pools, and the clones that hold it (a pool with clones is never
/// refreshed: the engine takes the last pool in its list that has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSetting {
    pub name: String,
    #[serde(default)]
    pub clones: Vec<String>,
    /// The engine cannot list this pool's clones (`zfs list` fails): `/status` shows its
    /// `cloneList` as `null`, and no refresh finds a pool past it.
    #[serde(default)]
    pub unlistable: bool,
    /// An LVM pool: no snapshot is ever made of it, and `/snapshots` lists one technical
    /// snapshot for it, stamped with the time of the call (lvmanager.go `SnapshotList`).
    #[serde(default)]
    pub lvm: bool,
}

impl PoolSetting {
    pub fn free(name: &str) -> Self {
        Self { name: name.into(), clones: Vec::new(), unlistable: false, lvm: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    pub token: String,
    pub version: Version,
    /// `logical` or `physical`.
    pub mode: String,
    /// The retrieval status at start (`inactive`, `finished`, `pending`, `refreshing`...).
    pub status: String,
    /// `null` until a refresh ran since the engine process started.
    pub last_refresh: Option<String>,
    pub dump_ms: u64,
    pub restore_ms: u64,
    pub snapshot_ms: u64,
    pub outcome: Outcome,
    /// Every call, health included, answers 500.
    pub http500: bool,
    /// Every token is refused.
    pub reject_token: bool,
    /// Connection keys absent from the engine's `server.yml`: updates to them are ignored
    /// (`dbInstanceIdentifier` for the `rdsIam` one).
    pub missing_keys: Vec<String>,
    pub config_modification: bool,
    pub immediate_restore: bool,
    /// When set, a refresh whose source password differs fails in the dump phase.
    pub expected_password: Option<String>,
    /// Config updates are refused with an error that echoes the connection string sent,
    /// password included (as written, URL-encoded in a DSN, and JSON-escaped in the echoed
    /// body), as an engine that cannot connect may answer.
    pub reject_config_echoing_dsn: bool,
    /// The next refresh fails in its dump with an alert quoting the source's DSN, password
    /// URL-encoded and JSON-escaped, as a tool's error text may.
    pub fail_echoing_password: bool,
    /// A `source.connectionString` in `server.yml` (4.2 dumps through it; 4.1 ignores it).
    pub connection_string: Option<String>,
    /// `retrieval.refresh.timetable`: the engine's own refresh schedule ("" for none).
    pub timetable: String,
    /// `retrieval.refresh.skipStartRefresh`: a new process runs no start-up refresh.
    pub skip_start_refresh: bool,
    pub start_failure: StartFailure,
    /// The next N accepted `/full-refresh` calls answer 502, as a proxy whose upstream
    /// timed out: the engine took the refresh, the caller never heard.
    pub lose_refresh_replies: u32,
    /// A config POST leaves the file's `connectionString` as it was (a file whose source
    /// section the engine's writer does not reach, e.g. through a YAML merge key).
    pub keep_connection_string: bool,
    /// Refreshes on real data (real pg_dump and pg_restore); without it, timed phases.
    pub data: Option<RealData>,
    /// `instanceID` in `/healthz` and `/status`: the same engine answers it on every
    /// address. `None` plays an engine that gives none.
    pub instance_id: Option<String>,
    /// The pools, the active one first.
    pub pools: Vec<PoolSetting>,
    /// The snapshot job finds a snapshot of the same name already there (the engine's
    /// `SnapshotExistsError`): the refresh ends `finished`, with no new snapshot.
    pub snapshot_exists: bool,
    /// `server.yml` without the logical snapshot job (neither listed nor specified): a
    /// refresh stops at `renewed` for good, with no snapshot (retrieval.go `SnapshotData`
    /// returns `errNoJobs` and nothing changes the status).
    pub no_snapshot_job: bool,
    /// `logicalRestore.options.ignoreErrors` in `server.yml`: a failing pg_restore does
    /// not stop the refresh, which ends `finished` with whatever was restored.
    pub restore_ignore_errors: bool,
    /// `logicalDump.options.ignoreErrors` in `server.yml` (a projection field; the dump
    /// job itself does not read it).
    pub dump_ignore_errors: bool,
    /// `source.type`: `remote` (the default), `local` or `rdsIam`.
    pub source_type: String,
    /// With `rdsIam`: the endpoint (`host:port`) of each RDS instance the engine can
    /// describe; the dump connects to the named instance's.
    pub rds_endpoints: std::collections::BTreeMap<String, String>,
    /// Someone else (an operator, the UI, another stack) starts a refresh just before the
    /// next config POST is applied: its jobs are built with the source configured before.
    pub foreign_refresh_on_config: bool,
    /// How far the engine host's clock is ahead of the real time (negative: behind). Every
    /// time the engine stamps (`lastRefresh`, `startedAt`, a snapshot's `createdAt`, the
    /// alerts) and every answer's `Date` header is on that clock.
    pub clock_ahead_seconds: i64,
    /// Hosts that refuse connections, as a deleted clone's address does: the engine's check
    /// of them answers `connection_error`, and a dump from one fails at its first connection
    /// (the real refreshes find this out for themselves).
    pub dead_sources: Vec<String>,
    /// Extensions the source's databases have and the engine's dump image lacks: its check
    /// of the source answers `warning` / `missing_extension` (db.go `checkDBContent`).
    pub missing_extensions: Vec<String>,
}

/// Every emulated engine is another engine: its own `instanceID` (a restart keeps it).
fn unique_instance_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("dblab-emulator-{}-{n}", std::process::id())
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token: "emulator-token".into(),
            version: Version::V41,
            mode: "logical".into(),
            status: "finished".into(),
            last_refresh: Some("2026-01-01T00:00:00Z".into()),
            dump_ms: 300,
            restore_ms: 300,
            snapshot_ms: 200,
            outcome: Outcome::Succeed,
            http500: false,
            reject_token: false,
            missing_keys: Vec::new(),
            config_modification: true,
            immediate_restore: false,
            expected_password: None,
            reject_config_echoing_dsn: false,
            fail_echoing_password: false,
            connection_string: None,
            timetable: String::new(),
            skip_start_refresh: false,
            start_failure: StartFailure::None,
            lose_refresh_replies: 0,
            keep_connection_string: false,
            data: None,
            instance_id: Some(unique_instance_id()),
            pools: vec![PoolSetting::free("dblab_pool")],
            snapshot_exists: false,
            no_snapshot_job: false,
            restore_ignore_errors: false,
            dump_ignore_errors: false,
            source_type: "remote".into(),
            rds_endpoints: Default::default(),
            foreign_refresh_on_config: false,
            clock_ahead_seconds: 0,
            dead_sources: Vec::new(),
            missing_extensions: Vec::new(),
        }
    }
}

/// Where real refreshes get their tools and put their data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealData {
    /// The folder holding `pg_dump`, `pg_restore` and `psql`.
    pub bin_dir: String,
    pub pool: Pool,
}

/// The engine's pool: the server a refresh restores into. The restored database takes the
/// source database's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
}
