//! What every handler's `main` shares: JSON logs, the AWS configuration, and the adapter
//! that turns a typed handler into a Lambda function with stable error names.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span};

use crate::error::RefreshError;
use crate::request::RefreshRequest;
use crate::watch::Watch;

/// JSON lines on stdout, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default info).
/// Each line carries the current span, which holds the execution name.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .init();
}

/// The longest one AWS call may take, its retries included: a watch counts on it to
/// never start a look that could outlast the invocation.
pub const AWS_CALL_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// The shared AWS configuration: region from the Lambda environment, `AWS_ENDPOINT_URL`
/// (or a per-service variant) honoured by every client, and every call bounded in time.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(AWS_CALL_TIME / 2)
        .operation_timeout(AWS_CALL_TIME)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts).load().await
}

/// A required environment variable (set by the template), or a clear error.
pub fn env(name: &str) -> Result<String, lambda_runtime::Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// The execution name in a raw event, for the log span (before the input is parsed):
/// beside the request, or inside the whole state (`record` finish, `notify`).
fn execution_name(event: &Value) -> &str {
    ["/execution/name", "/state/execution/name"]
        .iter()
        .find_map(|p| event.pointer(p).and_then(Value::as_str))
        .unwrap_or("-")
}

/// Reads the event as the handler's input type. A request that fails validation is
/// `InvalidRequest` listing every problem with its path; any other malformed input is
/// `InvalidInput` naming the JSON path that failed.
pub fn read_input<In: DeserializeOwned>(event: Value) -> Result<In, RefreshError> {
    let request = event.get("request").cloned();
    serde_path_to_error::deserialize(event).map_err(|e| {
        if let Some(Err(problems)) = request.as_ref().map(RefreshRequest::from_document) {
            return RefreshError::InvalidRequest(problems);
        }
        let path = e.path().to_string();
        RefreshError::InvalidInput(format!("{}: {}", if path == "." { "input".into() } else { path }, e.inner()))
    })
}

/// Runs a handler under the Lambda runtime until the runtime stops.
pub async fn serve<In, Out, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(In) -> Fut,
    Fut: Future<Output = Result<Out, RefreshError>>,
{
    serve_watching(|input, _| handler(input)).await
}

/// Runs a check handler, which may watch until shortly before each invocation's deadline.
pub async fn serve_watching<In, Out, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(In, Watch) -> Fut,
    Fut: Future<Output = Result<Out, RefreshError>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = info_span!("invocation", execution = %execution_name(&event.payload), request_id = %event.context.request_id);
        let watch = Watch::for_invocation(event.context.deadline());
        async move {
            let result = match read_input::<In>(event.payload) {
                // Boxed: the handlers' futures nest deeply enough to exceed the compiler's
                // layout depth when inlined into the runtime's.
                Ok(input) => Box::pin(handler(input, watch)).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(_) => info!("done"),
                Err(e) => error!(error = e.name(), transient = e.is_transient(), reason = %e, "failed"),
            }
            result.map_err(Diagnostic::from)
        }
        .instrument(span)
        .await
    }))
    .await
}
