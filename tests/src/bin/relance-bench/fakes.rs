//! Stand-ins that answer at once, so that a measurement shows our code, not a provider:
//! an SNS endpoint (Publish, CheckIfPhoneNumberIsOptedOut, GetTopicAttributes) and canned
//! DynamoDB answers without any
//! network for the API's in-process figures.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::body::SdkBody;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

/// What the instant SNS was asked.
#[derive(Default)]
pub struct SnsCounts {
    pub publishes: AtomicU64,
    pub opt_out_checks: AtomicU64,
}

impl SnsCounts {
    /// (publishes, opt-out checks) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.publishes.load(Ordering::Relaxed),
            self.opt_out_checks.load(Ordering::Relaxed),
        )
    }
}

/// SNS answering at once: every number opted in, every `Publish` accepted; counts them.
pub async fn instant_sns() -> (String, Arc<SnsCounts>) {
    let counts = Arc::new(SnsCounts::default());
    let app = Router::new()
        .fallback(|State(count): State<Arc<SnsCounts>>, body: Bytes| async move {
            let text = String::from_utf8_lossy(&body);
            let xml = if text.contains("Action=GetTopicAttributes") {
                "<GetTopicAttributesResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><GetTopicAttributesResult><Attributes></Attributes></GetTopicAttributesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetTopicAttributesResponse>".to_owned()
            } else if text.contains("Action=CheckIfPhoneNumberIsOptedOut") {
                count.opt_out_checks.fetch_add(1, Ordering::Relaxed);
                "<CheckIfPhoneNumberIsOptedOutResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><CheckIfPhoneNumberIsOptedOutResult><isOptedOut>false</isOptedOut></CheckIfPhoneNumberIsOptedOutResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></CheckIfPhoneNumberIsOptedOutResponse>".to_owned()
            } else {
                count.publishes.fetch_add(1, Ordering::Relaxed);
                format!(
                    "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>{}</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>",
                    uuid::Uuid::new_v4()
                )
            };
            ([("content-type", "text/xml")], xml)
        })
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, counts)
}

/// DynamoDB's wire JSON of an attribute value.
fn wire(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::L(list) => json!({"L": list.iter().map(wire).collect::<Vec<_>>()}),
        AttributeValue::M(map) => json!({"M": wire_item(map)}),
        AttributeValue::Ss(set) => json!({"SS": set}),
        other => panic!("no wire form for {other:?} in the bench"),
    }
}

pub fn wire_item(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), wire(v))).collect())
}

/// A DynamoDB client whose every request is answered by `answer(operation, request)`,
/// in process: the SDK's serialisation and the handlers run, the network does not.
pub fn canned_dynamo(
    answer: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
) -> aws_sdk_dynamodb::Client {
    let http = aws_smithy_http_client::test_util::infallible_client_fn(
        move |request: http::Request<SdkBody>| {
            let op = request
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or("")
                .to_owned();
            let body: Value = request
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            let reply = answer(&op, &body);
            http::Response::builder()
                .status(200)
                .header("content-type", "application/x-amz-json-1.0")
                .body(SdkBody::from(reply.to_string()))
                .unwrap()
        },
    );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .http_client(http)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
