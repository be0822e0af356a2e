//! Step Functions executions: whether one is still running (decides whether a lock may be
//! taken over and whether a clone is an orphan), what one has used so far, and what a
//! stopped one had done.

use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::cost::Usage;
use crate::error::RefreshError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    Running,
    /// SUCCEEDED, FAILED, TIMED_OUT, ABORTED...
    Ended(String),
    /// No such execution (deleted history, or a hand-made ARN).
    Missing,
}

/// How an execution was started: what a duplicate start is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub running: bool,
    /// The execution's input, as text.
    pub input: Option<String>,
    pub started_at: time::OffsetDateTime,
}

/// A date DescribeExecution gave.
fn described_at(t: &aws_smithy_types::DateTime) -> Result<time::OffsetDateTime, RefreshError> {
    crate::clock::from_aws(t).ok_or_else(|| RefreshError::Internal(format!("DescribeExecution date {t:?}")))
}

/// Events per page of a stopped run's history: the end is usually in the first.
const STOPPED_PAGE: i32 = 100;

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

    /// Its status, input and start; `None` for an execution that does not exist.
    pub async fn started(&self, arn: &str) -> Result<Option<Started>, RefreshError> {
        match self.client.describe_execution().execution_arn(arn).send().await {
            Ok(out) => Ok(Some(Started {
                running: out.status().as_str() == "RUNNING",
                input: out.input().map(str::to_string),
                started_at: described_at(out.start_date())?,
            })),
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => Ok(None),
            Err(e) => Err(RefreshError::from_aws("DescribeExecution", e)),
        }
    }

    /// Every event of an execution's history, oldest first; `with_data`: with each state's
    /// input and output (what a stopped run had done), which a long run has megabytes of.
    pub async fn history(&self, arn: &str, with_data: bool) -> Result<Vec<HistoryEvent>, RefreshError> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1_000)
            .include_execution_data(with_data)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("GetExecutionHistory", e))?;
            events.extend(page.events().iter().cloned());
        }
        Ok(events)
    }

    /// Transitions, Lambda invocations and Lambda time of an execution so far, from its history.
    pub async fn usage(&self, arn: &str) -> Result<Usage, RefreshError> {
        // Types and times are all a cost needs: not the data, in a 128 MB function.
        Ok(usage_of(&self.history(arn, false).await?))
    }

    /// What an execution that ended without finishing had done, from its history read
    /// newest first, page by page, until what it needs is found: a run that polled for
    /// days has thousands of events, each with its state's data.
    pub async fn stopped(&self, arn: &str) -> Result<crate::stopped::Stopped, RefreshError> {
        let mut reader = crate::stopped::NewestFirst::default();
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .reverse_order(true)
            .max_results(STOPPED_PAGE)
            .include_execution_data(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| RefreshError::from_aws("GetExecutionHistory", e))?;
            if page.events().iter().any(|event| reader.read(event)) {
                break;
            }
        }
        Ok(reader.finish())
    }

    /// How an execution ended, or `None` while it runs (or when there is no such execution).
    pub async fn ended(&self, arn: &str) -> Result<Option<crate::stopped::EndedExecution>, RefreshError> {
        let out = match self.client.describe_execution().execution_arn(arn).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("ExecutionDoesNotExist") => return Ok(None),
            Err(e) => return Err(RefreshError::from_aws("DescribeExecution", e)),
        };
        let (Some(stop), status) = (out.stop_date(), out.status().as_str()) else { return Ok(None) };
        Ok(Some(crate::stopped::EndedExecution {
            name: out.name().unwrap_or_default().to_string(),
            arn: arn.to_string(),
            state_machine_arn: out.state_machine_arn().to_string(),
            status: status.to_string(),
            started_at: described_at(out.start_date())?,
            stopped_at: described_at(stop)?,
        }))
    }

    /// Starts the clean-up machine for an ended run, under a name that is the run's own:
    /// `false` when that clean-up exists already (running or not: Step Functions would
    /// answer a second start of a running one as if it had started it).
    pub async fn start_cleanup(
        &self,
        machine_arn: &str,
        ended: &crate::stopped::EndedExecution,
    ) -> Result<bool, RefreshError> {
        let name = crate::stopped::cleanup_name(&ended.arn);
        let arn = format!("{}:{name}", machine_arn.replacen(":stateMachine:", ":execution:", 1));
        if self.state(&arn).await? != ExecutionState::Missing {
            return Ok(false);
        }
        let started = self
            .client
            .start_execution()
            .state_machine_arn(machine_arn)
            .name(name)
            .input(crate::stopped::cleanup_event(ended).to_string())
            .send()
            .await;
        match started {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ExecutionAlreadyExists") => Ok(false),
            Err(e) => Err(RefreshError::from_aws("StartExecution", e)),
        }
    }
}

/// Each state entered is a billed transition, and so is each retry of a Task (Step
/// Functions bills a retry as a transition); Lambda time runs from a function's start to
/// its end, as Step Functions saw it.
pub fn usage_of(events: &[HistoryEvent]) -> Usage {
    let mut usage = Usage { transitions: 0, lambda_invocations: 0, lambda_seconds: 0.0 };
    let mut started: Option<f64> = None;
    let mut attempts_in_state = 0;
    for e in events {
        let at = e.timestamp().as_secs_f64();
        match e.r#type() {
            _ if e.state_entered_event_details().is_some() => {
                usage.transitions += 1;
                attempts_in_state = 0;
            }
            HistoryEventType::LambdaFunctionScheduled => {
                usage.lambda_invocations += 1;
                if attempts_in_state > 0 {
                    usage.transitions += 1;
                }
                attempts_in_state += 1;
            }
            HistoryEventType::LambdaFunctionStarted => started = Some(at),
            HistoryEventType::LambdaFunctionSucceeded
            | HistoryEventType::LambdaFunctionFailed
            | HistoryEventType::LambdaFunctionTimedOut => {
                if let Some(from) = started.take() {
                    usage.lambda_seconds += (at - from).max(0.0);
                }
            }
            _ => {}
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::StateEnteredEventDetails;
    use aws_smithy_types::DateTime;

    fn event(id: i64, at_ms: i64, kind: HistoryEventType) -> HistoryEvent {
        let mut e = HistoryEvent::builder().id(id).timestamp(DateTime::from_millis(at_ms)).r#type(kind.clone());
        if kind == HistoryEventType::TaskStateEntered || kind == HistoryEventType::WaitStateEntered {
            e = e.state_entered_event_details(StateEnteredEventDetails::builder().name("S").build().unwrap());
        }
        e.build().unwrap()
    }

    #[test]
    fn a_described_date_is_that_instant_and_one_out_of_range_an_internal_error() {
        let at = described_at(&DateTime::from_millis(1_796_227_200_250)).unwrap();
        assert_eq!(at, time::macros::datetime!(2026-12-02 16:00:00.250 UTC));
        let beyond = described_at(&DateTime::from_secs(i64::MAX)).unwrap_err();
        assert_eq!(beyond.name(), crate::error::names::INTERNAL);
    }

    #[test]
    fn usage_counts_states_entered_invocations_and_lambda_time() {
        use HistoryEventType as T;
        let events = [
            event(1, 0, T::ExecutionStarted),
            event(2, 10, T::TaskStateEntered),
            event(3, 20, T::LambdaFunctionScheduled),
            event(4, 30, T::LambdaFunctionStarted),
            event(5, 1_530, T::LambdaFunctionFailed),
            event(6, 1_600, T::LambdaFunctionScheduled),
            event(7, 1_700, T::LambdaFunctionStarted),
            event(8, 2_200, T::LambdaFunctionSucceeded),
            event(9, 2_300, T::TaskStateExited),
            event(10, 2_400, T::WaitStateEntered),
        ];
        let usage = usage_of(&events);
        assert_eq!((usage.transitions, usage.lambda_invocations), (3, 2), "two states and one retry");
        assert!((usage.lambda_seconds - 2.0).abs() < 1e-9, "{usage:?}");
    }

    #[test]
    fn each_retry_of_a_task_is_one_more_transition() {
        use HistoryEventType as T;
        let mut events = vec![event(1, 0, T::TaskStateEntered)];
        for attempt in 0..3 {
            events.push(event(2 + attempt, 10 * attempt, T::LambdaFunctionScheduled));
        }
        let usage = usage_of(&events);
        assert_eq!((usage.transitions, usage.lambda_invocations), (3, 3), "one state entered, tried three times");
    }
}
