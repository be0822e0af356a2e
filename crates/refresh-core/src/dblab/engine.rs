//! What the engine is, and whether it will take a refresh driven from outside: the checks
//! that run before a clone costs money, and again in `patch-dblab`.

use serde::{Deserialize, Serialize};

use super::client::DblabClient;
use super::config::{Api, EngineConfig};
use super::status::{InstanceStatus, SourceCheck};
use crate::error::RefreshError;

/// Which engine a run talked to: its version string (logged and recorded as given; it
/// may be a bare commit id) and the API generation its answers show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineIdentity {
    pub version: String,
    pub api: Api,
}

impl EngineIdentity {
    pub fn describe(&self) -> String {
        let version = if self.version.is_empty() { "version unknown" } else { self.version.as_str() };
        format!("{version} ({} API)", self.api.as_str())
    }
}

/// The engine answers, takes the token, and its retrieval can take a refresh.
#[derive(Debug, Clone)]
pub struct EngineState {
    pub version: String,
    /// `/healthz` `instanceID`, when the engine gives one.
    pub instance_id: Option<String>,
    pub status: InstanceStatus,
}

/// `GET /healthz` and `GET /status`: the engine answers, takes the token, and retrieves
/// in logical mode. Its version comes from `/healthz`, else from `/status`.
pub async fn logical_engine(client: &DblabClient) -> Result<EngineState, RefreshError> {
    let health = client.health().await?;
    let status = client.instance_status().await?;
    if status.retrieving.mode != "logical" {
        return Err(RefreshError::DblabNotLogical { mode: status.retrieving.mode.clone() });
    }
    let version = if health.version.is_empty() { status.engine.version.clone() } else { health.version };
    let instance_id = health.instance_id.filter(|id| !id.trim().is_empty());
    Ok(EngineState { version, instance_id, status })
}

/// As `logical_engine`, and no refresh running or pending.
pub(crate) async fn engine_state(client: &DblabClient) -> Result<EngineState, RefreshError> {
    let state = logical_engine(client).await?;
    let status = &state.status.retrieving.status;
    if status.is_busy() {
        return Err(RefreshError::DblabBusy { status: status.to_string(), detail: String::new() });
    }
    Ok(state)
}

/// The engine's configuration: the API generation (from the `/admin/config` projection)
/// and its whole `server.yml`.
pub async fn engine_config(client: &DblabClient) -> Result<(Api, EngineConfig), RefreshError> {
    let api = Api::of_projection(&client.config_projection().await?);
    Ok((api, client.config_file().await?))
}

/// The engine answering is the one the run locked (by its `instanceID`, which the preflight
/// read; the engine keeps it in `meta/instance_id`, config.go `LoadInstanceID`): after a DNS
/// or load-balancer switch another engine may answer at the same address, and the run must
/// neither change it nor take its word. A lock keyed by the address (an engine that gives
/// no `instanceID`) cannot tell.
pub fn same_engine(locked: Option<&str>, answering: Option<&str>, endpoint: &str) -> Result<(), RefreshError> {
    let Some(locked) = locked else { return Ok(()) };
    let answering = answering.map(str::trim).filter(|id| !id.is_empty());
    if answering == Some(locked) {
        return Ok(());
    }
    Err(RefreshError::DblabEngineChanged {
        endpoint: endpoint.to_string(),
        message: format!(
            "this run locked engine instance {locked} at its preflight, and {} answers now: another engine behind \
             the address (a DNS or load-balancer switch), or this one re-created without its meta directory (the \
             engine keeps its instanceID in meta/instance_id); nothing was changed on it by this step: check \
             dblab.apiEndpoint and run again",
            answering.map_or_else(|| "an engine without an instanceID".to_string(), |id| format!("instance {id}"))
        ),
    })
}

/// The engine lets the API change its configuration; otherwise the config POST that
/// points it at the clone would be refused, after the clone was paid for.
pub fn config_modifiable(status: &InstanceStatus) -> Result<(), RefreshError> {
    if status.engine.disable_config_modification {
        return Err(RefreshError::DblabMisconfigured(
            "the engine refuses configuration changes through its API (server.disableConfigModification is true); \
             a refresh from a clone must set the dump source: set it to false in the engine's server.yml and restart the engine"
                .into(),
        ));
    }
    Ok(())
}

/// The engine has no refresh schedule of its own. One of its refreshes could start between
/// this run's config change and its trigger (and be followed as ours), and later ones
/// would re-dump whatever host is configured, long after the clone is gone.
pub fn no_timetable(config: &EngineConfig) -> Result<(), RefreshError> {
    match config.timetable() {
        None => Ok(()),
        Some(timetable) => Err(RefreshError::DblabMisconfigured(format!(
            "the engine refreshes itself on a schedule (retrieval.refresh.timetable: {timetable:?}); refreshes driven \
             from outside need it off: set retrieval.refresh.timetable to \"\" in the engine's server.yml, and schedule \
             the refresh here instead"
        ))),
    }
}

/// The engine makes its snapshot, the run's evidence, only with its logical snapshot job:
/// without it a refresh dumps and restores, then stays `renewed` with no snapshot.
pub fn snapshot_job(config: &EngineConfig, api: Api) -> Result<String, RefreshError> {
    match config.snapshot_job_missing(api) {
        None => Ok("logicalSnapshot, which makes the snapshot that proves a refresh".into()),
        Some(why) => Err(RefreshError::DblabMisconfigured(format!(
            "the engine has no logical snapshot job ({why}): a refresh would restore into a pool, stay \"renewed\" and \
             make no snapshot, so its clones would not see the new data; add logicalSnapshot to retrieval.jobs and \
             its spec (retrieval.spec.logicalSnapshot) in the engine's server.yml"
        ))),
    }
}

/// How the engine words extensions its image lacks altogether (db.go
/// `buildExtensionsWarningMessage`); the same `missing_extension` result also covers
/// extensions the image has in an older version, which pg_dump's version-less
/// `CREATE EXTENSION` restores all the same.
const EXTENSIONS_MISSING: &str = "missing extensions installed in source databases";

/// What the engine's own check of the clone (`test-db-source`) allows: `ok` goes on;
/// `notice` (its image not yet analysed, more databases than it checks) and a warning of
/// older extension versions only go on and are said; a warning of extensions or locales
/// its image lacks (the restore would fail on them, or with `ignoreErrors` leave objects
/// out) and `error` (cannot connect, a query failed) stop the run before its config
/// changes, quoting the engine.
pub fn source_readable(check: &SourceCheck) -> Result<Option<String>, RefreshError> {
    let said = format!("{} ({}): {}", check.status, check.result, check.message.trim());
    let versions_only = check.result == "missing_extension" && !check.message.contains(EXTENSIONS_MISSING);
    match check.status.as_str() {
        "ok" => Ok(None),
        "notice" => Ok(Some(said)),
        "warning" if versions_only => Ok(Some(said)),
        _ => Err(RefreshError::DblabSourceRefused(format!(
            "the engine checked the clone as its dump would read it and answered {said}; its pools and config are \
             unchanged"
        ))),
    }
}

/// Whether a refresh on this engine can be proven: only a ZFS pool keeps the snapshot the
/// logical snapshot job makes. On LVM the job makes none and `/snapshots` lists one
/// technical snapshot per pool stamped with the time of the call (lvmanager.go
/// `CreateSnapshot`, `SnapshotList`), which would pass for new after any refresh. Refused
/// unless the request accepts it (`dblab.allowLvm`); then what the success rests on is said.
pub fn lvm_allowed(status: &InstanceStatus, allowed: bool) -> Result<Option<String>, RefreshError> {
    let lvm: Vec<&str> = status.pools.iter().filter(|p| p.mode == "lvm").map(|p| p.name.as_str()).collect();
    if lvm.is_empty() {
        return Ok(None);
    }
    let pools = lvm.join(", ");
    if allowed {
        return Ok(Some(format!(
            "the engine's pools are on LVM ({pools}), which keeps no snapshots: this refresh's success rests on the \
             engine's \"finished\" alone, with no new snapshot of its pool to prove the data arrived (dblab.allowLvm)"
        )));
    }
    Err(RefreshError::DblabMisconfigured(format!(
        "the engine's pools are on LVM ({pools}): LVM keeps no snapshots, and the engine lists a technical snapshot \
         stamped with the time it is asked, so nothing can prove a refresh brought new data; set dblab.allowLvm: true \
         to accept its \"finished\" alone"
    )))
}

/// What a restart of the engine would do after this run, said plainly: with
/// `skipStartRefresh` off the new process refreshes a pool without clones from the source
/// `server.yml` names (retrieval.go `Run`), which after a run is its clone, deleted by then.
pub(crate) fn restart_said(config: &EngineConfig, status: &InstanceStatus) -> String {
    if config.skip_start_refresh() {
        return "skipStartRefresh is on: a restart of the engine refreshes nothing and keeps every pool as it is"
            .into();
    }
    let other_pools = if status.pools.len() > 1 {
        "; the pool this run refreshes goes to the front of the list and is taken only when no other pool is free"
    } else {
        "; with one pool, its users can make no clone until then"
    };
    format!(
        "skipStartRefresh is off: a restart of the engine after this run starts a refresh of a pool without clones \
         from the source server.yml names, this run's clone, deleted by then. That refresh fails in its dump, before \
         the pool's data is touched, and the engine shows that pool empty until its next config change (the next run){other_pools}. \
         Set retrieval.refresh.skipStartRefresh: true in the engine's server.yml to keep restarts from refreshing"
    )
}

/// The engine stops a refresh at the first failing pg_restore, unless `ignoreErrors` says
/// otherwise: then `finished` can mean tables are missing. Refused unless the request
/// accepts it; accepted, the run says so.
pub fn ignored_errors_allowed(config: &EngineConfig, allowed: bool) -> Result<Option<String>, RefreshError> {
    let keys = config.ignored_errors();
    if keys.is_empty() {
        return Ok(None);
    }
    let keys = keys.join(" and ");
    if !allowed {
        return Err(RefreshError::DblabMisconfigured(format!(
            "the engine is configured to ignore errors ({keys}: true): a refresh whose pg_restore fails still ends \
             \"finished\", with tables missing; set it to false in the engine's server.yml, or accept partial \
             refreshes with dblab.allowIgnoredErrors: true"
        )));
    }
    Ok(Some(format!(
        "the engine was configured to ignore restore errors ({keys}: true): tables may be missing from this refresh"
    )))
}

/// With immediateRestore the engine restores while it dumps, so the end of the dump
/// cannot be told and `clone.deleteAfterDump` cannot be honoured.
pub(crate) fn immediate_restore_allows(config: &EngineConfig, delete_after_dump: bool) -> Result<String, RefreshError> {
    match (config.immediate_restore(), delete_after_dump) {
        (true, true) => Err(RefreshError::at(
            "clone.deleteAfterDump",
            "the engine has immediateRestore on: it restores while it dumps, so the end of the dump cannot be told; \
             turn one of them off",
        )),
        (true, false) => Ok("on: the dump will use one job, as the engine requires".into()),
        (false, _) => Ok("off".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::dblab::status::tests::with_pools;

    #[test]
    fn an_lvm_pool_is_refused_unless_accepted_and_then_said() {
        let mut status = with_pools(&[("a", &[]), ("b", &[])]);
        assert_eq!(super::lvm_allowed(&status, false).unwrap(), None);
        status.pools[1].mode = "lvm".into();
        let err = super::lvm_allowed(&status, false).unwrap_err();
        assert_eq!(err.name(), "DblabMisconfigured");
        assert!(err.to_string().contains("on LVM (b)"), "{err}");
        let said = super::lvm_allowed(&status, true).unwrap().unwrap();
        assert!(said.contains("dblab.allowLvm"), "{said}");
    }

    #[test]
    fn one_pool_and_a_start_up_refresh_are_said_plainly() {
        let one = with_pools(&[("p", &[])]);
        let two = with_pools(&[("a", &["c1"]), ("b", &[])]);
        let config = |skip: &str| {
            super::EngineConfig::parse(&format!("retrieval:\n  refresh:\n    skipStartRefresh: {skip}\n")).unwrap()
        };
        assert!(super::restart_said(&config("true"), &one).starts_with("skipStartRefresh is on"));
        assert!(super::restart_said(&config("yes"), &one).starts_with("skipStartRefresh is on"), "YAML 1.1");
        let off = super::restart_said(&config("false"), &one);
        assert!(off.starts_with("skipStartRefresh is off") && off.contains("with one pool"), "{off}");
        let off = super::restart_said(&config("false"), &two);
        assert!(off.contains("taken only when no other pool is free"), "{off}");
    }

    #[test]
    fn only_an_ok_or_a_notice_from_the_engines_check_of_the_clone_goes_on() {
        let check = |status: &str, result: &str| super::SourceCheck {
            status: status.into(),
            result: result.into(),
            message: "m".into(),
            db_version: None,
        };
        assert_eq!(super::source_readable(&check("ok", "ok")).unwrap(), None);
        let notice = super::source_readable(&check("notice", "unexplored_image")).unwrap().unwrap();
        assert_eq!(notice, "notice (unexplored_image): m");
        // Older extension versions only: pg_dump's CREATE EXTENSION takes the image's.
        let older = super::source_readable(&check("warning", "missing_extension")).unwrap().unwrap();
        assert_eq!(older, "warning (missing_extension): m");
        let mut missing = check("warning", "missing_extension");
        missing.message = "Image configured in \"databaseContainer\" missing extensions installed in source \
                           databases: app (postgis 3.4)"
            .into();
        for check in [missing, check("warning", "missing_locale"), check("error", "connection_error"), check("", "")] {
            let err = super::source_readable(&check).unwrap_err();
            assert_eq!(err.name(), "DblabSourceRefused", "{check:?}");
            let said =
                format!("{} ({}): {}; its pools and config are unchanged", check.status, check.result, check.message);
            assert!(err.to_string().contains(&said), "{err}");
        }
    }

    use super::*;

    fn config(yaml: &str) -> EngineConfig {
        EngineConfig::parse(yaml).unwrap()
    }

    #[test]
    fn a_timetable_is_refused_with_the_fix() {
        assert!(no_timetable(&config("retrieval: {refresh: {timetable: ''}}")).is_ok());
        assert!(no_timetable(&config("retrieval: {}")).is_ok());
        let err = no_timetable(&config("retrieval: {refresh: {timetable: '0 0 * * 1'}}")).unwrap_err();
        assert_eq!(err.name(), "DblabMisconfigured");
        assert!(err.to_string().contains("set retrieval.refresh.timetable to \"\""), "{err}");
    }

    #[test]
    fn immediate_restore_refuses_delete_after_dump_only() {
        let on = config("retrieval: {spec: {logicalDump: {options: {immediateRestore: {enabled: yes}}}}}");
        let err = immediate_restore_allows(&on, true).unwrap_err();
        assert_eq!(err.name(), "InvalidRequest");
        assert!(err.to_string().contains("clone.deleteAfterDump"));
        assert!(immediate_restore_allows(&on, false).is_ok());
        assert!(immediate_restore_allows(&config("retrieval: {}"), true).is_ok());
    }

    #[test]
    fn a_missing_snapshot_job_is_refused_by_name() {
        let full = "retrieval: {jobs: [logicalDump, logicalRestore, logicalSnapshot], spec: {logicalSnapshot: {}}}";
        for api in [Api::V41, Api::V42] {
            assert!(snapshot_job(&config(full), api).is_ok(), "{api:?}");
            let no_spec = snapshot_job(&config("retrieval: {jobs: [logicalDump, logicalSnapshot], spec: {}}"), api);
            assert!(no_spec.unwrap_err().to_string().contains("retrieval.spec.logicalSnapshot is missing"));
        }
        // 4.2 rebuilds the list from the specs; 4.1 runs the list as it is.
        let unlisted = config("retrieval: {jobs: [logicalDump, logicalRestore], spec: {logicalSnapshot: {}}}");
        assert!(snapshot_job(&unlisted, Api::V42).is_ok());
        let err = snapshot_job(&unlisted, Api::V41).unwrap_err();
        assert_eq!(err.name(), "DblabMisconfigured");
        assert!(err.to_string().contains("retrieval.jobs does not list logicalSnapshot"), "{err}");
    }

    #[test]
    fn identity_reads_well() {
        let id = EngineIdentity { version: "v4.2.0-rc.3-20260721-1410".into(), api: Api::V42 };
        assert_eq!(id.describe(), "v4.2.0-rc.3-20260721-1410 (4.2 API)");
    }

    #[test]
    fn ignored_errors_are_refused_unless_accepted_and_then_said() {
        let ignoring = config("retrieval: {spec: {logicalRestore: {options: {ignoreErrors: true}}}}");
        let err = ignored_errors_allowed(&ignoring, false).unwrap_err();
        assert_eq!(err.name(), "DblabMisconfigured");
        assert!(err.to_string().contains("logicalRestore.options.ignoreErrors: true"), "{err}");
        assert!(err.to_string().contains("dblab.allowIgnoredErrors"), "{err}");
        let said = ignored_errors_allowed(&ignoring, true).unwrap().unwrap();
        assert!(said.contains("tables may be missing"), "{said}");
        assert_eq!(ignored_errors_allowed(&config("retrieval: {}"), false).unwrap(), None);
    }
}
