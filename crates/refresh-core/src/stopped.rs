//! A run that ended without finishing (stopped by hand, timed out, or failed with an error
//! no Catch handles) recorded nothing about itself. The clean-up machine starts from the
//! ended execution's event, which holds only the request; the execution's own history
//! holds the rest: the state its last completed step passed on (snapshot, clone, refresh),
//! the state it was in, and how it ended.

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::names;
use crate::run::{CaughtError, RunState, Stop};
use crate::text::shorten;

/// Longest text kept from Step Functions' own cause: a `States.Runtime` cause quotes the
/// whole state document.
const CAUSE_LIMIT: usize = 400;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stopped {
    /// The run's state as its last completed step left it.
    pub state: Option<RunState>,
    /// The state it was in when it ended.
    pub in_state: Option<String>,
    /// Whether that state was a Task: its Lambda call may still be running (Step Functions
    /// does not stop a call it started), and may yet create a clone or take a lock. `None`
    /// when the history was not read.
    pub in_task: Option<bool>,
    pub ended: Option<Ended>,
}

/// How the execution ended, as its history says.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// `ABORTED`, `TIMED_OUT` or `FAILED`.
    pub status: &'static str,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Reads a stopped execution's history newest first, and says when it has all it needs: how
/// the execution ended, the state it was in, and the run state its last step passed on.
/// Those are all at the end of a history that may hold thousands of events.
#[derive(Debug)]
pub(crate) struct NewestFirst {
    stopped: Stopped,
    /// Whether the newest state event was seen (which decides `in_state`).
    placed: bool,
    /// Events read so far.
    pub read: usize,
}

impl Default for NewestFirst {
    fn default() -> Self {
        Self { stopped: Stopped { in_task: Some(false), ..Default::default() }, placed: false, read: 0 }
    }
}

impl NewestFirst {
    /// Takes the next older event; `true` once nothing older can change the result.
    pub fn read(&mut self, event: &HistoryEvent) -> bool {
        self.read += 1;
        let stopped = &mut self.stopped;
        if let Some(entered) = event.state_entered_event_details()
            && !self.placed
        {
            // The newest state event is an entry: the run was in that state.
            self.placed = true;
            stopped.in_state = Some(entered.name().to_string());
            stopped.in_task = Some(event.r#type() == &HistoryEventType::TaskStateEntered);
        }
        if let Some(exited) = event.state_exited_event_details() {
            // The newest is an exit: the run was between states.
            self.placed = true;
            // Every state of the refresh machine passes the whole run state on.
            if stopped.state.is_none() {
                stopped.state = exited.output().and_then(|o| serde_json::from_str::<RunState>(o).ok());
            }
        }
        if stopped.ended.is_none() {
            stopped.ended = ended(event);
        }
        self.placed && stopped.state.is_some() && stopped.ended.is_some()
    }

    pub fn finish(self) -> Stopped {
        self.stopped
    }
}

fn ended(event: &HistoryEvent) -> Option<Ended> {
    let ended = |status: &'static str, error: Option<&str>, cause: Option<&str>| Ended {
        status,
        error: error.filter(|e| !e.is_empty()).map(str::to_string),
        cause: cause.filter(|c| !c.is_empty()).map(|c| shorten(c, CAUSE_LIMIT)),
    };
    match event.r#type() {
        HistoryEventType::ExecutionAborted => {
            let d = event.execution_aborted_event_details();
            Some(ended("ABORTED", d.and_then(|d| d.error()), d.and_then(|d| d.cause())))
        }
        HistoryEventType::ExecutionTimedOut => {
            let d = event.execution_timed_out_event_details();
            Some(ended("TIMED_OUT", d.and_then(|d| d.error()), d.and_then(|d| d.cause())))
        }
        HistoryEventType::ExecutionFailed => {
            let d = event.execution_failed_event_details();
            Some(ended("FAILED", d.and_then(|d| d.error()), d.and_then(|d| d.cause())))
        }
        _ => None,
    }
}

/// Reads a stopped execution's whole history (events oldest first), newest first: what the
/// page-by-page reading of `Executions::stopped` must agree with.
#[cfg(test)]
pub(crate) fn from_history(events: &[HistoryEvent]) -> Stopped {
    let mut reader = NewestFirst::default();
    for event in events.iter().rev() {
        if reader.read(event) {
            break;
        }
    }
    reader.finish()
}

/// An execution that has ended, as DescribeExecution tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedExecution {
    pub name: String,
    pub arn: String,
    pub state_machine_arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    pub started_at: OffsetDateTime,
    pub stopped_at: OffsetDateTime,
}

/// The clean-up machine's input for an ended run, as EventBridge's status-change event
/// gives it when it leaves the input out (`inputDetails.included: false`): the clean-up
/// then reads the input from the execution. The hourly pass sends this for a run whose
/// event never came.
pub fn cleanup_event(ended: &EndedExecution) -> Value {
    let millis = |t: OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    json!({
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "time": crate::clock::rfc3339(ended.stopped_at),
        "resources": [ended.arn],
        "detail": {
            "executionArn": ended.arn,
            "stateMachineArn": ended.state_machine_arn,
            "name": ended.name,
            "status": ended.status,
            "startDate": millis(ended.started_at),
            "stopDate": millis(ended.stopped_at),
            "inputDetails": {"included": false},
        }
    })
}

/// The clean-up execution's name for a run: one per run, so it is never started twice.
/// Step Functions names hold 80 characters; a run's own name may take them all.
pub fn cleanup_name(run_arn: &str) -> String {
    let name = run_arn.rsplit(':').next().unwrap_or(run_arn);
    let kept: String = name.chars().take(80 - "cleanup--12345678".len()).collect();
    format!("cleanup-{kept}-{:08x}", crate::naming::fnv1a(run_arn))
}

/// The clean-up's state completed with what the stopped run had done. The clean-up keeps
/// what it owns (the request and execution from the event, its own deletion and errors);
/// the run gives its snapshot, clone, refresh, run start and the state it failed in. The
/// error stays `ExecutionStopped`, its message saying how and where the run ended.
pub fn complete(cleanup: RunState, stopped: Stopped) -> RunState {
    let Stopped { state, in_state, in_task, ended } = stopped;
    let run = state.unwrap_or_default();
    let earlier = run.error.as_ref().map(|e| format!("{}: {}", e.error, e.message()));
    let failed_state = run.failed_state.or(in_state.clone());
    let error = match ended {
        Some(ended) => {
            let how = match (ended.error, ended.cause) {
                (Some(e), Some(c)) => format!(" ({e}: {c})"),
                (Some(e), None) => format!(" ({e})"),
                (None, Some(c)) => format!(" ({c})"),
                (None, None) => String::new(),
            };
            let place = in_state.map(|s| format!(" in state {s}")).unwrap_or_default();
            let after = earlier.map(|e| format!(", after {e}")).unwrap_or_default();
            Some(CaughtError {
                error: names::EXECUTION_STOPPED.into(),
                cause: Some(format!(
                    "the execution ended {}{place}{how} before it finished{after}; this clean-up removed what it \
                     had created",
                    ended.status
                )),
            })
        }
        None => cleanup.error,
    };
    RunState {
        run: run.run,
        snapshot: run.snapshot,
        engine_lock: run.engine_lock,
        clone: run.clone,
        refresh: run.refresh,
        early_deletion: run.early_deletion,
        early_deletion_error: run.early_deletion_error,
        failed_state,
        error,
        stop: cleanup.stop.clone().map(|stop| Stop { in_flight: in_task, ..stop }),
        ..cleanup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::{
        ExecutionAbortedEventDetails, ExecutionFailedEventDetails, StateEnteredEventDetails, StateExitedEventDetails,
    };
    use aws_smithy_types::DateTime;
    use serde_json::json;

    fn entered(id: i64, name: &str) -> HistoryEvent {
        let kind = if name.starts_with("Wait") {
            HistoryEventType::WaitStateEntered
        } else {
            HistoryEventType::TaskStateEntered
        };
        HistoryEvent::builder()
            .id(id)
            .timestamp(DateTime::from_secs(id))
            .r#type(kind)
            .state_entered_event_details(StateEnteredEventDetails::builder().name(name).build().unwrap())
            .build()
            .unwrap()
    }

    fn exited(id: i64, name: &str, output: &serde_json::Value) -> HistoryEvent {
        HistoryEvent::builder()
            .id(id)
            .timestamp(DateTime::from_secs(id))
            .r#type(HistoryEventType::TaskStateExited)
            .state_exited_event_details(
                StateExitedEventDetails::builder().name(name).output(output.to_string()).build().unwrap(),
            )
            .build()
            .unwrap()
    }

    fn snapshot() -> serde_json::Value {
        json!({
            "mode": "snapshot", "identifier": "rds:prod-2026-11-30-03-00", "arn": "arn:snap", "engine": "postgres",
            "dataAsOf": "2026-11-30T03:00:00Z", "snapshotType": "automated", "sourceType": "rds",
            "sourceIdentifier": "prod", "foundAt": "2026-12-01T04:00:05Z"
        })
    }

    fn clone() -> serde_json::Value {
        json!({
            "identifier": "dblab-refresh-staging-1", "kind": "instance", "instanceClass": "db.r6g.large",
            "engine": "postgres", "requestedAt": "2026-12-01T04:00:06Z", "deadline": "2026-12-01T06:00:06Z",
            "status": "ready", "rdsStatus": "available", "readyAt": "2026-12-01T04:10:00Z"
        })
    }

    fn history() -> Vec<HistoryEvent> {
        let request = json!({"target": "staging"});
        vec![
            entered(2, "FindSnapshot"),
            exited(3, "FindSnapshot", &json!({"request": request, "snapshot": snapshot()})),
            entered(4, "Restore"),
            exited(
                5,
                "Restore",
                &json!({"request": request, "snapshot": snapshot(), "engineLock": {"key": "engine#id#e1", "instanceId": "e1"},
                        "clone": clone()}),
            ),
            entered(6, "WaitForRefresh"),
        ]
    }

    #[test]
    fn an_aborted_run_gives_its_last_state_and_where_it_was() {
        let mut events = history();
        events.push(
            HistoryEvent::builder()
                .id(7)
                .timestamp(DateTime::from_secs(7))
                .r#type(HistoryEventType::ExecutionAborted)
                .execution_aborted_event_details(ExecutionAbortedEventDetails::builder().build())
                .build()
                .unwrap(),
        );
        let stopped = from_history(&events);
        assert_eq!(stopped.in_state.as_deref(), Some("WaitForRefresh"));
        assert_eq!(stopped.ended.as_ref().map(|e| e.status), Some("ABORTED"));
        let cleanup = RunState {
            request: json!({"target": "staging"}),
            error: Some(CaughtError { error: "ExecutionStopped".into(), cause: Some("from the event".into()) }),
            ..Default::default()
        };
        let done = complete(cleanup, stopped);
        assert_eq!(done.snapshot.as_ref().map(|s| s.identifier.as_str()), Some("rds:prod-2026-11-30-03-00"));
        assert_eq!(done.clone.as_ref().map(|c| c.instance_class.as_str()), Some("db.r6g.large"));
        assert_eq!(done.engine_lock.map(|l| l.key).as_deref(), Some("engine#id#e1"), "released by the clean-up");
        assert_eq!(done.failed_state.as_deref(), Some("WaitForRefresh"));
        let error = done.error.unwrap();
        assert_eq!(error.error, "ExecutionStopped");
        assert_eq!(
            error.message(),
            "the execution ended ABORTED in state WaitForRefresh before it finished; this clean-up removed what it \
             had created"
        );
    }

    #[test]
    fn a_failed_run_says_the_error_and_what_it_was_handling() {
        let mut events = history();
        let failing = json!({
            "request": {"target": "staging"}, "clone": clone(),
            "error": {"Error": "RefreshFailed", "Cause": "{\"errorMessage\":\"pg_dump failed\"}"},
            "failedState": "PollRefresh"
        });
        events.push(exited(7, "WaitForRefresh", &failing));
        events.push(entered(8, "Cleanup"));
        events.push(
            HistoryEvent::builder()
                .id(9)
                .timestamp(DateTime::from_secs(9))
                .r#type(HistoryEventType::ExecutionFailed)
                .execution_failed_event_details(
                    ExecutionFailedEventDetails::builder().error("States.Runtime").cause("x".repeat(1_000)).build(),
                )
                .build()
                .unwrap(),
        );
        let done = complete(RunState::default(), from_history(&events));
        assert_eq!(done.failed_state.as_deref(), Some("PollRefresh"), "the state the run's own failure came from");
        let message = done.error.unwrap().message();
        assert!(message.starts_with("the execution ended FAILED in state Cleanup (States.Runtime: xxx"), "{message}");
        assert!(message.contains("...) before it finished, after RefreshFailed: pg_dump failed;"), "{message}");
        assert!(message.len() < 600, "Step Functions' cause is shortened: {}", message.len());
    }

    #[test]
    fn without_a_history_the_clean_up_keeps_what_it_knew() {
        let cleanup = RunState {
            request: json!({"target": "staging"}),
            error: Some(CaughtError { error: "ExecutionStopped".into(), cause: Some("from the event".into()) }),
            ..Default::default()
        };
        let done = complete(cleanup.clone(), from_history(&[]));
        assert_eq!(done, RunState { stop: None, ..cleanup });
    }

    #[test]
    fn a_timed_out_run_carries_everything_its_last_step_passed_on() {
        let passed = json!({
            "request": {"target": "staging"},
            "run": {"target": "staging", "runKey": "run#1", "startedAt": "2026-12-01T04:00:00Z",
                    "lockExpiresAt": "2026-12-01T10:00:00Z", "pollSeconds": {"clone": 30}},
            "clone": clone(),
            "refresh": {"previousLastRefresh": "", "triggeredAt": "2026-12-01T04:11:00Z", "deadline": "2026-12-01T08:11:00Z",
                        "dumpParallelJobs": 2, "status": "pending", "retrievalStatus": "refreshing", "lastRefresh": "",
                        "seenStart": true},
            "earlyDeletion": {"identifier": "dblab-refresh-staging-1", "status": "deleting", "deleted": [],
                              "checkedAt": "2026-12-01T04:40:00Z"},
            "earlyDeletionError": {"Error": "AwsTransient", "Cause": "throttled"}
        });
        let events = vec![
            entered(2, "PollRefresh"),
            exited(3, "PollRefresh", &passed),
            entered(4, "WaitForRefresh"),
            HistoryEvent::builder()
                .id(5)
                .timestamp(DateTime::from_secs(5))
                .r#type(HistoryEventType::ExecutionTimedOut)
                .build()
                .unwrap(),
        ];
        let stopped = from_history(&events);
        assert_eq!(stopped.ended.as_ref().map(|e| e.status), Some("TIMED_OUT"));
        let done = complete(RunState::default(), stopped);
        assert_eq!(done.run.map(|r| r.run_key).as_deref(), Some("run#1"));
        assert_eq!(done.refresh.map(|r| r.dump_parallel_jobs), Some(2));
        assert_eq!(done.early_deletion.map(|d| d.identifier).as_deref(), Some("dblab-refresh-staging-1"));
        assert_eq!(done.early_deletion_error.map(|e| e.error).as_deref(), Some("AwsTransient"));
        assert!(done.error.unwrap().message().starts_with("the execution ended TIMED_OUT in state WaitForRefresh"));
    }

    #[test]
    fn the_event_for_a_lost_end_is_the_one_eventbridge_sends_without_input() {
        let ended = EndedExecution {
            name: "nightly-1".into(),
            arn: "arn:aws:states:us-east-1:123456789012:execution:s-refresh:nightly-1".into(),
            state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:s-refresh".into(),
            status: "FAILED".into(),
            started_at: time::macros::datetime!(2026-12-01 03:00:00.250 UTC),
            stopped_at: time::macros::datetime!(2026-12-01 04:30 UTC),
        };
        let event = cleanup_event(&ended);
        assert_eq!(event["time"], "2026-12-01T04:30:00Z");
        let detail = &event["detail"];
        assert_eq!(detail["executionArn"], json!(ended.arn));
        assert_eq!(detail["stateMachineArn"], json!(ended.state_machine_arn));
        assert_eq!((detail["name"].as_str(), detail["status"].as_str()), (Some("nightly-1"), Some("FAILED")));
        assert_eq!(detail["startDate"], 1_796_094_000_250_i64);
        assert_eq!(detail["stopDate"], 1_796_099_400_000_i64);
        assert_eq!(detail["inputDetails"]["included"], false);
        assert!(detail.get("input").is_none());
    }

    #[test]
    fn a_clean_up_is_named_after_its_run_within_step_functions_limits() {
        let arn = |name: &str| format!("arn:aws:states:us-east-1:123456789012:execution:s-refresh:{name}");
        let short = cleanup_name(&arn("nightly-1"));
        assert!(short.starts_with("cleanup-nightly-1-") && short.len() == "cleanup-nightly-1-".len() + 8, "{short}");
        assert_eq!(short, cleanup_name(&arn("nightly-1")), "the same run, the same name");
        let long = |tail: &str| cleanup_name(&arn(&format!("{}{tail}", "n".repeat(76))));
        let (a, b) = (long("-a"), long("-b"));
        assert_ne!(a, b, "two long names with one prefix stay apart");
        assert_eq!(a.len(), 80, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{a}");
    }

    /// The history read oldest first, every event: what reading newest first must equal.
    fn forward(events: &[HistoryEvent]) -> Stopped {
        let mut stopped = Stopped { in_task: Some(false), ..Default::default() };
        for event in events {
            if let Some(entered) = event.state_entered_event_details() {
                stopped.in_state = Some(entered.name().to_string());
                stopped.in_task = Some(event.r#type() == &HistoryEventType::TaskStateEntered);
            }
            if let Some(exited) = event.state_exited_event_details() {
                if let Some(state) = exited.output().and_then(|o| serde_json::from_str::<RunState>(o).ok()) {
                    stopped.state = Some(state);
                }
                if stopped.in_state.as_deref() == Some(exited.name()) {
                    stopped.in_state = None;
                    stopped.in_task = Some(false);
                }
            }
            if let Some(end) = ended(event) {
                stopped.ended = Some(end);
            }
        }
        stopped
    }

    #[test]
    fn newest_first_reads_what_a_whole_reading_does() {
        let aborted = |id| {
            HistoryEvent::builder()
                .id(id)
                .timestamp(DateTime::from_secs(id))
                .r#type(HistoryEventType::ExecutionAborted)
                .build()
                .unwrap()
        };
        let mut histories = vec![history(), Vec::new(), vec![aborted(1)]];
        for cut in 1..=history().len() {
            let mut h: Vec<HistoryEvent> = history().into_iter().take(cut).collect();
            histories.push(h.clone());
            h.push(aborted(99));
            histories.push(h);
        }
        for h in &histories {
            assert_eq!(from_history(h), forward(h), "{:?}", h.iter().map(|e| e.id()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_long_history_is_read_from_its_end_only() {
        // A run that polled for hours: thousands of events, what matters in the last few.
        let state = json!({"request": {"target": "staging"}, "clone": clone()});
        let mut events = Vec::new();
        for i in 0..2_000 {
            events.push(entered(3 * i, "WaitForRefresh"));
            events.push(exited(3 * i + 1, "WaitForRefresh", &state));
            events.push(entered(3 * i + 2, "PollRefresh"));
        }
        events.push(
            HistoryEvent::builder()
                .id(7_000)
                .timestamp(DateTime::from_secs(7_000))
                .r#type(HistoryEventType::ExecutionAborted)
                .build()
                .unwrap(),
        );
        let mut reader = NewestFirst::default();
        let done_at = events.iter().rev().position(|e| reader.read(e));
        assert_eq!(done_at, Some(2), "the end, the state it was in, the state before it");
        assert_eq!(reader.read, 3);
        let stopped = reader.finish();
        assert_eq!(stopped, forward(&events));
        assert_eq!((stopped.in_state.as_deref(), stopped.in_task), (Some("PollRefresh"), Some(true)));
        assert!(stopped.state.is_some_and(|s| s.clone.is_some()));
    }

    fn stop_at() -> Stop {
        Stop { at: time::macros::datetime!(2026-12-01 04:30 UTC), in_flight: None }
    }

    #[test]
    fn a_run_stopped_in_a_task_may_have_a_call_in_flight() {
        let cleanup = RunState { stop: Some(stop_at()), ..Default::default() };
        let mut events = history();
        events.truncate(3);
        assert_eq!(events.last().and_then(|e| e.state_entered_event_details()).map(|d| d.name()), Some("Restore"));
        let done = complete(cleanup.clone(), from_history(&events));
        assert_eq!(done.stop, Some(Stop { in_flight: Some(true), ..stop_at() }));

        let done = complete(cleanup.clone(), from_history(&history()));
        assert_eq!(done.stop, Some(Stop { in_flight: Some(false), ..stop_at() }), "stopped in a Wait");
        events.push(exited(4, "Restore", &json!({"request": {"target": "staging"}})));
        let done = complete(cleanup.clone(), from_history(&events));
        assert_eq!(done.stop.and_then(|s| s.in_flight), Some(false), "between states");

        let unread = complete(cleanup.clone(), Stopped::default());
        assert_eq!(unread.stop, Some(stop_at()), "a history not read says nothing: the call may be in flight");
        let aborted = HistoryEvent::builder()
            .id(1)
            .timestamp(DateTime::from_secs(1))
            .r#type(HistoryEventType::ExecutionAborted)
            .build()
            .unwrap();
        let before_any_state = complete(cleanup, from_history(&[aborted]));
        assert_eq!(before_any_state.stop.and_then(|s| s.in_flight), Some(false), "read, and no state was entered");
    }
}
