use find_snapshot::Deps;
use refresh_core::clients::{Ec2, Kms, Rds as RdsClient, SecretsManager};
use refresh_core::lambda;
use refresh_core::rds::Rds;
use refresh_core::secrets::SecretReader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let deps = Deps {
        rds: Rds::new(RdsClient::new(&config)),
        ec2: Ec2::new(&config),
        kms: Kms::new(&config),
        allowed_kms_keys: lambda::list(&lambda::env("SOURCE_KMS_KEY_ARNS")?),
        secrets: SecretReader::new(SecretsManager::new(&config)),
        dblab: Default::default(),
    };
    lambda::serve_watching(|input, budget| find_snapshot::handle(&deps, input, budget)).await
}
