//! `import-rds-refresh`: a DBLab `rds-refresh` config as a request.

use dblab_refresh::document::{self, SecretArns};
use refresh_core::request::{Labels, RefreshRequest};

use crate::failure::Failure;

pub fn import(
    config: &str,
    password: Option<&str>,
    token: Option<&str>,
    target: Option<String>,
    output: Option<String>,
) -> Result<(), Failure> {
    let doc = document::read(config).map_err(Failure::failed)?;
    let target = target
        .or_else(|| Labels::of(&doc).source_identifier().map(str::to_string))
        .ok_or_else(|| Failure::failed("no --target and no source.identifier to name the target after"))?;
    let request = document::from_rds_refresh(&doc, &target, &SecretArns { password, token })
        .map_err(|problems| Failure::failed(problems.join("\n")))?;
    if let Err(errors) = RefreshRequest::from_document(&request) {
        return Err(Failure::failed(format!("the converted request is not valid: {errors}")));
    }
    if let Some(entry) = token.and_then(|arn| document::engine_entry(&doc, &target, arn)) {
        eprintln!(
            "the stack's DblabEngines must list this engine (a run naming another is refused); its entry, if it is \
             not there yet:\n  {entry}"
        );
    }
    let text = serde_json::to_string_pretty(&request).unwrap_or_default();
    match output {
        Some(path) => std::fs::write(&path, text + "\n").map_err(|e| Failure::unreachable(format!("{path}: {e}")))?,
        None => println!("{text}"),
    }
    Ok(())
}
