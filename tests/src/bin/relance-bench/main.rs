//! `relance-bench`: the figures of `docs/benchmarks.md`, measured side by side in one run
//! against dynalite (see `scripts/bench.sh`, which builds the release binaries first).

mod fakes;
mod runtime;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use relance_scheduler::{RunConfig, RunSummary, Scheduler, Senders};
use relance_shared::config::StoreConfig;
use relance_shared::domain::relance::{Relance, RelanceInput, SendType};
use relance_shared::domain::response::{Response, ResponseInput};
use relance_shared::domain::settings::SettingsInput;
use relance_shared::domain::thread::{Attach, AttachInput, ThreadRelance};
use relance_shared::outbound::{HttpMarketplace, MarketplaceConfig, SnsEvents, SnsSms};
use relance_shared::store::Store;
use relance_tests::marketplace_stub::Stub;
use relance_tests::proxy::CountingProxy;
use relance_tests::stack;
use serde_json::{Value, json};

const TENANT: &str = "bench";
/// The scheduler's `SCHEDULER_CONCURRENCY` in the measured runs: its deployed default.
const CONCURRENCY: usize = relance_scheduler::DEFAULT_CONCURRENCY;

struct Args {
    dynamo: String,
    api_bin: PathBuf,
    scheduler_bin: PathBuf,
    arm64: Option<(PathBuf, PathBuf)>,
    out: PathBuf,
    due: usize,
    idle: usize,
    runs: usize,
    /// dynalite's process, to account for the CPU it uses.
    dynalite_pid: u32,
}

fn args() -> Args {
    let mut map = HashMap::new();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        if let [key, value] = pair {
            map.insert(key.trim_start_matches("--").to_owned(), value.clone());
        }
    }
    let get = |k: &str, d: &str| map.get(k).cloned().unwrap_or_else(|| d.to_owned());
    let arm64 = map.get("arm64-dir").map(|dir| {
        let dir = PathBuf::from(dir);
        (
            dir.join("relance-api/bootstrap"),
            dir.join("relance-scheduler/bootstrap"),
        )
    });
    Args {
        dynamo: get("dynamo", "http://127.0.0.1:5455"),
        api_bin: get("api-bin", "target/release/relance-api").into(),
        scheduler_bin: get("scheduler-bin", "target/release/relance-scheduler").into(),
        arm64: arm64.filter(|(a, s)| a.exists() && s.exists()),
        out: get("out", "docs/benchmarks.md").into(),
        due: get("due", "10000").parse().unwrap(),
        idle: get("idle", "100000").parse().unwrap(),
        runs: get("runs", "20").parse().unwrap(),
        dynalite_pid: get("dynalite-pid", "0").parse().unwrap(),
    }
}

/// The local world the functions talk to: dynalite, an instant SNS, the marketplace stub.
struct World {
    dynamo_url: String,
    dynamo: aws_sdk_dynamodb::Client,
    sns_url: String,
    sns_counts: Arc<fakes::SnsCounts>,
    stub: Stub,
    stub_url: String,
}

impl World {
    async fn new(dynamo_url: &str) -> World {
        let aws = stack::sdk_config(dynamo_url).await;
        let (sns_url, sns_counts) = fakes::instant_sns().await;
        let stub = Stub::new("bench-token");
        let stub_url = format!("http://{}", stub.spawn("127.0.0.1:0").await.unwrap());
        World {
            dynamo_url: dynamo_url.to_owned(),
            dynamo: aws_sdk_dynamodb::Client::new(&aws),
            sns_url,
            sns_counts,
            stub,
            stub_url,
        }
    }

    async fn table(&self, name: &str) -> Store {
        let name = stack::unique(name);
        stack::create_table(&self.dynamo, &name).await.unwrap();
        Store::new(
            self.dynamo.clone(),
            &StoreConfig {
                table_name: name,
                due_shards: 8,
            },
        )
    }

    fn env(&self, table: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_FUNCTION_NAME", "bench".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "warn".into()),
            ("AWS_REGION", "eu-west-3".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamo_url.clone()),
            ("AWS_ENDPOINT_URL_SNS", self.sns_url.clone()),
            ("TABLE_NAME", table.into()),
            ("DUE_SHARDS", "8".into()),
            (
                "EVENTS_TOPIC_ARN",
                "arn:aws:sns:eu-west-3:123456789012:bench-events".into(),
            ),
            ("MARKETPLACE_API_URL", self.stub_url.clone()),
            ("MARKETPLACE_API_TOKEN", "bench-token".into()),
            // Providers here answer at once: measure our speed, not a send-rate policy.
            ("SMS_PER_SECOND", "0".into()),
            ("MARKETPLACE_PER_SECOND", "0".into()),
            ("SCHEDULER_CONCURRENCY", CONCURRENCY.to_string()),
        ]
    }

    fn senders(&self, sns: &aws_config::SdkConfig) -> Senders {
        let sns = aws_sdk_sns::Client::new(sns);
        let marketplace = MarketplaceConfig {
            url: self.stub_url.clone(),
            token: "bench-token".into(),
            token_parameter: None,
            timeout: Duration::from_secs(5),
            per_second: 0,
        };
        Senders {
            sms: Arc::new(SnsSms::new(sns.clone(), 0)),
            marketplace: Arc::new(HttpMarketplace::new(&marketplace).unwrap()),
            events: Arc::new(SnsEvents::new(
                sns,
                "arn:aws:sns:eu-west-3:123456789012:bench-events".into(),
            )),
        }
    }
}

/// One scheduler run at `due` on the table of `store`, reached through `proxy`, which
/// counts what the run asks of DynamoDB.
async fn run_behind(
    world: &World,
    proxy: &CountingProxy,
    store: &Store,
    due: DateTime<Utc>,
) -> RunSummary {
    let proxy_url = proxy.spawn().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&stack::sdk_config(&proxy_url).await);
    let store = Store::new(
        client,
        &StoreConfig {
            table_name: store.table_name().into(),
            due_shards: store.due_shards(),
        },
    );
    let sns = stack::sdk_config(&world.sns_url).await;
    Scheduler::new(store, world.senders(&sns), RunConfig::default())
        .run(due, None)
        .await
        .unwrap()
}

/// A function binary started as Lambda starts it, under the bench's runtime API.
struct Function {
    child: Child,
    runtime: runtime::Runtime,
    spawned: Instant,
}

impl Function {
    async fn start(binary: &PathBuf, env: &[(&'static str, String)]) -> Function {
        let runtime = runtime::Runtime::start().await;
        let spawned = Instant::now();
        let child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", &runtime.addr)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        Function {
            child,
            runtime,
            spawned,
        }
    }

    /// Peak resident memory so far, in KiB.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// CPU time a process has used so far (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// CPU used per 1,000 steps by the scheduler, the store and the bench (stand-ins).
fn cpu_note(phase: &str, steps: usize, used: [f64; 3]) -> String {
    let per = |s: f64| s * 1_000.0 / steps as f64;
    format!(
        "CPU per 1,000 steps, {phase}: scheduler {:.2} s, dynalite {:.2} s, bench and its stand-ins {:.2} s.",
        per(used[0]),
        per(used[1]),
        per(used[2])
    )
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

fn api_event(path: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"custom:tenant_id": TENANT}, "scopes": null}}
        },
        "isBase64Encoded": false
    })
}

fn scheduled_event(at: DateTime<Utc>) -> Value {
    json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": at.to_rfc3339(), "region": "eu-west-3", "resources": [], "detail": {}})
}

/// What seeded thread relances are attached from: an always-open window (stored, the
/// scheduler reads it), and in memory one SMS relance, one marketplace relance and their
/// response (dynalite has no transactions to store them with; the scheduler never reads
/// them).
struct Config {
    sms: Relance,
    channel: Relance,
    response: Response,
    window: relance_shared::domain::settings::SendingWindow,
}

async fn configure(store: &Store) -> Config {
    let window = serde_json::from_value::<SettingsInput>(json!({
        "timezone": "UTC", "window_start": "00:00", "window_end": "24:00",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}))
    .unwrap()
    .validate()
    .unwrap();
    store.put_settings(TENANT, &window).await.unwrap();
    let now = Utc::now().trunc_subsecs(0);
    let response = ResponseInput {
        title: "Rappel".into(),
        body: "Bonjour {{customer_name}}, avez-vous pu vérifier votre commande ?".into(),
        version: None,
    }
    .validate()
    .unwrap()
    .into_response(uuid::Uuid::now_v7().to_string(), now, now, 1);
    let relance = |name: &str, send_type| {
        RelanceInput {
            name: name.into(),
            frequency_days: 2,
            max_sends: 3,
            allowed_channels: vec!["amazon".into()],
            default_response_id: response.id.clone(),
            end_response_id: None,
            final_status: "resolu".into(),
            send_type,
            version: None,
        }
        .validate()
        .unwrap()
        .into_relance(uuid::Uuid::now_v7().to_string(), now, now, 1)
    };
    Config {
        sms: relance("SMS", SendType::Sms),
        channel: relance("Marketplace", SendType::Channel),
        response,
        window,
    }
}

/// Stores `count` thread relances due at `due`, alternating SMS and marketplace, in
/// batches of 25 (the store's own item form, written faster than one by one).
async fn seed(
    client: &aws_sdk_dynamodb::Client,
    store: &Store,
    config: &Config,
    count: usize,
    due: DateTime<Utc>,
) -> Vec<ThreadRelance> {
    let attached_at = due - chrono::Duration::days(2);
    let threads: Vec<ThreadRelance> = (0..count)
        .map(|i| {
            let (relance, recipient) = if i % 2 == 0 {
                (&config.sms, json!({"phone": format!("06 1{:07}", i % 10_000_000)}))
            } else {
                (&config.channel, json!({"conversation_id": format!("conv-{i}")}))
            };
            let input: AttachInput = serde_json::from_value(json!({
                "relance_id": relance.id, "ticket_id": format!("T-{i}"), "ticket_status": "attente_client",
                "channel": "amazon", "recipient": recipient, "context": {"customer_name": "Client"}}))
            .unwrap();
            let thread_id = format!("thread-{i}-{}", uuid::Uuid::new_v4().simple());
            match input.attach(TENANT, &thread_id, relance, &config.response, None, &config.window, None, attached_at) {
                Ok(Attach::Started(thread)) => *thread,
                other => panic!("a new thread starts a cycle: {other:?}"),
            }
        })
        .collect();
    futures::stream::iter(threads.chunks(25))
        .map(|chunk| async move {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|t| {
                    let put = PutRequest::builder()
                        .set_item(Some(store.thread_item(t).unwrap()))
                        .build()
                        .unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            while !requests.is_empty() {
                let out = client
                    .batch_write_item()
                    .request_items(store.table_name(), requests)
                    .send()
                    .await
                    .unwrap();
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(store.table_name()))
                    .unwrap_or_default();
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    threads
}

#[derive(Default)]
struct Report {
    rows: Vec<[String; 4]>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, figure: &str, value: String, goal: &str, how: &str) {
        println!("{figure}: {value}");
        self.rows
            .push([figure.into(), value, goal.into(), how.into()]);
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let world = World::new(&args.dynamo).await;
    let mut report = Report::default();

    // ----- cold start and first request -----
    for (name, binary) in [
        ("relance-api", &args.api_bin),
        ("relance-scheduler", &args.scheduler_bin),
    ] {
        let store = world.table("cold").await;
        let env = world.env(store.table_name());
        let event = if name == "relance-api" {
            api_event("/settings")
        } else {
            scheduled_event(Utc::now())
        };
        let (mut inits, mut firsts, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let mut function = Function::start(binary, &env).await;
            inits.push(function.runtime.ready(function.spawned).await);
            let (first, first_time) = function.runtime.invoke(&event).await;
            first.unwrap_or_else(|e| panic!("{name} failed: {e}"));
            let (_, second_time) = function.runtime.invoke(&event).await;
            firsts.push(first_time);
            seconds.push(second_time);
        }
        report.row(
            &format!(
                "{name}: init (process start to ready, median of {})",
                args.runs
            ),
            ms(median(inits)),
            "connections opened in init",
            "release binary under a local Lambda runtime API, dynalite",
        );
        report.row(
            &format!("{name}: first request after init / second (median)"),
            format!("{} / {}", ms(median(firsts)), ms(median(seconds))),
            "first ≈ second",
            if name == "relance-api" {
                "GET /settings with JWT claims"
            } else {
                "scheduled event, nothing due"
            },
        );
    }

    // ----- scheduler throughput on 10,000 due items, and its peak memory -----
    let store = world.table("throughput").await;
    let relances = configure(&store).await;
    let due = (Utc::now() + chrono::Duration::days(3)).trunc_subsecs(0);
    let seeded = Instant::now();
    seed(&world.dynamo, &store, &relances, args.due, due).await;
    report.notes.push(format!(
        "Seeding {} thread relances took {:.1} s.",
        args.due,
        seeded.elapsed().as_secs_f64()
    ));
    let mut function = Function::start(&args.scheduler_bin, &world.env(store.table_name())).await;
    function.runtime.ready(function.spawned).await;
    let pids = [function.child.id(), args.dynalite_pid, std::process::id()];
    let cpu_before = pids.map(cpu_seconds);
    let (summary, took) = function.runtime.invoke(&scheduled_event(due)).await;
    let cpu_after = pids.map(cpu_seconds);
    let used = std::array::from_fn(|i| cpu_after[i] - cpu_before[i]);
    report.notes.push(cpu_note("scheduler run", args.due, used));
    let summary = summary.expect("the scheduler run succeeded");
    let sent = summary["sent"].as_u64().unwrap();
    assert_eq!(
        Some(sent),
        summary["due"].as_u64(),
        "every due item found was sent: {summary}"
    );
    if sent as usize != args.due {
        // Seen with dynalite only: an index query that stops at its 1 MB page without
        // saying so. The missed items stay due; the next run sends them.
        report.notes.push(format!(
            "dynalite's due index returned {sent} of the {} due items in this run.",
            args.due
        ));
    }
    let scheduler_rate = sent as f64 / took.as_secs_f64();
    let peak = function.peak_kib();
    drop(function);
    report.row(
        &format!("scheduler throughput, one invocation, {} due", args.due),
        format!(
            "{scheduler_rate:.0} steps/s ({} in {:.2} s)",
            sent,
            took.as_secs_f64()
        ),
        "≥ 0.8 × store limit",
        "release binary; SNS and marketplace answer at once",
    );

    // The store's own limit: only the two conditional writes a step needs, the scheduler's
    // own claim and commit (which moves the item in the due index), nothing else: no
    // query, no send, no event. At the concurrency that gets the most out of the store.
    let (mut limit_rate, mut limit_concurrency) = (0.0, 0);
    for concurrency in [16, 32, 64] {
        let limit_store = world.table("limit").await;
        let limit_relances = configure(&limit_store).await;
        let threads = seed(&world.dynamo, &limit_store, &limit_relances, args.due, due).await;
        let started = Instant::now();
        let cpu_before = [
            cpu_seconds(args.dynalite_pid),
            cpu_seconds(std::process::id()),
        ];
        futures::stream::iter(threads)
            .map(|thread| {
                let (store, window) = (&limit_store, &limit_relances.window);
                async move { minimal_step(store, window, thread).await }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let rate = args.due as f64 / started.elapsed().as_secs_f64();
        let used = [
            0.0,
            cpu_seconds(args.dynalite_pid) - cpu_before[0],
            cpu_seconds(std::process::id()) - cpu_before[1],
        ];
        report.notes.push(format!(
            "Store limit with {concurrency} steps in flight: {rate:.0} steps/s."
        ));
        report.notes.push(cpu_note(
            &format!("store limit loop, {concurrency} in flight"),
            args.due,
            used,
        ));
        if rate > limit_rate {
            (limit_rate, limit_concurrency) = (rate, concurrency);
        }
    }
    report.row(
        "store limit: claim + commit writes only",
        format!("{limit_rate:.0} steps/s ({limit_concurrency} in flight)"),
        "reference",
        "loop of the store's claim (UpdateItem) and commit (PutItem), best of 16/32/64 in flight",
    );
    report.row(
        "scheduler / store limit",
        format!("{:.2}", scheduler_rate / limit_rate),
        "≥ 0.80",
        "ratio of the two lines above",
    );
    report.row(
        &format!("scheduler peak memory, {} due items", args.due),
        format!("{:.1} MiB", peak as f64 / 1024.0),
        "comfortably < 128 MB",
        "VmHWM of the release binary after the run",
    );

    // ----- requests and capacity per reminder -----
    let counted = world.table("counts").await;
    let counted_relances = configure(&counted).await;
    seed(&world.dynamo, &counted, &counted_relances, 1_000, due).await;
    let proxy = CountingProxy::new(&world.dynamo_url).with_capacity();
    let sns_before = world.sns_counts.snapshot();
    let posted_before = world.stub.received().len();
    let run = run_behind(&world, &proxy, &counted, due).await;
    let steps = run.sent as f64;
    let counts = proxy.counts();
    let per = |ops: &[&str], f: fn(&relance_tests::proxy::OpCount) -> f64| -> f64 {
        ops.iter()
            .filter_map(|op| counts.get(*op))
            .map(f)
            .sum::<f64>()
            / steps
    };
    let reads = per(&["DynamoDB.Query", "DynamoDB.GetItem"], |c| {
        c.requests as f64
    });
    let writes = per(&["DynamoDB.UpdateItem", "DynamoDB.PutItem"], |c| {
        c.requests as f64
    });
    let rcu = per(&["DynamoDB.Query", "DynamoDB.GetItem"], |c| c.capacity);
    let wcu = per(&["DynamoDB.UpdateItem", "DynamoDB.PutItem"], |c| c.capacity);
    let sns_after = world.sns_counts.snapshot();
    let publishes = (sns_after.0 - sns_before.0) as f64 / steps;
    let checks = (sns_after.1 - sns_before.1) as f64 / steps;
    let posts = (world.stub.received().len() - posted_before) as f64 / steps;
    report.row(
        "DynamoDB requests per reminder",
        format!("{reads:.3} reads, {writes:.2} writes"),
        "2 writes, reads ≪ 1",
        "counting proxy, 1,000 steps",
    );
    report.row(
        "DynamoDB capacity per reminder",
        format!("{rcu:.3} RCU, {wcu:.2} WCU"),
        "",
        "ConsumedCapacity reported by dynalite",
    );
    report.row(
        "SNS publishes / opt-out checks / HTTP posts per reminder",
        format!("{publishes:.2} / {checks:.2} / {posts:.2}"),
        "1 send + 1 event; 1 check per SMS",
        "half SMS, half marketplace",
    );
    // dynalite bills the table only; DynamoDB also bills the due index, whose entry each
    // commit moves (one index write to remove it, one to add it).
    let index_wcu = 2.0;
    let dynamo_cost = rcu * 0.125 + (wcu + index_wcu) * 0.625;
    let events_cost = 0.50;
    // SNS bills API requests (the opt-out check) like publishes to a topic.
    let checks_cost = 0.50 * checks;
    report.notes.push(format!(
        "Cost per million reminders, on-demand prices of us-east-1 (DynamoDB $0.625 per million write units, \
         $0.125 per million read units; SNS $0.50 per million publishes; SMS priced per country, France about \
         $0.07 each): DynamoDB {rcu:.3} RCU and {wcu:.2} WCU on the table per reminder, plus {index_wcu:.0} WCU \
         on the due index = ${dynamo_cost:.2}; the domain event ${events_cost:.2}; the SMS opt-out checks \
         ({checks:.2} per reminder) ${checks_cost:.2}; Lambda time is in the line below. Per million reminders \
         that is about ${:.2} before the messages themselves; one million French SMS cost about $70,000, so the \
         service's own cost is noise beside the SMS it sends.",
        dynamo_cost + events_cost + checks_cost
    ));
    let lambda_gb_s = 0.25 * (1.0 / scheduler_rate);
    report.notes.push(format!(
        "Scheduler compute per reminder at 256 MB: {:.5} GB-s, i.e. ${:.3} per million reminders on arm64 \
         ($0.0000133334 per GB-s).",
        lambda_gb_s,
        lambda_gb_s * 1_000_000.0 * 0.000_013_333_4
    ));
    report.notes.push(format!(
        "Requests counted through the proxy: {:?}",
        requests_only(&counts)
    ));

    // ----- work grows with due items, not table size -----
    let big = world.table("idle").await;
    let big_relances = configure(&big).await;
    let seeded = Instant::now();
    for chunk in 0..args.idle.div_ceil(10_000) {
        let n = 10_000.min(args.idle - chunk * 10_000);
        seed(
            &world.dynamo,
            &big,
            &big_relances,
            n,
            due + chrono::Duration::days(30),
        )
        .await;
    }
    seed(&world.dynamo, &big, &big_relances, 100, due).await;
    report.notes.push(format!(
        "Seeding {} idle thread relances took {:.1} s.",
        args.idle,
        seeded.elapsed().as_secs_f64()
    ));
    let proxy = CountingProxy::new(&world.dynamo_url);
    let run = run_behind(&world, &proxy, &big, due).await;
    let counts = proxy.counts();
    let read: u64 = ["DynamoDB.Query", "DynamoDB.GetItem", "DynamoDB.Scan"]
        .iter()
        .filter_map(|op| counts.get(*op))
        .map(|c| c.items)
        .sum();
    report.row(
        &format!("items read, {} not due + {} due", args.idle, run.due),
        format!("{read} ({:.2} × due)", read as f64 / run.due as f64),
        "≤ 1.1 × due",
        "counting proxy; also a test (faults.rs)",
    );

    // ----- the API's own cost, network removed -----
    api_overhead(&mut report).await;

    // ----- binary sizes -----
    for (name, path) in [
        ("relance-api", &args.api_bin),
        ("relance-scheduler", &args.scheduler_bin),
    ] {
        report.row(
            &format!("{name} binary, x86_64"),
            size(path),
            "small",
            "release profile: lto, strip, panic = abort",
        );
    }
    match &args.arm64 {
        Some((api, scheduler)) => {
            report.row(
                "relance-api binary, arm64",
                size(api),
                "small",
                "cargo lambda build --release --arm64",
            );
            report.row(
                "relance-scheduler binary, arm64",
                size(scheduler),
                "small",
                "cargo lambda build --release --arm64",
            );
        }
        None => report.notes.push(
            "arm64 binaries were not built in this run (cargo lambda build needs zig).".into(),
        ),
    }

    write(&args, &report);
}

fn requests_only(counts: &BTreeMap<String, relance_tests::proxy::OpCount>) -> BTreeMap<&str, u64> {
    counts
        .iter()
        .map(|(k, v)| (k.as_str(), v.requests))
        .collect()
}

fn size(path: &PathBuf) -> String {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

/// Claim then commit one thread relance, nothing else: the writes a step cannot avoid.
async fn minimal_step(
    store: &Store,
    window: &relance_shared::domain::settings::SendingWindow,
    thread: ThreadRelance,
) {
    use relance_shared::domain::thread::SendResult;
    use relance_shared::store::DueItem;
    let now = thread.next_relance_date.unwrap();
    let due = DueItem {
        tenant: thread.tenant_id.clone(),
        thread_id: thread.thread_id.clone(),
        state: thread.state,
        cycle: thread.cycle,
        step: thread.step,
        kind: relance_shared::store::DueKind::Thread,
    };
    let token = uuid::Uuid::new_v4().to_string();
    let claim = store
        .claim(&due, now, Duration::from_secs(900), &token)
        .await
        .unwrap()
        .expect("claimed");
    // The commit moves the item in the due index, as every real step does.
    let mut next = claim.thread;
    let after_end = next.clone();
    next.record(SendResult::Sent, now, window, 5);
    store.commit(&next, &after_end, &token).await.unwrap();
}

/// Requests per second and latency of list, get and attach, in process, with DynamoDB
/// answered by canned replies: the handler's own cost, SDK marshalling included.
async fn api_overhead(report: &mut Report) {
    let now = Utc::now().trunc_subsecs(0);
    let relance_id = uuid::Uuid::now_v7().to_string();
    let response_id = uuid::Uuid::now_v7().to_string();
    let relance = |i: usize| Relance {
        id: if i == 0 {
            relance_id.clone()
        } else {
            uuid::Uuid::now_v7().to_string()
        },
        name: format!("Relance {i}"),
        frequency_days: 2,
        max_sends: 3,
        allowed_channels: vec!["amazon".into(), "sms".into()],
        default_response_id: response_id.clone(),
        end_response_id: None,
        final_status: "resolu".into(),
        send_type: SendType::Sms,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let with_keys = |value: &dyn erased::Item, sk: String| {
        let mut item = value.item();
        item.insert("pk".into(), AttributeValue::S(format!("TENANT#{TENANT}")));
        item.insert("sk".into(), AttributeValue::S(sk));
        fakes::wire_item(&item)
    };
    let relances: Vec<Value> = (0..50)
        .map(|i| {
            let r = relance(i);
            with_keys(&r, format!("RELANCE#{}", r.id))
        })
        .collect();
    let response = Response {
        id: response_id.clone(),
        title: "Rappel".into(),
        body: "Bonjour {{customer_name}}".into(),
        placeholders: vec!["customer_name".into()],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let response_item = with_keys(&response, format!("RESPONSE#{response_id}"));
    let first = relances[0].clone();
    let client = fakes::canned_dynamo(move |op, request| match op {
        "Query" => json!({"Items": relances, "Count": 50, "ScannedCount": 50}),
        "GetItem" => {
            let sk = request["Key"]["sk"]["S"].as_str().unwrap_or("");
            if sk.starts_with("RELANCE#") {
                json!({"Item": first})
            } else if sk.starts_with("RESPONSE#") {
                json!({"Item": response_item})
            } else {
                json!({})
            }
        }
        _ => json!({}),
    });
    let store = Store::new(
        client,
        &StoreConfig {
            table_name: "canned".into(),
            due_shards: 8,
        },
    );
    let config = relance_api::ApiConfig {
        store: StoreConfig {
            table_name: "canned".into(),
            due_shards: 8,
        },
        tenant_claim: "custom:tenant_id".into(),
        dev_auth: false,
    };
    let app = relance_api::app(relance_api::AppState::new(store, config));
    let attach = json!({"relance_id": relance_id, "ticket_id": "T-1", "ticket_status": "attente_client",
                        "channel": "sms", "recipient": {"phone": "06 12 34 56 78"}, "context": {"customer_name": "Léa"}});
    let cases = [
        (
            "list (50 relances)",
            "GET",
            "/relances?channel=amazon".to_owned(),
            None,
        ),
        ("get", "GET", format!("/relances/{relance_id}"), None),
        (
            "attach",
            "PUT",
            "/threads/thread-1/relance".to_owned(),
            Some(attach.to_string()),
        ),
    ];
    for (name, method, path, body) in cases {
        let (path_only, query) = path.split_once('?').unwrap_or((&path, ""));
        let mut event = api_event(path_only);
        event["rawQueryString"] = json!(query);
        event["requestContext"]["http"]["method"] = json!(method);
        if let Some(body) = &body {
            event["body"] = json!(body);
        }
        let event = event.to_string();
        let n = 5_000;
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let request = lambda_http::request::from_str(&event).unwrap();
            let t = Instant::now();
            let response = tower::ServiceExt::oneshot(app.clone(), request)
                .await
                .unwrap();
            let status = response.status();
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            latencies.push(t.elapsed());
            assert!(status.is_success(), "{name}: {status}");
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        latencies.sort();
        report.row(
            &format!("API {name}, in process"),
            format!(
                "{rate:.0} req/s, p50 {:.0} µs, p99 {:.0} µs",
                percentile(&latencies, 0.5).as_secs_f64() * 1e6,
                percentile(&latencies, 0.99).as_secs_f64() * 1e6
            ),
            "handler cost ≪ DynamoDB round trip",
            "router + handlers + SDK marshalling; DynamoDB answered in process",
        );
    }
}

mod erased {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    /// Anything serialisable as a DynamoDB item.
    pub trait Item {
        fn item(&self) -> HashMap<String, AttributeValue>;
    }

    impl<T: serde::Serialize> Item for T {
        fn item(&self) -> HashMap<String, AttributeValue> {
            let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(self).unwrap();
            item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
            item
        }
    }
}

fn write(args: &Args, report: &Report) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut doc = String::new();
    doc.push_str("# Benchmarks\n\n");
    doc.push_str("Measured by `make bench` (`scripts/bench.sh`, then `relance-bench`): release binaries, DynamoDB served by \
                  dynalite (in memory), SNS and the marketplace answering at once, everything on loopback. Figures are \
                  this machine's; rerun `make bench` to get yours. Tests never assert times; the counts below are also \
                  asserted by tests where marked.\n\n");
    doc.push_str(&format!(
        "- date: {}\n- machine: {cpu}, {cores} cores, {:.0} GiB RAM, {}\n- commit: {commit}\n- due items: {}, idle items: {}, cold-start runs: {}\n\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        memory as f64 / 1_048_576.0,
        std::env::consts::ARCH,
        args.due,
        args.idle,
        args.runs,
    ));
    doc.push_str("| figure | value | goal | how |\n| --- | --- | --- | --- |\n");
    for [figure, value, goal, how] in &report.rows {
        doc.push_str(&format!("| {figure} | {value} | {goal} | {how} |\n"));
    }
    doc.push_str("\n## Notes\n\n");
    for note in &report.notes {
        doc.push_str(&format!("- {note}\n"));
    }
    if let Ok(extra) = std::fs::read_to_string("docs/benchmarks-notes.md") {
        doc.push('\n');
        doc.push_str(&extra);
    }
    std::fs::create_dir_all(args.out.parent().unwrap_or(std::path::Path::new("."))).unwrap();
    std::fs::write(&args.out, doc).unwrap();
    println!("wrote {}", args.out.display());
}
