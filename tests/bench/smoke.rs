//! The benchmark's smoke pass, part of `make test`: every handler of both languages starts
//! and answers under the benchmark's harness (debug builds, one process each), and one
//! short refresh of each kind runs through the scaled orchestration. It measures nothing
//! worth reading; it fails when `make bench` would.

use refresh_tests::bench::{self, HANDLERS, Part, Plan};
use refresh_tests::repo_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_benchmark_runs_end_to_end() {
    let plan = Plan::smoke();
    build_debug_handlers();
    let unlike = bench::run(&plan, &[Part::Handlers, Part::Orchestration]).await;
    assert_eq!(unlike, Vec::<String>::new(), "the baseline must make the same calls as each Rust handler");
}

/// The Rust handlers the harness starts, as `cargo build` makes them (a no-op when fresh).
fn build_debug_handlers() {
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("build")
        .arg("--locked")
        .args(HANDLERS.iter().flat_map(|h| ["--bin", h]))
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("cargo build: {e}"));
    assert!(status.success(), "cargo build of the handlers failed");
}
