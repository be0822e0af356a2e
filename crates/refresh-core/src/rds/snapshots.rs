//! Snapshots of this account's source: what one holds, and choosing the one to restore.

use super::sdk::{Listing, Shape};
use super::*;

/// A snapshot as listed, before choosing.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub identifier: String,
    pub arn: String,
    pub status: String,
    /// When this snapshot (or copy) was made: it orders the candidates.
    pub created_at: Option<OffsetDateTime>,
    /// When its data is from (`data_time`).
    pub data_at: Option<OffsetDateTime>,
    /// The instance or cluster it is a snapshot of.
    pub source_id: Option<String>,
    pub engine: String,
    pub engine_version: Option<String>,
    pub snapshot_type: String,
    /// Only for an encrypted snapshot: a key id on an unencrypted one means nothing.
    pub kms_key_id: Option<String>,
    /// An instance snapshot's storage, in GiB (what the clone gets).
    pub storage_gb: Option<i32>,
}

/// When a snapshot's data is from: the most recent transaction it holds
/// (`SnapshotDatabaseTime`), else when the original snapshot was made
/// (`OriginalSnapshotCreateTime`, kept through copies and shares), else its own creation.
/// A copy made today of last week's snapshot holds last week's data.
pub fn data_time(
    database_time: Option<OffsetDateTime>,
    original_created: Option<OffsetDateTime>,
    created: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    database_time.or(original_created).or(created)
}

/// The available snapshot with the newest data (`data_at`): a copy made today of last
/// week's snapshot loses to one made yesterday of yesterday's. Ties go to the larger
/// identifier, so the choice is stable.
pub(crate) fn newest_available(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates
        .into_iter()
        .filter(|c| c.status == "available" && c.data_at.is_some())
        .max_by(|a, b| a.data_at.cmp(&b.data_at).then_with(|| a.identifier.cmp(&b.identifier)))
}

/// Whether data from `data_as_of` is older than `max` at `now`.
pub(crate) fn too_old(data_as_of: OffsetDateTime, max: std::time::Duration, now: OffsetDateTime) -> bool {
    now - data_as_of > max
}

impl Rds {
    /// The explicit snapshot (which must be available) or the newest available automated one.
    pub async fn find_snapshot(
        &self,
        source: &SourceSpec,
        shared: Option<&[String]>,
        now: OffsetDateTime,
    ) -> Result<RestoreSource, RefreshError> {
        let candidate = match &source.snapshot_identifier {
            _ if source.account.is_some() => self.shared_snapshot(source, shared).await?,
            Some(id) => {
                let found = self.snapshots(Shape::from(source.kind), Listing::Named(id)).await?;
                let snap = found
                    .into_iter()
                    .next()
                    .map(|s| s.candidate)
                    .ok_or_else(|| RefreshError::SnapshotNotFound { identifier: id.clone() })?;
                if snap.status != "available" {
                    return Err(RefreshError::SnapshotNotAvailable { identifier: id.clone(), status: snap.status });
                }
                if snap.created_at.is_none() {
                    return Err(RefreshError::SnapshotNotAvailable {
                        identifier: id.clone(),
                        status: "without a creation time".into(),
                    });
                }
                // Another database's snapshot would be recorded as this source's data.
                if snap.source_id.as_deref() != Some(source.identifier.as_str()) {
                    return Err(RefreshError::at(
                        "source.snapshotIdentifier",
                        format!(
                            "snapshot {id:?} is of {} {:?}, not of source.identifier {:?}",
                            source.kind.describe(),
                            snap.source_id.as_deref().unwrap_or("(unknown)"),
                            source.identifier
                        ),
                    ));
                }
                snap
            }
            None => {
                let listing = Listing::Of { db: Some(&source.identifier), snapshot_type: "automated" };
                let all: Vec<Candidate> =
                    self.snapshots(Shape::from(source.kind), listing).await?.into_iter().map(|s| s.candidate).collect();
                info!(count = all.len(), "listed automated snapshots");
                newest_available(all).ok_or_else(|| RefreshError::NoSnapshotAvailable {
                    kind: source.kind.describe().into(),
                    identifier: source.identifier.clone(),
                })?
            }
        };
        let data_as_of =
            candidate.data_at.ok_or_else(|| RefreshError::Internal("chosen snapshot has no creation time".into()))?;
        if let Some(max) = source.max_snapshot_age
            && too_old(data_as_of, max, now)
        {
            return Err(RefreshError::NoSuitableSnapshot(format!(
                "snapshot {} holds data from {}, older than source.maxSnapshotAge ({}){}",
                candidate.identifier,
                rfc3339(data_as_of),
                crate::duration::format(max),
                if source.account.is_some() { ": is production's account still sharing new snapshots?" } else { "" }
            )));
        }
        Ok(RestoreSource {
            mode: SourceMode::Snapshot,
            identifier: candidate.identifier,
            arn: candidate.arn,
            engine: candidate.engine,
            engine_version: candidate.engine_version,
            data_as_of,
            snapshot_type: candidate.snapshot_type,
            source_type: source.kind,
            source_identifier: source.identifier.clone(),
            found_at: now,
            engine_instance_id: None,
            local_key: None,
            serverless_capacity: None,
            encrypted: candidate.kms_key_id.is_some(),
            kms_key_id: candidate.kms_key_id,
            storage_gb: candidate.storage_gb,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-05 06:00 UTC);

    pub(in crate::rds) fn cand(id: &str, status: &str, at: Option<OffsetDateTime>) -> Candidate {
        Candidate {
            identifier: id.into(),
            arn: format!("arn:{id}"),
            status: status.into(),
            created_at: at,
            data_at: at,
            source_id: Some("prod".into()),
            engine: "postgres".into(),
            engine_version: None,
            snapshot_type: "automated".into(),
            kms_key_id: None,
            storage_gb: None,
        }
    }

    #[test]
    fn data_older_than_the_bound_is_too_old_and_data_of_exactly_the_bound_is_not() {
        let old = NOW - time::Duration::hours(26);
        assert!(!too_old(old, std::time::Duration::from_secs(26 * 3_600), NOW), "exactly the bound");
        assert!(too_old(old - time::Duration::seconds(1), std::time::Duration::from_secs(26 * 3_600), NOW));
    }

    #[test]
    fn a_snapshots_data_is_from_its_database_time_then_its_original_then_itself() {
        let (db, original, copy) =
            (datetime!(2026-11-20 02:59 UTC), datetime!(2026-11-20 03:00 UTC), datetime!(2026-11-22 09:00 UTC));
        assert_eq!(data_time(Some(db), Some(original), Some(copy)), Some(db));
        assert_eq!(data_time(None, Some(original), Some(copy)), Some(original), "a copy keeps the original's time");
        assert_eq!(data_time(None, None, Some(copy)), Some(copy));
        assert_eq!(data_time(None, None, None), None);
    }

    #[test]
    fn the_newest_data_wins_not_the_newest_copy() {
        let copy = |id: &str, made: OffsetDateTime, data: OffsetDateTime| Candidate {
            created_at: Some(made),
            data_at: Some(data),
            ..cand(id, "available", Some(made))
        };
        let picked = newest_available(vec![
            // Copied today, of last week's snapshot.
            copy("late-copy-of-old-data", datetime!(2026-12-05 05:00 UTC), datetime!(2026-11-28 03:00 UTC)),
            copy("early-copy-of-new-data", datetime!(2026-12-04 04:00 UTC), datetime!(2026-12-04 03:00 UTC)),
        ]);
        assert_eq!(picked.unwrap().identifier, "early-copy-of-new-data");
    }

    #[test]
    fn newest_available_skips_unusable_snapshots() {
        let picked = newest_available(vec![
            cand("rds:a", "available", Some(datetime!(2026-11-20 03:00 UTC))),
            cand("rds:b", "creating", Some(datetime!(2026-11-22 03:00 UTC))),
            cand("rds:c", "available", Some(datetime!(2026-11-21 03:00 UTC))),
            cand("rds:d", "available", None),
        ]);
        assert_eq!(picked.unwrap().identifier, "rds:c");
        assert!(newest_available(vec![cand("x", "failed", Some(datetime!(2026-11-20 03:00 UTC)))]).is_none());
    }
}
