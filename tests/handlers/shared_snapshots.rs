//! Production in another account: the refresh side reads only the snapshots production's
//! account shares with it. Production is played by a second moto account (AssumeRole);
//! nothing there is described, created or changed by the handlers.

use refresh_core::rds::Rds;
use refresh_core::secrets::SecretReader;
use refresh_tests::{World, account_config};
use serde_json::{Value, json};

use crate::restore_clone;

const PRODUCTION: &str = "111111111111";
const REFRESH: &str = "123456789012";

/// Production's account: an encrypted instance, its key usable by `shared_with` (or by
/// no other account), and a manual copy of its automated snapshot shared with the refresh
/// account, as the publisher makes them. Returns the clients, the instance, the key ARN
/// and the copy's ARN.
struct Production {
    rds: aws_sdk_rds::Client,
    instance: String,
    key: String,
    copy: String,
    copy_name: String,
}

impl Production {
    /// Production's account stops sharing the copy with the refresh account.
    async fn withdraw_share(&self) {
        self.rds
            .modify_db_snapshot_attribute()
            .db_snapshot_identifier(&self.copy_name)
            .attribute_name("restore")
            .values_to_remove(REFRESH)
            .send()
            .await
            .unwrap();
    }
}

async fn production_sharing(w: &World, shared_with: Option<&str>) -> Production {
    let config = account_config(PRODUCTION, "us-east-1").await;
    let rds = aws_sdk_rds::Client::new(&config);
    let kms = aws_sdk_kms::Client::new(&config);
    let principals: Vec<String> = std::iter::once(format!("arn:aws:iam::{PRODUCTION}:root"))
        .chain(shared_with.map(|a| format!("arn:aws:iam::{a}:root")))
        .collect();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "kms:*", "Resource": "*"}]});
    let key = kms.create_key().policy(policy.to_string()).send().await.unwrap();
    let key = key.key_metadata().unwrap().arn().unwrap().to_string();
    let instance = format!("prod-{}", w.id);
    rds.create_db_instance()
        .db_instance_identifier(&instance)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("production-password")
        .allocated_storage(20)
        .storage_encrypted(true)
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let automated = rds
        .describe_db_snapshots()
        .db_instance_identifier(&instance)
        .snapshot_type("automated")
        .send()
        .await
        .unwrap()
        .db_snapshots()[0]
        .db_snapshot_identifier()
        .unwrap()
        .to_string();
    let name = format!("dblab-refresh-share-{}", w.id);
    let copy = rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(&automated)
        .target_db_snapshot_identifier(&name)
        .kms_key_id(&key)
        .send()
        .await
        .unwrap();
    let copy = copy.db_snapshot().unwrap().db_snapshot_arn().unwrap().to_string();
    rds.modify_db_snapshot_attribute()
        .db_snapshot_identifier(&name)
        .attribute_name("restore")
        .values_to_add(REFRESH)
        .send()
        .await
        .unwrap();
    Production { rds, instance, key, copy, copy_name: name }
}

fn shared_request(w: &World, production: &Production) -> Value {
    let mut request = w.request("rds", &production.instance);
    request["source"]["account"] = json!(PRODUCTION);
    request
}

/// find-snapshot with the production key listed in the stack's SourceKmsKeyArns.
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
        secrets: SecretReader::new(w.secrets.clone()),
        dblab: Default::default(),
    };
    let event = json!({"execution": w.execution(), "request": request});
    let input = lambda_adapter::read_input::<::find_snapshot::Input>(event)?;
    ::find_snapshot::handle(&deps, input, refresh_core::watch::Watch::once()).await
}

/// Every instance of an account, all pages (the launcher pages by five).
async fn instances(rds: &aws_sdk_rds::Client) -> Vec<String> {
    let mut pages = rds.describe_db_instances().into_paginator().send();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().db_instances().iter().filter_map(|i| i.db_instance_identifier().map(str::to_string)));
    }
    all
}

#[tokio::test]
async fn a_shared_copy_is_found_by_its_arn_and_restored_here_without_touching_production() {
    let w = World::new().await;
    let production = production_sharing(&w, Some(REFRESH)).await;
    let before = instances(&production.rds).await;
    let request = shared_request(&w, &production);
    let chosen = find_shared(&w, &request, &production.key).await.unwrap();
    assert_eq!(chosen.identifier, production.copy, "restored by the ARN that names production's account");
    assert_eq!(chosen.kms_key_id.as_deref(), Some(production.key.as_str()));
    let age = time::OffsetDateTime::now_utc() - chosen.data_as_of;
    assert!(age < time::Duration::hours(1), "data as of the original snapshot: {}", chosen.data_as_of);

    let clone = restore_clone(&w, &request, &w.execution(), &chosen).await.unwrap();
    assert!(instances(&w.rds).await.contains(&clone.identifier), "the clone is in the refresh account");
    let after = instances(&production.rds).await;
    assert!(
        after.iter().all(|i| before.contains(i) || !i.starts_with("dblab-refresh")),
        "nothing created in production's account: {after:?}"
    );
    assert!(!after.contains(&clone.identifier));
}

#[tokio::test]
async fn nothing_shared_a_revoked_share_or_an_unusable_key_is_refused_before_any_clone() {
    let w = World::new().await;
    let production = production_sharing(&w, Some(REFRESH)).await;
    let request = shared_request(&w, &production);
    production.withdraw_share().await;
    let err = find_shared(&w, &request, &production.key).await.unwrap_err();
    assert_eq!(err.name(), "NoSnapshotAvailable");
    assert!(err.to_string().contains("is shared with this account") && err.to_string().contains(PRODUCTION), "{err}");

    // A key whose policy does not let this account use it: the restore would fail later.
    let w = World::new().await;
    let production = production_sharing(&w, None).await;
    let err = find_shared(&w, &shared_request(&w, &production), &production.key).await.unwrap_err();
    assert!(
        err.to_string().contains(&production.key) && err.to_string().contains("cannot use"),
        "names the key: {err}"
    );

    // Listed in the stack or not, an explicit ARN of a copy not shared is refused.
    let mut request = shared_request(&w, &production);
    request["source"]["snapshotIdentifier"] = json!(format!("{}-gone", production.copy));
    let err = find_shared(&w, &request, &production.key).await.unwrap_err();
    assert!(err.to_string().contains("is not shared with this account"), "{err}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_share_withdrawn_mid_run_fails_the_restore_and_creates_nothing() {
    let w = World::new().await;
    let production = production_sharing(&w, Some(REFRESH)).await;
    let mut request = shared_request(&w, &production);
    request["source"]["maxSnapshotAge"] = json!("1h");
    let chosen = find_shared(&w, &request, &production.key).await.unwrap();
    production.withdraw_share().await;
    let err = restore_clone(&w, &request, &w.execution(), &chosen).await.unwrap_err();
    assert!(err.to_string().contains("dblab-refresh-share"), "names the snapshot: {err}");
    assert!(w.rds_names(&format!("dblab-refresh-{}", w.target())).await.is_empty(), "no clone");
}
