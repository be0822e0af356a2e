//! Production in another account: the refresh side reads only the snapshots production's
//! account shares with it, as its publisher makes them. Production is a second moto
//! account (AssumeRole); nothing there is described, created or changed by the handlers.

use refresh_core::rds::Rds;
use refresh_core::rds::publish;
use refresh_core::request::SourceType;
use refresh_core::secrets::SecretReader;
use refresh_tests::World;
use refresh_tests::production::{PRODUCTION_ACCOUNT, Production, beyond_reading_shares};
use refresh_tests::unique;
use serde_json::{Value, json};

use crate::{check, restore_clone};

/// Production's account with one encrypted source (an instance or a cluster) whose newest
/// automated snapshot its publisher has copied under `key` and shared: the copy's name and
/// ARN.
struct Shared {
    production: Production,
    kind: SourceType,
    source: String,
    key: String,
    copy: String,
    copy_arn: String,
}

async fn published(w: &World, kind: SourceType, key: Option<String>) -> Shared {
    let production = Production::new().await;
    let key = match key {
        Some(key) => key,
        None => production.copy_key().await,
    };
    let id = format!("prod-{}", w.id);
    let source = match kind {
        SourceType::Rds => production.instance(&id).await,
        SourceType::AuroraCluster => production.cluster(&id, &production.database_key).await,
    };
    let settings = production.settings(kind, &[&source], &key, 2);
    let copy = production.publish(&settings).await.unwrap().sources[0].copy_started.clone().unwrap();
    let shared = production.publish(&settings).await.unwrap();
    assert_eq!(shared.sources[0].shared, std::slice::from_ref(&copy));
    let copy_arn = format!(
        "arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:{}:{copy}",
        match kind {
            SourceType::Rds => "snapshot",
            SourceType::AuroraCluster => "cluster-snapshot",
        }
    );
    Shared { production, kind, source, key, copy, copy_arn }
}

fn shared_request(w: &World, shared: &Shared) -> Value {
    let kind = match shared.kind {
        SourceType::Rds => "rds",
        SourceType::AuroraCluster => "aurora-cluster",
    };
    let mut request = w.request(kind, &shared.source);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request
}

/// find-snapshot with the copy key listed in the stack's SourceKmsKeyArns.
async fn find_shared(
    w: &World,
    request: &Value,
    key: &str,
) -> Result<refresh_core::run::RestoreSource, refresh_core::RefreshError> {
    let deps = ::find_snapshot::Deps {
        rds: Rds::new(w.rds.clone()),
        ec2: refresh_core::clients::Ec2::new(&w.config),
        kms: refresh_core::clients::Kms::new(&w.config),
        allowed_kms_keys: vec![key.to_string()],
        shared_snapshot_arns: refresh_tests::production::shared_snapshot_arns(),
        copy_key: Some(refresh_tests::stack::copy_in_key_arn()),
        secrets: SecretReader::new(w.secrets.clone()),
        dblab: Default::default(),
        engines: w.engines(),
    };
    let event = json!({"execution": w.execution(), "request": request});
    let input = lambda_adapter::read_input::<::find_snapshot::Input>(event)?;
    ::find_snapshot::handle(&deps, input, refresh_core::watch::Watch::once()).await
}

/// The copy-in path, as the state machine runs it: the restore asks for the copy, the
/// clone's poll watches it until `copied`, the restore is asked again and restores the clone
/// from the local copy. Returns the clone, still being made.
async fn copied_in_and_restored(
    w: &World,
    request: &Value,
    execution: &refresh_core::run::Execution,
    chosen: &refresh_core::run::RestoreSource,
) -> refresh_core::run::CloneInstance {
    let waiting = restore_clone(w, request, execution, chosen).await.unwrap();
    assert!(waiting.waiting_for_copy(), "no clone asked for before the copy: {waiting:?}");
    let copy = waiting.copy.clone().unwrap_or_else(|| panic!("no copy: {waiting:?}"));
    assert_eq!(copy.identifier, waiting.identifier, "the copy is named as its clone");
    assert_eq!(copy.copy_of, chosen.arn);
    assert!(w.rds_names(&waiting.identifier).await == [format!("snapshot:{}", copy.identifier)], "only the copy yet");
    let local = w.rds.describe_db_snapshots().db_snapshot_identifier(&copy.identifier).send().await.unwrap();
    let local = &local.db_snapshots()[0];
    assert_eq!(local.kms_key_id(), Some(refresh_tests::stack::copy_in_key_arn().as_str()), "under this account's key");
    let tags: Vec<(&str, &str)> = local.tag_list().iter().filter_map(|t| Some((t.key()?, t.value()?))).collect();
    assert!(
        tags.contains(&("ManagedBy", "dblab-refresh")) && tags.contains(&("dblab-refresh:execution", &execution.name))
    );
    assert!(tags.contains(&("dblab-refresh:copy-of", &chosen.arn)), "{tags:?}");

    let copied = check(w, request, execution, &waiting).await.unwrap();
    assert_eq!(copied.status, refresh_core::poll::PollStatus::Copied, "{copied:?}");
    let clone = restore_clone(w, request, execution, chosen).await.unwrap();
    assert!(!clone.waiting_for_copy(), "{clone:?}");
    assert!(clone.copy.as_ref().is_some_and(|c| c.ready_at.is_some()), "the copy phase ended: {clone:?}");
    // A retried restore adopts both, and asks for nothing more.
    let again = restore_clone(w, request, execution, chosen).await.unwrap();
    assert_eq!((again.identifier.as_str(), again.waiting_for_copy()), (clone.identifier.as_str(), false));
    clone
}

/// Every instance and cluster of an account, all pages (the launcher pages by five).
async fn databases(rds: &aws_sdk_rds::Client) -> Vec<String> {
    let mut all = Vec::new();
    let mut pages = rds.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().db_instances().iter().filter_map(|i| i.db_instance_identifier().map(str::to_string)));
    }
    let mut pages = rds.describe_db_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().db_clusters().iter().filter_map(|c| c.db_cluster_identifier().map(str::to_string)));
    }
    all
}

async fn a_shared_copy_is_restored_here(kind: SourceType) {
    let w = World::new().await;
    let shared = published(&w, kind, None).await;
    let request = shared_request(&w, &shared);
    let chosen = find_shared(&w, &request, &shared.key).await.unwrap();
    assert_eq!(chosen.identifier, shared.copy_arn, "restored by the ARN that names production's account");
    assert_eq!(chosen.kms_key_id.as_deref(), Some(shared.key.as_str()));
    let age = time::OffsetDateTime::now_utc() - chosen.data_as_of;
    assert!(age < time::Duration::hours(1), "data as of the original snapshot: {}", chosen.data_as_of);

    let execution = w.execution();
    let clone = match kind {
        // RDS restores an encrypted instance snapshot of another account only from a copy.
        SourceType::Rds => {
            assert_eq!(chosen.local_key, Some(refresh_tests::stack::copy_in_key_arn()), "copied in first");
            copied_in_and_restored(&w, &request, &execution, &chosen).await
        }
        // Aurora restores a shared encrypted cluster snapshot directly.
        SourceType::AuroraCluster => {
            assert_eq!(chosen.local_key, None, "a cluster snapshot is restored directly");
            restore_clone(&w, &request, &execution, &chosen).await.unwrap()
        }
    };
    assert!(databases(&w.rds).await.contains(&clone.identifier), "the clone is in the refresh account");
    let after = databases(&shared.production.rds).await;
    // Other tests make production databases in parallel: none of ours may be among them.
    assert!(
        after.iter().all(|i| !i.starts_with(refresh_core::naming::CLONE_PREFIX)),
        "nothing created in production's account: {after:?}"
    );
    let asked = shared.production.requests_from_elsewhere(&w.id).await;
    assert!(!asked.is_empty(), "the restore named the shared copy");
    assert_eq!(beyond_reading_shares(&asked), Vec::<String>::new(), "only reads of what was shared: {asked:?}");
}

#[tokio::test]
async fn a_shared_instance_copy_is_found_by_its_arn_and_restored_here_without_touching_production() {
    a_shared_copy_is_restored_here(SourceType::Rds).await;
}

#[tokio::test]
async fn a_shared_aurora_copy_is_found_by_its_arn_and_restored_here_without_touching_production() {
    a_shared_copy_is_restored_here(SourceType::AuroraCluster).await;
}

#[tokio::test]
async fn nothing_shared_a_revoked_share_or_an_unusable_key_is_refused_before_any_clone() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let request = shared_request(&w, &shared);
    shared.production.withdraw_share(shared.kind, &shared.copy).await;
    let err = find_shared(&w, &request, &shared.key).await.unwrap_err();
    assert_eq!(err.name(), "NoSnapshotAvailable");
    assert!(
        err.to_string().contains("is shared with this account") && err.to_string().contains(PRODUCTION_ACCOUNT),
        "{err}"
    );

    // Copied under a key whose policy does not let this account use it: the restore would fail later.
    let w = World::new().await;
    let production = Production::new().await;
    let private = production.private_key().await;
    let shared = published(&w, SourceType::Rds, Some(private)).await;
    let err = find_shared(&w, &shared_request(&w, &shared), &shared.key).await.unwrap_err();
    assert!(err.to_string().contains(&shared.key) && err.to_string().contains("cannot use"), "names the key: {err}");

    // Listed in the stack or not, an explicit ARN of a copy not shared is refused.
    let mut request = shared_request(&w, &shared);
    request["source"]["snapshotIdentifier"] = json!(format!("{}-gone", shared.copy_arn));
    let err = find_shared(&w, &request, &shared.key).await.unwrap_err();
    assert!(err.to_string().contains("is not shared with this account"), "{err}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_copy_still_being_made_is_not_restored_from() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    refresh_tests::fixture(
        "rds/snapshot-status",
        json!({"account": PRODUCTION_ACCOUNT, "snapshot": shared.copy, "status": "creating"}),
    )
    .await;
    let err = find_shared(&w, &shared_request(&w, &shared), &shared.key).await.unwrap_err();
    assert_eq!(err.name(), "NoSnapshotAvailable");
    assert!(err.to_string().contains("still being made"), "{err}");
    assert!(err.to_string().contains(&shared.copy), "names the copy on its way: {err}");
}

#[tokio::test]
async fn a_share_withdrawn_mid_run_fails_the_restore_and_creates_nothing() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let mut request = shared_request(&w, &shared);
    request["source"]["maxSnapshotAge"] = json!("1h");
    let chosen = find_shared(&w, &request, &shared.key).await.unwrap();
    shared.production.withdraw_share(shared.kind, &shared.copy).await;
    let err = restore_clone(&w, &request, &w.execution(), &chosen).await.unwrap_err();
    assert!(err.to_string().contains(publish::COPY_PREFIX), "names the snapshot: {err}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone");
}

/// The check of what the refresh account asked about production fails on a call that
/// does more than read a share: planted here, naming a source of its own.
#[tokio::test]
async fn the_check_of_calls_into_production_catches_one_that_does_more_than_read() {
    let w = World::new().await;
    let production = Production::new().await;
    let source = production.instance(&format!("prod-{}", w.id)).await;
    let arn = format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:db:{source}");
    // The refresh account tries to tag production's instance (moto may refuse it: what
    // counts is that it was asked).
    let _ = w
        .rds
        .add_tags_to_resource()
        .resource_name(&arn)
        .tags(aws_sdk_rds::types::Tag::builder().key("k").value("v").build())
        .send()
        .await;
    let asked = production.requests_from_elsewhere(&w.id).await;
    assert_eq!(beyond_reading_shares(&asked), ["rds AddTagsToResource"], "{asked:?}");
}

#[tokio::test]
async fn a_cluster_shared_through_ram_is_cloned_by_its_arn_and_refused_once_the_share_ends() {
    let w = World::new().await;
    let production = Production::new().await;
    // A cluster under aws/rds cannot be shared: production's is under a key it lets this account use.
    let key = production.copy_key().await;
    let cluster = production.cluster(&format!("prod-{}", w.id), &key).await;
    production.share_cluster_through_ram(&cluster, true).await;
    let mut request = w.request("aurora-cluster", &cluster);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request["source"]["mode"] = json!("fast-clone");
    let chosen = find_shared(&w, &request, &key).await.unwrap();
    let arn = format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:cluster:{cluster}");
    assert_eq!(chosen.source_identifier, arn, "cloned by the ARN that names production's account");
    assert_eq!(chosen.describe(), format!("copy-on-write clone of {arn}"));
    let clone = restore_clone(&w, &request, &w.execution(), &chosen).await.unwrap();
    assert!(databases(&w.rds).await.contains(&clone.identifier), "the clone is in the refresh account");
    assert!(!databases(&production.rds).await.contains(&clone.identifier));
    let asked = production.requests_from_elsewhere(&w.id).await;
    assert!(asked.contains(&"rds RestoreDBClusterToPointInTime".to_string()), "{asked:?}");
    assert_eq!(beyond_reading_shares(&asked), Vec::<String>::new(), "{asked:?}");

    production.share_cluster_through_ram(&cluster, false).await;
    let err = find_shared(&w, &request, &key).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    assert!(err.to_string().contains("source.account") && err.to_string().contains("AWS RAM"), "{err}");
    // A cluster never shared at all is refused the same way, before any clone.
    request["source"]["identifier"] = json!(unique("never"));
    let err = find_shared(&w, &request, &key).await.unwrap_err();
    assert!(err.to_string().contains("is not shared with this account through AWS RAM"), "{err}");
}

#[tokio::test]
async fn the_copy_goes_with_its_clone_and_a_run_stopped_mid_copy_leaves_nothing() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let request = shared_request(&w, &shared);
    let chosen = find_shared(&w, &request, &shared.key).await.unwrap();
    let execution = w.execution();
    let clone = copied_in_and_restored(&w, &request, &execution, &chosen).await;
    let prefix = format!("dblab-refresh-{}", w.target());
    assert_eq!(w.rds_names(&prefix).await.len(), 2, "the clone and its copy");
    let deleted = crate::delete_clone::delete(&w, &execution, &clone, None).await.unwrap();
    assert_eq!(deleted.status, refresh_core::run::DeletionStatus::Deleted, "{deleted:?}");
    assert_eq!(w.rds_names(&prefix).await, Vec::<String>::new(), "neither clone nor copy left");

    // Stopped while the copy is still being made: the purge (the failure path and the
    // clean-up machine) finds the copy by its tags and deletes it, which ends the copy.
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let mut request = shared_request(&w, &shared);
    request["clone"]["tags"] = json!({"test:creating-polls": "1000"});
    let chosen = find_shared(&w, &request, &shared.key).await.unwrap();
    let execution = w.execution();
    let waiting = restore_clone(&w, &request, &execution, &chosen).await.unwrap();
    let still = check(&w, &request, &execution, &waiting).await.unwrap();
    assert_eq!((still.status, still.rds_status.as_str()), (refresh_core::poll::PollStatus::Pending, "copy:creating"));
    // Past its deadline, the copy times out the run.
    let late = refresh_core::run::CloneInstance {
        deadline: time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
        ..still
    };
    let timed_out = check(&w, &request, &execution, &late).await.unwrap();
    assert_eq!(timed_out.status, refresh_core::poll::PollStatus::TimedOut, "{timed_out:?}");
    let purged = crate::delete_clone::purge(&w, &execution, None, None).await.unwrap();
    assert_eq!(purged.status, refresh_core::run::DeletionStatus::Deleted, "{purged:?}");
    assert_eq!(purged.deleted, std::slice::from_ref(&waiting.identifier), "{purged:?}");
    assert_eq!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await, Vec::<String>::new(), "no copy left");
}

#[tokio::test]
async fn a_copy_refused_for_its_key_fails_the_restore_and_leaves_nothing() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let request = shared_request(&w, &shared);
    let mut chosen = find_shared(&w, &request, &shared.key).await.unwrap();
    // The stack's key gone (deleted, or its policy changed) after the preflight.
    chosen.local_key = Some("arn:aws:kms:us-east-1:123456789012:key/00000000-gone-0000-0000-000000000000".into());
    let err = restore_clone(&w, &request, &w.execution(), &chosen).await.unwrap_err();
    assert_eq!(err.name(), "AwsRequestFailed");
    assert!(err.to_string().contains("CopyDBSnapshot") && err.to_string().contains("KMSKeyNotAccessible"), "{err}");
    assert_eq!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await, Vec::<String>::new(), "nothing made");
}

#[tokio::test]
async fn without_a_copy_key_an_encrypted_share_is_refused_at_the_preflight() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let request = shared_request(&w, &shared);
    let mut deps = crate::find_deps(&w);
    deps.allowed_kms_keys = vec![shared.key.clone()];
    deps.copy_key = None;
    let event = json!({"execution": w.execution(), "request": request});
    let input = lambda_adapter::read_input::<::find_snapshot::Input>(event).unwrap();
    let err = ::find_snapshot::handle(&deps, input, refresh_core::watch::Watch::once()).await.unwrap_err();
    assert_eq!(err.name(), "InvalidRequest");
    assert!(err.to_string().contains("source.account") && err.to_string().contains("CopyKmsKeyArn"), "{err}");
}

/// The launcher refuses what RDS refuses: each of these passes in plain moto.
#[tokio::test]
async fn the_emulator_refuses_a_direct_restore_and_a_keyless_or_unusable_copy_of_an_encrypted_share() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let name = unique("dblab-refresh-refused");
    let direct = w
        .rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier(&name)
        .db_snapshot_identifier(&shared.copy_arn)
        .db_instance_class("db.t3.medium")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&direct),
        Some("InvalidParameterCombination")
    );
    let keyless = w
        .rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(&shared.copy_arn)
        .target_db_snapshot_identifier(&name)
        .send()
        .await
        .unwrap_err();
    assert_eq!(aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&keyless), Some("InvalidParameterValue"));
    let private = shared.production.private_key().await;
    let unusable = w
        .rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(&shared.copy_arn)
        .target_db_snapshot_identifier(&name)
        .kms_key_id(&private)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&unusable),
        Some("KMSKeyNotAccessibleFault")
    );
    assert_eq!(w.rds_names(&name).await, Vec::<String>::new());
    // With this account's key, the same copy is made.
    w.rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(&shared.copy_arn)
        .target_db_snapshot_identifier(&name)
        .kms_key_id(refresh_tests::stack::copy_in_key_arn())
        .send()
        .await
        .unwrap();
    w.rds.delete_db_snapshot().db_snapshot_identifier(&name).send().await.unwrap();
}

/// The "nothing left" check sees a snapshot copy: planted here, it is found.
#[tokio::test]
async fn the_check_of_what_is_left_sees_a_snapshot_copy() {
    let w = World::new().await;
    let source = w.rds_source().await;
    let name = format!("dblab-refresh-{}-planted", w.target());
    w.rds.create_db_snapshot().db_instance_identifier(&source).db_snapshot_identifier(&name).send().await.unwrap();
    assert_eq!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await, [format!("snapshot:{name}")]);
    w.rds.delete_db_snapshot().db_snapshot_identifier(&name).send().await.unwrap();
}

/// A cluster shared through RAM is listed as AWS lists it (ARN, engine, version, whether it
/// is encrypted) and cloned from that alone, under this account's key; a second clone of
/// it is refused before anything is made, naming the first.
#[tokio::test]
async fn a_ram_clone_works_from_the_listing_alone_under_this_accounts_key_and_only_once() {
    let w = World::new().await;
    let production = Production::new().await;
    let key = production.copy_key().await;
    let cluster = production.cluster(&format!("prod-{}", w.id), &key).await;
    production.share_cluster_through_ram(&cluster, true).await;
    let arn = format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:cluster:{cluster}");

    let listed = w.rds.describe_db_clusters().include_shared(true).send().await.unwrap();
    let listed = listed.db_clusters().iter().find(|c| c.db_cluster_arn() == Some(arn.as_str())).unwrap().clone();
    assert_eq!((listed.engine(), listed.storage_encrypted()), (Some("aurora-postgresql"), Some(true)));
    assert_eq!(listed.db_cluster_identifier(), None, "{listed:?}");
    assert!(
        listed.latest_restorable_time().is_none()
            && listed.kms_key_id().is_none()
            && listed.db_cluster_members().is_empty(),
        "no window, no key, no members: {listed:?}"
    );

    let mut request = w.request("aurora-cluster", &cluster);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    request["source"]["mode"] = json!("fast-clone");
    let chosen = find_shared(&w, &request, &key).await.unwrap();
    assert!(chosen.encrypted && chosen.kms_key_id.is_none(), "{chosen:?}");
    assert_eq!(chosen.local_key, Some(refresh_tests::stack::copy_in_key_arn()), "cloned under this account's key");
    let clone = restore_clone(&w, &request, &w.execution(), &chosen).await.unwrap();
    let made = w.rds.describe_db_clusters().db_cluster_identifier(&clone.identifier).send().await.unwrap();
    let made = &made.db_clusters()[0];
    assert_eq!(made.kms_key_id(), Some(refresh_tests::stack::copy_in_key_arn().as_str()), "{made:?}");

    // Another target's run, while that clone exists: refused at its preflight, naming it.
    let other = World::new().await;
    let mut again = other.request("aurora-cluster", &cluster);
    again["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    again["source"]["mode"] = json!("fast-clone");
    let err = find_shared(&other, &again, &key).await.unwrap_err();
    assert_eq!(err.name(), "CloneConflict");
    assert!(
        err.to_string().contains(&clone.identifier) && err.to_string().contains("one cross-account clone"),
        "{err}"
    );
}

/// The launcher refuses what RDS refuses of a RAM clone: each passes in plain moto.
#[tokio::test]
async fn the_emulator_refuses_an_unencrypted_or_second_clone_of_an_encrypted_shared_cluster() {
    let w = World::new().await;
    let production = Production::new().await;
    let key = production.copy_key().await;
    let cluster = production.cluster(&format!("prod-{}", w.id), &key).await;
    production.share_cluster_through_ram(&cluster, true).await;
    let arn = format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:cluster:{cluster}");
    let code = |e: &dyn aws_smithy_types::error::metadata::ProvideErrorMetadata| e.code().map(str::to_string);
    let clone = |name: String, key: Option<String>| {
        w.rds
            .restore_db_cluster_to_point_in_time()
            .db_cluster_identifier(name)
            .source_db_cluster_identifier(&arn)
            .restore_type("copy-on-write")
            .use_latest_restorable_time(true)
            .set_kms_key_id(key)
            .send()
    };
    let first = unique("dblab-refresh-ram");
    let unencrypted = clone(first.clone(), None).await.unwrap_err();
    assert_eq!(code(&unencrypted), Some("InvalidParameterCombination".into()));
    let private = production.private_key().await;
    let unusable = clone(first.clone(), Some(private)).await.unwrap_err();
    assert_eq!(code(&unusable), Some("KMSKeyNotAccessibleFault".into()));
    clone(first.clone(), Some(refresh_tests::stack::copy_in_key_arn())).await.unwrap();
    let second = clone(unique("dblab-refresh-ram"), Some(refresh_tests::stack::copy_in_key_arn())).await.unwrap_err();
    assert_eq!(code(&second), Some("InvalidDBClusterStateFault".into()));
    w.rds.delete_db_cluster().db_cluster_identifier(&first).skip_final_snapshot(true).send().await.unwrap();

    // A cluster under a key this account may not use cannot be cloned here, whatever key the
    // clone names.
    let private = production.private_key().await;
    let locked = production.cluster(&format!("locked-{}", w.id), &private).await;
    production.share_cluster_through_ram(&locked, true).await;
    let err = w
        .rds
        .restore_db_cluster_to_point_in_time()
        .db_cluster_identifier(unique("dblab-refresh-ram"))
        .source_db_cluster_identifier(format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:cluster:{locked}"))
        .restore_type("copy-on-write")
        .use_latest_restorable_time(true)
        .kms_key_id(refresh_tests::stack::copy_in_key_arn())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("KMSKeyNotAccessibleFault".into()), "the source cluster's key");
}

/// Only what the stack may restore is chosen: a newer snapshot production shares outside
/// the stack's SharedSnapshotArns is passed over, and when only such snapshots are shared
/// the run is refused naming the parameter.
#[tokio::test]
async fn a_share_outside_the_stacks_shared_snapshot_arns_is_never_chosen() {
    let w = World::new().await;
    let shared = published(&w, SourceType::Rds, None).await;
    let manual = format!("before-upgrade-{}", w.id);
    let production = &shared.production;
    production
        .rds
        .create_db_snapshot()
        .db_instance_identifier(&shared.source)
        .db_snapshot_identifier(&manual)
        .send()
        .await
        .unwrap();
    production
        .rds
        .modify_db_snapshot_attribute()
        .db_snapshot_identifier(&manual)
        .attribute_name("restore")
        .values_to_add(refresh_tests::production::REFRESH_ACCOUNT)
        .send()
        .await
        .unwrap();
    let request = shared_request(&w, &shared);
    let chosen = find_shared(&w, &request, &shared.key).await.unwrap();
    assert_eq!(chosen.identifier, shared.copy_arn, "the newer share outside SharedSnapshotArns is passed over");

    production.withdraw_share(SourceType::Rds, &shared.copy).await;
    let err = find_shared(&w, &request, &shared.key).await.unwrap_err();
    assert_eq!(err.name(), "NoSnapshotAvailable");
    assert!(err.to_string().contains("SharedSnapshotArns") && err.to_string().contains(&manual), "{err}");
}

/// A cluster snapshot carries no original time: the publisher records it on its copy, and
/// the refresh side judges the copy by it, not by when the copy was made.
#[tokio::test]
async fn a_cluster_copy_is_judged_by_its_datas_time_not_its_own() {
    let w = World::new().await;
    let production = Production::new().await;
    let key = production.copy_key().await;
    let cluster = production.cluster(&format!("prod-{}", w.id), &key).await;
    // Its newest available automated snapshot is three days old (today's is still being made).
    let today = production
        .rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(&cluster)
        .snapshot_type("automated")
        .send()
        .await
        .unwrap();
    let today = today.db_cluster_snapshots()[0].db_cluster_snapshot_identifier().unwrap().to_string();
    refresh_tests::fixture(
        "rds/snapshot-status",
        json!({"account": PRODUCTION_ACCOUNT, "clusterSnapshot": today, "status": "creating"}),
    )
    .await;
    refresh_tests::fixture(
        "rds/automated-snapshots",
        json!({"account": PRODUCTION_ACCOUNT, "cluster": cluster, "daysAgo": [3]}),
    )
    .await;
    let settings = production.settings(SourceType::AuroraCluster, &[&cluster], &key, 2);
    production.publish(&settings).await.unwrap();
    production.publish(&settings).await.unwrap();

    let mut request = w.request("aurora-cluster", &cluster);
    request["source"]["account"] = json!(PRODUCTION_ACCOUNT);
    let chosen = find_shared(&w, &request, &key).await.unwrap();
    let age = time::OffsetDateTime::now_utc() - chosen.data_as_of;
    assert!(age > time::Duration::hours(71) && age < time::Duration::hours(73), "three days old data: {age}");
    request["source"]["maxSnapshotAge"] = json!("26h");
    let err = find_shared(&w, &request, &key).await.unwrap_err();
    assert_eq!(err.name(), "NoSnapshotAvailable");
    assert!(err.to_string().contains("older than source.maxSnapshotAge"), "{err}");
}
