//! `notify`: the run's one notification. Built from the row `record` wrote (given, or read
//! back by the clean-up machine), or from the state itself when recording failed, so a
//! broken history never silences the outcome; claimed by the execution's name before it
//! is sent, so neither a retried call nor the clean-up machine sends it twice.

use refresh_core::RefreshError;
use refresh_core::history::{self, Claim, History};
use refresh_core::notification::{self, Notifier};
use refresh_core::request::Labels;
use refresh_core::row::{Outcome, RunSummary};
use refresh_core::run::RunState;
use refresh_core::summary;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, warn};

pub struct Deps {
    pub notifier: Notifier,
    /// Where the run's row says whether its notification was sent.
    pub history: History,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    pub state: Box<RunState>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub message_id: String,
    pub subject: String,
    /// Sent by an earlier call for this run (a retry after a lost answer): not sent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_sent: bool,
}

pub async fn handle(deps: &Deps, input: Input) -> Result<Output, RefreshError> {
    let state = &input.state;
    let now = OffsetDateTime::now_utc();
    // The row `record` wrote; when recording failed, the state itself; else (the clean-up
    // machine notifying a run that recorded itself) the row read back, which must be read.
    let summary = match (&state.record, &state.record_error) {
        (Some(recorded), _) => recorded.clone(),
        (None, Some(_)) => summary::finished(state, now),
        (None, None) => match recorded_row(deps, state).await? {
            Some(row) => row,
            None => summary::finished(state, now),
        },
    };
    let mut message = notification::compose(&summary);
    if let Some(err) = &state.record_error {
        message.body.push_str(&format!(
            "\n\nWARNING: this run could not be written to the history table ({}: {}).",
            err.error,
            err.message()
        ));
    }
    // Once per run, whichever machine sends it: claimed by the execution's name first. A
    // claim that cannot be written fails the call (retried, and the clean-up machine tries
    // again later): sent unmarked, it would be sent a second time.
    let execution = summary.execution_name.as_str();
    let claimed = !execution.is_empty();
    if claimed {
        match deps.history.claim_notification(execution, now).await? {
            Claim::Ours => {}
            Claim::Sent(message_id) => {
                match &message_id {
                    Some(id) => info!(message_id = %id, "the run's notification was sent already: not sent again"),
                    None => warn!(
                        "an earlier call began sending the run's notification and never said it was sent: not sent again"
                    ),
                }
                return Ok(Output {
                    message_id: message_id.unwrap_or_default(),
                    subject: message.subject,
                    already_sent: true,
                });
            }
            Claim::InFlight => {
                return Err(RefreshError::AwsTransient {
                    operation: "PutItem".into(),
                    message: format!(
                        "another call claimed this run's notification less than {} s ago and may be sending it; retried",
                        history::CLAIM_OUTLIVES.whole_seconds()
                    ),
                });
            }
        }
        // From here the message may be out: a call that dies now is never followed by a second email.
        deps.history.notification_publishing(execution, now).await?;
    }
    let message_id = match deps.notifier.publish(&message).await {
        Ok(id) => id,
        Err(e) => {
            // Not sent: a later call (a retry, or the clean-up machine) sends it.
            if claimed && let Err(release) = deps.history.release_notification(execution).await {
                warn!(error = %release, "the notification's claim stays although nothing was sent");
            }
            return Err(e);
        }
    };
    info!(%message_id, subject = %message.subject, "notification sent");
    if claimed && let Err(e) = deps.history.notification_sent(execution, &message_id).await {
        warn!(error = %e, "the claim does not hold the message id; its publish mark still stops a second email");
    }
    Ok(Output { message_id, subject: message.subject, already_sent: false })
}

/// The run's row, when it holds an outcome: the clean-up machine notifies a run that
/// recorded itself but whose notification failed from its state's request and execution
/// alone. A row still `running` says less than the state.
async fn recorded_row(deps: &Deps, state: &RunState) -> Result<Option<RunSummary>, RefreshError> {
    let Some(execution) = &state.execution else { return Ok(None) };
    let Some(started_at) = execution.started_at else { return Ok(None) };
    let target = Labels::of(&state.request).target().unwrap_or(history::NO_TARGET);
    let row = deps.history.run_summary(target, &execution.name, started_at).await?;
    Ok(row.filter(|r| r.outcome != Outcome::Running))
}
