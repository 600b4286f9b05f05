//! Both functions as Lambda runs them: built and served by `cargo lambda watch`, invoked
//! with the API Gateway v2 and EventBridge events in `events/`, configured as deployed:
//! through the environment, the connector's token in SSM, no dev auth (the tenant comes
//! from the events' verified claims).

mod harness;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{MARKETPLACE_TOKEN, Stack, sms_to, time};
use serde_json::{Value, json};

/// A secret key moto accepts and that must never appear in a log line.
const AWS_SECRET: &str = "never-logged-aws-secret-8c1f";

fn log_path() -> PathBuf {
    root().join("target/lambda-watch-test.log")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn path_with_tools() -> String {
    let venv = root().join(".venv/bin");
    assert!(
        venv.join("cargo-lambda").exists(),
        "cargo-lambda is missing: `make test` installs it into .venv"
    );
    format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `cargo lambda watch` in its own process group, stopped with everything it started.
struct Watch {
    child: Child,
    port: u16,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Watch {
    /// Serves the functions configured as deployed: the connector's token is read from the
    /// SSM SecureString `token_parameter`.
    fn start(stack: &Stack, token_parameter: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(log_path()).unwrap();
        let child = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(root())
            .env("PATH", path_with_tools())
            .env("AWS_ENDPOINT_URL", relance_tests::stack::test_endpoint())
            .env("AWS_REGION", "eu-west-3")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            // Everything the functions and the SDK log, to prove no secret is among it.
            .env("RUST_LOG", "debug")
            .env("AWS_LAMBDA_LOG_LEVEL", "debug")
            .env("TABLE_NAME", &stack.world.table)
            .env("DUE_SHARDS", "4")
            .env("EVENTS_TOPIC_ARN", &stack.topic)
            .env("MARKETPLACE_API_URL", &stack.stub_url)
            .env("MARKETPLACE_API_TOKEN_PARAMETER", token_parameter)
            .env_remove("MARKETPLACE_API_TOKEN")
            .env_remove("RELANCE_DEV_AUTH")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start cargo lambda watch");
        let watch = Watch { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "cargo lambda watch did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        watch
    }

    /// `cargo lambda invoke FUNCTION --data-file EVENT`, returning what the function returned.
    fn invoke(&self, function: &str, event: &Value) -> Value {
        // Blocking here is fine: the stub and moto calls run on the runtime's other worker.
        tokio::task::block_in_place(|| self.invoke_blocking(function, event))
    }

    fn invoke_blocking(&self, function: &str, event: &Value) -> Value {
        let file = root().join(format!(
            "target/lambda-event-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&file, event.to_string()).unwrap();
        let output = Command::new("cargo")
            .args([
                "lambda",
                "invoke",
                function,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(&file)
            .args(["--output-format", "json"])
            .current_dir(root())
            .env("PATH", path_with_tools())
            .stdin(Stdio::null())
            .output()
            .expect("run cargo lambda invoke");
        let _ = std::fs::remove_file(&file);
        assert!(
            output.status.success(),
            "invoke {function} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
    }

    /// Invokes the API with a sample event, its body replaced when `body` is given.
    fn api(&self, sample: &str, body: Option<Value>) -> (u16, Value) {
        self.api_at(sample, None, body)
    }

    /// Invokes the API with a sample event sent to another `path` when one is given.
    fn api_at(&self, sample: &str, path: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("events/api").join(sample)).unwrap(),
        )
        .unwrap();
        if let Some(path) = path {
            event["rawPath"] = json!(path);
            event["requestContext"]["http"]["path"] = json!(path);
        }
        if let Some(body) = body {
            event["body"] = json!(body.to_string());
        }
        let reply = self.invoke("relance-api", &event);
        let body = reply["body"]
            .as_str()
            .map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
        (reply["statusCode"].as_u64().unwrap() as u16, body)
    }
}

fn sample_body(sample: &str) -> Value {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/api").join(sample)).unwrap(),
    )
    .unwrap();
    serde_json::from_str(event["body"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_run_under_cargo_lambda_with_the_sample_events() {
    let stack = Stack::new().await;
    let token_parameter = relance_tests::stack::unique("/relances-test/marketplace-token");
    relance_tests::stack::put_secret(&stack.world.aws, &token_parameter, MARKETPLACE_TOKEN)
        .await
        .unwrap();
    let watch = tokio::task::block_in_place(|| Watch::start(&stack, &token_parameter));

    let (status, response) = watch.api("create-response.json", None);
    assert_eq!(status, 201, "{response}");
    let mut relance = sample_body("create-relance.json");
    relance["default_response_id"] = response["id"].clone();
    relance["end_response_id"] = Value::Null;
    let (status, relance) = watch.api("create-relance.json", Some(relance));
    assert_eq!(status, 201, "{relance}");
    let (status, listed) = watch.api("list-relances.json", None);
    assert_eq!(
        (status, listed["items"].as_array().unwrap().len()),
        (200, 1)
    );

    let mut attach = sample_body("attach-thread-relance.json");
    attach["relance_id"] = relance["id"].clone();
    let (typed, phone) = harness::new_phone();
    attach["recipient"]["phone"] = json!(typed);
    let (status, thread) = watch.api("attach-thread-relance.json", Some(attach));
    assert_eq!(status, 201, "{thread}");
    let (status, view) = watch.api("get-thread-relance.json", None);
    assert_eq!((status, &view["state"]), (200, &json!("active")));

    // A second thread, on the marketplace channel.
    let mut on_channel = sample_body("create-relance.json");
    on_channel["name"] = json!("Relance message");
    on_channel["send_type"] = json!("channel");
    on_channel["default_response_id"] = response["id"].clone();
    on_channel["end_response_id"] = Value::Null;
    let (status, on_channel) = watch.api("create-relance.json", Some(on_channel));
    assert_eq!(status, 201, "{on_channel}");
    let channel_thread = json!({
        "relance_id": on_channel["id"], "ticket_id": "T-1002", "ticket_status": "attente_client",
        "channel": "amazon", "recipient": {"conversation_id": "conv-1002"},
        "context": {"customer_name": "Léa", "order_id": "A-43"}
    });
    let (status, channel_thread) = watch.api_at(
        "attach-thread-relance.json",
        Some("/threads/thread-2/relance"),
        Some(channel_thread),
    );
    assert_eq!(status, 201, "{channel_thread}");

    // The scheduler, invoked with the scheduled event at the date the panel shows.
    let mut scheduled: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/scheduled.json")).unwrap(),
    )
    .unwrap();
    scheduled["time"] = channel_thread["next_relance_date"].clone();
    let summary = watch.invoke("relance-scheduler", &scheduled);
    assert_eq!(
        (summary["due"].as_u64(), summary["sent"].as_u64()),
        (Some(2), Some(2)),
        "{summary}"
    );
    assert_eq!(
        sms_to(&phone).await,
        ["Bonjour Léa, nous attendons votre retour sur la commande A-42."]
    );
    // The connector accepted the message: the scheduler read its token from SSM.
    let received = stack.stub.received();
    assert_eq!(
        received
            .iter()
            .map(|r| (r.status, r.body["body"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [(
            202,
            "Bonjour Léa, nous attendons votre retour sur la commande A-43."
        )]
    );
    let (_, view) = watch.api("get-thread-relance.json", None);
    assert_eq!(view["messages_sent"], 1);
    assert!(time(&view["next_relance_date"]) > time(&thread["next_relance_date"]));

    // Without verified claims the deployed API knows no tenant, whatever the headers say.
    let mut anonymous: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/api/get-settings.json")).unwrap(),
    )
    .unwrap();
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    anonymous["headers"]["x-tenant-id"] = json!("acme");
    let reply = watch.invoke("relance-api", &anonymous);
    assert_eq!(reply["statusCode"], 401, "{reply}");

    // Nothing secret reached a log line: not the connector's token, not the AWS secret key.
    drop(watch);
    let log = std::fs::read_to_string(log_path()).unwrap();
    assert!(
        log.contains("run finished"),
        "the functions' logs were captured"
    );
    // Each run printed its counts as an embedded-metric line, which the alarms watch.
    let metrics: Vec<Value> = log
        .lines()
        .filter(|line| line.starts_with('{') && line.contains(r#""_aws":"#))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        metrics
            .iter()
            .any(|m| (m["Sent"].as_u64(), m["Due"].as_u64()) == (Some(2), Some(2))),
        "no metric line for the run that sent 2: {metrics:?}"
    );
    assert!(
        !log.contains(MARKETPLACE_TOKEN),
        "the marketplace token was logged"
    );
    assert!(!log.contains(AWS_SECRET), "the AWS secret key was logged");
}
