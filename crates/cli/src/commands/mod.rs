//! One file per command (or family of commands: `schedule`, `target`), each with its
//! arguments (a `clap::Args` struct) and its `run`; here what several of them share.

use refresh_core::dblab::{Engine, EngineList};
use refresh_core::request::{FieldError, RefreshRequest};
use serde_json::Value;

use crate::failure::Failure;
use dblab_refresh::document;

pub(crate) mod cleanup;
pub(crate) mod history;
pub(crate) mod import;
pub(crate) mod schedule;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod target;
pub(crate) mod validate;
pub(crate) mod watch;

/// A target named on the command line, by the rule a request's `target` follows: a name no
/// run could have is refused as wrong usage, not searched for.
fn target_arg(text: &str) -> Result<String, String> {
    refresh_core::request::check_target(text).map(|()| text.to_string())
}

/// A request file read and validated, or every problem with its path.
fn load_request(file: &str) -> Result<(Value, RefreshRequest), Failure> {
    let doc = document::read(file).map_err(Failure::failed)?;
    match RefreshRequest::from_document(&doc) {
        Ok(request) => Ok((doc, request)),
        Err(errors) => Err(invalid(file, &errors.0)),
    }
}

fn invalid(file: &str, problems: &[FieldError]) -> Failure {
    let lines: Vec<String> = problems.iter().map(|e| format!("  {}: {}", e.path, e.message)).collect();
    Failure::failed(format!("{file} is not a valid request:\n{}", lines.join("\n")))
}

/// The engine of the stack's list a request names, or the request refused as invalid.
fn engine_of<'a>(file: &str, request: &RefreshRequest, engines: &'a EngineList) -> Result<&'a Engine, Failure> {
    engines.resolve(request).map_err(|e| match e {
        refresh_core::RefreshError::InvalidRequest(errors) => invalid(file, &errors.0),
        other => Failure::from(other),
    })
}
