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

use crate::failure::Failure;
use crate::output::print_json;
use dblab_refresh::document;

pub fn load_request(file: &str) -> Result<(Value, RefreshRequest), Failure> {
    let doc = document::read(file).map_err(Failure::failed)?;
    match RefreshRequest::from_document(&doc) {
        Ok(request) => Ok((doc, request)),
        Err(errors) => Err(invalid(file, &errors.0)),
    }
}

fn invalid(file: &str, problems: &[refresh_core::request::FieldError]) -> Failure {
    let lines: Vec<String> = problems.iter().map(|e| format!("  {}: {}", e.path, e.message)).collect();
    Failure::failed(format!("{file} is not a valid request:\n{}", lines.join("\n")))
}

/// The engine of the stack's list a request names, or the request refused as invalid.
pub fn engine_of<'a>(file: &str, request: &RefreshRequest, engines: &'a EngineList) -> Result<&'a Engine, Failure> {
    engines.resolve(request).map_err(|e| match e {
        refresh_core::RefreshError::InvalidRequest(errors) => invalid(file, &errors.0),
        other => Failure::from(other),
    })
}

/// The stack's `DblabEngines` as given on the command line, or wrong usage.
pub fn engines_arg(text: &str) -> Result<EngineList, Failure> {
    EngineList::parse(text).map_err(|e| Failure::usage(format!("--engines (the stack's DblabEngines): {e}")))
}

/// What the CLI knows of the stack's parameters (its `DblabEngines`, `SourceKmsKeyArns`,
/// `SharedSnapshotArns` and `CopyKmsKeyArn`): what is unknown is not checked against.
#[derive(Debug, Default)]
pub struct StackKeys {
    pub engines: Option<EngineList>,
    pub source: Option<Vec<String>>,
    pub shared_snapshots: Option<Vec<String>>,
    pub copy: Option<String>,
}

pub async fn validate(file: &str, preflight: bool, json: bool, keys: StackKeys) -> Result<(), Failure> {
    if preflight && keys.engines.is_none() {
        return Err(Failure::usage(
            "the preflight needs the stack's engines: pass --engines (DBLAB_REFRESH_ENGINES), its DblabEngines",
        ));
    }
    let checked = load_request(file).and_then(|(_, request)| {
        let engine = keys.engines.as_ref().map(|list| engine_of(file, &request, list)).transpose()?;
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
pub async fn run_preflight(
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
