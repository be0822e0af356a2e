use delete_clone::Deps;
use refresh_core::aws;
use refresh_core::clients::{Rds as RdsClient, StepFunctions};
use refresh_core::executions::Executions;
use refresh_core::rds::Rds;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    let config = aws::config().await;
    let longest_call = refresh_core::duration::parse(&lambda_adapter::env("LONGEST_CALL")?)
        .map_err(|e| format!("LONGEST_CALL: {e}"))?;
    let deps = Deps {
        rds: Rds::new(RdsClient::new(&config)),
        executions: Executions::new(StepFunctions::new(&config)),
        longest_call,
    };
    lambda_adapter::serve(|input| delete_clone::handle(&deps, input)).await
}
