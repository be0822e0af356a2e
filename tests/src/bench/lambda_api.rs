//! A local Lambda Runtime API (the interface AWS gives a function's process) serving one
//! process at a time, and a timing proxy in front of moto and the DBLab emulator that notes
//! each call, so a handler's own time is its invocation time less the time its calls spent
//! upstream, and the calls of both languages can be compared.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex as AsyncMutex, mpsc};

/// What the process answered, and when.
#[derive(Debug)]
pub struct Answer {
    pub at: Instant,
    pub ok: bool,
    pub body: String,
}

#[derive(Clone)]
struct Api {
    events: Arc<AsyncMutex<mpsc::UnboundedReceiver<Value>>>,
    /// When the process first asked for an event: its initialisation was over.
    first_next: Arc<Mutex<Option<Instant>>>,
    delivered: Arc<Mutex<Option<Instant>>>,
    answers: mpsc::UnboundedSender<Answer>,
    counter: Arc<Mutex<u64>>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    events: mpsc::UnboundedSender<Value>,
    answers: mpsc::UnboundedReceiver<Answer>,
    delivered: Arc<Mutex<Option<Instant>>>,
    first_next: Arc<Mutex<Option<Instant>>>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (answer_tx, answer_rx) = mpsc::unbounded_channel();
        let delivered = Arc::new(Mutex::new(None));
        let first_next = Arc::new(Mutex::new(None));
        let api = Api {
            events: Arc::new(AsyncMutex::new(event_rx)),
            first_next: first_next.clone(),
            delivered: delivered.clone(),
            answers: answer_tx,
            counter: Arc::new(Mutex::new(0)),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
        let addr = listener.local_addr().expect("runtime API address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, events: event_tx, answers: answer_rx, delivered, first_next }
    }

    /// When the process first asked for an event (the end of its initialisation).
    pub fn first_next(&self) -> Option<Instant> {
        *self.first_next.lock().expect("lock")
    }

    /// Queues an event; the process receives it on its next `/next`.
    pub fn send(&self, event: Value) {
        let _ = self.events.send(event);
    }

    /// The next answer, and when the event it answers was handed to the process.
    pub async fn answer(&mut self) -> (Instant, Answer) {
        let answer = tokio::time::timeout(Duration::from_secs(60), self.answers.recv())
            .await
            .expect("the process answered within 60 s")
            .expect("the runtime API is running");
        let delivered = self.delivered.lock().expect("lock").take().expect("an event was delivered");
        (delivered, answer)
    }
}

async fn next(State(api): State<Api>) -> Response {
    api.first_next.lock().expect("lock").get_or_insert_with(Instant::now);
    let event = api.events.lock().await.recv().await.unwrap_or(Value::Null);
    let id = {
        let mut n = api.counter.lock().expect("lock");
        *n += 1;
        format!("bench-{n}")
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(60);
    *api.delivered.lock().expect("lock") = Some(Instant::now());
    Response::builder()
        .header("Lambda-Runtime-Aws-Request-Id", &id)
        .header("Lambda-Runtime-Deadline-Ms", deadline.as_millis().to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        .header("content-type", "application/json")
        .body(Body::from(event.to_string()))
        .expect("a valid response")
}

async fn response(State(api): State<Api>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    let _ = api.answers.send(Answer { at: Instant::now(), ok: true, body: String::from_utf8_lossy(&body).into() });
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Api>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    let _ = api.answers.send(Answer { at: Instant::now(), ok: false, body: String::from_utf8_lossy(&body).into() });
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    let body = format!("init error: {}", String::from_utf8_lossy(&body));
    let _ = api.answers.send(Answer { at: Instant::now(), ok: false, body });
    StatusCode::ACCEPTED
}

/// Forwards every request to `upstream`, noting each call's name and when it was in flight.
#[derive(Clone)]
pub struct TimingProxy {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// One call through the proxy: its name (`rds:DescribeDBInstances`, `GET /status`) and when
/// it was in flight.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    pub started: Instant,
    pub ended: Instant,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl TimingProxy {
    pub async fn start(upstream: &str) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            calls: calls.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, calls }
    }

    /// The calls answered since the last take.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }
}

async fn forward(State(p): State<ProxyState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let name = call_name(&method, &uri, &headers, &body);
    let started = Instant::now();
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut request = p.client.request(method, format!("{}{path}", p.upstream));
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            request = request.header(name, value);
        }
    }
    let result = request.body(body).send().await;
    let response = match result {
        Ok(upstream) => {
            let status = upstream.status();
            let headers = upstream.headers().clone();
            let bytes = upstream.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            for (name, value) in &headers {
                if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    p.calls.lock().expect("lock").push(Call { name, started, ended: Instant::now() });
    response
}

/// A call's name, the same whichever SDK made it: `service:Operation` for AWS (from the
/// signature's scope, and the JSON protocol's target header or the query protocol's
/// `Action`), `METHOD /path` for anything else (the engine's API).
fn call_name(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`
    let service = header("authorization")
        .split("Credential=")
        .nth(1)
        .and_then(|scope| scope.split('/').nth(3))
        .map(str::to_string);
    let Some(service) = service else {
        return format!("{method} {}", uri.path());
    };
    let target = header("x-amz-target");
    let operation = if target.is_empty() {
        String::from_utf8_lossy(body)
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action="))
            .unwrap_or("?")
            .to_string()
    } else {
        target.rsplit('.').next().unwrap_or(target).to_string()
    };
    format!("{service}:{operation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let scope =
            format!("AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/{service}/aws4_request, SignedHeaders=host");
        headers.insert("authorization", scope.parse().expect("a header value"));
        headers
    }

    #[test]
    fn a_call_is_named_alike_whichever_sdk_made_it() {
        let uri: Uri = "/".parse().expect("a uri");
        let query = b"Action=DescribeDBInstances&Version=2014-10-31&DBInstanceIdentifier=x";
        assert_eq!(call_name(&Method::POST, &uri, &signed("rds"), query), "rds:DescribeDBInstances");
        let mut json = signed("dynamodb");
        json.insert("x-amz-target", "DynamoDB_20120810.PutItem".parse().expect("a header value"));
        assert_eq!(call_name(&Method::POST, &uri, &json, b"{}"), "dynamodb:PutItem");
        let engine: Uri = "/status?x=1".parse().expect("a uri");
        assert_eq!(call_name(&Method::GET, &engine, &HeaderMap::new(), b""), "GET /status");
    }
}
