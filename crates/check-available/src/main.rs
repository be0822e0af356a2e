use check_available::Deps;
use refresh_core::aws;
use refresh_core::clients::{DynamoDb, Rds as RdsClient};
use refresh_core::history::History;
use refresh_core::rds::Rds;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    let config = aws::config().await;
    let deps = Deps {
        rds: Rds::new(RdsClient::new(&config)),
        history: History::new(DynamoDb::new(&config), lambda_adapter::env("HISTORY_TABLE")?),
    };
    lambda_adapter::serve_watching(|input, watch| check_available::handle(&deps, input, watch)).await
}
