//! The publisher, in production's account: automated snapshots cannot be shared, and
//! neither can snapshots under the AWS managed `aws/rds` key, so it copies the newest
//! automated snapshot of each listed source to a manual one under a customer-managed key
//! whose policy lets the refresh account use it, shares that copy with the refresh
//! account (its `restore` attribute, nothing else) and keeps only its newest copies.
//!
//! It reads snapshots and writes only its own copies: a copy is ours when its name starts
//! with [`COPY_PREFIX`] AND it carries `ManagedBy=dblab-refresh-publisher` and the
//! automated snapshot it copies ([`COPY_OF_KEY`]). No call names the database itself.

use super::sdk::{Created, Listing, Shape, Snapshot, Verdict};
use super::*;
use crate::naming::fnv1a;
use crate::request::SourceType;

/// The name every copy starts with.
pub const COPY_PREFIX: &str = "dblab-share-";
/// `ManagedBy` on every copy: not the clones' value, so neither side's clean-up can take
/// the other's resources for its own.
pub(crate) const PUBLISHER_VALUE: &str = "dblab-refresh-publisher";
/// The automated snapshot a copy was made from.
pub use crate::tags::COPY_OF_KEY;
/// The publisher (its stack's name) that made a copy: a publisher changes only its own
/// copies, so two in one account never take each other's for their own.
pub(crate) const PUBLISHER_KEY: &str = "dblab-refresh:publisher";
/// On a copy of a source taken off the list: when it was unshared (RFC 3339).
pub const RETIRED_AT_KEY: &str = "dblab-refresh:retired-at";
/// A retired copy is deleted only once no run can still be copying or restoring it: a run
/// lasts at most its execution's timeout.
pub const RETIRED_FOR: std::time::Duration = crate::request::EXECUTION_TIMEOUT;
/// A cluster snapshot's identifier is at most 63 characters (an instance snapshot's, 255).
const MAX_COPY_NAME: usize = 63;

/// A snapshot of a listed source, as the publisher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub snapshot: Candidate,
    pub tags: Vec<(String, String)>,
    /// Only for our copies: the accounts its `restore` attribute names (`all` = public).
    pub shared_with: Vec<String>,
}

impl Held {
    /// As a describe lists it: whom it is shared with is read apart, and only for our copies.
    fn listed(snapshot: Snapshot) -> Self {
        Self { snapshot: snapshot.candidate, tags: snapshot.tags, shared_with: Vec::new() }
    }

    fn copy_of(&self) -> Option<&str> {
        tags::get(&self.tags, COPY_OF_KEY)
    }

    /// `publisher`'s: our name AND our tags, its name among them. Anything else is never
    /// changed or deleted. A copy made before publishers carried their name (no
    /// [`PUBLISHER_KEY`]) is taken as this one's, so that an upgraded publisher goes on
    /// managing the copies it made.
    pub(crate) fn is_our_copy(&self, publisher: &str) -> bool {
        self.snapshot.identifier.starts_with(COPY_PREFIX)
            && tags::get(&self.tags, tags::MANAGED_BY_KEY) == Some(PUBLISHER_VALUE)
            && tags::get(&self.tags, PUBLISHER_KEY).is_none_or(|p| p == publisher)
            && self.copy_of().is_some()
    }
}

/// The copy's name for an automated snapshot: the same every time (a second run finds the
/// copy made by the first), a valid identifier for instances and clusters alike.
pub fn copy_name(automated: &str) -> String {
    let plain: String = automated
        .strip_prefix("rds:")
        .unwrap_or(automated)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let mut name = String::from(COPY_PREFIX);
    for c in plain.chars() {
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    if name.len() > MAX_COPY_NAME {
        // Two long names that share their start stay apart by a digest of the whole.
        let digest = format!("-{:08x}", fnv1a(automated));
        name.truncate(MAX_COPY_NAME - digest.len());
        name = name.trim_end_matches('-').to_string();
        name.push_str(&digest);
    }
    name.trim_end_matches('-').to_string()
}

/// How a copy names the automated snapshot it was made from ([`COPY_OF_KEY`]): without
/// its `rds:` prefix, as RDS refuses a tag value that starts with `rds:` (RDS API, "Tag").
pub(crate) fn copy_of_value(automated: &str) -> &str {
    automated.strip_prefix("rds:").unwrap_or(automated)
}

/// The tags a copy is made with: ours, the publisher's name, what it copies and when that
/// snapshot's data is from.
pub(crate) fn copy_tags(automated: &Held, publisher: &str) -> Vec<(String, String)> {
    let mut ours = vec![
        (tags::MANAGED_BY_KEY.to_string(), PUBLISHER_VALUE.to_string()),
        (PUBLISHER_KEY.to_string(), publisher.to_string()),
        (COPY_OF_KEY.to_string(), copy_of_value(&automated.snapshot.identifier).to_string()),
    ];
    if let Some(data_at) = automated.snapshot.data_at {
        ours.push((tags::DATA_AS_OF_KEY.to_string(), rfc3339(data_at)));
    }
    ours
}

/// What one publishing pass does for one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The automated snapshot to copy (the newest available one, not copied yet).
    pub copy: Option<String>,
    /// Our copies to share (the newest `keep` available ones).
    pub share: Vec<String>,
    /// Our copies to delete: available ones beyond those, and failed ones.
    pub delete: Vec<String>,
}

/// The fewest available copies a source keeps: the refresh side may be copying in or
/// restoring from the one before the newest when a newer one appears, and RDS may fail a
/// copy whose source is deleted before it is available (RDS User Guide, "Copying a DB
/// snapshot", limitations).
pub const LEAST_KEPT: usize = 2;

/// The pass for one source, from its automated snapshots and the manual ones listed with
/// them (of which only ours count). The newest `keep` AVAILABLE copies are kept: a copy
/// still being made takes no place (it cannot be restored from yet) and is never deleted
/// (RDS cannot delete it as such); a failed copy is deleted.
pub fn plan(automated: &[Held], manual: &[Held], keep: usize, publisher: &str) -> Plan {
    let newest = newest_available(automated.iter().map(|h| h.snapshot.clone()).collect());
    let mut ours: Vec<&Held> = manual.iter().filter(|h| h.is_our_copy(publisher)).collect();
    // By the data they hold (a copy keeps its original's time); one without a time yet is newest.
    let age = |h: &Held| (h.snapshot.data_at.is_none(), h.snapshot.data_at, h.snapshot.created_at);
    ours.sort_by(|a, b| age(b).cmp(&age(a)).then_with(|| b.snapshot.identifier.cmp(&a.snapshot.identifier)));
    let copy = newest.map(|n| n.identifier).filter(|id| !ours.iter().any(|h| h.copy_of() == Some(copy_of_value(id))));
    let mut plan = Plan { copy, ..Plan::default() };
    for held in ours {
        let id = held.snapshot.identifier.clone();
        match held.snapshot.status.as_str() {
            "available" if plan.share.len() < keep => plan.share.push(id),
            "available" | "failed" => plan.delete.push(id),
            _ => {}
        }
    }
    plan
}

/// What becomes of a copy of a source taken off the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Unshare it and note when ([`RETIRED_AT_KEY`]): no new run picks it.
    Unshare,
    /// Unshared less than [`RETIRED_FOR`] ago (or still being made): a run may still read it.
    Wait,
    Delete,
}

/// The next step for a copy of a source no longer listed.
pub fn retirement(copy: &Held, now: OffsetDateTime) -> Retirement {
    let retired_at = tags::get(&copy.tags, RETIRED_AT_KEY)
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
    match retired_at {
        None => Retirement::Unshare,
        Some(at) if now - at >= RETIRED_FOR && matches!(copy.snapshot.status.as_str(), "available" | "failed") => {
            Retirement::Delete
        }
        Some(_) => Retirement::Wait,
    }
}

/// How a copy's `restore` attribute changes so that it names exactly `accounts` (none, for
/// a copy being retired): (to add, to remove). A copy is never left public (`all`) or
/// shared with anyone else.
pub(crate) fn share_change(current: &[String], accounts: &[String]) -> (Vec<String>, Vec<String>) {
    let add = accounts.iter().filter(|a| !current.contains(a)).cloned().collect();
    let remove = current.iter().filter(|a| !accounts.contains(a)).cloned().collect();
    (add, remove)
}

impl Rds {
    /// A source's automated snapshots and its manual ones (where our copies are), all pages.
    pub async fn held_snapshots(&self, kind: SourceType, source: &str) -> Result<(Vec<Held>, Vec<Held>), RefreshError> {
        let mut automated = self.list_held(kind, Some(source), "automated").await?;
        let mut manual = self.list_held(kind, Some(source), "manual").await?;
        // Listed by instance or cluster, but only its own snapshots count.
        automated.retain(|h| h.snapshot.source_id.as_deref() == Some(source));
        manual.retain(|h| h.snapshot.source_id.as_deref() == Some(source));
        Ok((automated, manual))
    }

    /// Snapshots of one type (`automated`, `manual`) of one instance or cluster, or of them
    /// all, all pages.
    async fn list_held(
        &self,
        kind: SourceType,
        source: Option<&str>,
        snapshot_type: &str,
    ) -> Result<Vec<Held>, RefreshError> {
        let listing = Listing::Of { db: source, snapshot_type };
        Ok(self.snapshots(Shape::from(kind), listing).await?.into_iter().map(Held::listed).collect())
    }

    /// Copies an automated snapshot to [`copy_name`], encrypted with `key` (an unencrypted
    /// cluster snapshot cannot be encrypted by a copy: it stays unencrypted). A copy that
    /// already exists is the one an earlier pass made.
    pub async fn copy_snapshot(
        &self,
        kind: SourceType,
        automated: &Held,
        key: &str,
        publisher: &str,
    ) -> Result<String, RefreshError> {
        let from = &automated.snapshot.identifier;
        let name = copy_name(from);
        // An unencrypted cluster snapshot cannot be encrypted by a copy; an instance's copy
        // always takes the key (one under `aws/rds` cannot be shared).
        let shape = Shape::from(kind);
        let key = match shape {
            Shape::Cluster if automated.snapshot.kms_key_id.is_none() => None,
            _ => Some(key),
        };
        match self.copy(shape, from, &name, key, &copy_tags(automated, publisher)).await? {
            (Created::Requested(_), _) => {
                info!(snapshot = %from, copy = %name, "copy started");
                Ok(name)
            }
            // An earlier pass's copy, or a snapshot that only has its name: the latter would
            // be counted as published while the refresh side never gets this snapshot.
            (Created::AlreadyExists, _) => match self.snapshot(shape, &name).await?.map(Held::listed) {
                Some(held) if held.is_our_copy(publisher) => Ok(name),
                _ => Err(RefreshError::CloneConflict(format!(
                    "a snapshot named {name} exists and is not this publisher's copy (name {COPY_PREFIX}* with the tags \
                     ManagedBy={PUBLISHER_VALUE}, {PUBLISHER_KEY}={publisher} and {COPY_OF_KEY}): {from} cannot be \
                     published until it is renamed or deleted"
                ))),
            },
        }
    }

    /// Marks a copy retired at `now` (with the publisher's `ManagedBy` in the request, as its
    /// IAM asks of every tag it writes).
    pub async fn mark_retired(&self, copy: &Held, now: OffsetDateTime) -> Result<(), RefreshError> {
        let marks = [
            (tags::MANAGED_BY_KEY.to_string(), PUBLISHER_VALUE.to_string()),
            (RETIRED_AT_KEY.to_string(), rfc3339(now)),
        ];
        self.client
            .add_tags_to_resource()
            .resource_name(&copy.snapshot.arn)
            .set_tags(Some(sdk_tags(&marks)))
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("AddTagsToResource", e))?;
        Ok(())
    }

    /// Every copy this publisher made, of any source, all pages: the copies of a source no
    /// longer listed are found here.
    pub async fn our_copies(&self, kind: SourceType, publisher: &str) -> Result<Vec<Held>, RefreshError> {
        let mut out = self.list_held(kind, None, "manual").await?;
        out.retain(|h| h.is_our_copy(publisher));
        Ok(out)
    }

    /// The accounts a copy is shared with (its `restore` attribute).
    pub async fn shared_with(&self, kind: SourceType, copy: &str) -> Result<Vec<String>, RefreshError> {
        self.restore_accounts(Shape::from(kind), copy).await
    }

    /// Shares one of our copies with exactly `accounts` (none: unshared). Returns whether
    /// anything changed.
    pub async fn share_copy(
        &self,
        kind: SourceType,
        copy: &Held,
        accounts: &[String],
        publisher: &str,
    ) -> Result<bool, RefreshError> {
        if !copy.is_our_copy(publisher) {
            return Err(RefreshError::Internal(format!(
                "refusing to share {}: not a copy this publisher made",
                copy.snapshot.identifier
            )));
        }
        let (add, remove) = share_change(&copy.shared_with, accounts);
        if add.is_empty() && remove.is_empty() {
            return Ok(false);
        }
        let id = &copy.snapshot.identifier;
        self.change_restore_accounts(Shape::from(kind), id, &add, &remove).await?;
        info!(copy = %id, accounts = ?accounts, "sharing set");
        Ok(true)
    }

    /// Deletes one of our copies; anything else is refused before any call. Whether it is
    /// gone (RDS may refuse it in its present state: the next pass tries again).
    pub async fn delete_copy(&self, kind: SourceType, copy: &Held, publisher: &str) -> Result<bool, RefreshError> {
        if !copy.is_our_copy(publisher) {
            return Err(RefreshError::DeleteRefused {
                identifier: copy.snapshot.identifier.clone(),
                reason: format!(
                    "not a copy this publisher made (name {COPY_PREFIX}*, tags ManagedBy={PUBLISHER_VALUE} and \
                     {PUBLISHER_KEY}={publisher})"
                ),
            });
        }
        let id = &copy.snapshot.identifier;
        match self.delete_snapshot(Shape::from(kind), id).await? {
            Verdict::Done | Verdict::Gone => Ok(true),
            // Still being used or changed: the next pass deletes it.
            Verdict::NotYet => {
                warn!(copy = %id, "old copy not deletable yet; the next pass tries again");
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn held(id: &str, status: &str, created: Option<OffsetDateTime>, tags: &[(&str, &str)]) -> Held {
        Held {
            snapshot: Candidate {
                identifier: id.into(),
                arn: format!("arn:aws:rds:us-east-1:111111111111:snapshot:{id}"),
                status: status.into(),
                created_at: created,
                data_at: created,
                source_id: Some("prod".into()),
                engine: "postgres".into(),
                engine_version: None,
                snapshot_type: if id.starts_with("rds:") { "automated" } else { "manual" }.into(),
                kms_key_id: None,
                storage_gb: None,
            },
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            shared_with: Vec::new(),
        }
    }

    fn day(d: u8) -> Option<OffsetDateTime> {
        Some(datetime!(2026-12-01 03:00 UTC) + time::Duration::days(i64::from(d)))
    }

    const ME: &str = "prod-publisher";

    fn copy(of: &str, status: &str, created: Option<OffsetDateTime>) -> Held {
        let tags = [("ManagedBy", PUBLISHER_VALUE), (PUBLISHER_KEY, ME), (COPY_OF_KEY, copy_of_value(of))];
        held(&copy_name(of), status, created, &tags)
    }

    #[test]
    fn a_copy_name_is_stable_valid_and_short_enough_for_a_cluster() {
        assert_eq!(copy_name("rds:prod-2026-12-05-03-10"), "dblab-share-prod-2026-12-05-03-10");
        assert_eq!(copy_name("rds:Prod_DB--x-"), "dblab-share-prod-db-x");
        let long = format!("rds:{}-2026-12-05-03-10", "a".repeat(60));
        let other = format!("rds:{}-2026-12-06-03-10", "a".repeat(60));
        assert_eq!(copy_name(&long).len(), MAX_COPY_NAME);
        assert_ne!(copy_name(&long), copy_name(&other), "a digest keeps two long names apart");
        assert_eq!(copy_name(&long), copy_name(&long));
        // Exactly the longest: kept whole.
        let exact = format!("rds:{}", "b".repeat(MAX_COPY_NAME - COPY_PREFIX.len()));
        assert_eq!(copy_name(&exact), format!("{COPY_PREFIX}{}", "b".repeat(MAX_COPY_NAME - COPY_PREFIX.len())));
        // The digest is FNV-1a (its published test vector), stable across releases.
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        for name in [copy_name(&long), copy_name("rds:x-"), copy_name("rds:a--b")] {
            assert!(!name.contains("--") && !name.ends_with('-') && name.len() <= MAX_COPY_NAME, "{name}");
        }
    }

    #[test]
    fn only_our_name_with_our_tags_is_our_copy() {
        assert!(copy("rds:prod-1", "available", day(1)).is_our_copy(ME));
        assert!(!copy("rds:prod-1", "available", day(1)).is_our_copy("another-publisher"), "another publisher's");
        let untagged = held("dblab-share-prod-1", "available", day(1), &[]);
        assert!(!untagged.is_our_copy(ME), "our name alone");
        let ours = [("ManagedBy", PUBLISHER_VALUE), (PUBLISHER_KEY, ME), (COPY_OF_KEY, "x")];
        assert!(!held("before-upgrade", "available", day(1), &ours).is_our_copy(ME), "our tags alone");
        let clone_tag = [("ManagedBy", "dblab-refresh"), (PUBLISHER_KEY, ME), (COPY_OF_KEY, "x")];
        assert!(!held("dblab-share-x", "available", day(1), &clone_tag).is_our_copy(ME), "the clones' ManagedBy");
        let no_origin = [("ManagedBy", PUBLISHER_VALUE), (PUBLISHER_KEY, ME)];
        assert!(!held("dblab-share-x", "available", day(1), &no_origin).is_our_copy(ME), "without what it copies");
        let before_names = [("ManagedBy", PUBLISHER_VALUE), (COPY_OF_KEY, "x")];
        assert!(
            held("dblab-share-x", "available", day(1), &before_names).is_our_copy(ME),
            "made before publishers had names"
        );
    }

    #[test]
    fn the_newest_available_automated_snapshot_is_copied_once() {
        let automated = [held("rds:prod-2", "available", day(2), &[]), held("rds:prod-3", "creating", day(3), &[])];
        let plan = plan(&automated, &[], 3, ME);
        assert_eq!(plan.copy.as_deref(), Some("rds:prod-2"), "not the one still being made");
        let copied = [copy("rds:prod-2", "creating", day(2))];
        assert_eq!(super::plan(&automated, &copied, 3, ME).copy, None, "already being copied");
        assert_eq!(super::plan(&[], &copied, 3, ME), Plan::default(), "no automated snapshot: nothing to do");
        // Someone's manual snapshot of the same source is not a copy of ours.
        let foreign = [held("dblab-share-prod-2", "available", day(2), &[(COPY_OF_KEY, "rds:prod-2")])];
        assert_eq!(super::plan(&automated, &foreign, 3, ME).copy.as_deref(), Some("rds:prod-2"));
        assert!(
            super::plan(&automated, &foreign, 3, ME).delete.is_empty()
                && super::plan(&automated, &foreign, 3, ME).share.is_empty()
        );
    }

    #[test]
    fn the_newest_copies_are_kept_and_shared_and_older_ones_deleted() {
        let automated = [held("rds:prod-4", "available", day(4), &[])];
        let copies = [
            copy("rds:prod-1", "available", day(1)),
            copy("rds:prod-4", "available", day(4)),
            copy("rds:prod-3", "available", day(3)),
            copy("rds:prod-2", "failed", day(2)),
        ];
        let plan = plan(&automated, &copies, 2, ME);
        assert_eq!(plan.copy, None);
        assert_eq!(plan.share, [copy_name("rds:prod-4"), copy_name("rds:prod-3")]);
        assert_eq!(plan.delete, [copy_name("rds:prod-2"), copy_name("rds:prod-1")]);
        let plan = super::plan(&automated, &copies, 3, ME);
        assert_eq!(plan.share.len(), 3);
        assert_eq!(plan.delete, [copy_name("rds:prod-2")], "a failed copy is never kept");
    }

    #[test]
    fn a_copy_being_made_takes_no_place_and_is_never_deleted() {
        let automated = [held("rds:prod-5", "available", day(5), &[])];
        let copies = [copy("rds:prod-4", "available", day(4)), copy("rds:prod-3", "available", day(3))];
        // A new copy coming: both available copies stay until it is available.
        let plan = plan(&automated, &copies, 2, ME);
        assert_eq!(plan.copy.as_deref(), Some("rds:prod-5"));
        assert_eq!(plan.share, [copy_name("rds:prod-4"), copy_name("rds:prod-3")]);
        assert!(plan.delete.is_empty(), "{plan:?}");
        // The new copy is being made (no creation time yet): it is the newest but takes no
        // place; nothing still being made is deleted.
        let copies = [
            copy("rds:prod-5", "creating", None),
            copy("rds:prod-4", "available", day(4)),
            copy("rds:prod-3", "creating", day(3)),
            copy("rds:prod-2", "available", day(2)),
            copy("rds:prod-1", "available", day(1)),
        ];
        let plan = super::plan(&automated, &copies, 2, ME);
        assert_eq!(plan.copy, None);
        assert_eq!(plan.share, [copy_name("rds:prod-4"), copy_name("rds:prod-2")]);
        assert_eq!(plan.delete, [copy_name("rds:prod-1")]);
    }

    #[test]
    fn a_retired_copy_is_unshared_at_once_and_deleted_only_after_the_longest_run() {
        let now = datetime!(2026-12-10 03:00 UTC);
        let retired = |at: &str, status: &str| {
            let tags = [("ManagedBy", PUBLISHER_VALUE), (COPY_OF_KEY, "x"), (RETIRED_AT_KEY, at)];
            held("dblab-share-x", status, day(1), &tags)
        };
        assert_eq!(retirement(&copy("rds:prod-1", "available", day(1)), now), Retirement::Unshare);
        assert_eq!(retirement(&retired("2026-12-07T03:00:01Z", "available"), now), Retirement::Wait, "not 72 h yet");
        assert_eq!(retirement(&retired("2026-12-07T03:00:00Z", "available"), now), Retirement::Delete, "72 h exactly");
        assert_eq!(retirement(&retired("2026-12-01T03:00:00Z", "failed"), now), Retirement::Delete);
        assert_eq!(retirement(&retired("2026-12-01T03:00:00Z", "creating"), now), Retirement::Wait, "being made");
        assert_eq!(retirement(&retired("yesterday", "available"), now), Retirement::Unshare, "an unreadable mark");
    }

    #[test]
    fn every_tag_a_copy_is_made_with_is_one_rds_accepts() {
        let automated = held("rds:prod-2026-12-05-03-10", "available", day(4), &[]);
        let tags = copy_tags(&automated, ME);
        for (key, value) in &tags {
            assert_eq!(tags::rds_tag_problem(key, value), None, "{key}={value}");
        }
        assert!(tags.contains(&(COPY_OF_KEY.to_string(), "prod-2026-12-05-03-10".to_string())), "{tags:?}");
        assert!(tags.iter().any(|(k, _)| k == tags::DATA_AS_OF_KEY), "{tags:?}");
    }

    #[test]
    fn a_copy_ends_shared_with_exactly_the_refresh_accounts() {
        let refresh = ["123456789012".to_string(), "210987654321".to_string()];
        assert_eq!(share_change(&[], &refresh), (refresh.to_vec(), vec![]));
        assert_eq!(share_change(&refresh, &refresh), (vec![], vec![]));
        let wide = ["all".to_string(), refresh[0].clone(), "999999999999".to_string()];
        assert_eq!(
            share_change(&wide, &refresh),
            (vec![refresh[1].clone()], vec!["all".to_string(), "999999999999".to_string()])
        );
        assert_eq!(share_change(&wide, &[]), (vec![], wide.to_vec()), "retired: shared with nobody");
    }
}
