//! The publisher in production's account (a second moto account): it copies the newest
//! automated snapshot under the copy key, shares its newest copies with exactly the
//! refresh account, deletes its older copies, and leaves every other snapshot as it was.

use refresh_core::rds::Rds;
use refresh_core::rds::publish::{self, Held};
use refresh_core::request::SourceType;
use refresh_tests::production::{PRODUCTION_ACCOUNT, Production, REFRESH_ACCOUNT};
use refresh_tests::{fixture, unique};
use serde_json::json;

/// Adds automated snapshots `days` old to a production instance, with this status.
async fn automated(instance: &str, days: &[u32], status: &str) -> Vec<String> {
    let out = fixture(
        "rds/automated-snapshots",
        json!({"account": PRODUCTION_ACCOUNT, "instance": instance, "daysAgo": days, "status": status}),
    )
    .await;
    out["created"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

async fn set_status(snapshot: &str, status: &str) {
    fixture("rds/snapshot-status", json!({"account": PRODUCTION_ACCOUNT, "snapshot": snapshot, "status": status}))
        .await;
}

#[tokio::test]
async fn the_publisher_copies_under_its_key_shares_with_the_refresh_account_and_touches_nothing_else() {
    let p = Production::new().await;
    let key = p.copy_key().await;
    let source = p.instance(&unique("prod")).await;
    automated(&source, &[1, 2], "available").await;
    let newest = p.newest_automated(&source).await;
    // Someone's manual snapshot, shared with a third account; and one with our name but
    // not our tags.
    for planted in [format!("keep-me-{source}"), format!("dblab-share-{source}-planted")] {
        p.rds
            .create_db_snapshot()
            .db_instance_identifier(&source)
            .db_snapshot_identifier(&planted)
            .send()
            .await
            .unwrap();
    }
    p.rds
        .modify_db_snapshot_attribute()
        .db_snapshot_identifier(format!("keep-me-{source}"))
        .attribute_name("restore")
        .values_to_add("999999999999")
        .send()
        .await
        .unwrap();
    let before = p.manual_snapshots(&source).await;
    let settings = p.settings(SourceType::Rds, &[&source], &key, 2);

    let first = p.publish(&settings).await.unwrap();
    let copy = publish::copy_name(&newest);
    assert_eq!(first.trigger, "RDS-EVENT-0091");
    assert_eq!(
        (first.sources[0].source_type.as_str(), first.sources[0].source.as_str()),
        ("RDS instance", source.as_str())
    );
    assert_eq!(first.sources[0].copy_started.as_deref(), Some(copy.as_str()), "the newest automated snapshot");
    let made = p.rds.describe_db_snapshots().db_snapshot_identifier(&copy).send().await.unwrap();
    let made = &made.db_snapshots()[0];
    assert_eq!(made.kms_key_id(), Some(key.as_str()), "re-encrypted with the copy key");
    assert_eq!(made.snapshot_type(), Some("manual"));

    // The copy was made after the pass listed the snapshots: the next pass shares it.
    let second = p.publish(&settings).await.unwrap();
    assert_eq!(second.sources[0].copy_started, None, "copied once");
    assert_eq!(second.sources[0].shared, std::slice::from_ref(&copy));
    assert_eq!(second.sources[0].newest_shared.as_deref(), Some(copy.as_str()));
    let third = p.publish(&settings).await.unwrap();
    assert_eq!((third.sources[0].copy_started.clone(), third.sources[0].shared.len()), (None, 0), "nothing to do");

    let after = p.manual_snapshots(&source).await;
    let others: Vec<_> = after.iter().filter(|(id, _)| *id != copy).cloned().collect();
    assert_eq!(others, before, "every other snapshot as it was, its sharing too");
    assert!(after.contains(&(copy.clone(), vec![REFRESH_ACCOUNT.to_string()])), "{after:?}");

    // Deleting is refused before any call for a snapshot that only has our name.
    let planted = Held {
        snapshot: refresh_core::rds::Candidate {
            identifier: format!("dblab-share-{source}-planted"),
            arn: String::new(),
            status: "available".into(),
            created_at: None,
            data_at: None,
            source_id: Some(source.clone()),
            engine: "postgres".into(),
            engine_version: None,
            snapshot_type: "manual".into(),
            kms_key_id: None,
            storage_gb: None,
        },
        tags: Vec::new(),
        shared_with: Vec::new(),
    };
    let err = Rds::new(p.rds.clone()).delete_copy(SourceType::Rds, &planted, &settings.publisher).await.unwrap_err();
    assert_eq!(err.name(), "DeleteRefused");
    assert!(p.manual_snapshots(&source).await.iter().any(|(id, _)| *id == planted.snapshot.identifier));
}

#[tokio::test]
async fn the_newest_copies_are_kept_older_ones_deleted_and_none_stays_public() {
    let p = Production::new().await;
    let key = p.copy_key().await;
    let source = p.instance(&unique("prod")).await;
    // moto's own snapshot (now) and days 1 and 2 are still being made; day 3 is done.
    let all =
        p.rds.describe_db_snapshots().db_instance_identifier(&source).snapshot_type("automated").send().await.unwrap();
    let now = all.db_snapshots()[0].db_snapshot_identifier().unwrap().to_string();
    set_status(&now, "creating").await;
    let day3 = automated(&source, &[3], "available").await.remove(0);
    let days = automated(&source, &[2, 1], "creating").await;
    let (day2, day1) = (days[0].clone(), days[1].clone());
    let settings = p.settings(SourceType::Rds, &[&source], &key, 2);
    let copy = |id: &str| publish::copy_name(id);

    assert_eq!(p.publish(&settings).await.unwrap().sources[0].copy_started, Some(copy(&day3)));
    set_status(&day2, "available").await;
    let pass = p.publish(&settings).await.unwrap();
    assert_eq!(
        (pass.sources[0].copy_started.clone(), pass.sources[0].shared.clone()),
        (Some(copy(&day2)), vec![copy(&day3)])
    );
    set_status(&day1, "available").await;
    let pass = p.publish(&settings).await.unwrap();
    // A copy being made takes no place: the two available ones (days 2 and 3) stay.
    assert_eq!(pass.sources[0].copy_started, Some(copy(&day1)));
    assert_eq!(pass.sources[0].shared, [copy(&day2)]);
    assert_eq!(pass.sources[0].deleted, Vec::<String>::new());

    // Someone makes a copy public: the next pass narrows it to the refresh account.
    p.rds
        .modify_db_snapshot_attribute()
        .db_snapshot_identifier(copy(&day2))
        .attribute_name("restore")
        .values_to_add("all")
        .send()
        .await
        .unwrap();
    let pass = p.publish(&settings).await.unwrap();
    // Day 1's copy available: the newest two stay (day 2's narrowed back), day 3's goes.
    assert_eq!(pass.sources[0].shared, [copy(&day1), copy(&day2)]);
    assert_eq!(pass.sources[0].deleted, [copy(&day3)]);
    let copies: Vec<_> =
        p.manual_snapshots(&source).await.into_iter().filter(|(id, _)| id.starts_with(publish::COPY_PREFIX)).collect();
    let shared = vec![REFRESH_ACCOUNT.to_string()];
    // Listed by name: day 2's copy sorts before day 1's.
    assert_eq!(copies, [(copy(&day2), shared.clone()), (copy(&day1), shared)]);
}

#[tokio::test]
async fn one_source_that_cannot_be_published_does_not_keep_the_others_from_it() {
    let p = Production::new().await;
    let key = p.copy_key().await;
    let source = p.instance(&unique("prod")).await;
    let mut settings = p.settings(SourceType::Rds, &[&source], &key, 2);
    settings.clusters = vec![unique("gone")];
    let err = p.publish(&settings).await.unwrap_err();
    assert_eq!(err.name(), "NoSnapshotAvailable", "{err}");
    assert!(err.to_string().contains(&settings.clusters[0]), "names the source: {err}");
    let copies = p.manual_snapshots(&source).await;
    assert_eq!(copies.len(), 1, "the instance was published all the same: {copies:?}");
}

/// A source taken off the publisher's list: its copies are unshared and deleted by the next
/// pass; another publisher's copies in the same account are not touched.
#[tokio::test]
async fn the_copies_of_a_source_no_longer_listed_are_retired() {
    async fn copies(p: &Production, source: &str) -> usize {
        p.manual_snapshots(source).await.into_iter().filter(|(id, _)| id.starts_with(publish::COPY_PREFIX)).count()
    }
    let p = Production::new().await;
    let key = p.copy_key().await;
    let (kept, dropped) = (p.instance(&unique("prod")).await, p.instance(&unique("prod")).await);
    let mut settings = p.settings(SourceType::Rds, &[&kept, &dropped], &key, 2);
    let other = p.settings(SourceType::Rds, &[&dropped], &key, 2);
    p.publish(&settings).await.unwrap();
    p.publish(&settings).await.unwrap();
    assert_eq!((copies(&p, &kept).await, copies(&p, &dropped).await), (1, 1));

    // Another publisher of the account retires nothing of this one's.
    let foreign = p.publish(&other).await;
    assert!(foreign.is_err_and(|e| e.name() == "CloneConflict"), "its copy's name is this publisher's copy");
    assert_eq!(copies(&p, &dropped).await, 1);

    settings.instances = vec![kept.clone()];
    let pass = p.publish(&settings).await.unwrap();
    assert_eq!((pass.unshared.len(), pass.retired.len()), (1, 0), "unshared at once: {pass:?}");
    let dropped_copy =
        p.manual_snapshots(&dropped).await.into_iter().find(|(id, _)| id.starts_with(publish::COPY_PREFIX));
    assert_eq!(dropped_copy.map(|(_, shared)| shared), Some(Vec::new()), "shared with nobody");
    let again = p.publish(&settings).await.unwrap();
    assert_eq!((again.unshared.len(), again.retired.len()), (0, 0), "kept while a run may still read it");
    // Unshared longer ago than the longest run (as the mark says): deleted.
    let copy = publish::copy_name(&p.newest_automated(&dropped).await);
    p.rds
        .add_tags_to_resource()
        .resource_name(format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:snapshot:{copy}"))
        .tags(aws_sdk_rds::types::Tag::builder().key(publish::RETIRED_AT_KEY).value("2026-01-01T00:00:00Z").build())
        .send()
        .await
        .unwrap();
    let last = p.publish(&settings).await.unwrap();
    assert_eq!(last.retired, [copy], "{last:?}");
    assert_eq!((copies(&p, &kept).await, copies(&p, &dropped).await), (1, 0), "only the unlisted source's copy");
}

/// A snapshot that has a copy's name but is not the publisher's fails the pass, naming it,
/// instead of counting as published.
#[tokio::test]
async fn a_snapshot_squatting_a_copys_name_fails_the_pass_loudly() {
    let p = Production::new().await;
    let key = p.copy_key().await;
    let source = p.instance(&unique("prod")).await;
    let newest = p.newest_automated(&source).await;
    let name = publish::copy_name(&newest);
    p.rds.create_db_snapshot().db_instance_identifier(&source).db_snapshot_identifier(&name).send().await.unwrap();
    let settings = p.settings(SourceType::Rds, &[&source], &key, 2);
    let err = p.publish(&settings).await.unwrap_err();
    assert_eq!(err.name(), "CloneConflict");
    assert!(err.to_string().contains(&name) && err.to_string().contains("not this publisher's copy"), "{err}");
    let (id, shared) = p.manual_snapshots(&source).await.into_iter().find(|(id, _)| *id == name).unwrap();
    assert_eq!((id, shared), (name, Vec::<String>::new()), "left as it was, shared with nobody");
}

/// One publisher serves several refresh accounts: each copy is shared with exactly those.
#[tokio::test]
async fn one_publisher_shares_with_every_refresh_account_and_no_other() {
    let p = Production::new().await;
    let key = p.copy_key().await;
    let source = p.instance(&unique("prod")).await;
    let mut settings = p.settings(SourceType::Rds, &[&source], &key, 2);
    settings.share_with = vec![REFRESH_ACCOUNT.to_string(), "210987654321".to_string()];
    let copy = p.publish(&settings).await.unwrap().sources[0].copy_started.clone().unwrap();
    p.publish(&settings).await.unwrap();
    let shared = p.manual_snapshots(&source).await.into_iter().find(|(id, _)| *id == copy).unwrap().1;
    assert_eq!(shared, ["123456789012", "210987654321"]);
    settings.share_with = vec!["210987654321".to_string()];
    p.publish(&settings).await.unwrap();
    let shared = p.manual_snapshots(&source).await.into_iter().find(|(id, _)| *id == copy).unwrap().1;
    assert_eq!(shared, ["210987654321"], "an account taken off the list is narrowed away");
}

/// RDS refuses a tag that starts with `rds:` (an automated snapshot's id as a value): so
/// does the launcher, and the publisher's copies carry the id without it.
#[tokio::test]
async fn the_emulator_refuses_a_tag_rds_refuses_and_the_publishers_tags_pass() {
    let p = Production::new().await;
    let key = p.copy_key().await;
    let source = p.instance(&unique("prod")).await;
    let newest = p.newest_automated(&source).await;
    let refused = p
        .rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(&newest)
        .target_db_snapshot_identifier(format!("{}-x", publish::copy_name(&newest)))
        .tags(aws_sdk_rds::types::Tag::builder().key(publish::COPY_OF_KEY).value(&newest).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&refused), Some("InvalidParameterValue"));
    let settings = p.settings(SourceType::Rds, &[&source], &key, 2);
    let copy = p.publish(&settings).await.unwrap().sources[0].copy_started.clone();
    assert_eq!(copy, Some(publish::copy_name(&newest)), "the publisher's copy is made, its tags accepted");
    // And recognised as its own on the next pass: copied once.
    assert_eq!(p.publish(&settings).await.unwrap().sources[0].copy_started, None);
}
