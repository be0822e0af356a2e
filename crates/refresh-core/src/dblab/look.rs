//! One look at the engine while a refresh runs, and the one place that decides what it
//! reads: `/status` always; `/instance/retrieval` while refreshing (only it lists the
//! sessions that tell the dump from the restore); `/snapshots` once this run's refresh
//! says `finished` (its success rests on the engine's snapshot of it).

use tracing::warn;

use super::client::DblabClient;
use super::engine::same_engine;
use super::refresh::Refresh;
use super::status::{EngineSnapshot, RetrievalStatus, Retrieving};
use crate::error::RefreshError;

/// One look at the engine: its retrieval state, when its process started, and (read once
/// it says `finished`) its snapshots.
#[derive(Debug, Clone, Default)]
pub struct Look {
    pub retrieving: Retrieving,
    pub engine_started_at: Option<String>,
    /// The pool `/status` shows `refreshing`: the one this refresh restores into, whatever
    /// was predicted before the trigger (retrieval.go `RefreshData` marks it).
    pub refreshing_pool: Option<String>,
    pub snapshots: Option<Vec<EngineSnapshot>>,
}

/// What a look reads besides `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Further {
    Nothing,
    /// `/instance/retrieval`, for the job's sessions.
    Activity,
    /// `/snapshots`, for the proof of a finished refresh.
    Snapshots,
}

/// What else to read, from `/status` and what the run knows of its refresh. A `finished`
/// that is the previous refresh's (not seen running, `lastRefresh` unchanged) proves
/// nothing, and an LVM pool (accepted by the request) keeps no snapshot to look for.
pub(crate) fn further(prev: &Refresh, retrieving: &Retrieving) -> Further {
    match retrieving.status {
        RetrievalStatus::Refreshing => Further::Activity,
        RetrievalStatus::Finished
            if prev.unproven.is_none()
                && (prev.seen_start || retrieving.last_refresh != prev.previous_last_refresh) =>
        {
            Further::Snapshots
        }
        _ => Further::Nothing,
    }
}

/// One look, on the engine the run locked (any other answering is refused).
pub async fn look(client: &DblabClient, prev: &Refresh) -> Result<Look, RefreshError> {
    let status = client.instance_status().await?;
    same_engine(prev.locked_instance.as_deref(), status.engine.instance_id.as_deref(), client.endpoint())?;
    let mut look = Look {
        refreshing_pool: status.refreshing_pool(),
        retrieving: status.retrieving,
        engine_started_at: status.engine.started_at,
        snapshots: None,
    };
    match further(prev, &look.retrieving) {
        // The phase is only shown, never decided on: a look goes on without it.
        Further::Activity => match client.retrieval().await {
            Ok(detail) => look.retrieving.activity = detail.activity,
            Err(e) => warn!(error = %e, "activity unavailable; phase unknown"),
        },
        Further::Snapshots => look.snapshots = Some(client.snapshots().await?),
        Further::Nothing => {}
    }
    Ok(look)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refresh(seen_start: bool, previous: Option<&str>, unproven: Option<&str>) -> Refresh {
        serde_json::from_value(json!({
            "previousLastRefresh": previous, "triggeredAt": "2026-11-22T05:00:00Z",
            "deadline": "2026-11-22T09:00:00Z", "dumpParallelJobs": 1, "status": "pending",
            "retrievalStatus": "refreshing", "seenStart": seen_start, "unproven": unproven
        }))
        .expect("a refresh")
    }

    fn seen(status: &str, last_refresh: Option<&str>) -> Retrieving {
        serde_json::from_value(json!({"status": status, "lastRefresh": last_refresh})).expect("a retrieval state")
    }

    #[test]
    fn a_look_reads_the_activity_while_refreshing_and_the_snapshots_of_this_runs_finish_only() {
        let started = refresh(true, Some("a"), None);
        assert_eq!(further(&started, &seen("refreshing", Some("b"))), Further::Activity);
        assert_eq!(further(&started, &seen("finished", Some("b"))), Further::Snapshots);
        for status in ["renewed", "snapshotting", "failed", "inactive", "pending"] {
            assert_eq!(further(&started, &seen(status, Some("b"))), Further::Nothing, "{status}");
        }
        let not_seen = refresh(false, Some("a"), None);
        assert_eq!(further(&not_seen, &seen("finished", Some("a"))), Further::Nothing, "the previous refresh's finish");
        assert_eq!(further(&not_seen, &seen("finished", Some("b"))), Further::Snapshots, "a new lastRefresh");
        assert_eq!(
            further(&not_seen, &seen("finished", None)),
            Further::Snapshots,
            "lastRefresh lost: judged on the proof"
        );
        let lvm = refresh(true, Some("a"), Some("LVM"));
        assert_eq!(further(&lvm, &seen("finished", Some("b"))), Further::Nothing, "no snapshot to look for");
    }
}
