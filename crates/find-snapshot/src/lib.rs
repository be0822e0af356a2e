//! `find-snapshot`: validates the request and checks everything that can fail before a
//! clone costs money (DBLab healthy, token accepted, logical mode, not busy; the DB
//! password readable; the source present), then picks the snapshot.

use refresh_core::RefreshError;
use refresh_core::dblab;
use refresh_core::rds::Rds;
use refresh_core::request::{FieldError, RefreshRequest, ValidationErrors};
use refresh_core::run::{Execution, Snapshot};
use refresh_core::secrets::SecretReader;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub rds: Rds,
    pub secrets: SecretReader,
    pub dblab: dblab::Connector,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub execution: Execution,
    pub request: Value,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Snapshot, RefreshError> {
    let request = RefreshRequest::from_document(&input.request)?;
    let client = deps.dblab.connect(&deps.secrets, &request.dblab).await?;
    let engine = dblab::preflight(&client).await?;
    info!(version = %engine.version, status = %engine.retrieval_status, "DBLab preflight passed");
    if request.clone.delete_after_dump && dblab::immediate_restore_enabled(&client.config().await?) {
        return Err(RefreshError::InvalidRequest(ValidationErrors(vec![FieldError {
            path: "clone.deleteAfterDump".into(),
            message: "the engine has immediateRestore on: it restores while it dumps, so the end of the dump \
                      cannot be told; turn one of them off"
                .into(),
        }])));
    }
    // Read now so a missing or unreadable password fails before the clone exists.
    deps.secrets.read(&request.source.password_secret_arn, "password").await?;
    deps.rds.check_source(&request.source).await?;
    let snapshot = deps.rds.choose_source(&request.source, OffsetDateTime::now_utc()).await?;
    info!(snapshot = %snapshot.identifier, data_as_of = %snapshot.data_as_of, "snapshot chosen");
    Ok(snapshot)
}
