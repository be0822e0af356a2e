use notify::Deps;
use refresh_core::clients::{DynamoDb, Sns};
use refresh_core::history::History;
use refresh_core::lambda;
use refresh_core::notification::Notifier;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let config = lambda::aws_config().await;
    let deps = Deps {
        notifier: Notifier::new(Sns::new(&config), lambda::env("TOPIC_ARN")?),
        history: History::new(DynamoDb::new(&config), lambda::env("HISTORY_TABLE")?),
    };
    lambda::serve(|input| notify::handle(&deps, input)).await
}
