//! A marketplace connector stand-in: records every `POST /messages` it receives and
//! answers what it is told to, so that tests and `make dev` see exactly what customers
//! would get.
//!
//! - `POST /messages`: recorded; answers 202, or the status set by `PUT /behaviour`.
//!   A wrong bearer token gets 401.
//! - `GET /messages`: everything received, oldest first.
//! - `DELETE /messages`: forgets it.
//! - `PUT /behaviour` `{"status": 500, "delay_ms": 0, "times": 2}`: answer `status` after
//!   `delay_ms` to the next `times` messages (all of them when `times` is absent).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Received {
    pub idempotency_key: Option<String>,
    pub body: Value,
    /// The status the stub answered.
    pub status: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Behaviour {
    pub status: Option<u16>,
    #[serde(default)]
    pub delay_ms: u64,
    pub times: Option<u32>,
}

struct Inner {
    received: Vec<Received>,
    behaviour: Behaviour,
    token: String,
}

#[derive(Clone)]
pub struct Stub {
    inner: Arc<Mutex<Inner>>,
}

impl Stub {
    pub fn new(token: &str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                received: Vec::new(),
                behaviour: Behaviour::default(),
                token: token.to_owned(),
            })),
        }
    }

    /// From now on only `token` is accepted, as after a rotation.
    pub fn set_token(&self, token: &str) {
        self.inner.lock().expect("stub state").token = token.to_owned();
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/messages",
                get(list)
                    .post(receive)
                    .delete(clear)
                    .head(|| async { StatusCode::OK }),
            )
            .route("/behaviour", put(set_behaviour))
            .with_state(self.clone())
    }

    /// Serves on `addr` (port 0 picks a free one) in the background; returns the address.
    pub async fn spawn(&self, addr: &str) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(local)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("stub state").received.clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.inner.lock().expect("stub state").behaviour = behaviour;
    }
}

async fn list(State(stub): State<Stub>) -> Json<Vec<Received>> {
    Json(stub.received())
}

async fn clear(State(stub): State<Stub>) -> StatusCode {
    stub.inner.lock().expect("stub state").received.clear();
    StatusCode::NO_CONTENT
}

async fn set_behaviour(State(stub): State<Stub>, Json(behaviour): Json<Behaviour>) -> StatusCode {
    stub.set_behaviour(behaviour);
    StatusCode::NO_CONTENT
}

async fn receive(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (status, delay) = {
        let mut inner = stub.inner.lock().expect("stub state");
        let authorised = bearer == Some(inner.token.as_str());
        let behaviour = &mut inner.behaviour;
        let status = match (behaviour.status, behaviour.times) {
            (Some(status), None) => status,
            (Some(status), Some(times)) if times > 0 => {
                behaviour.times = Some(times - 1);
                status
            }
            _ => 202,
        };
        let status = if authorised { status } else { 401 };
        (status, behaviour.delay_ms)
    };
    // Recorded on arrival: a slow answer still means the connector got the message.
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    stub.inner
        .lock()
        .expect("stub state")
        .received
        .push(Received {
            idempotency_key,
            body,
            status,
        });
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
