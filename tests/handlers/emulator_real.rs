//! The DBLab emulator's real mode on its own: a pg_dump that cannot reach its source fails
//! the refresh with pg_dump's own words, and no secret in them.

use dblab_emulator::Settings;
use refresh_tests::World;
use serde_json::{Value, json};

async fn call(w: &World, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", w.emulator.url()))
        .header("Verification-Token", &w.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_unreachable_source_fails_with_pg_dumps_words_and_no_password() {
    let w = World::with_real_data(Settings::default()).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = format!("s3cret-{}", w.id);
    let connection =
        json!({"host": "127.0.0.1", "port": port, "dbname": "app", "username": "dblab", "password": secret});
    let config = json!({"retrieval": {"spec": {"logicalDump": {"options": {"source": {"connection": connection}}}}}});
    call(&w, reqwest::Method::POST, "/admin/config", Some(config)).await;
    call(&w, reqwest::Method::POST, "/full-refresh", None).await;
    let mut retrieving = Value::Null;
    for _ in 0..100 {
        retrieving = call(&w, reqwest::Method::GET, "/status", None).await["retrieving"].clone();
        if retrieving["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(retrieving["status"], "failed", "{retrieving}");
    let alert = retrieving["alerts"]["refresh_failed"]["message"].as_str().unwrap_or_default();
    assert!(alert.starts_with("pg_dump: error: connection to server at \"127.0.0.1\""), "{alert}");
    assert!(alert.contains("Connection refused"), "{alert}");
    assert!(!retrieving.to_string().contains(&secret), "the password leaked: {retrieving}");
}
