use find_snapshot::Deps;
use refresh_core::aws;
use refresh_core::clients::{Ec2, Kms, Rds as RdsClient, SecretsManager};
use refresh_core::dblab::EngineList;
use refresh_core::rds::Rds;
use refresh_core::secrets::SecretReader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    let config = aws::config().await;
    let deps = Deps {
        rds: Rds::new(RdsClient::new(&config)),
        ec2: Ec2::new(&config),
        kms: Kms::new(&config),
        allowed_kms_keys: aws::list(&lambda_adapter::env("SOURCE_KMS_KEY_ARNS")?),
        shared_snapshot_arns: aws::list(&lambda_adapter::env("SHARED_SNAPSHOT_ARNS")?),
        copy_key: Some(lambda_adapter::env("COPY_KMS_KEY_ARN")?).filter(|k| !k.trim().is_empty()),
        secrets: SecretReader::new(SecretsManager::new(&config)),
        dblab: Default::default(),
        // The stack's DblabEngines: a run may drive these and no other.
        engines: EngineList::parse(&lambda_adapter::env("DBLAB_ENGINES")?)
            .map_err(|e| format!("DBLAB_ENGINES: {e}"))?,
    };
    lambda_adapter::serve_watching(|input, budget| find_snapshot::handle(&deps, input, budget)).await
}
