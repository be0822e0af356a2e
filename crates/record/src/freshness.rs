//! The hourly schedule: every target's freshness as metrics, so a target that stopped
//! running altogether still goes stale.

use refresh_core::RefreshError;
use refresh_core::metrics;
use time::OffsetDateTime;
use tracing::info;

use crate::{Deps, FreshnessReport};

/// Every target's freshness metrics (the hourly schedule).
pub(crate) async fn freshness(deps: &Deps, now: OffsetDateTime) -> Result<FreshnessReport, RefreshError> {
    let fleet = deps.history.fleet().await?;
    let mut stale = Vec::new();
    for state in &fleet {
        deps.metrics.emit(&metrics::freshness(&deps.metrics_namespace, state, now));
        if state.stale(now) {
            stale.push(state.target.clone());
        }
    }
    deps.metrics.emit(&metrics::freshness_pass(&deps.metrics_namespace, now));
    info!(targets = fleet.len(), stale = ?stale, "freshness metrics emitted");
    Ok(FreshnessReport { targets: fleet.len(), stale })
}
