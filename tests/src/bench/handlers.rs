//! The handlers measured: each in its own process under a local Lambda runtime API, Rust
//! beside its boto3 baseline, the calls each makes named and compared.

use super::fixtures::Fixtures;
use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    Rust,
    Python,
}

/// One process's figures.
struct Run {
    cold: Duration,
    /// Of `cold`, process start to its first request for an event (runtime, clients, AWS config).
    init: Duration,
    /// Of `cold`, the time spent waiting on moto and the emulator, and the calls made there
    /// (by name, sorted: calls made at once arrive in any order).
    cold_upstream: Duration,
    cold_calls: Vec<String>,
    /// Of `cold`, what the handler waited by design (`designed_wait`).
    cold_wait: Duration,
    warm_own: Vec<Duration>,
    peak_rss_kib: u64,
}

fn spawn(lang: Lang, handler: &str, api: &RuntimeApi, f: &Fixtures, plan: &Plan) -> Child {
    let root = repo_root();
    let mut command = match lang {
        Lang::Rust => Command::new(plan.binaries().join(handler)),
        Lang::Python => {
            let mut c = Command::new(root.join(".tools/bench/bin/python"));
            c.args(["-m", "awslambdaric", &format!("handlers.{}", handler.replace('-', "_"))])
                .current_dir(root.join("tests/bench/baseline"));
            c
        }
    };
    std::fs::create_dir_all(root.join("target/bench")).expect("target/bench");
    let log = std::fs::File::create(root.join(format!("target/bench/{handler}-{lang:?}.log"))).expect("a log file");
    // What Lambda gives every function, then this function's own variables from the template.
    let values = LocalValues {
        history_table: f.table.clone(),
        topic_arn: f.topic_arn.clone(),
        source_kms_key_arns: String::new(),
        copy_kms_key_arn: String::new(),
        shared_snapshot_arns: String::new(),
        metrics_namespace: "dblab-refresh/bench".to_string(),
        longest_call: "10s".to_string(),
        cleanup_machine_arn: format!("arn:aws:states:us-east-1:{}:stateMachine:bench-cleanup", crate::stack::ACCOUNT),
        dblab_engines: f.engines.clone(),
    };
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", handler)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{handler}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .envs(environment::platform(&f.aws.url))
        .envs(environment::of(handler, &values))
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    command.spawn().unwrap_or_else(|e| panic!("starting {handler} ({lang:?}) from {:?}: {e}", command.get_program()))
}

/// Peak resident memory of a live process, from the kernel.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn one_process(lang: Lang, handler: &str, f: &Fixtures, plan: &Plan) -> Run {
    let mut api = RuntimeApi::start().await;
    let mut events = Vec::new();
    for k in 0..=plan.warm {
        events.push(f.event(handler, k + 1).await);
    }
    let mut events = events.into_iter();
    f.settle().await;
    f.calls();
    api.send(events.next().expect("the first event"));
    let spawned = Instant::now();
    let mut child = spawn(lang, handler, &api, f, plan);
    let (_, first) = api.answer().await;
    assert!(first.ok, "{handler} ({lang:?}) failed its first invocation: {}", first.body);
    let cold = first.at - spawned;
    let init = api.first_next().map_or(Duration::ZERO, |at| at - spawned);
    let calls = f.calls();
    let (cold_upstream, cold_wait) = (upstream(&calls), designed_wait(&calls));
    let mut cold_calls: Vec<String> = calls.into_iter().map(|c| c.name).collect();
    cold_calls.sort();
    let mut warm_own = Vec::new();
    for event in events {
        f.settle().await;
        f.calls();
        api.send(event);
        let (delivered, answer) = api.answer().await;
        assert!(answer.ok, "{handler} ({lang:?}) failed: {}", answer.body);
        let calls = f.calls();
        warm_own.push((answer.at - delivered).saturating_sub(upstream(&calls) + designed_wait(&calls)));
    }
    let peak_rss_kib = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    Run { cold, init, cold_upstream, cold_wait, cold_calls, warm_own, peak_rss_kib }
}

/// Wall time with at least one call in flight (calls at once count once).
fn upstream(calls: &[Call]) -> Duration {
    let mut spans: Vec<(Instant, Instant)> = calls.iter().map(|c| (c.started, c.ended)).collect();
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(Duration::ZERO, |(s, e)| e - s)
}

/// What a handler waits by design: patch-dblab triggers the engine's refresh only some time
/// after the engine answered its config change (`refresh_core::dblab::trigger::PROOF_GAP`),
/// so the time before `POST /full-refresh` with no call in flight is neither its own work
/// nor upstream's. Zero for every other handler.
fn designed_wait(calls: &[Call]) -> Duration {
    let call = |name: &str| calls.iter().find(|c| c.name == name);
    let (Some(posted), Some(trigger)) = (call("POST /admin/config"), call("POST /full-refresh")) else {
        return Duration::ZERO;
    };
    // The wait ends when the gap has passed; what the handler does after it is its own.
    let waited_until = trigger.started.min(posted.ended + PROOF_GAP.unsigned_abs());
    let last_before = calls.iter().filter(|c| c.ended <= trigger.started).map(|c| c.ended).max();
    last_before.map_or(Duration::ZERO, |ended| waited_until.saturating_duration_since(ended))
}

/// Measures every handler of both languages; answers where the two made different calls
/// on a first invocation (the comparison is then not like for like).
pub(super) async fn handlers(plan: &Plan) -> Vec<String> {
    let f = Fixtures::new().await;
    let mut unlike = Vec::new();
    let mut calls = Vec::new();
    std::fs::create_dir_all(repo_root().join("target/bench")).expect("target/bench");
    println!("## Handlers: cold start, memory and warm cost against a Python/boto3 baseline\n");
    println!(
        "Cold start: process start to the first answer through a local Lambda Runtime API, including the AWS \
         configuration, the clients and the handler's real calls to moto (and the DBLab emulator), the same calls \
         on both sides (listed below); less, for patch-dblab, the {} s it waits by design before its trigger (both \
         languages wait it; shown in the breakdown). Own time: the same less the time its calls spent in moto and \
         the emulator (timed by a proxy; calls at once count once). Memory: peak RSS (VmHWM) after {} more \
         invocations. Warm: the handler's own time per invocation. Rust: the {} build of this machine's \
         architecture. Python 3.11, boto3, awslambdaric. {} processes each, taking turns.\n",
        PROOF_GAP.whole_seconds(),
        plan.warm,
        plan.build(),
        plan.processes
    );
    println!(
        "| handler | cold start Rust | Python | ratio | own time Rust | Python | ratio | peak RSS Rust | Python | \
         ratio | warm own time Rust | Python |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut worst_cold: f64 = 0.0;
    let mut worst_own_cold: f64 = 0.0;
    let mut worst_rss: f64 = 0.0;
    let mut max_rss: u64 = 0;
    let mut breakdown = Vec::new();
    for handler in HANDLERS {
        let mut rust = Vec::new();
        let mut python = Vec::new();
        for _ in 0..plan.processes {
            rust.push(one_process(Lang::Rust, handler, &f, plan).await);
            python.push(one_process(Lang::Python, handler, &f, plan).await);
        }
        let cold = |runs: &[Run]| {
            runs.iter().map(|r| r.cold.saturating_sub(r.cold_wait).as_secs_f64() * 1e3).collect::<Vec<_>>()
        };
        let own_cold = |runs: &[Run]| {
            runs.iter()
                .map(|r| r.cold.saturating_sub(r.cold_upstream + r.cold_wait).as_secs_f64() * 1e3)
                .collect::<Vec<_>>()
        };
        let rss = |runs: &[Run]| runs.iter().map(|r| r.peak_rss_kib as f64 / 1024.0).collect::<Vec<_>>();
        let warm = |runs: &[Run]| {
            runs.iter().flat_map(|r| r.warm_own.iter().map(|d| d.as_secs_f64() * 1e3)).collect::<Vec<_>>()
        };
        let (cr, cp) = (cold(&rust), cold(&python));
        let (mr, mp) = (rss(&rust), rss(&python));
        let (or, op) = (own_cold(&rust), own_cold(&python));
        let cold_ratio = median(&cr) / median(&cp);
        let own_cold_ratio = median(&or) / median(&op);
        worst_own_cold = worst_own_cold.max(own_cold_ratio);
        let rss_ratio = median(&mr) / median(&mp);
        worst_cold = worst_cold.max(cold_ratio);
        worst_rss = worst_rss.max(rss_ratio);
        max_rss = max_rss.max(rust.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0));
        let ms =
            |runs: &[Run], f: fn(&Run) -> Duration| runs.iter().map(|r| f(r).as_secs_f64() * 1e3).collect::<Vec<_>>();
        let init = |r: &Run| r.init;
        let first_own = |r: &Run| r.cold.saturating_sub(r.init + r.cold_upstream + r.cold_wait);
        let upstream = |r: &Run| r.cold_upstream;
        let wait = |r: &Run| r.cold_wait;
        breakdown.push(format!(
            "| {handler} | {} ms | {} ms | {} ms | {} ms | {} | {} ms | {} ms | {} ms | {} ms | {} |",
            spread(&ms(&rust, init), 1),
            spread(&ms(&rust, first_own), 1),
            spread(&ms(&rust, upstream), 1),
            spread(&ms(&rust, wait), 0),
            rust.first().map_or(0, |r| r.cold_calls.len()),
            spread(&ms(&python, init), 0),
            spread(&ms(&python, first_own), 0),
            spread(&ms(&python, upstream), 0),
            spread(&ms(&python, wait), 0),
            python.first().map_or(0, |r| r.cold_calls.len()),
        ));
        let made = |runs: &[Run]| runs.iter().map(|r| r.cold_calls.clone()).collect::<Vec<_>>();
        unlike.extend(unlike_calls(handler, &made(&rust), &made(&python)));
        let rust_calls = rust.first().map(|r| r.cold_calls.clone()).unwrap_or_default();
        calls.push(format!("| {handler} | {} | {} |", rust_calls.len(), grouped(&rust_calls)));
        println!(
            "| {handler} | {} ms | {} ms | 1/{:.0} | {} ms | {} ms | 1/{:.0} | {} MiB | {} MiB | 1/{:.1} | {} ms | {} ms |",
            spread(&cr, 1),
            spread(&cp, 0),
            1.0 / cold_ratio,
            spread(&or, 1),
            spread(&op, 0),
            1.0 / own_cold_ratio,
            spread(&mr, 1),
            spread(&mp, 1),
            1.0 / rss_ratio,
            spread(&warm(&rust), 2),
            spread(&warm(&python), 2),
        );
    }
    println!(
        "\nTargets: cold start at most 1/20 of the baseline's (worst handler: 1/{:.0}, {}; own time: 1/{:.0}); \
         memory at most 1/4 (worst: 1/{:.1}, {}); every handler under 15 MiB peak RSS (highest: {:.1} MiB, {}).\n",
        1.0 / worst_cold,
        verdict(worst_cold <= 1.0 / 20.0),
        1.0 / worst_own_cold,
        1.0 / worst_rss,
        verdict(worst_rss <= 0.25),
        max_rss as f64 / 1024.0,
        verdict(max_rss < 15 * 1024),
    );
    println!(
        "Where the whole cold start goes: init is process start to the first request for an event (the runtime, \
         the AWS configuration, the clients); then the first invocation's own time, the time it waited on moto \
         and the emulator (calls made at once count once), the time it waited by design, and the number of \
         calls.\n"
    );
    println!(
        "| handler | Rust init | own | upstream | by design | calls | Python init | own | upstream | by design | calls |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in breakdown {
        println!("{row}");
    }
    println!(
        "\nThe calls of each first invocation, by the proxies in front of moto and the emulator (the baseline in \
         `tests/bench/baseline` makes the same ones: {}).\n",
        if unlike.is_empty() {
            "equal for every handler".to_string()
        } else {
            format!("NOT EQUAL: {}", unlike.join("; "))
        }
    );
    println!("| handler | calls | which |");
    println!("|---|---|---|");
    for row in calls {
        println!("{row}");
    }
    println!();
    unlike
}

/// Where the processes of one handler did not all make the same calls on their first
/// invocation, within one language or between the two (each process's calls sorted).
fn unlike_calls(handler: &str, rust: &[Vec<String>], python: &[Vec<String>]) -> Vec<String> {
    let mut unlike = Vec::new();
    for (lang, processes) in [("Rust", rust), ("Python", python)] {
        if let Some(first) = processes.first()
            && let Some(other) = processes.iter().find(|calls| *calls != first)
        {
            unlike.push(format!("{handler} ({lang}) made {first:?} in one process, {other:?} in another"));
        }
    }
    if rust.first() != python.first() {
        unlike.push(format!("{handler}: Rust made {:?}, Python {:?}", rust.first(), python.first()));
    }
    unlike
}

/// `a, b x2, c`: each call once, with how many times it was made.
fn grouped(calls: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < calls.len() {
        let n = calls[i..].iter().take_while(|c| *c == &calls[i]).count();
        out.push(if n > 1 { format!("`{}` x{n}", calls[i]) } else { format!("`{}`", calls[i]) });
        i += n;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    fn calls(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn calls_that_differ_in_name_or_count_make_the_comparison_unlike() {
        let rust = calls(&["GET /status", "rds:DescribeDBInstances"]);
        let same = [rust.clone(), rust.clone()];
        assert_eq!(super::unlike_calls("h", &same, &same), Vec::<String>::new());
        let fewer = [calls(&["GET /status"])];
        assert_eq!(super::unlike_calls("h", &same, &fewer).len(), 1, "a call the baseline does not make");
        let twice = [calls(&["GET /status", "GET /status", "rds:DescribeDBInstances"])];
        assert_eq!(super::unlike_calls("h", &same, &twice).len(), 1, "a call made twice");
        let drifting = [rust.clone(), fewer[0].clone()];
        assert_eq!(super::unlike_calls("h", &drifting, &same).len(), 1, "one process of a language differs");
    }

    fn call(name: &str, started: Instant, from_ms: u64, to_ms: u64) -> super::Call {
        let at = |ms| started + Duration::from_millis(ms);
        super::Call { name: name.to_string(), started: at(from_ms), ended: at(to_ms) }
    }

    #[test]
    fn calls_at_once_count_once_upstream() {
        let t = Instant::now();
        let calls = [call("a", t, 0, 10), call("b", t, 5, 20), call("c", t, 30, 40)];
        assert_eq!(super::upstream(&calls), Duration::from_millis(30));
    }

    #[test]
    fn the_designed_wait_is_the_idle_time_before_the_trigger_and_no_more_than_the_gap() {
        let t = Instant::now();
        let gap = super::PROOF_GAP.unsigned_abs();
        let posted_ms = 10;
        let last_ms = 50;
        let trigger_ms = posted_ms + gap.as_millis() as u64 + 30;
        let calls = [
            call("POST /admin/config", t, 0, posted_ms),
            call("GET /status", t, 40, last_ms),
            call("POST /full-refresh", t, trigger_ms, trigger_ms + 5),
        ];
        // Idle from the last call to the gap's end; what follows the gap is the handler's own.
        let expected = Duration::from_millis(posted_ms) + gap - Duration::from_millis(last_ms);
        assert_eq!(super::designed_wait(&calls), expected);
        assert_eq!(super::designed_wait(&calls[..2]), Duration::ZERO, "no trigger, no wait");
    }

    #[test]
    fn a_call_made_twice_is_listed_once_with_its_count() {
        let calls = ["a", "b", "b", "c"].map(String::from);
        assert_eq!(super::grouped(&calls), "`a`, `b` x2, `c`");
    }
}
