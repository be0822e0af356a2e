//! `find-snapshot`: validates the request and runs the preflight (`refresh_core::preflight`):
//! everything that can fail before a clone costs money, the DBLab Engine first. The first
//! failing check fails the run with its own error; otherwise it answers with what the
//! clone will be restored from.

use refresh_core::RefreshError;
use refresh_core::dblab;
use refresh_core::preflight::{self, Stop};
use refresh_core::rds::Rds;
use refresh_core::request::RefreshRequest;
use refresh_core::run::{Execution, RestoreSource};
use refresh_core::secrets::SecretReader;
use refresh_core::watch::Watch;
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub rds: Rds,
    pub ec2: refresh_core::clients::Ec2,
    pub kms: refresh_core::clients::Kms,
    /// The KMS keys the stack lets the restore use (`SourceKmsKeyArns`).
    pub allowed_kms_keys: Vec<String>,
    /// The other account's snapshots the stack may restore (`SharedSnapshotArns`, patterns).
    pub shared_snapshot_arns: Vec<String>,
    /// The key shared encrypted snapshots are copied in under (`CopyKmsKeyArn`).
    pub copy_key: Option<String>,
    pub secrets: SecretReader,
    pub dblab: dblab::Connector,
    /// The engines the stack may drive (`DblabEngines`).
    pub engines: dblab::EngineList,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: RefreshRequest,
}

pub async fn handle(deps: &Deps, input: Input, budget: Watch) -> Result<RestoreSource, RefreshError> {
    let request = &input.request;
    // An engine the stack does not list is refused before any secret is read.
    let engine = deps.engines.resolve(request)?;
    let checks = preflight::Deps {
        rds: &deps.rds,
        allowed_kms_keys: Some(&deps.allowed_kms_keys),
        shared_snapshot_arns: Some(&deps.shared_snapshot_arns),
        copy_key: deps.copy_key.as_deref(),
        ec2: &deps.ec2,
        kms: &deps.kms,
        secrets: &deps.secrets,
        dblab: &deps.dblab,
    };
    let report =
        preflight::run(&checks, request, engine, OffsetDateTime::now_utc(), Stop::AtFirstFailure, budget.deadline())
            .await;
    let snapshot = report.into_source()?;
    info!(snapshot = %snapshot.identifier, data_as_of = %snapshot.data_as_of, "preflight passed; restore source chosen");
    Ok(snapshot)
}
