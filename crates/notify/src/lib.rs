//! `notify`: the run's one notification. Built from the row `record` wrote, or from the
//! state itself when recording failed, so a broken history never silences the outcome;
//! the row remembers it was sent, so a retried call does not send it twice.

use refresh_core::RefreshError;
use refresh_core::history::{self, History};
use refresh_core::notification::{self, Notifier};
use refresh_core::row::RunSummary;
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
    let summary = state.record.clone().unwrap_or_else(|| summary::finished(state, OffsetDateTime::now_utc()));
    let mut message = notification::compose(&summary);
    if let Some(err) = &state.record_error {
        message.body.push_str(&format!(
            "\n\nWARNING: this run could not be written to the history table ({}: {}).",
            err.error,
            err.message()
        ));
    }
    // Once per run: the row remembers the notification. A row that cannot be read is no
    // reason to stay silent (a second email is the lesser harm).
    let row = row_of(deps, state, &summary).await;
    if let Some(key) = &row {
        match deps.history.notified(history::partition_of(&summary), key).await {
            Ok(Some(message_id)) => {
                info!(%message_id, "the run's notification was sent already: not sent again");
                return Ok(Output { message_id, subject: message.subject, already_sent: true });
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot tell whether the notification was sent: sending it"),
        }
    }
    let message_id = deps.notifier.publish(&message).await?;
    info!(%message_id, subject = %message.subject, "notification sent");
    if let Some(key) = &row
        && let Err(e) = deps
            .history
            .mark_notified(history::partition_of(&summary), key, &message_id, OffsetDateTime::now_utc())
            .await
    {
        warn!(error = %e, "the row does not say the notification was sent: a retry would send it again");
    }
    Ok(Output { message_id, subject: message.subject, already_sent: false })
}

/// The key of the run's row, when `record` wrote one: from the run's start, or found by
/// its execution near its start time (a run recorded without its start's answer).
async fn row_of(deps: &Deps, state: &RunState, summary: &RunSummary) -> Option<String> {
    state.record.as_ref()?;
    if let Some(run) = &state.run {
        return Some(run.run_key.clone());
    }
    deps.history
        .find_run_key(history::partition_of(summary), &summary.execution_name, summary.started_at)
        .await
        .inspect_err(|e| warn!(error = %e, "the run's row cannot be found"))
        .ok()
        .flatten()
}
