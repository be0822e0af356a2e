//! Whether a Step Functions execution is still running: decides whether a lock may be
//! taken over and whether a clone is an orphan.

use aws_sdk_sfn::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::RefreshError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    Running,
    /// SUCCEEDED, FAILED, TIMED_OUT, ABORTED...
    Ended(String),
    /// No such execution (deleted history, or a hand-made ARN).
    Missing,
}

pub struct Executions {
    client: Client,
}

impl Executions {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub async fn state(&self, arn: &str) -> Result<ExecutionState, RefreshError> {
        match self.client.describe_execution().execution_arn(arn).send().await {
            Ok(out) => Ok(match out.status().as_str() {
                "RUNNING" | "PENDING_REDRIVE" => ExecutionState::Running,
                other => ExecutionState::Ended(other.to_string()),
            }),
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => Ok(ExecutionState::Missing),
            Err(e) => Err(RefreshError::from_aws("DescribeExecution", e)),
        }
    }
}
