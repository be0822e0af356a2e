//! What every handler's `main` shares: JSON logs, the AWS configuration, and the adapter
//! that turns a typed handler into a Lambda function with stable error names.

use std::future::Future;

use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span};

use crate::error::RefreshError;
use crate::request::RefreshRequest;
use crate::watch::Watch;

/// Logs on stdout as Lambda's logging controls expect them: JSON lines (or plain text
/// when `AWS_LAMBDA_LOG_FORMAT` is `Text`), each with an RFC 3339 `timestamp` and a
/// `level` Lambda recognises, at the level of `AWS_LAMBDA_LOG_LEVEL` (`FATAL` counts as
/// error) or `RUST_LOG` (default info). Each line carries the current span, which holds
/// the execution name and the request id.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let filter = log_filter(level.as_deref(), std::env::var("RUST_LOG").ok().as_deref());
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    if text {
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_target(false).init();
    } else {
        tracing::subscriber::set_global_default(json_logs(filter, std::io::stdout))
            .unwrap_or_else(|e| eprintln!("logging not set up: {e}"));
    }
}

/// Lambda's level (`TRACE` to `FATAL`; anything else is info), else a `RUST_LOG`
/// directive, else info.
fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let directive = match lambda_level.map(|l| l.trim().to_ascii_lowercase()) {
        // tracing has no level above error: FATAL must not fall back to the default, info.
        Some(l) if l == "fatal" => "error".to_string(),
        Some(l) if matches!(l.as_str(), "trace" | "debug" | "info" | "warn" | "error") => l,
        Some(_) => "info".to_string(),
        None => rust_log.map_or_else(|| "info".to_string(), str::to_string),
    };
    tracing_subscriber::EnvFilter::try_new(&directive).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

fn json_logs<W>(filter: tracing_subscriber::EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// The longest one AWS call may take, its retries included: a watch counts on it to
/// never start a look that could outlast the invocation.
pub const AWS_CALL_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// The shared AWS configuration: region from the Lambda environment, `AWS_ENDPOINT_URL`
/// (or a per-service variant) honoured by every client, every call bounded in time, and the
/// trust store loaded on the first HTTPS call.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(AWS_CALL_TIME / 2)
        .operation_timeout(AWS_CALL_TIME)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .http_client(SharedHttpClient::new(TlsOnFirstUse::new()))
        .load()
        .await
}

/// The AWS SDK's HTTP client, as the default one but for when the trust store is loaded:
/// the default builds its TLS connector, loading and parsing every root certificate of the
/// system, when a client is constructed; this one builds it on the first HTTPS request.
/// In AWS that is the first call (the same work, done once, as boto3 does it); a process
/// whose endpoints are all plain HTTP (the local stack) never loads a trust store.
#[derive(Debug, Clone)]
struct TlsOnFirstUse {
    plain: SharedHttpClient,
    tls: SharedHttpClient,
}

impl TlsOnFirstUse {
    fn new() -> Self {
        Self { plain: Self::client(false), tls: Self::client(true) }
    }

    /// What `aws-smithy-runtime`'s default client builds: rustls on aws-lc, the proxy from
    /// the environment, the SDK's connector settings and sleep.
    fn client(tls: bool) -> SharedHttpClient {
        aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
            let mut builder = ConnectorBuilder::default();
            builder.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                builder.set_sleep_impl(components.sleep_impl());
            }
            builder.set_proxy_config(Some(ProxyConfig::from_env()));
            if tls { builder.tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build() } else { builder.build_http() }
        })
    }
}

impl HttpClient for TlsOnFirstUse {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(ByScheme {
            clients: self.clone(),
            settings: settings.clone(),
            components: components.clone(),
        })
    }
}

/// Sends each request through the plain or the TLS connector of its URL's scheme (each
/// built once per settings by its client, and kept).
#[derive(Debug)]
struct ByScheme {
    clients: TlsOnFirstUse,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for ByScheme {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = if request.uri().starts_with("http://") { &self.clients.plain } else { &self.clients.tls };
        client.http_connector(&self.settings, &self.components).call(request)
    }
}

/// A required environment variable (set by the template), or a clear error.
pub fn env(name: &str) -> Result<String, lambda_runtime::Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// A comma-separated list from the environment (a CloudFormation list joined), without
/// empty items.
pub fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The first bytes an SNS call through `TlsOnFirstUse` sends to `scheme://127.0.0.1`.
    async fn first_bytes(scheme: &str) -> Vec<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let reader = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut bytes = [0u8; 4];
            socket.read_exact(&mut bytes).unwrap();
            bytes.to_vec()
        });
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::Credentials::new("a", "b", None, None, "test"))
            .endpoint_url(format!("{scheme}://127.0.0.1:{port}"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(std::time::Duration::from_secs(2))
                    .build(),
            )
            .http_client(SharedHttpClient::new(TlsOnFirstUse::new()))
            .load()
            .await;
        let sns = aws_sdk_sns::Client::new(&config);
        let _ = sns.publish().topic_arn("arn:aws:sns:us-east-1:1:t").message("m").send().await;
        reader.join().unwrap()
    }

    #[tokio::test]
    async fn plain_http_goes_without_tls_and_https_through_it() {
        assert_eq!(first_bytes("http").await, b"POST", "a plain request");
        // 0x16 0x03: a TLS handshake record (the ClientHello).
        assert_eq!(first_bytes("https").await[..2], [0x16, 0x03], "a TLS handshake");
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(level: Option<&str>, emit: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let writer = lines.clone();
        tracing::subscriber::with_default(json_logs(log_filter(level, None), move || writer.clone()), || {
            let span = info_span!("invocation", execution = "exec-1", request_id = "req-1");
            let _entered = span.enter();
            emit();
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn json_lines_carry_a_timestamp_the_level_and_the_invocation() {
        let lines = logged(Some("INFO"), || error!(error = "DblabBusy", "failed"));
        let line = &lines[0];
        let stamp = line["timestamp"].as_str().unwrap();
        assert!(time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(), "{stamp}");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(
            (line["span"]["execution"].as_str(), line["span"]["request_id"].as_str()),
            (Some("exec-1"), Some("req-1"))
        );
    }

    #[test]
    fn lambda_levels_filter_as_lambda_means_them() {
        let emit = || {
            info!("routine");
            tracing::warn!("odd");
            error!("broken");
        };
        assert_eq!(logged(Some("FATAL"), emit).len(), 1, "FATAL keeps errors only, never falls back to info");
        assert_eq!(logged(Some("WARN"), emit).len(), 2);
        assert_eq!(logged(None, emit).len(), 3);
        assert_eq!(logged(Some("LOUD"), emit).len(), 3, "an unknown level is info");
    }
}
