//! `validate [--preflight]`: every problem of a request with its path, and the preflight
//! `find-snapshot` runs, each check on its own.

use refresh_core::clients::{Ec2, Kms, Rds as RdsClient, SecretsManager};
use refresh_core::dblab::{Engine, EngineList};
use refresh_core::rds::Rds;
use refresh_core::request::RefreshRequest;
use refresh_core::secrets::SecretReader;
use refresh_core::{aws, dblab, preflight};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{engine_of, load_request};
use crate::failure::Failure;
use crate::output::print_json;
use crate::stack::engines_arg;

/// Check a request (JSON or YAML) and print every problem with its path.
#[derive(clap::Args)]
pub(crate) struct ValidateArgs {
    file: String,
    /// Also check, creating nothing, what would fail later: the DBLab Engine (healthy,
    /// logical, idle, configurable, no timetable, immediateRestore), secrets, source,
    /// restore point, encryption key, security groups and subnet group.
    #[arg(long)]
    preflight: bool,
    /// The stack's DblabEngines (its entries, comma-separated): the request must name
    /// one of them; unset, its engine is not checked (and --preflight cannot run)
    #[arg(long, env = "DBLAB_REFRESH_ENGINES")]
    engines: Option<String>,
    /// The stack's SourceKmsKeyArns (comma-separated), to check the source's encryption
    /// key against; unset, the key is only shown.
    #[arg(long, env = "DBLAB_REFRESH_SOURCE_KMS_KEYS")]
    source_kms_keys: Option<String>,
    /// The stack's CopyKmsKeyArn: the key a snapshot shared encrypted from another
    /// account is copied in under before the restore
    #[arg(long, env = "DBLAB_REFRESH_COPY_KMS_KEY")]
    copy_kms_key: Option<String>,
    /// The stack's SharedSnapshotArns (comma-separated patterns): another account's
    /// snapshots outside them are not considered; unset, every shared one is
    #[arg(long, env = "DBLAB_REFRESH_SHARED_SNAPSHOT_ARNS")]
    shared_snapshot_arns: Option<String>,
    #[arg(long)]
    json: bool,
}

/// What the CLI knows of the stack's parameters (its `DblabEngines`, `SourceKmsKeyArns`,
/// `SharedSnapshotArns` and `CopyKmsKeyArn`): what is unknown is not checked against.
#[derive(Debug, Default)]
pub(crate) struct StackKeys {
    engines: Option<EngineList>,
    source: Option<Vec<String>>,
    shared_snapshots: Option<Vec<String>>,
    copy: Option<String>,
}

pub(crate) async fn run(args: ValidateArgs) -> Result<(), Failure> {
    let ValidateArgs { file, preflight, engines, source_kms_keys, copy_kms_key, shared_snapshot_arns, json } = args;
    let keys = StackKeys {
        engines: engines.as_deref().map(engines_arg).transpose()?,
        source: source_kms_keys.map(|k| aws::list(&k)),
        shared_snapshots: shared_snapshot_arns.map(|a| aws::list(&a)),
        copy: copy_kms_key,
    };
    if preflight && keys.engines.is_none() {
        return Err(Failure::usage(
            "the preflight needs the stack's engines: pass --engines (DBLAB_REFRESH_ENGINES), its DblabEngines",
        ));
    }
    let checked = load_request(&file).and_then(|(_, request)| {
        let engine = keys.engines.as_ref().map(|list| engine_of(&file, &request, list)).transpose()?;
        Ok((request, engine.cloned()))
    });
    let (request, engine) = match checked {
        Ok(ok) => ok,
        Err(f) if json => {
            print_json(&json!({"valid": false, "problems": f.1}));
            return Err(Failure(f.0, String::new()));
        }
        Err(f) => return Err(f),
    };
    // With --preflight, the engines are known (above), so the engine is.
    let (true, Some(engine)) = (preflight, &engine) else {
        if json {
            print_json(&json!({"valid": true, "target": request.target, "engine": engine.as_ref().map(Engine::name)}));
        } else {
            println!("{file}: valid request for target {:?}", request.target);
            match &engine {
                Some(engine) => println!("engine: {engine}, from the stack's list"),
                None => println!("engine: not checked against the stack's list (pass --engines, its DblabEngines)"),
            }
        }
        return Ok(());
    };
    let checks = run_preflight(&request, engine, &keys).await;
    let ok = checks.iter().all(|(_, result)| result.is_ok());
    if json {
        let items: Vec<Value> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(detail) => json!({"check": name, "ok": true, "detail": detail}),
                Err(e) => json!({"check": name, "ok": false, "error": e}),
            })
            .collect();
        print_json(&json!({"valid": true, "engine": engine.name(), "preflight": ok, "checks": items}));
    } else {
        println!("engine: {engine}, from the stack's list");
        for (name, result) in &checks {
            match result {
                Ok(detail) => println!("ok    {name}: {detail}"),
                Err(e) => println!("FAIL  {name}: {e}"),
            }
        }
    }
    if ok { Ok(()) } else { Err(Failure::failed("the preflight failed; nothing was created")) }
}

/// Every check that can fail a run before a clone exists, each on its own: the same
/// preflight `find-snapshot` runs, so the two cannot disagree.
pub(crate) async fn run_preflight(
    request: &RefreshRequest,
    engine: &Engine,
    keys: &StackKeys,
) -> Vec<(&'static str, Result<String, String>)> {
    let config = aws::config().await;
    let secrets = SecretReader::new(SecretsManager::new(&config));
    let rds = Rds::new(RdsClient::new(&config));
    let ec2 = Ec2::new(&config);
    let kms = Kms::new(&config);
    let connector = dblab::Connector::default();
    let deps = preflight::Deps {
        rds: &rds,
        allowed_kms_keys: keys.source.as_deref(),
        shared_snapshot_arns: keys.shared_snapshots.as_deref(),
        copy_key: keys.copy.as_deref(),
        ec2: &ec2,
        kms: &kms,
        secrets: &secrets,
        dblab: &connector,
    };
    let report = preflight::run(&deps, request, engine, OffsetDateTime::now_utc(), preflight::Stop::Never, None).await;
    report.checks.into_iter().map(|c| (c.name, c.outcome.map_err(|e| e.to_string()))).collect()
}
