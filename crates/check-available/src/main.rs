use check_available::Deps;
use refresh_core::clients::Rds as RdsClient;
use refresh_core::lambda;
use refresh_core::rds::Rds;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let deps = Deps { rds: Rds::new(RdsClient::new(&config)) };
    lambda::serve_watching(|input, watch| check_available::handle(&deps, input, watch)).await
}
