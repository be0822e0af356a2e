//! The DBLab emulator's real mode on its own: a source it cannot reach fails the refresh
//! where the engine's does (listing the databases to dump), one that goes away mid-dump
//! with pg_dump's own words, and no secret in them; every database is dumped, one
//! pg_dump each.

use dblab_emulator::Settings;
use refresh_tests::World;
use serde_json::{Value, json};

async fn configure(w: &World, port: u16, password: &str) {
    let connection =
        json!({"host": "127.0.0.1", "port": port, "dbname": "app", "username": "dblab", "password": password});
    let config = json!({"retrieval": {"spec": {"logicalDump": {"options": {"source": {"connection": connection}}}}}});
    w.engine_call(reqwest::Method::POST, "/admin/config", Some(config)).await;
}

/// The engine's retrieval state once the refresh failed (or after ten seconds).
async fn failed(w: &World) -> Value {
    let mut retrieving = Value::Null;
    for _ in 0..100 {
        retrieving = w.engine_call(reqwest::Method::GET, "/status", None).await["retrieving"].clone();
        if retrieving["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(retrieving["status"], "failed", "{retrieving}");
    retrieving
}

#[tokio::test]
async fn an_unreachable_source_fails_with_the_tools_words_and_no_password() {
    let w = World::with_real_data(Settings::default()).await;
    // Port 1: nothing listens there, and no test binds it.
    let port = 1;
    let secret = format!("s3cret-{}", w.id);
    configure(&w, port, &secret).await;
    w.engine_call(reqwest::Method::POST, "/full-refresh", None).await;
    let retrieving = failed(&w).await;
    let alert = retrieving["alerts"]["refresh_failed"]["message"].as_str().unwrap_or_default();
    assert!(
        alert.starts_with(
            "failed to extract the list of databases for dumping: psql: error: connection to server at \"127.0.0.1\""
        ),
        "{alert}"
    );
    assert!(alert.contains("Connection refused"), "{alert}");
    let scanner = refresh_tests::leaks::Scanner::new(&[("the password", &secret)]);
    refresh_tests::assert_no_leak(&scanner.text("the engine's status", &retrieving.to_string()), "");
}

#[tokio::test]
async fn a_source_deleted_mid_dump_fails_with_pg_dumps_words() {
    let w = World::with_real_data(Settings::default()).await;
    let source = w.real_rds_source().await;
    // A session holding a table keeps pg_dump waiting for its lock: the dump is under way.
    let holder = tokio::spawn(refresh_tests::fixture_result(
        "postgres/sql",
        json!({"server": source.server, "database": "app",
               "sql": "begin; lock table public.customers in access exclusive mode; select pg_sleep(30); commit;"}),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    configure(&w, source.port, &w.password).await;
    w.engine_call(reqwest::Method::POST, "/full-refresh", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let now = w.engine_call(reqwest::Method::GET, "/status", None).await;
    assert_eq!(now["retrieving"]["status"], "refreshing", "{now}");
    // RDS deletes the instance: the launcher stops its server.
    w.rds.delete_db_instance().db_instance_identifier(&source.id).skip_final_snapshot(true).send().await.unwrap();
    let retrieving = failed(&w).await;
    let alert = retrieving["alerts"]["refresh_failed"]["message"].as_str().unwrap_or_default();
    assert!(alert.starts_with("pg_dump: error:"), "{alert}");
    assert!(alert.contains("terminating connection") || alert.contains("server closed the connection"), "{alert}");
    // JSON text: the scanner looks for the JSON-escaped password too.
    w.assert_no_secret(&retrieving.to_string());
    let _ = holder.await;
}

#[tokio::test]
async fn the_engines_check_of_a_source_connects_as_its_dump_would() {
    let w = World::with_real_data(Settings::default()).await;
    let source = w.real_rds_source().await;
    let check = |port: u16, password: &str| {
        json!({"host": "127.0.0.1", "port": port.to_string(), "dbname": "app", "username": "dblab",
               "password": password, "db_list": []})
    };
    let ok = w.engine_call(reqwest::Method::POST, "/admin/test-db-source", Some(check(source.port, &w.password))).await;
    assert_eq!((ok["status"].as_str(), ok["result"].as_str()), (Some("ok"), Some("ok")), "{ok}");
    let secret = format!("wrong-{}", w.id);
    for (port, password) in [(source.port, secret.as_str()), (1, w.password.as_str())] {
        let refused = w.engine_call(reqwest::Method::POST, "/admin/test-db-source", Some(check(port, password))).await;
        assert_eq!(refused["status"], "error", "{refused}");
        assert_eq!(refused["result"], "connection_error", "{refused}");
        assert!(refused["dbVersion"].is_null() && refused["tuningParams"].is_null(), "{refused}");
        let scanner = refresh_tests::leaks::Scanner::new(&[("the password", password)]);
        refresh_tests::assert_no_leak(&scanner.text("the engine's answer", &refused.to_string()), "");
    }
    assert_eq!(w.emulator.view().config_updates, 0, "a check changes nothing");
}
