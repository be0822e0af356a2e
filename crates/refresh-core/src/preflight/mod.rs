//! The one preflight: everything that can be known before a clone costs money, as named
//! checks. `find-snapshot` stops at the first failure and fails the run with its error;
//! `dblab-refresh validate --preflight` runs them all and prints each.

use std::time::Instant;

use time::OffsetDateTime;

use crate::dblab::engine::{self, EngineIdentity};
use crate::dblab::{Connector, DblabClient, Engine};
use crate::error::RefreshError;
use crate::rds::Rds;
use crate::request::{RefreshRequest, SERVERLESS_CLASS, ServerlessCapacity, SourceMode};
use crate::run::RestoreSource;
use crate::secrets::SecretReader;

mod capacity;
mod keys;

use capacity::{iops_fit, serverless_capacity, supported_capacity};
use keys::{encryption_allowed, local_key_usable};

pub struct Deps<'a> {
    pub rds: &'a Rds,
    /// The KMS keys the deployed stack lets the restore use (its `SourceKmsKeyArns`);
    /// `None` where that is not known (the CLI without `--source-kms-keys`).
    pub allowed_kms_keys: Option<&'a [String]>,
    /// The snapshots of another account the stack may restore (its `SharedSnapshotArns`,
    /// patterns); `None` where that is not known (the CLI without `--shared-snapshot-arns`).
    pub shared_snapshot_arns: Option<&'a [String]>,
    /// This account's key for what is taken encrypted from another account (the stack's
    /// `CopyKmsKeyArn`): a shared snapshot is copied in under it, a RAM-shared cluster
    /// cloned under it; `None` when the stack has none (or the CLI was not told it).
    pub copy_key: Option<&'a str>,
    pub ec2: &'a aws_sdk_ec2::Client,
    /// Who manages the source's key (an AWS managed key needs no listing).
    pub kms: &'a aws_sdk_kms::Client,
    pub secrets: &'a SecretReader,
    pub dblab: &'a Connector,
}

/// One check and what it found: a detail when it passed, the error that would fail the run.
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, RefreshError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    AtFirstFailure,
    Never,
}

#[derive(Debug)]
pub struct Report {
    pub checks: Vec<Check>,
    /// What the clone would be restored from, when that check passed.
    pub source: Option<RestoreSource>,
    pub engine: Option<EngineIdentity>,
    /// The engine's own `instanceID`, when it gives one: what the engine lock is keyed by.
    pub engine_instance_id: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.is_ok())
    }

    /// The restore source, naming the engine checked, or the first failing check's error.
    pub fn into_source(self) -> Result<RestoreSource, RefreshError> {
        if let Some(failed) = self.checks.into_iter().find_map(|c| c.outcome.err()) {
            return Err(failed);
        }
        let mut source = self
            .source
            .ok_or_else(|| RefreshError::Internal("the preflight passed without a restore source".into()))?;
        source.engine_instance_id = self.engine_instance_id;
        Ok(source)
    }
}

struct Checks {
    list: Vec<Check>,
    stop: Stop,
}

impl Checks {
    /// Records a check; gives its value on success.
    fn record<T>(
        &mut self,
        name: &'static str,
        result: Result<T, RefreshError>,
        detail: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.list.push(Check { name, outcome: Ok(detail(&value)) });
                Some(value)
            }
            Err(e) => {
                self.list.push(Check { name, outcome: Err(e) });
                None
            }
        }
    }

    fn halted(&self) -> bool {
        self.stop == Stop::AtFirstFailure && self.list.iter().any(|c| c.outcome.is_err())
    }
}

/// Runs the checks and reports them in the order a run would meet them, the engine first
/// (it is cheap and the most often wrong). The engine's checks and the AWS checks ask
/// different services and depend on nothing of each other's, so they run at once (a cold
/// `find-snapshot` waits for the longer half, not for both); with `Stop::AtFirstFailure` an
/// engine failure still hides every AWS result, as if they had never run, and the AWS
/// calls are read-only. `until` bounds every DBLab call (a Lambda invocation's budget).
/// `engine` is the request's engine in the stack's list, resolved by the caller before any
/// secret is read.
pub async fn run(
    deps: &Deps<'_>,
    request: &RefreshRequest,
    engine: &Engine,
    now: OffsetDateTime,
    stop: Stop,
    until: Option<Instant>,
) -> Report {
    let engine_half = async {
        let mut c = Checks { list: Vec::new(), stop };
        let client = c.record(
            "DBLab token secret",
            deps.dblab.connect(deps.secrets, engine, &request.dblab).await.map(|client| client.within(until)),
            |_| "readable".into(),
        );
        let mut found = None;
        if let Some(client) = &client {
            found = engine_checks(&mut c, client, request).await;
        }
        (c, found)
    };
    let ((mut c, engine), (aws, source)) = tokio::join!(engine_half, aws_checks(deps, request, now, stop));
    let (identity, instance_id) = engine.map_or((None, None), |(identity, id)| (Some(identity), id));
    let source = if c.halted() {
        None
    } else {
        c.list.extend(aws.list);
        source
    };
    Report { checks: c.list, source, engine: identity, engine_instance_id: instance_id }
}

/// The secrets and resources in AWS: the source's password, the source and what to restore
/// from, its key, the clone's network. Read-only.
async fn aws_checks(
    deps: &Deps<'_>,
    request: &RefreshRequest,
    now: OffsetDateTime,
    stop: Stop,
) -> (Checks, Option<RestoreSource>) {
    let mut c = Checks { list: Vec::new(), stop };
    let mut source = None;
    let password = deps.secrets.read(&request.source.password_secret_arn, "password").await;
    c.record("password secret", password, |_| "readable".into());
    if !c.halted() {
        let source_spec = &request.source;
        let exists = match &source_spec.account {
            // Another account's production is never described: what it shares with this
            // account (snapshots, or a cluster through RAM) is all this stack may read of it.
            Some(account) => c
                .record("source", Ok(()), |()| {
                    let shared = match source_spec.mode {
                        SourceMode::FastClone => "the cluster as shared through AWS RAM is read",
                        _ => "only the snapshots it shares are read",
                    };
                    format!(
                        "{} {} of account {account}: not described ({shared})",
                        source_spec.kind.describe(),
                        source_spec.identifier
                    )
                })
                .is_some(),
            None => c
                .record("source", deps.rds.check_source(source_spec).await, |()| {
                    format!("{} {} exists", source_spec.kind.describe(), source_spec.identifier)
                })
                .is_some(),
        };
        if exists && !c.halted() {
            let chosen = deps.rds.choose_source(&request.source, deps.shared_snapshot_arns, now).await;
            source = c.record("restore from", chosen, |s| {
                format!("{} (data as of {})", s.describe(), crate::clock::rfc3339(s.data_as_of))
            });
        }
        if let Some(chosen) = source.as_mut()
            && request.clone.instance_class == SERVERLESS_CLASS
            && !c.halted()
        {
            let capacity = match serverless_capacity(deps.rds, request).await {
                Ok(capacity) => supported_capacity(deps.rds, chosen, capacity).await,
                Err(e) => Err(e),
            };
            chosen.serverless_capacity = c.record("Serverless v2 capacity", capacity, |c| {
                format!("{} to {} ACUs", c.min_capacity, c.max_capacity)
            });
        }
    }
    if let Some(chosen) = &source
        && !c.halted()
    {
        let allowed = encryption_allowed(deps.kms, chosen, deps.allowed_kms_keys, request.source.account.as_deref());
        c.record("encryption key", allowed.await, Clone::clone);
    }
    if let Some(chosen) = source.as_mut()
        && !c.halted()
        && crate::rds::needs_local_key(chosen, request.source.account.as_deref())
    {
        let key = local_key_usable(deps.kms, chosen, deps.copy_key).await;
        let (name, how) = match chosen.mode {
            SourceMode::FastClone => {
                ("this account's key", "an encrypted cluster shared through AWS RAM: cloned under")
            }
            _ => ("copy into this account", "encrypted and shared from another account: copied here under"),
        };
        chosen.local_key = c.record(name, key, |key| match chosen.mode {
            SourceMode::FastClone => format!("{how} {key}"),
            _ => format!("{how} {key} first, then restored"),
        });
    }
    if let Some(chosen) = &source
        && !c.halted()
        && chosen.mode == SourceMode::FastClone
        && request.source.account.is_some()
    {
        let free = match deps.rds.clone_of_shared(&chosen.arn).await {
            Ok(None) => Ok(format!("no clone of {} in this account", chosen.arn)),
            Ok(Some(clone)) => Err(RefreshError::CloneConflict(format!(
                "AWS allows one cross-account clone of a shared cluster per account, and {} (execution {}) is a \
                 clone of {}: wait for its run to end, or delete it",
                clone.identifier,
                crate::tags::get(&clone.tags, crate::tags::EXECUTION_KEY).unwrap_or("unknown"),
                chosen.arn
            ))),
            Err(e) => Err(e),
        };
        c.record("one clone per shared cluster", free, Clone::clone);
    }
    if let (Some(chosen), Some(iops), Some(storage_type)) =
        (&source, request.clone.iops, request.clone.storage_type.as_deref())
        && !c.halted()
    {
        c.record("provisioned IOPS", iops_fit(storage_type, iops, chosen.storage_gb), Clone::clone);
    }
    if !c.halted() && !request.clone.security_groups.is_empty() {
        let groups = check_security_groups(deps.ec2, &request.clone.security_groups).await;
        c.record("security groups", groups, |_| format!("{} exist", request.clone.security_groups.join(", ")));
    }
    if !c.halted()
        && let Some(group) = &request.clone.subnet_group
    {
        c.record("subnet group", deps.rds.check_subnet_group(group).await, |()| format!("{group} exists"));
    }
    (c, source)
}

/// The engine: healthy, token accepted, logical and idle; then what its configuration
/// allows. Nothing on the engine is changed.
async fn engine_checks(
    c: &mut Checks,
    client: &DblabClient,
    request: &RefreshRequest,
) -> Option<(EngineIdentity, Option<String>)> {
    let state = c.record("DBLab Engine", engine::engine_state(client).await, |s| {
        let id = s.instance_id.as_deref().map_or_else(|| "no instanceID".to_string(), |id| format!("instance {id}"));
        format!("version {}, {id}, logical mode, status {}", s.version, s.status.retrieving.status)
    })?;
    if c.halted() {
        return None;
    }
    let (api, config) = c.record("DBLab configuration", engine::engine_config(client).await, |(api, _)| {
        format!("server.yml readable, {} API", api.as_str())
    })?;
    let identity = EngineIdentity { version: state.version.clone(), api };
    tracing::info!(engine = %identity.describe(), "DBLab Engine identified");
    for (name, result) in [
        ("configuration changes", engine::config_modifiable(&state.status).map(|()| "allowed".to_string())),
        ("engine timetable", engine::no_timetable(&config).map(|()| "none: refreshes come from here only".to_string())),
        ("snapshot job", engine::snapshot_job(&config, api)),
        ("immediateRestore", engine::immediate_restore_allows(&config, request.clone.delete_after_dump)),
        // Which free pool is taken is known only after the config change, which reorders
        // the engine's list (docs/dblab-engine.md, Pools and clones).
        (
            "pool to refresh",
            state.status.free_pool().map(|pool| format!("a pool without clones ({pool} in the list as it is now)")),
        ),
        ("pools", Ok(state.status.pools_described())),
        (
            "evidence",
            engine::lvm_allowed(&state.status, request.dblab.allow_lvm).map(|said| {
                said.unwrap_or_else(|| {
                    "a new snapshot of the refreshed pool (ZFS), made after the refresh started".into()
                })
            }),
        ),
        ("engine restart", Ok(engine::restart_said(&config, &state.status))),
        (
            "restore errors",
            engine::ignored_errors_allowed(&config, request.dblab.allow_ignored_errors)
                .map(|said| said.unwrap_or_else(|| "stop the refresh (ignoreErrors is off)".into())),
        ),
    ] {
        if c.halted() {
            break;
        }
        c.record(name, result, Clone::clone);
    }
    Some((identity, state.instance_id))
}

/// Every listed security group exists (EC2 answers one error naming the first missing).
async fn check_security_groups(ec2: &aws_sdk_ec2::Client, groups: &[String]) -> Result<(), RefreshError> {
    let out = match ec2.describe_security_groups().set_group_ids(Some(groups.to_vec())).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error().and_then(|s| aws_smithy_types::error::metadata::ProvideErrorMetadata::code(s))
                == Some("InvalidGroup.NotFound") =>
        {
            return Err(RefreshError::at(
                "clone.securityGroups",
                format!("not every group exists: {}", RefreshError::from_aws("DescribeSecurityGroups", e)),
            ));
        }
        Err(e) => return Err(RefreshError::from_aws("DescribeSecurityGroups", e)),
    };
    let found: Vec<&str> = out.security_groups().iter().filter_map(|g| g.group_id()).collect();
    let missing: Vec<&str> = groups.iter().map(String::as_str).filter(|g| !found.contains(g)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RefreshError::at("clone.securityGroups", format!("{} do not exist", missing.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::capacity::capacity_fits;
    use super::keys::{KeyManager, key_verdict, listed};
    use super::*;

    fn passed(name: &'static str) -> Check {
        Check { name, outcome: Ok("fine".into()) }
    }

    fn failed(name: &'static str) -> Check {
        Check { name, outcome: Err(RefreshError::DblabBusy { status: "refreshing".into(), detail: String::new() }) }
    }

    fn report(checks: Vec<Check>) -> Report {
        Report { checks, source: None, engine: None, engine_instance_id: Some("e1".into()) }
    }

    #[test]
    fn iops_are_checked_against_the_storage_rds_gives_the_clone() {
        let fits = |st: &str, iops: u32, gb: Option<i32>| iops_fit(st, iops, gb).is_ok();
        assert!(fits("gp3", 12_000, Some(400)) && !fits("gp3", 12_000, Some(399)));
        assert!(fits("io1", 1000, Some(2000)) && !fits("io1", 999, Some(2000)), "0.5 per GiB at least");
        assert!(fits("io1", 5000, Some(100)) && !fits("io1", 5001, Some(100)), "50 per GiB at most");
        assert!(fits("io2", 100_000, Some(100)) && !fits("io2", 100_001, Some(100)), "1000 per GiB at most");
        assert!(!fits("io2", 1000, Some(2001)), "0.5 per GiB at least");
        assert!(!fits("gp2", 1000, Some(1000)) && !fits("io1", 1000, None) && !fits("io1", 1000, Some(0)));
        let Err(RefreshError::InvalidRequest(refused)) = iops_fit("gp3", 12_000, Some(100)) else {
            panic!("not refused")
        };
        assert_eq!(refused.0[0].path, "clone.iops");
        assert!(refused.0[0].message.contains("from 400 GiB"), "{refused}");
        for (st, iops, rule) in [("io1", 6000, "0.5 to 50 IOPS per GiB"), ("io2", 200_000, "0.5 to 1000 IOPS per GiB")]
        {
            let message = iops_fit(st, iops, Some(100)).unwrap_err().to_string();
            assert!(message.contains(rule), "{message}");
        }
    }

    #[test]
    fn a_report_passes_only_when_every_check_did_and_gives_the_first_failure() {
        assert!(report(vec![passed("a"), passed("b")]).passed());
        assert!(!report(vec![passed("a"), failed("b")]).passed());
        let err = report(vec![passed("a"), failed("b"), failed("c")]).into_source().unwrap_err();
        assert_eq!(err.name(), "DblabBusy");
        // Passed, but without a source: a bug, said so.
        assert_eq!(report(vec![passed("a")]).into_source().unwrap_err().name(), "InternalError");
    }

    #[test]
    fn checks_keep_each_outcome_and_halt_only_when_asked() {
        let mut c = Checks { list: Vec::new(), stop: Stop::AtFirstFailure };
        assert_eq!(c.record("a", Ok::<u32, RefreshError>(7), |n| format!("got {n}")), Some(7));
        assert_eq!(c.list[0].outcome.as_deref().ok(), Some("got 7"));
        assert!(!c.halted());
        assert_eq!(c.record("b", Err::<u32, _>(RefreshError::Internal("x".into())), |_| String::new()), None);
        assert!(c.halted());
        let mut all = Checks { list: Vec::new(), stop: Stop::Never };
        all.record("b", Err::<u32, _>(RefreshError::Internal("x".into())), |_| String::new());
        assert!(!all.halted(), "validate --preflight runs every check");
    }

    fn source(kms: Option<&str>) -> RestoreSource {
        RestoreSource {
            mode: SourceMode::Snapshot,
            identifier: "rds:prod-1".into(),
            arn: "arn:aws:rds:us-east-1:1:snapshot:rds:prod-1".into(),
            engine: "postgres".into(),
            engine_version: None,
            data_as_of: OffsetDateTime::UNIX_EPOCH,
            snapshot_type: "automated".into(),
            source_type: crate::request::SourceType::Rds,
            source_identifier: "prod".into(),
            found_at: OffsetDateTime::UNIX_EPOCH,
            kms_key_id: kms.map(str::to_string),
            storage_gb: None,
            serverless_capacity: None,
            engine_instance_id: None,
            local_key: None,
            encrypted: false,
        }
    }

    #[test]
    fn serverless_capacity_must_fit_the_source_version() {
        let cap = |min_capacity, max_capacity| ServerlessCapacity { min_capacity, max_capacity };
        let range = Some(cap(0.5, 128.0));
        assert_eq!(capacity_fits(cap(0.5, 128.0), range, "aurora-postgresql", "14.6").unwrap(), cap(0.5, 128.0));
        let below = capacity_fits(cap(0.0, 16.0), range, "aurora-postgresql", "14.6").unwrap_err();
        assert!(below.to_string().contains("clone.minCapacity") && below.to_string().contains("pauses"), "{below}");
        let above = capacity_fits(cap(1.0, 256.0), range, "aurora-postgresql", "14.6").unwrap_err();
        assert!(above.to_string().contains("clone.maxCapacity: 256 ACUs is above the 128 ACUs"), "{above}");
        let none = capacity_fits(cap(1.0, 2.0), None, "aurora-postgresql", "13.4").unwrap_err();
        assert!(none.to_string().contains("clone.instanceClass") && none.to_string().contains("13.4"), "{none}");
        assert!(capacity_fits(cap(0.0, 256.0), Some(cap(0.0, 256.0)), "aurora-postgresql", "16.4").is_ok());
    }

    #[test]
    fn a_listed_key_passes_by_arn_or_by_id_an_aws_managed_one_always() {
        let arn = "arn:aws:kms:us-east-1:1:key/abcd-1234";
        let s = source(Some(arn));
        for listed in [arn, "abcd-1234"] {
            let allowed = key_verdict(&s, arn, Some(&[listed.to_string()]), None).unwrap();
            assert_eq!(allowed, format!("encrypted with {arn}, which the stack allows"));
        }
        let other: &[String] = &["arn:aws:kms:us-east-1:1:key/other".into()];
        let aws = key_verdict(&s, arn, Some(other), Some(KeyManager::Aws)).unwrap();
        assert!(aws.contains("AWS managed key"), "{aws}");
        for manager in [KeyManager::Customer, KeyManager::Unknown("AccessDenied".into())] {
            let err = key_verdict(&s, arn, Some(other), Some(manager.clone())).unwrap_err();
            assert_eq!(err.name(), "InvalidRequest");
            assert!(err.to_string().contains("SourceKmsKeyArns"), "{err}");
            let unchecked = key_verdict(&s, arn, None, Some(manager)).unwrap();
            assert!(unchecked.contains("not checked"), "{unchecked}");
        }
        assert!(key_verdict(&s, arn, Some(other), None).is_err(), "not listed, not known to be AWS's");
        assert!(listed(arn, &["abcd-1234".into()]) && !listed(arn, other));
    }
}
