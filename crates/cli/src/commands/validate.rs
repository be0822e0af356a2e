//! `validate [--preflight]`: every problem of a request with its path, and the preflight
//! `find-snapshot` runs, each check on its own.

use refresh_core::clients::{Ec2, Kms, Rds as RdsClient, SecretsManager};
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
        Err(errors) => {
            let lines: Vec<String> = errors.0.iter().map(|e| format!("  {}: {}", e.path, e.message)).collect();
            Err(Failure::failed(format!("{file} is not a valid request:\n{}", lines.join("\n"))))
        }
    }
}

/// What the CLI knows of the stack's parameters (its `SourceKmsKeyArns`,
/// `SharedSnapshotArns` and `CopyKmsKeyArn`): what is unknown is not checked against.
#[derive(Debug, Default)]
pub struct StackKeys {
    pub source: Option<Vec<String>>,
    pub shared_snapshots: Option<Vec<String>>,
    pub copy: Option<String>,
}

pub async fn validate(file: &str, preflight: bool, json: bool, keys: StackKeys) -> Result<(), Failure> {
    let (_, request) = match load_request(file) {
        Ok(ok) => ok,
        Err(f) if json => {
            print_json(&json!({"valid": false, "problems": f.1}));
            return Err(Failure(f.0, String::new()));
        }
        Err(f) => return Err(f),
    };
    let warnings: Vec<String> = request.dblab.plaintext_warning().into_iter().collect();
    if !preflight {
        if json {
            print_json(&json!({"valid": true, "target": request.target, "warnings": warnings}));
        } else {
            println!("{file}: valid request for target {:?}", request.target);
            warnings.iter().for_each(|w| println!("WARN  {w}"));
        }
        return Ok(());
    }
    let checks = run_preflight(&request, &keys).await;
    let ok = checks.iter().all(|(_, result)| result.is_ok());
    if json {
        let items: Vec<Value> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(detail) => json!({"check": name, "ok": true, "detail": detail}),
                Err(e) => json!({"check": name, "ok": false, "error": e}),
            })
            .collect();
        print_json(&json!({"valid": true, "preflight": ok, "checks": items, "warnings": warnings}));
    } else {
        for (name, result) in &checks {
            match result {
                Ok(detail) => println!("ok    {name}: {detail}"),
                Err(e) => println!("FAIL  {name}: {e}"),
            }
        }
        warnings.iter().for_each(|w| println!("WARN  {w}"));
    }
    if ok { Ok(()) } else { Err(Failure::failed("the preflight failed; nothing was created")) }
}

/// Every check that can fail a run before a clone exists, each on its own: the same
/// preflight `find-snapshot` runs, so the two cannot disagree.
pub async fn run_preflight(request: &RefreshRequest, keys: &StackKeys) -> Vec<(&'static str, Result<String, String>)> {
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
    let report = preflight::run(&deps, request, OffsetDateTime::now_utc(), preflight::Stop::Never, None).await;
    report.checks.into_iter().map(|c| (c.name, c.outcome.map_err(|e| e.to_string()))).collect()
}
