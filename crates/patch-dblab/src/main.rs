use patch_dblab::Deps;
use refresh_core::aws;
use refresh_core::clients::{DynamoDb, SecretsManager};
use refresh_core::dblab::EngineList;
use refresh_core::history::History;
use refresh_core::secrets::SecretReader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_adapter::init_tracing();
    let config = aws::config().await;
    let deps = Deps {
        secrets: SecretReader::new(SecretsManager::new(&config)),
        dblab: Default::default(),
        // The stack's DblabEngines: a run may drive these and no other.
        history: History::new(DynamoDb::new(&config), lambda_adapter::env("HISTORY_TABLE")?),
        engines: EngineList::parse(&lambda_adapter::env("DBLAB_ENGINES")?)
            .map_err(|e| format!("DBLAB_ENGINES: {e}"))?,
    };
    lambda_adapter::serve_watching(|input, budget| patch_dblab::handle(&deps, input, budget)).await
}
