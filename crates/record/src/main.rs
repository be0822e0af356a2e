use record::{Deps, Metrics};
use refresh_core::clients::{DynamoDb, StepFunctions};
use refresh_core::executions::Executions;
use refresh_core::history::History;
use refresh_core::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let deps = Deps {
        history: History::new(DynamoDb::new(&config), lambda::env("HISTORY_TABLE")?),
        executions: Executions::new(StepFunctions::new(&config)),
        region: config.region().map_or_else(|| "unknown".to_string(), |r| r.to_string()),
        freshness_default: refresh_core::duration::parse(&lambda::env("FRESHNESS_MAX_AGE")?)
            .map_err(|e| format!("FRESHNESS_MAX_AGE: {e}"))?,
        metrics_namespace: lambda::env("METRICS_NAMESPACE")?,
        metrics: Metrics::stdout(),
    };
    lambda::serve(|input| record::handle(&deps, input)).await
}
