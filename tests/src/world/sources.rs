//! The production sources a test makes in emulated RDS, and requests that name them.

use super::World;
use refresh_core::run::Execution;
use serde_json::{Value, json};

impl World {
    /// A valid request for a source, with test-sized intervals and this world's secrets.
    pub fn request(&self, source_type: &str, source: &str) -> Value {
        json!({
            "target": self.target(),
            "source": {
                "type": source_type,
                "identifier": source,
                "dbName": "app",
                "username": "dblab",
                "passwordSecretArn": self.password_arn,
            },
            "clone": {
                "instanceClass": "db.r6g.xlarge",
                "pollInterval": "1s",
                "restoreTimeout": "1m",
                "deletionTimeout": "1m",
                "maxAge": "1h",
                "tags": {"team": "data"},
            },
            "dblab": {
                "engine": self.engine,
                "pollInterval": "1s",
                "timeout": "1m",
            }
        })
    }

    /// A production RDS instance (moto gives it one automated snapshot).
    pub async fn rds_source(&self) -> String {
        let id = format!("prod-{}", self.id);
        create_source_instance(&self.rds, &id, None).await;
        id
    }

    /// Where most handler tests start: a production RDS instance, a valid request for it,
    /// and this world's execution.
    pub async fn rds_case(&self) -> (String, Value, Execution) {
        let source = self.rds_source().await;
        let request = self.request("rds", &source);
        (source, request, self.execution())
    }

    /// A production Aurora PostgreSQL cluster (with one automated cluster snapshot).
    pub async fn aurora_source(&self) -> String {
        let id = format!("prod-{}", self.id);
        self.rds
            .create_db_cluster()
            .db_cluster_identifier(&id)
            .engine("aurora-postgresql")
            .engine_version("16.3")
            .master_username("admin")
            .master_user_password("production-password")
            .send()
            .await
            .unwrap_or_else(|e| panic!("create source cluster: {e:?}"));
        id
    }

    /// The identifiers of instances, clusters and manual snapshots (a run's local copy of a
    /// shared snapshot) whose names start with `prefix`; a snapshot as `snapshot:<id>`.
    pub async fn rds_names(&self, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut pages = self.rds.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("{e:?}"));
            names.extend(
                page.db_instances()
                    .iter()
                    .filter_map(|i| i.db_instance_identifier())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_string),
            );
        }
        let mut pages = self.rds.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("{e:?}"));
            names.extend(
                page.db_clusters()
                    .iter()
                    .filter_map(|c| c.db_cluster_identifier())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_string),
            );
        }
        let mut pages = self.rds.describe_db_snapshots().snapshot_type("manual").into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("{e:?}"));
            names.extend(
                page.db_snapshots()
                    .iter()
                    .filter_map(|s| s.db_snapshot_identifier())
                    .filter(|n| n.starts_with(prefix))
                    .map(|n| format!("snapshot:{n}")),
            );
        }
        names
    }
}

/// A production PostgreSQL instance in the account `rds` acts in, encrypted with `key` if
/// one is given (moto gives it one automated snapshot).
pub async fn create_source_instance(rds: &aws_sdk_rds::Client, id: &str, key: Option<&str>) {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .engine_version("16.3")
        .master_username("admin")
        .master_user_password("production-password")
        .allocated_storage(20)
        .set_storage_encrypted(key.map(|_| true))
        .set_kms_key_id(key.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create source instance {id}: {e:?}"));
}
