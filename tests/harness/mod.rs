//! Test helpers: a fresh table per test on the local stand-in, and an API client that
//! sends API Gateway v2 events through the real router, claims included.
#![allow(dead_code)]

use axum::Router;
use axum::body::to_bytes;
use http::StatusCode;
use relance_api::{ApiConfig, AppState, app};
use relance_shared::config::StoreConfig;
use relance_shared::store::Store;
use relance_tests::stack;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const CLAIM: &str = "custom:tenant_id";

/// One test's world: its own table on the shared stand-in.
pub struct World {
    pub table: String,
    pub store: Store,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub aws: aws_config::SdkConfig,
}

impl World {
    pub async fn new() -> Self {
        Self::with_shards(4).await
    }

    pub async fn with_shards(due_shards: u32) -> Self {
        let aws = stack::sdk_config(&stack::test_endpoint()).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let table = stack::unique("relances");
        stack::create_table(&dynamo, &table)
            .await
            .expect("create the test table: is the stand-in running? `make test` starts it");
        let store = Store::new(
            dynamo.clone(),
            &StoreConfig {
                table_name: table.clone(),
                due_shards,
            },
        );
        Self {
            table,
            store,
            dynamo,
            aws,
        }
    }

    pub fn api(&self, tenant: &str) -> Api {
        self.api_with(Some(tenant), false)
    }

    pub fn api_with(&self, tenant: Option<&str>, dev_auth: bool) -> Api {
        self.api_on(self.store.clone(), tenant, dev_auth)
    }

    /// The API of `tenant` reaching this world's table through `endpoint` (a proxy).
    pub async fn api_through(&self, tenant: &str, endpoint: &str) -> Api {
        let aws = stack::sdk_config(endpoint).await;
        let store = Store::new(
            aws_sdk_dynamodb::Client::new(&aws),
            &StoreConfig {
                table_name: self.table.clone(),
                due_shards: self.store.due_shards(),
            },
        );
        self.api_on(store, Some(tenant), false)
    }

    fn api_on(&self, store: Store, tenant: Option<&str>, dev_auth: bool) -> Api {
        let config = ApiConfig {
            store: StoreConfig {
                table_name: self.table.clone(),
                due_shards: self.store.due_shards(),
            },
            tenant_claim: CLAIM.to_owned(),
            dev_auth,
        };
        Api {
            app: app(AppState::new(store, config)),
            tenant: tenant.map(str::to_owned),
            headers: Vec::new(),
        }
    }
}

/// Asserts that every IAM action the requests through `proxy` needed is allowed to
/// `function`'s role in `infra/template.yaml`; returns those actions.
pub fn assert_role_allows(
    function: &str,
    proxy: &relance_tests::proxy::CountingProxy,
) -> std::collections::BTreeSet<String> {
    let allowed = role_actions(function);
    let needed = proxy.iam_actions();
    for action in &needed {
        assert!(
            allowed.contains(action),
            "{function} calls {action}, which its role does not allow ({allowed:?})"
        );
    }
    needed
}

/// The actions a function's role allows in `infra/template.yaml` (`dynamodb:Query`, ...).
fn role_actions(function: &str) -> Vec<String> {
    let template: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/template.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    template["Resources"][function]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|policy| policy["Statement"].as_sequence().unwrap().clone())
        .flat_map(|statement| match &statement["Action"] {
            serde_yaml::Value::Sequence(actions) => actions.clone(),
            one => vec![one.clone()],
        })
        .map(|action| action.as_str().unwrap().to_owned())
        .collect()
}

#[derive(Clone)]
pub struct Api {
    app: Router,
    tenant: Option<String>,
    headers: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The error code of a 4xx reply, checking the error shape on the way.
    pub fn error_code(&self) -> &str {
        let error = &self.body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without message: {}",
            self.body
        );
        error["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body))
    }

    pub fn error_field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    /// Asserts a 4xx with SPEC's error shape naming `field`.
    #[track_caller]
    pub fn assert_rejects(&self, status: u16, field: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.body
        );
        self.error_code();
        assert_eq!(
            self.error_field(),
            Some(field),
            "wrong field in {}",
            self.body
        );
    }
}

impl Api {
    pub fn new(app: Router, tenant: Option<&str>) -> Self {
        Api {
            app,
            tenant: tenant.map(str::to_owned),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `body` as JSON (or raw when it is a string) through the router.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<String>,
        content_type: Option<&str>,
    ) -> Reply {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers = serde_json::Map::new();
        if let Some(ct) = content_type {
            headers.insert("content-type".into(), json!(ct));
        }
        for (k, v) in &self.headers {
            headers.insert(k.to_lowercase(), json!(v));
        }
        let mut context = json!({
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
            "requestId": "req", "routeKey": "$default", "stage": "$default",
            "time": "04/Dec/2026:10:00:00 +0000", "timeEpoch": 1_796_378_400_000u64
        });
        if let Some(tenant) = &self.tenant {
            context["authorizer"] =
                json!({"jwt": {"claims": {CLAIM: tenant, "sub": "agent-1"}, "scopes": null}});
        }
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": headers, "requestContext": context, "isBase64Encoded": false,
            "body": body,
        });
        let request = lambda_http::request::from_str(&event.to_string())
            .expect("a valid API Gateway v2 event");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("every reply is JSON")
        };
        Reply { status, body }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.raw(
            method,
            path,
            body.map(|b| b.to_string()),
            Some("application/json"),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }

    /// Creates a response and returns its id.
    pub async fn response(&self, title: &str, body: &str) -> String {
        let reply = self
            .post("/responses", json!({"title": title, "body": body}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a relance from a JSON object merged over sensible defaults.
    pub async fn relance(&self, fields: Value) -> Value {
        let reply = self.post("/relances", fields).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }
}

/// A relance body with the given default response.
pub fn relance_body(name: &str, default_response_id: &str) -> Value {
    json!({
        "name": name,
        "frequency_days": 2,
        "max_sends": 3,
        "allowed_channels": ["amazon", "sms"],
        "default_response_id": default_response_id,
        "end_response_id": null,
        "final_status": "resolu",
        "send_type": "sms"
    })
}

/// `base` with the fields of `patch` set over it.
pub fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(target), Value::Object(fields)) = (base.as_object_mut(), patch) {
        target.extend(fields);
    }
    base
}

// ----- the scheduler side -----

use std::sync::Arc;

use chrono::{DateTime, Utc};
use relance_scheduler::{RunConfig, RunSummary, Scheduler, Senders};
use relance_shared::outbound::{HttpMarketplace, MarketplaceConfig, SnsEvents, SnsSms};
use relance_tests::marketplace_stub::Stub;

pub const MARKETPLACE_TOKEN: &str = "test-marketplace-token";

/// A world with everything the scheduler talks to: moto's SNS (SMS and an events topic of
/// its own) and a marketplace stub of its own.
pub struct Stack {
    pub world: World,
    pub topic: String,
    pub stub: Stub,
    pub stub_url: String,
    pub sns: aws_sdk_sns::Client,
}

impl Stack {
    pub async fn new() -> Self {
        Self::on(World::new().await).await
    }

    pub async fn on(world: World) -> Self {
        let sns = aws_sdk_sns::Client::new(&world.aws);
        let topic = stack::create_topic(&sns, &stack::unique("events"))
            .await
            .expect("create the events topic");
        let stub = Stub::new(MARKETPLACE_TOKEN);
        let addr = stub
            .spawn("127.0.0.1:0")
            .await
            .expect("start the marketplace stub");
        Self {
            world,
            topic,
            stub,
            stub_url: format!("http://{addr}"),
            sns,
        }
    }

    pub fn api(&self, tenant: &str) -> Api {
        self.world.api(tenant)
    }

    pub fn marketplace_config(&self) -> MarketplaceConfig {
        MarketplaceConfig {
            url: self.stub_url.clone(),
            token: MARKETPLACE_TOKEN.to_owned(),
            token_parameter: None,
            // Ample for a stub that answers at once, even on a loaded CI machine.
            timeout: std::time::Duration::from_secs(2),
            per_second: 0,
        }
    }

    /// The production senders, pointed at the stand-ins.
    pub fn senders(&self) -> Senders {
        Senders {
            sms: Arc::new(SnsSms::new(self.sns.clone(), 0)),
            marketplace: Arc::new(HttpMarketplace::new(&self.marketplace_config()).unwrap()),
            events: Arc::new(SnsEvents::new(self.sns.clone(), self.topic.clone())),
        }
    }

    pub fn scheduler(&self) -> Scheduler {
        self.scheduler_with(self.senders(), RunConfig::default())
    }

    pub fn scheduler_with(&self, senders: Senders, config: RunConfig) -> Scheduler {
        Scheduler::new(self.world.store.clone(), senders, config)
    }

    pub async fn tick(&self, at: DateTime<Utc>) -> RunSummary {
        self.scheduler()
            .run(at, None)
            .await
            .expect("a scheduler run")
    }

    /// The domain events published on this stack's topic, oldest first.
    pub async fn events(&self) -> Vec<Value> {
        let data = moto_data().await;
        let topic = data["sns"]["Topic"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["arn"] == self.topic.as_str())
            .cloned()
            .unwrap_or_default();
        topic["sent_notifications"]
            .as_array()
            .map(|n| {
                n.iter()
                    .map(|n| serde_json::from_str(n[1].as_str().unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn event_types(&self) -> Vec<String> {
        self.events()
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Everything moto holds (its SMS record among it).
pub async fn moto_data() -> Value {
    let url = format!("{}/moto-api/data.json", stack::test_endpoint());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The SMS texts moto recorded for one phone number (E.164), oldest first.
pub async fn sms_to(phone: &str) -> Vec<String> {
    sms_by_phone(&moto_data().await)
        .remove(phone)
        .unwrap_or_default()
}

pub fn sms_by_phone(data: &Value) -> std::collections::HashMap<String, Vec<String>> {
    let mut by_phone: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for sms in data["sns"]["SMS"].as_array().into_iter().flatten() {
        by_phone
            .entry(sms["phone_number"].as_str().unwrap().to_owned())
            .or_default()
            .push(sms["message"].as_str().unwrap().to_owned());
    }
    by_phone
}

/// How many SMS each thread seeded by `seed_due` received: the texts to its phone that
/// name it (another test process may have drawn the same phone).
pub fn sms_per_seeded_thread(
    data: &Value,
    threads: &[(String, String)],
) -> std::collections::HashMap<String, usize> {
    let texts = sms_by_phone(data);
    threads
        .iter()
        .map(|(thread, phone)| {
            let named = texts
                .get(phone)
                .into_iter()
                .flatten()
                .filter(|text| text.contains(thread.as_str()))
                .count();
            (thread.clone(), named)
        })
        .collect()
}

/// A French mobile number no other test of this process uses: (as an agent types it, E.164).
pub fn new_phone() -> (String, String) {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Consecutive numbers from a random start: random ones would repeat (2,500 draws among
    // 10^7 collide one time in four). 06[0-24-8]…: French mobiles, valid whatever follows,
    // 8 × 10^7 of them. moto treats numbers ending in 99 as opted out: those only come from
    // `opted_out_phone`.
    const LEADS: [u64; 8] = [0, 1, 2, 4, 5, 6, 7, 8];
    const SPAN: u64 = 10_000_000;
    static NEXT: LazyLock<AtomicU64> = LazyLock::new(|| {
        AtomicU64::new((uuid::Uuid::new_v4().as_u128() % u128::from(8 * SPAN)) as u64)
    });
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % (8 * SPAN);
        let digits = format!("{}{:07}", LEADS[(n / SPAN) as usize], n % SPAN);
        if !digits.ends_with("99") {
            return phone_from(&digits);
        }
    }
}

/// A number that opted out of SMS, as moto knows it (it ends in 99).
pub fn opted_out_phone() -> (String, String) {
    let (_, e164) = new_phone();
    phone_from(&format!("{}99", &e164[4..10]))
}

fn phone_from(digits: &str) -> (String, String) {
    let national = format!(
        "06 {} {} {} {}",
        &digits[0..2],
        &digits[2..4],
        &digits[4..6],
        &digits[6..8]
    );
    (national, format!("+336{digits}"))
}

pub fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .unwrap()
    .with_timezone(&Utc)
}

/// An attach request for an SMS relance.
pub fn attach_sms(relance_id: &str, phone: &str, context: Value) -> Value {
    json!({
        "relance_id": relance_id, "ticket_id": "T-1", "ticket_status": "attente_client", "channel": "sms",
        "recipient": {"phone": phone}, "context": context
    })
}

/// Settings open every day, all day: dates in tests then follow the frequency exactly.
pub fn always_open() -> Value {
    json!({"timezone": "UTC", "window_start": "00:00", "window_end": "24:00",
           "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})
}

// ----- seeding many thread relances at once -----

use futures::StreamExt;
use relance_shared::domain::thread::{Attach, AttachInput};

/// Stores `count` active thread relances of `tenant` whose first reminder is due at
/// `due` (the tenant's window must be always open), through the store's own writes.
/// Returns each thread's id and recipient (E.164 phone or conversation id).
pub async fn seed_due(
    stack: &Stack,
    tenant: &str,
    relance_id: &str,
    count: usize,
    due: DateTime<Utc>,
) -> Vec<(String, String)> {
    use relance_shared::domain::recipient::Recipient;
    use relance_shared::domain::relance::SendType;
    let store = &stack.world.store;
    let relance = store.get_relance(tenant, relance_id).await.unwrap();
    let response = store
        .get_response(tenant, &relance.default_response_id)
        .await
        .unwrap();
    let window = store.get_settings(tenant).await.unwrap();
    let attached_at = due - chrono::Duration::days(i64::from(relance.frequency_days));
    let threads: Vec<String> = (0..count)
        .map(|i| format!("seed-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    futures::stream::iter(threads)
        .map(|thread_id| {
            let (relance, response, window) = (&relance, &response, &window);
            async move {
                let recipient = match relance.send_type {
                    SendType::Sms => json!({"phone": new_phone().0}),
                    SendType::Channel => json!({"conversation_id": format!("conv-{thread_id}")}),
                };
                let input: AttachInput = serde_json::from_value(json!({
                    "relance_id": relance_id, "ticket_id": "T-1", "ticket_status": "attente_client",
                    "channel": relance.allowed_channels[0], "recipient": recipient,
                    // The thread's own name in its messages tells them apart in moto's record.
                    "context": {"customer_name": thread_id}
                }))
                .unwrap();
                let Attach::Started(thread) = input
                    .attach(
                        tenant,
                        &thread_id,
                        relance,
                        response,
                        None,
                        window,
                        None,
                        attached_at,
                    )
                    .unwrap()
                else {
                    panic!("a new thread starts a cycle")
                };
                assert_eq!(
                    thread.next_relance_date,
                    Some(due),
                    "seeded threads are due at {due}"
                );
                store.put_thread(&thread, None, None).await.unwrap();
                let recipient = match thread.recipient {
                    Recipient::Phone(phone) => phone,
                    Recipient::ConversationId(id) => id,
                };
                (thread_id, recipient)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
}
