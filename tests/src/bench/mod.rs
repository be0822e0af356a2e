//! The benchmark: the handlers against a boto3 baseline, the orchestration cost of one
//! refresh, and the package sizes, printed as Markdown tables. `make bench` runs the full
//! plan on release builds (`tests/bench/main.rs`); `make test` runs the smoke plan on debug
//! builds (`tests/bench/smoke.rs`), so the harness cannot rot unnoticed.
//!
//! Every figure is measured side by side in the same run (Rust and Python processes take
//! turns) and given as median [min-max] over repeated runs, because shared machines are
//! noisy. Nothing here asserts a time: a benchmark reports, tests decide.
// A benchmark that cannot measure stops with the reason: panicking is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod handlers;
mod lambda_api;
mod orchestration;
mod steps;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use dblab_emulator::Settings;
use lambda_api::{Call, RuntimeApi, TimingProxy};
use refresh_core::dblab::EngineList;
use refresh_core::dblab::trigger::PROOF_GAP;
use refresh_core::dblab::{Refresh, RetrievalStatus};
use refresh_core::history::History;
use refresh_core::poll::PollStatus;
use refresh_core::rds::Rds;
use refresh_core::run::{CloneInstance, Execution, RestoreSource, RunState};
use refresh_core::secrets::SecretReader;
use refresh_core::watch::Watch;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use orchestration::Phases;

use crate::environment::{self, LocalValues};
use crate::{World, moto, repo_root, unique};

pub const HANDLERS: [&str; 8] =
    ["find-snapshot", "restore", "check-available", "patch-dblab", "poll-refresh", "delete-clone", "record", "notify"];

/// How much to measure, and with which builds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Processes started per handler and language.
    pub processes: usize,
    /// Warm invocations per process.
    pub warm: usize,
    /// The release build (`make bench`) or the debug build (the smoke pass).
    pub release: bool,
    /// The refresh the orchestration runs, and how many of each kind side by side.
    pub refresh: Phases,
    pub refreshes: usize,
}

impl Plan {
    /// `make bench`: release builds, 5 processes of 10 warm invocations, three 4-hour refreshes of each kind.
    pub fn full() -> Self {
        Self { processes: 5, warm: 10, release: true, refresh: Phases::FOUR_HOURS, refreshes: 3 }
    }

    /// `make test`: every handler of both languages once, and one short refresh of each kind.
    pub fn smoke() -> Self {
        Self { processes: 1, warm: 1, release: false, refresh: Phases::SHORT, refreshes: 1 }
    }

    /// The build measured: `release` or `debug`.
    fn build(&self) -> &'static str {
        if self.release { "release" } else { "debug" }
    }

    /// Where the Rust handler binaries are.
    fn binaries(&self) -> PathBuf {
        repo_root().join("target").join(self.build())
    }
}

/// Which parts of the benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Handlers,
    Orchestration,
    Packages,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Handlers, Part::Orchestration, Part::Packages];

    pub fn named(name: &str) -> Option<Part> {
        Self::ALL.into_iter().find(|p| format!("{p:?}").eq_ignore_ascii_case(name))
    }
}

/// Runs `parts` of `plan`, printing the report on stdout. Answers where the baseline made
/// other calls than the Rust handler it stands beside (none, or the comparison is unfair).
pub async fn run(plan: &Plan, parts: &[Part]) -> Vec<String> {
    let started = Instant::now();
    println!("# Benchmarks\n");
    println!("Machine: {} cores; {}.\n", std::thread::available_parallelism().map_or(0, |n| n.get()), today());
    let mut unlike = Vec::new();
    if parts.contains(&Part::Handlers) {
        unlike = handlers::handlers(plan).await;
    }
    if parts.contains(&Part::Orchestration) {
        orchestration::report(plan).await;
    }
    if parts.contains(&Part::Packages) {
        packages();
    }
    println!("\n_Measured in {:.0} s by `make bench`._", started.elapsed().as_secs_f64());
    unlike
}

fn today() -> String {
    let now = OffsetDateTime::now_utc();
    format!("{}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `median [min-max]` with `decimals` places.
pub fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.*} [{:.*}-{:.*}]", decimals, median(values), decimals, min, decimals, max)
}

fn packages() {
    println!("## Packages: zipped arm64 release bootstraps (`make build`)\n");
    println!("| function | bootstrap.zip | bootstrap |");
    println!("|---|---|---|");
    let mut largest = 0u64;
    for handler in HANDLERS {
        let size = |path: PathBuf| std::fs::metadata(path).map(|m| m.len()).ok();
        // cargo lambda keeps only the zip; the binary it zipped is the cross build's.
        let zip = size(repo_root().join("target/lambda").join(handler).join("bootstrap.zip"));
        let raw = size(repo_root().join("target/aarch64-unknown-linux-gnu/release").join(handler));
        match (zip, raw) {
            (Some(zip), raw) => {
                largest = largest.max(zip);
                let raw = raw.map_or("-".to_string(), |r| format!("{:.2} MB", r as f64 / 1e6));
                println!("| {handler} | {:.2} MB | {raw} |", zip as f64 / 1e6);
            }
            (None, _) => println!("| {handler} | not built: run `make build` | - |"),
        }
    }
    if largest > 0 {
        println!(
            "\nTarget: every zip under 5 MB (largest: {:.2} MB, {}).",
            largest as f64 / 1e6,
            verdict(largest < 5_000_000)
        );
    }
}
