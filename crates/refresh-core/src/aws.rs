//! The AWS configuration every binary shares (handlers and CLI alike): region and
//! endpoint from the environment, every call bounded in time, and the trust store loaded
//! on the first HTTPS call.

use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The longest one AWS call may take, its retries included: a watch counts on it to
/// never start a look that could outlast the invocation.
pub(crate) const AWS_CALL_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// The shared AWS configuration: region from the Lambda environment, `AWS_ENDPOINT_URL`
/// (or a per-service variant) honoured by every client, every call bounded in time, and the
/// trust store loaded on the first HTTPS call.
pub async fn config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts())
        .http_client(SharedHttpClient::new(TlsOnFirstUse::new()))
        .load()
        .await
}

/// `AWS_CALL_TIME` for a call, retries included, and half of it for one attempt: a call
/// whose first attempt hangs still has time for one more.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(AWS_CALL_TIME / 2)
        .operation_timeout(AWS_CALL_TIME)
        .build()
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

/// A comma-separated list from the environment (a CloudFormation list joined), without
/// empty items.
pub fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

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

    #[test]
    fn a_call_takes_at_most_20_seconds_and_one_attempt_half_of_that() {
        let timeouts = timeouts();
        assert_eq!(timeouts.operation_timeout(), Some(std::time::Duration::from_secs(20)));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(std::time::Duration::from_secs(10)));
    }

    #[test]
    fn an_environment_list_drops_empty_items_and_spaces() {
        assert_eq!(list(" a, b ,,c,"), vec!["a", "b", "c"]);
        assert_eq!(list(""), Vec::<String>::new());
    }

    #[tokio::test]
    async fn plain_http_goes_without_tls_and_https_through_it() {
        assert_eq!(first_bytes("http").await, b"POST", "a plain request");
        // 0x16 0x03: a TLS handshake record (the ClientHello).
        assert_eq!(first_bytes("https").await[..2], [0x16, 0x03], "a TLS handshake");
    }
}
