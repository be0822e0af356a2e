//! A refresh of the engine as a run follows it: what it is, and how it begins (triggered
//! by `patch-dblab`, or found under way and adopted). How it goes on is `progress`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::engine::EngineIdentity;
use super::engine_clock::EngineClock;
use super::status::{AlertMark, EngineSnapshot, InstanceStatus, RetrievalStatus};
use crate::poll::PollStatus;
use crate::request::DblabSpec;

/// The job the engine is running, as far as its activity lists tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefreshPhase {
    #[serde(rename = "dump")]
    Dump,
    #[serde(rename = "restore")]
    Restore,
    /// immediateRestore: dumping and restoring at once.
    #[serde(rename = "dump+restore")]
    DumpAndRestore,
    #[serde(rename = "snapshot")]
    Snapshot,
}

impl RefreshPhase {
    /// In words, for a reader of the notification.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Dump => "the dump",
            Self::Restore => "the restore",
            Self::DumpAndRestore => "the dump restoring as it went (immediateRestore)",
            Self::Snapshot => "the snapshot job",
        }
    }
}

/// Why a refresh failed when the engine's own alert does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshFailure {
    /// Accepted by the engine, but never seen running within `dblab.startTimeout`.
    NotStarted,
    /// The engine restarted (a new `engine.startedAt`, a lost `lastRefresh`, or back to
    /// `inactive`).
    EngineRestarted,
    /// The engine said `finished`, but `GET /snapshots` shows no snapshot of the refreshed
    /// pool made since the refresh started: nothing proves the new data is there.
    NoSnapshot,
}

/// The DBLab refresh: started by `patch-dblab`, advanced by `poll-refresh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refresh {
    /// `lastRefresh` read before the trigger (`None` for `null`).
    #[serde(default, deserialize_with = "super::status::empty_as_none", skip_serializing_if = "Option::is_none")]
    pub previous_last_refresh: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub triggered_at: OffsetDateTime,
    /// The engine's clock against ours at the trigger: the times the engine stamps are
    /// compared with ours only through it.
    #[serde(default)]
    pub engine_clock: EngineClock,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// A refresh not seen running by then was never started by the engine.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub start_deadline: Option<OffsetDateTime>,
    /// The engine's `refresh_skipped` warning as it stood before the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_before: Option<AlertMark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineIdentity>,
    pub dump_parallel_jobs: u32,
    pub status: PollStatus,
    pub retrieval_status: RetrievalStatus,
    /// `lastRefresh` as last seen (`None` for `null`).
    #[serde(default, deserialize_with = "super::status::empty_as_none", skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    /// Whether this refresh has been seen running; before that, `finished`/`failed` are stale.
    pub seen_start: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RefreshFailure>,
    /// The refresh was already running this run's clone when `patch-dblab` looked (a retry
    /// after a lost answer): it was taken as this run's, not started again.
    #[serde(default)]
    pub adopted: bool,
    /// `dump`, `restore` or `snapshot` while it runs, inferred from the engine's activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RefreshPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default)]
    pub polls: u32,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    /// Whether this run deletes its clone once the dump is over (`clone.deleteAfterDump`,
    /// unless the engine restores while it dumps).
    #[serde(default)]
    pub release_after_dump: bool,
    /// The dump is over: the clone is no longer read from.
    #[serde(default)]
    pub dump_over: bool,
    /// Set on the one poll that found the dump over, when the clone is to go now: the
    /// state machine deletes it and goes on polling.
    #[serde(default)]
    pub release_clone: bool,
    /// Seconds the state machine waits before the next poll invocation
    /// (`Refresh::next_look_in`; its Wait reads them).
    #[serde(default)]
    pub wait_seconds: u64,
    /// `engine.startedAt` when the refresh was triggered: another value later is a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_started_at: Option<String>,
    /// The pool the engine refreshes (the last one without clones at the trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The `instanceID` of the engine the run locked: every look checks the engine answering
    /// is that one. `None` when the engine gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_instance: Option<String>,
    /// Since when (our clock) the engine has shown `renewed`, while it does.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub renewed_since: Option<OffsetDateTime>,
    /// Set when the request accepted an engine configured to ignore restore errors: says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_errors: Option<String>,
    /// Set on an LVM engine the request accepted: success is the engine's `finished`
    /// alone, with no snapshot to prove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unproven: Option<String>,
    /// The engine's own evidence of a finished refresh: the snapshot it made of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<EngineSnapshot>,
}

impl Refresh {
    /// How long until the next look at the engine: the poll interval, but half of it while the
    /// dump of a run that deletes its clone after the dump is going. The end of the dump is then
    /// seen within half an interval, so the clone is gone within one, its deletion included
    /// (this applies between invocations too: the state machine waits `wait_seconds`). It adds
    /// looks inside invocations, not state transitions.
    pub fn next_look_in(&self, poll_interval: std::time::Duration) -> std::time::Duration {
        if self.release_after_dump && !self.dump_over { poll_interval / 2 } else { poll_interval }
    }
}

/// What `patch-dblab` knows of the engine and of the refresh when it triggers (or adopts) it.
#[derive(Debug, Clone)]
pub struct Trigger<'a> {
    pub spec: &'a DblabSpec,
    /// `/status` just ahead of the trigger.
    pub before: &'a InstanceStatus,
    pub engine: EngineIdentity,
    /// The engine's clock at the trigger, against ours.
    pub clock: EngineClock,
    /// What the engine will use: its `server.yml` value once the patch is applied.
    pub dump_parallel_jobs: u32,
    pub release_after_dump: bool,
    /// The pool the engine will refresh.
    pub pool: Option<String>,
    /// Said when the request accepted an engine that ignores restore errors.
    pub ignored_errors: Option<String>,
    /// Said when the request accepted an LVM engine, whose refreshes no snapshot proves.
    pub unproven: Option<String>,
    /// The `instanceID` the run's engine lock holds.
    pub locked_instance: Option<String>,
}

/// A refresh triggered `at`, on an engine that looked like `t.before` just ahead of it.
pub fn triggered(at: OffsetDateTime, t: Trigger<'_>) -> Refresh {
    let before = &t.before.retrieving;
    let mut refresh = Refresh {
        previous_last_refresh: before.last_refresh.clone(),
        triggered_at: at,
        engine_clock: t.clock,
        deadline: at + t.spec.timeout,
        start_deadline: Some(at + t.spec.start_timeout),
        skipped_before: before.skipped_mark(),
        engine: Some(t.engine),
        dump_parallel_jobs: t.dump_parallel_jobs,
        status: PollStatus::Pending,
        retrieval_status: before.status.clone(),
        last_refresh: before.last_refresh.clone(),
        seen_start: false,
        failure: None,
        adopted: false,
        phase: None,
        alert: None,
        polls: 0,
        finished_at: None,
        release_after_dump: t.release_after_dump,
        dump_over: false,
        release_clone: false,
        engine_started_at: t.before.engine.started_at.clone(),
        pool: t.pool,
        renewed_since: None,
        ignored_errors: t.ignored_errors,
        unproven: t.unproven,
        locked_instance: t.locked_instance,
        snapshot: None,
        wait_seconds: 0,
    };
    refresh.wait_seconds = refresh.next_look_in(t.spec.poll_interval).as_secs();
    refresh
}

/// A refresh found already started from this run's clone (the answer to its trigger was
/// lost, or the engine started it on this run's config change): seen started, followed
/// from `now` on.
pub fn adopted(now: OffsetDateTime, t: Trigger<'_>) -> Refresh {
    Refresh { start_deadline: None, seen_start: true, adopted: true, ..triggered(now, t) }
}
