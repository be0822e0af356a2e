use patch_dblab::Deps;
use refresh_core::clients::SecretsManager;
use refresh_core::lambda;
use refresh_core::secrets::SecretReader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let deps = Deps { secrets: SecretReader::new(SecretsManager::new(&config)), dblab: Default::default() };
    lambda::serve_watching(|input, budget| patch_dblab::handle(&deps, input, budget)).await
}
