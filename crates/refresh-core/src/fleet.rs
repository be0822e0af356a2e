//! The fleet: one item per target with its latest state, in the history table's partition
//! `fleet#` (sort key: the target), written by `record` at each run's start and end (the
//! DynamoDB side is in `history`). "How
//! fresh is each engine, and which is in trouble?" is then one Query, however long the
//! history grows, and so is the freshness metric.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::row::Outcome;

/// A target's latest state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetState {
    pub target: String,
    /// When a run of it was first seen: until one succeeds, its data's age counts from here.
    #[serde(with = "time::serde::rfc3339")]
    pub tracked_since: OffsetDateTime,
    /// `freshness.maxAge` of its latest run, or the stack's default.
    pub freshness_max_age_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// The data-as-of time of its latest successful refresh.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub data_as_of: Option<OffsetDateTime>,
    /// The run under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub execution_name: String,
    pub outcome: Outcome,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    /// The error's name, for a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the engine was configured to ignore restore errors: tables may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_errors: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub execution_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl TargetState {
    /// How old the engine's data is: since its data-as-of time, or, never refreshed, since
    /// the fleet first saw it.
    pub fn data_age(&self, now: OffsetDateTime) -> time::Duration {
        now - self.data_as_of.unwrap_or(self.tracked_since)
    }

    /// Older than its threshold: the alarm's verdict.
    pub fn stale(&self, now: OffsetDateTime) -> bool {
        self.data_age(now) > time::Duration::seconds(i64::try_from(self.freshness_max_age_seconds).unwrap_or(i64::MAX))
    }

    pub(crate) fn last_run_failed(&self) -> bool {
        self.last_run.as_ref().is_some_and(|r| r.outcome == Outcome::Failed)
    }
}

/// What retiring a target came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    Retired,
    NotInFleet,
    /// A run of it is under way (this execution): it stays.
    Running(String),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    /// A target refreshed on 1 December at 03:00, with a 36-hour threshold.
    pub(crate) fn state() -> TargetState {
        TargetState {
            target: "staging".into(),
            tracked_since: datetime!(2026-11-01 00:00 UTC),
            freshness_max_age_seconds: 36 * 3_600,
            last_run: None,
            data_as_of: Some(datetime!(2026-12-01 03:00 UTC)),
            running: None,
        }
    }

    #[test]
    fn age_counts_from_the_data_or_from_when_the_target_was_first_seen() {
        let s = state();
        assert_eq!(s.data_age(datetime!(2026-12-01 05:00 UTC)), time::Duration::hours(2));
        assert!(!s.stale(datetime!(2026-12-02 15:00 UTC)), "36 h exactly is not yet stale");
        assert!(s.stale(datetime!(2026-12-02 15:00:01 UTC)));
        let never = TargetState { data_as_of: None, ..state() };
        assert_eq!(never.data_age(datetime!(2026-11-02 00:00 UTC)), time::Duration::days(1));
    }

    #[test]
    fn only_a_last_run_that_failed_counts_as_failed() {
        let run = |outcome| LastRun {
            execution_name: "e".into(),
            outcome,
            started_at: datetime!(2026-12-01 03:00 UTC),
            finished_at: None,
            error: None,
            ignored_errors: None,
        };
        assert!(TargetState { last_run: Some(run(Outcome::Failed)), ..state() }.last_run_failed());
        for outcome in [Outcome::Succeeded, Outcome::Running, Outcome::Skipped] {
            assert!(!TargetState { last_run: Some(run(outcome)), ..state() }.last_run_failed(), "{outcome:?}");
        }
        assert!(!state().last_run_failed(), "never run");
    }
}
