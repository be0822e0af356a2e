//! `publish-snapshot`: the one handler deployed in production's account
//! (`infra/publisher.yaml`). On RDS's "automated snapshot created" event, and on a
//! schedule that covers an event RDS did not deliver (it sends them best effort), it
//! publishes every listed source: copies the newest automated snapshot under the copy key,
//! shares the newest copies with the refresh account and deletes its older copies
//! (`refresh_core::rds::publish`). Each pass does the whole job for every source, so a
//! missed or repeated event changes nothing.

use refresh_core::RefreshError;
use refresh_core::rds::Rds;
use refresh_core::rds::publish;
use refresh_core::request::SourceType;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

pub struct Deps {
    pub rds: Rds,
}

/// The most databases of each kind one publisher copies from: its IAM names each one's
/// automated snapshots in a slot of its own (`infra/publisher.yaml`).
pub const MOST_SOURCES: usize = 10;

/// The publisher's settings, from its stack's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub instances: Vec<String>,
    pub clusters: Vec<String>,
    /// The refresh accounts: the only accounts a copy is shared with (one publisher serves
    /// them all, so that no two publishers narrow each other's shares).
    pub share_with: Vec<String>,
    /// The customer-managed key every copy is encrypted with.
    pub copy_key: String,
    /// This publisher's name (its stack's): the copies it made carry it, and only those it
    /// changes.
    pub publisher: String,
    /// How many available copies of each source are kept (at least `publish::LEAST_KEPT`).
    pub keep: usize,
}

impl Settings {
    /// `INSTANCES`, `CLUSTERS`, `SHARE_WITH` (comma-separated), `COPY_KMS_KEY_ARN`,
    /// `PUBLISHER`, `KEEP_COPIES`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, RefreshError> {
        let bad = |m: String| RefreshError::PublisherMisconfigured(m);
        let list = |name: &str| -> Vec<String> {
            var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        // Lowered, as RDS stores and answers identifiers, so copies are matched to them.
        let lowered = |name: &str| -> Vec<String> { list(name).iter().map(|i| i.to_ascii_lowercase()).collect() };
        let (instances, clusters) = (lowered("INSTANCES"), lowered("CLUSTERS"));
        for (name, id) in [("INSTANCES", &instances), ("CLUSTERS", &clusters)]
            .into_iter()
            .flat_map(|(name, ids)| ids.iter().map(move |id| (name, id)))
        {
            refresh_core::request::check_rds_identifier(id).map_err(|e| bad(format!("{name}: {e}")))?;
        }
        if instances.is_empty() && clusters.is_empty() {
            return Err(bad("INSTANCES and CLUSTERS are both empty: list the production sources to publish".into()));
        }
        for (name, sources) in [("INSTANCES", &instances), ("CLUSTERS", &clusters)] {
            if sources.len() > MOST_SOURCES {
                return Err(bad(format!(
                    "{name} lists {} databases: the publisher's IAM names the snapshots of at most {MOST_SOURCES} of \
                     each kind (deploy a second publisher stack for more)",
                    sources.len()
                )));
            }
        }
        let share_with = list("SHARE_WITH");
        if share_with.is_empty() {
            return Err(bad("SHARE_WITH is empty: name the refresh accounts (12-digit ids, comma-separated)".into()));
        }
        if let Some(wrong) = share_with.iter().find(|a| !refresh_core::request::is_account_id(a)) {
            return Err(bad(format!("SHARE_WITH must list 12-digit account ids, not {wrong:?}")));
        }
        // RDS shares a manual snapshot with at most 20 accounts.
        if share_with.len() > 20 {
            return Err(bad(format!(
                "SHARE_WITH lists {} accounts: RDS shares a snapshot with at most 20",
                share_with.len()
            )));
        }
        let copy_key = var("COPY_KMS_KEY_ARN").unwrap_or_default().trim().to_string();
        if !(copy_key.starts_with("arn:") && copy_key.contains(":key/")) {
            return Err(bad(format!(
                "COPY_KMS_KEY_ARN must be the ARN of a customer-managed KMS key (arn:...:key/...), not {copy_key:?}: snapshots under the AWS managed aws/rds key cannot be shared"
            )));
        }
        let publisher = var("PUBLISHER").unwrap_or_default().trim().to_string();
        if publisher.is_empty() || publisher.len() > 128 {
            return Err(bad(format!("PUBLISHER must name this publisher (its stack's name), not {publisher:?}")));
        }
        let keep_text = var("KEEP_COPIES").unwrap_or_else(|| "2".into());
        let keep = keep_text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|k| (publish::LEAST_KEPT..=20).contains(k))
            .ok_or_else(|| {
                bad(format!(
                    "KEEP_COPIES must be a whole number from {} to 20, not {keep_text:?}: a run may still be copying \
                     or restoring the copy before the newest",
                    publish::LEAST_KEPT
                ))
            })?;
        Ok(Self { instances, clusters, share_with, copy_key, publisher, keep })
    }

    fn sources(&self) -> impl Iterator<Item = (SourceType, &String)> {
        self.instances
            .iter()
            .map(|i| (SourceType::Rds, i))
            .chain(self.clusters.iter().map(|c| (SourceType::AuroraCluster, c)))
    }
}

/// What one pass did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// What started the pass: the RDS event id, or the schedule.
    pub trigger: String,
    pub sources: Vec<SourceReport>,
    /// Copies of sources no longer listed that this pass unshared, and those it deleted
    /// (`publish::RETIRED_FOR` after they were unshared).
    pub unshared: Vec<String>,
    pub retired: Vec<String>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceReport {
    pub source_type: String,
    pub source: String,
    /// The copy started by this pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_started: Option<String>,
    /// Our copies that this pass shared (or whose sharing it narrowed to the refresh account).
    pub shared: Vec<String>,
    /// The newest copy the refresh account can restore from, after this pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_shared: Option<String>,
    pub deleted: Vec<String>,
}

/// What started this pass, for the log: RDS's event id or EventBridge's detail type.
fn trigger(event: &Value) -> String {
    event
        .pointer("/detail/EventID")
        .or_else(|| event.get("detail-type"))
        .and_then(Value::as_str)
        .unwrap_or("invoked by hand")
        .to_string()
}

pub async fn handle(deps: &Deps, settings: &Settings, event: Value) -> Result<Output, RefreshError> {
    let trigger = trigger(&event);
    let snapshot = event.pointer("/detail/SourceIdentifier").and_then(Value::as_str).unwrap_or("-");
    info!(%trigger, %snapshot, "publishing");
    let mut sources = Vec::new();
    let mut failures: Vec<RefreshError> = Vec::new();
    // One source's failure does not keep the others from being published.
    for (kind, source) in settings.sources() {
        match publish_source(&deps.rds, settings, kind, source).await {
            Ok(report) => sources.push(report),
            Err(e) => {
                warn!(source = %source, error = e.name(), reason = %e, "not published");
                failures.push(e);
            }
        }
    }
    let (unshared, retired) = match retire_unlisted(&deps.rds, settings).await {
        Ok(done) => done,
        Err(e) => {
            warn!(error = e.name(), reason = %e, "copies of unlisted sources not retired");
            failures.push(e);
            (Vec::new(), Vec::new())
        }
    };
    if failures.is_empty() { Ok(Output { trigger, sources, unshared, retired }) } else { Err(combined(failures)) }
}

/// Our copies of a source that is no longer listed: unshared at once (no new run picks
/// them), deleted once no run can still be copying or restoring them
/// (`publish::retirement`). Returns the copies unshared and those deleted by this pass.
async fn retire_unlisted(rds: &Rds, settings: &Settings) -> Result<(Vec<String>, Vec<String>), RefreshError> {
    let (mut unshared, mut deleted) = (Vec::new(), Vec::new());
    let now = time::OffsetDateTime::now_utc();
    for (kind, listed) in [(SourceType::Rds, &settings.instances), (SourceType::AuroraCluster, &settings.clusters)] {
        for mut held in rds.our_copies(kind, &settings.publisher).await? {
            if held.snapshot.source_id.as_ref().is_some_and(|s| listed.contains(s)) {
                continue;
            }
            let id = held.snapshot.identifier.clone();
            match publish::retirement(&held, now) {
                publish::Retirement::Unshare => {
                    held.shared_with = rds.shared_with(kind, &id).await?;
                    rds.share_copy(kind, &held, &[], &settings.publisher).await?;
                    rds.mark_retired(&held, now).await?;
                    info!(copy = %id, source = ?held.snapshot.source_id, "copy of an unlisted source unshared");
                    unshared.push(id);
                }
                publish::Retirement::Delete => {
                    if rds.delete_copy(kind, &held, &settings.publisher).await? {
                        info!(copy = %id, source = ?held.snapshot.source_id, "copy of an unlisted source deleted");
                        deleted.push(id);
                    }
                }
                publish::Retirement::Wait => {}
            }
        }
    }
    Ok((unshared, deleted))
}

/// The error of a pass in which sources failed: the first terminal one names it (a retry
/// would not mend it), else the first; its message holds every source's.
fn combined(mut failures: Vec<RefreshError>) -> RefreshError {
    if failures.len() == 1 {
        return failures.remove(0);
    }
    let all = failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let first = failures.iter().position(|e| !e.is_transient()).unwrap_or(0);
    match failures.swap_remove(first) {
        RefreshError::AwsTransient { operation, .. } => RefreshError::AwsTransient { operation, message: all },
        RefreshError::AwsRequestFailed { operation, .. } => RefreshError::AwsRequestFailed { operation, message: all },
        other => other,
    }
}

/// One source: copy, share, prune, in that order (a copy is shared once it is available,
/// by this pass or a later one).
async fn publish_source(
    rds: &Rds,
    settings: &Settings,
    kind: SourceType,
    source: &str,
) -> Result<SourceReport, RefreshError> {
    let (automated, mut manual) = rds.held_snapshots(kind, source).await?;
    let plan = publish::plan(&automated, &manual, settings.keep, &settings.publisher);
    let mut report = SourceReport { source_type: kind.describe().into(), source: source.into(), ..Default::default() };
    // A source named wrong, or without automated backups, is a failure to act on.
    if automated.is_empty() {
        return Err(RefreshError::NoSnapshotAvailable { kind: kind.describe().into(), identifier: source.into() });
    }
    if let Some(id) = &plan.copy
        && let Some(snapshot) = automated.iter().find(|h| &h.snapshot.identifier == id)
    {
        report.copy_started = Some(rds.copy_snapshot(kind, snapshot, &settings.copy_key, &settings.publisher).await?);
    }
    for id in &plan.share {
        let Some(held) = manual.iter_mut().find(|h| &h.snapshot.identifier == id) else { continue };
        held.shared_with = rds.shared_with(kind, &held.snapshot.identifier).await?;
        if rds.share_copy(kind, held, &settings.share_with, &settings.publisher).await? {
            report.shared.push(held.snapshot.identifier.clone());
        }
    }
    report.newest_shared = plan.share.first().cloned();
    for held in manual.iter().filter(|h| plan.delete.contains(&h.snapshot.identifier)) {
        if rds.delete_copy(kind, held, &settings.publisher).await? {
            info!(copy = %held.snapshot.identifier, "old copy deleted");
            report.deleted.push(held.snapshot.identifier.clone());
        }
    }
    info!(%source, copy_started = ?report.copy_started, newest_shared = ?report.newest_shared, deleted = report.deleted.len(), "published");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn settings_name_the_variable_that_is_wrong() {
        let good = [
            ("INSTANCES", "prod, billing"),
            ("SHARE_WITH", "123456789012, 210987654321"),
            ("COPY_KMS_KEY_ARN", KEY),
            ("PUBLISHER", "prod-publisher"),
        ];
        let s = Settings::from_env(env(&good)).unwrap();
        assert_eq!(s.instances, ["prod", "billing"]);
        assert!(s.clusters.is_empty());
        assert_eq!(s.keep, 2, "the default");
        assert_eq!(s.share_with, ["123456789012", "210987654321"], "every refresh account");
        let with = |k: &str, v: &str| {
            let mut pairs: Vec<(&str, &str)> = good.iter().copied().filter(|(n, _)| *n != k).collect();
            pairs.push((k, v));
            Settings::from_env(env(&pairs)).map_err(|e| (e.name(), e.to_string()))
        };
        for (variable, value) in [
            ("INSTANCES", " , "),
            ("INSTANCES", "prod,bad_name"),
            ("CLUSTERS", "2fast"),
            ("SHARE_WITH", "12345678901"),
            ("SHARE_WITH", "123456789012,12345678901x"),
            ("SHARE_WITH", " , "),
            ("COPY_KMS_KEY_ARN", "alias/aws/rds"),
            ("COPY_KMS_KEY_ARN", "arn:aws:kms:us-east-1:111111111111:alias/aws/rds"),
            ("KEEP_COPIES", "0"),
            ("KEEP_COPIES", "1"),
            ("KEEP_COPIES", "21"),
            ("KEEP_COPIES", "two"),
            ("PUBLISHER", " "),
        ] {
            let (name, message) = with(variable, value).unwrap_err();
            assert_eq!(name, "PublisherMisconfigured");
            assert!(message.contains(variable), "{message}");
        }
        let both = with("CLUSTERS", "aurora").unwrap();
        assert_eq!(both.clusters, ["aurora"]);
        let sources: Vec<_> = both.sources().map(|(kind, id)| (kind, id.as_str())).collect();
        assert_eq!(
            sources,
            [(SourceType::Rds, "prod"), (SourceType::Rds, "billing"), (SourceType::AuroraCluster, "aurora")],
            "every source, each with its kind"
        );
        assert_eq!(with("INSTANCES", "Prod-DB").unwrap().instances, ["prod-db"], "as RDS stores it");
        assert_eq!(with("KEEP_COPIES", "20").unwrap().keep, 20);
        assert_eq!(with("KEEP_COPIES", "2").unwrap().keep, 2);
        let ten = (0..10).map(|i| format!("db{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(with("CLUSTERS", &ten).unwrap().clusters.len(), 10, "as many as the IAM slots");
        let eleven = format!("{ten},db10");
        assert!(with("INSTANCES", &eleven).unwrap_err().1.contains("at most 10"));
        let many = (0..21).map(|i| format!("{:012}", 100_000_000_000_u64 + i)).collect::<Vec<_>>().join(",");
        assert!(with("SHARE_WITH", &many).unwrap_err().1.contains("at most 20"));
    }

    #[test]
    fn a_pass_with_failed_sources_is_named_by_the_first_that_a_retry_would_not_mend() {
        let transient =
            || RefreshError::AwsTransient { operation: "DescribeDBSnapshots".into(), message: "throttled".into() };
        let terminal =
            || RefreshError::AwsRequestFailed { operation: "CopyDBSnapshot".into(), message: "denied".into() };
        let gone = || RefreshError::NoSnapshotAvailable { kind: "RDS instance".into(), identifier: "gone".into() };
        assert_eq!(combined(vec![transient()]).to_string(), transient().to_string(), "one failure as it is");
        let both = combined(vec![transient(), terminal()]);
        assert_eq!(both.name(), "AwsRequestFailed");
        assert!(both.to_string().contains("throttled") && both.to_string().contains("denied"), "{both}");
        assert_eq!(combined(vec![transient(), transient()]).name(), "AwsTransient");
        assert_eq!(combined(vec![transient(), gone(), terminal()]).name(), "NoSnapshotAvailable");
    }

    #[test]
    fn the_trigger_is_the_rds_event_or_the_schedule() {
        let rds = json!({"detail-type": "RDS DB Snapshot Event", "detail": {"EventID": "RDS-EVENT-0091"}});
        assert_eq!(trigger(&rds), "RDS-EVENT-0091");
        assert_eq!(trigger(&json!({"detail-type": "Scheduled Event", "detail": {}})), "Scheduled Event");
        assert_eq!(trigger(&json!({})), "invoked by hand");
    }
}
