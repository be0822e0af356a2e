use delete_clone::Deps;
use refresh_core::clients::{Rds as RdsClient, StepFunctions};
use refresh_core::executions::Executions;
use refresh_core::lambda;
use refresh_core::rds::Rds;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let longest_call =
        refresh_core::duration::parse(&lambda::env("LONGEST_CALL")?).map_err(|e| format!("LONGEST_CALL: {e}"))?;
    let deps = Deps {
        rds: Rds::new(RdsClient::new(&config)),
        executions: Executions::new(StepFunctions::new(&config)),
        longest_call,
    };
    lambda::serve(|input| delete_clone::handle(&deps, input)).await
}
