//! A counting proxy between an AWS SDK client and the stand-in: it forwards every request
//! untouched and counts, per operation, requests and the items DynamoDB returned. Tests
//! and benchmarks use it to count work independently of the code under test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpCount {
    pub requests: u64,
    /// Items in the responses (`Items` of Query/Scan, `Item` of GetItem).
    pub items: u64,
    /// Capacity units DynamoDB reported, when the proxy asks for them.
    pub capacity: f64,
}

#[derive(Clone)]
pub struct CountingProxy {
    upstream: Arc<str>,
    /// Adds `ReturnConsumedCapacity: TOTAL` to DynamoDB requests (stand-ins do not check
    /// signatures), so that capacity can be summed.
    capacity: bool,
    client: reqwest::Client,
    counts: Arc<Mutex<BTreeMap<String, OpCount>>>,
    actions: Arc<Mutex<BTreeSet<String>>>,
    publishes: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    refused: Arc<Mutex<Option<String>>>,
}

impl CountingProxy {
    pub fn new(upstream: &str) -> Self {
        Self {
            upstream: upstream.trim_end_matches('/').into(),
            capacity: false,
            client: reqwest::Client::new(),
            counts: Arc::default(),
            actions: Arc::default(),
            publishes: Arc::default(),
            refused: Arc::default(),
        }
    }

    pub fn with_capacity(mut self) -> Self {
        self.capacity = true;
        self
    }

    /// Serves on a free loopback port in the background; returns its URL.
    pub async fn spawn(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let app = Router::new().fallback(forward).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(format!("http://{addr}"))
    }

    /// Counts per operation (`DynamoDB.Query`, `SNS.Publish`, ...).
    pub fn counts(&self) -> BTreeMap<String, OpCount> {
        self.counts.lock().expect("counts").clone()
    }

    /// The IAM actions the requests needed (`dynamodb:PutItem`, `sns:Publish`, ...): a
    /// transaction needs those of the writes inside it.
    pub fn iam_actions(&self) -> BTreeSet<String> {
        self.actions.lock().expect("actions").clone()
    }

    /// The parameters of each SNS `Publish` request, in order: moto does not keep message
    /// attributes of SMS, so this is where tests read them.
    pub fn sns_publishes(&self) -> Vec<BTreeMap<String, String>> {
        self.publishes.lock().expect("publishes").clone()
    }

    /// From now on, answers every request whose body contains `marker` with DynamoDB's
    /// `ValidationException` (not retried by the SDK) instead of forwarding it.
    pub fn refuse_requests_containing(&self, marker: &str) {
        *self.refused.lock().expect("refused") = Some(marker.to_owned());
    }

    pub fn reset(&self) {
        self.counts.lock().expect("counts").clear();
    }

    pub fn get(&self, op: &str) -> OpCount {
        self.counts().get(op).copied().unwrap_or_default()
    }
}

fn operation(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        // `DynamoDB_20120810.Query`, `AmazonSSM.GetParameter`
        let (service, op) = target.split_once('.').unwrap_or(("", target));
        let service = if service == "AmazonSSM" {
            "SSM"
        } else {
            "DynamoDB"
        };
        return format!("{service}.{op}");
    }
    let action = url_action(body).unwrap_or_else(|| "unknown".to_owned());
    format!("SNS.{action}")
}

fn iam_actions(op: &str, body: &[u8]) -> Vec<String> {
    let (service, action) = op.split_once('.').unwrap_or(("unknown", op));
    let service = service.to_lowercase();
    if action != "TransactWriteItems" {
        return vec![format!("{service}:{action}")];
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    request["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_object()?.keys().next().cloned())
        .map(|write| match write.as_str() {
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:{other}Item"),
        })
        .collect()
}

fn url_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

fn capacity_in(body: &[u8]) -> f64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0.0;
    };
    let units = |c: &serde_json::Value| c["CapacityUnits"].as_f64().unwrap_or(0.0);
    match &value["ConsumedCapacity"] {
        serde_json::Value::Array(all) => all.iter().map(units).sum(),
        one => units(one),
    }
}

fn with_capacity_request(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .as_object_mut()?
        .insert("ReturnConsumedCapacity".into(), "TOTAL".into());
    serde_json::to_vec(&value).ok()
}

fn items_in(body: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    if let Some(items) = value.get("Items").and_then(|i| i.as_array()) {
        return items.len() as u64;
    }
    if value.get("Item").is_some() {
        return 1;
    }
    if let Some(responses) = value.get("Responses").and_then(|r| r.as_object()) {
        return responses
            .values()
            .filter_map(|t| t.as_array())
            .map(|a| a.len() as u64)
            .sum();
    }
    0
}

async fn forward(State(proxy): State<CountingProxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let op = operation(&parts.headers, &body);
    let refused = proxy.refused.lock().expect("refused").clone();
    if let Some(marker) = refused
        && body
            .windows(marker.len())
            .any(|window| window == marker.as_bytes())
    {
        let error = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"refused by the test proxy"}"#;
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            error,
        )
            .into_response();
    }
    proxy
        .actions
        .lock()
        .expect("actions")
        .extend(iam_actions(&op, &body));
    if op == "SNS.Publish"
        && let Ok(parameters) = serde_urlencoded::from_bytes(&body)
    {
        proxy.publishes.lock().expect("publishes").push(parameters);
    }
    let body = match (
        proxy.capacity && op.starts_with("DynamoDB."),
        with_capacity_request(&body),
    ) {
        (true, Some(changed)) => Bytes::from(changed),
        _ => body,
    };
    let url = format!(
        "{}{}",
        proxy.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = proxy.client.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let response = match upstream.send().await {
        Ok(response) => response,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes: Bytes = response.bytes().await.unwrap_or_default();
    {
        let mut counts = proxy.counts.lock().expect("counts");
        let entry = counts.entry(op).or_default();
        entry.requests += 1;
        entry.items += items_in(&bytes);
        entry.capacity += capacity_in(&bytes);
    }
    let mut reply = (status, bytes).into_response();
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            reply.headers_mut().insert(name, value.clone());
        }
    }
    reply
}
