//! `import-rds-refresh`: a DBLab `rds-refresh` config as a request.

use dblab_refresh::document::{self, SecretArns};
use refresh_core::request::{Labels, RefreshRequest};

use super::target_arg;
use crate::failure::Failure;

/// Turn a DBLab rds-refresh config into a request; plain secrets are never carried over.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    config: String,
    /// Secrets Manager ARN holding the source password.
    #[arg(long)]
    password_secret: Option<String>,
    /// Secrets Manager ARN holding the DBLab token.
    #[arg(long)]
    token_secret: Option<String>,
    /// The target name (default: the source identifier).
    #[arg(long, value_parser = target_arg)]
    target: Option<String>,
    /// Write the request here instead of standard output.
    #[arg(long, short)]
    output: Option<String>,
}

pub(crate) fn run(args: ImportArgs) -> Result<(), Failure> {
    let ImportArgs { config, password_secret, token_secret, target, output } = args;
    let (password, token) = (password_secret.as_deref(), token_secret.as_deref());
    let doc = document::read(&config).map_err(Failure::failed)?;
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
