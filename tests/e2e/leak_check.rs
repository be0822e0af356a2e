//! The leak scan every scenario runs must be able to fail: a secret planted where a run
//! leaves data is found.

use aws_sdk_dynamodb::types::AttributeValue;
use dblab_emulator::Settings;

use crate::Scenario;

#[tokio::test]
async fn the_leak_scan_finds_a_secret_planted_in_a_row_and_the_fleet_item() {
    // Self-test of the scan every scenario ends with, on the real table: each place, each form.
    let s = Scenario::new(Settings::default()).await;
    let scanner = s.w.scanner();
    assert!(s.leaks(&scanner, &[]).await.is_empty(), "a fresh target has nothing to find");
    let forms = refresh_tests::leaks::forms(&s.w.password);
    for (form, value) in &forms {
        // Items any reader can still parse (a fleet query may run meanwhile), plus the plant.
        let put = |pk: String, sk: &str| {
            s.w.dynamodb
                .put_item()
                .table_name(&s.stack.table)
                .item("target", AttributeValue::S(pk))
                .item("sk", AttributeValue::S(sk.into()))
                .item("trackedSince", AttributeValue::S("2026-12-01T00:00:00Z".into()))
                .item("freshnessMaxAgeSeconds", AttributeValue::N("86400".into()))
                .item(
                    "error",
                    AttributeValue::M([("message".to_string(), AttributeValue::S(format!("said {value}")))].into()),
                )
        };
        put(s.w.target(), "run#planted").send().await.unwrap();
        put(refresh_core::history::FLEET_PK.into(), &s.w.target()).send().await.unwrap();
        let found = s.leaks(&scanner, &[]).await;
        for place in ["history item run#planted.error", "fleet item.error"] {
            assert!(
                found.iter().any(|l| l.place == place && l.form == *form),
                "{form} in {place} not found: {found:?}"
            );
        }
    }
    // Leave nothing behind for the other tests' fleet queries.
    s.w.dynamodb
        .delete_item()
        .table_name(&s.stack.table)
        .key("target", AttributeValue::S(refresh_core::history::FLEET_PK.into()))
        .key("sk", AttributeValue::S(s.w.target()))
        .send()
        .await
        .unwrap();
}
