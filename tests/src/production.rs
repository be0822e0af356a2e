//! Production in its own AWS account: a second moto account (credentials from AssumeRole
//! select it), where the publisher runs and the production databases live. The refresh
//! side, in the default account, sees only what the publisher shares.

use aws_config::SdkConfig;
use publish_snapshot::{Output, Settings};
use refresh_core::RefreshError;
use refresh_core::rds::Rds;
use refresh_core::request::SourceType;
use serde_json::{Value, json};

use crate::{account_config, fixture};

pub const PRODUCTION_ACCOUNT: &str = "111111111111";
/// The account of the refresh stack (moto's default).
pub const REFRESH_ACCOUNT: &str = "123456789012";
/// The copy key's id: fixed, because the test stack's SourceKmsKeyArns names it before it exists.
const COPY_KEY_ID: &str = "5ca1ab1e-0000-4000-8000-00000000c0de";

/// The publisher's copy key, as the refresh stack's SourceKmsKeyArns lists it.
pub fn copy_key_arn() -> String {
    format!("arn:aws:kms:us-east-1:{PRODUCTION_ACCOUNT}:key/{COPY_KEY_ID}")
}

/// The refresh stack's `SharedSnapshotArns`: the publisher's copies, as its stack's output
/// names them.
pub fn shared_snapshot_arns() -> Vec<String> {
    ["snapshot", "cluster-snapshot"]
        .iter()
        .map(|kind| {
            format!("arn:aws:rds:us-east-1:{PRODUCTION_ACCOUNT}:{kind}:{}*", refresh_core::rds::publish::COPY_PREFIX)
        })
        .collect()
}

/// A key policy letting `accounts` (and production itself) use the key.
fn key_policy(accounts: &[&str]) -> Value {
    let principals: Vec<String> = std::iter::once(PRODUCTION_ACCOUNT)
        .chain(accounts.iter().copied())
        .map(|a| format!("arn:aws:iam::{a}:root"))
        .collect();
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "kms:*", "Resource": "*"}]})
}

pub struct Production {
    pub config: SdkConfig,
    pub rds: aws_sdk_rds::Client,
    /// The key production's databases are encrypted with: the AWS managed `aws/rds`, as
    /// most are (a snapshot under it cannot be shared, hence the publisher's copies).
    pub database_key: String,
}

impl Production {
    pub async fn new() -> Self {
        let config = account_config(PRODUCTION_ACCOUNT, "us-east-1").await;
        let kms = aws_sdk_kms::Client::new(&config);
        let key = kms.create_key().send().await.unwrap_or_else(|e| panic!("{e:?}"));
        let id = key.key_metadata().map(|m| m.key_id().to_string()).unwrap_or_default();
        let database_key = key.key_metadata().and_then(|m| m.arn()).unwrap_or_default().to_string();
        fixture("kms/aws-managed", json!({"account": PRODUCTION_ACCOUNT, "key": id})).await;
        // The refresh stack's CopyKmsKeyArn, which shared encrypted snapshots are copied in under.
        fixture("kms/key", json!({"account": REFRESH_ACCOUNT, "id": crate::stack::COPY_IN_KEY_ID})).await;
        Self { rds: aws_sdk_rds::Client::new(&config), config, database_key }
    }

    /// The copy key, its policy letting the refresh account use it.
    pub async fn copy_key(&self) -> String {
        let policy = key_policy(&[REFRESH_ACCOUNT]).to_string();
        let out = fixture("kms/key", json!({"account": PRODUCTION_ACCOUNT, "id": COPY_KEY_ID, "policy": policy})).await;
        out["arn"].as_str().unwrap_or_default().to_string()
    }

    /// A new customer-managed key that only production can use.
    pub async fn private_key(&self) -> String {
        let kms = aws_sdk_kms::Client::new(&self.config);
        let key = kms.create_key().policy(key_policy(&[]).to_string()).send().await.unwrap_or_else(|e| panic!("{e:?}"));
        key.key_metadata().and_then(|m| m.arn()).unwrap_or_default().to_string()
    }

    /// An encrypted production instance (moto gives it one automated snapshot).
    pub async fn instance(&self, id: &str) -> String {
        crate::world::create_source_instance(&self.rds, id, Some(&self.database_key)).await;
        id.to_string()
    }

    /// The newest automated snapshot of a production instance.
    pub async fn newest_automated(&self, instance: &str) -> String {
        let out = self
            .rds
            .describe_db_snapshots()
            .db_instance_identifier(instance)
            .snapshot_type("automated")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        out.db_snapshots()
            .iter()
            .max_by_key(|s| s.snapshot_create_time().map(|t| t.secs()))
            .and_then(|s| s.db_snapshot_identifier().map(str::to_string))
            .unwrap_or_else(|| panic!("no automated snapshot of {instance}"))
    }

    /// An encrypted production Aurora PostgreSQL cluster (one automated cluster snapshot),
    /// under `key`.
    pub async fn cluster(&self, id: &str, key: &str) -> String {
        self.rds
            .create_db_cluster()
            .db_cluster_identifier(id)
            .engine("aurora-postgresql")
            .engine_version("16.3")
            .master_username("admin")
            .master_user_password("production-password")
            .storage_encrypted(true)
            .kms_key_id(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create production cluster: {e:?}"));
        id.to_string()
    }

    /// The publisher's settings for these sources.
    pub fn settings(&self, kind: SourceType, sources: &[&str], copy_key: &str, keep: usize) -> Settings {
        let list: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let (instances, clusters) = match kind {
            SourceType::Rds => (list, Vec::new()),
            SourceType::AuroraCluster => (Vec::new(), list),
        };
        // A publisher of its own per test: one publisher retires the copies of sources it
        // does not list, and the tests share production's account.
        let publisher = format!("publisher-{}", sources.first().copied().unwrap_or("none"));
        Settings {
            instances,
            clusters,
            share_with: vec![REFRESH_ACCOUNT.into()],
            copy_key: copy_key.into(),
            publisher,
            keep,
        }
    }

    /// One pass of the publisher, as RDS's event would start it.
    pub async fn publish(&self, settings: &Settings) -> Result<Output, RefreshError> {
        let deps = publish_snapshot::Deps { rds: Rds::new(self.rds.clone()) };
        let event = json!({"source": "aws.rds", "detail-type": "RDS DB Snapshot Event",
            "detail": {"EventID": "RDS-EVENT-0091", "SourceType": "SNAPSHOT"}});
        publish_snapshot::handle(&deps, settings, event).await
    }

    /// Shares a cluster with the refresh account through AWS RAM (the share accepted), or
    /// withdraws that share.
    pub async fn share_cluster_through_ram(&self, cluster: &str, shared: bool) {
        fixture(
            "ram/share-cluster",
            json!({"account": PRODUCTION_ACCOUNT, "cluster": cluster, "with": REFRESH_ACCOUNT, "withdraw": !shared}),
        )
        .await;
    }

    /// Production's account stops sharing a copy with the refresh account.
    pub async fn withdraw_share(&self, kind: SourceType, copy: &str) {
        let result = match kind {
            SourceType::Rds => self
                .rds
                .modify_db_snapshot_attribute()
                .db_snapshot_identifier(copy)
                .attribute_name("restore")
                .values_to_remove(REFRESH_ACCOUNT)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
            SourceType::AuroraCluster => self
                .rds
                .modify_db_cluster_snapshot_attribute()
                .db_cluster_snapshot_identifier(copy)
                .attribute_name("restore")
                .values_to_remove(REFRESH_ACCOUNT)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}")),
        };
        result.unwrap_or_else(|e| panic!("withdraw share of {copy}: {e}"));
    }

    /// Every manual instance snapshot of a source, each with the accounts it is shared with.
    pub async fn manual_snapshots(&self, source: &str) -> Vec<(String, Vec<String>)> {
        let out = self
            .rds
            .describe_db_snapshots()
            .db_instance_identifier(source)
            .snapshot_type("manual")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut all = Vec::new();
        for s in out.db_snapshots() {
            let id = s.db_snapshot_identifier().unwrap_or_default().to_string();
            let attrs = self
                .rds
                .describe_db_snapshot_attributes()
                .db_snapshot_identifier(&id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            let mut shared: Vec<String> = attrs
                .db_snapshot_attributes_result()
                .map(|r| r.db_snapshot_attributes())
                .unwrap_or_default()
                .iter()
                .filter(|a| a.attribute_name() == Some("restore"))
                .flat_map(|a| a.attribute_values().iter().cloned())
                .collect();
            shared.sort();
            all.push((id, shared));
        }
        all.sort();
        all
    }

    /// The RDS and KMS requests another account made that named production's account and
    /// contain `text` (a test's own identifier) or the copy key, as `service action`: the
    /// launcher notes every request naming another account than its caller's.
    pub async fn requests_from_elsewhere(&self, text: &str) -> Vec<String> {
        let out =
            fixture("requests/naming", json!({"account": PRODUCTION_ACCOUNT, "match": [text, COPY_KEY_ID]})).await;
        out["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| matches!(r["service"].as_str(), Some("rds" | "kms")))
            .map(|r| {
                format!("{} {}", r["service"].as_str().unwrap_or_default(), r["action"].as_str().unwrap_or_default())
            })
            .collect()
    }
}

/// What the refresh account may ask about production's resources: read the shared
/// snapshots and the copy key, restore from (or copy in) a shared snapshot, and clone a cluster shared
/// through RAM (copy-on-write: a read of its storage). Anything else in `requests` is
/// returned.
pub fn beyond_reading_shares(requests: &[String]) -> Vec<String> {
    const READS: &[&str] = &[
        "rds DescribeDBSnapshots",
        "rds DescribeDBClusterSnapshots",
        "rds DescribeDBClusters",
        "rds RestoreDBInstanceFromDBSnapshot",
        "rds CopyDBSnapshot",
        "rds RestoreDBClusterFromSnapshot",
        "rds RestoreDBClusterToPointInTime",
        "kms DescribeKey",
    ];
    requests.iter().filter(|r| !READS.contains(&r.as_str())).cloned().collect()
}
