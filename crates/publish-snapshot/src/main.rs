use publish_snapshot::{Deps, Settings};
use refresh_core::RefreshError;
use refresh_core::aws;
use refresh_core::clients::Rds as RdsClient;
use refresh_core::rds::Rds;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    // Read once, at start: a misconfigured stack fails every invocation with the same clear
    // error (PublisherMisconfigured) and does nothing, rather than half-publishing.
    let settings = Settings::from_env(|name| std::env::var(name).ok()).map_err(|e| match e {
        RefreshError::PublisherMisconfigured(reason) => reason,
        other => other.to_string(),
    });
    let config = aws::config().await;
    let deps = Deps { rds: Rds::new(RdsClient::new(&config)) };
    lambda_adapter::serve(|event| async {
        match &settings {
            Ok(settings) => publish_snapshot::handle(&deps, settings, event).await,
            Err(reason) => Err(RefreshError::PublisherMisconfigured(reason.clone())),
        }
    })
    .await
}
