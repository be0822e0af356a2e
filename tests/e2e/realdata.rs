//! Real data end to end: production, its snapshot and the clone are real PostgreSQL
//! servers (the launcher's fixture), and the engine really dumps from the clone and
//! restores into its pool. What these prove: the connection patch-dblab hands the engine
//! lets pg_dump log in, the engine ends with exactly the snapshot's data, and production
//! receives no connection at all while the run goes on.

use refresh_core::row::Outcome;
use refresh_tests::RealSource;
use time::OffsetDateTime;

use crate::{Run, Scenario};
use dblab_emulator::Settings;

/// A row production receives after its snapshot: it must not reach the engine.
const LATE_ROW: &str = "insert into public.customers (email, name, profile, created_at) \
                        values ('late@example.com', 'Late', '{}', now())";

async fn late_rows(s: &Scenario, server: &str) -> u64 {
    let count = s.w.sql(server, "app", "select count(*) from public.customers where email = 'late@example.com'").await;
    count.parse().unwrap_or_else(|e| panic!("count {count:?}: {e}"))
}

/// Runs a request against `source` and returns the run with its time window.
async fn timed_run(s: &Scenario, label: &str, request: &serde_json::Value) -> (Run, OffsetDateTime, OffsetDateTime) {
    let started = OffsetDateTime::now_utc();
    let run = s.run(label, request).await;
    (run, started, OffsetDateTime::now_utc())
}

/// Production received no connection from the run's start to its end, and every server
/// the run started (the clone's) is gone.
async fn production_untouched(s: &Scenario, source: &RealSource, from: OffsetDateTime, to: OffsetDateTime) {
    let seen = s.w.connections(&source.server, from, to).await;
    assert!(seen.is_empty(), "production received {} connection(s) during the run: {seen:#?}", seen.len());
    let clones: Vec<_> =
        s.w.pg_servers().await.into_iter().filter(|n| n.contains(&format!("dblab-refresh-{}", s.w.target()))).collect();
    assert!(clones.is_empty(), "clone servers still running: {clones:?}");
}

#[tokio::test]
async fn an_rds_refresh_moves_the_snapshots_data_and_never_touches_production() {
    let s = Scenario::real(Settings::default()).await;
    let source = s.w.real_rds_source().await;
    let (snapshot, taken_at) = source.snapshots.first().cloned().expect("an automated snapshot");
    let at_snapshot = s.w.checksums(&source.server, "app").await;
    let rows: u64 = at_snapshot.values().map(|(n, _)| n).sum();
    assert!(at_snapshot.len() >= 6 && rows > 100_000, "{at_snapshot:?}");
    s.w.sql(&source.server, "app", LATE_ROW).await;

    let request = s.w.request("rds", &source.id);
    let (run, from, to) = timed_run(&s, "realdata", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.snapshot_identifier.as_deref(), Some(snapshot.as_str()));
    assert_eq!(row.data_as_of, Some(taken_at), "the row's data-as-of is when the snapshot's backup was taken");

    // The engine's pool holds exactly the snapshot's data: every table, every row.
    let pool = s.w.checksums(s.w.pool(), "app").await;
    assert_eq!(pool, at_snapshot);
    assert_eq!(late_rows(&s, s.w.pool()).await, 0, "a row written after the snapshot arrived");
    let dumped = s.w.emulator.view().dump_sources;
    assert_eq!(dumped.len(), 1);
    assert_eq!((dumped[0].host.as_str(), dumped[0].dbname.as_str()), ("127.0.0.1", "app"));
    production_untouched(&s, &source, from, to).await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_the_engines_check_with_no_secret_and_no_pool_touched() {
    let s = Scenario::real(Settings::default()).await;
    let source = s.w.real_rds_source().await;
    let wrong = format!("not-{}", s.w.password);
    s.w.secrets
        .put_secret_value()
        .secret_id(&s.w.password_arn)
        .secret_string(serde_json::json!({"username": "dblab", "password": wrong}).to_string())
        .send()
        .await
        .unwrap();
    let request = s.w.request("rds", &source.id);
    let (run, from, to) = timed_run(&s, "wrongpw", &request).await;
    let row = s.aftermath(&run, Outcome::Failed, Some("DblabSourceRefused"), Some("PatchDblab")).await;
    let message = row.error.map(|e| e.message).unwrap_or_default();
    assert!(
        // The engine's own check of the clone, before its config changes.
        message.contains("error (connection_error)")
            && message.contains("password authentication failed for user \"dblab\""),
        "{message}"
    );
    let engine = s.w.emulator.view();
    assert_eq!((engine.config_updates, engine.refreshes_started), (0, 0), "no pool touched");
    let wrong_password = refresh_tests::leaks::Scanner::new(&[("the wrong password", &wrong)]);
    refresh_tests::assert_no_leak(&s.leaks(&wrong_password, &[&run]).await, "a wrong password");
    assert!(wrong_password.text("the row", &message).is_empty());
    production_untouched(&s, &source, from, to).await;
}

#[tokio::test]
async fn an_aurora_refresh_moves_the_snapshots_data_through_the_writer_endpoint() {
    let s = Scenario::real(Settings::default()).await;
    let source = s.w.real_aurora_source().await;
    // A plain secret this time (the RDS scenarios read JSON, as RDS-managed secrets hold it).
    s.w.secrets.put_secret_value().secret_id(&s.w.password_arn).secret_string(&s.w.password).send().await.unwrap();
    let (snapshot, taken_at) = source.snapshots.first().cloned().expect("an automated cluster snapshot");
    let at_snapshot = s.w.checksums(&source.server, "app").await;
    s.w.sql(&source.server, "app", LATE_ROW).await;

    let request = s.w.request("aurora-cluster", &source.id);
    let (run, from, to) = timed_run(&s, "realaurora", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.snapshot_identifier.as_deref(), Some(snapshot.as_str()));
    assert_eq!(row.data_as_of, Some(taken_at));
    assert_eq!(s.w.checksums(s.w.pool(), "app").await, at_snapshot);
    assert_eq!(late_rows(&s, s.w.pool()).await, 0);
    production_untouched(&s, &source, from, to).await;
}

/// A row written to production now, named to be found again.
async fn write_marker(s: &Scenario, server: &str, label: &str) {
    let sql = format!(
        "insert into public.customers (email, name, profile, created_at) values ('{label}@example.com', '{label}', '{{}}', now())"
    );
    s.w.sql(server, "app", &sql).await;
}

async fn has_marker(s: &Scenario, label: &str) -> bool {
    let sql = format!("select count(*) from public.customers where email = '{label}@example.com'");
    s.w.sql(s.w.pool(), "app", &sql).await == "1"
}

#[tokio::test]
async fn a_point_in_time_refresh_holds_exactly_the_rows_committed_before_that_time() {
    let s = Scenario::real(Settings::default()).await;
    let source = s.w.real_rds_source().await;
    write_marker(&s, &source.server, "before").await;
    let expected = s.w.checksums(&source.server, "app").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // A whole second: the restore time as the request writes it.
    let now = OffsetDateTime::now_utc();
    let wanted = now.replace_nanosecond(0).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    write_marker(&s, &source.server, "after").await;
    refresh_tests::fixture("postgres/archive", serde_json::json!({"instance": source.id})).await;

    let mut request = s.w.request("rds", &source.id);
    request["source"]["mode"] = serde_json::json!("point-in-time");
    request["source"]["restoreTime"] =
        serde_json::json!(wanted.format(&time::format_description::well_known::Rfc3339).unwrap());
    let (run, from, to) = timed_run(&s, "realpitr", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.data_as_of, Some(wanted));
    assert_eq!(s.w.checksums(s.w.pool(), "app").await, expected, "the pool is production as it was at {wanted}");
    assert!(has_marker(&s, "before").await, "a row committed before the restore time is missing");
    assert!(!has_marker(&s, "after").await, "a row committed after the restore time arrived");
    production_untouched(&s, &source, from, to).await;
}

#[tokio::test]
async fn a_latest_point_refresh_holds_everything_archived_and_nothing_later() {
    let s = Scenario::real(Settings::default()).await;
    let source = s.w.real_rds_source().await;
    write_marker(&s, &source.server, "archived").await;
    let expected = s.w.checksums(&source.server, "app").await;
    refresh_tests::fixture("postgres/archive", serde_json::json!({"instance": source.id})).await;
    write_marker(&s, &source.server, "unarchived").await;

    let mut request = s.w.request("rds", &source.id);
    request["source"]["mode"] = serde_json::json!("latest-point");
    let (run, from, to) = timed_run(&s, "reallatest", &request).await;
    s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(s.w.checksums(s.w.pool(), "app").await, expected);
    assert!(has_marker(&s, "archived").await);
    assert!(!has_marker(&s, "unarchived").await, "a row written after the latest restorable time arrived");
    production_untouched(&s, &source, from, to).await;
}

#[tokio::test]
async fn a_clone_deleted_once_the_real_dump_ended_leaves_the_engine_with_every_row() {
    // The restore outlasts two polls after pg_dump exits, so the clone goes while it runs.
    let s = Scenario::real(Settings { restore_ms: 5_000, ..Settings::default() }).await;
    let source = s.w.real_rds_source().await;
    let at_snapshot = s.w.checksums(&source.server, "app").await;
    let mut request = s.w.request("rds", &source.id);
    request["clone"]["deleteAfterDump"] = serde_json::json!(true);
    let (run, from, to) = timed_run(&s, "realearly", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert!(row.clone_deleted_after_dump, "{row:?}");
    let engine = s.w.emulator.view();
    let at = |what: &str| engine.timeline.iter().find(|(w, _)| w == what).map(|(_, t)| *t).unwrap();
    let released = run.entered_at("DeleteCloneAfterDump").unwrap();
    // "restore" is marked when pg_dump has exited: the dump's real end.
    assert!(at("restore") < released && released < at("finished"), "released after the dump, during the restore");
    assert_eq!(s.w.checksums(s.w.pool(), "app").await, at_snapshot, "every row arrived all the same");
    production_untouched(&s, &source, from, to).await;
}

#[tokio::test]
async fn an_aurora_fast_clone_refresh_holds_the_live_data() {
    let s = Scenario::real(Settings::default()).await;
    let source = s.w.real_aurora_source().await;
    write_marker(&s, &source.server, "live").await;
    let expected = s.w.checksums(&source.server, "app").await;
    // The launcher plays copy-on-write as the archive replayed to its end: bring it to now.
    refresh_tests::fixture("postgres/archive", serde_json::json!({"cluster": source.id})).await;

    let mut request = s.w.request("aurora-cluster", &source.id);
    request["source"]["mode"] = serde_json::json!("fast-clone");
    let (run, from, to) = timed_run(&s, "realfast", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    assert_eq!(row.source_mode.as_deref(), Some("fast-clone"));
    assert_eq!(s.w.checksums(s.w.pool(), "app").await, expected);
    assert!(has_marker(&s, "live").await);
    production_untouched(&s, &source, from, to).await;
}

#[tokio::test]
async fn every_database_arrives_and_restore_errors_the_engine_ignores_are_said() {
    let s = Scenario::real(Settings { restore_ignore_errors: true, ..Settings::default() }).await;
    let source = s.w.real_rds_source().await;
    // A second database: the engine dumps every database the user may connect to.
    s.w.sql(&source.server, "postgres", "create database orders").await;
    s.w.sql(
        &source.server,
        "orders",
        "create table public.lines (id int primary key, sku text); \
         insert into public.lines select g, 'sku-' || g from generate_series(1, 500) g; \
         grant select on all tables in schema public to dblab;",
    )
    .await;
    // A table pg_restore cannot load: its CHECK calls a function that reads another table
    // unqualified, which fails under the empty search_path a restore runs with.
    s.w.sql(
        &source.server,
        "app",
        "create table public.codes (code text primary key); insert into public.codes values ('a'); \
         create function public.valid_code(c text) returns boolean language sql stable \
           as $$ select exists (select 1 from codes where code = c) $$; \
         create table public.items (code text check (public.valid_code(code))); \
         insert into public.items values ('a'); grant select on public.codes, public.items to dblab;",
    )
    .await;
    refresh_tests::fixture("postgres/snapshot", serde_json::json!({"instance": source.id})).await;
    let orders = s.w.checksums(&source.server, "orders").await;

    // Refused unless the request accepts partial refreshes.
    let mut request = s.w.request("rds", &source.id);
    let refused = s.run("ignoring", &request).await;
    s.aftermath(&refused, Outcome::Failed, Some("DblabMisconfigured"), Some("FindSnapshot")).await;
    request["dblab"]["allowIgnoredErrors"] = serde_json::json!(true);
    let (run, from, to) = timed_run(&s, "ignored", &request).await;
    let row = s.aftermath(&run, Outcome::Succeeded, None, None).await;
    let said = row.ignored_errors.as_deref().unwrap_or_default();
    assert!(said.contains("logicalRestore.options.ignoreErrors") && said.contains("tables may be missing"), "{row:?}");
    // What the warning is about, on the data: one table arrived empty, the rest whole.
    assert_eq!(s.w.checksums(s.w.pool(), "orders").await, orders);
    assert_eq!(s.w.sql(s.w.pool(), "app", "select count(*) from public.codes").await, "1");
    assert_eq!(s.w.sql(s.w.pool(), "app", "select count(*) from public.items").await, "0");
    assert!(s.w.emulator.view().log.iter().any(|l| l.contains("ignored (ignoreErrors)") && l.contains("items")));
    production_untouched(&s, &source, from, to).await;
}
