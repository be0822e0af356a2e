//! A refresh's run as steps: for each, what RDS or the engine took, when a look saw it and
//! when the run went on; the table of what each wait added beyond its poll interval.

use refresh_core::dblab::trigger::PROOF_GAP;

use super::orchestration::{Kind, Measured, SCALE};
use super::{spread, verdict};

/// One step of a run, in the bench's own seconds (not scaled back up).
pub(super) struct Step {
    pub(super) name: &'static str,
    /// What RDS or the engine took (0 for a step that is the orchestration's alone).
    pub(super) physical: f64,
    /// How far apart the looks are meant to be (0 for a step that waits for nothing).
    pub(super) interval: f64,
    /// From the state change to the look that saw it.
    pub(super) seen_after: f64,
    /// From that look to the next thing asked of AWS or the engine.
    pub(super) handed_on: f64,
    /// Whether the clone exists through this step.
    pub(super) clone_alive: bool,
}

impl Step {
    /// A wait whose end is known (`ended`), seen by the first of `looks` at or after it;
    /// `next` is when the run asked for what follows.
    pub(super) fn wait(name: &'static str, started: f64, ended: f64, looks: &[f64], interval: f64, next: f64) -> Step {
        let seen = looks.iter().copied().find(|l| *l >= ended).unwrap_or_else(|| panic!("no look saw {name} end"));
        Step {
            name,
            physical: ended - started,
            interval,
            seen_after: seen - ended,
            handed_on: next - seen,
            clone_alive: false,
        }
    }

    /// A step that is the orchestration's alone.
    pub(super) fn hand_off(name: &'static str, from: f64, to: f64) -> Step {
        Step { name, physical: 0.0, interval: 0.0, seen_after: 0.0, handed_on: to - from, clone_alive: false }
    }

    /// The clone exists through this step.
    pub(super) fn with_clone(self) -> Step {
        Step { clone_alive: true, ..self }
    }

    /// `seen_after` in AWS's time, an upper bound: up to one poll interval of it is the
    /// wait for the next look, scaled back up; the rest is Lambda's and Step Functions' own
    /// time, which does not shrink with the scale.
    pub(super) fn seen_after_real(&self) -> f64 {
        self.seen_after.min(self.interval) * SCALE + (self.seen_after - self.interval).max(0.0)
    }

    /// What the orchestration added to a wait, beyond one poll interval, in AWS's time.
    fn added_beyond_interval(&self) -> f64 {
        self.seen_after_real() + self.handed_on - self.interval * SCALE
    }
}

/// Where each run's time goes, step by step: what AWS or the engine took, how long after
/// its end a look saw it, and how long the orchestration took to hand on.
pub(super) fn steps(measured: &[(Kind, Measured)]) {
    println!("### Step by step: the physical time, and what the orchestration added\n");
    println!(
        "Physical: what RDS or the engine took (the copy from its creation, the clone from its restore request, to \
         their scripted end; the engine's refresh from its trigger, by its timeline). Seen after: from that end to \
         the look that saw it (moto's record of each describe, the emulator's of each `/status` and \
         `/instance/retrieval`), in AWS's time: up to one poll interval of it scaled back up, the rest (Lambda's \
         and Step Functions' own time, which does not shrink with the scale) as measured, so an upper bound. \
         Handed on: from that look to the next thing asked of AWS or the engine, as measured. Configuring the \
         engine includes the {} s patch-dblab waits after the engine's answer, so that its refresh's start proves \
         itself later than the change.\n",
        PROOF_GAP.whole_seconds()
    );
    println!("| run | step | physical | seen after | handed on |");
    println!("|---|---|---|---|---|");
    let mut worst: f64 = f64::NEG_INFINITY;
    for kind in Kind::ALL {
        let runs: Vec<&Measured> = measured.iter().filter(|(k, _)| *k == kind).map(|(_, m)| m).collect();
        let Some(first) = runs.first() else { continue };
        for (i, step) in first.steps.iter().enumerate() {
            let of = |f: fn(&Step) -> f64| runs.iter().filter_map(|m| m.steps.get(i)).map(f).collect::<Vec<_>>();
            let (physical, seen) = if step.interval > 0.0 {
                worst = of(Step::added_beyond_interval).into_iter().fold(worst, f64::max);
                (
                    format!("{} min", spread(&of(|s| s.physical * SCALE / 60.0), 1)),
                    format!("{} s", spread(&of(Step::seen_after_real), 0)),
                )
            } else {
                ("-".to_string(), "-".to_string())
            };
            println!(
                "| {} | {} | {physical} | {seen} | {} s |",
                kind.heading(),
                step.name,
                spread(&of(|s| s.handed_on), 2)
            );
        }
    }
    println!(
        "\nTarget: each wait (seen after, then handed on) adds at most one poll interval plus a second: 60 s, \
         30 s while a `clone.deleteAfterDump` run dumps (worst: {worst:+.1} s beyond the interval, {}).\n",
        verdict(worst <= 1.0),
    );
}
