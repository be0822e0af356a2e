//! A local Lambda Runtime API (the interface AWS gives a function's process) serving one
//! process at a time, and a timing proxy in front of moto and the DBLab emulator, so a
//! handler's own time is its invocation time less the time its calls spent upstream.

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

/// Forwards every request to `upstream`, adding up the time during which at least one
/// call was waiting there (concurrent calls count once), and counting the calls.
#[derive(Clone)]
pub struct TimingProxy {
    pub url: String,
    spent: Arc<Mutex<Spent>>,
}

#[derive(Default)]
struct Spent {
    /// Wall time with a call in flight, up to the last call that ended.
    busy: Duration,
    in_flight: u32,
    /// When the current busy stretch began.
    since: Option<Instant>,
    calls: u32,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    spent: Arc<Mutex<Spent>>,
}

impl TimingProxy {
    pub async fn start(upstream: &str) -> Self {
        let spent = Arc::new(Mutex::new(Spent::default()));
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            spent: spent.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, spent }
    }

    /// Wall time spent upstream since the last call, and how many calls went there.
    pub fn take(&self) -> (Duration, u32) {
        let mut spent = self.spent.lock().expect("lock");
        let taken = (spent.busy, spent.calls);
        spent.busy = Duration::ZERO;
        spent.calls = 0;
        taken
    }
}

impl Spent {
    fn begin(&mut self) {
        if self.in_flight == 0 {
            self.since = Some(Instant::now());
        }
        self.in_flight += 1;
        self.calls += 1;
    }

    fn end(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0
            && let Some(since) = self.since.take()
        {
            self.busy += since.elapsed();
        }
    }
}

async fn forward(State(p): State<ProxyState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    p.spent.lock().expect("lock").begin();
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
    p.spent.lock().expect("lock").end();
    response
}
