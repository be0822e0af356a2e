use notify::Deps;
use refresh_core::aws;
use refresh_core::clients::{DynamoDb, Sns};
use refresh_core::history::History;
use refresh_core::notification::Notifier;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    let config = aws::config().await;
    let deps = Deps {
        notifier: Notifier::new(Sns::new(&config), lambda_adapter::env("TOPIC_ARN")?),
        history: History::new(DynamoDb::new(&config), lambda_adapter::env("HISTORY_TABLE")?),
    };
    lambda_adapter::serve(|input| notify::handle(&deps, input)).await
}
