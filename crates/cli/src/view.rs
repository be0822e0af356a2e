//! The live view of a run, derived from its execution history: which phase it is in,
//! how long each phase took, how many polls, and on failure the error and the state.

use std::fmt::Write as _;

use time::OffsetDateTime;

/// A state entered, from the execution history.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: String,
    pub at: OffsetDateTime,
    /// While a shared snapshot is being copied in before the clone (the clone's RDS status
    /// `copy:...`), that copy's status and progress: the state is then in the copy phase.
    pub copy: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpan {
    pub name: &'static str,
    pub started: OffsetDateTime,
    pub ended: Option<OffsetDateTime>,
    pub polls: usize,
    /// The copy phase's last status and progress.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub status: String,
    pub phases: Vec<PhaseSpan>,
    pub current_state: Option<String>,
    /// The state that failed (from the failure path's marker states), and its phase.
    pub failed_state: Option<String>,
    pub failed_phase: Option<&'static str>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The phase a state of `statemachine/refresh.asl.json` belongs to.
pub fn phase_of(state: &str) -> &'static str {
    match state {
        "Prepare" | "StartRun" | "StartRunFailed" | "IsDuplicate" | "SkippedDuplicate" => "start",
        "FindSnapshot" | "FindSnapshotFailed" | "LockEngine" | "LockEngineFailed" => "preflight",
        "Restore" | "RestoreFailed" | "WaitForClone" | "CheckClone" | "CheckCloneFailed" | "IsCloneReady"
        | "CloneNotReady" => "restore",
        "PatchDblab"
        | "PatchDblabFailed"
        | "WaitForRefresh"
        | "PollRefresh"
        | "PollRefreshFailed"
        | "IsRefreshDone"
        | "RefreshNotDone"
        | "DeleteCloneAfterDump" => "refresh",
        "DeleteClone" | "IsCloneDeleted" | "WaitForDeletion" | "ContinueDeletion" => "delete clone",
        "Cleanup" | "IsCleanupDone" | "WaitForCleanup" | "WaitForCleanupDefault" | "ContinueCleanup" => "clean up",
        _ => "record and notify",
    }
}

/// The state a failure-path marker stands for.
fn failed_state_of(state: &str) -> Option<String> {
    match state {
        "CloneNotReady" => Some("CheckClone".into()),
        "RefreshNotDone" => Some("PollRefresh".into()),
        s => s.strip_suffix("Failed").map(str::to_string),
    }
}

fn is_poll(state: &str) -> bool {
    matches!(state, "CheckClone" | "PollRefresh" | "ContinueDeletion" | "ContinueCleanup")
}

pub fn build(
    steps: &[Step],
    status: &str,
    error: Option<String>,
    cause: Option<String>,
    ended_at: Option<OffsetDateTime>,
) -> View {
    let mut phases: Vec<PhaseSpan> = Vec::new();
    let mut failed_state = None;
    let mut failed_phase = None;
    for step in steps {
        let name = match phase_of(&step.state) {
            "restore" if step.copy.is_some() => "copy",
            other => other,
        };
        if phases.last().map(|p| p.name) != Some(name) {
            if let Some(last) = phases.last_mut() {
                last.ended = Some(step.at);
            }
            phases.push(PhaseSpan { name, started: step.at, ended: None, polls: 0, detail: None });
        }
        if let (Some(copy), Some(last)) = (&step.copy, phases.last_mut()) {
            last.detail = Some(copy.clone());
        }
        if is_poll(&step.state)
            && let Some(last) = phases.last_mut()
        {
            last.polls += 1;
        }
        if failed_state.is_none() {
            failed_state = failed_state_of(&step.state);
            failed_phase = failed_state.as_ref().map(|_| name);
        }
    }
    if let (Some(last), Some(end)) = (phases.last_mut(), ended_at) {
        last.ended = Some(end);
    }
    View {
        status: status.to_string(),
        phases,
        current_state: steps.last().map(|s| s.state.clone()),
        failed_state,
        failed_phase,
        error,
        cause,
    }
}

fn span(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
    }
}

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

pub fn render(view: &View, now: OffsetDateTime, tick: usize, color: bool) -> String {
    let paint = |code: &str, text: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let mut out = String::new();
    let running = view.status == "RUNNING";
    let failed_phase = view.failed_phase;
    for (i, phase) in view.phases.iter().enumerate() {
        let active = running && i + 1 == view.phases.len();
        let took = (phase.ended.unwrap_or(now) - phase.started).whole_seconds();
        let mark = if active {
            paint("33", &SPINNER[tick % SPINNER.len()].to_string())
        } else if failed_phase == Some(phase.name) {
            paint("31", "✗")
        } else {
            paint("32", "✓")
        };
        let polls = match phase.polls {
            0 => None,
            1 => Some("1 poll".to_string()),
            n => Some(format!("{n} polls")),
        };
        let notes: Vec<String> = polls.into_iter().chain(phase.detail.clone()).collect();
        let polls = if notes.is_empty() { String::new() } else { format!("  ({})", notes.join(", ")) };
        let _ = writeln!(out, " {mark} {:<18} {:>8}{polls}", phase.name, span(took));
    }
    let status = match view.status.as_str() {
        "SUCCEEDED" => paint("32", "SUCCEEDED"),
        "RUNNING" => paint("33", &format!("RUNNING in {}", view.current_state.as_deref().unwrap_or("-"))),
        other => paint("31", other),
    };
    let _ = writeln!(out, " status: {status}");
    if let Some(error) = &view.error {
        let _ = writeln!(out, " error:  {}", paint("31", error));
        if let Some(state) = &view.failed_state {
            let _ = writeln!(out, " failed in: {state}");
        }
        if let Some(cause) = &view.cause {
            let _ = writeln!(out, " cause:  {}", readable_cause(cause));
        }
    }
    out
}

/// A Lambda error's cause is JSON with `errorMessage`; show just that.
fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_of_the_workflow_is_in_its_own_phase() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../statemachine/refresh.asl.json");
        let asl: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ending = ["Succeeded", "HowDidItFail", "FailWithError", "FailWithVerdict", "FailUnrecorded"];
        for state in asl["States"].as_object().unwrap().keys() {
            if phase_of(state) == "record and notify" {
                assert!(
                    state.starts_with("Record") || state.starts_with("Notify") || ending.contains(&state.as_str()),
                    "{state} falls into \"record and notify\" by default"
                );
            }
        }
    }
    use time::macros::datetime;

    fn steps(names: &[&str]) -> Vec<Step> {
        let t0 = datetime!(2026-11-22 05:00 UTC);
        names
            .iter()
            .enumerate()
            .map(|(i, s)| Step { state: s.to_string(), at: t0 + time::Duration::seconds(10 * i as i64), copy: None })
            .collect()
    }

    #[test]
    fn phases_polls_and_durations() {
        let s = steps(&[
            "Prepare",
            "StartRun",
            "FindSnapshot",
            "Restore",
            "WaitForClone",
            "CheckClone",
            "IsCloneReady",
            "WaitForClone",
            "CheckClone",
            "IsCloneReady",
            "PatchDblab",
            "WaitForRefresh",
            "PollRefresh",
        ]);
        let v = build(&s, "RUNNING", None, None, None);
        let names: Vec<_> = v.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["start", "preflight", "restore", "refresh"]);
        assert_eq!(v.phases[2].polls, 2);
        assert_eq!(v.phases[2].ended.map(|e| (e - v.phases[2].started).whole_seconds()), Some(70));
        let text = render(&v, datetime!(2026-11-22 05:03 UTC), 1, false);
        assert!(
            text.contains("restore") && text.contains("(2 polls)") && text.contains("RUNNING in PollRefresh"),
            "{text}"
        );
        assert!(text.contains("refresh") && text.contains("(1 poll)") && !text.contains("(1 polls)"), "{text}");
        assert!(!text.contains('\x1b'), "no colour unless asked");
    }

    #[test]
    fn a_snapshot_copied_in_is_a_phase_of_its_own_with_its_progress() {
        let mut s = steps(&[
            "Prepare",
            "StartRun",
            "FindSnapshot",
            "Restore",
            "WaitForClone",
            "CheckClone",
            "IsCloneReady",
            "Restore",
            "WaitForClone",
            "CheckClone",
            "IsCloneReady",
            "CheckCloneFailed",
        ]);
        for (i, copy) in [(4, "creating 0%"), (5, "creating 0%"), (6, "available 100%"), (7, "available 100%")] {
            s[i].copy = Some(copy.into());
        }
        let v = build(&s, "RUNNING", None, None, None);
        let names: Vec<_> = v.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["start", "preflight", "restore", "copy", "restore"]);
        assert_eq!((v.phases[3].polls, v.phases[3].detail.as_deref()), (1, Some("available 100%")));
        assert_eq!((v.failed_state.as_deref(), v.failed_phase), (Some("CheckClone"), Some("restore")));
        let text = render(&v, datetime!(2026-11-22 05:03 UTC), 0, false);
        assert!(text.contains("copy") && text.contains("(1 poll, available 100%)"), "{text}");
        // A run failing while it copies fails in the copy phase.
        s[11].copy = Some("creating 5%".into());
        assert_eq!(build(&s, "FAILED", None, None, None).failed_phase, Some("copy"));
    }

    #[test]
    fn a_failure_names_the_error_and_the_state() {
        let s = steps(&[
            "Prepare",
            "StartRun",
            "FindSnapshot",
            "Restore",
            "WaitForClone",
            "CheckClone",
            "IsCloneReady",
            "CloneNotReady",
            "Cleanup",
            "IsCleanupDone",
            "RecordFailure",
            "NotifyFailure",
            "HowDidItFail",
            "FailWithVerdict",
        ]);
        let v = build(
            &s,
            "FAILED",
            Some("CloneFailed".into()),
            Some("clone x ended in RDS status \"incompatible-restore\"".into()),
            Some(datetime!(2026-11-22 05:03 UTC)),
        );
        assert_eq!(v.failed_state.as_deref(), Some("CheckClone"));
        let text = render(&v, datetime!(2026-11-22 05:03 UTC), 0, true);
        assert!(
            text.contains("CloneFailed")
                && text.contains("failed in: CheckClone")
                && text.contains("incompatible-restore")
        );
        let caught = build(
            &steps(&["Prepare", "StartRun", "FindSnapshot", "FindSnapshotFailed", "Cleanup"]),
            "FAILED",
            Some("DblabBusy".into()),
            Some(r#"{"errorType":"DblabBusy","errorMessage":"busy"}"#.into()),
            None,
        );
        assert_eq!(caught.failed_state.as_deref(), Some("FindSnapshot"));
        assert!(render(&caught, datetime!(2026-11-22 05:03 UTC), 0, false).contains("cause:  busy"));
    }
}
