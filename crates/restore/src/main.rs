use refresh_core::clients::Rds as RdsClient;
use refresh_core::lambda;
use refresh_core::rds::Rds;
use restore::Deps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let deps = Deps { rds: Rds::new(RdsClient::new(&config)) };
    lambda::serve(|input| restore::handle(&deps, input)).await
}
