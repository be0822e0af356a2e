//! `notify`: the run's one notification. Built from the row `record` wrote, or from the
//! state itself when recording failed, so a broken history never silences the outcome.

use refresh_core::RefreshError;
use refresh_core::notification::{self, Notifier};
use refresh_core::run::RunState;
use refresh_core::summary;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::info;

pub struct Deps {
    pub notifier: Notifier,
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
    let message_id = deps.notifier.publish(&message).await?;
    info!(%message_id, subject = %message.subject, "notification sent");
    Ok(Output { message_id, subject: message.subject })
}
