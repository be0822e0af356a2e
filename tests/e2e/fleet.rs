//! Many targets at once: each refreshed, recorded and notified on its own.

use dblab_emulator::Settings;
use refresh_core::row::Outcome;

use crate::Scenario;

#[tokio::test]
async fn twenty_targets_at_once() {
    let mut scenarios = Vec::new();
    for _ in 0..20 {
        let s = Scenario::new(Settings::default()).await;
        let (_, request) = s.rds_source().await;
        let started = s.start("many", &request).await;
        scenarios.push((s, started));
    }
    for (s, (name, arn)) in &scenarios {
        let run = s.wait(name, arn).await;
        s.aftermath(&run, Outcome::Succeeded, None, None).await;
    }
}
