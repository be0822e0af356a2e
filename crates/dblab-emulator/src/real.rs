//! A refresh on real data: real `pg_dump` (directory format, the configured dump
//! `parallelJobs`) from exactly the source the engine's config names, with the password it
//! was given, then real `pg_restore` (the restore `parallelJobs`) into the engine's pool, a
//! PostgreSQL server of its own. The statuses follow the real jobs, and a failing tool's
//! own error text becomes the `refresh_failed` alert, with the password scrubbed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::engine::{DumpSource, Engine, Shared};

/// Where real refreshes get their tools and put their data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealData {
    /// The folder holding `pg_dump`, `pg_restore` and `psql`.
    pub bin_dir: String,
    pub pool: Pool,
}

/// The engine's pool: the server a refresh restores into. The restored database takes the
/// source database's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
}

/// What one real refresh needs, read from the engine when it starts.
pub(crate) struct Job {
    pub(crate) data: RealData,
    pub(crate) source: DumpSource,
    pub(crate) password: Option<String>,
    pub(crate) restore_jobs: String,
    /// The restore phase lasts at least this long (a bigger database's index builds), so
    /// that pollers can see it running after the dump is over.
    pub(crate) restore_ms: u64,
    pub(crate) snapshot_ms: u64,
    pub(crate) generation: u64,
}

/// A tool's failure as the engine reports it: its own words, never the password.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.trim().to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "********");
    }
    out
}

async fn run(mut command: Command, what: &str, secrets: &[&str]) -> Result<(), String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = command.output().await.map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = scrub(&String::from_utf8_lossy(&output.stderr), secrets);
    Err(if text.is_empty() { format!("{what} failed: {}", output.status) } else { text })
}

fn tool(data: &RealData, name: &str) -> Command {
    Command::new(Path::new(&data.bin_dir).join(name))
}

fn dump_command(job: &Job, dir: &Path) -> Command {
    let s = &job.source;
    let mut c = tool(&job.data, "pg_dump");
    c.arg("--format=directory").arg(format!("--jobs={}", s.parallel_jobs.parse::<u32>().unwrap_or(1).max(1)));
    c.arg("--file").arg(dir).arg("--no-password");
    // 4.2 dumps through its connection string when it has one, whatever the fields say.
    match &s.connection_string {
        Some(cs) => {
            c.arg("--dbname").arg(cs);
        }
        None => {
            c.args(["--host", &s.host, "--port", &s.port, "--username", &s.username, "--dbname", &s.dbname]);
        }
    }
    c.env("PGPASSWORD", job.password.as_deref().unwrap_or_default())
        .env("PGAPPNAME", "pg_dump")
        .env("PGCONNECT_TIMEOUT", "10");
    c
}

fn pool_command(job: &Job, name: &str) -> Command {
    let p = &job.data.pool;
    let mut c = tool(&job.data, name);
    c.args(["--host", &p.host, "--port", &p.port.to_string(), "--username", &p.username, "--no-password"]);
    c.env("PGPASSWORD", &p.password).env("PGCONNECT_TIMEOUT", "10");
    c
}

fn database(job: &Job) -> String {
    if job.source.dbname.is_empty() { "postgres".into() } else { job.source.dbname.clone() }
}

fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

async fn restore(job: &Job, dir: &Path, secrets: &[&str]) -> Result<(), String> {
    let db = database(job);
    let mut recreate = pool_command(job, "psql");
    recreate.args(["--dbname", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    recreate.arg("-c").arg(format!("drop database if exists {} with (force)", quoted(&db)));
    recreate.arg("-c").arg(format!("create database {}", quoted(&db)));
    run(recreate, "psql", secrets).await?;
    let mut c = pool_command(job, "pg_restore");
    c.arg(format!("--jobs={}", job.restore_jobs.parse::<u32>().unwrap_or(1).max(1)));
    c.args(["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", &db]).arg(dir);
    c.env("PGAPPNAME", "pg_restore");
    run(c, "pg_restore", secrets).await
}

fn work_dir(generation: u64) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("dblab-emulator-dump-{}-{generation}-{nanos}", std::process::id()))
}

/// Runs the jobs and moves the engine's status with them; a newer refresh supersedes this one.
pub(crate) async fn refresh(shared: Shared, job: Job) {
    let current = |e: &Engine| e.generation == job.generation;
    let password = job.password.clone().unwrap_or_default();
    let pool_password = job.data.pool.password.clone();
    let secrets = [password.as_str(), pool_password.as_str()];
    let dir = work_dir(job.generation);
    let dumped = run(dump_command(&job, &dir), "pg_dump", &secrets).await;
    let step = |shared: &Shared, f: &dyn Fn(&mut Engine)| {
        let mut e = shared.lock();
        if current(&e) {
            f(&mut e);
        }
        current(&e)
    };
    let ok = match dumped {
        Err(message) => {
            step(&shared, &|e| e.fail(&message));
            false
        }
        Ok(()) => step(&shared, &|e| {
            e.phase = Some("restore");
            e.mark("restore");
        }),
    };
    if ok {
        let restore_began = std::time::Instant::now();
        let restored = restore(&job, &dir, &secrets).await;
        if restored.is_ok() {
            let least = Duration::from_millis(job.restore_ms);
            tokio::time::sleep(least.saturating_sub(restore_began.elapsed())).await;
        }
        match restored {
            Err(message) => {
                step(&shared, &|e| e.fail(&message));
            }
            Ok(()) => {
                let renewed = step(&shared, &|e| {
                    e.status = "renewed".into();
                    e.mark("renewed");
                    e.phase = None;
                });
                if renewed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    step(&shared, &|e| {
                        e.status = "snapshotting".into();
                        e.mark("snapshotting");
                    });
                    tokio::time::sleep(Duration::from_millis(job.snapshot_ms)).await;
                    step(&shared, &|e| {
                        e.status = "finished".into();
                        e.mark("finished");
                        e.alerts.remove("refresh_failed");
                    });
                }
            }
        }
    }
    // Quick and local: not worth a blocking-pool thread.
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_error_keeps_its_words_and_loses_the_password() {
        let text = "pg_dump: error: connection to server at \"127.0.0.1\", port 5 failed: FATAL:  password \
                    authentication failed for user \"dblab\" (tried s3cr3t)\n";
        let out = scrub(text, &["s3cr3t", ""]);
        assert!(out.starts_with("pg_dump: error: connection to server"), "{out}");
        assert!(out.ends_with("(tried ********)"), "{out}");
    }
}
