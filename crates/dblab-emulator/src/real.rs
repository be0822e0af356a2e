//! A refresh on real data, as the engine's logical jobs run it: the databases to dump are
//! listed on the source (every non-template database the configured user may connect to),
//! then one real `pg_dump --create` per database (directory format, the configured dump
//! `parallelJobs`) from exactly the source the engine's config names, with the password it
//! was given, then one real `pg_restore` per database (the restore `parallelJobs`) into the
//! engine's pool, a PostgreSQL server of its own. The statuses follow the real jobs; a
//! failing tool's own error text becomes the `refresh_failed` alert, with the password
//! scrubbed, unless the restore's `ignoreErrors` is set: then the refresh goes on with
//! whatever was restored, as the engine's does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::engine::{DumpSource, Engine, Shared};
use crate::settings::RealData;

/// What one real refresh needs, read from the engine when it starts.
pub(crate) struct Job {
    pub(crate) data: RealData,
    pub(crate) source: DumpSource,
    pub(crate) password: Option<String>,
    pub(crate) restore_jobs: String,
    /// `logicalRestore.options.ignoreErrors`: a failing pg_restore does not stop the refresh.
    pub(crate) ignore_restore_errors: bool,
    /// When the dump started: the snapshot's `dataStateAt` (pg_dump's archive time).
    pub(crate) dumped_at: time::OffsetDateTime,
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

async fn run(mut command: Command, what: &str, secrets: &[&str]) -> Result<String, String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = command.output().await.map_err(|e| format!("{what}: cannot run: {e}"))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let text = scrub(&String::from_utf8_lossy(&output.stderr), secrets);
    Err(if text.is_empty() { format!("{what} failed: {}", output.status) } else { text })
}

fn tool(data: &RealData, name: &str) -> Command {
    Command::new(Path::new(&data.bin_dir).join(name))
}

/// The source's connection arguments for one database: 4.2 dumps through its connection
/// string when it has one (the database set in it), whatever the fields say.
fn source_args(c: &mut Command, job: &Job, dbname: &str) {
    let s = &job.source;
    match &s.connection_string {
        Some(cs) => {
            c.arg("--dbname").arg(with_database(cs, dbname));
        }
        None => {
            c.args(["--host", &s.host, "--port", &s.port, "--username", &s.username, "--dbname", dbname]);
        }
    }
    c.env("PGPASSWORD", job.password.as_deref().unwrap_or_default()).env("PGCONNECT_TIMEOUT", "10");
}

/// A connection string with its database replaced, in key/value form.
fn with_database(cs: &str, dbname: &str) -> String {
    let mut parts = crate::server_yml::parse_dsn(cs).unwrap_or_default();
    parts.insert("dbname".into(), dbname.into());
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    parts.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect::<Vec<_>>().join(" ")
}

/// The databases the dump job takes: every non-template one the configured user may
/// connect to, listed through the configured database (the engine's own query).
async fn databases(job: &Job, secrets: &[&str]) -> Result<Vec<String>, String> {
    let mut c = tool(&job.data, "psql");
    let list_db = if job.source.dbname.is_empty() { "postgres" } else { job.source.dbname.as_str() };
    source_args(&mut c, job, list_db);
    c.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c"]).arg(format!(
        "select datname from pg_catalog.pg_database where not datistemplate and \
         has_database_privilege('{}', datname, 'CONNECT') order by datname",
        job.source.username.replace('\'', "''")
    ));
    c.env("PGAPPNAME", "dle_retrieval");
    let out = run(c, "psql", secrets).await?;
    Ok(out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// `test-db-source` on real data: the engine's `checkConnection` (connect, `select 1`) to
/// the source as given, with the password given. Extensions and locales are not compared
/// here: the emulator has no dump image to list them from (`Settings.missing_extensions`
/// plays that answer).
pub(crate) async fn check_connection(
    data: &RealData,
    host: &str,
    port: &str,
    username: &str,
    dbname: &str,
    password: &str,
) -> Result<(), String> {
    let mut c = tool(data, "psql");
    c.args(["--host", host, "--port", port, "--username", username, "--dbname", dbname]);
    c.args(["-X", "-A", "-t", "-c", "select 1"]);
    c.env("PGPASSWORD", password).env("PGCONNECT_TIMEOUT", "10").env("PGAPPNAME", "dle_retrieval");
    run(c, "psql", &[password]).await.map(drop)
}

fn dump_command(job: &Job, dbname: &str, dir: &Path) -> Command {
    let mut c = tool(&job.data, "pg_dump");
    c.arg("--create").arg("--format=directory");
    c.arg(format!("--jobs={}", job.source.parallel_jobs.parse::<u32>().unwrap_or(1).max(1)));
    c.arg("--file").arg(dir).arg("--no-password");
    source_args(&mut c, job, dbname);
    c.env("PGAPPNAME", "pg_dump");
    c
}

fn pool_command(job: &Job, name: &str) -> Command {
    let p = &job.data.pool;
    let mut c = tool(&job.data, name);
    c.args(["--host", &p.host, "--port", &p.port.to_string(), "--username", &p.username, "--no-password"]);
    c.env("PGPASSWORD", &p.password).env("PGCONNECT_TIMEOUT", "10");
    c
}

fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// One database into the pool. The engine's pool is emptied before a refresh; this one is
/// a long-lived server, so the database is dropped first (`postgres`, which the engine
/// restores into rather than recreating, is cleaned instead).
async fn restore(job: &Job, dbname: &str, dir: &Path, secrets: &[&str]) -> Result<(), String> {
    let mut c = pool_command(job, "pg_restore");
    if dbname == "postgres" {
        c.args(["--clean", "--if-exists"]);
    } else {
        let mut drop = pool_command(job, "psql");
        drop.args(["--dbname", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        drop.arg("-c").arg(format!("drop database if exists {} with (force)", quoted(dbname)));
        run(drop, "psql", secrets).await?;
        c.arg("--create");
    }
    c.arg(format!("--jobs={}", job.restore_jobs.parse::<u32>().unwrap_or(1).max(1)));
    c.args(["--no-owner", "--no-privileges", "--dbname", "postgres"]).arg(dir);
    c.env("PGAPPNAME", "pg_restore");
    run(c, "pg_restore", secrets).await.map(drop)
}

fn work_dir(generation: u64) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("dblab-emulator-dump-{}-{generation}-{nanos}", std::process::id()))
}

/// Every database's dump, in turn; the first failure is the job's.
async fn dump_all(job: &Job, dir: &Path, secrets: &[&str]) -> Result<Vec<String>, String> {
    let names = databases(job, secrets)
        .await
        .map_err(|e| format!("failed to extract the list of databases for dumping: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("failed to create a location directory: {e}"))?;
    for name in &names {
        run(dump_command(job, name, &dir.join(name)), "pg_dump", secrets).await?;
    }
    Ok(names)
}

/// Every database's restore; with `ignoreErrors` a failing one is logged and passed over.
async fn restore_all(shared: &Shared, job: &Job, names: &[String], dir: &Path, secrets: &[&str]) -> Result<(), String> {
    for name in names {
        match restore(job, name, &dir.join(name), secrets).await {
            Ok(()) => {}
            Err(e) if job.ignore_restore_errors => {
                shared.lock().log.push(format!("restore command failed, ignored (ignoreErrors): {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs the jobs and moves the engine's status with them; a newer refresh supersedes this one.
pub(crate) async fn refresh(shared: Shared, job: Job) {
    let current = |e: &Engine| e.generation == job.generation;
    let password = job.password.clone().unwrap_or_default();
    let pool_password = job.data.pool.password.clone();
    let secrets = [password.as_str(), pool_password.as_str()];
    let dir = work_dir(job.generation);
    let step = |shared: &Shared, f: &dyn Fn(&mut Engine)| {
        let mut e = shared.lock();
        if current(&e) {
            f(&mut e);
        }
        current(&e)
    };
    let names = match dump_all(&job, &dir, &secrets).await {
        Err(message) => {
            step(&shared, &|e| e.fail(&message));
            None
        }
        Ok(names) => step(&shared, &|e| {
            e.phase = Some("restore");
            e.mark("restore");
        })
        .then_some(names),
    };
    if let Some(names) = names {
        let restore_began = std::time::Instant::now();
        let restored = restore_all(&shared, &job, &names, &dir, &secrets).await;
        if restored.is_ok() {
            let least = Duration::from_millis(job.restore_ms);
            tokio::time::sleep(least.saturating_sub(restore_began.elapsed())).await;
        }
        match restored {
            Err(message) => {
                step(&shared, &|e| e.fail(&message));
            }
            Ok(()) => {
                let snapshots = crate::server_yml::has_snapshot_job(&shared.lock().config);
                if step(&shared, &|e| {
                    e.restored(&job.source.pool, job.dumped_at);
                    e.renewed();
                }) && snapshots
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    step(&shared, &|e| {
                        e.status = "snapshotting".into();
                        e.mark("snapshotting");
                    });
                    tokio::time::sleep(Duration::from_millis(job.snapshot_ms)).await;
                    step(&shared, &|e| e.finished(&job.source.pool, job.dumped_at));
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
    fn a_connection_string_is_given_the_database_to_dump() {
        let cs = with_database("postgresql://dblab@clone:5433/app?sslmode=require", "orders");
        assert_eq!(cs, "dbname='orders' host='clone' port='5433' sslmode='require' user='dblab'");
        assert_eq!(with_database("host=a dbname=x", "it's"), "dbname='it\\'s' host='a'");
    }

    #[test]
    fn a_tools_error_keeps_its_words_and_loses_the_password() {
        let text = "pg_dump: error: connection to server at \"127.0.0.1\", port 5 failed: FATAL:  password \
                    authentication failed for user \"dblab\" (tried s3cr3t)\n";
        let out = scrub(text, &["s3cr3t", ""]);
        assert!(out.starts_with("pg_dump: error: connection to server"), "{out}");
        assert!(out.ends_with("(tried ********)"), "{out}");
    }
}
