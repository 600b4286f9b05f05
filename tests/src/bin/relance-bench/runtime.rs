//! A minimal Lambda Runtime API, enough to run a function binary as Lambda does and time
//! its init and its invocations: `next`, `response` and `error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc, oneshot};

type Invocation = (String, Vec<u8>, oneshot::Sender<Instant>);

#[derive(Clone)]
struct Shared {
    ready: Arc<Mutex<Option<oneshot::Sender<Instant>>>>,
    events: Arc<Mutex<mpsc::Receiver<Invocation>>>,
    responses: mpsc::Sender<(String, Result<Vec<u8>, String>, Instant)>,
}

pub struct Runtime {
    pub addr: String,
    ready: Option<oneshot::Receiver<Instant>>,
    events: mpsc::Sender<Invocation>,
    responses: mpsc::Receiver<(String, Result<Vec<u8>, String>, Instant)>,
}

impl Runtime {
    pub async fn start() -> Runtime {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (events_tx, events_rx) = mpsc::channel(1);
        let (responses_tx, responses_rx) = mpsc::channel(4);
        let shared = Shared {
            ready: Arc::new(Mutex::new(Some(ready_tx))),
            events: Arc::new(Mutex::new(events_rx)),
            responses: responses_tx,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Runtime {
            addr,
            ready: Some(ready_rx),
            events: events_tx,
            responses: responses_rx,
        }
    }

    /// Time from `since` until the function first asked for an event (its init).
    pub async fn ready(&mut self, since: Instant) -> Duration {
        let ready = self.ready.take().expect("ready is awaited once");
        tokio::time::timeout(Duration::from_secs(60), ready)
            .await
            .expect("the function finished its init within a minute")
            .expect("runtime alive")
            .duration_since(since)
    }

    /// Hands `event` to the function; returns its answer and the time from hand-over to
    /// answer.
    pub async fn invoke(
        &mut self,
        event: &serde_json::Value,
    ) -> (Result<serde_json::Value, String>, Duration) {
        let id = uuid::Uuid::new_v4().to_string();
        let (handed_tx, handed_rx) = oneshot::channel();
        self.events
            .send((id.clone(), event.to_string().into_bytes(), handed_tx))
            .await
            .unwrap();
        let handed = handed_rx.await.unwrap();
        let (answered_id, body, at) =
            tokio::time::timeout(Duration::from_secs(900), self.responses.recv())
                .await
                .expect("the function answered")
                .unwrap();
        assert_eq!(answered_id, id);
        let body = body.map(|b| serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null));
        (body, at.duration_since(handed))
    }
}

async fn next(State(shared): State<Shared>) -> impl IntoResponse {
    if let Some(ready) = shared.ready.lock().await.take() {
        let _ = ready.send(Instant::now());
    }
    // When the bench is done with this function, it never gets another event.
    let Some((id, body, handed)) = shared.events.lock().await.recv().await else {
        return futures::future::pending().await;
    };
    let _ = handed.send(Instant::now());
    let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-west-3:123456789012:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
    );
    (headers, body)
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let _ = shared
        .responses
        .send((id, Ok(body.to_vec()), Instant::now()))
        .await;
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let _ = shared
        .responses
        .send((
            id,
            Err(String::from_utf8_lossy(&body).into_owned()),
            Instant::now(),
        ))
        .await;
    StatusCode::ACCEPTED
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("function init failed: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}
