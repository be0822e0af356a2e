use record::Deps;
use refresh_core::aws;
use refresh_core::clients::{DynamoDb, StepFunctions};
use refresh_core::executions::Executions;
use refresh_core::history::History;
use refresh_core::metrics::Sink;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    let config = aws::config().await;
    let deps = Deps {
        history: History::new(DynamoDb::new(&config), lambda_adapter::env("HISTORY_TABLE")?),
        executions: Executions::new(StepFunctions::new(&config)),
        region: config.region().map_or_else(|| "unknown".to_string(), |r| r.to_string()),
        freshness_default: refresh_core::duration::parse(&lambda_adapter::env("FRESHNESS_MAX_AGE")?)
            .map_err(|e| format!("FRESHNESS_MAX_AGE: {e}"))?,
        metrics_namespace: lambda_adapter::env("METRICS_NAMESPACE")?,
        metrics: Sink::stdout(),
        cleanup_machine_arn: lambda_adapter::env("CLEANUP_STATE_MACHINE_ARN")?,
        cleanup_after: record::CLEANUP_AFTER,
        engines: refresh_core::dblab::EngineList::parse(&lambda_adapter::env("DBLAB_ENGINES")?)
            .map_err(|e| format!("DBLAB_ENGINES: {e}"))?,
    };
    lambda_adapter::serve(|input| record::handle(&deps, input)).await
}
